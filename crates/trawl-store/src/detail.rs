//! An open chunk of the `flows` table: one row per flow record, every field
//! the record carries plus its enrichment, built column by column.
//!
//! Record fields go straight into builders, one per field a part has seen
//! (a row visits only those and checks the rest for a first value):
//! addresses as text bytes, made plain strings when the part is frozen
//! (too many distinct ones to code; one UTF-8 check per buffer), other text
//! (IDs, names, keywords, the keywords found by variant) as codes into a
//! dictionary each part builds of its own values (`coded_text.rs`), so
//! that a seal writes them from their codes; enrichment
//! is kept as the dimension codes the rollups use and becomes dictionary
//! columns when the chunk is read or sealed. A bucket's first part starts
//! with room for `FIRST_PART_ROWS` and doubles; the parts after a full one
//! start with room for `PART_ROWS`, so they do not grow by copying. The
//! memory count is the buffers' capacity, room included.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};

use arrow::array::{
    ArrayRef, BinaryArray, BinaryBuilder, Int32Builder, RecordBatch, StringArray,
    TimestampSecondArray, UInt64Builder, new_null_array,
};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use trawl_flowlog::{
    Action, Field, FlowDirection, FlowRecord, LogStatus, SublocationType, TrafficType, Value,
};

use crate::coded_text::{CodedText, KEYWORD_SLOTS};
use crate::dims::DIM_COUNT;
use crate::schema::{DETAIL_ENRICHMENT, FieldColumn, dim_array, field_column};

/// Bytes of address text a row is given room for (`10.123.45.67`).
const ADDRESS_BYTES_TYPICAL: usize = 14;

enum FieldBuilder {
    Small(Int32Builder),
    Large(UInt64Builder),
    /// Text appended as bytes (all of it valid UTF-8: borrowed text, or
    /// ASCII written here) and made a string array when frozen, where one
    /// check of the whole buffer replaces one per row (an address's check
    /// cost more than writing it).
    Text(BinaryBuilder),
    Coded(CodedText),
}

impl FieldBuilder {
    /// The builder of `field`'s column, with room for `rows` rows.
    fn for_field(field: Field, rows: usize) -> Self {
        match field_column(field) {
            FieldColumn::Small => FieldBuilder::Small(Int32Builder::with_capacity(rows)),
            FieldColumn::Large => FieldBuilder::Large(UInt64Builder::with_capacity(rows)),
            FieldColumn::Text => FieldBuilder::Text(BinaryBuilder::with_capacity(
                rows,
                rows * ADDRESS_BYTES_TYPICAL,
            )),
            FieldColumn::Coded => FieldBuilder::Coded(CodedText::with_capacity(rows)),
        }
    }

    /// Appends `value`. Inlined into the loop over a record's fields (a
    /// call per field and row cost a tenth of the appends' instructions).
    #[inline(always)]
    fn append(&mut self, value: Value<'_>) {
        match (self, value) {
            (FieldBuilder::Small(b), Value::Int(v)) => b.append_value(v as i32),
            (FieldBuilder::Large(b), Value::Int(v)) => b.append_value(v),
            (FieldBuilder::Small(b), _) => b.append_null(),
            (FieldBuilder::Large(b), _) => b.append_null(),
            (FieldBuilder::Text(b), value) => append_text(b, value),
            (FieldBuilder::Coded(b), value) => append_coded(b, value),
        }
    }

    /// Heap bytes the builder holds: its buffers' capacity, used or not
    /// (a part's builders start with room for a whole part).
    fn memory_bytes(&self) -> usize {
        match self {
            FieldBuilder::Small(b) => b.capacity() * 4 + b.capacity().div_ceil(8),
            FieldBuilder::Large(b) => b.capacity() * 8 + b.capacity().div_ceil(8),
            FieldBuilder::Text(b) => {
                b.values_capacity() + b.offsets_capacity() * 4 + b.validity_capacity()
            }
            FieldBuilder::Coded(b) => b.memory_bytes(),
        }
    }

