//! The routes (see the crate header for the table), the state they
//! share, and the layers around them: the guard (`guard.rs`), a whole-
//! request timeout, and CORS for configured origins only.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use trawl_pipeline::Pipeline;
use trawl_pipeline::push_log::PushLogError;
use trawl_store::{SqlEngine, SqlError};

use crate::auth::{Role, Tokens, secret_eq};
use crate::config::ServerConfig;
use crate::encode::{EncodeError, Format, encode_within};
use crate::guard::{self, bearer};
use crate::query::{QueryFailure, QueryGate};
use crate::tail::{EndTailsOnDrop, TailHub};

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The running pipeline.
    pub pipeline: Arc<Pipeline>,
    /// SQL over its store and index (built with the memory pool of `config`).
    pub engine: SqlEngine,
    /// When set, Firehose requests must carry this `X-Amz-Firehose-Access-Key`
    /// (or a write token in it).
    pub firehose_access_key: Option<String>,
    /// `[server]`.
    pub config: ServerConfig,
    /// Known bearer tokens; empty: open.
    pub tokens: Tokens,
    /// TLS, when the server speaks HTTPS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Concurrency and time limits of SQL requests.
    pub gate: QueryGate,
    /// The live tail's streams and counters (`tail.rs`).
    pub tail: TailHub,
}

impl AppState {
    /// The state over `pipeline` and `engine` with `config` (its limits),
    /// `tokens` and `tls`.
    pub fn new(
        pipeline: Arc<Pipeline>,
        engine: SqlEngine,
        config: ServerConfig,
        tokens: Tokens,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<AppState> {
        let feed = pipeline
            .store()
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .tail_feed();
        Ok(AppState {
            tail: TailHub::new(feed),
            pipeline,
            engine,
            firehose_access_key: None,
            gate: QueryGate::new(&config)?,
            config,
            tokens,
            tls,
        })
    }
}

/// The router over `state`, with its layers.
pub fn router(state: Arc<AppState>) -> Router {
    let config = &state.config;
    let push = DefaultBodyLimit::max(config.push_bytes_max);
    let mut app = Router::new()
        .route("/", get(crate::assets::index))
        .route("/ui/{*path}", get(crate::assets::file))
        .route("/health", get(health))
        .route("/api/v1/health", get(health))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/sql",
            post(sql).layer(DefaultBodyLimit::max(config.sql_bytes_max)),
        )
        // A tail answers its headers at once, so the whole-request timeout
        // below never cuts its stream (`tail.rs`).
        .route("/api/v1/tail", get(crate::tail::tail))
        .route("/api/v1/whois", get(crate::whois::whois))
        .route("/api/v1/tables", get(crate::tables::tables))
        .route("/api/v1/flows", post(push_flows).layer(push))
        .route("/api/v1/firehose", post(firehose).layer(push))
        .route(
            "/api/v1/metadata",
            post(push_metadata).layer(DefaultBodyLimit::max(config.metadata_bytes_max)),
        )
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(config.request_timeout_secs),
        ));
    let origins: Vec<HeaderValue> = config
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if !origins.is_empty() {
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .max_age(Duration::from_secs(600)),
        );
    }
    app.with_state(state)
}

/// Serves `state` on `listener` until the future is dropped (limits,
/// timeouts and TLS from the state: `listen.rs`).
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    // Tail streams run in connection tasks of their own: they end with this.
    let _tails = EndTailsOnDrop::new(state.clone());
    let app = router(state.clone());
    tokio::task::spawn_blocking(crate::assets::warm);
    crate::listen::serve_app(listener, app, &state.config, state.tls.clone()).await
}

/// A JSON error body `{"error": message}` with `status`.
pub(crate) fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let stats = state.pipeline.stats();
    let records = stats.records.load(std::sync::atomic::Ordering::Relaxed);
    Json(json!({ "status": "ok", "records": records })).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let pipeline = state.pipeline.clone();
    let running = state.gate.running();
    match tokio::task::spawn_blocking(move || pipeline.metrics_text()).await {
        Ok(mut text) => {
            text.push_str(&format!(
                "# HELP trawl_server_queries_running SQL queries running now.\n\
                 # TYPE trawl_server_queries_running gauge\n\
                 trawl_server_queries_running {running}\n"
            ));
            text.push_str(&state.tail.metrics_text());
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                text,
            )
                .into_response()
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics failed inside the server",
        ),
    }
}

