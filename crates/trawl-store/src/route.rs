//! Rollup routing: an aggregate over a fine rollup (`flows_1m`) is answered
//! from a coarser one (`flows_1h`, `flows_1d`) when that cannot change the
//! answer, the way Druid or ClickHouse pick a rollup or projection. A day
//! of `flows_1m` is ~24× more rows than the same day of `flows_1h`.
//!
//! Where it sits: a DataFusion optimizer rule that [`SqlEngine`] installs.
//! It looks at each `Aggregate` whose input is only `Projection`s and
//! `Filter`s over one scan of a rollup, and swaps the scan for the coarsest
//! rollup with the same columns whose grain `g` is a multiple of the
//! table's, when every one of these holds (otherwise the plan is left as
//! it was):
//!
//! - every aggregate is `sum(bytes|packets|flows)`, `min`/`max` of a
//!   dimension, or `count(DISTINCT dimension)` (no `FILTER`, no `ORDER BY`):
//!   these are equal over a finer or coarser grouping of the same flows;
//!   `count(*)` or `avg` are not;
//! - `time` appears only inside `date_trunc(unit, time)` with a unit that
//!   is a whole number of `g` buckets, or in filters `time >= t` / `time <
//!   t` with `t` a multiple of `g`; measures appear only in those
//!   aggregates; projections pass columns through unrenamed or compute
//!   from dimensions only;
//! - the coarser table keeps at least as much history, and when either
//!   table has dropped flows (past its retention), the query's lower time
//!   bound is at or after the newest time they dropped
//!   ([`Manifest::dropped_below`](crate::Manifest::dropped_below)).
//!
//! Both tables receive every flow (the coarser is derived from the finer,
//! see `store.rs`), so these conditions make the answers equal; a property
//! test compares routed and unrouted answers over random queries.
//!
//! [`SqlEngine`]: crate::SqlEngine

use std::sync::Arc;

use datafusion::catalog::default_table_source::provider_as_source;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result, ScalarValue};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Expr, LogicalPlan, Operator, SubqueryAlias, TableScan, TableScanBuilder,
    expr::AggregateFunction,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::schema::{MEASURES, TIME_COLUMN};
use crate::sql::{SharedStore, StoreTable};

/// Name of the rule (to remove it: `SqlEngine::without_rollup_routing`).
pub const RULE_NAME: &str = "trawl_rollup_routing";

/// The optimizer rule. See the module header.
#[derive(Debug)]
pub struct RollupRouting {
    store: SharedStore,
}

impl RollupRouting {
    /// A rule routing over the rollups of `store`.
    pub fn new(store: SharedStore) -> Self {
        RollupRouting { store }
    }
}

/// What routing needs to know of one rollup table.
#[derive(Debug, Clone)]
struct Rollup {
    name: String,
    grain_secs: u32,
    retention_secs: u32,
    schema: arrow::datatypes::SchemaRef,
    /// The table holds every flow at or after this time (0: every flow).
    complete_from: u32,
}

impl OptimizerRule for RollupRouting {
    fn name(&self) -> &str {
        RULE_NAME
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = &plan else {
            return Ok(Transformed::no(plan));
        };
        let Some((scan, exprs, filters)) = chain(aggregate) else {
            return Ok(Transformed::no(plan));
        };
        let rollups = self.rollups();
        let Some(table) = rollups
            .iter()
            .find(|r| scan.table_name.table() == r.name && same_columns(r, scan))
        else {
            return Ok(Transformed::no(plan));
        };
        let mut coarser: Vec<&Rollup> = rollups
            .iter()
            .filter(|c| {
                c.grain_secs > table.grain_secs
                    && c.grain_secs.is_multiple_of(table.grain_secs)
                    && c.retention_secs >= table.retention_secs
                    && c.schema.fields() == table.schema.fields()
            })
            .collect();
        coarser.sort_by_key(|c| std::cmp::Reverse(c.grain_secs));
        let Some(target) = coarser.into_iter().find(|c| {
            answers(
                aggregate,
                &exprs,
                &filters,
                table.complete_from.max(c.complete_from),
                c.grain_secs,
            )
        }) else {
            return Ok(Transformed::no(plan));
        };
        let replacement = self.scan_of(target, scan)?;
        let name = scan.table_name.clone();
        plan.transform_down(|node| match node {
            LogicalPlan::TableScan(s) if s.table_name == name => Ok(Transformed::new(
                replacement.clone(),
                true,
                TreeNodeRecursion::Jump,
            )),
            other => Ok(Transformed::no(other)),
        })
    }
}

