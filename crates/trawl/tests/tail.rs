//! The live tail and the whois endpoint through the binary: `trawl run`
//! serving `GET /api/v1/tail` (server-sent events) while flows are pushed
//! to `POST /api/v1/flows`, its limits (rate, open streams, life, bad
//! filters), `GET /api/v1/whois` against `trawl whois`, and `trawl tail`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{Server, agent, now_secs as now, ok, path, run_with, trawl, wait_for};

/// Three workloads in two AZs, owned since an hour ago.
fn metadata() -> String {
    let at = now() - 3600;
    [
        ("10.9.0.1", "web", "use1-az1"),
        ("10.9.0.2", "db", "use1-az2"),
        ("10.9.0.3", "pay", "use1-az1"),
    ]
    .iter()
    .map(|(ip, app, az)| {
        format!(
            r#"{{"type":"assign","ip":"{ip}","at":{at},"workload":{{"app":"{app}","cluster":"{app}-prod","account":"123456789012","region":"us-east-1","az":"{az}","kind":"instance"}}}}"#
        )
    })
    .collect::<Vec<_>>()
    .join("\n")
        + "\n"
}

/// A default-format flow line from `src` to `dst` (last octets) a minute ago.
fn line(src: u8, dst: u8, src_port: u32, action: &str) -> String {
    let start = now() - 60;
    format!(
        "2 123456789012 eni-1 10.9.0.{src} 10.9.0.{dst} {src_port} 5432 6 3 {} {start} {} {action} OK\n",
        100 + src_port % 1000,
        start + 30
    )
}

/// `trawl run` on a fresh data directory with `server` as its `[server]`
/// section, the metadata pushed.
fn start(server: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let running = run_with(dir.path(), server, &[], None);
    let (status, body) = running.post(
        "/api/v1/metadata",
        metadata().as_bytes(),
        &[("Content-Type", "application/x-ndjson")],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    (dir, running)
}

fn push(server: &Server, lines: &str) {
    let (status, body) = server.post(
        "/api/v1/flows?source=test",
        lines.as_bytes(),
        &[("Content-Type", "application/octet-stream")],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

/// One server-sent event as a test sees it.
#[derive(Debug)]
struct Sse {
    at: Instant,
    event: String,
    data: Value,
}

/// An open tail: its events arrive on `events` (a thread reads the stream
/// until it closes; the channel then disconnects).
struct Tail {
    events: mpsc::Receiver<Sse>,
}

impl Tail {
    fn next(&self, timeout: Duration) -> Option<Sse> {
        self.events.recv_timeout(timeout).ok()
    }

    /// Every event within `window`.
    fn collect(&self, window: Duration) -> Vec<Sse> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(event) => out.push(event),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        out
    }
}

/// Opens `/api/v1/tail` with `query` pairs: the open tail (its `hello`
/// already read), or the status and body of a refusal.
fn open_tail(server: &Server, query: &[(&str, &str)]) -> Result<(Tail, Value), (u16, Value)> {
    let mut request = agent(None).get(&format!("{}/api/v1/tail", server.url));
    for (name, value) in query {
        request = request.query(*name, *value);
    }
    let response = request.call().unwrap();
    let status = response.status().as_u16();
    if status != 200 {
        let body = response.into_body().read_to_string().unwrap();
        return Err((status, serde_json::from_str(&body).unwrap_or(Value::Null)));
    }
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let (sender, events) = mpsc::channel();
    let reader = BufReader::new(response.into_body().into_reader());
    std::thread::spawn(move || {
        let (mut event, mut data) = (String::new(), String::new());
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if line.is_empty() {
                if !event.is_empty() {
                    let sse = Sse {
                        at: Instant::now(),
                        event: std::mem::take(&mut event),
                        data: serde_json::from_str(&data).unwrap(),
                    };
                    if sender.send(sse).is_err() {
                        return;
                    }
                }
                data.clear();
            } else if let Some(value) = line.strip_prefix("event: ") {
                event = value.to_string();
            } else if let Some(value) = line.strip_prefix("data: ") {
                data.push_str(value);
            }
        }
    });
    let tail = Tail { events };
    let hello = tail.next(Duration::from_secs(5)).expect("a hello event");
    assert_eq!(hello.event, "hello");
    Ok((tail, hello.data))
}

fn rows(events: &[Sse]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e.event == "rows")
        .flat_map(|e| e.data["rows"].as_array().unwrap())
        .collect()
}

