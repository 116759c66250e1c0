//! SQL over the store and the attribution index, via DataFusion.
//!
//! Each store table is a [`StoreTable`] provider: a scan is the union of its
//! live Parquet segments (read by DataFusion's Parquet source, with
//! projection pushdown and the query's filters used for row-group pruning)
//! and a snapshot of its open buckets (so a record is queryable as soon as
//! [`Store::add_batch`](crate::Store::add_batch) returns). Filters on `time`
//! prune whole segments and open chunks before anything is read; every
//! filter stays in the plan above the scan (pushdown is inexact), so answers
//! never depend on the pruning.
//!
//! Aggregates over a fine rollup are answered from a coarser one when that
//! cannot change the answer (`route.rs`); a top-N report groups its
//! dictionary-encoded text keys as plain text (`group_text.rs`).
//!
//! `workloads` and `ip_history` are [`IndexTable`]s: the attribution index
//! rendered as one batch per scan.
//!
//! Two ways in: [`SqlEngine::query`] runs any statement (the local owner
//! of the data directory, `trawl query --data-dir`); [`SqlEngine::query_with`]
//! with [`Access::ReadOnly`] runs only statements that read (checked on the
//! syntax tree and on the plan, `readonly.rs`) and stops collecting when
//! the answer passes [`ResultLimits`]. An engine built with
//! [`EngineLimits::memory_bytes_max`] gives every query's operators one
//! shared memory pool and no spill files: a query over budget fails with
//! [`SqlError::OutOfMemory`] instead of taking the process down.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use arrow::array::{
    ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder, TimestampSecondBuilder,
    UInt32Builder,
};
use arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, DataFusionError, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, LogicalPlan, Operator, TableProviderFilterPushDown,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use trawl_attrib::{AttributionIndex, NO_OWNER, Workload};

use crate::group_text::GroupTextAsStrings;
use crate::manifest::SegmentMeta;
use crate::readonly::{self, Refusal};
use crate::route::{RULE_NAME, RollupRouting};
use crate::schema::{TIME_COLUMN, time_type};
use crate::segment_cache::SegmentCache;
use crate::store::{DETAIL_TABLE, Store, read_segment_of};

/// A store shared between the writer and query threads.
pub type SharedStore = Arc<RwLock<Store>>;

/// An attribution index shared between the pipeline and query threads.
pub type SharedIndex = Arc<RwLock<AttributionIndex>>;

/// Rows per in-memory partition slice of an open bucket.
const OPEN_SLICE_ROWS: usize = 64 * 1024;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The query is wrong: syntax, unknown table or column, bad types.
    #[error("{0}")]
    Invalid(DataFusionError),
    /// The query was right but running it failed.
    #[error("{0}")]
    Failed(DataFusionError),
    /// The statement does not only read (see `readonly.rs`).
    #[error("{0}")]
    Refused(Refusal),
    /// The query needed more memory than the engine's pool has left.
    #[error("{0}")]
    OutOfMemory(DataFusionError),
    /// The answer passed a [`ResultLimits`] bound.
    #[error(
        "the answer has more than {limit} {what} (the server's limit); narrow the query: \
         a WHERE on time, fewer columns, GROUP BY, or a LIMIT"
    )]
    TooLarge {
        /// `rows` or `bytes`.
        what: &'static str,
        /// The bound that was passed.
        limit: usize,
    },
}

impl From<DataFusionError> for SqlError {
    fn from(error: DataFusionError) -> Self {
        match error.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => SqlError::Invalid(error),
            DataFusionError::ResourcesExhausted(_) => SqlError::OutOfMemory(error),
            _ => SqlError::Failed(error),
        }
    }
}

/// A query's answer: its schema (also when there are no rows) and batches.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Columns of the answer.
    pub schema: SchemaRef,
    /// Rows of the answer.
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Who is asking: what a statement may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only statements that read (queries, EXPLAIN, SHOW, DESCRIBE): every
    /// network surface.
    ReadOnly,
    /// Anything DataFusion runs: the local owner of the data directory.
    Owner,
}

