//! Random bodies and headers on every route, with and without tokens:
//! the server never panics, never answers a client's mistake with a 5xx,
//! always answers errors as JSON `{"error": …}` (Firehose: its own
//! `errorMessage`; metadata: the refused lines in `errors`), never echoes a server path, and never lets a request
//! without the right token or with a foreign Origin/Host change data.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request};
use proptest::prelude::*;
use tower::ServiceExt;
use trawl_attrib::AttributionIndex;
use trawl_pipeline::{Pipeline, PipelineConfig};
use trawl_server::{AppState, ServerConfig, Tokens, router};
use trawl_store::{EngineLimits, SqlEngine, Store, StoreConfig};

const WRITE_TOKEN: &str = "write-token-0123456789abcdef";
const READ_TOKEN: &str = "read-token-0123456789abcdef";

struct Fixture {
    _dir: tempfile::TempDir,
    state: Arc<AppState>,
    runtime: tokio::runtime::Runtime,
}

fn fixture(with_tokens: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let config = PipelineConfig {
        workers: 1,
        ..PipelineConfig::default()
    };
    let pipeline = Arc::new(Pipeline::start(config, store, AttributionIndex::default()).unwrap());
    let limits = EngineLimits {
        memory_bytes_max: Some(64 << 20),
        cache_segments: true,
    };
    let engine = SqlEngine::with_limits(pipeline.store(), Some(pipeline.index()), limits).unwrap();
    let server = ServerConfig {
        query_timeout_secs: 2,
        result_rows_max: 10_000,
        ..ServerConfig::default()
    };
    let env = format!("write:{WRITE_TOKEN},read:{READ_TOKEN}");
    let tokens = Tokens::load(&[], None, with_tokens.then_some(env.as_str())).unwrap();
    let mut state = AppState::new(pipeline, engine, server, tokens, None).unwrap();
    if with_tokens {
        state.firehose_access_key = Some("firehose-key".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    Fixture {
        _dir: dir,
        state: Arc::new(state),
        runtime,
    }
}

const ROUTES: &[&str] = &[
    "/",
    "/ui/js/main.js",
    "/ui/../Cargo.toml",
    "/health",
    "/metrics",
    "/api/v1/sql",
    "/api/v1/sql?format=csv",
    "/api/v1/sql?format=nope",
    "/api/v1/flows?source=x",
    "/api/v1/firehose",
    "/api/v1/metadata",
    "/api/v1/nope",
];
const CONTENT_TYPES: &[&str] = &[
    "",
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/octet-stream",
    "application/x-ndjson",
    "multipart/form-data; boundary=--",
    "ÿ/ÿ",
    "application/jsonx",
];
const HOSTS: &[&str] = &[
    "127.0.0.1:8941",
    "localhost",
    "evil.example",
    "",
    "[::1]:1",
    "a:b:c",
];
const ORIGINS: &[&str] = &["", "http://127.0.0.1:8941", "http://evil.example", "null"];
const AUTHS: &[&str] = &[
    "",
    "Bearer write-token-0123456789abcdef",
    "Bearer read-token-0123456789abcdef",
    "Bearer x",
    "Basic abc",
    "Bearer",
];

fn sqlish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "SELECT ",
            "* ",
            "FROM ",
            "flows_1m ",
            "range(10) ",
            "COPY ",
            "TO '/tmp/x' ",
            "CREATE ",
            "EXTERNAL TABLE ",
            "SET ",
            "x = 1 ",
            "( ",
            ") ",
            "; ",
            "1 ",
            "'",
            "\"",
            "WHERE ",
            "time ",
            ">= ",
            "now() ",
            "EXPLAIN ",
            "SHOW ",
            "TABLES ",
            "DROP ",
            "INSERT INTO ",
            "VALUES ",
            "count(*) ",
            "GROUP BY ",
            "1e400 ",
            "\u{0} ",
            "💥 ",
        ]),
        0..12,
    )
    .prop_map(|words| words.concat())
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        sqlish().prop_map(|sql| serde_json::json!({ "sql": sql }).to_string().into_bytes()),
        sqlish().prop_map(String::into_bytes),
        Just(b"2 123456789012 eni-1 198.51.100.1 203.0.113.2 1 2 6 1 1 1795305600 1795305660 ACCEPT OK\n".to_vec()),
        Just(br#"{"type":"assign","ip":"10.0.0.1","at":1,"workload":{"app":"a"}}"#.to_vec()),
        Just(br#"{"requestId":"r","timestamp":1,"records":[{"data":"bm90IGZsb3dz"}]}"#.to_vec()),
    ]
}