    fn append_nulls(&mut self, n: usize) {
        match self {
            FieldBuilder::Small(b) => b.append_nulls(n),
            FieldBuilder::Large(b) => b.append_nulls(n),
            FieldBuilder::Text(b) => b.append_nulls(n),
            FieldBuilder::Coded(b) => b.append_nulls(n),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            FieldBuilder::Small(b) => Arc::new(b.finish()),
            FieldBuilder::Large(b) => Arc::new(b.finish()),
            FieldBuilder::Text(b) => text_array(b.finish()),
            FieldBuilder::Coded(b) => b.finish(),
        }
    }

    fn finish_cloned(&self) -> ArrayRef {
        match self {
            FieldBuilder::Small(b) => Arc::new(b.finish_cloned()),
            FieldBuilder::Large(b) => Arc::new(b.finish_cloned()),
            FieldBuilder::Text(b) => text_array(b.finish_cloned()),
            FieldBuilder::Coded(b) => b.finish_cloned(),
        }
    }
}

/// The text of a text or keyword value, borrowed (`None` for null,
/// numbers and addresses).
fn borrowed_text<'a>(value: &Value<'a>) -> Option<&'a str> {
    Some(match *value {
        Value::Str(s) => s,
        Value::Action(v) => v.as_str(),
        Value::LogStatus(v) => v.as_str(),
        Value::FlowDirection(v) => v.as_str(),
        Value::TrafficType(v) => v.as_str(),
        Value::SublocationType(v) => v.as_str(),
        Value::Null | Value::Int(_) | Value::Addr(_) => return None,
    })
}

/// The first keyword slot ([`CodedText::append_keyword`]) of each keyword
/// type: one slot per variant of every type, so that no two texts share one.
const LOG_STATUS_SLOTS: usize = Action::ALL.len();
const FLOW_DIRECTION_SLOTS: usize = LOG_STATUS_SLOTS + LogStatus::ALL.len();
const TRAFFIC_TYPE_SLOTS: usize = FLOW_DIRECTION_SLOTS + FlowDirection::ALL.len();
const SUBLOCATION_TYPE_SLOTS: usize = TRAFFIC_TYPE_SLOTS + TrafficType::ALL.len();
const _: () = assert!(SUBLOCATION_TYPE_SLOTS + SublocationType::ALL.len() <= KEYWORD_SLOTS);

/// The keyword slot and text of a keyword value (`None` for other values).
fn keyword(value: &Value<'_>) -> Option<(usize, &'static str)> {
    Some(match *value {
        Value::Action(v) => (v as usize, v.as_str()),
        Value::LogStatus(v) => (LOG_STATUS_SLOTS + v as usize, v.as_str()),
        Value::FlowDirection(v) => (FLOW_DIRECTION_SLOTS + v as usize, v.as_str()),
        Value::TrafficType(v) => (TRAFFIC_TYPE_SLOTS + v as usize, v.as_str()),
        Value::SublocationType(v) => (SUBLOCATION_TYPE_SLOTS + v as usize, v.as_str()),
        Value::Null | Value::Int(_) | Value::Addr(_) | Value::Str(_) => return None,
    })
}

/// Appends `value` to a coded column: a keyword by its slot, other text
/// by its value.
fn append_coded(column: &mut CodedText, value: Value<'_>) {
    if let Some((slot, text)) = keyword(&value) {
        return column.append_keyword(slot, text);
    }
    match value {
        Value::Str(text) => column.append(text),
        Value::Null => column.append_nulls(1),
        // Not the type of a coded field; kept as its text all the same.
        Value::Int(v) => column.append(&v.to_string()),
        Value::Addr(ip) => column.append(&ip.to_string()),
        _ => column.append(""),
    }
}

/// Appends the text of `value` (valid UTF-8, as [`text_array`] expects).
fn append_text(builder: &mut BinaryBuilder, value: Value<'_>) {
    if let Some(text) = borrowed_text(&value) {
        builder.append_value(text);
        return;
    }
    match value {
        Value::Addr(IpAddr::V4(ip)) => {
            let mut buffer = [0u8; 16];
            builder.append_value(format_ipv4(ip, &mut buffer));
        }
        Value::Null => builder.append_null(),
        Value::Addr(ip) => builder.append_value(ip.to_string()),
        Value::Int(v) => builder.append_value(v.to_string()),
        _ => builder.append_value(""),
    }
}