/// Bounds on one answer, checked while it is collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultLimits {
    /// Most rows.
    pub rows_max: usize,
    /// Most bytes of Arrow buffers (the rows' own, slices counted by what
    /// they cover).
    pub bytes_max: usize,
}

impl ResultLimits {
    /// No bound.
    pub const NONE: ResultLimits = ResultLimits {
        rows_max: usize::MAX,
        bytes_max: usize::MAX,
    };
}

/// Bounds fixed when an engine is built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineLimits {
    /// Memory pool shared by all running queries' operators (bytes); none:
    /// unbounded. With a pool, nothing spills to disk.
    pub memory_bytes_max: Option<usize>,
    /// Keep decoded rollup segments in memory for the queries that follow
    /// (a server; see `segment_cache.rs`): within the store's
    /// `segment_cache_bytes_max`.
    pub cache_segments: bool,
}

/// SQL over a store (and, when given, an attribution index).
#[derive(Clone)]
pub struct SqlEngine {
    ctx: SessionContext,
    /// Grouping by dictionary-encoded text as text (`group_text.rs`).
    text_keys_cast: Arc<GroupTextAsStrings>,
    /// Tables a read-only plan may scan (ours; `information_schema` aside).
    tables: Arc<Vec<String>>,
    /// The store's data directory, removed from what read-only callers see.
    data_dir: Arc<str>,
}

impl std::fmt::Debug for SqlEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlEngine").finish_non_exhaustive()
    }
}

impl SqlEngine {
    /// An engine with every store table, and `workloads` / `ip_history`
    /// when `index` is given.
    pub fn new(store: SharedStore, index: Option<SharedIndex>) -> Result<Self, SqlError> {
        Self::with_limits(store, index, EngineLimits::default())
    }

    /// [`SqlEngine::new`] with `limits`.
    pub fn with_limits(
        store: SharedStore,
        index: Option<SharedIndex>,
        limits: EngineLimits,
    ) -> Result<Self, SqlError> {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let mut config = SessionConfig::new()
            .with_target_partitions(threads)
            .with_information_schema(true);
        // A group-by whose first rows barely reduce (a million app pairs in
        // two million high-cardinality rows) skips the partial aggregation
        // and hashes each row once: the top-20 app pairs over 2 M rows took
        // 413 ms with the default (0.8), 222 ms with this (issue 14 #5).
        // Low-cardinality group-bys reduce far below it and keep theirs.
        config
            .options_mut()
            .execution
            .skip_partial_aggregation_probe_ratio_threshold = 0.5;
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(bytes) = limits.memory_bytes_max {
            runtime = runtime
                .with_memory_limit(bytes, 1.0)
                .with_disk_manager_builder(
                    DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
                );
        }
        let ctx = SessionContext::new_with_config_rt(config, runtime.build_arc()?);
        let text_keys_cast = Arc::new(GroupTextAsStrings::new());
        ctx.add_analyzer_rule(text_keys_cast.clone());
        for aggregate in crate::dictionary_args::aggregates() {
            ctx.register_udaf(aggregate);
        }
        let mut names = Vec::new();
        let data_dir: Arc<str> = {
            let guard = store.read().unwrap_or_else(|e| e.into_inner());
            if limits.cache_segments {
                guard.keep_segments_in_memory();
            }
            guard.config().data_dir.to_string_lossy().into()
        };
        let tables: Vec<(String, SchemaRef)> = {
            let guard = store.read().unwrap_or_else(|e| e.into_inner());
            guard
                .table_names()
                .into_iter()
                .filter_map(|name| Some((name.to_string(), guard.table_schema(name)?)))
                .collect()
        };
        for (name, schema) in tables {
            let table = StoreTable::new(&name, schema, store.clone());
            ctx.register_table(name.as_str(), Arc::new(table))?;
            names.push(name);
        }
        ctx.add_optimizer_rule(Arc::new(RollupRouting::new(store.clone())));
        if let Some(index) = index {
            for kind in [IndexTableKind::Workloads, IndexTableKind::IpHistory] {
                let table = IndexTable {
                    kind,
                    schema: kind.schema(),
                    index: index.clone(),
                };
                ctx.register_table(kind.name(), Arc::new(table))?;
                names.push(kind.name().to_string());
            }
        }
        Ok(SqlEngine {
            ctx,
            text_keys_cast,
            tables: Arc::new(names),
            data_dir,
        })
    }

