//! Ownership polled from EC2 and ECS (issue 17), against moto[server]
//! with an estate built and churned by boto3 (`tests/cloud/moto_estate.py`,
//! which also writes the flow logs and the owner of every address at every
//! phase: the truth is the estate's, not trawl's). trawl polls every
//! second; every flow record must be attributed to the owner its addresses
//! had when it was recorded, and a poll that fails must release nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::{free_port, python, venv};
use common::{Server, path, wait_for};
use serde_json::Value;

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// moto_server on a free port.
fn moto() -> (Killed, String) {
    let port = free_port();
    let child = Command::new(venv().join("bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server (run .ci/test-deps)");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "moto did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (Killed(child), format!("http://127.0.0.1:{port}"))
}

const CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
];

/// `trawl run` with `config`, its data in `dir/data`, its stderr in `log`.
fn run_trawl(dir: &Path, config: &Path, env: &[(&str, &str)], log: &Path) -> Server {
    let data = dir.join("data");
    let args = [
        "run",
        "--config",
        path(config),
        "--data-dir",
        path(&data),
        "--listen",
        "127.0.0.1:0",
    ];
    Server::start_logging(&args, env, None, std::fs::File::create(log).unwrap())
}

/// (src_app, dst_app) → flows, from a `[{src_app, dst_app, flows}]` answer.
type Pairs = BTreeMap<(Option<String>, Option<String>), u64>;

fn pairs_of(rows: &[Value]) -> Pairs {
    let app = |v: &Value| v.as_str().map(str::to_string);
    let mut pairs = Pairs::new();
    for row in rows {
        let flows = row["flows"]
            .as_u64()
            .or_else(|| row["flows"].as_str()?.parse().ok())
            .unwrap();
        *pairs
            .entry((app(&row["src_app"]), app(&row["dst_app"])))
            .or_default() += flows;
    }
    pairs
}

fn query(server: &Server, sql: &str) -> Vec<Value> {
    let (status, body) = server.sql(sql, "json");
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "{sql}: {text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    answer
        .get("rows")
        .cloned()
        .unwrap_or(answer)
        .as_array()
        .unwrap()
        .clone()
}

/// Flows attributed as the truth says, out of all (by pair: a flow
/// counted under the wrong pair is wrong).
fn accuracy(found: &Pairs, truth: &Pairs) -> (u64, u64) {
    let right = truth
        .iter()
        .map(|(pair, n)| (*n).min(found.get(pair).copied().unwrap_or(0)))
        .sum();
    (right, truth.values().sum())
}

/// The pairs whose counts differ: (pair, found, want).
fn differences(found: &Pairs, truth: &Pairs) -> Vec<String> {
    let mut keys: Vec<_> = found.keys().chain(truth.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (f, t) = (
                found.get(k).copied().unwrap_or(0),
                truth.get(k).copied().unwrap_or(0),
            );
            (f != t).then(|| format!("{k:?}: found {f}, want {t}"))
        })
        .collect()
}

/// The records of phase 3 again, stamped now: the estate as the last
/// complete poll saw it.
fn restamp(phase3: &Path, to: &Path) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let text = std::fs::read_to_string(phase3).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let mut fields: Vec<String> = line.split(' ').map(str::to_string).collect();
        if fields.len() == 14 && fields[0] == "2" {
            fields[10] = (now - 3).to_string();
            fields[11] = (now - 2).to_string();
        }
        out.push_str(&fields.join(" "));
        out.push('\n');
    }
    let tmp = to.with_extension("tmp");
    std::fs::write(&tmp, out).unwrap();
    std::fs::rename(tmp, to).unwrap();
}

