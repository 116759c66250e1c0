//! `GET /api/v1/tables`: the store's tables, their grain and how far back
//! each keeps rows, so a client (the web UI) asks each time range of the
//! table that still holds it: a ten-minute window of yesterday goes to
//! `flows_1m`, not to the detail table that kept six hours.
//!
//! Answer: `[{"name", "grain_secs" (null for the detail table),
//! "retention_secs", "kept_from" (epoch seconds: the store's watermark
//! minus the retention, or the time below which the table already lost
//! rows if later; older rows are gone or going)}]`, detail table
//! first (when enabled), then the rollups finest first. Role: read (the
//! guard's default).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use trawl_store::Store;

use crate::routes::{AppState, error};

/// The table list of `store` (see the module header).
pub fn tables_json(store: &Store) -> Value {
    let config = store.config();
    let watermark = i64::from(store.watermark());
    // Rows older than the retention are gone or going; rows below a
    // table's `dropped_below` were expired or refused already, even when
    // the retention has since been raised.
    let kept_from = |table: &str, retention_secs: u32| {
        (watermark - i64::from(retention_secs))
            .max(i64::from(store.dropped_below(table)))
            .max(0)
    };
    let mut tables = Vec::new();
    if config.detail.enabled {
        tables.push(json!({
            "name": trawl_store::DETAIL_TABLE,
            "grain_secs": null,
            "retention_secs": config.detail.retention_secs,
            "kept_from": kept_from(trawl_store::DETAIL_TABLE, config.detail.retention_secs),
        }));
    }
    let mut rollups: Vec<_> = config.rollups.iter().collect();
    rollups.sort_by_key(|r| r.grain_secs);
    for r in rollups {
        tables.push(json!({
            "name": r.name,
            "grain_secs": r.grain_secs,
            "retention_secs": r.retention_secs,
            "kept_from": kept_from(&r.name, r.retention_secs),
        }));
    }
    Value::Array(tables)
}

/// `GET /api/v1/tables`.
pub async fn tables(State(state): State<Arc<AppState>>) -> Response {
    let store = state.pipeline.store();
    // A seal holds the store exclusively for a while: off the async threads.
    let answer = tokio::task::spawn_blocking(move || {
        let store = store
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tables_json(&store)
    })
    .await;
    match answer {
        Ok(tables) => Json(tables).into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "listing tables failed inside the server",
        ),
    }
}