#[test]
fn a_tail_streams_matching_flows_with_their_enrichment_within_a_second() {
    // The whole-request and header timeouts at 1 s: a tail outlives both.
    let (_dir, server) = start("request_timeout_secs = 1\nheader_read_timeout_secs = 1");
    let filter = "dst_app = 'db' AND action = 'REJECT'";
    let (tail, hello) = open_tail(&server, &[("where", filter)]).unwrap();
    assert_eq!(hello["rate"], 200);
    let columns = hello["columns"].as_array().unwrap();
    for column in [
        "time", "src_addr", "dst_port", "src_app", "dst_az", "cross_az",
    ] {
        assert!(columns.contains(&Value::from(column)), "{column}: {hello}");
    }
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(server.metric("trawl_tail_streams"), 1);

    let lines = [
        line(1, 2, 40001, "REJECT"),
        line(1, 2, 40002, "ACCEPT"),
        line(1, 3, 40003, "REJECT"),
        line(2, 1, 40004, "REJECT"),
        line(3, 2, 40005, "REJECT"),
    ]
    .concat();
    let pushed = Instant::now();
    push(&server, &lines);
    let events = tail.collect(Duration::from_millis(1_500));
    let got = rows(&events);
    let mut ports: Vec<u64> = got
        .iter()
        .map(|r| r["src_port"].as_u64().unwrap())
        .collect();
    ports.sort_unstable();
    assert_eq!(ports, [40001, 40005], "only the matching flows: {got:?}");
    for event in events.iter().filter(|e| e.event == "rows") {
        assert!(
            event.at.duration_since(pushed) < Duration::from_secs(1),
            "arrived after {:?}",
            event.at.duration_since(pushed)
        );
        assert_eq!(event.data["skipped"], 0);
        assert_eq!(event.data["lagged_batches"], 0);
    }
    let web = got
        .iter()
        .find(|r| r["src_port"] == 40001)
        .copied()
        .unwrap();
    assert_eq!(web["src_app"], "web");
    assert_eq!(web["src_cluster"], "web-prod");
    assert_eq!(web["dst_app"], "db");
    assert_eq!(web["src_az"], "use1-az1");
    assert_eq!(web["dst_az"], "use1-az2");
    assert_eq!(web["cross_az"], true);
    assert_eq!(web["action"], "REJECT");
    assert_eq!(web["src_addr"], "10.9.0.1");

    // The rows are the rows `flows` shows, encoded as SQL answers encode them.
    let (status, body) = server.sql(
        &format!("SELECT * FROM flows WHERE {filter} ORDER BY src_port"),
        "json",
    );
    assert_eq!(status, 200);
    let stored: Value = serde_json::from_slice(&body).unwrap();
    let mut tailed: Vec<Value> = got.into_iter().cloned().collect();
    tailed.sort_by_key(|r| r["src_port"].as_u64());
    assert_eq!(Value::from(tailed), stored);

    // Nothing more, and never a non-matching flow.
    push(&server, &line(1, 2, 40006, "ACCEPT"));
    assert!(rows(&tail.collect(Duration::from_millis(800))).is_empty());
    assert_eq!(server.metric("trawl_tail_rows_sent_total"), 2);
    assert_eq!(server.metric("trawl_tail_rows_skipped_total"), 0);

    // Stopping the server ends the stream, and an open stream does not
    // keep it from sealing and exiting cleanly.
    assert!(server.interrupt().success());
    let left = tail.collect(Duration::from_secs(5));
    assert!(
        left.iter().all(|e| e.event == "end"),
        "only an end event may follow: {left:?}"
    );
    assert!(tail.next(Duration::from_millis(100)).is_none(), "closed");
}

