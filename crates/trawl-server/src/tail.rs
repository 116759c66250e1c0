//! `GET /api/v1/tail?where=SQL&rate=N`: the live tail, as server-sent
//! events (`text/event-stream`).
//!
//! ```text
//! Store::add_batch ─► TailFeed (trawl-store, broadcast of flows batches)
//!                        │ one TailSubscription per stream
//!                        ▼
//!   stream task: recv ─► spawn_blocking(TailFilter::apply ─► reservoir) ─► every 250 ms: `event: rows`
//! ```
//!
//! Events, in order:
//!
//! - `hello`: `{"columns": [the flows columns], "rate": R, "window_ms": 250}`,
//!   at once (R: the client's `rate`, at most `[server] tail_rows_per_sec_max`).
//! - `rows`, at most one per 250 ms window in which a flow matched (or the
//!   stream lost batches): `{"rows": [row objects, encoded as `/api/v1/sql`
//!   answers them], "matched": M, "skipped": S, "lagged_batches": L}`. The
//!   rows are a uniform sample (reservoir sampling, algorithm R) of the M
//!   flows that matched in the window, in arrival order; S = M − rows sent;
//!   L counts batches the feed dropped because this stream fell behind.
//!   Window quotas are spread so that any four consecutive windows (a
//!   second) send at most R rows together.
//! - `end` `{"reason": …}`: the stream reached `[server] tail_stream_secs_max`,
//!   or the server is stopping; the stream then closes (a client reconnects).
//! - `error` `{"error": …}`: the filter failed on a batch; the stream closes.
//!
//! Quiet streams get a comment line every 15 s (axum's keep-alive), which
//! is also how a stream whose client went away is noticed (the write fails).
//!
//! Before any event, the request is checked: a bad filter or `rate` is a
//! `400 {"error": …}`, and past `[server] tail_streams_max` open streams a
//! `429`. Access is the guard's (read role when tokens are configured, the
//! same Host and Origin checks as every route). The guard reads tokens only
//! from the `Authorization` header: a browser's `EventSource` cannot send
//! one, so a page tails an open server (loopback by default), and a
//! server with tokens is tailed by clients that send the header (`trawl
//! tail --token`, `curl -H`).
//!
//! Why the stream is neither cut nor endless: the router's whole-request
//! timeout (`request_timeout_secs`) bounds only the time to the response's
//! headers, which a tail answers at once; hyper's header timeout applies
//! only while a request's headers are read; the write timeout closes a
//! stream whose client stopped reading. A stream ends by itself after
//! `tail_stream_secs_max`, when the server stops ([`EndTailsOnDrop`], held
//! by `serve`), or when its runtime is dropped.
//!
//! Filters run in the blocking pool, one batch at a time per stream, never
//! on the store's writers: a heavy filter slows only its own stream (which
//! then lags and is told so).

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::{RecordBatch, UInt32Array};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use trawl_store::schema::detail_schema;
use trawl_store::{RecvError, TailFeed, TailFilter, TailSubscription};

use crate::encode::json_rows;
use crate::routes::{AppState, error};

/// Width of a window: a stream sends at most one `rows` event per window.
pub const WINDOW: Duration = Duration::from_millis(250);

/// Windows in a second (the rate is spread over them).
const WINDOWS_PER_SEC: u64 = 4;

/// How often a quiet stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The live tail's shared state: the store's feed, the streams open, the
/// counters `/metrics` shows, and the signal that ends every stream.
#[derive(Debug)]
pub struct TailHub {
    feed: Arc<TailFeed>,
    streams: AtomicUsize,
    rows_sent: AtomicU64,
    rows_skipped: AtomicU64,
    refused: AtomicU64,
    stopping: watch::Sender<bool>,
}

impl TailHub {
    /// A hub over the store's `feed`.
    pub fn new(feed: Arc<TailFeed>) -> TailHub {
        TailHub {
            feed,
            streams: AtomicUsize::new(0),
            rows_sent: AtomicU64::new(0),
            rows_skipped: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            stopping: watch::Sender::new(false),
        }
    }

