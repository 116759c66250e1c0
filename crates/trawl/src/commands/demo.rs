//! `trawl demo`: the first thing to run. A churning estate (trawl-gen:
//! 300 apps across 3 regions × 3 AZs, IPs passing between apps) streams
//! flow logs and metadata events live, at wall-clock time, through the
//! whole pipeline into a store, served over HTTP. Nothing to configure:
//! it prints the URLs of the UI and of the SQL endpoint and runs until
//! Ctrl-C (or `--duration-secs`). The last `--backfill-secs` are generated
//! at once, so there is something to query from the first second.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use trawl_gen::{Estate, EstateConfig, LogGroup, TickOutput};
use trawl_pipeline::Pipeline;

use crate::setup::{self, Config, LISTEN_DEFAULT};

/// Arguments of `trawl demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// HTTP address (a free port on the same host if the default is taken).
    #[arg(long, value_name = "ADDR", default_value = LISTEN_DEFAULT)]
    listen: String,
    /// Keep the data here (default: a temporary directory, deleted at exit).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Applications in the estate (2 to 1,000,000).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    apps: u64,
    /// Flow records per second.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Share of instances replaced per hour.
    #[arg(long, default_value_t = 4.0)]
    churn: f64,
    /// Seconds of history generated at start.
    #[arg(long, default_value_t = 900)]
    backfill_secs: u32,
    /// Stop after this many seconds (default: at Ctrl-C).
    #[arg(long)]
    duration_secs: Option<u64>,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Runs `trawl demo`.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let temp = match &args.data_dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("trawl-demo-").tempdir()?),
    };
    let mut config = Config {
        listen: args.listen.clone(),
        ..Config::default()
    };
    config.data_dir = match (&args.data_dir, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temp)) => temp.path().to_path_buf(),
        (None, None) => PathBuf::from("trawl-data"),
    };
    config.pipeline.seal_interval_secs = 60;
    let running = setup::start(&config)?;
    let estate = Estate::new(EstateConfig {
        apps: args.apps as usize,
        records_per_sec: args.rate,
        churn_per_hour: args.churn,
        start_secs: now_secs() - i64::from(args.backfill_secs),
        snapshot_every_secs: 600,
        ..EstateConfig::default()
    });
    {
        let index = running.pipeline.index();
        let mut index = index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        index.add_aws_ip_ranges(
            estate.aws_ip_ranges_json().as_bytes(),
            "demo ip-ranges.json",
        )?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let generator = {
        let (pipeline, stop) = (running.pipeline.clone(), stop.clone());
        std::thread::Builder::new()
            .name("trawl-demo-estate".into())
            .spawn(move || feed(estate, &pipeline, &stop))?
    };
    let state = running.app_state(&config)?;
    setup::check_exposure(&config.listen, &state)?;
    let scheme = setup::scheme(&state);
    let runtime = setup::server_runtime()?;
    runtime.block_on(async {
        let listener = setup::bind(&config.listen).await?;
        let addr = listener.local_addr()?;
        println!(
            "trawl demo: {} apps across 3 regions x 3 AZs, ~{} flow records/s, IPs churning between apps",
            args.apps, args.rate
        );
        println!("  UI:      {scheme}://{addr}/");
        println!("  SQL:     {scheme}://{addr}/api/v1/sql");
        println!(
            "  try:     curl -s {scheme}://{addr}/api/v1/sql -H 'Content-Type: application/json' -d '{{\"sql\": \"SELECT src_app, dst_app, sum(bytes) AS bytes FROM flows_1m GROUP BY 1, 2 ORDER BY bytes DESC LIMIT 10\"}}'"
        );
        println!("  metrics: {scheme}://{addr}/metrics");
        println!("  data:    {}", config.data_dir.display());
        println!("Ctrl-C to stop.");
        let duration = Duration::from_secs(args.duration_secs.unwrap_or(u64::MAX / 4));
        tokio::select! {
            served = trawl_server::serve(listener, state.clone()) => served?,
            _ = setup::stop_signal() => setup::exit_on_second_signal(),
            () = tokio::time::sleep(duration) => {}
        }
        anyhow::Ok(())
    })?;
    stop.store(true, Ordering::Relaxed);
    let _ = generator.join();
    drop(runtime);
    drop(state);
    running.stop()?;
    Ok(ExitCode::SUCCESS)
}

/// Ticks the estate: as fast as it goes while behind the wall clock
/// (backfill), then once a second. Events go to the index first (and
/// vouch for metadata up to the tick), then each log group's lines.
fn feed(mut estate: Estate, pipeline: &Pipeline, stop: &AtomicBool) {
    let mut tick = TickOutput::default();
    let header = estate.format().header_line();
    let mut payload = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if estate.now() > now_secs() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        tick.clear();
        estate.tick(&mut tick);
        pipeline.apply_events(&tick.events, Some(estate.now()));
        for (group, lines) in tick.lines.iter().enumerate().filter(|(_, l)| !l.is_empty()) {
            let group = LogGroup::of_index(group);
            payload.clear();
            payload.extend_from_slice(header.as_bytes());
            payload.push(b'\n');
            payload.extend_from_slice(lines);
            let source = format!("demo/{}/{}", group.account_id(), group.region_name());
            if let Err(error) = pipeline.push(&source, &payload) {
                eprintln!("trawl demo: {source}: {error}");
            }
        }
    }
}
