//! An open chunk of the `flows` table: one row per flow record, every field
//! the record carries plus its enrichment, built column by column.
//!
//! Record fields go straight into Arrow builders (text fields as plain
//! strings: IDs and ARNs are too many to intern); enrichment is kept as the
//! dimension codes the rollups use and becomes dictionary columns when the
//! chunk is read or sealed.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, Int32Builder, RecordBatch, StringArray, StringBuilder,
    TimestampSecondArray, UInt64Builder, new_null_array,
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

    fn append_nulls(&mut self, n: usize) {
        match self {
            FieldBuilder::Small(b) => b.append_nulls(n),
            FieldBuilder::Large(b) => b.append_nulls(n),
            FieldBuilder::Text(b) => b.append_nulls(n),
        }
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
        Value::Addr(IpAddr::V4(ip)) => {
            let mut buffer = [0u8; 15];
            let text = format_ipv4(ip, &mut buffer);
            builder.append_value(text);
            return text.len() + 4;
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

/// Dotted-quad text of `ip` in `buffer` (what `Display` writes, without
/// the formatter: addresses are most of the detail table's text).
fn format_ipv4(ip: Ipv4Addr, buffer: &mut [u8; 15]) -> &str {
    let mut len = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buffer[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            buffer[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            buffer[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        buffer[len] = b'0' + octet % 10;
        len += 1;
    }
    // Only ASCII digits and dots were written.
    std::str::from_utf8(&buffer[..len]).unwrap_or_default()
}

/// The rows of one open time chunk of `flows`.
pub struct DetailBucket {
    time: Vec<i64>,
    /// One builder per field of [`Field::ALL`], created at the field's first
    /// value (nulls before it are filled in then): a format's absent fields
    /// cost nothing per row.
    fields: Vec<Option<FieldBuilder>>,
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
            fields: Field::ALL.iter().map(|_| None).collect(),
            enrichment: Vec::new(),
            bytes: 0,
        }
    }
}

impl DetailBucket {
    /// Adds one record starting at `start` with its dimension codes.
    pub fn add(&mut self, start: u32, record: &FlowRecord<'_>, dims: &[u32; DIM_COUNT]) {
        let row = self.time.len();
        self.time.push(i64::from(start));
        for (field, slot) in Field::ALL.iter().zip(&mut self.fields) {
            let value = record.get(*field);
            match slot {
                Some(builder) => self.bytes += builder.append(value),
                None if value.is_null() => {}
                None => {
                    let mut builder = FieldBuilder::for_field(*field);
                    builder.append_nulls(row);
                    self.bytes += builder.append(value) + 8 * row;
                    *slot = Some(builder);
                }
            }
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
        for (builder, field) in self.fields.iter().zip(schema.fields().iter().skip(1)) {
            columns.push(match builder {
                Some(builder) => {
                    debug_assert_eq!(builder.len(), self.time.len());
                    builder.finish_cloned()
                }
                None => new_null_array(field.data_type(), self.time.len()),
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_text_is_what_display_writes() {
        for ip in [
            "0.0.0.0",
            "10.0.0.57",
            "255.255.255.255",
            "1.20.100.9",
            "192.168.10.200",
        ] {
            let ip: Ipv4Addr = ip.parse().unwrap();
            let mut buffer = [0u8; 15];
            assert_eq!(format_ipv4(ip, &mut buffer), ip.to_string());
        }
    }
}
