//! # trawl-server
//!
//! The HTTP API over a running pipeline. Bound to 127.0.0.1 unless told
//! otherwise (the binary decides).
//!
//! | route | what |
//! |---|---|
//! | `GET /api/v1/tables` | the tables, their grain, retention and oldest kept time (`tables.rs`) |
//! | `POST /api/v1/sql` | body `{"sql": "…"}` → JSON array of row objects; `?format=csv` / `?format=arrow` (IPC stream); 400 `{"error": …}` for bad SQL |
//! | `POST /api/v1/flows` | flow-log lines, gzip, or CloudWatch Logs envelopes (`?source=NAME`) → `{"records", "errors"}` |
//! | `POST /api/v1/firehose` | Kinesis Data Firehose HTTP endpoint delivery → `{"requestId", "timestamp"}` (or `errorMessage`) |
//! | `POST /api/v1/metadata` | metadata events, JSON lines → `{"applied", "errors"}` |
//! | `GET /api/v1/tail?where=SQL&rate=N` | the live tail of stored flows matching `where`, as server-sent events (`tail.rs`) |
//! | `GET /api/v1/whois?ip=IP&at=TIME` | who held `ip` at `at`: the object `trawl whois` prints (`whois.rs`) |
//! | `GET /metrics` | Prometheus text |
//! | `GET /health` | `{"status": "ok", …}` |
//! | `GET /`, `GET /ui/…` | the web UI (`assets.rs`: files under `ui/`, compiled in, brotli/gzip) |
//!
//! Every request passes the guard first (`guard.rs`: Host, Origin, token
//! and role, content type); SQL runs read-only within the `[server]`
//! limits (`query.rs`: slots, timeout, result size; the engine's memory
//! pool); connections are capped and timed (`listen.rs`), over TLS when
//! configured.
//!
//! ```text
//! TCP/TLS ─► listen (cap, timeouts) ─► guard (Host, Origin, Sec-Fetch-Site, token, type) ─► route:
//!   SQL: QueryGate ─► SqlEngine read-only (trawl-store, DataFusion) ─► encode (JSON/CSV/Arrow)
//!   pushes: Pipeline::push / apply_metadata (blocking pool)
//!   /metrics: Pipeline::metrics_text
//!   tail: Store's TailFeed ─► filter + sample (blocking pool) ─► server-sent events
//! ```

pub mod assets;
pub mod auth;
pub mod config;
pub mod encode;
pub mod guard;
pub mod listen;
pub mod query;
pub mod routes;
mod tables;
mod tail;
mod whois;

pub use auth::{Role, TOKENS_ENV, TokenEntry, Tokens, sha256_hex};
pub use config::{ConfigError, ServerConfig};
pub use encode::{EncodeError, Format, encode, encode_within};
pub use listen::{TlsError, load_tls};
pub use routes::{AppState, router, serve};
pub use tail::{EndTailsOnDrop, TailHub};
pub use whois::answer_json;