impl RollupRouting {
    fn rollups(&self) -> Vec<Rollup> {
        let store = self.store.read().unwrap_or_else(|e| e.into_inner());
        store
            .config()
            .rollups
            .iter()
            .filter_map(|spec| {
                Some(Rollup {
                    name: spec.name.clone(),
                    grain_secs: spec.grain_secs,
                    retention_secs: spec.retention_secs,
                    schema: store.table_schema(&spec.name)?,
                    complete_from: store.dropped_below(&spec.name),
                })
            })
            .collect()
    }

    /// A scan of `target` standing in for `scan`, under `scan`'s name.
    fn scan_of(&self, target: &Rollup, scan: &TableScan) -> Result<LogicalPlan> {
        let provider = StoreTable::new(&target.name, target.schema.clone(), self.store.clone());
        // Filters above are pushed into the new scan by the next pass.
        let new_scan =
            TableScanBuilder::new(target.name.as_str(), provider_as_source(Arc::new(provider)))
                .with_projection(scan.projection.clone())
                .with_fetch(scan.fetch)
                .build()?;
        Ok(LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
            Arc::new(LogicalPlan::TableScan(new_scan)),
            scan.table_name.clone(),
        )?))
    }
}

/// The scan under `aggregate`, the expressions of the projections between
/// them, and the filter conjuncts (of filters and of the scan); `None`
/// when anything else is in between.
fn chain(aggregate: &Aggregate) -> Option<(&TableScan, Vec<&Expr>, Vec<&Expr>)> {
    let (mut exprs, mut filters) = (Vec::new(), Vec::new());
    let mut node = aggregate.input.as_ref();
    loop {
        match node {
            LogicalPlan::Projection(p) => {
                exprs.extend(&p.expr);
                node = p.input.as_ref();
            }
            LogicalPlan::Filter(f) => {
                filters.extend(split_conjunction(&f.predicate));
                node = f.input.as_ref();
            }
            LogicalPlan::TableScan(scan) => {
                for filter in &scan.filters {
                    filters.extend(split_conjunction(filter));
                }
                return Some((scan, exprs, filters));
            }
            _ => return None,
        }
    }
}

fn same_columns(table: &Rollup, scan: &TableScan) -> bool {
    scan.source.schema().fields() == table.schema.fields()
}

/// Whether a table of grain `grain_secs` gives the same answer (module header).
fn answers(
    aggregate: &Aggregate,
    projections: &[&Expr],
    filters: &[&Expr],
    complete_from: u32,
    grain_secs: u32,
) -> bool {
    let groups_ok = aggregate
        .group_expr
        .iter()
        .all(|e| !mentions_measure(e) && time_only_truncated(unalias(e), grain_secs));
    let aggregates_ok = aggregate.aggr_expr.iter().all(aggregate_ok);
    let projections_ok = projections.iter().all(|e| {
        matches!(e, Expr::Column(_)) || (!mentions_measure(e) && time_only_truncated(e, grain_secs))
    });
    let mut lower_bound = None;
    let filters_ok = filters.iter().all(|f| {
        if mentions_measure(f) {
            return false;
        }
        if !mentions(f, |c| c.name == TIME_COLUMN) {
            return true;
        }
        match aligned_time_bound(f, grain_secs) {
            Some(Bound::Lower(t)) => {
                lower_bound = lower_bound.max(Some(t));
                true
            }
            Some(Bound::Upper) => true,
            None => false,
        }
    });
    let coverage_ok =
        complete_from == 0 || lower_bound.is_some_and(|t| t >= i64::from(complete_from));
    groups_ok && aggregates_ok && projections_ok && filters_ok && coverage_ok
}