    /// The same engine without rollup routing (see `route.rs`): every
    /// query reads the table it names. For comparisons and benches.
    pub fn without_rollup_routing(self) -> Self {
        self.ctx.remove_optimizer_rule(RULE_NAME);
        self
    }

    /// The same engine grouping dictionary-encoded text as dictionaries
    /// (see `group_text.rs`); its clones share the session, and so the
    /// setting. For comparisons and benches.
    pub fn without_text_keys_cast(self) -> Self {
        self.text_keys_cast.disable();
        self
    }

    /// Runs one SQL statement, whatever it does ([`Access::Owner`], no
    /// result bound).
    pub async fn query(&self, sql: &str) -> Result<QueryResult, SqlError> {
        self.query_with(sql, Access::Owner, ResultLimits::NONE)
            .await
    }

    /// Runs one SQL statement as `access` allows, collecting at most
    /// `limits`. A read-only statement is checked before planning and
    /// again on its plan; a refused one touches nothing.
    pub async fn query_with(
        &self,
        sql: &str,
        access: Access,
        limits: ResultLimits,
    ) -> Result<QueryResult, SqlError> {
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect)?;
        let read_only = access == Access::ReadOnly;
        if read_only {
            readonly::check_statement(&statement).map_err(SqlError::Refused)?;
        }
        let plan = state.statement_to_plan(statement).await?;
        if read_only {
            readonly::check_plan(&plan, &self.tables).map_err(SqlError::Refused)?;
        }
        let explains = matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_));
        let frame = self.ctx.execute_logical_plan(plan).await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let mut batches = collect_within(frame.execute_stream().await?, limits).await?;
        if read_only && explains {
            batches = batches
                .iter()
                .map(|b| redact_batch(b, &self.data_dir))
                .collect::<Result<_, _>>()?;
        }
        Ok(QueryResult { schema, batches })
    }

    /// `text` without the store's data directory (for messages to
    /// read-only callers: DataFusion names segment files in errors).
    pub fn redact(&self, text: &str) -> String {
        readonly::redact(text, &self.data_dir)
    }

    /// The DataFusion session (to register more tables or functions).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }
}

/// Collects `stream`, failing as soon as the rows or bytes pass `limits`
/// (dropping the stream then cancels the rest of the query).
async fn collect_within(
    mut stream: SendableRecordBatchStream,
    limits: ResultLimits,
) -> Result<Vec<RecordBatch>, SqlError> {
    let (mut rows, mut bytes) = (0usize, 0usize);
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows = rows.saturating_add(batch.num_rows());
        if rows > limits.rows_max {
            return Err(SqlError::TooLarge {
                what: "rows",
                limit: limits.rows_max,
            });
        }
        bytes = bytes.saturating_add(batch_bytes(&batch));
        if bytes > limits.bytes_max {
            return Err(SqlError::TooLarge {
                what: "bytes",
                limit: limits.bytes_max,
            });
        }
        batches.push(batch);
    }
    Ok(batches)
}

