//! Second review of the file-identity / push-log change (f5e002c..8d33efd).
//! Each test states the behaviour that should hold; each fails on the
//! reviewed commit. Tests that change process-wide limits take `SERIAL`.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{bytes_of, file_pipeline, flows, mkdirs, serial, sums};

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use trawl_attrib::AttributionIndex;
use trawl_pipeline::push_log::{PUSH_LOG_KEY, PushLog, PushLogError, PushLogLimits, PushPosition};
use trawl_pipeline::source::{Envelope, push_durably, replay_push_log};
use trawl_pipeline::worker::{Context, seal};
use trawl_pipeline::{Pipeline, PipelineConfig, PipelineError};
use trawl_store::{Store, StoreConfig};

/// A context over `data` with a push log of `limits` (as Pipeline::start
/// builds it, but with the limits a test needs).
fn push_context(data: &Path, limits: PushLogLimits) -> Context {
    let store = Store::open(StoreConfig::new(data)).unwrap();
    let next_seq_min = store
        .positions()
        .get(PUSH_LOG_KEY)
        .and_then(|v| PushPosition::decode(v))
        .map_or(0, |p| p.seq + 1);
    let log = PushLog::open(&data.join("push-log"), limits, next_seq_min).unwrap();
    let config = PipelineConfig {
        workers: 1,
        hold_secs: 0,
        ..PipelineConfig::default()
    };
    Context::new(config, store, AttributionIndex::default(), Some(log), None)
}

/// Restarts after a crash (the old context dropped unsealed): replays the
/// log and returns the store's sums.
fn restart_and_sum(data: &Path, limits: PushLogLimits) -> (u64, u64) {
    let cx = push_context(data, limits);
    replay_push_log(&cx).unwrap();
    sums(cx.store.clone())
}

// ---------------------------------------------------------------- push log

/// push_log.rs:321-347 (`writable`): when opening the next segment fails
/// (here: the name is taken by a directory; in life ENOSPC, EMFILE, a
/// failed directory fsync), the new `Segment` is already in the list but
/// `appender.file` is still the old file and `broken` was reset. The next
/// records are written into the OLD file while being accounted to the NEW
/// segment; a seal then deletes the old file (its recorded last_seq is old)
/// and with it every acknowledged push written there since. A crash before
/// the next seal loses them.
#[test]
fn a_segment_that_could_not_be_opened_sends_acknowledged_pushes_into_a_deleted_file() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let limits = PushLogLimits {
        // Two records of 311 bytes fill a segment.
        segment_bytes_max: 600,
        ..PushLogLimits::default()
    };
    let cx = push_context(data.path(), limits);
    let p = |n, base| flows(n, base);
    push_durably(&cx, "http", p(2, 100).as_bytes(), Envelope::Any).unwrap(); // seq 0
    push_durably(&cx, "http", p(2, 200).as_bytes(), Envelope::Any).unwrap(); // seq 1: segment full
    let log = cx.push_log.as_ref().unwrap();
    assert_eq!(log.segment_seqs(), [0]);
    let next = data.path().join("push-log/push-00000000000000000002.log");
    std::fs::create_dir(&next).unwrap();
    let refused = push_durably(&cx, "http", p(2, 300).as_bytes(), Envelope::Any);
    assert!(
        matches!(refused, Err(PushLogError::Io { .. })),
        "{refused:?}"
    );
    std::fs::remove_dir(&next).unwrap();
    push_durably(&cx, "http", p(2, 400).as_bytes(), Envelope::Any).unwrap(); // acked
    let log = cx.push_log.as_ref().unwrap();
    // The failed segment's seq is never used again: the push went to a
    // segment of its own (it went into push-0.log, counted to push-2).
    assert_eq!(log.segment_seqs(), [0, 3]);
    assert!(
        data.path()
            .join("push-log/push-00000000000000000003.log")
            .exists()
    );
    seal(&cx).unwrap(); // covers the push; deletes push-0
    push_durably(&cx, "http", p(2, 500).as_bytes(), Envelope::Any).unwrap(); // acked
    drop(cx); // kill -9
    let after = restart_and_sum(data.path(), limits);
    let acked = bytes_of(2, 100) + bytes_of(2, 200) + bytes_of(2, 400) + bytes_of(2, 500);
    assert_eq!(after, (8, acked), "every acknowledged push after a restart");
}

/// Sets this process's file size limit (RLIMIT_FSIZE: writes past it
/// fail with EFBIG, as on a full disk; a write across it is short).
fn file_size_limit(bytes: Option<u64>) {
    let limit = bytes.map_or("unlimited".to_string(), |b| b.to_string());
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--fsize={limit}:unlimited"))
        .status()
        .unwrap();
    assert!(status.success());
}

