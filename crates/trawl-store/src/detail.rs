//! An open chunk of the `flows` table: one row per flow record, every field
//! the record carries plus its enrichment, built column by column.
//!
//! Record fields go straight into Arrow builders (text fields as plain
//! strings: IDs and ARNs are too many to intern); enrichment is kept as the
//! dimension codes the rollups use and becomes dictionary columns when the
//! chunk is read or sealed.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, Int32Builder, RecordBatch, StringArray, StringBuilder,
    TimestampSecondArray, UInt64Builder,
};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use trawl_flowlog::{Field, FlowRecord, Value};

use crate::dims::DIM_COUNT;
use crate::schema::{DETAIL_ENRICHMENT, FieldColumn, dim_array, field_column};

enum FieldBuilder {
    Small(Int32Builder),
    Large(UInt64Builder),
    Text(StringBuilder),
}

impl FieldBuilder {
    fn for_field(field: Field) -> Self {
        match field_column(field) {
            FieldColumn::Small => FieldBuilder::Small(Int32Builder::new()),
            FieldColumn::Large => FieldBuilder::Large(UInt64Builder::new()),
            FieldColumn::Text => FieldBuilder::Text(StringBuilder::new()),
        }
    }

    /// Appends `value`; returns the bytes it added (for the memory count).
    fn append(&mut self, value: Value<'_>) -> usize {
        match (self, value) {
            (FieldBuilder::Small(b), Value::Int(v)) => b.append_value(v as i32),
            (FieldBuilder::Large(b), Value::Int(v)) => b.append_value(v),
            (FieldBuilder::Small(b), _) => b.append_null(),
            (FieldBuilder::Large(b), _) => b.append_null(),
            (FieldBuilder::Text(b), value) => return append_text(b, value),
        }
        8
    }

    fn finish_cloned(&self) -> ArrayRef {
        match self {
            FieldBuilder::Small(b) => Arc::new(b.finish_cloned()),
            FieldBuilder::Large(b) => Arc::new(b.finish_cloned()),
            FieldBuilder::Text(b) => Arc::new(b.finish_cloned()),
        }
    }

    fn len(&self) -> usize {
        match self {
            FieldBuilder::Small(b) => b.len(),
            FieldBuilder::Large(b) => b.len(),
            FieldBuilder::Text(b) => b.len(),
        }
    }
}

fn append_text(builder: &mut StringBuilder, value: Value<'_>) -> usize {
    let text = match value {
        Value::Null => {
            builder.append_null();
            return 4;
        }
        Value::Int(v) => {
            let _ = write!(builder, "{v}");
            builder.append_value("");
            return 12;
        }
        Value::Addr(ip) => {
            let _ = write!(builder, "{ip}");
            builder.append_value("");
            return 24;
        }
        Value::Str(s) => s,
        Value::Action(v) => v.as_str(),
        Value::LogStatus(v) => v.as_str(),
        Value::FlowDirection(v) => v.as_str(),
        Value::TrafficType(v) => v.as_str(),
        Value::SublocationType(v) => v.as_str(),
    };
    builder.append_value(text);
    text.len() + 4
}

/// The rows of one open time chunk of `flows`.
pub struct DetailBucket {
    time: Vec<i64>,
    fields: Vec<FieldBuilder>,
    enrichment: Vec<[u32; DETAIL_ENRICHMENT.len()]>,
    bytes: usize,
}

impl std::fmt::Debug for DetailBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetailBucket")
            .field("rows", &self.time.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Default for DetailBucket {
    fn default() -> Self {
        DetailBucket {
            time: Vec::new(),
            fields: Field::ALL
                .iter()
                .map(|f| FieldBuilder::for_field(*f))
                .collect(),
            enrichment: Vec::new(),
            bytes: 0,
        }
    }
}

impl DetailBucket {
    /// Adds one record starting at `start` with its dimension codes.
    pub fn add(&mut self, start: u32, record: &FlowRecord<'_>, dims: &[u32; DIM_COUNT]) {
        self.time.push(i64::from(start));
        for (field, builder) in Field::ALL.iter().zip(&mut self.fields) {
            self.bytes += builder.append(record.get(*field));
        }
        self.enrichment
            .push(DETAIL_ENRICHMENT.map(|d| dims[d as usize]));
        self.bytes += 8 + 4 * DETAIL_ENRICHMENT.len();
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// Whether the bucket has no rows.
    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// Approximate heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.bytes
    }

    /// The rows as a batch of the `flows` schema.
    pub fn to_batch(
        &self,
        schema: &SchemaRef,
        dictionary: &Arc<StringArray>,
    ) -> Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        columns.push(Arc::new(
            TimestampSecondArray::from(self.time.clone()).with_timezone("UTC"),
        ));
        for builder in &self.fields {
            debug_assert_eq!(builder.len(), self.time.len());
            columns.push(builder.finish_cloned());
        }
        for (i, dim) in DETAIL_ENRICHMENT.iter().enumerate() {
            columns.push(dim_array(
                *dim,
                self.enrichment.iter().map(|row| row[i]).collect(),
                dictionary,
            )?);
        }
        RecordBatch::try_new(schema.clone(), columns)
    }
}
