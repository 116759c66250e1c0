//! The running system through the binary: `trawl ingest` and `trawl
//! query` against the generator's truth; `kill -9` during `trawl run`,
//! then a restart, with every total equal to the input's; the HTTP API
//! (SQL in three formats, pushes, Firehose, metrics, health); `trawl demo`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use trawl_gen::files::Layout;
use trawl_gen::{EstateConfig, Truth, write_estate};

mod common;

use common::{Server, ok, path, trawl, wait_for};

fn estate(dir: &Path, records_per_sec: u32, secs: u32) -> Truth {
    let config = EstateConfig {
        apps: 30,
        records_per_sec,
        churn_per_hour: 10.0,
        ..EstateConfig::default()
    };
    write_estate(
        config,
        secs,
        dir,
        Layout {
            gzip: true,
            flat: false,
        },
    )
    .unwrap();
    serde_json::from_slice(&std::fs::read(dir.join("truth.json")).unwrap()).unwrap()
}

const TOTALS: &str =
    "SELECT sum(flows) AS flows, sum(bytes) AS bytes, sum(packets) AS packets FROM flows_1m";

fn totals_csv(truth: &Truth) -> String {
    format!(
        "flows,bytes,packets\n{},{},{}\n",
        truth.records, truth.bytes, truth.packets
    )
}

