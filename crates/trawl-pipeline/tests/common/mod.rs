//! Helpers shared by the pipeline's integration tests: flow-log text whose
//! records carry known bytes, a pipeline over a data directory, and the
//! store's sums.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use arrow::array::AsArray;
use arrow::datatypes::UInt64Type;
use trawl_attrib::AttributionIndex;
use trawl_pipeline::{Pipeline, PipelineConfig};
use trawl_store::{SharedStore, SqlEngine, Store, StoreConfig};

static SERIAL: Mutex<()> = Mutex::new(());

/// Held by tests that change process-wide state (limits): one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A flow-log file of `n` records whose bytes are `base`, `base + 1`, …
pub fn flows(n: u64, base: u64) -> String {
    let mut text = String::from(
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "2 123456789012 eni-1 8.8.8.8 1.1.1.1 443 50000 6 1 {} {} {} ACCEPT OK\n",
            base + i,
            1_790_000_000 + i,
            1_790_000_060 + i
        ));
    }
    text
}

/// The bytes of [`flows`]`(n, base)`.
pub fn bytes_of(n: u64, base: u64) -> u64 {
    (0..n).map(|i| base + i).sum()
}

/// Flows and bytes in `store` (sealed and open).
pub fn sums(store: SharedStore) -> (u64, u64) {
    let engine = SqlEngine::new(store, None).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sql = "SELECT CAST(coalesce(sum(flows),0) AS BIGINT UNSIGNED), CAST(coalesce(sum(bytes),0) AS BIGINT UNSIGNED) FROM flows_1m";
    let result = runtime.block_on(engine.query(sql)).unwrap();
    let batch = &result.batches[0];
    (
        batch.column(0).as_primitive::<UInt64Type>().value(0),
        batch.column(1).as_primitive::<UInt64Type>().value(0),
    )
}

/// A pipeline over `data` with one worker, no hold-back, and
/// `queued_jobs_max` jobs queued at most.
pub fn file_pipeline(data: &Path, queued_jobs_max: usize) -> Pipeline {
    let store = Store::open(StoreConfig::new(data)).unwrap();
    let config = PipelineConfig {
        hold_secs: 0,
        workers: 1,
        queued_jobs_max,
        ..PipelineConfig::default()
    };
    Pipeline::start(config, store, AttributionIndex::default()).unwrap()
}

/// A pipeline over `data` with no hold-back following `dir`, listed every
/// `poll_interval_ms`; returns once `flows` records have been added.
pub fn following_pipeline(data: &Path, dir: &Path, poll_interval_ms: u64, flows: u64) -> Pipeline {
    let store = Store::open(StoreConfig::new(data)).unwrap();
    let config = PipelineConfig {
        hold_secs: 0,
        poll_interval_ms,
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::start(config, store, AttributionIndex::default()).unwrap();
    pipeline.follow_dir(dir.to_path_buf()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sums(pipeline.store()).0 < flows && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        sums(pipeline.store()).0,
        flows,
        "the first listing read the files"
    );
    pipeline
}

/// `root/parts…`, created.
pub fn mkdirs(root: &Path, parts: &[&str]) -> PathBuf {
    let dir = parts.iter().fold(root.to_path_buf(), |d, p| d.join(p));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
