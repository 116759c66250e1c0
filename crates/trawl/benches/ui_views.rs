//! How fast each view of the web UI gets its answers (issue 16 #11), in a
//! real browser, on the demo's data after an hour: `trawl demo
//! --backfill-secs 3600` (an hour of history at 2,000 flows/s), chromium
//! headless on it (tests/common/browser.rs). Each view is opened, then run
//! again `TRAWL_UI_RUNS` times (default 15) with its refresh; the page
//! records every query's time as it saw it (request, server, JSON) as a
//! `trawl-sql` performance measure. Printed per view: the p50 and p95 of
//! its slowest query per run (a view is as fast as its slowest panel), and
//! the p50 of each query. `cargo bench -p trawl --bench ui_views`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

#[path = "../tests/common/mod.rs"]
mod common;

use common::browser::{Ui, sql};

fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).round() as usize]
}

/// The measures recorded since the last call: (query text, ms).
fn take_measures(ui: &Ui) -> Vec<(String, f64)> {
    let json = ui.js(
        "(() => { const m = performance.getEntriesByName('trawl-sql').map(e => [e.detail, e.duration]);\
         performance.clearMeasures('trawl-sql'); return JSON.stringify(m); })()",
    );
    serde_json::from_str(json.as_str().unwrap()).unwrap()
}

fn main() {
    let runs: usize = std::env::var("TRAWL_UI_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let ui = Ui::start(&["--backfill-secs", "3600"]);
    let app = sql(
        &ui.server,
        "SELECT src_app FROM flows_1m WHERE src_app IS NOT NULL GROUP BY 1 ORDER BY sum(bytes) DESC LIMIT 1",
    )[0]["src_app"]
        .as_str()
        .unwrap()
        .to_string();
    let views: Vec<(&str, String, &str)> = vec![
        (
            "explore 1 h by src_app",
            "?v=1".into(),
            "[data-testid=series-table] tbody tr",
        ),
        (
            "explore 15 min (flows)",
            "?v=1&from=now-15m".into(),
            "[data-testid=series-table] tbody tr",
        ),
        (
            "explore 1 h, 50 series of app pairs",
            "?v=1&by=src_app%2Cdst_app&n=50".into(),
            "[data-testid=series-table] tbody tr",
        ),
        (
            "explore 1 h by dst_az, filtered",
            "?v=1&by=dst_az&f=action+%3D+ACCEPT&f=src_region+%21%3D+us-east-1".into(),
            "[data-testid=series-table] tbody tr",
        ),
        (
            "flow map by app",
            "?v=1&view=flowmap".into(),
            "[data-testid=matrix-az] td",
        ),
        (
            "flow map by region",
            "?v=1&view=flowmap&side=region".into(),
            "[data-testid=matrix-az] td",
        ),
        (
            "app page",
            format!("?v=1&view=app&app={app}"),
            "[data-testid=app-out] tbody tr",
        ),
    ];
    println!("view | runs | slowest query p50 ms | p95 ms | queries (p50 ms each)");
    println!("---|---|---|---|---");
    for (name, query, ready) in views {
        ui.open(&query);
        ui.until(name, &format!("document.querySelector('{ready}') !== null"));
        std::thread::sleep(Duration::from_millis(300));
        take_measures(&ui);
        let mut slowest = Vec::new();
        let mut per_query: Vec<(String, Vec<f64>)> = Vec::new();
        for _ in 0..runs {
            ui.js("document.querySelector('button[title^=\"Run again\"]').click(), true");
            std::thread::sleep(Duration::from_millis(150));
            ui.until(name, "!document.body.innerText.includes('loading…')");
            std::thread::sleep(Duration::from_millis(100));
            let measures = take_measures(&ui);
            if measures.is_empty() {
                continue;
            }
            slowest.push(measures.iter().map(|(_, ms)| *ms).fold(0.0, f64::max));
            for (text, ms) in measures {
                let key: String = text
                    .split_whitespace()
                    .take(12)
                    .collect::<Vec<_>>()
                    .join(" ");
                match per_query.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, times)) => times.push(ms),
                    None => per_query.push((key, vec![ms])),
                }
            }
        }
        let each: Vec<String> = per_query
            .iter()
            .map(|(k, t)| {
                format!(
                    "`{}…` {:.0}",
                    &k[..k.len().min(48)],
                    quantile(t.clone(), 0.5)
                )
            })
            .collect();
        println!(
            "{name} | {} | {:.0} | {:.0} | {}",
            slowest.len(),
            quantile(slowest.clone(), 0.5),
            quantile(slowest, 0.95),
            each.join("; ")
        );
    }
    let watch = ui.watch.lock().unwrap();
    assert!(
        watch.errors.is_empty(),
        "console errors: {:#?}",
        watch.errors
    );
}
