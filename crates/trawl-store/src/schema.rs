//! The SQL tables' specifications and their Arrow schemas.
//!
//! Table names and column names are part of trawl's public interface (see
//! DESIGN.md): `flows` (one row per record), `flows_1m` and `flows_1h`
//! (rollups). A rollup row is `time` (bucket start), its dimensions, then the
//! measures `bytes`, `packets`, `flows`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, DictionaryArray, Int32Array, StringArray, UInt32Array};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef, TimeUnit, UInt32Type};
use arrow::error::ArrowError;
use trawl_flowlog::{Field, ValueType};

use crate::dims::{Dim, DimType, NULL_CODE};

/// Name of the time column of every table (bucket start, or flow start).
pub const TIME_COLUMN: &str = "time";

/// The type of `time` columns: seconds, UTC.
pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Second, Some("UTC".into()))
}

/// The Arrow type of a text dimension.
pub fn text_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8))
}

/// The Arrow type of a dimension's column.
pub fn dim_data_type(dim: Dim) -> DataType {
    match dim.dim_type() {
        DimType::Text => text_type(),
        DimType::Int => DataType::Int32,
        DimType::Bool => DataType::Boolean,
    }
}

/// A rollup table: its grain, chunking, retention and dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupSpec {
    /// Table name (`flows_1m`).
    pub name: String,
    /// Width of a time bucket (seconds).
    pub grain_secs: u32,
    /// Width of a segment's time chunk (seconds, a multiple of the grain).
    pub chunk_secs: u32,
    /// History kept behind the watermark (seconds).
    pub retention_secs: u32,
    /// Dimensions kept, in column order.
    pub dims: Vec<Dim>,
}

impl RollupSpec {
    /// `flows_1m`: 1-minute buckets in 1-hour chunks, kept 7 days, every dimension.
    pub fn minutely() -> Self {
        RollupSpec {
            name: "flows_1m".into(),
            grain_secs: 60,
            chunk_secs: 3600,
            retention_secs: 7 * 86_400,
            dims: Dim::ALL.to_vec(),
        }
    }

    /// `flows_1h`: 1-hour buckets in 1-day chunks, kept 400 days, every dimension.
    pub fn hourly() -> Self {
        RollupSpec {
            name: "flows_1h".into(),
            grain_secs: 3600,
            chunk_secs: 86_400,
            retention_secs: 400 * 86_400,
            dims: Dim::ALL.to_vec(),
        }
    }

    /// `flows_1d`: 1-day buckets in 1-day chunks, kept 1,000 days, every
    /// dimension (what long-range queries are routed to).
    pub fn daily() -> Self {
        RollupSpec {
            name: "flows_1d".into(),
            grain_secs: 86_400,
            chunk_secs: 86_400,
            retention_secs: 1_000 * 86_400,
            dims: Dim::ALL.to_vec(),
        }
    }

    /// Checks the spec; the message names the table.
    pub fn validate(&self) -> Result<(), String> {
        if self.grain_secs == 0
            || self.chunk_secs == 0
            || !self.chunk_secs.is_multiple_of(self.grain_secs)
        {
            return Err(format!(
                "table {}: chunk_secs ({}) must be a positive multiple of grain_secs ({})",
                self.name, self.chunk_secs, self.grain_secs
            ));
        }
        for (i, d) in self.dims.iter().enumerate() {
            if self.dims[..i].contains(d) {
                return Err(format!(
                    "table {}: dimension {} listed twice",
                    self.name,
                    d.name()
                ));
            }
        }
        Ok(())
    }

    /// The table's Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        let mut fields = vec![ArrowField::new(TIME_COLUMN, time_type(), false)];
        fields.extend(
            self.dims
                .iter()
                .map(|d| ArrowField::new(d.name(), dim_data_type(*d), true)),
        );
        fields.extend(
            MEASURES
                .iter()
                .map(|m| ArrowField::new(*m, DataType::UInt64, false)),
        );
        Arc::new(Schema::new(fields))
    }
}

/// The measure columns of a rollup, in order.
pub const MEASURES: [&str; 3] = ["bytes", "packets", "flows"];

/// The enrichment columns of `flows`, after the record's own fields.
pub const DETAIL_ENRICHMENT: [Dim; 15] = [
    Dim::SrcApp,
    Dim::SrcCluster,
    Dim::SrcAccount,
    Dim::SrcRegion,
    Dim::SrcAz,
    Dim::SrcKind,
    Dim::DstApp,
    Dim::DstCluster,
    Dim::DstAccount,
    Dim::DstRegion,
    Dim::DstAz,
    Dim::DstKind,
    Dim::ServicePort,
    Dim::CrossAz,
    Dim::CrossRegion,
];

/// How a record field is stored in `flows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldColumn {
    /// Integers up to 65535: `Int32`.
    Small,
    /// Larger integers (bytes, packets, times): `UInt64`.
    Large,
    /// Addresses: `Utf8` (too many distinct ones to code).
    Text,
    /// IDs, names and keywords, which repeat: `Dictionary(UInt32, Utf8)`
    /// (each part of open rows codes its own, `coded_text.rs`).
    Coded,
}

/// How `field` is stored in `flows`.
pub fn field_column(field: Field) -> FieldColumn {
    match field.value_type() {
        ValueType::Int { max } if max <= u64::from(u16::MAX) => FieldColumn::Small,
        ValueType::Int { .. } => FieldColumn::Large,
        ValueType::Addr => FieldColumn::Text,
        _ => FieldColumn::Coded,
    }
}