/// The string array of a text column's bytes: one UTF-8 check of the whole
/// buffer. Only valid text is appended ([`append_text`]); were a row not,
/// it would be replaced, not panic.
fn text_array(bytes: BinaryArray) -> ArrayRef {
    match StringArray::try_from_binary(bytes.clone()) {
        Ok(text) => Arc::new(text),
        Err(_) => {
            debug_assert!(false, "a text column holds invalid UTF-8");
            let lossy = bytes.iter().map(|row| row.map(String::from_utf8_lossy));
            Arc::new(lossy.collect::<StringArray>())
        }
    }
}

/// The decimal text of every octet, each followed by a dot, and its length
/// without the dot: an address is four copies of four bytes.
const OCTET_TEXT: [([u8; 4], u8); 256] = {
    let mut table = [([0u8; 4], 0u8); 256];
    let mut octet = 0;
    while octet < 256 {
        let digits = [
            (octet / 100) as u8,
            (octet / 10 % 10) as u8,
            (octet % 10) as u8,
        ];
        let len = if octet >= 100 {
            3
        } else if octet >= 10 {
            2
        } else {
            1
        };
        let mut text = [b'.'; 4];
        let mut i = 0;
        while i < len {
            text[i] = b'0' + digits[3 - len + i];
            i += 1;
        }
        table[octet] = (text, len as u8);
        octet += 1;
    }
    table
};

/// Dotted-quad text of `ip` in `buffer` (what `Display` writes, without
/// the formatter: addresses are most of the detail table's text), as
/// bytes: ASCII digits and dots.
fn format_ipv4(ip: Ipv4Addr, buffer: &mut [u8; 16]) -> &[u8] {
    let mut len = 0;
    for octet in ip.octets() {
        let (text, digits) = OCTET_TEXT[usize::from(octet)];
        // Each octet's text carries its dot; the next octet (or nothing)
        // writes over the last one's.
        buffer[len..len + 4].copy_from_slice(&text);
        len += usize::from(digits) + 1;
    }
    &buffer[..len - 1]
}

/// Rows per part: the active part is frozen into Arrow arrays at this size,
/// so a query or a seal copies at most one part, and the memory count of
/// frozen parts is exact (their buffers no longer grow).
pub const PART_ROWS: usize = 64 * 1024;

type Enrichment = [u32; DETAIL_ENRICHMENT.len()];

/// Rows being appended, column by column.
struct ActivePart {
    time: Vec<i64>,
    /// A builder per field seen, created at the field's first value (nulls
    /// before it are filled in then), in the order they were first seen:
    /// a row appends to these without visiting the fields its format lacks.
    builders: Vec<(Field, FieldBuilder)>,
    /// The fields not seen yet: a row only checks that they are null.
    absent: Vec<Field>,
    enrichment: Vec<Enrichment>,
}

/// Rows a bucket's first part has room for; it doubles from there, and
/// the parts after a full one start with room for a whole part.
const FIRST_PART_ROWS: usize = 4 * 1024;

impl Default for ActivePart {
    fn default() -> Self {
        ActivePart::with_capacity(FIRST_PART_ROWS)
    }
}

/// Rows frozen into arrays: `time` and every record field, in schema order.
struct FrozenPart {
    columns: Vec<ArrayRef>,
    enrichment: Vec<Enrichment>,
    bytes: usize,
}

/// The rows of one open time chunk of `flows`.
#[derive(Default)]
pub struct DetailBucket {
    frozen: Vec<FrozenPart>,
    active: ActivePart,
}

impl std::fmt::Debug for DetailBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetailBucket")
            .field("rows", &self.len())
            .field("parts", &(self.frozen.len() + 1))
            .field("bytes", &self.memory_bytes())
            .finish()
    }
}

impl ActivePart {
    fn with_capacity(rows: usize) -> Self {
        ActivePart {
            time: Vec::with_capacity(rows),
            builders: Vec::new(),
            absent: Field::ALL.to_vec(),
            enrichment: Vec::with_capacity(rows),
        }
    }

    /// Heap bytes held, counting the room the buffers have (a query or a
    /// seal of the part copies only the rows).
    fn memory_bytes(&self) -> usize {
        let fields: usize = self.builders.iter().map(|(_, b)| b.memory_bytes()).sum();
        self.time.capacity() * 8 + self.enrichment.capacity() * size_of::<Enrichment>() + fields
    }