#[test]
fn an_ec2_and_ecs_estate_churned_between_polls_is_attributed_as_it_was() {
    let (moto, endpoint) = moto();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("estate");
    let go = dir.path().join("go");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloud/moto_estate.py");
    let mut estate = Command::new(python())
        .arg(script)
        .args([
            "--endpoint",
            &endpoint,
            "--out",
            path(&out),
            "--wait-file",
            path(&go),
        ])
        .args(["--settle-secs", "4"])
        .envs(CREDENTIALS)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(estate.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let vpc: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{first}: {e}"));
    let config: PathBuf = dir.path().join("trawl.toml");
    std::fs::write(
        &config,
        format!(
            "[sources]\nflows_dirs = [\"{flows}\"]\n\
             [pipeline]\nhold_secs = 15\nseal_interval_secs = 1\nseal_interval_min_secs = 1\npoll_interval_ms = 200\n\
             [metadata]\nfirst_poll_wait_secs = 30\n\
             [[metadata.aws]]\nregions = [\"us-east-1\"]\nendpoint_url = \"{endpoint}\"\npoll_secs = 1\n\
             vpc_ids = [\"{vpc}\"]\n",
            flows = path(&out.join("flows")),
            vpc = vpc["vpc_id"].as_str().unwrap(),
        ),
    )
    .unwrap();
    std::fs::create_dir_all(out.join("flows")).unwrap();
    let log = dir.path().join("trawl.log");
    let server = run_trawl(dir.path(), &config, &CREDENTIALS, &log);
    std::fs::write(&go, "").unwrap();
    let status = estate.wait().unwrap();
    assert!(status.success(), "moto_estate.py failed: {status}");
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("truth.json")).unwrap()).unwrap();
    let records = truth["records"].as_array().unwrap();
    let flows_in = records.len() as u64;
    let counted = || -> u64 {
        let rows = query(
            &server,
            "SELECT COALESCE(SUM(flows), 0) AS flows FROM flows_1m",
        );
        rows[0]["flows"].as_u64().unwrap_or(0)
    };
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("every flow in", Duration::from_secs(60), || {
        counted() == flows_in
    });
    let by_pair = "SELECT src_app, dst_app, SUM(flows) AS flows FROM flows_1m GROUP BY 1, 2";
    let found = pairs_of(&query(&server, by_pair));
    let want = pairs_of(truth["pairs"].as_array().unwrap());
    let (right, all) = accuracy(&found, &want);
    assert_eq!(
        right,
        all,
        "attributed {right} of {all} flows as the estate was: {:#?}\n{}",
        differences(&found, &want),
        logged()
    );
    assert!(server.metric("trawl_cloud_polls_total{source=\"aws:default/us-east-1\"}") >= 3);
    assert_eq!(
        server.metric("trawl_cloud_poll_errors_total{source=\"aws:default/us-east-1\"}"),
        0
    );

    // The endpoint goes away: polls fail, and nothing is released — flows
    // recorded now are the last complete poll's owners'.
    drop(moto);
    wait_for("failed polls", Duration::from_secs(60), || {
        server.metric("trawl_cloud_poll_errors_total{source=\"aws:default/us-east-1\"}") >= 2
    });
    restamp(
        &out.join("flows/phase-3.log"),
        &out.join("flows/phase-4.log"),
    );
    let phase3: Vec<Value> = records
        .iter()
        .filter(|r| r["phase"] == 3)
        .cloned()
        .collect();
    wait_for("the restamped flows", Duration::from_secs(60), || {
        counted() == flows_in + phase3.len() as u64
    });
    let mut want_after = want.clone();
    for (pair, n) in pairs_of(&phase3) {
        *want_after.entry(pair).or_default() += n;
    }
    let found = pairs_of(&query(&server, by_pair));
    let (right, all) = accuracy(&found, &want_after);
    assert_eq!(
        right,
        all,
        "after failed polls: {right} of {all}: {:#?}",
        differences(&found, &want_after)
    );
    server.interrupt();
}

