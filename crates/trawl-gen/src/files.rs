//! Writing an estate to disk as AWS delivers flow logs to S3:
//!
//! ```text
//! DIR/AWSLogs/{account}/vpcflowlogs/{region}/{yyyy}/{mm}/{dd}/
//!     {account}_vpcflowlogs_{region}_fl-{id}_{yyyymmddTHHmmZ}_{hash}.log.gz
//! DIR/metadata.jsonl      every metadata event, in time order
//! DIR/ip-ranges.json      AWS's ranges for the services the estate calls
//! DIR/truth.json          what was written (see [`crate::Truth`])
//! ```
//!
//! One file per account, region and 5 minutes of record `start` (a header
//! line first), or all in `DIR` with `flat`. Each file is written as
//! `NAME.tmp` and renamed when complete, so a reader following the
//! directory never sees half a file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::estate::{Estate, EstateConfig, LogGroup, TickOutput};

/// Seconds of records per file, as S3 delivery does.
pub const FILE_WINDOW_SECS: i64 = 300;

/// Why writing failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// What [`write_estate`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilesReport {
    /// Flow-log files.
    pub files: usize,
    /// Records in them.
    pub records: u64,
    /// Metadata events.
    pub events: u64,
}

/// Layout options of [`write_estate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Compress with gzip (`.log.gz`) or not (`.log`).
    pub gzip: bool,
    /// All files directly in the directory instead of the S3 layout.
    pub flat: bool,
}

struct OpenFile {
    final_path: PathBuf,
    tmp_path: PathBuf,
    out: Box<dyn Write>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Simulates `duration_secs` of `config`'s estate and writes it under `dir`.
pub fn write_estate(
    config: EstateConfig,
    duration_secs: u32,
    dir: &Path,
    layout: Layout,
) -> Result<(Estate, FilesReport), WriteError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut estate = Estate::new(config);
    let header = estate.format().header_line();
    let metadata_path = dir.join("metadata.jsonl");
    let mut metadata =
        BufWriter::new(File::create(&metadata_path).map_err(io_error(&metadata_path))?);
    let mut open: Vec<Option<OpenFile>> = (0..LogGroup::COUNT).map(|_| None).collect();
    let mut report = FilesReport::default();
    let mut out = TickOutput::default();
    let mut window = estate.now().div_euclid(FILE_WINDOW_SECS);
    for _ in 0..duration_secs {
        if estate.now().div_euclid(FILE_WINDOW_SECS) != window {
            report.files += close_all(&mut open)?;
            window = estate.now().div_euclid(FILE_WINDOW_SECS);
        }
        out.clear();
        estate.tick(&mut out);
        for event in &out.events {
            serde_json::to_writer(&mut metadata, event)
                .map_err(|e| io_error(&metadata_path)(e.into()))?;
            metadata
                .write_all(b"\n")
                .map_err(io_error(&metadata_path))?;
        }
        report.events += out.events.len() as u64;
        report.records += out.records;
        for (group, lines) in out.lines.iter().enumerate().filter(|(_, l)| !l.is_empty()) {
            let group = LogGroup::of_index(group);
            let file = match &mut open[group.index()] {
                Some(file) => file,
                slot => {
                    let end = (window + 1) * FILE_WINDOW_SECS;
                    let file = create_file(dir, group, end, layout, &header)?;
                    slot.insert(file)
                }
            };
            file.out
                .write_all(lines)
                .map_err(io_error(&file.tmp_path))?;
        }
    }
    report.files += close_all(&mut open)?;
    metadata.flush().map_err(io_error(&metadata_path))?;
    let ranges = dir.join("ip-ranges.json");
    std::fs::write(&ranges, estate.aws_ip_ranges_json()).map_err(io_error(&ranges))?;
    let truth_path = dir.join("truth.json");
    let truth =
        serde_json::to_vec_pretty(&estate.truth()).map_err(|e| io_error(&truth_path)(e.into()))?;
    std::fs::write(&truth_path, truth).map_err(io_error(&truth_path))?;
    Ok((estate, report))
}

/// The S3 object name of `group`'s file for the window ending at `end`.
pub fn s3_name(group: LogGroup, end: i64, gzip: bool) -> (PathBuf, String) {
    let time = jiff::Timestamp::from_second(end).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let (account, region) = (group.account_id(), group.region_name());
    let dir = PathBuf::from(format!(
        "AWSLogs/{account}/vpcflowlogs/{region}/{}",
        time.strftime("%Y/%m/%d")
    ));
    let hash =
        (end as u64).wrapping_mul(0x9e37_79b9) ^ (group.account as u64) << 8 ^ group.region as u64;
    let name = format!(
        "{account}_vpcflowlogs_{region}_fl-0{:016x}_{}_{:08x}.log{}",
        group.account * 3 + group.region,
        time.strftime("%Y%m%dT%H%MZ"),
        hash as u32,
        if gzip { ".gz" } else { "" }
    );
    (dir, name)
}

fn create_file(
    dir: &Path,
    group: LogGroup,
    end: i64,
    layout: Layout,
    header: &str,
) -> Result<OpenFile, WriteError> {
    let (sub, name) = s3_name(group, end, layout.gzip);
    let parent = if layout.flat {
        dir.to_path_buf()
    } else {
        dir.join(sub)
    };
    std::fs::create_dir_all(&parent).map_err(io_error(&parent))?;
    let final_path = parent.join(&name);
    let tmp_path = parent.join(format!("{name}.tmp"));
    let file = BufWriter::with_capacity(
        1 << 20,
        File::create(&tmp_path).map_err(io_error(&tmp_path))?,
    );
    let mut out: Box<dyn Write> = if layout.gzip {
        Box::new(GzEncoder::new(file, Compression::fast()))
    } else {
        Box::new(file)
    };
    out.write_all(header.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .map_err(io_error(&tmp_path))?;
    Ok(OpenFile {
        final_path,
        tmp_path,
        out,
    })
}

fn close_all(open: &mut [Option<OpenFile>]) -> Result<usize, WriteError> {
    let mut closed = 0;
    for slot in open.iter_mut() {
        if let Some(mut file) = slot.take() {
            file.out.flush().map_err(io_error(&file.tmp_path))?;
            drop(file.out);
            std::fs::rename(&file.tmp_path, &file.final_path)
                .map_err(io_error(&file.final_path))?;
            closed += 1;
        }
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_s3_layout_with_headers_and_truth() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = EstateConfig {
            apps: 30,
            records_per_sec: 200,
            ..EstateConfig::default()
        };
        let layout = Layout {
            gzip: true,
            flat: false,
        };
        let (estate, report) = write_estate(config, 600, dir.path(), layout).expect("written");
        assert_eq!(report.records, estate.truth().records);
        // 2 windows × the groups that had traffic.
        assert!(
            report.files >= 4 && report.files <= 2 * LogGroup::COUNT,
            "{report:?}"
        );
        let (sub, name) = s3_name(
            LogGroup {
                account: 0,
                region: 0,
            },
            1_795_305_900,
            true,
        );
        assert_eq!(
            sub,
            Path::new("AWSLogs/123456789012/vpcflowlogs/us-east-1/2026/11/22")
        );
        assert!(
            name.starts_with("123456789012_vpcflowlogs_us-east-1_fl-"),
            "{name}"
        );
        assert!(
            name.ends_with(".log.gz") && name.contains("_20261122T0005Z_"),
            "{name}"
        );
        for file in ["metadata.jsonl", "ip-ranges.json", "truth.json"] {
            assert!(dir.path().join(file).exists(), "{file}");
        }
    }
}
