//! Pipeline settings. Every field has a default and a line of docs; the
//! binary reads them from the `[pipeline]` table of `trawl.toml`.

use serde::Deserialize;

/// Longest `hold_secs` (a week): a flow held longer is never attributed
/// better, and a deadline past it overflowed the clock.
pub const HOLD_SECS_MAX: u64 = 7 * 86_400;

/// How the pipeline runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Decode and attribution workers (default: one per core).
    pub workers: usize,
    /// Records decoded, attributed and added to the store together.
    pub batch_records: usize,
    /// Decompressed text read from a file or stream per step (bytes).
    pub chunk_bytes: usize,
    /// Jobs (files, streams) queued for the workers before sources wait.
    pub queued_jobs_max: usize,
    /// Longest a flow whose address is unknown at its time, while metadata
    /// lags, is held for metadata to catch up (seconds; 0 = never hold).
    pub hold_secs: u64,
    /// Most flows held at once; past it the oldest is attributed at once.
    pub held_records_max: usize,
    /// Seal open buckets at least this often (seconds), so a restart
    /// replays at most this much input.
    pub seal_interval_secs: u64,
    /// Least time between two seals the watermark, the interval or the
    /// push log asks for (seconds, at most `seal_interval_secs`; memory
    /// pressure seals at once).
    pub seal_interval_min_secs: u64,
    /// Seal when open-bucket memory passes this share (percent) of the
    /// store's cap, before the store would seal by itself.
    pub seal_at_open_percent: u8,
    /// How often the index and store are maintained (compaction,
    /// retention, pruning) (seconds).
    pub maintain_interval_secs: u64,
    /// How often a followed directory is listed for new files (milliseconds).
    pub poll_interval_ms: u64,
    /// How long a followed file ending in a line without a newline must
    /// have been left unchanged before that line is read (seconds): a
    /// writer that pauses mid-line is not cut (read once, as by `ingest`
    /// or `--once`, the line is read at once).
    pub partial_line_wait_secs: u64,
    /// Keep pushed payloads (HTTP, Firehose) in a write-ahead log in the
    /// data directory (`push-log/`), synced before a push is answered, so
    /// that an acknowledged push survives a crash.
    pub push_log: bool,
    /// Most bytes the push log holds before a seal covers them; past it
    /// pushes are refused (503) until the next seal.
    pub push_log_bytes_max: u64,
    /// How often the attribution snapshot is saved while running (seconds;
    /// 0 = only at stop). Pushed metadata is logged until a snapshot
    /// covers it.
    pub snapshot_interval_secs: u64,
    /// Where the attribution snapshot is saved (set by the binary: the
    /// data directory's `attribution.snapshot`; none = not saved, and
    /// pushed metadata not logged).
    #[serde(skip)]
    pub snapshot_path: Option<std::path::PathBuf>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            batch_records: 1024,
            chunk_bytes: 4 << 20,
            queued_jobs_max: 16,
            hold_secs: 120,
            held_records_max: 1_000_000,
            seal_interval_secs: 300,
            seal_interval_min_secs: 5,
            seal_at_open_percent: 75,
            maintain_interval_secs: 10,
            poll_interval_ms: 1000,
            partial_line_wait_secs: 60,
            push_log: true,
            push_log_bytes_max: 4 << 30,
            snapshot_interval_secs: 300,
            snapshot_path: None,
        }
    }
}

impl PipelineConfig {
    /// Checks every setting against its bounds; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        let within = |name: &str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "pipeline.{name} = {value}: must be between {min} and {max}"
                ))
            }
        };
        within("workers", self.workers as u64, 1, 1024)?;
        within("batch_records", self.batch_records as u64, 1, 1 << 20)?;
        within("chunk_bytes", self.chunk_bytes as u64, 1, 1 << 30)?;
        within("queued_jobs_max", self.queued_jobs_max as u64, 1, 1 << 20)?;
        within("hold_secs", self.hold_secs, 0, HOLD_SECS_MAX)?;
        within("seal_interval_secs", self.seal_interval_secs, 1, 7 * 86_400)?;
        within(
            "seal_at_open_percent",
            u64::from(self.seal_at_open_percent),
            1,
            100,
        )?;
        within("poll_interval_ms", self.poll_interval_ms, 1, 3_600_000)?;
        within(
            "partial_line_wait_secs",
            self.partial_line_wait_secs,
            0,
            86_400,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_a_hold_past_a_week_is_refused_by_name() {
        assert_eq!(PipelineConfig::default().validate(), Ok(()));
        let config = PipelineConfig {
            hold_secs: u64::MAX,
            ..PipelineConfig::default()
        };
        let error = config.validate().unwrap_err();
        assert!(error.starts_with("pipeline.hold_secs = "), "{error}");
    }
}
