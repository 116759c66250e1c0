//! The live tail: the rows of `flows` as they are stored, for whoever
//! listens (the HTTP server's `/api/v1/tail`), and the SQL filter a
//! listener applies to them.
//!
//! ```text
//! Store::add_batch ──(someone listens?)──► DetailBucket of the batch's stored flows
//!                                              │ to batches (store dictionary snapshot)
//!                                              ▼
//!                      TailFeed: tokio broadcast of Arc<RecordBatch>, TAIL_BATCHES_MAX deep
//!                                              │
//!             TailSubscription (one per listener) ─► TailFilter::apply (listener's thread)
//! ```
//!
//! Invariants and reasons:
//!
//! - **Nothing is built when nobody listens.** [`TailFeed::is_listened`] is
//!   one relaxed atomic load per batch; the count it reads is kept by
//!   [`TailSubscription`]s (incremented when made, decremented when
//!   dropped), so the hot path pays nothing more while no one tails.
//! - **A tail row is a `flows` row.** The writer builds the rows with the
//!   same [`DetailBucket`] code, from the same record and dimension codes,
//!   in [`detail_schema`], with the store's dictionary taken while it still
//!   holds its shard (every code it used is interned by then): what the
//!   `flows` table shows for those flows, enrichment included, whether or
//!   not the detail table is enabled. A flow is sent when it has a usable
//!   `start` and is within the `flows` retention (the rows the detail table
//!   keeps, or would keep).
//! - **A slow listener never slows a writer.** Sending never waits: a
//!   listener that falls [`TAIL_BATCHES_MAX`] batches behind loses the
//!   oldest ones and is told how many (tokio's `RecvError::Lagged`).
//!   Filters run on the listener's side, never on ingestion threads.
//! - **A filter is an expression, nothing more.** [`TailFilter::compile`]
//!   takes at most [`FILTER_BYTES_MAX`] bytes of SQL, plans it with
//!   DataFusion against [`detail_schema`] only (no table is reachable), and
//!   refuses subqueries, aggregates, window functions, parameters,
//!   variables, string concatenation (`||`), regular expressions (`~`,
//!   `SIMILAR TO`: each compiles per batch, up to megabytes; `LIKE`
//!   stays), every function not in
//!   [`FILTER_FUNCTIONS`] (an allowlist of functions whose output is no
//!   larger than their input: a denylist let `regexp_replace` nested three
//!   deep turn one address into gigabytes and abort the server),
//!   parentheses nested past [`FILTER_DEPTH_MAX`], and anything whose type
//!   is not boolean.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{AsArray, RecordBatch, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, ExprSchemable, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use tokio::sync::broadcast;
use trawl_flowlog::FlowRecord;

use crate::detail::DetailBucket;
use crate::dims::DIM_COUNT;
use crate::schema::detail_schema;

pub use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// Batches the feed holds for its slowest listener before that listener
/// loses the oldest (each batch is one `add_batch` call's stored flows).
pub const TAIL_BATCHES_MAX: usize = 16;

/// Longest filter accepted (bytes of SQL).
pub const FILTER_BYTES_MAX: usize = 2048;

/// Deepest nesting of parentheses a filter may have (planning recurses).
pub const FILTER_DEPTH_MAX: usize = 16;

/// The functions a filter may call: each one's output is bounded by its
/// input (no growth when nested), so a filter's cost is bounded by the
/// rows it reads.
pub const FILTER_FUNCTIONS: &[&str] = &[
    "lower",
    "upper",
    "btrim",
    "ltrim",
    "rtrim",
    "trim",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "starts_with",
    "ends_with",
    "strpos",
    "left",
    "right",
    "substr",
    "substring",
    "split_part",
    "abs",
    "coalesce",
    "nullif",
    "date_trunc",
    "date_bin",
    "to_timestamp",
    "to_timestamp_seconds",
    "now",
    "isnan",
    "floor",
    "ceil",
    "round",
];

/// The store's live feed of `flows` rows (see the module header).
#[derive(Debug)]
pub struct TailFeed {
    sender: broadcast::Sender<Arc<RecordBatch>>,
    listeners: Arc<AtomicUsize>,
}

impl Default for TailFeed {
    fn default() -> Self {
        TailFeed::new()
    }
}