    /// Ends every open stream (after its current window) and every stream
    /// opened until [`resume`](Self::resume).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Lets streams run again (a server starting to serve).
    pub fn resume(&self) {
        self.stopping.send_replace(false);
    }

    /// Streams open now.
    pub fn streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    /// The tail's lines of the Prometheus text.
    pub(crate) fn metrics_text(&self) -> String {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        format!(
            "# HELP trawl_tail_streams Live tail streams open now.\n\
             # TYPE trawl_tail_streams gauge\n\
             trawl_tail_streams {}\n\
             # HELP trawl_tail_rows_sent_total Flows sent to live tail streams.\n\
             # TYPE trawl_tail_rows_sent_total counter\n\
             trawl_tail_rows_sent_total {}\n\
             # HELP trawl_tail_rows_skipped_total Flows that matched a live tail but were not sent (its rate).\n\
             # TYPE trawl_tail_rows_skipped_total counter\n\
             trawl_tail_rows_skipped_total {}\n\
             # HELP trawl_tail_streams_refused_total Live tail streams refused (tail_streams_max open).\n\
             # TYPE trawl_tail_streams_refused_total counter\n\
             trawl_tail_streams_refused_total {}\n",
            self.streams(),
            load(&self.rows_sent),
            load(&self.rows_skipped),
            load(&self.refused),
        )
    }
}

/// Ends every tail stream of a state when dropped: `serve` holds one, so
/// its streams end with it (they run in connection tasks of their own).
#[derive(Debug)]
pub struct EndTailsOnDrop(Arc<AppState>);

impl EndTailsOnDrop {
    /// Lets `state`'s streams run until this is dropped.
    pub fn new(state: Arc<AppState>) -> EndTailsOnDrop {
        state.tail.resume();
        EndTailsOnDrop(state)
    }
}

impl Drop for EndTailsOnDrop {
    fn drop(&mut self) {
        self.0.tail.stop();
    }
}

/// One of the `tail_streams_max` places, given back when dropped.
struct StreamSlot(Arc<AppState>);

impl StreamSlot {
    fn take(state: &Arc<AppState>) -> Option<StreamSlot> {
        let max = state.config.tail_streams_max;
        state
            .tail
            .streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(StreamSlot(state.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.tail.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The query string: `where` (SQL over the flows columns) and `rate`.
#[derive(Debug, Deserialize)]
pub(crate) struct TailQuery {
    #[serde(rename = "where")]
    filter: Option<String>,
    rate: Option<String>,
}

/// `GET /api/v1/tail` (see the module header).
pub(crate) async fn tail(
    State(state): State<Arc<AppState>>,
    query: Result<Query<TailQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => return error(e.status(), e.body_text()),
    };
    let rate_max = state.config.tail_rows_per_sec_max;
    let rate = match query.rate.as_deref().map(str::trim) {
        None | Some("") => rate_max,
        Some(text) => match text.parse::<u64>() {
            Ok(rate) if rate >= 1 => usize::try_from(rate).map_or(rate_max, |r| r.min(rate_max)),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("rate: {text:?} is not a number of flows a second (1 or more)"),
                );
            }
        },
    };
    let sql = query.filter.unwrap_or_default();
    let filter = match tokio::task::spawn_blocking(move || TailFilter::compile(&sql)).await {
        Ok(Ok(filter)) => filter,
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("where: {e}")),
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "compiling the filter failed inside the server",
            );
        }
    };
    let Some(slot) = StreamSlot::take(&state) else {
        state.tail.refused.fetch_add(1, Ordering::Relaxed);
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{} live tail streams are open, the server's limit ([server] tail_streams_max); retry later",
                state.config.tail_streams_max
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    };
    let stream = TailStream::new(slot, filter, rate);
    let events = futures::stream::unfold(stream, TailStream::step);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // Proxies that buffer (nginx) would hold the events back.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Rows window `index` may send at `rate` a second: the rate spread over