fn is_measure(column: &Column) -> bool {
    MEASURES.contains(&column.name.as_str())
}

fn mentions(expr: &Expr, test: impl Fn(&Column) -> bool) -> bool {
    expr.column_refs().into_iter().any(test)
}

fn mentions_measure(expr: &Expr) -> bool {
    mentions(expr, is_measure)
}

fn is_time_column(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(c) if c.name == TIME_COLUMN)
}

fn unalias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unalias(&alias.expr),
        other => other,
    }
}

/// `sum(measure)`, `min`/`max`/`count(DISTINCT …)` of dimensions.
fn aggregate_ok(expr: &Expr) -> bool {
    let Expr::AggregateFunction(AggregateFunction { func, params }) = unalias(expr) else {
        return false;
    };
    if params.filter.is_some() || !params.order_by.is_empty() {
        return false;
    }
    let [arg] = params.args.as_slice() else {
        return false;
    };
    let of_dimensions = !mentions(arg, |c| is_measure(c) || c.name == TIME_COLUMN);
    match func.name() {
        "sum" => matches!(arg, Expr::Column(c) if is_measure(c)) && !params.distinct,
        "min" | "max" => of_dimensions,
        "count" => of_dimensions && params.distinct,
        _ => false,
    }
}

/// Whether every `time` in `expr` is inside `date_trunc(unit, time)` with
/// `unit` a whole number of `grain_secs` buckets.
fn time_only_truncated(expr: &Expr, grain_secs: u32) -> bool {
    let mut ok = true;
    let _ = expr.apply(|e| {
        if let Expr::ScalarFunction(f) = e
            && f.func.name() == "date_trunc"
            && let [unit, time] = f.args.as_slice()
            && is_time_column(time)
        {
            ok &= unit_aligned(unit, grain_secs);
            return Ok(TreeNodeRecursion::Jump);
        }
        if is_time_column(e) {
            ok = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    ok
}

fn unit_aligned(unit: &Expr, grain_secs: u32) -> bool {
    let Expr::Literal(ScalarValue::Utf8(Some(unit)) | ScalarValue::Utf8View(Some(unit)), _) = unit
    else {
        return false;
    };
    let secs: u32 = match unit.to_ascii_lowercase().as_str() {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        // Weeks, months, quarters and years start at UTC midnights.
        "day" | "week" | "month" | "quarter" | "year" => 86_400,
        _ => return false,
    };
    secs.is_multiple_of(grain_secs)
}

enum Bound {
    Lower(i64),
    Upper,
}

/// `time >= t` (lower) or `time < t` (upper) with `t` on the grain.
fn aligned_time_bound(expr: &Expr, grain_secs: u32) -> Option<Bound> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    let (op, literal) = if is_time_column(left) {
        (*op, right.as_ref())
    } else if is_time_column(right) {
        (op.swap()?, left.as_ref())
    } else {
        return None;
    };
    let secs = exact_secs(literal)?;
    if secs.rem_euclid(i64::from(grain_secs)) != 0 {
        return None;
    }
    match op {
        Operator::GtEq => Some(Bound::Lower(secs)),
        Operator::Lt => Some(Bound::Upper),
        _ => None,
    }
}

/// A timestamp literal in whole seconds; `None` when it has a fraction.
fn exact_secs(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    let (value, per_sec) = match value {
        ScalarValue::TimestampSecond(Some(v), _) => (*v, 1),
        ScalarValue::TimestampMillisecond(Some(v), _) => (*v, 1_000),
        ScalarValue::TimestampMicrosecond(Some(v), _) => (*v, 1_000_000),
        ScalarValue::TimestampNanosecond(Some(v), _) => (*v, 1_000_000_000),
        _ => return None,
    };
    (value % per_sec == 0).then_some(value / per_sec)
}