/// `batch` with the data directory removed from its text columns (EXPLAIN
/// output names segment files).
fn redact_batch(batch: &RecordBatch, data_dir: &str) -> Result<RecordBatch, DataFusionError> {
    let columns = batch
        .columns()
        .iter()
        .map(|column| match column.as_string_opt::<i32>() {
            Some(text) => Arc::new(
                text.iter()
                    .map(|v| v.map(|v| readonly::redact(v, data_dir)))
                    .collect::<StringArray>(),
            ) as ArrayRef,
            None => column.clone(),
        })
        .collect();
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// The bytes of Arrow buffers `batch` covers (a slice counts its part).
fn batch_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

/// A store table as DataFusion sees it.
#[derive(Debug)]
pub struct StoreTable {
    name: String,
    schema: SchemaRef,
    store: SharedStore,
}

impl StoreTable {
    /// The provider of store table `name` with columns `schema`.
    pub fn new(name: &str, schema: SchemaRef, store: SharedStore) -> Self {
        StoreTable {
            name: name.to_string(),
            schema,
            store,
        }
    }
}

#[async_trait]
impl TableProvider for StoreTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let (from, to) = time_bounds(filters);
        let (files, mut in_memory, cache) = {
            let store = self.store.read().unwrap_or_else(|e| e.into_inner());
            let files = store.segments(&self.name, from, to);
            let open = store
                .open_batches(&self.name, from, to)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let cache = store.segment_cache().filter(|_| self.name != DETAIL_TABLE);
            (files, open, cache)
        };
        let files = match cache {
            Some(cache) => self.take_cached(&cache, files, &mut in_memory),
            None => files,
        };
        let partitions = state.config().target_partitions().max(1);
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !files.is_empty() {
            inputs.push(self.parquet_scan(state, files, partitions, projection, filters, limit)?);
        }
        if !in_memory.is_empty() {
            inputs.push(MemorySourceConfig::try_new_exec(
                &slice_round_robin(&in_memory, partitions),
                self.schema.clone(),
                projection.cloned(),
            )?);
        }
        if inputs.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        UnionExec::try_new(inputs)
    }
}

impl StoreTable {
    /// Takes the segments `cache` holds out of `files` (their rows go to
    /// `in_memory`) and returns the rest, which are read from Parquet this
    /// time and loaded into the cache by a blocking task for the next
    /// queries (one task for all of them, each segment once).
    fn take_cached(
        &self,
        cache: &Arc<SegmentCache>,
        files: Vec<(PathBuf, SegmentMeta)>,
        in_memory: &mut Vec<RecordBatch>,
    ) -> Vec<(PathBuf, SegmentMeta)> {
        let mut unread = Vec::new();
        for (path, meta) in files {
            match cache.get(meta.id) {
                Some(batches) => in_memory.extend(batches.iter().cloned()),
                None => unread.push((path, meta)),
            }
        }
        let to_load: Vec<(PathBuf, SegmentMeta)> = unread
            .iter()
            .filter(|(_, meta)| cache.begin_load(meta.id))
            .cloned()
            .collect();
        if let (false, Ok(runtime)) = (to_load.is_empty(), tokio::runtime::Handle::try_current()) {
            let (cache, schema) = (cache.clone(), self.schema.clone());
            runtime.spawn_blocking(move || load_segments(&cache, &to_load, &schema));
        } else {
            to_load.iter().for_each(|(_, meta)| cache.end_load(meta.id));
        }
        unread
    }

    fn parquet_scan(
        &self,
        state: &dyn Session,
        files: Vec<(PathBuf, SegmentMeta)>,
        partitions: usize,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let mut source = ParquetSource::new(self.schema.clone());
        if let Some(predicate) = conjunction(filters.iter().cloned()) {
            let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions.min(files.len())];
        let group_count = groups.len();
        for (i, (path, meta)) in files.into_iter().enumerate() {
            groups[i % group_count].push(PartitionedFile::new(path.to_string_lossy(), meta.bytes));
        }
        let config =
            FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
                .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// Reads `segments` (validated, as every read is) into `cache`; a segment
/// that fails to read is left to Parquet scans (and tried again later).
fn load_segments(cache: &SegmentCache, segments: &[(PathBuf, SegmentMeta)], schema: &SchemaRef) {
    /// Ends every load at the end, also when reading panicked (a segment
    /// left `loading` would never be loaded again).
    struct EndLoads<'c>(&'c SegmentCache, Vec<u64>);
    impl Drop for EndLoads<'_> {
        fn drop(&mut self) {
            self.1.iter().for_each(|id| self.0.end_load(*id));
        }
    }
    let _end = EndLoads(cache, segments.iter().map(|(_, meta)| meta.id).collect());
    for (path, meta) in segments {
        if let Ok(batches) = read_segment_of(path, meta, &meta.table, schema) {
            cache.insert(meta.id, &batches, schema, meta.rows);
        }
    }
}