    fn add(&mut self, start: u32, record: &FlowRecord<'_>, dims: &[u32; DIM_COUNT]) {
        let row = self.time.len();
        self.time.push(i64::from(start));
        for (field, builder) in &mut self.builders {
            builder.append(record.get(*field));
        }
        if self.absent.iter().any(|f| !record.get(*f).is_null()) {
            self.add_first_values(row, record);
        }
        self.enrichment
            .push(DETAIL_ENRICHMENT.map(|d| dims[d as usize]));
    }

    /// Starts a builder for each field not seen before that `record` (row
    /// `row`) carries: nulls for the rows before it, then its value.
    #[cold]
    fn add_first_values(&mut self, row: usize, record: &FlowRecord<'_>) {
        let rows = self.time.capacity();
        let builders = &mut self.builders;
        self.absent.retain(|&field| {
            let value = record.get(field);
            if value.is_null() {
                return true;
            }
            let mut builder = FieldBuilder::for_field(field, rows);
            builder.append_nulls(row);
            builder.append(value);
            builders.push((field, builder));
            false
        });
    }

    /// For each field of [`Field::ALL`], in that order, the index of its
    /// builder (`None` for a field not seen).
    fn builder_order(&self) -> Vec<Option<usize>> {
        let mut order = vec![None; Field::COUNT];
        for (i, (field, _)) in self.builders.iter().enumerate() {
            if let Some(slot) = order.get_mut(*field as usize) {
                *slot = Some(i);
            }
        }
        order
    }

    /// `time` and the field columns, copied (the part stays as it is).
    fn cloned_columns(&self, schema: &SchemaRef) -> Vec<ArrayRef> {
        let fields = self.builder_order().into_iter().map(|i| {
            let builder = i.and_then(|i| self.builders.get(i));
            builder.map(|(_, b)| b.finish_cloned())
        });
        columns(schema, self.time.clone(), fields).0
    }

    /// `time` and the field columns, taking the buffers (the part is left
    /// empty), and the bytes of the columns that are the part's own.
    fn finished_columns(&mut self, schema: &SchemaRef) -> (Vec<ArrayRef>, usize) {
        let order = self.builder_order();
        let builders = &mut self.builders;
        let fields = order.into_iter().map(|i| {
            let builder = i.and_then(|i| builders.get_mut(i));
            builder.map(|(_, b)| b.finish())
        });
        columns(schema, std::mem::take(&mut self.time), fields)
    }
}

/// `time` then one column per record field (all null where `fields` has
/// none: shared by full parts, see [`shared_null_column`]), and the bytes
/// of the columns that are the part's own (a shared one is not).
fn columns(
    schema: &SchemaRef,
    time: Vec<i64>,
    fields: impl Iterator<Item = Option<ArrayRef>>,
) -> (Vec<ArrayRef>, usize) {
    let rows = time.len();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    columns.push(Arc::new(
        TimestampSecondArray::from(time).with_timezone("UTC"),
    ));
    let mut own_bytes = columns[0].get_array_memory_size();
    for (array, field) in fields.zip(schema.fields().iter().skip(1)) {
        let array = match array {
            Some(array) => {
                own_bytes += array.get_array_memory_size();
                array
            }
            None if rows == PART_ROWS => shared_null_column(field.data_type()),
            None => {
                let column = new_null_array(field.data_type(), rows);
                own_bytes += column.get_array_memory_size();
                column
            }
        };
        debug_assert_eq!(array.len(), rows);
        columns.push(array);
    }
    (columns, own_bytes)
}

/// The all-null column of type `data_type` that every full part
/// ([`PART_ROWS`] rows, what every frozen part but a seal's last is)
/// lacking a field shares. A format without a field (version 5 has none of
/// the ECS fields) left each part a zeroed column of its own per absent
/// field: a tenth of a detail-on ingest's page faults and about 4 MB of
/// counted open memory per part. A shorter part gets a column of its own
/// ([`columns`]): a slice of the shared one would carry its whole buffer,
/// which DataFusion's memory pool counts (a sort of small open parts ran
/// out of its pool; `tests/review_shared_nulls.rs`). Bounded: one column
/// per type of the `flows` schema.
fn shared_null_column(data_type: &DataType) -> ArrayRef {
    static SHARED: Mutex<Vec<ArrayRef>> = Mutex::new(Vec::new());
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    match shared.iter().find(|c| c.data_type() == data_type) {
        Some(column) => column.clone(),
        None => {
            let column = new_null_array(data_type, PART_ROWS);
            shared.push(column.clone());
            column
        }
    }
}