#[derive(Debug, Clone)]
struct Call {
    route: &'static str,
    post: bool,
    content_type: &'static str,
    host: &'static str,
    origin: &'static str,
    auth: &'static str,
    firehose_key: bool,
    body: Vec<u8>,
}

/// The body and content type a well-behaved client sends to `route`.
fn proper(route: &str) -> (&'static str, Vec<u8>) {
    match route {
        r if r.starts_with("/api/v1/flows") => (
            "application/octet-stream",
            b"2 123456789012 eni-1 198.51.100.1 203.0.113.2 1 2 6 1 1 1795305600 1795305660 ACCEPT OK\n"
                .to_vec(),
        ),
        "/api/v1/metadata" => (
            "application/x-ndjson",
            br#"{"type":"assign","ip":"10.0.0.1","at":1,"workload":{"app":"a"}}"#.to_vec(),
        ),
        // base64 of one default-format flow line.
        "/api/v1/firehose" => (
            "application/json",
            br#"{"requestId":"r","timestamp":1,"records":[{"data":"MiAxMjM0NTY3ODkwMTIgZW5pLTEgMTk4LjUxLjEwMC4xIDIwMy4wLjExMy4yIDEgMiA2IDEgMSAxNzk1MzA1NjAwIDE3OTUzMDU2NjAgQUNDRVBUIE9LCg=="}]}"#.to_vec(),
        ),
        _ => ("application/json", br#"{"sql": "SELECT 1 AS x"}"#.to_vec()),
    }
}

/// A proper request to a random route (from the loopback page, with the
/// write token), then up to three random changes to its parts.
fn call() -> impl Strategy<Value = Call> {
    (
        prop::sample::select(ROUTES),
        prop::collection::vec((0..7usize, 0..64usize, body()), 0..4),
    )
        .prop_map(|(route, changes)| {
            let (content_type, body) = proper(route);
            let mut call = Call {
                route,
                post: true,
                content_type,
                host: "127.0.0.1:8941",
                origin: "http://127.0.0.1:8941",
                auth: AUTHS[1],
                firehose_key: false,
                body,
            };
            for (part, pick, body) in changes {
                match part {
                    0 => call.post = !call.post,
                    1 => call.content_type = CONTENT_TYPES[pick % CONTENT_TYPES.len()],
                    2 => call.host = HOSTS[pick % HOSTS.len()],
                    3 => call.origin = ORIGINS[pick % ORIGINS.len()],
                    4 => call.auth = AUTHS[pick % AUTHS.len()],
                    5 => call.firehose_key = !call.firehose_key,
                    _ => call.body = body,
                }
            }
            call
        })
}

fn request(call: &Call) -> Request<Body> {
    let mut builder = Request::builder()
        .method(if call.post { Method::POST } else { Method::GET })
        .uri(call.route);
    for (name, value) in [
        ("content-type", call.content_type),
        ("host", call.host),
        ("origin", call.origin),
        ("authorization", call.auth),
    ] {
        if !value.is_empty() {
            builder = builder.header(name, value);
        }
    }
    if call.firehose_key {
        builder = builder.header("x-amz-firehose-access-key", "firehose-key");
    }
    builder.body(Body::from(call.body.clone())).unwrap()
}

/// Whether `call` carries what a write needs: a served Host, no foreign
/// Origin, a declared content type, and (with tokens) the write token or
/// the Firehose key.
fn may_write(call: &Call, with_tokens: bool) -> bool {
    let declared: &[&str] = match call.route {
        "/api/v1/firehose" => &["application/json"],
        _ => &[
            "application/octet-stream",
            "application/json",
            "application/x-ndjson",
        ],
    };
    let type_ok = declared
        .iter()
        .any(|t| call.content_type.split(';').next() == Some(*t));
    let host_ok = matches!(call.host, "127.0.0.1:8941" | "localhost" | "[::1]:1");
    let origin_ok = call.origin.is_empty()
        || (call.origin == "http://127.0.0.1:8941" && call.host == "127.0.0.1:8941");
    let token_ok = !with_tokens
        || call.auth == "Bearer write-token-0123456789abcdef"
        || (call.firehose_key && call.route == "/api/v1/firehose");
    host_ok && origin_ok && token_ok && type_ok
}

fn check(fixture: &Fixture, with_tokens: bool, call: &Call) -> Result<(), TestCaseError> {
    let before = fixture
        .state
        .pipeline
        .stats()
        .records
        .load(std::sync::atomic::Ordering::Relaxed);
    let response = fixture
        .runtime
        .block_on(router(fixture.state.clone()).oneshot(request(call)))
        .unwrap();
    let status = response.status();
    let bytes = fixture
        .runtime
        .block_on(axum::body::to_bytes(response.into_body(), 1 << 24))
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    prop_assert!(!status.is_server_error(), "{call:?} -> {status}: {text}");
    if status.is_client_error() && status.as_u16() != 404 && status.as_u16() != 405 {
        let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            TestCaseError::fail(format!("{call:?} -> {status}: not JSON ({e}): {text}"))
        })?;
        prop_assert!(
            json["error"].is_string()
                || json["errorMessage"].is_string()
                || json["errors"].is_array(),
            "{call:?} -> {status}: {text}"
        );
    }
    prop_assert!(
        !text.contains(fixture._dir.path().to_str().unwrap()),
        "{text}"
    );
    let after = fixture
        .state
        .pipeline
        .stats()
        .records
        .load(std::sync::atomic::Ordering::Relaxed);
    if after != before {
        prop_assert!(
            call.post && may_write(call, with_tokens),
            "{call:?} ingested records"
        );
    }
    Ok(())
}

