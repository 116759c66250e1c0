//! Which file is which (issue 13 #10): files are known by their path
//! relative to the watched directory and by their first bytes, so a moved
//! directory or file is not read again, a file replaced under a known name
//! is read from its start, and positions of files that are gone and read
//! to their end leave the manifest.
#![allow(missing_docs, clippy::unwrap_used)]

use crate::common::{bytes_of, file_pipeline, flows, following_pipeline, mkdirs, sums};

use std::path::Path;

use trawl_attrib::AttributionIndex;
use trawl_pipeline::{FilePosition, Pipeline, PipelineConfig, PipelineError};
use trawl_store::{Store, StoreConfig};

/// Runs a pipeline over `dir` once (as `trawl run --once` does), seals,
/// and returns the store's sums and file positions.
fn read_dir_once(data: &Path, dir: &Path) -> ((u64, u64), Vec<String>) {
    let pipeline = file_pipeline(data, 16);
    pipeline.add_dir(dir).unwrap();
    pipeline.wait_idle();
    let sums = sums(pipeline.store());
    pipeline.seal().unwrap();
    let keys = pipeline
        .store()
        .read()
        .unwrap()
        .positions()
        .keys()
        .cloned()
        .collect();
    pipeline.shutdown().unwrap();
    (sums, keys)
}

#[test]
fn moving_the_flows_directory_reads_nothing_again() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let old = mkdirs(root.path(), &["old-mount", "flows"]);
    std::fs::write(old.join("a.log"), flows(20, 100)).unwrap();
    let (first, keys) = read_dir_once(data.path(), &old);
    assert_eq!(first, (20, bytes_of(20, 100)));
    assert_eq!(
        keys,
        ["file:flows/a.log"],
        "named relative to the directory"
    );
    // A new mount path (the directory moved), and one more file in it.
    let new = mkdirs(root.path(), &["new-mount"]).join("flows");
    std::fs::rename(&old, &new).unwrap();
    std::fs::write(new.join("b.log"), flows(5, 1000)).unwrap();
    let (second, _) = read_dir_once(data.path(), &new);
    assert_eq!(second, (25, bytes_of(20, 100) + bytes_of(5, 1000)));
}

#[test]
fn a_file_moved_inside_the_directory_is_not_read_again() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = mkdirs(root.path(), &["flows"]);
    std::fs::write(dir.join("a.log"), flows(20, 100)).unwrap();
    let b = flows(30, 500);
    let half = b[..b.len() / 2].rfind('\n').unwrap() + 1;
    std::fs::write(dir.join("b.log"), &b[..half]).unwrap();
    read_dir_once(data.path(), &dir);
    // a.log moves into done/; b.log, read to its end, moves and grows.
    std::fs::create_dir(dir.join("done")).unwrap();
    std::fs::rename(dir.join("a.log"), dir.join("done/a.log")).unwrap();
    std::fs::remove_file(dir.join("b.log")).unwrap();
    std::fs::write(dir.join("done/b.log"), flows(30, 500)).unwrap();
    let (sums, keys) = read_dir_once(data.path(), &dir);
    assert_eq!(sums, (50, bytes_of(20, 100) + bytes_of(30, 500)));
    assert_eq!(keys, ["file:flows/done/a.log", "file:flows/done/b.log"]);
}

#[test]
fn a_file_replaced_under_the_same_name_is_read_from_its_start() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = mkdirs(root.path(), &["flows"]);
    let first = flows(20, 100);
    std::fs::write(dir.join("a.log"), &first).unwrap();
    read_dir_once(data.path(), &dir);
    // The same size, other records: was skipped (same size = complete).
    let same_size = flows(20, 200);
    assert_eq!(same_size.len(), first.len());
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(dir.join("a.log"), &same_size).unwrap();
    let (sums, _) = read_dir_once(data.path(), &dir);
    assert_eq!(sums, (40, bytes_of(20, 100) + bytes_of(20, 200)));
    // Longer, other records: was resumed at the old offset.
    std::fs::write(dir.join("a.log"), flows(30, 3000)).unwrap();
    let (sums, _) = read_dir_once(data.path(), &dir);
    assert_eq!(sums.0, 70);
    // Shorter: was recorded complete, nothing read.
    std::fs::write(dir.join("a.log"), flows(3, 9000)).unwrap();
    let (sums, _) = read_dir_once(data.path(), &dir);
    assert_eq!(sums.0, 73);
}