#[test]
fn a_tail_samples_at_most_its_rate_and_counts_what_it_skipped() {
    let (_dir, server) = start("tail_rows_per_sec_max = 40");
    // Asking for more than the server allows gets the server's limit.
    let (tail, hello) =
        open_tail(&server, &[("where", "src_app = 'web'"), ("rate", "1000")]).unwrap();
    assert_eq!(hello["rate"], 40);
    let per_window = 40 / 4;
    let mut pushed = 0;
    for round in 0..3u32 {
        let lines: String = (0..400)
            .map(|i| line(1, 2 + (i % 2) as u8, 40_000 + round * 1000 + i, "ACCEPT"))
            .collect();
        push(&server, &lines);
        push(&server, &line(2, 1, 50_000 + round, "ACCEPT"));
        pushed += 400;
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        events.extend(tail.collect(Duration::from_millis(300)));
        let matched: u64 = events
            .iter()
            .map(|e| e.data["matched"].as_u64().unwrap_or(0))
            .sum();
        if matched >= pushed {
            break;
        }
    }
    let windows: Vec<&Sse> = events.iter().filter(|e| e.event == "rows").collect();
    let (mut matched, mut sent, mut skipped) = (0, 0, 0);
    for window in &windows {
        let m = window.data["matched"].as_u64().unwrap();
        let r = window.data["rows"].as_array().unwrap().len() as u64;
        let s = window.data["skipped"].as_u64().unwrap();
        assert_eq!(m, r + s, "matched = sent + skipped: {}", window.data);
        assert_eq!(r, m.min(per_window), "a full sample when enough matched");
        assert_eq!(window.data["lagged_batches"], 0);
        for row in window.data["rows"].as_array().unwrap() {
            assert_eq!(row["src_app"], "web");
        }
        (matched, sent, skipped) = (matched + m, sent + r, skipped + s);
    }
    assert_eq!(matched, pushed, "every matching flow counted once");
    assert!(skipped > 0 && sent > 0, "sent {sent}, skipped {skipped}");
    // At most the rate in any second: windows end 250 ms apart, so a
    // second's four arrive within 750 ms (a fifth only if the reader
    // stalled 250 ms; the exact quota per window is checked above).
    for (i, first) in windows.iter().enumerate() {
        let in_second: usize = windows[i..]
            .iter()
            .take_while(|w| w.at.duration_since(first.at) <= Duration::from_millis(750))
            .map(|w| w.data["rows"].as_array().unwrap().len())
            .sum();
        assert!(in_second <= 40, "{in_second} rows within a second");
    }
    assert_eq!(server.metric("trawl_tail_rows_sent_total"), sent);
    assert_eq!(server.metric("trawl_tail_rows_skipped_total"), skipped);
}