/// Runs test `name` again in a child whose SIGXFSZ is ignored (inherited
/// through exec), so that writes past the file size limit fail instead
/// of killing the process. Returns true in the child.
fn in_child_ignoring_sigxfsz(name: &str) -> bool {
    if std::env::var_os("REVIEW2_CHILD").is_some() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; exec \"$0\" --exact \"$1\" --test-threads=1 --nocapture")
        .arg(exe)
        .arg(name)
        .env("REVIEW2_CHILD", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child test failed:\n{text}");
    false
}

/// push_log.rs:292-299 and 326-333: a failed write marks the log broken
/// and the next record starts a segment named after ITS seq, which is the
/// seq of the failed record. Two failures in a row (disk full for a
/// moment: the first fails on the old segment, the second writes part of a
/// record into `push-N.log`) make the third append reopen the SAME
/// `push-N.log` in append mode, behind the torn bytes. Records written
/// there are acknowledged; at the next open `read_segment` stops at the
/// torn bytes and `cut_torn_tail` cuts them all off.
#[test]
fn two_failed_writes_in_a_row_hide_acknowledged_pushes_behind_a_torn_record() {
    if !in_child_ignoring_sigxfsz(
        "two_failed_writes_in_a_row_hide_acknowledged_pushes_behind_a_torn_record",
    ) {
        return;
    }
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let limits = PushLogLimits::default();
    let cx = push_context(data.path(), limits);
    push_durably(&cx, "http", flows(2, 100).as_bytes(), Envelope::Any).unwrap(); // seq 0
    // The disk is full: writes past 16 bytes of any file fail.
    file_size_limit(Some(16));
    let first = push_durably(&cx, "http", flows(2, 200).as_bytes(), Envelope::Any);
    let second = push_durably(&cx, "http", flows(2, 300).as_bytes(), Envelope::Any);
    file_size_limit(None);
    assert!(first.is_err() && second.is_err(), "{first:?} {second:?}");
    // Space again: these are acknowledged.
    push_durably(&cx, "http", flows(2, 400).as_bytes(), Envelope::Any).unwrap();
    push_durably(&cx, "http", flows(2, 500).as_bytes(), Envelope::Any).unwrap();
    drop(cx); // kill -9
    let after = restart_and_sum(data.path(), limits);
    let acked = bytes_of(2, 100) + bytes_of(2, 400) + bytes_of(2, 500);
    assert_eq!(after, (6, acked), "every acknowledged push after a restart");
}

/// push_log.rs:276 and 395-407 with pipeline.rs:122-125: the newest segment
/// is never deleted and a segment is 64 MiB whatever `push_log_bytes_max`
/// says. With `push_log_bytes_max` below a segment, once the one segment
/// holds that much every push is refused (503) for ever: no seal frees it
/// (and `seal_wanted` asks for a seal every 200 ms for ever).
#[test]
fn a_push_log_bound_below_a_segment_refuses_pushes_for_ever() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(data.path())).unwrap();
    let config = PipelineConfig {
        workers: 1,
        hold_secs: 0,
        push_log_bytes_max: 64 << 10,
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::start(config, store, AttributionIndex::default()).unwrap();
    let payload = flows(20, 1);
    let mut accepted = 0;
    while pipeline.push("http", payload.as_bytes()).is_ok() {
        accepted += 1;
        assert!(accepted < 10_000);
    }
    pipeline.seal().unwrap();
    let after_seal = pipeline.push("http", payload.as_bytes());
    assert!(
        after_seal.is_ok(),
        "after {accepted} pushes and a seal covering all of them: {after_seal:?}"
    );
    pipeline.shutdown().unwrap();
}

/// push_log.rs:210-215: the next seq is max(sealed.seq, last + 1). When the
/// store's sealed position names push N but the log does not hold N (a seal
/// published between the append and the group fsync, then a power loss;
/// or the push-log directory lost), the next push is given seq N AGAIN. The
/// store already says "push N through offset K", so after a crash the
/// replay skips the first K bytes of the new push N: acknowledged records
/// lost. The next seq must be at least sealed.seq + 1 when a position exists.
#[test]
fn a_sealed_push_seq_the_log_lost_is_handed_out_again_and_skipped_at_replay() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let limits = PushLogLimits::default();
    let cx = push_context(data.path(), limits);
    push_durably(&cx, "http", flows(5, 100).as_bytes(), Envelope::Any).unwrap(); // seq 0
    seal(&cx).unwrap(); // manifest: push-log = {0, end of push 0}
    drop(cx);
    // The record never reached the disk (power loss before the fsync, the
    // seal's manifest did): the segment is empty.
    let segment = data.path().join("push-log/push-00000000000000000000.log");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(0)
        .unwrap();
    let cx = push_context(data.path(), limits);
    replay_push_log(&cx).unwrap();
    push_durably(&cx, "http", flows(8, 1000).as_bytes(), Envelope::Any).unwrap(); // acked
    drop(cx); // kill -9
    let after = restart_and_sum(data.path(), limits);
    assert_eq!(
        after,
        (13, bytes_of(5, 100) + bytes_of(8, 1000)),
        "the sealed push and the acknowledged one"
    );
}

