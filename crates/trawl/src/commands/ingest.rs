//! `trawl ingest`: load flow-log files (and directories of them) into a
//! data directory, with a progress bar (bytes, records/s, ETA) and a
//! summary, sealing everything before exit. Files already loaded (by the
//! manifest's positions) are skipped, so ingesting twice counts nothing twice.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use trawl_pipeline::list_files;

use crate::setup::{self, Config};

/// How often the progress bar is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Arguments of `trawl ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Data directory to load into.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Metadata events file, JSON lines (repeatable).
    #[arg(long = "metadata", value_name = "FILE")]
    metadata: Vec<PathBuf>,
    /// AWS's `ip-ranges.json`.
    #[arg(long, value_name = "FILE")]
    aws_ip_ranges: Option<PathBuf>,
    /// Config file for store, attribution and pipeline options.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Flow-log files or directories (plain or gzip, any layout).
    #[arg(required = true, value_name = "FILES")]
    inputs: Vec<PathBuf>,
}

/// Runs `trawl ingest`.
pub fn run(args: &IngestArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(args.config.as_deref())?;
    config.data_dir = args.data_dir.clone();
    config.sources.metadata_files = args.metadata.clone();
    config.sources.aws_ip_ranges = args.aws_ip_ranges.clone();
    let mut files = Vec::new();
    for input in &args.inputs {
        if input.is_dir() {
            files
                .extend(list_files(input).with_context(|| format!("listing {}", input.display()))?);
        } else {
            files.push(input.clone());
        }
    }
    let total: u64 = files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .map(|m| m.len())
                .with_context(|| format!("{}", f.display()))
        })
        .sum::<anyhow::Result<u64>>()?;
    let running = setup::start(&config)?;
    let pipeline = running.pipeline.clone();
    let started = Instant::now();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} ({binary_bytes_per_sec}) {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let queued = std::thread::scope(|scope| {
        let feeding = scope.spawn(|| pipeline.add_files(&files));
        let stats = pipeline.stats();
        loop {
            let records = stats.records.load(Ordering::Relaxed);
            bar.set_position(stats.input_bytes.load(Ordering::Relaxed).min(total));
            let rate = records as f64 / started.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!("{records} records, {:.2} M/s", rate / 1e6));
            // Once every file is queued, the last job's end wakes this
            // (a plain 100 ms sleep idled both cores for 50 ms on average).
            if !feeding.is_finished() {
                std::thread::sleep(PROGRESS_INTERVAL);
            } else if pipeline.wait_idle_for(PROGRESS_INTERVAL) {
                break;
            }
        }
        feeding.join().unwrap_or_else(|_| Ok(0))
    })?;
    pipeline.wait_idle();
    bar.finish_and_clear();
    let stats = pipeline.stats();
    let records = stats.records.load(Ordering::Relaxed);
    let errors = stats.decode_errors_total();
    let file_errors = stats.file_errors.load(Ordering::Relaxed);
    let read_secs = started.elapsed().as_secs_f64();
    drop(pipeline);
    running.stop()?;
    println!(
        "ingested {queued} files ({} skipped as already loaded), {:.1} MB, {records} records in {read_secs:.1} s ({:.2} M records/s); {errors} decode errors, {file_errors} unreadable files; sealed in {:.1} s",
        files.len() - queued,
        total as f64 / 1e6,
        records as f64 / read_secs.max(1e-9) / 1e6,
        started.elapsed().as_secs_f64() - read_secs
    );
    Ok(if errors + file_errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