#[derive(Debug, Deserialize)]
struct SqlRequest {
    sql: String,
}

#[derive(Debug, Deserialize)]
struct FormatQuery {
    format: Option<String>,
}

async fn sql(
    State(state): State<Arc<AppState>>,
    query: Result<Query<FormatQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (query, body) = match (query, body) {
        (Ok(Query(query)), Ok(body)) => (query, body),
        (Err(e), _) => return error(e.status(), e.body_text()),
        (_, Err(e)) => return error(e.status(), e.body_text()),
    };
    let request: SqlRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body must be {{\"sql\": \"…\"}}: {e}"),
            );
        }
    };
    let name = query.format.as_deref().unwrap_or("json");
    let Some(format) = Format::parse(name).filter(|f| *f != Format::Table) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown format {name:?} (json, csv, arrow)"),
        );
    };
    let result = match state.gate.run(&state.engine, request.sql).await {
        Ok(result) => result,
        Err(failure) => return query_failure(&state.engine, failure),
    };
    let bytes_max = state.config.result_bytes_max;
    match tokio::task::spawn_blocking(move || encode_within(&result, format, bytes_max)).await {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, format.content_type())], bytes).into_response(),
        Ok(Err(e @ EncodeError::TooLarge { .. })) => error(StatusCode::PAYLOAD_TOO_LARGE, e),
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            redact_paths(&e.to_string()),
        ),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding failed inside the server",
        ),
    }
}

