//! Regression tests from the cold review of the web UI and live tail
//! (e03ca99), each named after what went wrong, run through the binary:
//! what a page on another origin could do to the tail, what a tail filter
//! could do to the server, and numbers the explore view got wrong. The
//! UI's SQL is built by the UI's own modules (`ui/js/*.js`, run with node)
//! and sent to a real `trawl run`.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{Server, agent, now_secs as now, path, run_with, wait_for};

fn assign(ip: &str, app: Option<&str>, at: u64) -> String {
    let app = app.map_or(Value::Null, Value::from);
    json!({"type": "assign", "ip": ip, "at": at, "workload": {
        "app": app, "cluster": "c", "account": "123456789012",
        "region": "us-east-1", "az": "use1-az1", "kind": "instance"}})
    .to_string()
        + "\n"
}

/// A default-format flow line from `src` to `dst` starting at `start`.
fn line(src: &str, dst: &str, src_port: u32, bytes: u64, start: u64) -> String {
    format!(
        "2 123456789012 eni-1 {src} {dst} {src_port} 5432 6 3 {bytes} {start} {} ACCEPT OK\n",
        start + 30
    )
}

/// `trawl run` with `server` as its `[server]` section.
fn start(server: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let running = run_with(dir.path(), server, &[], None);
    (dir, running)
}

fn post(server: &Server, path: &str, content_type: &str, body: &str) {
    let (status, reply) = server.post(path, body.as_bytes(), &[("Content-Type", content_type)]);
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&reply));
}

fn metadata(server: &Server, lines: &str) {
    post(server, "/api/v1/metadata", "application/x-ndjson", lines);
}

fn flows(server: &Server, lines: &str) {
    post(
        server,
        "/api/v1/flows?source=review",
        "application/octet-stream",
        lines,
    );
}

/// Posts `lines` and waits until the `flows` table holds `stored` rows.
fn flows_stored(server: &Server, lines: &str, stored: u64) {
    flows(server, lines);
    wait_for("the flows", Duration::from_secs(20), || {
        rows(server, "SELECT count(*) AS n FROM flows")[0]["n"] == stored
    });
}

/// 10.9.0.1 is `web` and 10.9.0.9 is `db` from `at` on.
fn web_and_db_since(server: &Server, at: u64) {
    metadata(
        server,
        &(assign("10.9.0.1", Some("web"), at) + &assign("10.9.0.9", Some("db"), at)),
    );
}

