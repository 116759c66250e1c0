//! The routes (see the crate header for the table).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use trawl_pipeline::Pipeline;
use trawl_store::{SqlEngine, SqlError};

use crate::encode::{Format, encode};

/// Largest request body accepted by the push routes (bytes).
pub const PUSH_BYTES_MAX: usize = 64 << 20;

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The running pipeline.
    pub pipeline: Arc<Pipeline>,
    /// SQL over its store and index.
    pub engine: SqlEngine,
    /// When set, Firehose requests must carry this `X-Amz-Firehose-Access-Key`.
    pub firehose_access_key: Option<String>,
}

/// The router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index_page))
        .route("/health", get(health))
        .route("/api/v1/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v1/sql", post(sql))
        .route("/api/v1/flows", post(push_flows))
        .route("/api/v1/firehose", post(firehose))
        .route("/api/v1/metadata", post(push_metadata))
        .layer(DefaultBodyLimit::max(PUSH_BYTES_MAX))
        .with_state(state)
}

/// Serves `state` on `listener` until the future is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

async fn index_page() -> Html<&'static str> {
    Html(include_str!("index.html"))
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let stats = state.pipeline.stats();
    let records = stats.records.load(std::sync::atomic::Ordering::Relaxed);
    Json(json!({ "status": "ok", "records": records })).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let pipeline = state.pipeline.clone();
    match tokio::task::spawn_blocking(move || pipeline.metrics_text()).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
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
    Query(query): Query<FormatQuery>,
    body: Bytes,
) -> Response {
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
    let result = match state.engine.query(&request.sql).await {
        Ok(result) => result,
        Err(e @ SqlError::Invalid(_)) => return error(StatusCode::BAD_REQUEST, e),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    match encode(&result, format) {
        Ok(bytes) => ([(header::CONTENT_TYPE, format.content_type())], bytes).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[derive(Debug, Deserialize)]
struct SourceQuery {
    source: Option<String>,
}

async fn push_flows(
    State(state): State<Arc<AppState>>,
    Query(query): Query<SourceQuery>,
    body: Bytes,
) -> Response {
    let source = query.source.unwrap_or_else(|| "http".to_string());
    let pipeline = state.pipeline.clone();
    let report = tokio::task::spawn_blocking(move || pipeline.push(&source, &body)).await;
    match report {
        Ok(report) => {
            Json(json!({ "records": report.records, "errors": report.errors })).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The Firehose HTTP endpoint protocol: the response echoes the request
/// id, carries a millisecond timestamp, and is JSON; a non-200 response
/// has `errorMessage` and makes Firehose retry.
async fn firehose(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
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
    if let Some(key) = &state.firehose_access_key {
        let given = headers
            .get("x-amz-firehose-access-key")
            .and_then(|v| v.to_str().ok());
        if given != Some(key.as_str()) {
            return reply(
                StatusCode::UNAUTHORIZED,
                header_id,
                Some("bad or missing access key".into()),
            );
        }
    }
    let pipeline = state.pipeline.clone();
    let report = match tokio::task::spawn_blocking(move || pipeline.push("firehose", &body)).await {
        Ok(report) => report,
        Err(e) => {
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                header_id,
                Some(e.to_string()),
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

async fn push_metadata(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let pipeline = state.pipeline.clone();
    let applied =
        tokio::task::spawn_blocking(move || pipeline.apply_metadata(&body[..], "http", false))
            .await;
    match applied {
        Ok((applied, errors)) => {
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
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