/// The schema of `flows`: `time`, every record field, then the enrichment.
pub fn detail_schema() -> SchemaRef {
    let mut fields = vec![ArrowField::new(TIME_COLUMN, time_type(), false)];
    fields.extend(Field::ALL.iter().map(|f| {
        let ty = match field_column(*f) {
            FieldColumn::Small => DataType::Int32,
            FieldColumn::Large => DataType::UInt64,
            FieldColumn::Text => DataType::Utf8,
            FieldColumn::Coded => text_type(),
        };
        ArrowField::new(f.column(), ty, true)
    }));
    fields.extend(
        DETAIL_ENRICHMENT
            .iter()
            .map(|d| ArrowField::new(d.name(), dim_data_type(*d), true)),
    );
    Arc::new(Schema::new(fields))
}

/// One dimension's column from its codes (null where [`NULL_CODE`]).
/// Values and validity are built as whole buffers, the codes' own buffer
/// reused (no per-value option handling): this runs for every column of
/// every open bucket a seal or a query reads.
pub fn dim_array(
    dim: Dim,
    mut codes: Vec<u32>,
    dictionary: &Arc<StringArray>,
) -> Result<ArrayRef, ArrowError> {
    let nulls = null_buffer(&codes);
    match dim.dim_type() {
        DimType::Text => {
            if nulls.is_some() {
                // Null slots keep a valid key (0) so the dictionary check passes.
                for code in &mut codes {
                    *code = if *code == NULL_CODE { 0 } else { *code };
                }
            }
            let keys = UInt32Array::new(codes.into(), nulls);
            // Codes are below the dictionary's length by construction (the
            // store interns before it records a code, and a reader takes the
            // dictionary after it holds the shard whose rows it converts:
            // `store/shard.rs`); try_new checks it.
            Ok(Arc::new(DictionaryArray::<UInt32Type>::try_new(
                keys,
                dictionary.clone(),
            )?))
        }
        DimType::Int => {
            // Int dimensions (ports, protocol) are below 2^31: the same bits.
            let len = codes.len();
            let values = ScalarBuffer::<i32>::new(Buffer::from_vec(codes), 0, len);
            Ok(Arc::new(Int32Array::new(values, nulls)))
        }
        DimType::Bool => {
            let values = BooleanBuffer::collect_bool(codes.len(), |i| codes[i] != 0);
            Ok(Arc::new(BooleanArray::new(values, nulls)))
        }
    }
}

/// The validity of `codes` (unset where [`NULL_CODE`]), or `None` when no
/// code is null (a first pass without branches finds out); 64 codes to a
/// word, each word from fixed-size blocks the compiler turns into vector
/// compares.
fn null_buffer(codes: &[u32]) -> Option<NullBuffer> {
    if !codes
        .iter()
        .fold(false, |any, code| any | (*code == NULL_CODE))
    {
        return None;
    }
    let word = |block: &[u32]| {
        block.iter().enumerate().fold(0u64, |bits, (i, code)| {
            bits | (u64::from(*code != NULL_CODE) << i)
        })
    };
    let (blocks, rest) = codes.as_chunks::<64>();
    let mut words: Vec<u64> = blocks.iter().map(|block| word(block)).collect();
    if !rest.is_empty() {
        words.push(word(rest));
    }
    let valid = BooleanBuffer::new(Buffer::from_vec(words), 0, codes.len());
    Some(NullBuffer::new(valid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_columns_are_unique() {
        let schema = detail_schema();
        let mut names: Vec<_> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
    }

    #[test]
    fn spec_validation_names_the_table() {
        let mut spec = RollupSpec::minutely();
        spec.chunk_secs = 90;
        assert!(spec.validate().unwrap_err().contains("flows_1m"));
        let mut spec = RollupSpec::hourly();
        spec.dims.push(Dim::SrcApp);
        assert!(spec.validate().unwrap_err().contains("src_app"));
    }

    proptest::proptest! {
        /// Against a per-value oracle: every dimension type keeps each
        /// code and its nullness, across 64-code validity words.
        #[test]
        fn dim_arrays_keep_codes_and_nulls(
            codes in proptest::collection::vec(
                proptest::prop_oneof![proptest::strategy::Just(NULL_CODE), 0u32..3], 0..300),
        ) {
            use arrow::array::{Array, AsArray};
            use proptest::prelude::*;
            let dictionary = Arc::new(StringArray::from(vec!["a", "b", "c"]));
            for dim in [Dim::SrcApp, Dim::ServicePort, Dim::CrossAz] {
                let array = dim_array(dim, codes.clone(), &dictionary).expect("array");
                prop_assert_eq!(array.len(), codes.len());
                prop_assert_eq!(array.nulls().is_some(), codes.contains(&NULL_CODE));
                for (i, code) in codes.iter().enumerate() {
                    prop_assert_eq!(array.is_null(i), *code == NULL_CODE, "{} {}", dim.name(), i);
                    if *code == NULL_CODE {
                        continue;
                    }
                    let value = match dim.dim_type() {
                        DimType::Text => array.as_dictionary::<UInt32Type>().keys().value(i),
                        DimType::Int => array.as_primitive::<arrow::datatypes::Int32Type>().value(i) as u32,
                        DimType::Bool => u32::from(array.as_boolean().value(i)),
                    };
                    prop_assert_eq!(value, if dim.dim_type() == DimType::Bool { u32::from(*code != 0) } else { *code });
                }
            }
        }
    }
}