#[test]
fn ingest_then_query_equals_the_truth_and_ingesting_again_adds_nothing() {
    let inputs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let truth = estate(inputs.path(), 150, 600);
    let (metadata, ranges) = (
        inputs.path().join("metadata.jsonl"),
        inputs.path().join("ip-ranges.json"),
    );
    let ingest = [
        "ingest",
        "--data-dir",
        path(data.path()),
        "--metadata",
        path(&metadata),
        "--aws-ip-ranges",
        path(&ranges),
        path(inputs.path()),
    ];
    let files = trawl_pipeline::list_files(inputs.path()).unwrap().len();
    let first = ok(trawl(&ingest));
    assert!(
        first.starts_with(&format!("ingested {files} files (0 skipped")),
        "{first}"
    );
    let query = |sql: &str| query_csv(data.path(), sql);
    assert_eq!(query(TOTALS), totals_csv(&truth));
    let top = &truth.app_pairs.iter().max_by_key(|p| p.bytes).unwrap();
    let answer = query(
        "SELECT src_app, dst_app, sum(bytes) AS b FROM flows_1m GROUP BY 1, 2 ORDER BY b DESC LIMIT 1",
    );
    let expected = format!(
        "src_app,dst_app,b\n{},{},{}\n",
        top.src_app.as_deref().unwrap_or(""),
        top.dst_app.as_deref().unwrap_or(""),
        top.bytes
    );
    assert_eq!(answer, expected);
    let again = ok(trawl(&ingest));
    assert!(
        again.starts_with(&format!("ingested 0 files ({files} skipped")),
        "{again}"
    );
    assert_eq!(query(TOTALS), totals_csv(&truth));
    let json: Value =
        serde_json::from_str(&query_json(data.path(), "SELECT count(*) AS n FROM flows")).unwrap();
    assert_eq!(json, json!([{ "n": truth.records }]));
    let bad = trawl(&[
        "query",
        "--data-dir",
        path(data.path()),
        "SELECT nope FROM flows_1m",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nope"));
}

/// `trawl query --format csv` against a data directory.
fn query_csv(data: &Path, sql: &str) -> String {
    ok(trawl(&[
        "query",
        "--data-dir",
        path(data),
        "--format",
        "csv",
        sql,
    ]))
}

fn query_json(data: &Path, sql: &str) -> String {
    ok(trawl(&[
        "query",
        "--data-dir",
        path(data),
        "--format",
        "json",
        sql,
    ]))
}

#[test]
fn kill_9_during_run_then_restart_counts_every_flow_exactly_once() {
    let inputs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let truth = estate(inputs.path(), 200, 7200);
    let config = inputs.path().join("trawl.toml");
    std::fs::write(
        &config,
        "[pipeline]\nseal_interval_secs = 1\nchunk_bytes = 16384\nworkers = 1\n",
    )
    .unwrap();
    let metadata = inputs.path().join("metadata.jsonl");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--config",
            path(&config),
            "--data-dir",
            path(data.path()),
            "--flows-dir",
            path(inputs.path()),
            "--metadata",
            path(&metadata),
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let files = trawl_pipeline::list_files(inputs.path()).unwrap().len();
    let mut killed_midway = 0;
    for round in 0..3 {
        let args = run(&["--listen", "127.0.0.1:0"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut server = Server::start(&args);
        // Kill once a seal of this run has committed, unless nothing is left.
        let complete_files = || {
            let manifest = trawl_store::Manifest::load(data.path()).unwrap();
            manifest
                .positions
                .values()
                .filter(|v| v.contains("size"))
                .count()
        };
        wait_for("a seal", Duration::from_secs(120), || {
            server.metric("trawl_store_seals_total") >= 1 || complete_files() == files
        });
        std::thread::sleep(Duration::from_millis(50 * round));
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        let complete = complete_files();
        eprintln!("round {round}: killed with {complete} of {files} files complete");
        if complete < files {
            killed_midway += 1;
        }
    }
    assert!(
        killed_midway >= 1,
        "every kill came after the input was done: make it larger"
    );
    let args = run(&["--once"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(trawl(&args));
    let query = |sql: &str| query_csv(data.path(), sql);
    assert_eq!(query(TOTALS), totals_csv(&truth));
    assert_eq!(
        query("SELECT count(*) AS n FROM flows"),
        format!("n\n{}\n", truth.records)
    );
}

const LINES: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status
2 123456789012 eni-1 10.9.0.1 10.9.0.2 40000 443 6 10 1000 1795305600 1795305660 ACCEPT OK
2 123456789012 eni-1 10.9.0.2 10.9.0.1 443 40000 6 20 3000 1795305600 1795305660 ACCEPT OK
";

#[test]
fn the_http_api_answers_sql_pushes_firehose_metrics_and_health() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&[
        "run",
        "--data-dir",
        path(data.path()),
        "--listen",
        "127.0.0.1:0",
    ]);
    let events = r#"{"type":"assign","ip":"10.9.0.1","at":1795305000,"workload":{"app":"web","region":"us-east-1","az":"use1-az1"}}
{"type":"assign","ip":"10.9.0.2","at":1795305000,"workload":{"app":"db","region":"us-east-1","az":"use1-az2"}}
{"type":"assign","ip":"10.9.0.3","at":"soon","workload":{}}
"#;
    let (status, body) = server.post(
        "/api/v1/metadata",
        events.as_bytes(),
        &[("Content-Type", "application/x-ndjson")],
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"], 2);
    assert!(
        body["errors"][0].as_str().unwrap().contains("line 3"),
        "{body}"
    );

    let (status, body) = server.post(
        "/api/v1/flows?source=test",
        LINES.as_bytes(),
        &[("Content-Type", "application/octet-stream")],
    );
    assert_eq!(
        (status, serde_json::from_slice::<Value>(&body).unwrap()),
        (200, json!({"records": 2, "errors": 0}))
    );

    // Firehose: base64 records, the request id echoed with a timestamp.
    let data_b64 = "MiAxMjM0NTY3ODkwMTIgZW5pLTEgMTAuOS4wLjEgMTAuOS4wLjIgNDAwMDEgNDQzIDYgNSA1MDAgMTc5NTMwNTYwMCAxNzk1MzA1NjYwIEFDQ0VQVCBPSwo=";
    let request = json!({"requestId": "req-1", "timestamp": 1795305700000u64, "records": [{"data": data_b64}]});
    let headers = [
        ("X-Amz-Firehose-Request-Id", "req-1"),
        ("Content-Type", "application/json"),
    ];
    let (status, body) = server.post("/api/v1/firehose", request.to_string().as_bytes(), &headers);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["requestId"], "req-1");
    assert!(body["timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    let (status, body) = server.post(
        "/api/v1/firehose",
        b"not json at all",
        &[
            ("X-Amz-Firehose-Request-Id", "req-2"),
            ("Content-Type", "application/json"),
        ],
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, &body["requestId"]), (400, &json!("req-2")));
    assert!(body["errorMessage"].is_string());

    let sql = "SELECT src_app, dst_app, sum(bytes) AS bytes, sum(flows) AS flows FROM flows_1m GROUP BY 1, 2 ORDER BY 1";
    let (status, body) = server.sql(sql, "json");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!([
            {"src_app": "db", "dst_app": "web", "bytes": 3000, "flows": 1},
            {"src_app": "web", "dst_app": "db", "bytes": 1500, "flows": 2},
        ])
    );
    let (_, csv) = server.sql(sql, "csv");
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        "src_app,dst_app,bytes,flows\ndb,web,3000,1\nweb,db,1500,2\n"
    );
    let (_, ipc) = server.sql(sql, "arrow");
    let reader = arrow::ipc::reader::StreamReader::try_new(ipc.as_slice(), None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 2);
    let (status, body) = server.sql("SELECT nope FROM flows_1m", "json");
    assert_eq!(status, 400);
    assert!(
        serde_json::from_slice::<Value>(&body).unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("nope")
    );

    let table = ok(trawl(&["query", "--server", &server.url, sql]));
    assert!(
        table.contains("| db ") && table.contains("| 3000 "),
        "{table}"
    );
    assert_eq!(server.metric("trawl_records_in_total"), 3);
    assert_eq!(server.metric("trawl_payloads_total"), 3);
    assert_eq!(server.metric("trawl_metadata_errors_total"), 1);
    let health: Value = serde_json::from_str(&server.get("/health")).unwrap();
    assert_eq!(health["status"], "ok");
    assert!(server.get("/").contains("/api/v1/sql"));
    assert!(server.interrupt().success());
    // Sealed at exit: the data directory answers on its own.
    let answer = ok(trawl(&[
        "query",
        "--data-dir",
        path(data.path()),
        "--format",
        "csv",
        "SELECT sum(bytes) AS b FROM flows_1m",
    ]));
    assert_eq!(answer, "b\n4500\n");
}

#[test]
fn demo_serves_sql_over_a_live_churning_estate() {
    let server = Server::start(&[
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--apps",
        "30",
        "--rate",
        "200",
        "--backfill-secs",
        "120",
        "--duration-secs",
        "120",
    ]);
    wait_for("the backfill", Duration::from_secs(60), || {
        let (_, body) = server.sql("SELECT count(*) AS n FROM flows_1m", "json");
        serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v[0]["n"].as_u64())
            .unwrap_or(0)
            > 100
    });
    let (status, body) = server.sql(
        "SELECT src_app, count(DISTINCT dst_app) AS callees FROM flows_1m WHERE src_app IS NOT NULL GROUP BY 1",
        "json",
    );
    assert_eq!(status, 200);
    let apps = serde_json::from_slice::<Value>(&body).unwrap();
    assert!(apps.as_array().unwrap().len() >= 5, "{apps}");
    let (_, body) = server.sql("SELECT count(*) AS n FROM ip_history", "json");
    assert!(
        serde_json::from_slice::<Value>(&body).unwrap()[0]["n"]
            .as_u64()
            .unwrap()
            > 30
    );
    assert!(server.metric("trawl_index_events_total") > 0);
    assert!(server.interrupt().success());
}

/// Issue 13 #5: SIGTERM (systemd, Kubernetes, Docker) acted like `kill -9`:
/// open rows were not sealed and the attribution snapshot was not saved.
#[test]
fn sigterm_seals_open_rows_and_saves_the_attribution_snapshot() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&[
        "run",
        "--data-dir",
        path(data.path()),
        "--listen",
        "127.0.0.1:0",
    ]);
    let event = r#"{"type":"assign","ip":"10.9.0.1","at":1795305000,"workload":{"app":"web"}}
{"type":"assign","ip":"10.9.0.2","at":1795305000,"workload":{"app":"db"}}
"#;
    let (status, _) = server.post(
        "/api/v1/metadata",
        event.as_bytes(),
        &[("Content-Type", "application/x-ndjson")],
    );
    assert_eq!(status, 200);
    let (status, _) = server.post(
        "/api/v1/flows",
        LINES.as_bytes(),
        &[("Content-Type", "application/octet-stream")],
    );
    assert_eq!(status, 200);
    assert!(server.signal("-TERM").success());
    assert!(data.path().join("attribution.snapshot").exists());
    let answer = ok(trawl(&[
        "query",
        "--data-dir",
        path(data.path()),
        "--format",
        "csv",
        "SELECT sum(bytes) AS b, count(DISTINCT src_app) AS apps FROM flows_1m",
    ]));
    assert_eq!(answer, "b,apps\n4000,2\n");
}

