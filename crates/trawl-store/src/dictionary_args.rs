//! Aggregate functions that DataFusion has no accumulator for on
//! dictionary columns, registered over the built-in ones so that they take
//! them: the argument is coerced to its values' type.
//!
//! Where it sits: `sql.rs` registers these on every query engine's
//! context. Text columns of the store are `Dictionary(UInt32, Utf8)` (every
//! rollup dimension, and `flows`' IDs and keywords), and DataFusion 55's
//! `approx_distinct` refuses that type ("not implemented") where it takes
//! `Utf8`.
//!
//! Invariant: the wrapper answers exactly what the built-in does on the
//! dictionary's values (same name, state, accumulator and result).

use std::sync::Arc;

use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature};

/// The aggregates that get a wrapper.
pub(crate) fn aggregates() -> Vec<AggregateUDF> {
    [datafusion::functions_aggregate::approx_distinct::approx_distinct_udaf()]
        .into_iter()
        .map(|inner| AggregateUDF::new_from_impl(OfDictionaryValues::new(inner)))
        .collect()
}

/// A one-argument aggregate that takes a dictionary column as its values.
#[derive(Debug, PartialEq, Eq, Hash)]
struct OfDictionaryValues {
    inner: Arc<AggregateUDF>,
    signature: Signature,
}

impl OfDictionaryValues {
    fn new(inner: Arc<AggregateUDF>) -> Self {
        OfDictionaryValues {
            signature: Signature::user_defined(inner.signature().volatility),
            inner,
        }
    }
}

impl AggregateUDFImpl for OfDictionaryValues {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [DataType::Dictionary(_, values)] => Ok(vec![values.as_ref().clone()]),
            [other] => Ok(vec![other.clone()]),
            _ => plan_err!(
                "{} takes one argument, not {}",
                self.name(),
                arg_types.len()
            ),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(args)
    }
}
