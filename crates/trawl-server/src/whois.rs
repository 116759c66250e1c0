//! `GET /api/v1/whois?ip=IP&at=TIME`: who held an IP at a moment, from the
//! running pipeline's attribution index: the JSON object `trawl whois`
//! prints ([`answer_json`], shared by both).
//!
//! `at` is RFC 3339 or epoch seconds (default: now). A missing or bad
//! parameter is a `400 {"error": …}` naming it. Role: read. The index is
//! read in the blocking pool (metadata being applied holds it a moment).

use std::net::IpAddr;
use std::sync::{Arc, PoisonError};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use trawl_attrib::{AttributionIndex, Secs, format_time, parse_time};

use crate::routes::{AppState, error};

/// Who held `ip` at `at` in `index`: the workload fields (`"app": null`
/// when no one held it), `labels`, `interval` (`from`, `to`), `prefix`,
/// the `rule` that answered and whether the answer is `settled`.
pub fn answer_json(index: &AttributionIndex, ip: IpAddr, at: Secs) -> serde_json::Value {
    let answer = index.owner_at(ip, at);
    let workload = index.workload(answer.owner).cloned().unwrap_or_default();
    let interval = answer.from.map(
        |from| serde_json::json!({"from": format_time(from), "to": answer.to.map(format_time)}),
    );
    serde_json::json!({
        "ip": ip.to_string(),
        "at": format_time(at),
        "rule": answer.rule.name(),
        "app": workload.app,
        "cluster": workload.cluster,
        "account": workload.account,
        "region": workload.region,
        "az": workload.az,
        "kind": workload.kind,
        "labels": workload.labels,
        "interval": interval,
        "prefix": answer.prefix.map(|p| p.to_string()),
        "settled": answer.settled,
    })
}

/// The query string.
#[derive(Debug, Deserialize)]
pub(crate) struct WhoisQuery {
    ip: Option<String>,
    at: Option<String>,
}

/// `GET /api/v1/whois` (see the module header).
pub(crate) async fn whois(
    State(state): State<Arc<AppState>>,
    query: Result<Query<WhoisQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => return error(e.status(), e.body_text()),
    };
    let ip: IpAddr = match query.ip.as_deref().map(str::trim) {
        None | Some("") => {
            return error(
                StatusCode::BAD_REQUEST,
                "ip: missing (?ip=10.1.2.3&at=2026-11-22T10:00:00Z)",
            );
        }
        Some(text) => match text.parse() {
            Ok(ip) => ip,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("ip: {text:?} is not an IPv4 or IPv6 address"),
                );
            }
        },
    };
    let at = match query.at.as_deref().map(str::trim) {
        None | Some("") => now_secs(),
        Some(text) => match parse_time(text) {
            Ok(at) => at,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("at: {e}")),
        },
    };
    let index = state.pipeline.index();
    let answer = tokio::task::spawn_blocking(move || {
        let index = index.read().unwrap_or_else(PoisonError::into_inner);
        answer_json(&index, ip, at)
    })
    .await;
    match answer {
        Ok(answer) => Json(answer).into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the lookup failed inside the server",
        ),
    }
}

fn now_secs() -> Secs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| Secs::try_from(d.as_secs()).unwrap_or(Secs::MAX))
}