/// Public addresses: never held for metadata, so what is stored is what
/// was pushed.
const PUBLIC_LINES: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status
2 123456789012 eni-1 8.8.8.8 1.1.1.1 40000 443 6 10 1000 1795305600 1795305660 ACCEPT OK
2 123456789012 eni-1 1.1.1.1 8.8.8.8 443 40000 6 20 3000 1795305600 1795305660 ACCEPT OK
";

fn stored_bytes(server: &Server) -> String {
    let (status, body) = server.sql("SELECT sum(bytes) AS b FROM flows_1m", "csv");
    assert_eq!(status, 200);
    String::from_utf8(body).unwrap()
}

fn start_run(data: &Path) -> Server {
    Server::start(&["run", "--data-dir", path(data), "--listen", "127.0.0.1:0"])
}

/// Issue 13 #6. A push answered 200 was only in memory until the next
/// seal: `kill -9` lost it (and Firehose does not resend what got a 200).
/// Now it is in the push log before the answer, replayed at start, and
/// counted once however often the process restarts.
#[test]
fn an_acknowledged_push_survives_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let push = |server: &Server| {
        let (status, _) = server.post(
            "/api/v1/flows",
            PUBLIC_LINES.as_bytes(),
            &[("Content-Type", "application/octet-stream")],
        );
        assert_eq!(status, 200);
    };
    let server = start_run(data.path());
    push(&server);
    push(&server);
    assert!(!server.signal("-KILL").success());
    let server = start_run(data.path());
    assert_eq!(stored_bytes(&server), "b\n8000\n", "both pushes replayed");
    push(&server);
    assert!(!server.signal("-KILL").success());
    let server = start_run(data.path());
    assert_eq!(stored_bytes(&server), "b\n12000\n", "replayed once each");
    assert!(server.signal("-TERM").success());
    let server = start_run(data.path());
    assert_eq!(stored_bytes(&server), "b\n12000\n", "sealed, not replayed");
    assert_eq!(server.metric("trawl_pushes_replayed_total"), 0);
    assert!(server.signal("-TERM").success());
}

