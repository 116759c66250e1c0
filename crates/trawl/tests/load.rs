//! SQL while ingesting over HTTP, bounded in count and time: no push is
//! lost or counted twice, and no query fails (`common/load.rs`; figures
//! come from the release bench `benches/http_load.rs`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

mod common;

use common::load::{LoadPlan, run};
use common::{Server, path};

#[test]
fn sql_while_pushing_loses_no_push_and_fails_no_query() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&[
        "run",
        "--data-dir",
        path(data.path()),
        "--listen",
        "127.0.0.1:0",
    ]);
    let plan = LoadPlan {
        pushes: 40,
        lines_per_push: 500,
        sql_clients: 3,
        queries_per_client: 20,
        deadline: Duration::from_secs(120),
    };
    let report = run(&server, plan);
    eprintln!("load: {}", report.summary());
    assert_eq!(
        report.records_stored,
        report.records_pushed,
        "{}",
        report.summary()
    );
    assert_eq!(report.sql_failures, 0, "{}", report.summary());
    assert_eq!(report.sql_ms.len(), 60);
}