impl DetailBucket {
    /// An empty bucket with room for `rows` rows before it grows (at most
    /// a part's worth): for a batch's rows, where a part's capacity would
    /// be megabytes allocated for a few rows.
    pub fn with_capacity(rows: usize) -> Self {
        DetailBucket {
            frozen: Vec::new(),
            active: ActivePart::with_capacity(rows.min(PART_ROWS)),
        }
    }

    /// Adds one record starting at `start` with its dimension codes.
    pub fn add(
        &mut self,
        start: u32,
        record: &FlowRecord<'_>,
        dims: &[u32; DIM_COUNT],
        schema: &SchemaRef,
    ) {
        self.active.add(start, record, dims);
        if self.active.time.len() >= PART_ROWS {
            // A bucket that filled a part is likely to fill the next.
            self.freeze(schema, PART_ROWS);
        }
    }

    /// Freezes the active part; the next one starts with room for
    /// `next_rows` rows.
    fn freeze(&mut self, schema: &SchemaRef, next_rows: usize) {
        let mut active = std::mem::replace(&mut self.active, ActivePart::with_capacity(next_rows));
        let (columns, own_bytes) = active.finished_columns(schema);
        let enrichment = active.enrichment;
        let bytes = own_bytes + enrichment.capacity() * std::mem::size_of::<Enrichment>();
        self.frozen.push(FrozenPart {
            columns,
            enrichment,
            bytes,
        });
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        let frozen: usize = self.frozen.iter().map(|p| p.enrichment.len()).sum();
        frozen + self.active.time.len()
    }

    /// Whether the bucket has no rows.
    pub fn is_empty(&self) -> bool {
        self.frozen.is_empty() && self.active.time.is_empty()
    }

    /// Heap bytes held: the frozen parts' arrays and the active part's
    /// buffers, room included.
    pub fn memory_bytes(&self) -> usize {
        let frozen: usize = self.frozen.iter().map(|p| p.bytes).sum();
        frozen + self.active.memory_bytes()
    }

    /// The rows as batches of the `flows` schema, one per part (frozen parts
    /// are shared, not copied).
    pub fn to_batches(
        &self,
        schema: &SchemaRef,
        dictionary: &Arc<StringArray>,
    ) -> Result<Vec<RecordBatch>, ArrowError> {
        let mut batches = Vec::with_capacity(self.frozen.len() + 1);
        for part in &self.frozen {
            batches.push(batch(
                schema,
                part.columns.clone(),
                &part.enrichment,
                dictionary,
            )?);
        }
        if !self.active.time.is_empty() {
            // A copy of at most PART_ROWS rows.
            let columns = self.active.cloned_columns(schema);
            batches.push(batch(schema, columns, &self.active.enrichment, dictionary)?);
        }
        Ok(batches)
    }
}

impl DetailBucket {
    /// [`to_batches`](Self::to_batches), taking the rows instead of
    /// copying the active part.
    pub fn into_batches(
        mut self,
        schema: &SchemaRef,
        dictionary: &Arc<StringArray>,
    ) -> Result<Vec<RecordBatch>, ArrowError> {
        if !self.active.time.is_empty() {
            self.freeze(schema, 0);
        }
        self.frozen
            .into_iter()
            .map(|part| batch(schema, part.columns, &part.enrichment, dictionary))
            .collect()
    }
}

