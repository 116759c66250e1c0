//! The web UI in a real browser: Debian's chromium, headless, driven over
//! the DevTools protocol (headless_chrome), against `trawl demo`.
//!
//! Each view is loaded and used as a person would (presets, typed ranges,
//! group-by, the filter bar typed with the keyboard, Start on the live
//! tail), and what it shows is checked against the same question asked
//! through SQL by this test, with SQL of its own (not the UI's). Every
//! request must stay on the server's origin and the console must stay free
//! of errors (CSP violations included). Screenshots of every view go to
//! `target/ui-screenshots/`.
//!
//! Needs `chromium` on PATH (`.ci/test-deps` installs it).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::Server;
use common::browser::{Ui, now_secs, sql};
use trawl_attrib::format_time;

/// (label, sum of bytes) of `dim` over `[from, to)` with `extra` conditions,
/// asked the simplest way.
fn sql_totals(
    server: &Server,
    dim: &str,
    (from, to): (i64, i64),
    extra: &str,
) -> Vec<(String, u64)> {
    let rows = sql(
        server,
        &format!(
            "SELECT coalesce(CAST({dim} AS VARCHAR), '(unknown)') AS s, sum(bytes) AS v FROM flows_1m \
             WHERE time >= to_timestamp_seconds({from}) AND time < to_timestamp_seconds({to}) {extra} \
             GROUP BY 1 ORDER BY 2 DESC"
        ),
    );
    rows.iter()
        .map(|r| {
            (
                r["s"].as_str().unwrap().to_string(),
                r["v"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// (series label, score) of the series `label` (SQL) over `[from, to)`
/// for ranking `rank` (`avg`: total; `max`: highest minute), asked the
/// simplest way.
fn sql_scores(
    server: &Server,
    label: &str,
    rank: &str,
    (from, to): (i64, i64),
) -> Vec<(String, u64)> {
    let score = if rank == "max" { "max(v)" } else { "sum(v)" };
    let rows = sql(
        server,
        &format!(
            "SELECT s, {score} AS v FROM (SELECT date_bin(INTERVAL '60 seconds', time) AS t, \
             {label} AS s, sum(bytes) AS v FROM flows_1m \
             WHERE time >= to_timestamp_seconds({from}) AND time < to_timestamp_seconds({to}) \
             GROUP BY 1, 2) GROUP BY 1"
        ),
    );
    rows.iter()
        .map(|r| {
            let name = r["s"].as_str().unwrap().to_string();
            (name, r["v"].as_u64().unwrap())
        })
        .collect()
}

/// The series shown (all but "Other") are `n` of the highest by `scores`:
/// none left out scores above one shown (ties may go either way).
fn assert_top_n(shown: &[(String, u64)], scores: &[(String, u64)], n: usize, what: &str) {
    let names: Vec<&str> = shown
        .iter()
        .map(|(s, _)| s.as_str())
        .filter(|s| *s != "Other")
        .collect();
    assert_eq!(
        names.len(),
        n.min(scores.len()),
        "{what}: series shown {names:?}"
    );
    let score = |name: &str| scores.iter().find(|(s, _)| s == name).map(|(_, v)| *v);
    let lowest_shown = names.iter().map(|n| score(n).expect(n)).min().unwrap();
    let highest_left = scores
        .iter()
        .filter(|(s, _)| !names.contains(&s.as_str()))
        .map(|(_, v)| *v)
        .max()
        .unwrap_or(0);
    assert!(
        lowest_shown >= highest_left,
        "{what}: a series left out scores {highest_left}, above {lowest_shown} shown"
    );
}

/// A series' label of `src_app` in SQL.
const APP: &str = "coalesce(CAST(src_app AS VARCHAR), '(unknown)')";

fn assert_same_totals(ui: &[(String, u64)], sql: &[(String, u64)], what: &str) {
    assert!(!ui.is_empty(), "{what}: the table is empty");
    for (series, total) in ui.iter().filter(|(s, _)| s != "Other") {
        let expected = sql.iter().find(|(s, _)| s == series).map(|(_, v)| *v);
        assert_eq!(Some(*total), expected, "{what}: series {series}");
    }
    let ui_sum: u64 = ui.iter().map(|(_, v)| v).sum();
    let sql_sum: u64 = sql.iter().map(|(_, v)| v).sum();
    assert_eq!(ui_sum, sql_sum, "{what}: all series together");
}

#[test]
fn every_view_shows_what_sql_says_in_a_real_browser() {
    let ui = Ui::start(&["--backfill-secs", "1800", "--rate", "1000"]);
    let server = &ui.server;
    // A settled window of the backfill: whole minutes, 20 to 5 minutes ago.
    let to = (now_secs() - 300) / 60 * 60;
    let range = (to - 1200, to);
    let (from_iso, to_iso) = (format_time(range.0), format_time(range.1));

    // Explore, first load: sizes, then the table and the chart against SQL.
    ui.open(&format!(
        "?v=1&from={from_iso}&to={to_iso}&by=src_region&u=total"
    ));
    ui.until(
        "the explore table",
        "document.querySelectorAll('[data-testid=series-table] tbody tr').length > 0",
    );
    let transferred = ui.js(
        "performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))\
         .reduce((a, e) => a + e.transferSize, 0)",
    );
    let transferred = transferred.as_f64().unwrap();
    eprintln!("first load: {transferred} bytes transferred");
    assert!(transferred < 1_000_000.0, "first load {transferred} bytes");
    let totals = ui.table_totals();
    assert_same_totals(
        &totals,
        &sql_totals(server, "src_region", range, ""),
        "explore by src_region",
    );
    for (name, sum) in ui.chart_sums("explore") {
        let total = totals.iter().find(|(s, _)| *s == name).unwrap().1;
        assert_eq!(
            sum as u64, total,
            "chart series {name} sums to its table total"
        );
    }
    ui.shot("explore");

    // Top N of many: the ten apps shown are the ten highest by each ranking.
    for rank in ["avg", "max"] {
        ui.open(&format!(
            "?v=1&from={from_iso}&to={to_iso}&by=src_app&n=10&rank={rank}&u=total"
        ));
        ui.until(
            "11 rows",
            "document.querySelectorAll('[data-testid=series-table] tbody tr').length === 11",
        );
        let shown = ui.table_totals();
        let scores = sql_scores(server, APP, rank, range);
        assert_top_n(&shown, &scores, 10, rank);
        assert_same_totals(
            &shown,
            &sql_totals(server, "src_app", range, ""),
            &format!("top 10 apps by {rank}"),
        );
    }

    // A preset range: the URL follows and the detail table answers.
    ui.tab
        .find_element("button[data-preset='15m']")
        .unwrap()
        .click()
        .unwrap();
    ui.until(
        "the 15 min range",
        "location.search.includes('from=now-15m')",
    );
    ui.until(
        "the detail table",
        "document.body.innerText.includes('flows · 10 s buckets')",
    );
    ui.until(
        "15 min series",
        "document.querySelectorAll('[data-testid=series-table] tbody tr').length > 0",
    );

    // Typed absolute range, another group-by, and a filter typed with the keyboard.
    for (name, value) in [("from", &from_iso), ("to", &to_iso)] {
        let input = ui.tab.find_element(&format!("input[name={name}]")).unwrap();
        input.click().unwrap();
        ui.js(&format!(
            "document.querySelector('input[name={name}]').select(), true"
        ));
        ui.tab.type_str(value).unwrap();
    }
    ui.tab.press_key("Enter").unwrap();
    ui.until(
        "the typed range",
        &format!(
            "location.search.includes('from={}')",
            from_iso.replace(':', "%3A")
        ),
    );
    ui.set_select("by0", "dst_az");
    ui.until("group by dst_az", "location.search.includes('by=dst_az')");
    ui.tab
        .find_element("input[name=filter]")
        .unwrap()
        .click()
        .unwrap();
    ui.tab.type_str("action = ACCEPT").unwrap();
    ui.tab.press_key("Enter").unwrap();
    ui.until(
        "the filter chip",
        "document.querySelector('[data-filter=\"action = ACCEPT\"]') !== null",
    );
    assert!(ui.url().contains("f=action+%3D+ACCEPT"), "{}", ui.url());
    std::thread::sleep(Duration::from_millis(500));
    ui.until(
        "filtered rows",
        "document.querySelectorAll('[data-testid=series-table] tbody tr').length > 0",
    );
    std::thread::sleep(Duration::from_millis(1500));
    let filtered = ui.table_totals();
    assert_same_totals(
        &filtered,
        &sql_totals(server, "dst_az", range, "AND action = 'ACCEPT'"),
        "explore by dst_az, ACCEPT only",
    );
    for (name, sum) in ui.chart_sums("explore") {
        let total = filtered.iter().find(|(s, _)| *s == name).unwrap().1;
        assert_eq!(
            sum as u64, total,
            "filtered chart series {name} sums to its table total"
        );
    }
    ui.shot("explore-filtered");

    // A bad filter is an inline error, not a broken page.
    ui.tab
        .find_element("input[name=filter]")
        .unwrap()
        .click()
        .unwrap();
    ui.tab.type_str("no_such_column = 1").unwrap();
    ui.tab.press_key("Enter").unwrap();
    ui.until("the inline error", "document.querySelector('[data-testid=filter-error]')?.innerText.includes('no_such_column') === true");

    // 50 series stay responsive: the table fills and a chart change redraws fast.
    ui.open(&format!(
        "?v=1&from={from_iso}&to={to_iso}&by=src_app%2Cdst_app&n=50"
    ));
    ui.until(
        "51 rows",
        "document.querySelectorAll('[data-testid=series-table] tbody tr').length === 51",
    );
    let pair = format!("concat({APP}, ' · ', {})", APP.replace("src_", "dst_"));
    let pairs = ui.table_totals();
    assert_top_n(
        &pairs,
        &sql_scores(server, &pair, "avg", range),
        50,
        "app pairs",
    );
    let redraw_ms = ui.js(
        "(async () => { const t = performance.now(); const s = document.querySelector('select[name=chart]');\
         s.value = 'lines'; s.dispatchEvent(new Event('change', { bubbles: true }));\
         await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));\
         return performance.now() - t; })()",
    );
    eprintln!("50 series: redraw after a chart change {redraw_ms} ms");
    assert!(redraw_ms.as_f64().unwrap() < 2000.0);
    ui.shot("explore-50-series");

    // Flow map: the matrices hold every byte, crossing cells are marked.
    ui.open(&format!(
        "?v=1&view=flowmap&from={from_iso}&to={to_iso}&side=region"
    ));
    ui.until(
        "the AZ matrix",
        "document.querySelectorAll('[data-testid=matrix-az] td').length > 0",
    );
    ui.until(
        "the sankey",
        "document.querySelector('[data-chart=sankey] canvas') !== null",
    );
    let all_bytes: u64 = sql_totals(server, "src_region", range, "")
        .iter()
        .map(|(_, v)| v)
        .sum();
    for matrix in ["matrix-region", "matrix-az"] {
        let sum = ui.js(&format!(
            "[...document.querySelectorAll('[data-testid={matrix}] td')].reduce((a, td) => a + Number(td.dataset.bytes), 0)"
        ));
        assert_eq!(
            sum.as_f64().unwrap() as u64,
            all_bytes,
            "{matrix} holds every byte"
        );
    }
    let wrong_crossings = ui.js(
        "[...document.querySelectorAll('[data-testid=matrix-az] tbody tr')].flatMap(tr => {\
           const src = tr.querySelector('th').innerText;\
           const heads = [...document.querySelectorAll('[data-testid=matrix-az] thead th')].slice(1).map(th => th.innerText);\
           return [...tr.querySelectorAll('td')].map((td, i) => td.classList.contains('cross') !== (src !== heads[i] && src !== '(unknown)' && heads[i] !== '(unknown)'));\
         }).filter(Boolean).length",
    );
    assert_eq!(
        wrong_crossings.as_i64(),
        Some(0),
        "cross-AZ cells are exactly the crossing ones"
    );
    let links: f64 = ui.chart_sums("sankey").iter().map(|(_, v)| v).sum();
    assert!(links > 0.0);
    ui.shot("flowmap");

    // App page: its busiest peer is the one SQL finds.
    let top = sql(
        server,
        &format!(
            "SELECT src_app, dst_app, sum(bytes) AS b FROM flows_1m WHERE time >= to_timestamp_seconds({}) \
             AND time < to_timestamp_seconds({}) AND src_app IS NOT NULL AND dst_app IS NOT NULL \
             GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 1",
            range.0, range.1
        ),
    );
    let app = top[0]["src_app"].as_str().unwrap();
    ui.open(&format!(
        "?v=1&view=app&app={app}&from={from_iso}&to={to_iso}"
    ));
    ui.until(
        "the app's peers",
        "document.querySelectorAll('[data-testid=app-out] tbody tr').length > 0",
    );
    let peers = ui.js(
        "JSON.stringify([...document.querySelectorAll('[data-testid=app-out] tbody tr')].map(tr => tr.querySelector('td').innerText))",
    );
    assert!(
        peers
            .as_str()
            .unwrap()
            .contains(top[0]["dst_app"].as_str().unwrap()),
        "{peers}"
    );
    ui.shot("app");
    // Every app name links to its page.
    ui.tab
        .find_element("[data-testid=app-in] a.app-link")
        .unwrap()
        .click()
        .unwrap();
    ui.until(
        "another app page",
        &format!("!location.search.includes('app={app}&') && location.search.includes('view=app')"),
    );

    // Whois: the holder the index has, and the whole history.
    let held = sql(
        server,
        "SELECT ip, CAST(valid_from AS BIGINT) AS f, app, count(*) OVER (PARTITION BY ip) AS n FROM ip_history \
         WHERE app IS NOT NULL ORDER BY n DESC, ip LIMIT 1",
    );
    let ip = held[0]["ip"].as_str().unwrap();
    let history = sql(
        server,
        &format!("SELECT app FROM ip_history WHERE ip = '{ip}' ORDER BY valid_from"),
    );
    let first = sql(
        server,
        &format!(
            "SELECT CAST(valid_from AS BIGINT) AS f, app FROM ip_history WHERE ip = '{ip}' ORDER BY valid_from LIMIT 1"
        ),
    );
    let at = first[0]["f"].as_i64().unwrap();
    ui.open(&format!("?v=1&view=whois&ip={ip}&at={at}"));
    ui.until(
        "the whois answer",
        "document.querySelector('[data-testid=whois-answer]') !== null",
    );
    // The demo keeps churning: the history may have grown since.
    ui.until(
        "the history",
        &format!(
            "document.querySelectorAll('[data-testid=ip-history] tbody tr').length >= {}",
            history.len()
        ),
    );
    let answer = ui.js("document.querySelector('[data-testid=whois-answer]').innerText");
    assert!(
        answer
            .as_str()
            .unwrap()
            .contains(first[0]["app"].as_str().unwrap()),
        "{answer}"
    );
    ui.shot("whois");

    // Live tail: new flows arrive within a second or so of ingestion.
    ui.open("?v=1&view=tail&where=action+%3D+%27ACCEPT%27+AND+bytes+%3E+0");
    ui.tab
        .find_element("[data-testid=tail-start]")
        .unwrap()
        .click()
        .unwrap();
    let started = Instant::now();
    ui.until(
        "tailed rows",
        "document.querySelectorAll('[data-testid=tail-rows] tbody tr').length > 0",
    );
    eprintln!("live tail: first rows after {:?}", started.elapsed());
    let addresses = ui.js(
        "[...document.querySelectorAll('[data-testid=tail-rows] tbody tr')].every(tr => /^\\d+\\.\\d+\\.\\d+\\.\\d+$/.test(tr.children[2].innerText))",
    );
    assert_eq!(
        addresses,
        serde_json::Value::Bool(true),
        "tailed rows carry their source address"
    );
    let matching = ui.js(
        "[...document.querySelectorAll('[data-testid=tail-rows] tbody tr')].every(tr => tr.children[8].innerText === 'ACCEPT')",
    );
    assert_eq!(
        matching,
        serde_json::Value::Bool(true),
        "only flows the filter matches"
    );
    ui.until(
        "matched flows counted",
        "/matched [1-9]/.test(document.querySelector('[data-testid=tail-status]').innerText)",
    );
    ui.tab
        .find_element("[data-testid=tail-pause]")
        .unwrap()
        .click()
        .unwrap();
    ui.shot("tail");

    // SQL view: the answer of a fixed question, completion, and the time.
    let question = format!(
        "SELECT sum(bytes) AS b FROM flows_1m WHERE time >= to_timestamp_seconds({}) AND time < to_timestamp_seconds({})",
        range.0, range.1
    );
    // A statement that comes with a link (from any site) waits for Run.
    ui.open(&format!("?v=1&view=sql&sql={}", urlencode(&question)));
    ui.until(
        "the link's statement, not run",
        "document.querySelector('[data-testid=sql-from-link]') !== null",
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        ui.js("document.querySelectorAll('[data-testid=sql-rows] tbody tr').length"),
        serde_json::json!(0),
        "a linked statement ran before the user asked"
    );
    ui.tab
        .find_element("[data-testid=sql-run]")
        .unwrap()
        .click()
        .unwrap();
    ui.until(
        "the SQL result",
        "document.querySelectorAll('[data-testid=sql-rows] tbody tr').length === 1",
    );
    let shown = ui.js("document.querySelector('[data-testid=sql-rows] tbody td').innerText");
    assert_eq!(shown.as_str().unwrap(), all_bytes.to_string());
    ui.until(
        "the query time",
        "document.querySelector('[data-testid=sql-time]') !== null",
    );
    ui.tab
        .find_element("textarea[name=sql]")
        .unwrap()
        .click()
        .unwrap();
    ui.tab.type_str(" flo").unwrap();
    ui.until("completion", "document.querySelector('[data-testid=sql-completion]')?.innerText.includes('flows_1m') === true");
    ui.shot("sql");

    // Dark mode.
    ui.open(&format!("?v=1&from={from_iso}&to={to_iso}&by=src_az"));
    ui.tab
        .find_element("[data-testid=theme]")
        .unwrap()
        .click()
        .unwrap();
    ui.until("dark", "document.documentElement.dataset.theme === 'dark'");
    ui.shot("explore-dark");

    let watch = ui.watch.lock().unwrap();
    assert!(
        watch.foreign.is_empty(),
        "requests left the origin: {:?}",
        watch.foreign
    );
    assert!(
        watch.errors.is_empty(),
        "console errors: {:#?}",
        watch.errors
    );
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