#[test]
fn positions_of_files_gone_and_read_are_pruned() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = mkdirs(root.path(), &["flows"]);
    for i in 0..5 {
        std::fs::write(dir.join(format!("{i}.log")), flows(3, 100 * i)).unwrap();
    }
    let (_, keys) = read_dir_once(data.path(), &dir);
    assert_eq!(keys.len(), 5);
    for i in 0..4 {
        std::fs::remove_file(dir.join(format!("{i}.log"))).unwrap();
    }
    let pipeline = file_pipeline(data.path(), 16);
    let positions =
        |pipeline: &Pipeline| pipeline.store().read().unwrap().pending_positions().len();
    // Missing from two listings: kept (the file may be moving to another
    // watched directory, listed after this one).
    for _ in 0..2 {
        pipeline.add_dir(&dir).unwrap();
        pipeline.wait_idle();
    }
    assert_eq!(positions(&pipeline), 5);
    pipeline.add_dir(&dir).unwrap();
    pipeline.wait_idle();
    let keys: Vec<String> = pipeline
        .store()
        .read()
        .unwrap()
        .pending_positions()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["file:flows/4.log"]);
    assert_eq!(sums(pipeline.store()).0, 15, "nothing lost from the store");
    pipeline.shutdown().unwrap();
}

#[test]
fn a_position_kept_under_the_absolute_path_is_taken_over() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = mkdirs(root.path(), &["flows"]);
    let path = dir.join("a.log");
    std::fs::write(&path, flows(20, 100)).unwrap();
    // As an older trawl left it: read to its end, keyed by absolute path.
    let absolute = std::fs::canonicalize(&path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    {
        let mut store = Store::open(StoreConfig::new(data.path())).unwrap();
        let old = FilePosition {
            offset: size,
            size: Some(size),
            ..FilePosition::default()
        };
        let index = AttributionIndex::default();
        let key = FilePosition::key(&absolute.to_string_lossy());
        store
            .add_batch(&[], index.workloads(), &[(&key, &old.encode())])
            .unwrap();
        store.seal().unwrap();
    }
    let (sums, keys) = read_dir_once(data.path(), &dir);
    assert_eq!(sums, (0, 0), "not read again");
    assert_eq!(keys, ["file:flows/a.log"]);
}

#[test]
fn two_watched_directories_with_the_same_name_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let a = mkdirs(root.path(), &["a", "flows"]);
    let b = mkdirs(root.path(), &["b", "flows"]);
    let pipeline = file_pipeline(data.path(), 16);
    pipeline.add_dir(&a).unwrap();
    let refused = pipeline.add_dir(&b).unwrap_err();
    assert!(
        matches!(refused, PipelineError::DirLabel { .. }),
        "{refused}"
    );
    pipeline.shutdown().unwrap();
}