/// A batch from `time` + field columns and the enrichment codes.
fn batch(
    schema: &SchemaRef,
    mut columns: Vec<ArrayRef>,
    enrichment: &[Enrichment],
    dictionary: &Arc<StringArray>,
) -> Result<RecordBatch, ArrowError> {
    for (i, dim) in DETAIL_ENRICHMENT.iter().enumerate() {
        columns.push(dim_array(
            *dim,
            enrichment.iter().map(|row| row[i]).collect(),
            dictionary,
        )?);
    }
    RecordBatch::try_new(schema.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_freeze_at_part_rows_and_keep_every_row_in_order() {
        let schema = crate::schema::detail_schema();
        let dictionary = Arc::new(StringArray::from(vec![""]));
        let mut bucket = DetailBucket::default();
        let rows = 2 * PART_ROWS + 5;
        for i in 0..rows {
            let mut record = FlowRecord::new();
            record.set(Field::Bytes, Value::Int(i as u64));
            if i == PART_ROWS + 1 {
                // A field first seen mid-part: the rows before it are null.
                record.set(Field::VpcId, Value::Str("vpc-1"));
            }
            bucket.add(
                1_000,
                &record,
                &[crate::dims::NULL_CODE; DIM_COUNT],
                &schema,
            );
        }
        assert_eq!(bucket.frozen.len(), 2);
        assert_eq!(bucket.len(), rows);
        let batches = bucket.to_batches(&schema, &dictionary).unwrap();
        assert_eq!(
            batches
                .iter()
                .map(RecordBatch::num_rows)
                .collect::<Vec<_>>(),
            [PART_ROWS, PART_ROWS, 5]
        );
        let bytes: Vec<u64> = batches
            .iter()
            .flat_map(|b| {
                let column = b.column_by_name("bytes").unwrap();
                let column = column
                    .as_any()
                    .downcast_ref::<arrow::array::UInt64Array>()
                    .unwrap();
                column.values().to_vec()
            })
            .collect();
        assert_eq!(bytes, (0..rows as u64).collect::<Vec<_>>());
        let vpc = batches[1].column_by_name("vpc_id").unwrap();
        assert_eq!(vpc.null_count(), PART_ROWS - 1);
        assert!(batches[0].column_by_name("vpc_id").unwrap().null_count() == PART_ROWS);
        assert!(bucket.memory_bytes() >= rows * 8);
        let taken = bucket.into_batches(&schema, &dictionary).unwrap();
        assert_eq!(
            taken, batches,
            "taking the rows gives what copying them does"
        );
        let small = DetailBucket::with_capacity(3);
        assert!(small.active.time.capacity() < PART_ROWS);
    }

    /// Full parts without a field (every ECS field of a version 5 log)
    /// share one all-null column per type instead of each zeroing its own,
    /// and count only their own columns as memory; a shorter part's
    /// all-null column is its own (a slice of the shared one would carry
    /// its whole buffer into DataFusion's memory count).
    #[test]
    fn absent_fields_of_full_parts_share_one_null_column_and_are_not_counted() {
        let schema = crate::schema::detail_schema();
        let dictionary = Arc::new(StringArray::from(vec![""]));
        let mut record = FlowRecord::new();
        record.set(Field::Bytes, Value::Int(7));
        let buckets: Vec<DetailBucket> = (0..2)
            .map(|_| {
                let mut bucket = DetailBucket::default();
                for _ in 0..PART_ROWS + 3 {
                    let codes = [crate::dims::NULL_CODE; DIM_COUNT];
                    bucket.add(1_000, &record, &codes, &schema);
                }
                bucket
            })
            .collect();
        let batches: Vec<Vec<RecordBatch>> = buckets
            .iter()
            .map(|b| b.to_batches(&schema, &dictionary).unwrap())
            .collect();
        let buffer = |batch: &RecordBatch, name: &str| {
            let column = batch.column_by_name(name).unwrap();
            (column.null_count(), column.to_data().buffers()[0].clone())
        };
        for name in [
            "vpc_id",
            "ecs_cluster_arn",
            "src_addr",
            "src_port",
            "packets",
        ] {
            let (full, other_full) = (buffer(&batches[0][0], name), buffer(&batches[1][0], name));
            let partial = buffer(&batches[0][1], name);
            assert_eq!(
                (full.0, other_full.0, partial.0),
                (PART_ROWS, PART_ROWS, 3),
                "{name}"
            );
            assert_eq!(full.1.data_ptr(), other_full.1.data_ptr(), "{name}: shared");
            assert_ne!(full.1.data_ptr(), partial.1.data_ptr(), "{name}: own");
            assert!(partial.1.capacity() < 1024, "{name}: sized to its rows");
        }
        // Frozen: time (8 B) and bytes (8 B) per row, the enrichment codes,
        // no absent column.
        let frozen = buckets[0].frozen[0].bytes;
        let own = PART_ROWS * (8 + 8 + size_of::<Enrichment>());
        assert!(frozen >= own && frozen < own + own / 8, "{frozen} vs {own}");
    }

    /// Regression (cold review of c4dd37a): builders were given room for a
    /// whole part that the memory count left out; the count is the
    /// buffers' capacity now, and a bucket's first part starts small.
    #[test]
    fn memory_counts_the_room_a_part_was_given() {
        let schema = crate::schema::detail_schema();
        let mut bucket = DetailBucket::default();
        let mut record = FlowRecord::new();
        record.set(Field::VpcId, Value::Str("vpc-1"));
        record.set(
            Field::SrcAddr,
            Value::Addr(Ipv4Addr::new(10, 0, 0, 1).into()),
        );
        record.set(Field::Bytes, Value::Int(1));
        bucket.add(
            1_000,
            &record,
            &[crate::dims::NULL_CODE; DIM_COUNT],
            &schema,
        );
        let room = FIRST_PART_ROWS * (8 + 4 * DETAIL_ENRICHMENT.len() + 8 + 4 + 4);
        assert!(
            bucket.memory_bytes() >= room,
            "{} < {room}",
            bucket.memory_bytes()
        );
        assert!(
            bucket.memory_bytes() < 4 * room,
            "a first part is not a whole part"
        );
        for _ in 1..PART_ROWS + 1 {
            bucket.add(
                1_000,
                &record,
                &[crate::dims::NULL_CODE; DIM_COUNT],
                &schema,
            );
        }
        assert_eq!(bucket.frozen.len(), 1);
        assert_eq!(
            bucket.active.time.capacity(),
            PART_ROWS,
            "after a full part, a full one"
        );
        assert!(bucket.memory_bytes() >= bucket.frozen[0].bytes + PART_ROWS * 8);
    }

    /// Address columns are built as bytes and frozen into strings: each
    /// row reads back as its address's text, in a frozen part and in the
    /// active one alike.
    #[test]
    fn address_rows_read_back_as_their_text() {
        let schema = crate::schema::detail_schema();
        let dictionary = Arc::new(StringArray::from(vec![""]));
        let addresses: Vec<Option<IpAddr>> = vec![
            Some(Ipv4Addr::new(10, 0, 12, 255).into()),
            None,
            Some("2600:1f18::1".parse().unwrap()),
            Some(Ipv4Addr::new(0, 0, 0, 0).into()),
        ];
        let mut bucket = DetailBucket::default();
        let rows = PART_ROWS + 3;
        for i in 0..rows {
            let mut record = FlowRecord::new();
            if let Some(ip) = addresses[i % addresses.len()] {
                record.set(Field::SrcAddr, Value::Addr(ip));
            }
            let codes = [crate::dims::NULL_CODE; DIM_COUNT];
            bucket.add(1_000, &record, &codes, &schema);
        }
        let batches = bucket.to_batches(&schema, &dictionary).unwrap();
        let texts: Vec<Option<String>> = batches
            .iter()
            .flat_map(|batch| {
                let column = batch.column_by_name("src_addr").unwrap();
                let column = column.as_any().downcast_ref::<StringArray>().unwrap();
                column
                    .iter()
                    .map(|t| t.map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect();
        let expected: Vec<Option<String>> = (0..rows)
            .map(|i| addresses[i % addresses.len()].map(|ip| ip.to_string()))
            .collect();
        assert_eq!(texts, expected);
    }

    #[test]
    fn ipv4_text_is_what_display_writes() {
        let mut buffer = [0u8; 16];
        for ip in ["0.0.0.0", "255.255.255.255", "1.20.100.9", "192.168.10.200"] {
            let ip: Ipv4Addr = ip.parse().unwrap();
            assert_eq!(format_ipv4(ip, &mut buffer), ip.to_string().as_bytes());
        }
        // Every octet in every position, after a longer address was
        // written to the same buffer.
        for octet in 0..=255u8 {
            for ip in [
                Ipv4Addr::new(octet, 0, 0, 0),
                Ipv4Addr::new(0, octet, 0, 0),
                Ipv4Addr::new(0, 0, octet, 0),
                Ipv4Addr::new(255, 255, 255, octet),
            ] {
                format_ipv4(Ipv4Addr::new(200, 200, 200, 200), &mut buffer);
                assert_eq!(format_ipv4(ip, &mut buffer), ip.to_string().as_bytes());
            }
        }
    }
}
