//! # trawl-server
//!
//! The HTTP API over a running pipeline. Bound to 127.0.0.1 unless told
//! otherwise (the binary decides).
//!
//! | route | what |
//! |---|---|
//! | `POST /api/v1/sql` | body `{"sql": "…"}` → JSON array of row objects; `?format=csv` / `?format=arrow` (IPC stream); 400 `{"error": …}` for bad SQL |
//! | `POST /api/v1/flows` | flow-log lines, gzip, or CloudWatch Logs envelopes (`?source=NAME`) → `{"records", "errors"}` |
//! | `POST /api/v1/firehose` | Kinesis Data Firehose HTTP endpoint delivery → `{"requestId", "timestamp"}` (or `errorMessage`) |
//! | `POST /api/v1/metadata` | metadata events, JSON lines → `{"applied", "errors"}` |
//! | `GET /metrics` | Prometheus text |
//! | `GET /health` | `{"status": "ok", …}` |
//! | `GET /` | a small page: the endpoints and a SQL box |
//!
//! ```text
//! HTTP ─► axum router ─► SQL: SqlEngine (trawl-store, DataFusion) ─► encode (JSON/CSV/Arrow)
//!                     ─► pushes: Pipeline::push / apply_metadata (blocking pool)
//!                     ─► /metrics: Pipeline::metrics_text
//! ```

pub mod encode;
pub mod routes;

pub use encode::{Format, encode};
pub use routes::{AppState, router, serve};