/// Splits batches into slices spread over `partitions` partitions.
fn slice_round_robin(batches: &[RecordBatch], partitions: usize) -> Vec<Vec<RecordBatch>> {
    let mut out = vec![Vec::new(); partitions];
    let mut next = 0;
    for batch in batches {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = OPEN_SLICE_ROWS.min(batch.num_rows() - offset);
            out[next % partitions].push(batch.slice(offset, len));
            next += 1;
            offset += len;
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

/// The `[from, to]` range of seconds the filters allow on `time` (inclusive;
/// the whole range when they do not bound it).
pub fn time_bounds(filters: &[Expr]) -> (u32, u32) {
    let mut bounds = (0u32, u32::MAX);
    for filter in filters {
        narrow(filter, &mut bounds);
    }
    bounds
}

fn narrow(expr: &Expr, bounds: &mut (u32, u32)) {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if *op == Operator::And {
                narrow(left, bounds);
                narrow(right, bounds);
                return;
            }
            let (op, secs) = match (is_time(left), is_time(right)) {
                (true, false) => (*op, literal_secs(right)),
                (false, true) => (op.swap().unwrap_or(*op), literal_secs(left)),
                _ => return,
            };
            let Some(secs) = secs else { return };
            let secs = secs_u32(secs);
            match op {
                Operator::Gt | Operator::GtEq => bounds.0 = bounds.0.max(secs),
                Operator::Lt | Operator::LtEq => bounds.1 = bounds.1.min(secs),
                Operator::Eq => {
                    bounds.0 = bounds.0.max(secs);
                    bounds.1 = bounds.1.min(secs);
                }
                _ => {}
            }
        }
        Expr::Between(between) if !between.negated && is_time(&between.expr) => {
            if let (Some(low), Some(high)) =
                (literal_secs(&between.low), literal_secs(&between.high))
            {
                bounds.0 = bounds.0.max(secs_u32(low));
                bounds.1 = bounds.1.min(secs_u32(high));
            }
        }
        _ => {}
    }
}

/// Seconds clamped to the store's `u32` time range.
fn secs_u32(secs: i64) -> u32 {
    secs.clamp(0, i64::from(u32::MAX)) as u32
}

fn is_time(expr: &Expr) -> bool {
    match expr {
        Expr::Column(c) => c.name == TIME_COLUMN,
        Expr::Cast(c) => is_time(&c.expr),
        Expr::TryCast(c) => is_time(&c.expr),
        _ => false,
    }
}

/// A timestamp literal in whole seconds (rounded down, so bounds only widen).
fn literal_secs(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::TimestampSecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMillisecond(Some(v), _) => Some(v.div_euclid(1_000)),
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(v.div_euclid(1_000_000)),
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(v.div_euclid(1_000_000_000)),
        _ => None,
    }
}

/// Which view of the attribution index a table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexTableKind {
    /// `workloads`: every workload the index knows.
    Workloads,
    /// `ip_history`: every ownership interval, declared and learned.
    IpHistory,
}

const WORKLOAD_COLUMNS: [&str; 6] = ["app", "cluster", "account", "region", "az", "kind"];

