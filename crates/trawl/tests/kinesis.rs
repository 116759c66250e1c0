//! The Kinesis source against an emulator (kinesalite, which reshards as
//! AWS does), with input written by an independent client (boto3,
//! `tests/kinesis/produce.py`, which computes the totals a correct reader
//! must find): a split mid-stream while trawl reads, kill -9 at random
//! moments, and every total equal to the input.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::{free_port, python};
use common::{Server, ok, path, trawl};
use serde_json::Value;

/// A kinesalite on a free port, killed when dropped.
struct Kinesalite {
    child: Child,
    endpoint: String,
}

impl Drop for Kinesalite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Kinesalite {
    fn start() -> Kinesalite {
        let modules =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-deps/node/node_modules");
        assert!(
            modules.join("kinesalite").exists(),
            "no kinesalite in {}: run .ci/test-deps",
            modules.display()
        );
        let port = free_port();
        let script = format!(
            "require('kinesalite')({{createStreamMs: 50, deleteStreamMs: 50, updateStreamMs: 50, shardLimit: 100}}).listen({port}, '127.0.0.1')"
        );
        let child = Command::new("node")
            .args(["-e", &script])
            .env("NODE_PATH", &modules)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let emulator = Kinesalite {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "kinesalite did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        emulator
    }

    fn produce(&self, command: &str, stream: &str, args: &[&str]) -> Command {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kinesis/produce.py");
        let mut process = Command::new(python());
        process
            .arg(script)
            .args([command, &self.endpoint, stream])
            .args(args)
            .envs(CREDENTIALS);
        process
    }
}

const CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
];

const TOTALS_SQL: &str = "SELECT (SELECT COALESCE(SUM(flows), 0) FROM flows_1m) AS flows, \
     (SELECT COALESCE(SUM(bytes), 0) FROM flows_1m) AS bytes, \
     (SELECT COALESCE(SUM(packets), 0) FROM flows_1m) AS packets, \
     (SELECT COUNT(*) FROM flows) AS rows";

fn totals_of(text: &[u8]) -> [u64; 4] {
    let answer: Value = serde_json::from_slice(text).unwrap();
    let row = answer
        .get("rows")
        .and_then(|r| r.get(0))
        .or_else(|| answer.get(0))
        .unwrap();
    let get = |name: &str| {
        let v = &row[name];
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap()
    };
    [get("flows"), get("bytes"), get("packets"), get("rows")]
}

