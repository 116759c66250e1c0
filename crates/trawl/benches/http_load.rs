//! HTTP load on loopback, release build: one client pushes flow payloads
//! while four send SQL to a `trawl run` child; prints pushed records/s,
//! SQL p50/p99 latency and how many records were lost (must be 0).
//! `cargo bench -p trawl --bench http_load`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

#[path = "../tests/common/mod.rs"]
mod common;

use common::load::{LoadPlan, run};
use common::{Server, path};

fn main() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&[
        "run",
        "--data-dir",
        path(data.path()),
        "--listen",
        "127.0.0.1:0",
    ]);
    let plan = LoadPlan {
        pushes: 400,
        lines_per_push: 2_500,
        sql_clients: 4,
        queries_per_client: 250,
        deadline: Duration::from_secs(600),
    };
    let report = run(&server, plan);
    println!("http_load: {}", report.summary());
    assert_eq!(report.records_stored, report.records_pushed, "records lost");
}