/// the windows of a second, so any [`WINDOWS_PER_SEC`] consecutive windows
/// send `rate` together (40 → 10 each; 1 → 0, 0, 0, 1).
fn quota(rate: usize, index: u64) -> usize {
    let rate = rate as u128;
    let per = u128::from(WINDOWS_PER_SEC);
    let index = u128::from(index);
    let rows = rate * (index + 1) / per - rate * index / per;
    usize::try_from(rows).unwrap_or(usize::MAX)
}

/// A small, fast generator for reservoir sampling (SplitMix64): not for
/// secrets, only for picking rows.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn seeded() -> SplitMix {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        static STREAMS: AtomicU64 = AtomicU64::new(0);
        SplitMix(nanos ^ STREAMS.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n ≥ 1; Lemire's multiply-shift, bias below 2⁻³²
    /// for the counts a window sees).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// One window's matches: a reservoir of at most `capacity` rows (as JSON)
/// with their arrival numbers, and the counts.
#[derive(Debug)]
struct Window {
    capacity: usize,
    matched: u64,
    lagged: u64,
    /// Slot → (arrival number in the window, the row's JSON object).
    rows: Vec<Option<(u64, String)>>,
    rng: SplitMix,
}

impl Window {
    fn new(capacity: usize, rng: SplitMix) -> Window {
        Window {
            capacity,
            matched: 0,
            lagged: 0,
            rows: Vec::new(),
            rng,
        }
    }

    /// Filters `batch` and offers its matching rows to the reservoir
    /// (algorithm R: the i-th match, counted from 0, replaces a uniformly
    /// chosen slot with probability capacity / (i + 1)); only rows that
    /// get a slot are encoded.
    fn absorb(&mut self, filter: &TailFilter, batch: &RecordBatch) -> Result<(), String> {
        let matched = filter.apply(batch).map_err(|e| e.to_string())?;
        let mut picks: Vec<(usize, u32, u64)> = Vec::new();
        for row in 0..matched.num_rows() {
            let seq = self.matched;
            self.matched += 1;
            let slot = match usize::try_from(seq) {
                Ok(i) if i < self.capacity => i,
                _ => match usize::try_from(self.rng.below(seq + 1)) {
                    Ok(j) if j < self.capacity => j,
                    _ => continue,
                },
            };
            let Ok(row) = u32::try_from(row) else {
                continue;
            };
            picks.push((slot, row, seq));
        }
        if picks.is_empty() {
            return Ok(());
        }
        // A slot picked twice in this batch keeps its later row.
        let mut seen = HashSet::new();
        picks.reverse();
        picks.retain(|(slot, _, _)| seen.insert(*slot));
        let indices = UInt32Array::from_iter_values(picks.iter().map(|p| p.1));
        let taken = arrow::compute::take_record_batch(&matched, &indices)
            .map_err(|e| format!("picking rows: {e}"))?;
        let lines = json_rows(&taken).map_err(|e| format!("encoding rows: {e}"))?;
        for ((slot, _, seq), line) in picks.into_iter().zip(lines) {
            if self.rows.len() <= slot {
                self.rows.resize(slot + 1, None);
            }
            self.rows[slot] = Some((seq, line));
        }
        Ok(())
    }
}

/// Where a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Hello,
    Live,
    /// Send `end` with this reason, then close.
    Ending(&'static str),
    Done,
}

/// What woke a stream up.
enum Wake {
    Stop,
    Deadline,
    WindowEnd,
    Received(Result<Arc<RecordBatch>, RecvError>),
}

/// One open stream's state (see the module header).
struct TailStream {
    slot: StreamSlot,
    subscription: TailSubscription,
    stopping: watch::Receiver<bool>,
    filter: Arc<TailFilter>,
    rate: usize,
    window: Window,
    window_index: u64,
    window_end: Instant,
    deadline: Instant,
    phase: Phase,
}

impl TailStream {
    fn new(slot: StreamSlot, filter: TailFilter, rate: usize) -> TailStream {
        let state = &slot.0;
        // Subscribed now: flows stored once the client has its response are in.
        let subscription = state.tail.feed.subscribe();
        let stopping = state.tail.stopping.subscribe();
        let now = Instant::now();
        let life = Duration::from_secs(state.config.tail_stream_secs_max);
        TailStream {
            subscription,
            stopping,
            filter: Arc::new(filter),
            rate,
            window: Window::new(quota(rate, 0), SplitMix::seeded()),
            window_index: 0,
            window_end: now + WINDOW,
            // Validated at most 30 days: no overflow.
            deadline: now.checked_add(life).unwrap_or(now),
            phase: Phase::Hello,
            slot,
        }
    }

    /// The next event, or `None` when the stream is over.
    async fn step(mut self) -> Option<(Result<Event, Infallible>, TailStream)> {
        loop {
            match self.phase {
                Phase::Done => return None,
                Phase::Hello => {
                    self.phase = Phase::Live;
                    return Some((Ok(self.hello()), self));
                }
                Phase::Ending(reason) => {
                    self.phase = Phase::Done;
                    return Some((Ok(json_event("end", &json!({ "reason": reason }))), self));
                }
                Phase::Live => {}
            }
            let wake = tokio::select! {
                biased;
                _ = self.stopping.wait_for(|stopping| *stopping) => Wake::Stop,
                _ = tokio::time::sleep_until(self.deadline) => Wake::Deadline,
                _ = tokio::time::sleep_until(self.window_end) => Wake::WindowEnd,
                received = self.subscription.recv() => Wake::Received(received),
            };
            match wake {
                Wake::Stop => self.phase = Phase::Ending("the server is stopping"),
                Wake::Deadline => {
                    self.phase = Phase::Ending(
                        "the stream reached the server's limit ([server] tail_stream_secs_max); reconnect",
                    );
                    if let Some(event) = self.close_window() {
                        return Some((Ok(event), self));
                    }
                }
                Wake::WindowEnd => {
                    if let Some(event) = self.close_window() {
                        return Some((Ok(event), self));
                    }
                }
                Wake::Received(Ok(batch)) => {
                    if let Err(message) = self.absorb(batch).await {
                        self.phase = Phase::Done;
                        let event = json_event("error", &json!({ "error": message }));
                        return Some((Ok(event), self));
                    }
                }
                Wake::Received(Err(RecvError::Lagged(batches))) => self.window.lagged += batches,
                Wake::Received(Err(RecvError::Closed)) => {
                    self.phase = Phase::Ending("the store closed");
                }
            }
        }
    }

    fn hello(&self) -> Event {
        let columns: Vec<String> = detail_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        json_event(
            "hello",
            &json!({
                "columns": columns,
                "rate": self.rate,
                "window_ms": WINDOW.as_millis() as u64,
            }),
        )
    }

    /// Runs the filter and the reservoir on `batch` in the blocking pool.
    async fn absorb(&mut self, batch: Arc<RecordBatch>) -> Result<(), String> {
        let filter = self.filter.clone();
        let placeholder = Window::new(0, self.window.rng.clone());
        let mut window = std::mem::replace(&mut self.window, placeholder);
        let joined = tokio::task::spawn_blocking(move || {
            let outcome = window.absorb(&filter, &batch);
            (window, outcome)
        })
        .await;
        match joined {
            Ok((window, outcome)) => {
                self.window = window;
                outcome
            }
            Err(_) => Err("the filter failed inside the server".to_string()),
        }
    }

    /// Ends the current window: its `rows` event, if a flow matched in it
    /// or batches were lost. The next window starts (one window from now
    /// when this one ended late, so the rate holds).
    fn close_window(&mut self) -> Option<Event> {
        let now = Instant::now();
        self.window_end += WINDOW;
        if self.window_end <= now {
            self.window_end = now + WINDOW;
        }
        self.window_index += 1;
        let next = Window::new(quota(self.rate, self.window_index), self.window.rng.clone());
        let window = std::mem::replace(&mut self.window, next);
        if window.matched == 0 && window.lagged == 0 {
            return None;
        }
        let mut rows: Vec<(u64, String)> = window.rows.into_iter().flatten().collect();
        rows.sort_unstable_by_key(|(seq, _)| *seq);
        let sent = rows.len() as u64;
        let skipped = window.matched.saturating_sub(sent);
        let hub = &self.slot.0.tail;
        hub.rows_sent.fetch_add(sent, Ordering::Relaxed);
        hub.rows_skipped.fetch_add(skipped, Ordering::Relaxed);
        let mut data =
            String::with_capacity(rows.iter().map(|r| r.1.len() + 1).sum::<usize>() + 96);
        data.push_str("{\"rows\":[");
        for (i, (_, row)) in rows.iter().enumerate() {
            if i > 0 {
                data.push(',');
            }
            data.push_str(row);
        }
        data.push_str(&format!(
            "],\"matched\":{},\"skipped\":{skipped},\"lagged_batches\":{}}}",
            window.matched, window.lagged
        ));
        Some(Event::default().event("rows").data(data))
    }
}

fn json_event(name: &str, value: &serde_json::Value) -> Event {
    Event::default().event(name).data(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_spread_the_rate_over_each_second() {
        for rate in [1, 2, 3, 4, 5, 7, 40, 199, 200, 100_000] {
            let quotas: Vec<usize> = (0..40).map(|w| quota(rate, w)).collect();
            for second in quotas.windows(WINDOWS_PER_SEC as usize) {
                assert_eq!(
                    second.iter().sum::<usize>(),
                    rate,
                    "rate {rate}: {quotas:?}"
                );
            }
            let max = quotas.iter().max().copied().unwrap_or(0);
            assert!(max <= rate.div_ceil(4), "rate {rate}: {quotas:?}");
        }
        assert_eq!(quota(40, 0), 10);
        assert_eq!(quota(1, 3), 1);
    }

    /// Each of 20 matches lands in a 5-row sample with probability 1/4:
    /// over 4,000 windows each is expected 1,000 times.
    #[test]
    fn the_reservoir_is_uniform() {
        use arrow::array::{ArrayRef, TimestampSecondArray, UInt64Array, new_null_array};
        let schema = detail_schema();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "time" => Arc::new(TimestampSecondArray::from(vec![0; 20]).with_timezone("UTC"))
                    as ArrayRef,
                "bytes" => Arc::new(UInt64Array::from_iter_values(0..20)) as ArrayRef,
                _ => new_null_array(f.data_type(), 20),
            })
            .collect();
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        // Two batches of 10, so picks also cross batches.
        let (first, second) = (batch.slice(0, 10), batch.slice(10, 10));
        let filter = TailFilter::compile("").unwrap();
        let mut counts = [0u32; 20];
        let mut rng = SplitMix(7);
        for _ in 0..4_000 {
            let mut window = Window::new(5, rng.clone());
            window.absorb(&filter, &first).unwrap();
            window.absorb(&filter, &second).unwrap();
            rng = window.rng.clone();
            assert_eq!(window.matched, 20);
            let rows: Vec<&(u64, String)> = window.rows.iter().flatten().collect();
            assert_eq!(rows.len(), 5);
            for (seq, json) in rows {
                let value: serde_json::Value = serde_json::from_str(json).unwrap();
                assert_eq!(value["bytes"], *seq, "the row is the match it was numbered");
                counts[*seq as usize] += 1;
            }
        }
        for (i, count) in counts.iter().enumerate() {
            assert!((850..1150).contains(count), "match {i}: {count} of ~1000");
        }
    }
}