/// Issue 13 #13. Metadata files were applied again, whole, at every start;
/// now what was applied is saved with the attribution snapshot and only
/// new lines are applied.
#[test]
fn metadata_files_apply_only_their_new_lines_at_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let inputs = tempfile::tempdir().unwrap();
    let metadata = inputs.path().join("metadata.jsonl");
    let first = r#"{"type":"assign","ip":"10.9.0.1","at":1795305000,"workload":{"app":"web"}}
{"type":"assign","ip":"10.9.0.2","at":1795305000,"workload":{"app":"db"}}
"#;
    std::fs::write(&metadata, first).unwrap();
    let start = || {
        Server::start(&[
            "run",
            "--data-dir",
            path(data.path()),
            "--metadata",
            path(&metadata),
            "--listen",
            "127.0.0.1:0",
        ])
    };
    let server = start();
    assert_eq!(server.metric("trawl_metadata_events_total"), 2);
    assert!(server.signal("-TERM").success());
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&metadata)
        .unwrap();
    std::io::Write::write_all(
        &mut file,
        br#"{"type":"assign","ip":"10.9.0.3","at":1795305060,"workload":{"app":"cache"}}
"#,
    )
    .unwrap();
    drop(file);
    let server = start();
    assert_eq!(
        server.metric("trawl_metadata_events_total"),
        1,
        "only the new line"
    );
    let (status, body) = server.sql(
        "SELECT ip, app FROM ip_history WHERE ip = '10.9.0.3'",
        "csv",
    );
    assert_eq!(status, 200);
    assert!(String::from_utf8(body).unwrap().contains("cache"));
    assert!(server.signal("-TERM").success());
}

/// Metadata pushed over HTTP was kept only in memory until a clean stop:
/// `kill -9` lost it although it had been answered 200. Now it is in the
/// metadata log until a snapshot covers it.
#[test]
fn pushed_metadata_survives_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let owner_of = |server: &Server, ip: &str| {
        let sql = format!("SELECT app FROM ip_history WHERE ip = '{ip}'");
        let (status, body) = server.sql(&sql, "csv");
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    };
    let push = |server: &Server, ip: &str, app: &str| {
        let event = format!(
            r#"{{"type":"assign","ip":"{ip}","at":1795305000,"workload":{{"app":"{app}"}}}}"#
        );
        let (status, _) = server.post(
            "/api/v1/metadata",
            event.as_bytes(),
            &[("Content-Type", "application/x-ndjson")],
        );
        assert_eq!(status, 200);
    };
    let server = start_run(data.path());
    push(&server, "10.9.0.1", "web");
    assert!(!server.signal("-KILL").success());
    let server = start_run(data.path());
    assert!(owner_of(&server, "10.9.0.1").contains("web"), "replayed");
    push(&server, "10.9.0.2", "db");
    assert!(server.signal("-TERM").success());
    let server = start_run(data.path());
    assert!(
        owner_of(&server, "10.9.0.2").contains("db"),
        "in the snapshot"
    );
    assert_eq!(
        server.metric("trawl_metadata_events_total"),
        0,
        "nothing replayed past the snapshot"
    );
    assert!(server.signal("-TERM").success());
}