/// routes.rs:416-419 with source.rs:452-470: a body of plain record lines
/// posted to /firehose is decoded, logged, added to the store and fsynced,
/// and only then answered 400 "not a Firehose request". The sender is told
/// the data was refused while it is kept (and replayed after a crash); a
/// sender that resends it elsewhere doubles it.
#[test]
fn the_firehose_400_answer_comes_after_the_records_were_kept() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(data.path())).unwrap();
    let config = PipelineConfig {
        workers: 1,
        hold_secs: 0,
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::start(config, store, AttributionIndex::default()).unwrap();
    let report = pipeline.push_firehose(flows(4, 10).as_bytes()).unwrap();
    // What routes.rs's firehose handler does with this report:
    let answered_400 = report.summary.json_envelopes == 0;
    let kept = sums(pipeline.store()).0;
    assert!(
        !(answered_400 && kept > 0),
        "answered 400 yet {kept} records kept ({report:?})"
    );
    pipeline.shutdown().unwrap();
}

// ---------------------------------------------------------------- feeder

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// feeder.rs:233-255 (prune) against feeder.rs:291-316 (gone_files): a
/// file read to its end moves from one watched directory to another. The
/// old directory's listing forgets its position (gone and complete) before
/// the new directory's listing looks for a gone file with its first bytes,
/// so it is read again. With two follow threads either order happens.
#[test]
fn a_file_moved_between_watched_directories_is_read_again_if_the_old_one_is_listed_first() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let incoming = mkdirs(root.path(), &["incoming"]);
    let archive = mkdirs(root.path(), &["archive"]);
    std::fs::write(incoming.join("x.log"), flows(20, 100)).unwrap();
    let pipeline = file_pipeline(data.path(), 16);
    pipeline.add_dir(&incoming).unwrap();
    pipeline.add_dir(&archive).unwrap();
    pipeline.wait_idle();
    std::fs::rename(incoming.join("x.log"), archive.join("x.log")).unwrap();
    pipeline.add_dir(&incoming).unwrap();
    pipeline.add_dir(&archive).unwrap();
    pipeline.wait_idle();
    let got = sums(pipeline.store());
    pipeline.shutdown().unwrap();
    assert_eq!(got, (20, bytes_of(20, 100)), "moved, not read again");
}

/// feeder.rs:301-304 (gone_files skips keys in flight) with the job's path
/// (feeder.rs:240): a file already queued (or being read) under its old
/// name when it is renamed. The listing that finds the new name does not
/// take the old position (its name is claimed), so the new name is read
/// from its start; the job under the old name then fails (not found) or
/// finishes. Everything read before under the old name is stored twice.
#[test]
fn a_file_renamed_while_its_job_is_queued_is_read_again_from_its_start() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = mkdirs(root.path(), &["flows"]);
    let x = dir.join("x.log");
    std::fs::write(&x, flows(20, 100)).unwrap();
    let pipeline = file_pipeline(data.path(), 16);
    pipeline.add_dir(&dir).unwrap();
    pipeline.wait_idle();
    // x.log grows; a large file ahead of it keeps the one worker busy, so
    // x.log's job waits in the queue while x.log is renamed. (A FIFO did
    // this before FIFOs were left out of listings.)
    std::fs::write(&x, flows(25, 100)).unwrap();
    std::fs::write(dir.join("a.log"), flows(60_000, 0)).unwrap();
    pipeline.add_dir(&dir).unwrap();
    std::fs::rename(&x, dir.join("y.log")).unwrap();
    pipeline.add_dir(&dir).unwrap();
    pipeline.wait_idle();
    let got = sums(pipeline.store());
    let big = (60_000, bytes_of(60_000, 0));
    pipeline.shutdown().unwrap();
    let got = (got.0 - big.0, got.1 - big.1);
    assert_eq!(got, (25, bytes_of(25, 100)), "each record once");
}

/// feeder.rs:403-411 (dir_key uses to_string_lossy): two names that are
/// not UTF-8 and differ only there map to one key. Each listing finds the
/// other file's position under "its" key, the fingerprint differs, and the
/// file is read from its start again: both files are stored again and
/// again, for ever in follow mode.
#[test]
fn two_names_that_are_not_utf8_share_a_key_and_are_read_again_and_again() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = mkdirs(root.path(), &["flows"]);
    std::fs::write(dir.join(OsStr::from_bytes(b"a\xfe.log")), flows(3, 100)).unwrap();
    std::fs::write(dir.join(OsStr::from_bytes(b"a\xff.log")), flows(4, 200)).unwrap();
    let pipeline = file_pipeline(data.path(), 16);
    for _ in 0..4 {
        pipeline.add_dir(&dir).unwrap();
        pipeline.wait_idle();
    }
    let got = sums(pipeline.store());
    pipeline.shutdown().unwrap();
    assert_eq!(got, (7, bytes_of(3, 100) + bytes_of(4, 200)), "each once");
}

