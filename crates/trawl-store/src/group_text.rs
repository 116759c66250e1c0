//! Grouping by text as plain strings: an optimizer rule that casts each
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
//! DataFusion's type coercion, which it runs again on a plan it changed
//! (the nodes above a cast key were typed for a dictionary). Rollup
//! routing (`route.rs`, an optimizer rule, so later) takes a cast
//! dimension as a dimension.
//!
//! Invariants:
//! - Answers do not change: a dictionary's key equals another's exactly
//!   when their values do, and nulls group together either way. Only the
//!   type of the aggregate's key columns changes, from a dictionary of
//!   text to text, which DataFusion holds to be the same logical type.
//! - Each cast key keeps the qualified name of the column it replaces, so
//!   the nodes above resolve it as before.
//! - Grouping sets (`ROLLUP`, `CUBE`, `GROUPING SETS`) are left alone.

use std::sync::atomic::{AtomicBool, Ordering};

use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::logical_expr::{Aggregate, Expr, ExprSchemable, LogicalPlan, cast};
use datafusion::optimizer::AnalyzerRule;
use datafusion::optimizer::analyzer::type_coercion::TypeCoercion;

/// Casts dictionary-encoded text keys of every aggregate to text.
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

    /// Casts the keys, then coerces types again: a node above a cast key
    /// (a join on it, a union with a dictionary column, a HAVING
    /// comparison) was typed for the dictionary.
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        if !self.enabled.load(Ordering::Relaxed) {
            return Ok(plan);
        }
        let cast = plan.transform_up_with_subqueries(cast_text_keys)?;
        if !cast.transformed {
            return Ok(cast.data);
        }
        TypeCoercion::new().analyze(cast.data, config)
    }
}

/// `plan` with its dictionary-encoded text keys cast, if it is an
/// aggregate without grouping sets that has any.
fn cast_text_keys(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Aggregate(aggregate) = plan else {
        return Ok(Transformed::no(plan));
    };
    if aggregate
        .group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
    }
    let input = aggregate.input.schema();
    let mut cast_any = false;
    let mut group_expr = Vec::with_capacity(aggregate.group_expr.len());
    for (i, key) in aggregate.group_expr.iter().enumerate() {
        match text_of_dictionary(&key.get_type(input)?) {
            Some(text) => {
                let (qualifier, field) = aggregate.schema.qualified_field(i);
                let name = field.name().clone();
                let key = cast(key.clone().unalias(), text);
                group_expr.push(key.alias_qualified(qualifier.cloned(), name));
                cast_any = true;
            }
            None => group_expr.push(key.clone()),
        }
    }
    if !cast_any {
        return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
    }
    let Aggregate {
        input, aggr_expr, ..
    } = aggregate;
    Aggregate::try_new(input, group_expr, aggr_expr)
        .map(|a| Transformed::yes(LogicalPlan::Aggregate(a)))
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