/// The fake API server serving `tests/cloud/kube_scenario.json`.
fn fake_kube(log: &Path) -> (Killed, u16) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloud");
    let mut child = Command::new("python3")
        .arg(dir.join("fake_kube.py"))
        .args(["--port", "0", "--scenario"])
        .arg(dir.join("kube_scenario.json"))
        .arg("--log")
        .arg(log)
        .args(["--exit-on-stdin-eof", "--max-lifetime-secs", "600"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let ready: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{first}: {e}"));
    (Killed(child), ready["port"].as_u64().unwrap() as u16)
}

/// The fake server's step (`/_fake/state`).
fn fake_state(port: u16) -> Value {
    let url = format!("http://127.0.0.1:{port}/_fake/state");
    let body = ureq::get(&url)
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

#[test]
fn pods_listed_and_watched_own_their_ips_through_reuse_a_resumed_watch_and_a_410() {
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.jsonl");
    let (_server, port) = fake_kube(&requests);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: reader\n\
             users:\n- name: reader\n  user:\n    token: not-checked\n"
        ),
    )
    .unwrap();
    let config = dir.path().join("trawl.toml");
    std::fs::write(
        &config,
        format!(
            "[metadata]\nfirst_poll_wait_secs = 30\n\
             [[metadata.kubernetes]]\ncluster = \"prod-eks\"\nkubeconfig = \"{}\"\nwatch_timeout_secs = 60\n",
            path(&kubeconfig)
        ),
    )
    .unwrap();
    let log = dir.path().join("trawl.log");
    let server = run_trawl(dir.path(), &config, &[], &log);
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the scenario's end", Duration::from_secs(120), || {
        fake_state(port)["done"] == true
    });
    // The last steps' events reach the index within a poll of the watch.
    std::thread::sleep(Duration::from_secs(2));
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloud/kube_expected.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let rows = query(
        &server,
        "SELECT ip, app, kind, az, region, valid_to IS NULL AS open FROM ip_history ORDER BY ip, valid_from",
    );
    let mut history: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for row in &rows {
        history
            .entry(row["ip"].as_str().unwrap().to_string())
            .or_default()
            .push(row);
    }
    for (ip, steps) in expected["ips"].as_object().unwrap() {
        let mut want: Vec<&str> = steps
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["app"].as_str())
            .collect();
        want.dedup();
        let got: Vec<&str> = history
            .get(ip)
            .map(|rows| rows.iter().filter_map(|r| r["app"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(got, want, "{ip}: owners in order\n{rows:#?}\n{}", logged());
        let last = history.get(ip).and_then(|rows| rows.last()).unwrap();
        let open = last["open"] == true;
        match expected["final"][ip].as_str() {
            Some(app) => assert!(open && last["app"] == app, "{ip} now {app}: {last}"),
            None => assert!(!open, "{ip} released by now: {last}"),
        }
        assert_eq!(last["kind"], "pod", "{last}");
        assert!(
            last["az"]
                .as_str()
                .is_some_and(|az| az.starts_with("use1-az")),
            "{last}"
        );
    }
    for ip in expected["never_owned"].as_array().unwrap() {
        assert!(
            !history.contains_key(ip.as_str().unwrap()),
            "host network: {ip}"
        );
    }
    // The watch was resumed from a version, and listed again after the 410.
    let requests: Vec<Value> = std::fs::read_to_string(&requests)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let pods = |verb: &str| {
        requests
            .iter()
            .filter(|r| r["type"] == "request" && r["verb"] == verb && r["kind"] == "Pod")
            .cloned()
            .collect::<Vec<_>>()
    };
    let first_pages = pods("list")
        .iter()
        .filter(|r| r["query"].get("continue").is_none())
        .count();
    assert!(
        first_pages >= 2,
        "a list, then another after the 410: {first_pages}"
    );
    assert!(pods("watch").iter().any(|r| r["outcome"] == "expired"));
    assert!(
        pods("watch").len() >= 3,
        "watched, resumed after a close, after the 410"
    );
    assert!(server.metric("trawl_cloud_relists_total{source=\"kubernetes:prod-eks\"}") >= 1);
    server.interrupt();
}