/// The status and body of a failed query. Refusals name the statement
/// kind; internal failures keep their message with server paths removed.
fn query_failure(engine: &SqlEngine, failure: QueryFailure) -> Response {
    let status = match &failure {
        QueryFailure::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
        QueryFailure::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        QueryFailure::Crashed => StatusCode::INTERNAL_SERVER_ERROR,
        QueryFailure::Sql(SqlError::Invalid(_)) => StatusCode::BAD_REQUEST,
        QueryFailure::Sql(SqlError::Refused(_)) => StatusCode::FORBIDDEN,
        QueryFailure::Sql(SqlError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        QueryFailure::Sql(SqlError::OutOfMemory(_)) => StatusCode::SERVICE_UNAVAILABLE,
        QueryFailure::Sql(SqlError::Failed(_)) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = match &failure {
        QueryFailure::Sql(SqlError::OutOfMemory(e)) => format!(
            "the query needs more memory than the server's query pool has free \
             ([server] query_memory_bytes_max); narrow it or retry when fewer queries run: {}",
            e.message()
        ),
        QueryFailure::Sql(SqlError::Failed(e)) => {
            eprintln!("trawl: query failed: {e}");
            e.to_string()
        }
        other => other.to_string(),
    };
    let message = redact_paths(&engine.redact(&message));
    let mut response = error(status, message);
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// `message` with every absolute path replaced by `<path>` (server file
/// names never reach a client).
pub fn redact_paths(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find('/') {
        let before = &rest[..at];
        let starts_path = before
            .chars()
            .last()
            .is_none_or(|c| c.is_whitespace() || "'\"`(=:[".contains(c));
        if !starts_path {
            out.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            continue;
        }
        out.push_str(before);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || "'\"`)],".contains(c))
            .map_or(rest.len(), |i| at + i);
        out.push_str("<path>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[derive(Debug, Deserialize)]
struct SourceQuery {
    source: Option<String>,
}

async fn push_flows(
    State(state): State<Arc<AppState>>,
    query: Result<Query<SourceQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (query, body) = match (query, body) {
        (Ok(Query(query)), Ok(body)) => (query, body),
        (Err(e), _) => return error(e.status(), e.body_text()),
        (_, Err(e)) => return error(e.status(), e.body_text()),
    };
    let source = query.source.unwrap_or_else(|| "http".to_string());
    let pipeline = state.pipeline.clone();
    let report = tokio::task::spawn_blocking(move || pipeline.push(&source, &body)).await;
    match report {
        Ok(Ok(report)) => {
            Json(json!({ "records": report.records, "errors": report.errors })).into_response()
        }
        Ok(Err(refused)) => {
            let status = push_refused_status(&refused);
            with_retry_after(error(status, &refused), status)
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the push failed inside the server",
        ),
    }
}

/// The answer to a push the push log could not keep: 413 for a payload
/// larger than a record, else 503 (retry later: the log is full until the
/// next seal, or the disk failed). Nothing of a refused push is kept.
fn push_refused_status(refused: &PushLogError) -> StatusCode {
    match refused {
        PushLogError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        PushLogError::Full { .. } | PushLogError::Io { .. } => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn with_retry_after(mut response: Response, status: StatusCode) -> Response {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The Firehose HTTP endpoint protocol: the response echoes the request
/// id, carries a millisecond timestamp, and is JSON; a non-200 response
/// has `errorMessage` and makes Firehose retry.
///
/// The access key is checked before the body is read: a stranger cannot
/// make the server buffer a body.
async fn firehose(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers.clone();
    let header_id = headers
        .get("x-amz-firehose-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let reply = |status: StatusCode, id: Option<String>, message: Option<String>| {
        let mut body = json!({ "requestId": id.unwrap_or_default(), "timestamp": now_ms() as u64 });
        if let Some(message) = message {
            body["errorMessage"] = json!(message);
        }
        let mut response = (status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    };
    if !firehose_authorized(&state, &headers) {
        crate::guard::drain_refused_body(Request::from_parts(parts, body));
        return reply(
            StatusCode::UNAUTHORIZED,
            header_id,
            Some("bad or missing access key".into()),
        );
    }
    let body = match Bytes::from_request(Request::from_parts(parts, body), &()).await {
        Ok(body) => body,
        Err(e) => return reply(e.status(), header_id, Some(e.body_text())),
    };
    let pipeline = state.pipeline.clone();
    let report = match tokio::task::spawn_blocking(move || pipeline.push_firehose(&body)).await {
        Ok(Ok(report)) => report,
        Ok(Err(refused)) => {
            let status = push_refused_status(&refused);
            let response = reply(status, header_id, Some(refused.to_string()));
            return with_retry_after(response, status);
        }
        Err(_) => {
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                header_id,
                Some("the push failed inside the server".into()),
            );
        }
    };
    let id = report.summary.firehose_request_id.clone().or(header_id);
    if report.summary.json_envelopes == 0 {
        let message = format!("not a Firehose request ({} decode errors)", report.errors);
        return reply(StatusCode::BAD_REQUEST, id, Some(message));
    }
    reply(StatusCode::OK, id, None)
}

/// Firehose sends its access key in `X-Amz-Firehose-Access-Key`: it may
/// be the configured `firehose_access_key` or a write token (a bearer
/// write token works too). Open when neither keys nor tokens are set.
fn firehose_authorized(state: &AppState, headers: &HeaderMap) -> bool {
    if state.firehose_access_key.is_none() && state.tokens.is_empty() {
        return true;
    }
    let key = headers
        .get("x-amz-firehose-access-key")
        .and_then(|v| v.to_str().ok());
    let key_matches = matches!((key, &state.firehose_access_key), (Some(k), Some(expected)) if secret_eq(k, expected));
    let writes = |token: Option<&str>| {
        token
            .and_then(|t| state.tokens.role_of(t))
            .is_some_and(|role| role.allows(Role::Write))
    };
    key_matches || writes(key) || writes(bearer(headers))
}

async fn push_metadata(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) => return error(e.status(), e.body_text()),
    };
    let pipeline = state.pipeline.clone();
    let applied =
        tokio::task::spawn_blocking(move || pipeline.push_metadata("http", &body[..])).await;
    match applied {
        Ok(Err(refused)) => {
            let status = push_refused_status(&refused);
            with_retry_after(error(status, &refused), status)
        }
        Ok(Ok((applied, errors))) => {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            let status = if applied == 0 && !errors.is_empty() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            (
                status,
                Json(json!({ "applied": applied, "errors": errors })),
            )
                .into_response()
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the push failed inside the server",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_paths_never_reach_an_error_body() {
        for (message, expected) in [
            (
                "Object at location /var/lib/trawl/flows_1m/seg-1.parquet not found",
                "Object at location <path> not found",
            ),
            ("open '/etc/passwd': denied", "open '<path>': denied"),
            ("Divide by zero error", "Divide by zero error"),
            ("a/b ratio (x=/tmp/q)", "a/b ratio (x=<path>)"),
        ] {
            assert_eq!(redact_paths(message), expected);
        }
    }
}