fn start(data: &Path, config: &Path, log: &Path) -> Server {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let args = [
        "run",
        "--config",
        path(config),
        "--data-dir",
        path(data),
        "--listen",
        "127.0.0.1:0",
    ];
    Server::start_logging(&args, &CREDENTIALS, None, log)
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn a_split_mid_stream_and_kill_9_and_every_flow_is_counted_once() {
    let emulator = Kinesalite::start();
    let dir = tempfile::tempdir().unwrap();
    let config: PathBuf = dir.path().join("trawl.toml");
    std::fs::write(
        &config,
        format!(
            "[pipeline]\nhold_secs = 0\nseal_interval_secs = 1\nseal_interval_min_secs = 1\n\
             [[sources.kinesis]]\nstream = \"flows\"\nendpoint_url = \"{}\"\npoll_interval_ms = 200\n\
             list_shards_secs = 1\n",
            emulator.endpoint
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("trawl.log");
    let status = emulator
        .produce("create", "flows", &["2"])
        .status()
        .unwrap();
    assert!(status.success());
    let producer = emulator
        .produce(
            "flows",
            "flows",
            &[
                "--records",
                "240",
                "--lines",
                "25",
                "--seconds",
                "10",
                "--seed",
                "5",
                "--kinds",
                "lines,gzip,cloudwatch",
                "--reshard",
                "split",
                "--control",
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill seed {state}");
    for _ in 0..4 {
        let server = start(&data, &config, &log);
        std::thread::sleep(Duration::from_millis(700 + next(&mut state) % 2000));
        drop(server); // SIGKILL
    }
    let output = producer.wait_with_output().unwrap();
    assert!(output.status.success(), "the producer failed");
    let produced: Value = serde_json::from_slice(&output.stdout).unwrap();
    let records = produced["records"].as_u64().unwrap();
    let want = [
        records,
        produced["bytes"].as_u64().unwrap(),
        produced["packets"].as_u64().unwrap(),
        records,
    ];
    let server = start(&data, &config, &log);
    let started = Instant::now();
    loop {
        let (status, body) = server.sql(TOTALS_SQL, "json");
        assert_eq!(status, 200);
        let flows = totals_of(&body)[0];
        let logs = || std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            flows <= records,
            "{flows} flows for {records}: some twice\n{}",
            logs()
        );
        if flows == records {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{flows} of {records}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        server.metric("trawl_kinesis_shards_ended_total") >= 1
            || std::fs::read_to_string(&log)
                .unwrap()
                .contains("read to its end"),
        "the split parent was never read to its end"
    );
    assert!(server.signal("-TERM").success());
    let stored = ok(trawl(&[
        "query",
        "--data-dir",
        path(&data),
        "--format",
        "json",
        TOTALS_SQL,
    ]));
    assert_eq!(totals_of(stored.as_bytes()), want);
}

// Helpers of the tests below (from a cold review).
fn flows_now(server: &Server) -> u64 {
    let (status, body) = server.sql(TOTALS_SQL, "json");
    assert_eq!(status, 200);
    totals_of(&body)[0]
}

// Regression (cold review): waits until the log holds `what`.
fn wait_log(log: &Path, what: &str, timeout: Duration) {
    let started = Instant::now();
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(what)
    {
        assert!(
            started.elapsed() < timeout,
            "no {what:?} in the log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// Regression (cold review): waits until the server has `want` flows (fails if more, or not
// within `timeout`).
fn wait_flows(server: &Server, log: &Path, want: u64, timeout: Duration) {
    let started = Instant::now();
    loop {
        let flows = flows_now(server);
        let logs = || std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            flows <= want,
            "{flows} flows for {want}: some twice\n{}",
            logs()
        );
        if flows == want {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "{flows} of {want} flows after {timeout:?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

// Regression (cold review): with `start = "latest"`, a child shard born of a split while trawl
// reads is a shard "this store knows nothing of" and is started at LATEST:
// every record put into it between the split and its first iterator (up to
// list_shards_secs later) is lost. A child must start at TRIM_HORIZON.
#[test]
fn start_latest_does_not_lose_the_records_of_a_split_child() {
    let emulator = Kinesalite::start();
    let dir = tempfile::tempdir().unwrap();
    let config: PathBuf = dir.path().join("trawl.toml");
    std::fs::write(
        &config,
        format!(
            "[pipeline]\nhold_secs = 0\nseal_interval_secs = 1\nseal_interval_min_secs = 1\n\
             [[sources.kinesis]]\nstream = \"flows\"\nendpoint_url = \"{}\"\npoll_interval_ms = 200\n\
             list_shards_secs = 8\nstart = \"latest\"\n",
            emulator.endpoint
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("trawl.log");
    assert!(
        emulator
            .produce("create", "flows", &["1"])
            .status()
            .unwrap()
            .success()
    );
    let server = start(&data, &config, &log);
    // Every record is put after trawl holds its iterator: all must be read.
    wait_log(&log, "from the latest record", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let output = emulator
        .produce(
            "flows",
            "flows",
            &[
                "--records",
                "60",
                "--lines",
                "5",
                "--seconds",
                "6",
                "--seed",
                "7",
                "--kinds",
                "lines",
                "--reshard",
                "split",
                "--reshard-at",
                "0.3",
            ],
        )
        .output()
        .unwrap();
    assert!(output.status.success(), "the producer failed");
    let produced: Value = serde_json::from_slice(&output.stdout).unwrap();
    let records = produced["records"].as_u64().unwrap();
    wait_flows(&server, &log, records, Duration::from_secs(40));
}

// Regression (cold review): a stream deleted and created again under the same name (an
// infrastructure redeploy) has shards of the same ids: the old manifest's
// `kinesis:flows/shardId-000000000000 = {"ended":true}` is taken for the new
// shard 0, which is then never read (silently: no error, no metric).
#[test]
fn a_recreated_stream_is_read_not_taken_as_ended() {
    let emulator = Kinesalite::start();
    let dir = tempfile::tempdir().unwrap();
    let config: PathBuf = dir.path().join("trawl.toml");
    std::fs::write(
        &config,
        format!(
            "[pipeline]\nhold_secs = 0\nseal_interval_secs = 1\nseal_interval_min_secs = 1\n\
             [[sources.kinesis]]\nstream = \"flows\"\nendpoint_url = \"{}\"\npoll_interval_ms = 200\n\
             list_shards_secs = 1\n",
            emulator.endpoint
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("trawl.log");
    assert!(
        emulator
            .produce("create", "flows", &["1"])
            .status()
            .unwrap()
            .success()
    );
    let produce = |seed: &str, reshard: bool| {
        let mut args = vec![
            "--records",
            "20",
            "--lines",
            "5",
            "--seed",
            seed,
            "--kinds",
            "lines",
        ];
        if reshard {
            args.extend(["--reshard", "split"]);
        }
        let output = emulator.produce("flows", "flows", &args).output().unwrap();
        assert!(output.status.success(), "the producer failed");
        let produced: Value = serde_json::from_slice(&output.stdout).unwrap();
        produced["records"].as_u64().unwrap()
    };
    let first = produce("1", true);
    let server = start(&data, &config, &log);
    wait_flows(&server, &log, first, Duration::from_secs(40));
    wait_log(&log, "read to its end", Duration::from_secs(20));
    assert!(server.signal("-TERM").success());
    // The stream again, from nothing.
    let delete = "import boto3,sys,time\n\
        k=boto3.client('kinesis',endpoint_url=sys.argv[1],region_name='us-east-1')\n\
        k.delete_stream(StreamName='flows')\n\
        while 'flows' in k.list_streams()['StreamNames']: time.sleep(0.1)\n";
    let status = Command::new(python())
        .args(["-c", delete, &emulator.endpoint])
        .envs(CREDENTIALS)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        emulator
            .produce("create", "flows", &["1"])
            .status()
            .unwrap()
            .success()
    );
    let second = produce("2", false);
    let server = start(&data, &config, &log);
    wait_flows(&server, &log, first + second, Duration::from_secs(30));
}

// Regression (cold review): an endpoint that takes the connection and never answers (a black
// hole: a NAT that dropped the flow, a stuck proxy). Every call is
// `block_on(request.send())` with no operation or read timeout, on the one
// reader thread: it hangs for ever, every shard stops, and SIGTERM (which
// joins the reader thread before the last seal) never returns.
#[test]
fn a_silent_endpoint_neither_stalls_for_ever_nor_blocks_shutdown() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream); // read nothing, answer nothing
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config: PathBuf = dir.path().join("trawl.toml");
    std::fs::write(
        &config,
        format!(
            "[[sources.kinesis]]\nstream = \"flows\"\nendpoint_url = \"http://127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("trawl.log");
    let mut server = start(&data, &config, &log);
    std::thread::sleep(Duration::from_secs(3));
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success());
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "SIGTERM: still running after 30 s (the reader is blocked in a call)\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// Regression (cold review): a merge (two parents, both this node's) mid-stream and kill -9 x3:
// the child waits for both parents; totals exact. (Passes: no finding.)
#[test]
fn a_merge_mid_stream_and_kill_9_counts_every_flow_once() {
    let emulator = Kinesalite::start();
    let dir = tempfile::tempdir().unwrap();
    let config: PathBuf = dir.path().join("trawl.toml");
    std::fs::write(
        &config,
        format!(
            "[pipeline]\nhold_secs = 0\nseal_interval_secs = 1\nseal_interval_min_secs = 1\n\
             [[sources.kinesis]]\nstream = \"flows\"\nendpoint_url = \"{}\"\npoll_interval_ms = 200\n\
             list_shards_secs = 1\n",
            emulator.endpoint
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("trawl.log");
    assert!(
        emulator
            .produce("create", "flows", &["2"])
            .status()
            .unwrap()
            .success()
    );
    let producer = emulator
        .produce(
            "flows",
            "flows",
            &[
                "--records",
                "200",
                "--lines",
                "25",
                "--seconds",
                "8",
                "--seed",
                "9",
                "--kinds",
                "lines,gzip,cloudwatch",
                "--reshard",
                "merge",
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..3 {
        let server = start(&data, &config, &log);
        std::thread::sleep(Duration::from_millis(700 + next(&mut state) % 2000));
        drop(server); // SIGKILL
    }
    let output = producer.wait_with_output().unwrap();
    assert!(output.status.success(), "the producer failed");
    let produced: Value = serde_json::from_slice(&output.stdout).unwrap();
    let records = produced["records"].as_u64().unwrap();
    let server = start(&data, &config, &log);
    wait_flows(&server, &log, records, Duration::from_secs(60));
}