fn rows(server: &Server, sql: &str) -> Vec<Value> {
    let (status, body) = server.sql(sql, "json");
    assert_eq!(status, 200, "{sql}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// `ui/js/sql.js`'s `function(args)` (or `timerange.js`'s), run by node.
fn ui_js(module: &str, function: &str, args: &Value) -> Value {
    let file = format!(
        "{}/../trawl-server/ui/js/{module}.js",
        env!("CARGO_MANIFEST_DIR")
    );
    let script = format!(
        "import * as m from 'file://{file}';\n\
         const args = JSON.parse(process.argv[1]);\n\
         process.stdout.write(JSON.stringify(m.{function}(...args)));"
    );
    let output = Command::new("node")
        .args(["--input-type=module", "-e", &script, &args.to_string()])
        .output()
        .expect("node on PATH");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn explore_sql(query: &Value) -> String {
    ui_js("sql", "exploreSql", &json!([query]))
        .as_str()
        .unwrap()
        .to_string()
}

/// (series, total) of the explore query's rows (one dimension): the series
/// is its value as JSON (`null` for a missing one), `"rest"` for the top-N
/// remainder.
fn series_totals(rows: &[Value]) -> Vec<(String, u64)> {
    let mut totals: Vec<(String, u64)> = Vec::new();
    for row in rows {
        let name = if row["rest"] == true {
            "rest".to_string()
        } else {
            row["d0"].to_string()
        };
        let value = row["value"].as_u64().unwrap();
        match totals.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += value,
            None => totals.push((name, value)),
        }
    }
    totals
}

// ---------------------------------------------------------------------
// A tail filter takes the server down.
// ---------------------------------------------------------------------

/// `trawl run` under `ulimit -v` (so a runaway allocation aborts the
/// server instead of paging the test machine to death).
struct Limited {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Limited {
    fn start(kib: u64) -> Limited {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("trawl.toml");
        std::fs::write(&config, "[server]\n").unwrap();
        let mut child = Command::new("sh")
            .args([
                "-c",
                &format!("ulimit -v {kib}; exec \"$0\" \"$@\""),
                env!("CARGO_BIN_EXE_trawl"),
                "run",
                "--config",
                path(&config),
                "--data-dir",
                path(&dir.path().join("data")),
                "--listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("the server printed its URL").unwrap();
            if let Some(at) = line.find("http://") {
                let rest = &line[at..];
                let end = rest[7..].find('/').map_or(rest.len(), |i| i + 7);
                break rest[..end].to_string();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Limited {
            child,
            url,
            _dir: dir,
        }
    }

    /// A server in 4 GB of address space that knows web (10.9.0.1) and db
    /// (10.9.0.2).
    fn web_and_db() -> Limited {
        let server = Limited::start(4_000_000);
        let at = now() - 3600;
        let meta = assign("10.9.0.1", Some("web"), at) + &assign("10.9.0.2", Some("db"), at);
        assert_eq!(
            server.post("/api/v1/metadata", "application/x-ndjson", &meta),
            200
        );
        server
    }

    fn post(&self, path: &str, content_type: &str, body: &str) -> u16 {
        agent(None)
            .post(&format!("{}{path}", self.url))
            .header("Content-Type", content_type)
            .send(body)
            .map_or(0, |r| r.status().as_u16())
    }

    fn alive(&mut self) -> Result<(), String> {
        if let Some(status) = self.child.try_wait().unwrap() {
            let mut stderr = String::new();
            let _ = self
                .child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr);
            let first = stderr.lines().next().unwrap_or("").to_string();
            return Err(format!("trawl exited ({status}): {first}"));
        }
        Ok(())
    }
}

/// `length(regexp_replace(regexp_replace(regexp_replace(dst_addr, …))))`:
/// 1,886 bytes of SQL that turn an 8-byte address into ~1.95 GB per row.
fn growing_filter() -> String {
    let x = "x".repeat(600);
    let mut grow = "dst_addr".to_string();
    for _ in 0..3 {
        grow = format!("regexp_replace({grow},'','{x}','g')");
    }
    format!("length({grow}) > 0")
}

/// The status of `GET /api/v1/tail?where=filter` with `headers`, the body
/// read to its end (an accepted stream ends when the server's life cap or
/// the test does).
fn open_tail(url: &str, filter: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = agent(None).get(url).query("where", filter);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.call();
    let status = response.as_ref().map_or(0, |r| r.status().as_u16());
    if let Ok(response) = response {
        let mut sink = Vec::new();
        let _ = response.into_body().into_reader().read_to_end(&mut sink);
    }
    status
}

#[test]
fn a_tail_filter_that_grows_each_row_to_gigabytes_aborted_the_server() {
    let mut server = Limited::web_and_db();
    let url = format!("{}/api/v1/tail", server.url);
    let filter = growing_filter();
    // What a browser sends for `fetch(url, {mode: 'no-cors'})` or an
    // `<img src=url>` on any page: a GET without `Origin`. Refused before
    // the filter is read.
    let cross_site = [
        ("Sec-Fetch-Site", "cross-site"),
        ("Sec-Fetch-Mode", "no-cors"),
        ("Sec-Fetch-Dest", "image"),
    ];
    assert_eq!(open_tail(&url, &filter, &cross_site), 403);
    // The same filter from a client that is not a browser (curl, `trawl
    // tail`): refused by name, as a filter may call only bounded functions.
    let opened = {
        let (url, filter) = (url.clone(), filter.clone());
        std::thread::spawn(move || open_tail(&url, &filter, &[]))
    };
    std::thread::sleep(Duration::from_millis(1_000));
    server.alive().unwrap();
    // One ordinary flow from the pipeline: had a stream been opened with
    // that filter, this row would have been grown to gigabytes.
    assert_eq!(
        server.post(
            "/api/v1/flows?source=review",
            "application/octet-stream",
            &line("10.9.0.1", "10.9.0.2", 40_000, 100, now() - 60),
        ),
        200
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Err(died) = server.alive() {
            panic!("the server died after a tail stream received one flow: {died}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(opened.join().unwrap(), 400, "the filter is refused");
}

// ---------------------------------------------------------------------
// A page on another origin, in a real browser.
// ---------------------------------------------------------------------

/// Serves `page` (HTML) to every request on a port of its own: another
/// origin than the trawl server's.
fn serve_page(page: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    url
}

#[test]
fn a_page_on_another_origin_aborted_the_server_through_the_tail() {
    let mut server = Limited::web_and_db();
    // The pipeline ingests, as a running trawl does.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ingest = {
        let (url, stop) = (server.url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut port = 40_000;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                port += 1;
                let _ = agent(None)
                    .post(&format!("{url}/api/v1/flows?source=review"))
                    .header("Content-Type", "application/octet-stream")
                    .send(&line("10.9.0.1", "10.9.0.2", port, 100, now() - 60));
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // Any web page the user has open: no-cors fetches (opaque to it, and
    // Chromium drops each connection at once, but the filter is the server's).
    let page = format!(
        "<!doctype html><title>elsewhere</title><script>\
         const x = 'x'.repeat(600); let f = 'dst_addr';\
         for (let i = 0; i < 3; i++) f = `regexp_replace(${{f}},'','${{x}}','g')`;\
         (async () => {{ for (let i = 0; i < 200; i++) {{\
           await fetch('{}/api/v1/tail?where=' + encodeURIComponent(`length(${{f}}) > 0`),\
             {{mode: 'no-cors'}}).catch(() => {{}});\
           await new Promise(r => setTimeout(r, 50)); }} }})();\
         </script>",
        server.url
    );
    let elsewhere = serve_page(page);
    let (_browser, tab) = common::browser::chromium();
    tab.navigate_to(&elsewhere)
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut died = None;
    while Instant::now() < deadline {
        if let Err(e) = server.alive() {
            died = Some(e);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    ingest.join().unwrap();
    if let Some(died) = died {
        panic!("a page on {elsewhere} (another origin) took the server down: {died}");
    }
}
/// The explore view's tooltip and the flow map's, with an app name that
/// holds markup (names come from metadata, cloud tags, …).
#[test]
fn chart_tooltips_show_markup_as_text_and_keep_to_the_pages_csp() {
    let (_dir, server) = start("");
    let evil = "<img src=/ui/favicon.svg id=pwn><b id=bold>x</b>";
    let at = now() - 3600;
    metadata(
        &server,
        &(assign("10.9.0.1", Some(evil), at) + &assign("10.9.0.2", Some("db"), at)),
    );
    let start = now() - 120;
    flows_stored(
        &server,
        &line("10.9.0.1", "10.9.0.2", 40_000, 1_000, start),
        1,
    );
    let (_browser, tab) = common::browser::chromium();
    let js = |expression: &str| -> Value {
        tab.evaluate(expression, true)
            .unwrap()
            .value
            .unwrap_or(Value::Null)
    };
    let mut findings = Vec::new();
    for (view, chart) in [
        ("?v=1&from=now-15m&by=src_app&u=total", "explore"),
        ("?v=1&view=flowmap&from=now-15m", "sankey"),
    ] {
        tab.navigate_to(&format!("{}/{view}", server.url))
            .unwrap()
            .wait_until_navigated()
            .unwrap();
        js(
            "window.__csp = []; document.addEventListener('securitypolicyviolation', \
            e => __csp.push(e.violatedDirective + ': ' + (e.sample || e.blockedURI))); true",
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = js(&format!(
                "(async () => {{ const e = await import('/ui/vendor/echarts/echarts.esm.min.mjs');\
                 const c = e.getInstanceByDom(document.querySelector('[data-chart={chart}]'));\
                 return !!c && (c.getOption().series ?? []).length > 0; }})()"
            ));
            if ready == Value::Bool(true) {
                break;
            }
            assert!(Instant::now() < deadline, "{chart} never drew");
            std::thread::sleep(Duration::from_millis(200));
        }
        // Show the tooltip on every point of the evil series / every node.
        js(&format!(
            "(async () => {{ const e = await import('/ui/vendor/echarts/echarts.esm.min.mjs');\
             const c = e.getInstanceByDom(document.querySelector('[data-chart={chart}]'));\
             const s = c.getOption().series;\
             if (s[0].type === 'sankey') {{ c.dispatchAction({{type: 'showTip', seriesIndex: 0, dataType: 'node', dataIndex: 0}}); return true; }}\
             const i = s.findIndex(x => x.name.includes('pwn'));\
             const j = s[i].data.findIndex(p => p[1] > 0);\
             c.dispatchAction({{type: 'showTip', seriesIndex: i, dataIndex: j}}); return true; }})()"
        ));
        std::thread::sleep(Duration::from_millis(800));
        let injected = js("JSON.stringify({img: !!document.querySelector('img#pwn'), \
             bold: !!document.querySelector('b#bold'), csp: window.__csp})");
        let injected: Value = serde_json::from_str(injected.as_str().unwrap()).unwrap();
        eprintln!("{chart}: {injected}");
        if injected["img"] == true || injected["bold"] == true {
            findings.push(format!(
                "{chart}: the name's markup became elements in the tooltip: {injected}"
            ));
        }
        if !injected["csp"].as_array().unwrap().is_empty() {
            findings.push(format!(
                "{chart}: showing the tooltip violates the page's own CSP: {}",
                injected["csp"]
            ));
        }
    }
    assert!(findings.is_empty(), "{findings:#?}");
}

// ---------------------------------------------------------------------
// Numbers the explore view gets wrong.
// ---------------------------------------------------------------------

fn explore_query(table: &str, from: u64, to: u64, top_n: u32, filters: &Value) -> Value {
    json!({
        "table": table, "stepSecs": 60, "from": from, "to": to, "dims": ["src_app"],
        "filters": filters, "measure": "bytes", "topN": top_n, "rank": "avg", "types": {},
    })
}

#[test]
fn an_app_named_other_was_folded_into_the_other_series() {
    let (_dir, server) = start("");
    let at = now() - 3600;
    let apps = [
        ("10.9.0.1", "big", 1_000),
        ("10.9.0.2", "Other", 500),
        ("10.9.0.3", "small1", 20),
        ("10.9.0.4", "small2", 10),
    ];
    let meta: String = apps
        .iter()
        .map(|(ip, app, _)| assign(ip, Some(app), at))
        .chain([assign("10.9.0.9", Some("db"), at)])
        .collect();
    metadata(&server, &meta);
    let start = now() / 60 * 60 - 300;
    let lines: String = apps
        .iter()
        .map(|(ip, _, bytes)| line(ip, "10.9.0.9", 40_000, *bytes, start))
        .collect();
    flows_stored(&server, &lines, 4);
    let (from, to) = (start - 600, start + 600);
    let mut totals = series_totals(&rows(
        &server,
        &explore_sql(&explore_query("flows_1m", from, to, 2, &json!([]))),
    ));
    totals.sort();
    // Top 2 by total: big (1000) and the app Other (500); the rest (30)
    // is the remainder, apart from the app.
    assert_eq!(
        totals,
        [
            ("\"Other\"".to_string(), 500),
            ("\"big\"".to_string(), 1_000),
            ("rest".to_string(), 30)
        ]
    );
    // And the label of the app is not the remainder's.
    let answer = rows(
        &server,
        &explore_sql(&explore_query("flows_1m", from, to, 2, &json!([]))),
    );
    let shown = ui_js(
        "series",
        "toSeries",
        &json!([answer, {"from": from, "to": to, "stepSecs": 60, "unit": "total", "dims": 1}]),
    );
    let names: Vec<&str> = shown["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["big", "'Other'", "Other"]);
}

#[test]
fn a_value_spelled_unknown_was_dropped_by_its_own_drill_down() {
    let (_dir, server) = start("");
    let at = now() - 3600;
    metadata(
        &server,
        &(assign("10.9.0.1", None, at)
            + &assign("10.9.0.2", Some("(unknown)"), at)
            + &assign("10.9.0.3", Some(""), at)
            + &assign("10.9.0.9", Some("db"), at)),
    );
    let start = now() / 60 * 60 - 300;
    flows_stored(
        &server,
        &(line("10.9.0.1", "10.9.0.9", 40_000, 100, start)
            + &line("10.9.0.2", "10.9.0.9", 40_001, 200, start)
            + &line("10.9.0.3", "10.9.0.9", 40_002, 400, start)),
        3,
    );
    let (from, to) = (start - 600, start + 600);
    let shown = rows(
        &server,
        &explore_sql(&explore_query("flows_1m", from, to, 10, &json!([]))),
    );
    let totals = series_totals(&shown);
    eprintln!("series: {totals:?}");
    assert_eq!(totals.len(), 3, "NULL, '(unknown)' and '' are three series");
    for row in &shown {
        // A click on that series adds drillFilters(dims, parts), which
        // then goes through the URL (a reload, a shared link).
        let drill = ui_js("sql", "drillFilters", &json!([["src_app"], [row["d0"]]]));
        let texts: Vec<Value> = drill
            .as_array()
            .unwrap()
            .iter()
            .map(|f| ui_js("sql", "filterText", &json!([f])))
            .collect();
        let reloaded: Vec<Value> = texts
            .iter()
            .map(|t| ui_js("sql", "parseFilter", &json!([t])))
            .collect();
        let drilled = series_totals(&rows(
            &server,
            &explore_sql(&explore_query("flows_1m", from, to, 10, &json!(reloaded))),
        ));
        let total = row["value"].as_u64().unwrap();
        assert_eq!(
            drilled,
            [(row["d0"].to_string(), total)],
            "clicking series {} ({total} bytes), filters {texts:?}",
            row["d0"]
        );
    }
}

/// The server's table list, as the UI reads it.
fn tables(server: &Server) -> Value {
    let (status, body) = server.get_with("/api/v1/tables", &[]);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn a_short_range_a_day_ago_was_asked_of_a_table_that_no_longer_holds_it() {
    let (_dir, server) = start("");
    let day_ago = now() / 60 * 60 - 86_400;
    metadata(
        &server,
        &(assign("10.9.0.1", Some("web"), day_ago - 86_400)
            + &assign("10.9.0.9", Some("db"), day_ago - 86_400)),
    );
    // The newest flow first (it moves the watermark), then the day-old ones.
    flows(
        &server,
        &line("10.9.0.1", "10.9.0.9", 40_000, 1, now() - 60),
    );
    flows(
        &server,
        &(0..5)
            .map(|i| {
                line(
                    "10.9.0.1",
                    "10.9.0.9",
                    41_000 + i,
                    1_000,
                    day_ago + 60 * u64::from(i),
                )
            })
            .collect::<String>(),
    );
    wait_for("the day-old minutes", Duration::from_secs(20), || {
        rows(
            &server,
            &format!(
                "SELECT count(*) AS n FROM flows_1m WHERE time < to_timestamp_seconds({})",
                day_ago + 3600
            ),
        )[0]["n"]
            == 5
    });
    // A 10-minute window a day ago (a brush on the 2d chart, or a typed range).
    let (from, to) = (day_ago - 120, day_ago + 480);
    let picked = ui_js(
        "timerange",
        "pickTable",
        &json!([from, to, 120, tables(&server)]),
    );
    let table = picked["table"].as_str().unwrap();
    assert_eq!(table, "flows_1m", "the detail table keeps 6 hours");
    let step = picked["stepSecs"].as_u64().unwrap();
    let mut query = explore_query(table, from, to, 10, &json!([]));
    query["stepSecs"] = json!(step);
    let shown: u64 = series_totals(&rows(&server, &explore_sql(&query)))
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(shown, 5_000, "explore picked {table} ({step} s buckets)");
}

#[test]
fn a_flat_series_showed_min_zero_on_the_1h_preset() {
    let (_dir, server) = start("");
    web_and_db_since(&server, now() - 3 * 3600);
    // 1000 bytes every minute for the last 70 minutes, this one included.
    let minute = now() / 60 * 60;
    let lines: String = (0..=70)
        .map(|i| {
            line(
                "10.9.0.1",
                "10.9.0.9",
                40_000 + i,
                1_000,
                minute - 60 * u64::from(i),
            )
        })
        .collect();
    flows_stored(&server, &lines, 71);
    // The 1h preset as the page resolves it (`now-1h` .. `now`), `now`
    // anywhere but on a minute boundary; the window as useWindow makes it.
    let to = minute - 30;
    let from = to - 3600;
    let picked = ui_js(
        "timerange",
        "pickTable",
        &json!([from, to, 120, tables(&server)]),
    );
    assert_eq!(picked["table"], "flows_1m");
    let step = picked["stepSecs"].as_u64().unwrap();
    let aligned = ui_js(
        "timerange",
        "alignRange",
        &json!([from, to, picked["grainSecs"]]),
    );
    let (from, to) = (aligned[0].as_u64().unwrap(), aligned[1].as_u64().unwrap());
    let mut query = explore_query("flows_1m", from, to, 10, &json!([]));
    query["stepSecs"] = json!(step);
    let answer = rows(&server, &explore_sql(&query));
    let shown = ui_js(
        "series",
        "toSeries",
        &json!([answer, {"from": from, "to": to, "stepSecs": step, "unit": "total", "dims": 1}]),
    );
    let stats = &shown["series"][0]["stats"];
    eprintln!("web: {stats}");
    assert_eq!(
        (stats["min"].as_f64(), stats["avg"].as_f64()),
        (Some(1000.0), Some(1000.0)),
        "every minute of the range had 1000 bytes; the series table says {stats}"
    );
}

#[test]
fn the_app_page_missed_rejected_flows_past_the_top_100_by_bytes() {
    let (_dir, server) = start("");
    web_and_db_since(&server, now() - 3600);
    let start = now() / 60 * 60 - 300;
    // web → db: 101 service ports with traffic, and one probe rejected on 22.
    let mut lines: String = (0..101)
        .map(|i| {
            format!(
                "2 123456789012 eni-1 10.9.0.1 10.9.0.9 40000 {} 6 3 1000 {start} {} ACCEPT OK\n",
                2000 + i,
                start + 30
            )
        })
        .collect();
    lines.push_str(&format!(
        "2 123456789012 eni-1 10.9.0.1 10.9.0.9 40001 22 6 1 60 {start} {} REJECT OK\n",
        start + 30
    ));
    flows_stored(&server, &lines, 102);
    let (from, to) = (start - 600, start + 600);
    let base = json!({"table": "flows_1m", "from": from, "to": to, "app": "db"});
    let rejected = rows(
        &server,
        ui_js("sql", "appRejectedSql", &json!([base]))
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        rejected,
        [
            json!({"direction": "in", "peer": "web", "service_port": 22, "protocol": 6,
                "flows": 1, "packets": 1, "bytes": 60})
        ]
    );
    let ports = rows(
        &server,
        ui_js("sql", "appPortsSql", &json!([base]))
            .as_str()
            .unwrap(),
    );
    assert_eq!(ports.len(), 102, "every service port db answered on");
    let probe = ports.iter().find(|p| p["service_port"] == 22).unwrap();
    assert_eq!(probe["rejected_flows"], 1);
}

/// Cold review of the one-read explore query: grouped by `src_app` and
/// filtered `src_app = web` (what a click on a series adds), the window
/// query failed to plan over a range with no rows (DataFusion's
/// SanityCheckPlan, a 400; on a 1-CPU host over any range) where the
/// top-N join had answered.
#[test]
fn a_drill_down_over_an_empty_range_failed_to_plan() {
    let (_dir, server) = start("");
    web_and_db_since(&server, now() - 3600);
    flows_stored(
        &server,
        &line("10.9.0.1", "10.9.0.9", 40_000, 1_000, now() / 60 * 60 - 120),
        1,
    );
    let pinned = json!([{"column": "src_app", "op": "=", "values": ["web"]}]);
    let minute = now() / 60 * 60;
    for rank in ["avg", "max", "last"] {
        for (from, to, expected) in [
            (minute - 86_400, minute - 82_800, 0),
            (minute - 600, minute, 1_000),
        ] {
            let mut query = explore_query("flows_1m", from, to, 10, &pinned);
            query["rank"] = json!(rank);
            let answer = rows(&server, &explore_sql(&query));
            let total: u64 = series_totals(&answer).iter().map(|(_, v)| v).sum();
            assert_eq!(total, expected, "{rank} over {from}..{to}: {answer:?}");
        }
    }
}
