//! Running one SQL request within the server's limits.
//!
//! ```text
//! request ─► slot (semaphore, queries_max; wait ≤ query_queue_wait_ms, else 429)
//!         ─► spawned task: read-only SqlEngine::query_with (result bounds)
//!         ─► wait ≤ query_timeout_secs (else abort the task: 504)
//! ```
//!
//! Queries run on a runtime of their own (`trawl-query` threads, one per
//! core), never on the server's: a query that keeps its threads busy
//! cannot delay timers, the accept loop or `/health`, so its timeout is
//! answered on time. The slot is moved into the task, so it is held while
//! the query really runs, also after a timeout until the abort lands at
//! the query's next yield point. The task is aborted when the request's
//! future is dropped (the client went away) as well as on timeout: no
//! query outlives the request that asked for it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::AbortHandle;
use trawl_store::{Access, QueryResult, ResultLimits, SqlEngine, SqlError};

use crate::config::ServerConfig;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryFailure {
    /// Every slot stayed busy for the whole wait.
    #[error("{running} queries are running (the server's limit); retry shortly")]
    Busy {
        /// The limit.
        running: usize,
    },
    /// The query ran past the timeout and was cancelled.
    #[error(
        "the query ran longer than {secs} s (the server's limit) and was cancelled; narrow it, e.g. with a WHERE on time"
    )]
    Timeout {
        /// The limit.
        secs: u64,
    },
    /// The query itself failed or was refused.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// The task running it panicked.
    #[error("the query failed inside the server")]
    Crashed,
}

/// The query runtime; shut down without waiting when dropped (it may be
/// dropped from async code, where a blocking shutdown panics).
#[derive(Debug)]
struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The limits every SQL request runs under.
#[derive(Debug)]
pub struct QueryGate {
    runtime: QueryRuntime,
    slots: Arc<Semaphore>,
    slots_max: usize,
    queue_wait: Duration,
    timeout: Duration,
    limits: ResultLimits,
}

/// Aborts a task when dropped.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl QueryGate {
    /// The gate `config` describes, with its own runtime.
    pub fn new(config: &ServerConfig) -> std::io::Result<QueryGate> {
        let slots_max = config.queries_max();
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("trawl-query")
            .enable_all()
            .build()?;
        Ok(QueryGate {
            runtime: QueryRuntime(Some(runtime)),
            slots: Arc::new(Semaphore::new(slots_max)),
            slots_max,
            queue_wait: Duration::from_millis(config.query_queue_wait_ms),
            timeout: Duration::from_secs(config.query_timeout_secs),
            limits: ResultLimits {
                rows_max: config.result_rows_max,
                bytes_max: config.result_bytes_max,
            },
        })
    }

    /// Queries running now.
    pub fn running(&self) -> usize {
        self.slots_max - self.slots.available_permits()
    }

    /// Runs `sql` read-only on `engine` within the limits.
    pub async fn run(&self, engine: &SqlEngine, sql: String) -> Result<QueryResult, QueryFailure> {
        let busy = QueryFailure::Busy {
            running: self.slots_max,
        };
        let permit =
            match tokio::time::timeout(self.queue_wait, self.slots.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => return Err(busy),
            };
        let engine = engine.clone();
        let limits = self.limits;
        let Some(runtime) = &self.runtime.0 else {
            return Err(QueryFailure::Crashed);
        };
        let task = runtime.spawn(async move {
            let _permit = permit;
            engine.query_with(&sql, Access::ReadOnly, limits).await
        });
        let _abort = AbortOnDrop(task.abort_handle());
        match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(_)) => Err(QueryFailure::Crashed),
            Err(_) => Err(QueryFailure::Timeout {
                secs: self.timeout.as_secs(),
            }),
        }
    }
}
