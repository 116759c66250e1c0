//! Grouping by text as plain strings: an analyzer rule that casts each
//! dictionary-encoded text key of a `GROUP BY` to its values' type.
//!
//! Why: the store's text columns are `Dictionary(UInt32, Utf8)` (see
//! `schema.rs`). DataFusion 55 has no grouping of dictionary keys of its
//! own: any group-by with one falls back to its row-format grouping, which
//! copies every key into a row and compares rows. Cast to `Utf8`, the same
//! keys are grouped by its column-wise grouping (one typed column per key,
//! compared a batch at a time). The top-20 app pairs over 2 M
//! high-cardinality `flows_1m` rows (944 k groups) took 217 ms as
//! dictionaries and 177 ms cast, cast included (issue 14 #5).
//!
//! Where it sits: `sql.rs` adds it to every engine's analyzer, after
//! DataFusion's type coercion. Rollup routing (`route.rs`, an optimizer
//! rule, so later) takes a cast dimension as a dimension.
//!
//! Which aggregates: only a report's, the shape of a top-N query
//! (`SELECT … GROUP BY … HAVING … ORDER BY … LIMIT n`, n at most
//! [`REPORT_ROWS_MAX`]) grouped by dictionary-encoded text alone (with a
//! time bucket among the keys the cast measured slower). From the limit
//! down to the aggregate the plan is a chain of sorts, projections,
//! filters and aliases without subqueries, in which a cast key appears
//! only as a bare column (selected or sorted by, never compared or passed
//! to a function). Above the limit a projection casts the keys back to
//! their dictionary type and a sort orders the at most n rows again (a
//! projection over the sort alone lost the order: DataFusion runs it on
//! several partitions). So nothing in or out of the query sees the cast:
//! the answer's schema, values and order, its size against result
//! limits, `arrow_typeof`, a HAVING on a key (not cast) stay as they
//! were. Two cold reviews found each of these broken by wider versions
//! (`tests/group_text_review.rs`, `tests/group_text_review2.rs`).
//!
//! Invariants:
//! - Answers do not change: a dictionary's key equals another's exactly
//!   when their values do, nulls group together either way, and text
//!   sorts as its dictionary does.
//! - Each cast key keeps the qualified name of the column it replaces, so
//!   the nodes above resolve it as before.
//! - Grouping sets (`ROLLUP`, `CUBE`, `GROUPING SETS`) and a key named
//!   twice (one output field for two keys) are left alone.
//! - `EXPLAIN ANALYZE` runs the plan the query runs.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{Column, DFSchema, DFSchemaRef, Result};
use datafusion::logical_expr::{
    Aggregate, Expr, ExprSchemable, FetchType, LogicalPlan, Projection, Sort, cast,
};
use datafusion::optimizer::AnalyzerRule;

/// Most rows a report may ask for (`LIMIT`) to have its keys cast: the
/// answer is sorted twice (module header), and fits one batch.
const REPORT_ROWS_MAX: usize = 8192;

/// Casts dictionary-encoded text keys of a report's aggregate to text.
#[derive(Debug)]
pub(crate) struct GroupTextAsStrings {
    /// Off only in engines built for comparisons
    /// ([`crate::SqlEngine::without_text_keys_cast`]).
    enabled: AtomicBool,
}

impl GroupTextAsStrings {
    /// The rule, on.
    pub(crate) fn new() -> Self {
        GroupTextAsStrings {
            enabled: AtomicBool::new(true),
        }
    }

    /// Turns the rule off for every later query.
    pub(crate) fn disable(&self) {
        self.enabled.store(false, Ordering::Relaxed);
    }
}

impl AnalyzerRule for GroupTextAsStrings {
    fn name(&self) -> &str {
        "trawl_group_text_as_strings"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        if !self.enabled.load(Ordering::Relaxed) {
            return Ok(plan);
        }
        // EXPLAIN ANALYZE runs the plan the query would run.
        if let LogicalPlan::Analyze(analyze) = &plan {
            return match cast_report(&analyze.input)? {
                Some(input) => plan.with_new_exprs(vec![], vec![input]),
                None => Ok(plan),
            };
        }
        Ok(cast_report(&plan)?.unwrap_or(plan))
    }
}

/// `plan` with the keys of its final aggregate cast, if it is a report of
/// at most [`REPORT_ROWS_MAX`] rows (module header); `None` otherwise.
fn cast_report(plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    match plan {
        LogicalPlan::Projection(projection)
            if projection
                .expr
                .iter()
                .all(|e| matches!(e.clone().unalias(), Expr::Column(_))) =>
        {
            let Some(input) = cast_report(&projection.input)? else {
                return Ok(None);
            };
            plan.with_new_exprs(plan.expressions(), vec![input])
                .map(Some)
        }
        LogicalPlan::Limit(limit) => {
            let LogicalPlan::Sort(sort) = limit.input.as_ref() else {
                return Ok(None);
            };
            let bounded = matches!(
                limit.get_fetch_type()?,
                FetchType::Literal(Some(rows)) if rows <= REPORT_ROWS_MAX
            );
            if !bounded {
                return Ok(None);
            }
            let Some(cast) = cast_chain(plan)? else {
                return Ok(None);
            };
            // The keys cast back over the limit's rows, then those rows
            // sorted again: the answer is ordered by the last node, not
            // by the sort below a projection DataFusion may run in
            // parallel.
            let input = Arc::new(cast_back(cast, plan.schema())?);
            let expr = sort.expr.clone();
            Ok(Some(LogicalPlan::Sort(Sort {
                expr,
                input,
                fetch: None,
            })))
        }
        _ => Ok(None),
    }
}