#[test]
fn bad_filters_and_streams_past_the_cap_are_refused_and_streams_end_at_their_life_cap() {
    let (_dir, server) = start("tail_streams_max = 2\ntail_stream_secs_max = 2");
    for (query, named) in [
        (vec![("where", "dst_appp = 'db'")], "dst_appp"),
        (vec![("where", "bytes + 1")], "condition"),
        (vec![("where", "EXISTS (SELECT 1)")], "subqueries"),
        (vec![("where", "src_app = 'x'"), ("rate", "0")], "rate"),
    ] {
        let (status, body) = open_tail(&server, &query).err().expect("refused");
        assert_eq!(status, 400, "{body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(named), "{query:?}: {message}");
    }
    let opened = Instant::now();
    let (first, _) = open_tail(&server, &[]).unwrap();
    let (second, _) = open_tail(&server, &[("where", "action = 'REJECT'")]).unwrap();
    let (status, body) = open_tail(&server, &[]).err().expect("past the cap");
    assert_eq!(status, 429);
    assert!(
        body["error"].as_str().unwrap().contains("tail_streams_max"),
        "{body}"
    );
    assert_eq!(server.metric("trawl_tail_streams"), 2);
    assert_eq!(server.metric("trawl_tail_streams_refused_total"), 1);
    for tail in [&first, &second] {
        let events = tail.collect(Duration::from_secs(4));
        let end = events.last().expect("an end event");
        assert_eq!(end.event, "end", "{events:?}");
        assert!(
            end.data["reason"]
                .as_str()
                .unwrap()
                .contains("tail_stream_secs_max"),
            "{}",
            end.data
        );
        let life = end.at.duration_since(opened);
        assert!(
            life >= Duration::from_millis(1_900) && life < Duration::from_secs(4),
            "{life:?}"
        );
        assert!(
            tail.next(Duration::from_secs(1)).is_none(),
            "closed after end"
        );
    }
    wait_for("the slots to be given back", Duration::from_secs(5), || {
        server.metric("trawl_tail_streams") == 0
    });
    assert!(open_tail(&server, &[]).is_ok(), "a slot is free again");
}

#[test]
fn whois_endpoint_answers_like_the_cli() {
    let (dir, server) = start("");
    let file = dir.path().join("metadata.jsonl");
    std::fs::write(&file, metadata()).unwrap();
    let at = (now() - 60).to_string();
    let cli: Value = serde_json::from_str(&ok(trawl(&[
        "whois",
        "--metadata",
        path(&file),
        "10.9.0.2",
        "--at",
        &at,
    ])))
    .unwrap();
    assert_eq!(cli["app"], "db");
    let get = |query: &str| {
        let (status, body) = server.get_with(&format!("/api/v1/whois?{query}"), &[]);
        (status, serde_json::from_str::<Value>(&body).unwrap())
    };
    // The CLI takes its files as all the metadata there is (every answer
    // settled); the running index has no word that pushed metadata is
    // complete up to `at`, so its answer is not settled yet. The rest is
    // the same object.
    let mut expected = cli.clone();
    expected["settled"] = Value::from(false);
    let (status, answer) = get(&format!("ip=10.9.0.2&at={at}"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, expected);
    let rfc3339 = cli["at"].as_str().unwrap().to_string();
    assert_eq!(get(&format!("ip=10.9.0.2&at={rfc3339}")).1, expected);
    let (_, nobody) = get(&format!("ip=10.9.0.9&at={at}"));
    let cli_nobody: Value = serde_json::from_str(&ok(trawl(&[
        "whois",
        "--metadata",
        path(&file),
        "10.9.0.9",
        "--at",
        &at,
    ])))
    .unwrap();
    assert_eq!(nobody["app"], Value::Null);
    assert_eq!(nobody["rule"], cli_nobody["rule"]);
    let (status, current) = get("ip=10.9.0.2");
    assert_eq!((status, &current["app"]), (200, &Value::from("db")));
    for (query, named) in [
        ("ip=10.9.0.300&at=0", "ip:"),
        ("at=0", "ip:"),
        ("ip=10.9.0.2&at=noon", "at:"),
    ] {
        let (status, body) = get(query);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with(named),
            "{query}: {body}"
        );
    }
}

/// `trawl tail ARGS` against `server`, its stdout and stderr read by
/// threads into channels of lines.
struct TailCli {
    child: std::process::Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Drop for TailCli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

fn tail_cli(server: &Server, args: &[&str]) -> TailCli {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args(["tail", "--server", &server.url])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = lines_of(child.stdout.take().unwrap());
    let stderr = lines_of(child.stderr.take().unwrap());
    TailCli {
        child,
        stdout,
        stderr,
    }
}

#[test]
fn trawl_tail_prints_pushed_flows_and_notes_what_the_rate_skipped() {
    let (_dir, server) = start("");
    let json = tail_cli(&server, &["--where", "dst_app = 'db'", "--rate", "4"]);
    let table = tail_cli(
        &server,
        &["--where", "src_port = 40001", "--format", "table"],
    );
    wait_for("both tails to connect", Duration::from_secs(10), || {
        server.metric("trawl_tail_streams") == 2
    });
    let lines: String = (0..12).map(|i| line(1, 2, 40_001 + i, "REJECT")).collect();
    push(&server, &(lines + &line(1, 3, 40_100, "REJECT")));

    // Rate 4: one row a window, the rest noted on stderr.
    let first: Value =
        serde_json::from_str(&json.stdout.recv_timeout(Duration::from_secs(2)).unwrap()).unwrap();
    assert_eq!(first["dst_app"], "db");
    assert_eq!(first["src_app"], "web");
    assert_eq!(first["dst_az"], "use1-az2");
    let mut printed = 1;
    let mut skipped = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while printed + skipped < 12 && Instant::now() < deadline {
        while let Ok(line) = json.stdout.try_recv() {
            let row: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(row["dst_app"], "db");
            printed += 1;
        }
        while let Ok(line) = json.stderr.try_recv() {
            let count = line
                .strip_prefix("trawl: skipped ")
                .and_then(|rest| rest.strip_suffix(" flows (rate limit)"))
                .unwrap_or_else(|| panic!("unexpected stderr: {line}"));
            skipped += count.parse::<u64>().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        printed + skipped,
        12,
        "printed {printed}, skipped {skipped}"
    );
    assert!(
        skipped >= 8,
        "one row a window at rate 4: skipped {skipped}"
    );

    let row = table.stdout.recv_timeout(Duration::from_secs(2)).unwrap();
    assert!(
        row.contains("web→db")
            && row.contains("10.9.0.1:40001 → 10.9.0.2:5432")
            && row.contains("tcp")
            && row.contains("REJECT"),
        "{row}"
    );
    assert!(
        table
            .stdout
            .recv_timeout(Duration::from_millis(500))
            .is_err()
    );

    // A refused request: the server's message and exit 1.
    let output = trawl(&["tail", "--server", &server.url, "--where", "dst_appp = 'x'"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("400") && stderr.contains("dst_appp"),
        "{stderr}"
    );
}