/// feeder.rs:273-279 (find_moved opens every new file to read its head
/// whenever some position is of a gone file): a FIFO (or any file whose
/// open blocks) with a flow-log name in a watched directory blocks the
/// feeder in `open`, so nothing else in the directory is ever queued (in
/// follow mode: the follow thread hangs). Non-regular files should be
/// skipped by list_files (and opened O_NONBLOCK if at all).
#[test]
fn a_fifo_in_a_watched_directory_hangs_the_listing() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = mkdirs(root.path(), &["flows"]);
    std::fs::write(dir.join("old.log"), flows(3, 100)).unwrap();
    let pipeline = Arc::new(file_pipeline(data.path(), 16));
    pipeline.add_dir(&dir).unwrap();
    pipeline.wait_idle();
    std::fs::remove_file(dir.join("old.log")).unwrap();
    mkfifo(&dir.join("a.log"));
    std::fs::write(dir.join("b.log"), flows(2, 500)).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    {
        let (pipeline, dir) = (pipeline.clone(), dir.clone());
        std::thread::spawn(move || {
            let _ = pipeline.add_dir(&dir);
            let _ = done_tx.send(());
        });
    }
    let listed = done_rx.recv_timeout(Duration::from_secs(5)).is_ok();
    assert!(
        listed,
        "add_dir still blocked after 5 s (in open of the FIFO)"
    );
}

/// feeder.rs:177-187 with dir_key: a file under two watched directories
/// (one inside the other) has two names, `file:flows/sub/x.log` and
/// `file:sub/x.log`, and is read once under each. Before this change both
/// listings named it by its absolute path and read it once.
#[test]
fn a_file_under_two_nested_watched_directories_is_read_twice() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let outer = mkdirs(root.path(), &["flows"]);
    let inner = mkdirs(&outer, &["sub"]);
    std::fs::write(inner.join("x.log"), flows(10, 100)).unwrap();
    let pipeline = file_pipeline(data.path(), 16);
    pipeline.add_dir(&outer).unwrap();
    pipeline.wait_idle();
    let refused = pipeline.add_dir(&inner).unwrap_err();
    assert!(
        matches!(refused, PipelineError::NestedDirs { .. }),
        "{refused}"
    );
    pipeline.wait_idle();
    let got = sums(pipeline.store());
    pipeline.shutdown().unwrap();
    assert_eq!(got, (10, bytes_of(10, 100)), "read once");
}

/// feeder.rs:147-163 and 265-270: a file read as part of a directory, then
/// named on its own (`trawl ingest DIR/x.log`), is keyed by its absolute
/// path, finds no position (the legacy look-up only goes absolute ->
/// relative, and the relative one is not "gone"), and is read again.
#[test]
fn a_file_read_in_its_directory_then_named_on_its_own_is_read_again() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = mkdirs(root.path(), &["flows"]);
    std::fs::write(dir.join("x.log"), flows(10, 100)).unwrap();
    let pipeline = file_pipeline(data.path(), 16);
    pipeline.add_dir(&dir).unwrap();
    pipeline.wait_idle();
    pipeline.add_files(&[dir.join("x.log")]).unwrap();
    pipeline.wait_idle();
    let got = sums(pipeline.store());
    pipeline.shutdown().unwrap();
    assert_eq!(got, (10, bytes_of(10, 100)), "read once");
}

/// feeder.rs:215-217 (`?` on metadata, unchanged from before): one
/// dangling symlink (or a file deleted between listing and stat) with a
/// flow-log name ends the whole listing with an error; every file sorted
/// after it is never queued, and nothing is pruned, on every poll.
#[test]
fn a_dangling_symlink_stops_every_file_after_it_from_being_read() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = mkdirs(root.path(), &["flows"]);
    std::os::unix::fs::symlink(root.path().join("nowhere"), dir.join("a.log")).unwrap();
    std::fs::write(dir.join("b.log"), flows(10, 100)).unwrap();
    let pipeline = file_pipeline(data.path(), 16);
    let listed = pipeline.add_dir(&dir);
    pipeline.wait_idle();
    let got = sums(pipeline.store());
    pipeline.shutdown().unwrap();
    assert_eq!(got, (10, bytes_of(10, 100)), "b.log read ({listed:?})");
}