impl IndexTableKind {
    /// The table name.
    pub const fn name(self) -> &'static str {
        match self {
            IndexTableKind::Workloads => "workloads",
            IndexTableKind::IpHistory => "ip_history",
        }
    }

    /// The table's schema.
    pub fn schema(self) -> SchemaRef {
        let mut fields = match self {
            IndexTableKind::Workloads => {
                vec![ArrowField::new("workload_id", DataType::UInt32, false)]
            }
            IndexTableKind::IpHistory => vec![
                ArrowField::new("ip", DataType::Utf8, false),
                ArrowField::new("valid_from", time_type(), false),
                ArrowField::new("valid_to", time_type(), true),
                ArrowField::new("rule", DataType::Utf8, false),
            ],
        };
        fields.extend(
            WORKLOAD_COLUMNS
                .iter()
                .map(|c| ArrowField::new(*c, DataType::Utf8, true)),
        );
        if self == IndexTableKind::Workloads {
            fields.push(ArrowField::new("labels", DataType::Utf8, true));
        }
        Arc::new(Schema::new(fields))
    }
}

/// A view of the attribution index as a table.
#[derive(Debug)]
pub struct IndexTable {
    kind: IndexTableKind,
    schema: SchemaRef,
    index: SharedIndex,
}

#[derive(Default)]
struct WorkloadColumns {
    columns: [StringBuilder; 6],
}

impl WorkloadColumns {
    fn append(&mut self, w: Option<&Workload>) {
        let values = [
            w.and_then(|w| w.app.as_deref()),
            w.and_then(|w| w.cluster.as_deref()),
            w.and_then(|w| w.account.as_deref()),
            w.and_then(|w| w.region.as_deref()),
            w.and_then(|w| w.az.as_deref()),
            w.and_then(|w| w.kind.as_deref()),
        ];
        for (builder, value) in self.columns.iter_mut().zip(values) {
            builder.append_option(value);
        }
    }

    fn finish(self) -> impl Iterator<Item = ArrayRef> {
        self.columns
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef)
    }
}

impl IndexTable {
    fn batch(&self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let mut workload = WorkloadColumns::default();
        let mut columns: Vec<ArrayRef> = Vec::new();
        match self.kind {
            IndexTableKind::Workloads => {
                let mut ids = UInt32Builder::new();
                let mut labels = StringBuilder::new();
                for (id, w) in index.workloads().iter() {
                    ids.append_value(id);
                    workload.append(Some(w));
                    if w.labels.is_empty() {
                        labels.append_null();
                    } else {
                        labels.append_value(serde_json::to_string(&w.labels).unwrap_or_default());
                    }
                }
                columns.push(Arc::new(ids.finish()));
                columns.extend(workload.finish());
                columns.push(Arc::new(labels.finish()));
            }
            IndexTableKind::IpHistory => {
                let mut ips = StringBuilder::new();
                let mut from = TimestampSecondBuilder::new().with_timezone("UTC");
                let mut to = TimestampSecondBuilder::new().with_timezone("UTC");
                let mut rules = StringBuilder::new();
                let mut row = |ip: &str, f: u32, t: Option<u32>, rule: &str, owner| {
                    ips.append_value(ip);
                    from.append_value(i64::from(f));
                    to.append_option(t.map(i64::from));
                    rules.append_value(rule);
                    workload.append(index.workload(owner));
                };
                for (ip, record) in index.records() {
                    let ip = ip.to_string();
                    for held in record
                        .timeline
                        .intervals()
                        .into_iter()
                        .filter(|h| h.owner != NO_OWNER)
                    {
                        row(&ip, held.from, held.to, "declared", held.owner);
                    }
                    for span in &record.learned {
                        row(&ip, span.from, Some(span.to), "learned", span.owner);
                    }
                }
                columns.push(Arc::new(ips.finish()));
                columns.push(Arc::new(from.finish()));
                columns.push(Arc::new(to.finish()));
                columns.push(Arc::new(rules.finish()));
                columns.extend(workload.finish());
            }
        }
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}

#[async_trait]
impl TableProvider for IndexTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let batch = self.batch()?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
