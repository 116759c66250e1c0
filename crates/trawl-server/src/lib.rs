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
//! | `GET /` | a small page: the endpoints and a SQL box (`/app.js`, `/app.css`) |
//!
//! Every request passes the guard first (`guard.rs`: Host, Origin, token
//! and role, content type); SQL runs read-only within the `[server]`
//! limits (`query.rs`: slots, timeout, result size; the engine's memory
//! pool); connections are capped and timed (`listen.rs`), over TLS when
//! configured.
//!
//! ```text
//! TCP/TLS ─► listen (cap, timeouts) ─► guard (Host, Origin, token, type) ─► route:
//!   SQL: QueryGate ─► SqlEngine read-only (trawl-store, DataFusion) ─► encode (JSON/CSV/Arrow)
//!   pushes: Pipeline::push / apply_metadata (blocking pool)
//!   /metrics: Pipeline::metrics_text
//! ```

pub mod auth;
pub mod config;
pub mod encode;
pub mod guard;
pub mod listen;
pub mod query;
pub mod routes;

pub use auth::{Role, TOKENS_ENV, TokenEntry, Tokens, sha256_hex};
pub use config::{ConfigError, ServerConfig};
pub use encode::{EncodeError, Format, encode, encode_within};
pub use listen::{TlsError, load_tls};
pub use routes::{AppState, router, serve};
