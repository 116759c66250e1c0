//! Review of d68ca02 (shutdown wakes the ticker and follow threads).
//!
//! The ticker and follow threads wait their intervals on
//! `woken.recv_timeout(interval)`, a channel whose only sender
//! (`Pipeline::stop_wake`) is dropped at shutdown, after `stop` is set.
//! The sender is a field of `Pipeline`: a pipeline dropped without
//! `shutdown` (an error path of `setup::start` or `trawl run` after the
//! pipeline started, a panic, an embedding or test that drops it)
//! disconnected the channel without setting `stop`, and both loops then
//! ran without any wait, for ever (the ticker taking the store and index
//! locks, a follow thread listing its directory). Now a closed channel
//! ends both threads.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{flows, following_pipeline, mkdirs, serial, sums};

/// CPU time (clock ticks, user + system) of this process's threads whose
/// name is `name`.
fn cpu_ticks_of(name: &str) -> (usize, u64) {
    let mut threads = 0;
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // Fields after "pid (comm) ": state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields[11].parse().unwrap();
        let stime: u64 = fields[12].parse().unwrap();
        threads += 1;
        ticks += utime + stime;
    }
    (threads, ticks)
}

/// A pipeline dropped without `shutdown` stops its ticker and follow
/// threads: they found the wake channel closed at once and spun (83 and
/// 100 ticks of CPU in 2.5 s in the review), and the follow thread (60 s
/// poll) listed its directory again within half a second.
#[test]
fn a_pipeline_dropped_without_shutdown_stops_its_background_threads() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = mkdirs(root.path(), &["flows"]);
    std::fs::write(dir.join("a.log"), flows(5, 100)).unwrap();
    let pipeline = following_pipeline(data.path(), &dir, 60_000, 5);
    let store = pipeline.store();
    assert_eq!(cpu_ticks_of("trawl-ticker").0, 1);
    assert_eq!(cpu_ticks_of("trawl-follow").0, 1);

    // Dropped, not shut down (what an error return after `setup::start`
    // or a panic does).
    drop(pipeline);
    let deadline = Instant::now() + Duration::from_secs(20);
    let running = || cpu_ticks_of("trawl-ticker").0 + cpu_ticks_of("trawl-follow").0;
    while running() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        running(),
        0,
        "the ticker and follow threads end with the pipeline"
    );

    // Nothing lists the directory any more: a file written now is not read.
    std::fs::write(dir.join("b.log"), flows(7, 500)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sums(store).0, 5, "no flow read after the drop");
}