/// `plan` with the keys of the aggregate at the end of its chain cast, if
/// the chain is one the cast cannot show through (module header); `None`
/// otherwise.
fn cast_chain(plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    if let LogicalPlan::Aggregate(aggregate) = plan {
        return cast_text_keys(aggregate);
    }
    let passes_keys = matches!(
        plan,
        LogicalPlan::Projection(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::SubqueryAlias(_)
    );
    let (true, [input]) = (passes_keys, &plan.inputs()[..]) else {
        return Ok(None);
    };
    let Some(cast_input) = cast_chain(input)? else {
        return Ok(None);
    };
    let changed = changed_columns(input.schema(), cast_input.schema());
    let blind = |e: &Expr| {
        let e = e.clone().unalias();
        matches!(e, Expr::Column(_))
            || (!mentions_subquery(&e) && e.column_refs().iter().all(|c| !changed.contains(c)))
    };
    if !plan.expressions().iter().all(blind) {
        return Ok(None);
    }
    plan.with_new_exprs(plan.expressions(), vec![cast_input])
        .map(Some)
}

/// Columns of `before` whose type `after` changed.
fn changed_columns(before: &DFSchema, after: &DFSchema) -> HashSet<Column> {
    before
        .iter()
        .zip(after.fields())
        .filter(|((_, old), new)| new.data_type() != old.data_type())
        .map(|((qualifier, old), _)| Column::new(qualifier.cloned(), old.name()))
        .collect()
}

/// Whether `expr` holds a subquery (its outer references name columns
/// by their planned type).
fn mentions_subquery(expr: &Expr) -> bool {
    expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
        ))
    })
    .unwrap_or(true)
}

/// `plan` under a projection that casts each column whose type the chain
/// changed back to its type in `before`, under its qualified name.
fn cast_back(plan: LogicalPlan, before: &DFSchemaRef) -> Result<LogicalPlan> {
    let exprs: Vec<Expr> = plan
        .schema()
        .iter()
        .zip(before.iter())
        .map(|((qualifier, field), (_, original))| {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            if field.data_type() == original.data_type() {
                column
            } else {
                cast(column, original.data_type().clone())
                    .alias_qualified(qualifier.cloned(), field.name())
            }
        })
        .collect();
    Projection::try_new(exprs, Arc::new(plan)).map(LogicalPlan::Projection)
}

/// `aggregate` with its keys cast; `None` unless every key is
/// dictionary-encoded text (and there are no grouping sets). With a key
/// of another type the cast measured slower: the series by region
/// (`GROUP BY time, src_region`, 240 groups of 1 M rows) 17.4-18.6 ms
/// as dictionaries, 18.1-18.6 ms cast.
fn cast_text_keys(aggregate: &Aggregate) -> Result<Option<LogicalPlan>> {
    if aggregate
        .group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return Ok(None);
    }
    // A key named twice has one output field (no field per key to name
    // its cast by).
    if aggregate.schema.fields().len() != aggregate.group_expr.len() + aggregate.aggr_expr.len() {
        return Ok(None);
    }
    let input = aggregate.input.schema();
    let mut group_expr = Vec::with_capacity(aggregate.group_expr.len());
    for (i, key) in aggregate.group_expr.iter().enumerate() {
        let Some(text) = text_of_dictionary(&key.get_type(input)?) else {
            return Ok(None);
        };
        let (qualifier, field) = aggregate.schema.qualified_field(i);
        let name = field.name().clone();
        let key = cast(key.clone().unalias(), text);
        group_expr.push(key.alias_qualified(qualifier.cloned(), name));
    }
    if group_expr.is_empty() {
        return Ok(None);
    }
    let (input, aggr_expr) = (aggregate.input.clone(), aggregate.aggr_expr.clone());
    Aggregate::try_new(input, group_expr, aggr_expr).map(|a| Some(LogicalPlan::Aggregate(a)))
}

/// The text type of a dictionary of text; `None` for any other type.
fn text_of_dictionary(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Dictionary(_, values)
            if matches!(
                values.as_ref(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) =>
        {
            Some(values.as_ref().clone())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dictionaries_of_text_are_cast() {
        let dict = |v: DataType| DataType::Dictionary(Box::new(DataType::UInt32), Box::new(v));
        assert_eq!(
            text_of_dictionary(&dict(DataType::Utf8)),
            Some(DataType::Utf8)
        );
        assert_eq!(
            text_of_dictionary(&dict(DataType::LargeUtf8)),
            Some(DataType::LargeUtf8)
        );
        assert_eq!(text_of_dictionary(&dict(DataType::Int64)), None);
        assert_eq!(text_of_dictionary(&DataType::Utf8), None);
        assert_eq!(text_of_dictionary(&DataType::UInt32), None);
    }
}