impl TailFeed {
    /// A feed nobody listens to yet.
    pub fn new() -> TailFeed {
        let (sender, _) = broadcast::channel(TAIL_BATCHES_MAX);
        TailFeed {
            sender,
            listeners: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Whether anyone listens: one relaxed load (the writers' hot path).
    #[inline]
    pub fn is_listened(&self) -> bool {
        self.listeners.load(Ordering::Relaxed) > 0
    }

    /// Listeners now.
    pub fn listeners(&self) -> usize {
        self.listeners.load(Ordering::Relaxed)
    }

    /// A new listener: it receives every batch sent from now on (up to
    /// [`TAIL_BATCHES_MAX`] behind).
    pub fn subscribe(&self) -> TailSubscription {
        // Counted first: a writer that sees the count builds rows this
        // receiver will get (a batch sent in between is simply before it).
        self.listeners.fetch_add(1, Ordering::Relaxed);
        TailSubscription {
            receiver: self.sender.subscribe(),
            _listening: Listening(self.listeners.clone()),
        }
    }

    /// Sends `batch` to every listener; nothing happens without one.
    pub fn send(&self, batch: RecordBatch) {
        // An error only means that no one listens any more.
        let _ = self.sender.send(Arc::new(batch));
    }
}

/// Decrements the listener count when its subscription is dropped.
#[derive(Debug)]
struct Listening(Arc<AtomicUsize>);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One listener of a [`TailFeed`]: batches of the `flows` schema
/// ([`detail_schema`]), in the order they were stored.
#[derive(Debug)]
pub struct TailSubscription {
    receiver: broadcast::Receiver<Arc<RecordBatch>>,
    _listening: Listening,
}

impl TailSubscription {
    /// The next batch; `Err(RecvError::Lagged(n))` when this listener fell
    /// behind and `n` batches were dropped for it (it goes on with the
    /// oldest one still held), `Err(RecvError::Closed)` when the store is gone.
    pub async fn recv(&mut self) -> Result<Arc<RecordBatch>, RecvError> {
        self.receiver.recv().await
    }

    /// [`recv`](Self::recv) without waiting.
    pub fn try_recv(&mut self) -> Result<Arc<RecordBatch>, TryRecvError> {
        self.receiver.try_recv()
    }
}

/// The tail rows of one `add_batch` call: built only while someone listens
/// (see the module header).
pub(crate) struct TailRows {
    bucket: DetailBucket,
}

impl TailRows {
    /// Rows for a batch of `flows` flows, or `None` when nobody listens.
    #[inline]
    pub(crate) fn start(feed: &TailFeed, flows: usize) -> Option<TailRows> {
        feed.is_listened().then(|| TailRows {
            bucket: DetailBucket::with_capacity(flows),
        })
    }

    /// Adds one stored flow, as [`DetailBucket::add`] does for `flows`.
    pub(crate) fn add(
        &mut self,
        start: u32,
        record: &FlowRecord<'_>,
        dims: &[u32; DIM_COUNT],
        schema: &SchemaRef,
    ) {
        self.bucket.add(start, record, dims, schema);
    }

    /// Sends the rows as batches of `schema`, their dictionary columns over
    /// `dictionary` (the store's, taken after every code was interned).
    pub(crate) fn send(self, feed: &TailFeed, schema: &SchemaRef, dictionary: &Arc<StringArray>) {
        if self.bucket.is_empty() {
            return;
        }
        match self.bucket.into_batches(schema, dictionary) {
            Ok(batches) => batches.into_iter().for_each(|b| feed.send(b)),
            // Codes are below the dictionary's length by construction
            // (`schema::dim_array`); a broken invariant costs the tail
            // these rows, never the store its batch.
            Err(error) => debug_assert!(false, "tail rows: {error}"),
        }
    }
}

/// Why a filter was refused, or failed on a batch.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// Longer than [`FILTER_BYTES_MAX`].
    #[error("the filter is {bytes} bytes long; at most {max} are accepted")]
    TooLong {
        /// Its length.
        bytes: usize,
        /// The bound.
        max: usize,
    },
    /// Not SQL, or not over the `flows` columns (the message names the
    /// unknown column or the syntax error).
    #[error("the filter is not a valid SQL expression over the flows columns: {0}")]
    Invalid(String),
    /// Uses something a filter may not (named).
    #[error("the filter may not use {0}")]
    Refused(String),
    /// Its type is not boolean.
    #[error("the filter must be a condition (true or false), not a value of type {0}")]
    NotBoolean(DataType),
    /// A batch not of the `flows` schema.
    #[error("the batch is not of the flows schema")]
    Schema,
    /// Evaluating it on a batch failed (an overflow, a bad cast, …).
    #[error("evaluating the filter: {0}")]
    Eval(String),
}

/// An SQL condition over the `flows` columns, compiled once and applied to
/// each batch a listener receives (see the module header).
#[derive(Debug, Clone)]
pub struct TailFilter {
    /// `None`: every row.
    expr: Option<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
    sql: String,
}

impl TailFilter {
    /// Compiles `where_sql` (`dst_app = 'checkout' AND action = 'REJECT'`);
    /// empty or blank: every flow.
    pub fn compile(where_sql: &str) -> Result<TailFilter, TailError> {
        let schema = detail_schema();
        if where_sql.len() > FILTER_BYTES_MAX {
            return Err(TailError::TooLong {
                bytes: where_sql.len(),
                max: FILTER_BYTES_MAX,
            });
        }
        let sql = where_sql.trim().to_string();
        let depth = nesting_depth(&sql);
        if depth > FILTER_DEPTH_MAX {
            return Err(TailError::Refused(format!(
                "parentheses nested {depth} deep (at most {FILTER_DEPTH_MAX})"
            )));
        }
        if sql.is_empty() {
            return Ok(TailFilter {
                expr: None,
                schema,
                sql,
            });
        }
        let invalid = |e: datafusion::error::DataFusionError| {
            TailError::Invalid(e.strip_backtrace().trim().to_string())
        };
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(invalid)?;
        let ctx = SessionContext::new();
        let expr = ctx.parse_sql_expr(&sql, &df_schema).map_err(invalid)?;
        check_expr(&expr)?;
        let logical_type = expr.get_type(&df_schema).map_err(invalid)?;
        if logical_type != DataType::Boolean {
            return Err(TailError::NotBoolean(logical_type));
        }
        let expr = ctx
            .create_physical_expr(expr, &df_schema)
            .map_err(invalid)?;
        let physical_type = expr.data_type(&schema).map_err(invalid)?;
        if physical_type != DataType::Boolean {
            return Err(TailError::NotBoolean(physical_type));
        }
        Ok(TailFilter {
            expr: Some(expr),
            schema,
            sql,
        })
    }

    /// Whether the filter keeps every row.
    pub fn is_all(&self) -> bool {
        self.expr.is_none()
    }

    /// The filter's SQL as given (trimmed).
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The rows of `batch` (of the `flows` schema) for which the filter is
    /// true (null is no match).
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch, TailError> {
        let Some(expr) = &self.expr else {
            return Ok(batch.clone());
        };
        if !Arc::ptr_eq(batch.schema_ref(), &self.schema)
            && batch.schema_ref().fields() != self.schema.fields()
        {
            return Err(TailError::Schema);
        }
        let eval = |e: datafusion::error::DataFusionError| {
            TailError::Eval(e.strip_backtrace().trim().to_string())
        };
        let mask = expr
            .evaluate(batch)
            .and_then(|value| value.into_array(batch.num_rows()))
            .map_err(eval)?;
        let Some(mask) = mask.as_boolean_opt() else {
            return Err(TailError::NotBoolean(mask.data_type().clone()));
        };
        // `filter` drops rows whose mask is null.
        filter_record_batch(batch, mask).map_err(|e| TailError::Eval(e.to_string()))
    }
}

/// The deepest nesting of parentheses in `sql`, outside quotes.
fn nesting_depth(sql: &str) -> usize {
    let (mut depth, mut deepest, mut quote) = (0usize, 0usize, None);
    for c in sql.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ')') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Refuses what a filter may not use (see the module header).
fn check_expr(expr: &Expr) -> Result<(), TailError> {
    let mut refused: Option<String> = None;
    let walked = expr.apply(|e| {
        let what = match e {
            Expr::ScalarSubquery(_)
            | Expr::Exists(_)
            | Expr::InSubquery(_)
            | Expr::SetComparison(_)
            | Expr::OuterReferenceColumn(..) => Some("subqueries".to_string()),
            Expr::AggregateFunction(f) => Some(format!("the aggregate function {}", f.func.name())),
            Expr::WindowFunction(_) => Some("window functions".to_string()),
            Expr::GroupingSet(_) => Some("grouping sets".to_string()),
            Expr::Unnest(_) => Some("unnest".to_string()),
            Expr::Placeholder(_) => Some("parameters ($1, ?)".to_string()),
            Expr::ScalarVariable(..) => Some("variables (@name)".to_string()),
            Expr::BinaryExpr(b) if b.op == Operator::StringConcat => {
                Some("string concatenation (||)".to_string())
            }
            Expr::BinaryExpr(b)
                if matches!(
                    b.op,
                    Operator::RegexMatch
                        | Operator::RegexIMatch
                        | Operator::RegexNotMatch
                        | Operator::RegexNotIMatch
                ) =>
            {
                Some("regular expressions (~; use LIKE)".to_string())
            }
            Expr::SimilarTo(_) => Some("regular expressions (SIMILAR TO; use LIKE)".to_string()),
            Expr::ScalarFunction(f) if !FILTER_FUNCTIONS.contains(&f.func.name()) => Some(format!(
                "the function {} (a filter may call {})",
                f.func.name(),
                FILTER_FUNCTIONS.join(", ")
            )),
            _ => None,
        };
        match what {
            Some(what) => {
                refused = Some(what);
                Ok(TreeNodeRecursion::Stop)
            }
            None => Ok(TreeNodeRecursion::Continue),
        }
    });
    if let Err(e) = walked {
        return Err(TailError::Invalid(e.strip_backtrace()));
    }
    match refused {
        Some(what) => Err(TailError::Refused(what)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use arrow::array::{
        ArrayRef, DictionaryArray, Int32Array, StringArray, UInt32Array, new_null_array,
    };
    use arrow::datatypes::UInt32Type;
    use proptest::prelude::*;
    use trawl_attrib::{Workload, WorkloadTable};
    use trawl_flowlog::{Action, Field, LogStatus, Value};

    use super::*;
    use crate::{DETAIL_TABLE, DetailSpec, EnrichedFlow, Store, StoreConfig};

    /// A `flows` batch whose `dst_app`, `action` and `dst_port` are given
    /// (`None`: null) and every other column null.
    fn batch(rows: &[(Option<&str>, Option<&str>, Option<i32>)]) -> RecordBatch {
        let schema = detail_schema();
        let apps: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.0)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let keys: UInt32Array = rows
            .iter()
            .map(|r| r.0.and_then(|a| apps.iter().position(|x| *x == a)))
            .map(|k| k.map(|k| k as u32))
            .collect();
        let dst_app: ArrayRef = Arc::new(
            DictionaryArray::<UInt32Type>::try_new(keys, Arc::new(StringArray::from(apps)))
                .unwrap(),
        );
        // The second value goes to a coded column and a plain text one.
        let text: ArrayRef = Arc::new(rows.iter().map(|r| r.1).collect::<StringArray>());
        let action = arrow::compute::cast(&text, &crate::schema::text_type()).unwrap();
        let dst_port: ArrayRef = Arc::new(rows.iter().map(|r| r.2).collect::<Int32Array>());
        let columns = schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "time" => Arc::new(
                    arrow::array::TimestampSecondArray::from(vec![1_000; rows.len()])
                        .with_timezone("UTC"),
                ) as ArrayRef,
                "dst_app" => dst_app.clone(),
                "action" => action.clone(),
                "src_addr" => text.clone(),
                "dst_port" => dst_port.clone(),
                _ => new_null_array(f.data_type(), rows.len()),
            })
            .collect();
        RecordBatch::try_new(schema, columns).unwrap()
    }

    fn kept(filter: &str, rows: &[(Option<&str>, Option<&str>, Option<i32>)]) -> Vec<i32> {
        let filter = TailFilter::compile(filter).unwrap();
        let out = filter.apply(&batch(rows)).unwrap();
        let port = out.column_by_name("dst_port").unwrap();
        let port = port.as_primitive::<arrow::datatypes::Int32Type>();
        (0..port.len()).map(|i| port.value(i)).collect()
    }

    #[test]
    fn a_filter_keeps_the_rows_it_is_true_for_and_null_is_no_match() {
        let rows = [
            (Some("checkout"), Some("REJECT"), Some(1)),
            (Some("checkout"), Some("ACCEPT"), Some(2)),
            (Some("payments"), Some("REJECT"), Some(3)),
            (None, Some("REJECT"), Some(4)),
            (Some("checkout"), None, Some(5)),
        ];
        assert_eq!(
            kept("dst_app = 'checkout' AND action = 'REJECT'", &rows),
            [1]
        );
        assert_eq!(kept("dst_app != 'checkout'", &rows), [3]);
        assert_eq!(kept("dst_app LIKE 'pay%'", &rows), [3]);
        assert_eq!(kept("dst_port IN (2, 4, 5)", &rows), [2, 4, 5]);
        assert_eq!(kept("dst_app IS NULL OR action IS NULL", &rows), [4, 5]);
        assert_eq!(kept("", &rows), [1, 2, 3, 4, 5]);
        assert_eq!(kept("  ", &rows), [1, 2, 3, 4, 5]);
        assert!(TailFilter::compile(" ").unwrap().is_all());
    }

    #[test]
    fn errors_name_the_problem() {
        let message = |sql: &str| TailFilter::compile(sql).unwrap_err().to_string();
        let unknown = message("dst_appp = 'x'");
        assert!(unknown.contains("dst_appp"), "{unknown}");
        let not_boolean = message("bytes + 1");
        assert!(not_boolean.contains("condition"), "{not_boolean}");
        assert!(message("src_app").contains("condition"));
        // The allowlist holds none of the functions read-only SQL denies.
        for name in FILTER_FUNCTIONS {
            assert!(!crate::readonly::FUNCTIONS_DENIED.contains(name), "{name}");
        }
        let deep = format!("{}bytes{} > 1", "(".repeat(20), ")".repeat(20));
        for (sql, named) in [
            ("EXISTS (SELECT 1)", "subqueries"),
            ("bytes > (SELECT 1)", "subqueries"),
            ("dst_port IN (SELECT 1)", "subqueries"),
            ("length(repeat(src_app, 1000000000)) > 1", "repeat"),
            ("lpad(src_app, 1000000000) = 'x'", "lpad"),
            ("count(*) > 1", "aggregate"),
            ("dst_port = $1", "parameters"),
            // Regression (cold review of e03ca99): functions outside the
            // allowlist, growth by concatenation, deep nesting.
            (
                "regexp_replace(src_addr, '', 'xxxxxxxx', 'g') = 'x'",
                "regexp_replace",
            ),
            ("encode(src_addr, 'hex') = 'x'", "encode"),
            ("src_addr || src_addr = 'x'", "concatenation"),
            // Regression (second cold review): a regex compiles per batch.
            (r"regexp_like(dst_app, '\w{200}')", "regexp_like"),
            (r"dst_app ~ '\w{200}'", "regular expressions"),
            ("dst_app SIMILAR TO 'a%'", "regular expressions"),
            (deep.as_str(), "nested 20 deep"),
        ] {
            let error = message(sql);
            assert!(error.contains(named), "{sql}: {error}");
        }
        let syntax = message("dst_app = ");
        assert!(syntax.contains("not a valid SQL"), "{syntax}");
        assert!(message("1 = 1; DROP TABLE flows").contains("not a valid SQL"));
        let long = format!("dst_app = '{}'", "x".repeat(FILTER_BYTES_MAX));
        assert!(message(&long).contains("at most 2048"));
        // Subquery over a table: no table is reachable from a filter.
        assert!(message("dst_app IN (SELECT dst_app FROM flows)").contains("flows"));
        // What a person filters on still compiles.
        for sql in [
            "lower(dst_app) LIKE 'pay%' AND dst_port IN (22, 3389) AND NOT cross_az",
            "src_addr = '10.0.0.1' OR (bytes > 1000 AND action = 'REJECT')",
            "starts_with(src_app, 'web') AND time > now() - INTERVAL '5 minutes'",
        ] {
            TailFilter::compile(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn a_batch_of_another_schema_is_refused() {
        let filter = TailFilter::compile("dst_port = 1").unwrap();
        let other = RecordBatch::try_from_iter([(
            "dst_port",
            Arc::new(Int32Array::from(vec![1])) as ArrayRef,
        )])
        .unwrap();
        assert!(matches!(filter.apply(&other), Err(TailError::Schema)));
    }

    #[derive(Debug, Clone)]
    enum Predicate {
        AppEq(&'static str),
        AppNe(&'static str),
        AppIn(Vec<&'static str>),
        PortIn(Vec<i32>),
        ActionEq(&'static str),
        /// The same values in a plain text column.
        TextEq(&'static str),
    }

    const APPS: [&str; 3] = ["api", "db", "pay"];

    impl Predicate {
        fn sql(&self) -> String {
            let quoted = |v: &[&str]| {
                v.iter()
                    .map(|a| format!("'{a}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match self {
                Predicate::AppEq(a) => format!("dst_app = '{a}'"),
                Predicate::AppNe(a) => format!("dst_app != '{a}'"),
                Predicate::AppIn(v) => format!("dst_app IN ({})", quoted(v)),
                Predicate::PortIn(v) => format!(
                    "dst_port IN ({})",
                    v.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
                ),
                Predicate::ActionEq(a) => format!("action = '{a}'"),
                Predicate::TextEq(a) => format!("src_addr = '{a}'"),
            }
        }

        /// The oracle: SQL's three-valued logic, null = no match.
        fn holds(&self, row: &(Option<&str>, Option<&str>, Option<i32>)) -> bool {
            match (self, row) {
                (Predicate::AppEq(a), (Some(v), _, _)) => v == a,
                (Predicate::AppNe(a), (Some(v), _, _)) => v != a,
                (Predicate::AppIn(set), (Some(v), _, _)) => set.contains(v),
                (Predicate::PortIn(set), (_, _, Some(p))) => set.contains(p),
                (Predicate::ActionEq(a) | Predicate::TextEq(a), (_, Some(v), _)) => v == a,
                _ => false,
            }
        }
    }

    fn predicate() -> impl Strategy<Value = Predicate> {
        let app = prop::sample::select(APPS.to_vec());
        prop_oneof![
            app.clone().prop_map(Predicate::AppEq),
            app.clone().prop_map(Predicate::AppNe),
            prop::collection::vec(app, 1..3).prop_map(Predicate::AppIn),
            prop::collection::vec(0..4i32, 1..3).prop_map(Predicate::PortIn),
            prop::sample::select(vec!["ACCEPT", "REJECT"]).prop_map(Predicate::ActionEq),
            prop::sample::select(vec!["ACCEPT", "REJECT"]).prop_map(Predicate::TextEq),
        ]
    }

    fn row() -> impl Strategy<Value = (Option<&'static str>, Option<&'static str>, Option<i32>)> {
        (
            prop::option::of(prop::sample::select(APPS.to_vec())),
            prop::option::of(prop::sample::select(vec!["ACCEPT", "REJECT"])),
            prop::option::of(0..4i32),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// `=`, `!=` and IN on dictionary, text and integer columns,
        /// alone, ANDed or ORed, against a plain Rust oracle.
        #[test]
        fn filters_agree_with_an_oracle(
            rows in prop::collection::vec(row(), 0..40),
            left in predicate(),
            right in prop::option::of((predicate(), any::<bool>())),
        ) {
            let (sql, expected): (String, Vec<bool>) = match &right {
                None => (left.sql(), rows.iter().map(|r| left.holds(r)).collect()),
                Some((right, and)) => {
                    let op = if *and { "AND" } else { "OR" };
                    let sql = format!("({}) {op} ({})", left.sql(), right.sql());
                    let expected = rows
                        .iter()
                        .map(|r| if *and {
                            left.holds(r) && right.holds(r)
                        } else {
                            left.holds(r) || right.holds(r)
                        })
                        .collect();
                    (sql, expected)
                }
            };
            // Each row is told apart by its position, in a column no predicate reads.
            let filter = TailFilter::compile(&sql).unwrap();
            let mut input = batch(&rows);
            let positions: ArrayRef = Arc::new(
                (0..rows.len() as u64).map(Some).collect::<arrow::array::UInt64Array>(),
            );
            let index = input.schema().index_of("bytes").unwrap();
            let mut columns = input.columns().to_vec();
            columns[index] = positions;
            input = RecordBatch::try_new(input.schema(), columns).unwrap();
            let out = filter.apply(&input).unwrap();
            let kept: Vec<u64> = out
                .column(index)
                .as_primitive::<arrow::datatypes::UInt64Type>()
                .values()
                .to_vec();
            let wanted: Vec<u64> = expected
                .iter()
                .enumerate()
                .filter(|(_, k)| **k)
                .map(|(i, _)| i as u64)
                .collect();
            prop_assert_eq!(kept, wanted, "{}", sql);
        }
    }

    fn record(i: u16, start: u64) -> FlowRecord<'static> {
        let mut r = FlowRecord::new();
        r.set(Field::Version, Value::Int(2));
        r.set(Field::SrcAddr, Value::Addr([10, 0, 0, 1].into()));
        r.set(Field::DstAddr, Value::Addr([10, 0, 0, 2].into()));
        r.set(Field::SrcPort, Value::Int(40_000 + u64::from(i)));
        r.set(Field::DstPort, Value::Int(443));
        r.set(Field::Protocol, Value::Int(6));
        r.set(Field::Packets, Value::Int(1));
        r.set(Field::Bytes, Value::Int(100 + u64::from(i)));
        r.set(Field::Start, Value::Int(start));
        r.set(Field::End, Value::Int(start + 10));
        r.set(Field::Action, Value::Action(Action::Reject));
        r.set(Field::LogStatus, Value::LogStatus(LogStatus::Ok));
        r
    }

    fn workloads() -> (WorkloadTable, [trawl_attrib::WorkloadId; 2]) {
        let mut table = WorkloadTable::default();
        let mut ids = [trawl_attrib::NO_OWNER; 2];
        for (i, (app, az)) in [("web", "use1-az1"), ("db", "use1-az2")]
            .into_iter()
            .enumerate()
        {
            let workload = Workload {
                app: Some(app.into()),
                region: Some("us-east-1".into()),
                az: Some(az.into()),
                kind: Some("instance".into()),
                ..Workload::default()
            };
            ids[i] = table.intern(&workload).unwrap();
        }
        (table, ids)
    }

    fn sorted_json(batches: &[RecordBatch]) -> Vec<String> {
        let mut out = Vec::new();
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut out);
        writer
            .write_batches(&batches.iter().collect::<Vec<_>>())
            .unwrap();
        writer.finish().unwrap();
        let mut lines: Vec<String> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn the_store_sends_the_rows_flows_shows_only_while_someone_listens() {
        for detail_enabled in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let mut config = StoreConfig::new(dir.path());
            config.detail = DetailSpec {
                enabled: detail_enabled,
                ..DetailSpec::default()
            };
            let store = Store::open(config).unwrap();
            let (table, [web, db]) = workloads();
            let records: Vec<_> = (0..5).map(|i| record(i, 1_795_305_600)).collect();
            let mut timeless = record(9, 0);
            timeless.set(Field::Start, Value::Null);
            let mut flows: Vec<EnrichedFlow<'_, '_>> = records
                .iter()
                .map(|r| EnrichedFlow {
                    record: r,
                    src: web,
                    dst: db,
                })
                .collect();
            flows.push(EnrichedFlow {
                record: &timeless,
                src: web,
                dst: db,
            });
            // Nobody listens: nothing is sent (a later listener gets nothing old).
            store.add_batch(&flows[..2], &table, &[]).unwrap();
            let mut tail = store.tail_subscribe();
            assert_eq!(store.tail_feed().listeners(), 1);
            store.add_batch(&flows[2..], &table, &[]).unwrap();
            let batch = tail.try_recv().unwrap();
            assert!(matches!(tail.try_recv(), Err(TryRecvError::Empty)));
            assert_eq!(batch.schema().fields(), detail_schema().fields());
            assert_eq!(
                batch.num_rows(),
                3,
                "the flow without a start is not stored"
            );
            let app = batch.column_by_name("dst_app").unwrap();
            let app = arrow::compute::cast(app, &DataType::Utf8).unwrap();
            assert_eq!(app.as_string::<i32>().value(0), "db");
            if detail_enabled {
                let open = store.open_batches(DETAIL_TABLE, 0, u32::MAX).unwrap();
                let all = sorted_json(&open);
                assert_eq!(all.len(), 5);
                for row in sorted_json(&[(*batch).clone()]) {
                    assert!(all.contains(&row), "{row} is not a flows row");
                }
            }
            drop(tail);
            assert_eq!(store.tail_feed().listeners(), 0);
        }
    }

    #[test]
    fn a_slow_listener_is_told_how_many_batches_it_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        let (table, [web, db]) = workloads();
        let record = record(1, 1_795_305_600);
        let flows = [EnrichedFlow {
            record: &record,
            src: web,
            dst: db,
        }];
        let mut tail = store.tail_subscribe();
        for _ in 0..TAIL_BATCHES_MAX + 3 {
            store.add_batch(&flows, &table, &[]).unwrap();
        }
        assert!(matches!(tail.try_recv(), Err(TryRecvError::Lagged(3))));
        let mut left = 0;
        while tail.try_recv().is_ok() {
            left += 1;
        }
        assert_eq!(left, TAIL_BATCHES_MAX);
    }
}
