//! Driving trawl's web UI in Debian's chromium (headless, over the
//! DevTools protocol with headless_chrome) against a `trawl demo`: open a
//! view, evaluate JavaScript, wait for a condition, read the explore
//! table and the charts, take screenshots into `target/ui-screenshots/`,
//! and watch for console errors and for requests that leave the origin.
//! Used by `tests/ui_browser.rs` and `benches/ui_views.rs`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

use super::{Server, wait_for};

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    super::now_secs() as i64
}

/// Debian's chromium, headless (without the sandbox: CI runs as root),
/// 1440×1000, and a tab that waits up to 30 s for elements.
pub fn chromium() -> (Browser, Arc<Tab>) {
    let browser = Browser::new(LaunchOptions {
        headless: true,
        sandbox: false,
        window_size: Some((1440, 1000)),
        path: Some(PathBuf::from("/usr/bin/chromium")),
        idle_browser_timeout: Duration::from_secs(300),
        ..LaunchOptions::default()
    })
    .expect("chromium starts (installed by .ci/test-deps)");
    let tab = browser.new_tab().unwrap();
    tab.set_default_timeout(Duration::from_secs(30));
    (browser, tab)
}

/// The rows `sql` answers (JSON), asserting a 200.
pub fn sql(server: &Server, sql: &str) -> Vec<Value> {
    let (status, body) = server.sql(sql, "json");
    assert_eq!(status, 200, "{sql}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// What the browser reported that a test must not see.
#[derive(Default)]
pub struct Watch {
    /// Console errors and warnings, exceptions, error log entries.
    pub errors: Vec<String>,
    /// Requests to anything but the server's origin.
    pub foreign: Vec<String>,
}

/// A demo server and a browser tab on it.
pub struct Ui {
    /// The `trawl demo` child.
    pub server: Server,
    _browser: Browser,
    /// The tab.
    pub tab: Arc<Tab>,
    /// What the tab reported.
    pub watch: Arc<Mutex<Watch>>,
    shots: PathBuf,
}

impl Ui {
    /// Starts `trawl demo DEMO_ARGS` on a free port, waits for its
    /// backfill, and opens chromium on it.
    pub fn start(demo_args: &[&str]) -> Ui {
        let port = super::kafka::free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["demo", "--listen", &listen];
        args.extend_from_slice(demo_args);
        let server = Server::start(&args);
        // The backfill is in once the newest minute is close to now.
        wait_for("the demo's backfill", Duration::from_secs(240), || {
            let rows = sql(
                &server,
                "SELECT CAST(max(time) AS BIGINT) AS t FROM flows_1m",
            );
            rows[0]["t"].as_i64().is_some_and(|t| t >= now_secs() - 180)
        });
        let (browser, tab) = chromium();
        let watch = Arc::new(Mutex::new(Watch::default()));
        let origin = server.url.clone();
        let seen = watch.clone();
        tab.enable_runtime().unwrap();
        tab.enable_log().unwrap();
        tab.add_event_listener(Arc::new(move |event: &Event| {
            let mut w = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match event {
                Event::RuntimeExceptionThrown(e) => {
                    w.errors
                        .push(format!("exception: {:?}", e.params.exception_details));
                }
                Event::RuntimeConsoleAPICalled(e) => {
                    let level = format!("{:?}", e.params.Type);
                    if level.contains("Error") || level.contains("Warning") {
                        w.errors
                            .push(format!("console {level}: {:?}", e.params.args));
                    }
                }
                Event::LogEntryAdded(e) => {
                    let level = format!("{:?}", e.params.entry.level);
                    if level.contains("Error") {
                        w.errors.push(format!(
                            "log {level}: {} {:?}",
                            e.params.entry.text, e.params.entry.url
                        ));
                    }
                }
                Event::NetworkRequestWillBeSent(e) => {
                    let url = &e.params.request.url;
                    if !url.starts_with(&origin)
                        && !url.starts_with("blob:")
                        && !url.starts_with("data:")
                    {
                        w.foreign.push(url.clone());
                    }
                }
                _ => {}
            }
        }))
        .unwrap();
        tab.register_response_handling("origin", Box::new(|_, _| {}))
            .unwrap();
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Ui {
            server,
            _browser: browser,
            tab,
            watch,
            shots,
        }
    }

    /// Navigates to `QUERY` on the server (`?v=1&…`).
    pub fn open(&self, query: &str) {
        self.tab
            .navigate_to(&format!("{}/{query}", self.server.url))
            .unwrap()
            .wait_until_navigated()
            .unwrap();
    }

    /// The value of `expression` (awaited when it is a promise).
    pub fn js(&self, expression: &str) -> Value {
        let result = self.tab.evaluate(expression, true).unwrap();
        result.value.unwrap_or(Value::Null)
    }

    /// Waits until `expression` is true; past a minute, fails with a
    /// screenshot (`timeout.png`) and the page's text.
    pub fn until(&self, what: &str, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.js(expression) != Value::Bool(true) {
            if Instant::now() > deadline {
                self.shot("timeout");
                let text = self.js("document.body.innerText.slice(0, 3000)");
                panic!(
                    "timed out waiting for {what} at {}:\n{}",
                    self.url(),
                    text.as_str().unwrap_or("")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a screenshot as `target/ui-screenshots/NAME.png`.
    pub fn shot(&self, name: &str) {
        // Let charts finish drawing.
        std::thread::sleep(Duration::from_millis(400));
        let png = self
            .tab
            .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
            .unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// The explore table: (series, total) per row.
    pub fn table_totals(&self) -> Vec<(String, u64)> {
        let rows = self.js(
            "JSON.stringify([...document.querySelectorAll('[data-testid=series-table] tbody tr')]\
             .map(tr => [tr.dataset.series, Number(tr.querySelector('[data-total]').dataset.total)]))",
        );
        serde_json::from_str::<Vec<(String, u64)>>(rows.as_str().unwrap()).unwrap()
    }

    /// A chart's series: (name, sum of its values; of its links for a Sankey).
    pub fn chart_sums(&self, chart: &str) -> Vec<(String, f64)> {
        let rows = self.js(&format!(
            "(async () => {{ const e = await import('/ui/vendor/echarts/echarts.esm.min.mjs');\
             const c = e.getInstanceByDom(document.querySelector('[data-chart={chart}]'));\
             return JSON.stringify(c.getOption().series.map(s => [s.name ?? s.type, s.links\
               ? s.links.reduce((a, l) => a + l.value, 0)\
               : s.data.reduce((a, p) => a + (Array.isArray(p) ? p[1] : p), 0)])); }})()"
        ));
        serde_json::from_str(rows.as_str().unwrap()).unwrap()
    }

    /// Picks `value` in the select named `name`, as a person would.
    pub fn set_select(&self, name: &str, value: &str) {
        self.js(&format!(
            "(() => {{ const s = document.querySelector('select[name={name}]'); s.value = '{value}';\
             s.dispatchEvent(new Event('change', {{ bubbles: true }})); return true; }})()"
        ));
    }

    /// The page's query string.
    pub fn url(&self) -> String {
        self.js("location.search").as_str().unwrap().to_string()
    }
}