/// A gzip file that never completes (a writer that died mid-file) was
/// decompressed from its start at every poll, and its error printed each
/// time: now it is retried with backoff while it is unchanged, and again
/// at once when it changes.
#[test]
fn a_gzip_file_that_never_completes_is_retried_with_backoff() {
    use std::io::Write;
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = mkdirs(root.path(), &["flows"]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(flows(200, 100).as_bytes()).unwrap();
    let whole = gz.finish().unwrap();
    let cut = &whole[..whole.len() * 2 / 3];
    std::fs::write(dir.join("cut.log.gz"), cut).unwrap();
    let store = Store::open(StoreConfig::new(data.path())).unwrap();
    let config = PipelineConfig {
        hold_secs: 0,
        workers: 1,
        poll_interval_ms: 10,
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::start(config, store, AttributionIndex::default()).unwrap();
    pipeline.follow_dir(dir.clone()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    let errors = || {
        pipeline
            .stats()
            .file_errors
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(errors(), 1, "tried once, then waits (80 polls)");
    // It changes (here: completed): read again at the next poll.
    std::fs::write(dir.join("cut.log.gz"), &whole).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    pipeline.wait_idle();
    assert_eq!(errors(), 1);
    assert_eq!(sums(pipeline.store()).0, 200, "every record once");
    pipeline.shutdown().unwrap();
}

/// One CloudWatch Logs subscription payload of `n` events, gzip'd: a
/// record as Firehose writes it to S3 (an object is such records one after
/// the other).
fn cloudwatch_member(n: u64, base: u64) -> Vec<u8> {
    use std::io::Write;
    let events: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"id":"{i}","timestamp":1790000000000,"message":"2 123456789012 eni-1 8.8.8.8 1.1.1.1 443 50000 6 1 {} 1790000000 1790000060 ACCEPT OK"}}"#,
                base + i
            )
        })
        .collect();
    let json = format!(
        r#"{{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"flows","logStream":"eni-1-all","subscriptionFilters":["all"],"logEvents":[{}]}}"#,
        events.join(",")
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(json.as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// Issue 13 #12 (files). A Firehose → S3 object of CloudWatch Logs
/// payloads in a flows directory was one bad line; now its records are
/// read, once, and a file that grows by another payload adds only it.
#[test]
fn a_file_of_cloudwatch_envelopes_in_a_directory_is_read_once() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = mkdirs(root.path(), &["flows"]);
    let path = dir.join("firehose-1.gz");
    let mut object = cloudwatch_member(3, 100);
    object.extend(cloudwatch_member(2, 200));
    std::fs::write(&path, &object).unwrap();
    let pipeline = file_pipeline(data.path(), 16);
    pipeline.add_dir(&dir).unwrap();
    pipeline.wait_idle();
    assert_eq!(
        sums(pipeline.store()),
        (5, bytes_of(3, 100) + bytes_of(2, 200))
    );
    assert_eq!(pipeline.stats().decode_errors_total(), 0);
    pipeline.add_dir(&dir).unwrap();
    pipeline.wait_idle();
    assert_eq!(sums(pipeline.store()).0, 5, "complete: not read again");
    object.extend(cloudwatch_member(4, 300));
    std::fs::write(&path, &object).unwrap();
    pipeline.add_dir(&dir).unwrap();
    pipeline.wait_idle();
    let all = bytes_of(3, 100) + bytes_of(2, 200) + bytes_of(4, 300);
    assert_eq!(
        sums(pipeline.store()),
        (9, all),
        "only the new payload added"
    );
    pipeline.shutdown().unwrap();
    // After a restart, resumed from the sealed position: nothing doubled.
    let (again, _) = read_dir_once(data.path(), &dir);
    assert_eq!(again, (9, all));
}

/// Shutdown waited out the background threads' intervals: the ticker's
/// 200 ms sleep held every `trawl ingest` up to 200 ms after its last flow
/// (a tenth of a 2 s ingest, both cores idle), and a follow thread slept
/// its whole `poll_interval_ms`. Now shutdown wakes them: with a one-minute
/// poll, the followed file is read and sealed well within the minute.
#[test]
fn shutdown_does_not_wait_out_the_poll_interval() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = mkdirs(root.path(), &["flows"]);
    std::fs::write(dir.join("a.log"), flows(50, 100)).unwrap();
    let pipeline = following_pipeline(data.path(), &dir, 60_000, 50);
    let store = pipeline.store();
    let started = std::time::Instant::now();
    pipeline.shutdown().unwrap();
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(20),
        "shutdown took {waited:?}: it waited out the 60 s poll"
    );
    assert_eq!(sums(store).0, 50, "every record once, sealed");
}