/// One server without tokens and one with, shared by every case.
fn fixtures() -> &'static [Fixture; 2] {
    static FIXTURES: std::sync::OnceLock<[Fixture; 2]> = std::sync::OnceLock::new();
    FIXTURES.get_or_init(|| [fixture(false), fixture(true)])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn random_requests_get_client_errors_and_change_nothing_they_may_not(
        calls in prop::collection::vec(call(), 1..4),
        with_tokens in any::<bool>(),
    ) {
        let fixture = &fixtures()[usize::from(with_tokens)];
        for call in &calls {
            check(fixture, with_tokens, call)?;
        }
    }
}

/// Review finding: the extractors' own rejections (query string, body
/// limit) answer in text/plain, outside the JSON error shape.
#[test]
fn review_extractor_rejections_are_json_errors_too() {
    let fixture = &fixtures()[0];
    let oversized = serde_json::json!({ "sql": "x".repeat(5 << 20) }).to_string();
    for (uri, body) in [
        (
            "/api/v1/sql?format=csv&format=json",
            br#"{"sql": "SELECT 1"}"#.to_vec(),
        ),
        ("/api/v1/sql", oversized.into_bytes()),
    ] {
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("host", "127.0.0.1:8941")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = fixture
            .runtime
            .block_on(router(fixture.state.clone()).oneshot(request))
            .unwrap();
        let status = response.status();
        let bytes = fixture
            .runtime
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 24))
            .unwrap();
        let json: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        assert!(
            json.is_some_and(|j| j["error"].is_string()),
            "{uri} -> {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
}
