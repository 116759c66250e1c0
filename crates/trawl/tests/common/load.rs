//! A bounded load run on loopback: one client pushes flow payloads over
//! HTTP while others send SQL, against a `trawl run` child. Fixed counts,
//! a deadline, and at the end every pushed record must be in `flows_1m`
//! exactly once. Used small by `tests/load.rs` (correctness) and large
//! by `benches/http_load.rs` (latency figures, release build).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::Server;

/// How much load.
#[derive(Debug, Clone, Copy)]
pub struct LoadPlan {
    /// Payloads pushed, one after the other.
    pub pushes: usize,
    /// Flow lines in each payload.
    pub lines_per_push: usize,
    /// SQL clients running at once.
    pub sql_clients: usize,
    /// Queries each SQL client sends.
    pub queries_per_client: usize,
    /// Give up (and fail) after this long.
    pub deadline: Duration,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Records pushed (all answered 200).
    pub records_pushed: u64,
    /// Records `flows_1m` counts at the end.
    pub records_stored: u64,
    /// Wall time of the pushes.
    pub push_secs: f64,
    /// Latency of every SQL request, sorted (milliseconds).
    pub sql_ms: Vec<f64>,
    /// SQL requests not answered 200.
    pub sql_failures: usize,
}

impl LoadReport {
    /// The `q` quantile of SQL latency (milliseconds).
    pub fn sql_quantile_ms(&self, q: f64) -> f64 {
        if self.sql_ms.is_empty() {
            return 0.0;
        }
        let at = ((self.sql_ms.len() - 1) as f64 * q).round() as usize;
        self.sql_ms[at]
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        format!(
            "pushed {} records in {:.2} s ({:.0} records/s over HTTP), stored {} (lost {}); \
             {} SQL requests: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} not 200",
            self.records_pushed,
            self.push_secs,
            self.records_pushed as f64 / self.push_secs.max(1e-9),
            self.records_stored,
            self.records_pushed as i64 - self.records_stored as i64,
            self.sql_ms.len(),
            self.sql_quantile_ms(0.5),
            self.sql_quantile_ms(0.99),
            self.sql_ms.last().copied().unwrap_or(0.0),
            self.sql_failures,
        )
    }
}

const QUERIES: [&str; 4] = [
    "SELECT src_app, dst_app, sum(bytes) AS bytes FROM flows_1m GROUP BY 1, 2 ORDER BY bytes DESC LIMIT 20",
    "SELECT date_trunc('minute', time) AS t, sum(flows) AS flows FROM flows_1m GROUP BY 1 ORDER BY 1",
    "SELECT count(*) AS n FROM flows WHERE dst_port = 443",
    "SELECT protocol, action, sum(packets) AS p FROM flows_1m GROUP BY 1, 2",
];

/// Payload `n`: a header and `lines` flows between public addresses
/// (stored at once: no metadata to wait for), minutes before now.
fn payload(n: usize, lines: usize, now: u64) -> String {
    let mut text = String::from(
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n",
    );
    for i in 0..lines {
        let k = n * lines + i;
        let start = now - 900 + (k as u64 % 600);
        let _ = writeln!(
            text,
            "2 123456789012 eni-{} 198.51.{}.{} 203.0.{}.{} {} 443 6 {} {} {start} {} ACCEPT OK",
            k % 97,
            (k / 250) % 250,
            k % 250,
            (k / 7) % 250,
            k % 199,
            1024 + k % 60_000,
            1 + k % 10,
            100 + k % 1_000,
            start + 60,
        );
    }
    text
}

fn sql_client(server: &Server, queries: usize, stop: &AtomicBool) -> (Vec<f64>, usize) {
    let (mut ms, mut failures) = (Vec::with_capacity(queries), 0);
    for i in 0..queries {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let started = Instant::now();
        let (status, _) = server.sql(QUERIES[i % QUERIES.len()], "json");
        ms.push(started.elapsed().as_secs_f64() * 1e3);
        failures += usize::from(status != 200);
    }
    (ms, failures)
}

/// Runs `plan` against `server` (which must start empty).
pub fn run(server: &Server, plan: LoadPlan) -> LoadReport {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let (push_secs, (sql_ms, sql_failures)) = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..plan.sql_clients)
            .map(|_| scope.spawn(|| sql_client(server, plan.queries_per_client, &stop)))
            .collect();
        for n in 0..plan.pushes {
            assert!(
                started.elapsed() < plan.deadline,
                "past the deadline at push {n}"
            );
            let body = payload(n, plan.lines_per_push, now);
            let (status, answer) = server.post(
                "/api/v1/flows?source=load",
                body.as_bytes(),
                &[("Content-Type", "application/octet-stream")],
            );
            let answer: Value = serde_json::from_slice(&answer).unwrap();
            assert_eq!(status, 200, "push {n}: {answer}");
            assert_eq!(answer["records"], plan.lines_per_push, "push {n}: {answer}");
        }
        let push_secs = started.elapsed().as_secs_f64();
        let mut all = (Vec::new(), 0);
        for client in clients {
            let (ms, failures) = client.join().unwrap();
            all.0.extend(ms);
            all.1 += failures;
            if started.elapsed() > plan.deadline {
                stop.store(true, Ordering::Relaxed);
            }
        }
        (push_secs, all)
    });
    let (_, body) = server.sql("SELECT sum(flows) AS n FROM flows_1m", "json");
    let stored = serde_json::from_slice::<Value>(&body).unwrap()[0]["n"]
        .as_u64()
        .unwrap_or(0);
    let mut sql_ms = sql_ms;
    sql_ms.sort_by(f64::total_cmp);
    LoadReport {
        records_pushed: (plan.pushes * plan.lines_per_push) as u64,
        records_stored: stored,
        push_secs,
        sql_ms,
        sql_failures,
    }
}
