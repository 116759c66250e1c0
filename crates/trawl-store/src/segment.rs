//! Segment files: one Parquet file per table, time chunk and seal.
//!
//! Paired checks at the persistence boundary: a batch is validated before it
//! is written (rows present, every `time` inside the chunk) and a file is
//! validated after it is read (its row count and size are the manifest's).
//! Files are fsynced before any manifest names them.
//!
//! A file is written in three parts so that a commit can use every core
//! (`commit.rs`): [`RowGroupEncoder`] encodes row groups of at most
//! [`ROW_GROUP_ROWS_MAX`] rows apart from any file, [`SegmentFile`]
//! appends them in order under a temporary name and finishes (footer,
//! fsync, rename). A batch whose rows another segment's file already holds
//! ([`EncodedSource`]: a derived table's passed-through rows) has every
//! column chunk but `time` copied from that file as encoded bytes. Text
//! dimensions are encoded from their dictionary codes (`dict_chunk.rs`),
//! not by parquet's Arrow writer, which hashes every row's string again;
//! 64-bit integers and times are DELTA_BINARY_PACKED, 32-bit integers
//! dictionary encoded while their dictionary stays small (nearly one value
//! per row in high-cardinality tables, where a dictionary only overflows;
//! see `segment_properties`).

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Schema, SchemaRef, TimestampSecondType, UInt32Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Encoding};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnDescPtr, ColumnPath};

use crate::dict_chunk::{self, EncodedChunk};
use crate::error::StoreError;
use crate::manifest::SegmentMeta;
use crate::schema::TIME_COLUMN;

/// Rows per Parquet row group (also the unit of row-group pruning).
pub const ROW_GROUP_ROWS_MAX: usize = 256 * 1024;

/// Time range of a batch: `(min, max)` of its `time` column (`None` if it
/// has no such column, no non-null time, or a time outside `u32`).
pub fn time_range(batch: &RecordBatch) -> Option<(u32, u32)> {
    let times = batch
        .column_by_name(TIME_COLUMN)?
        .as_primitive_opt::<TimestampSecondType>()?;
    let (min, max) = if times.null_count() == 0 {
        // One pass for both (a seal's time columns are tens of MB, read
        // from memory: two passes cost twice).
        let first = *times.values().first()?;
        times
            .values()
            .iter()
            .fold((first, first), |(min, max), &t| (min.min(t), max.max(t)))
    } else {
        (arrow::compute::min(times)?, arrow::compute::max(times)?)
    };
    Some((u32::try_from(min).ok()?, u32::try_from(max).ok()?))
}

/// Time range of several batches (`None` when none has rows).
pub fn time_range_of(batches: &[RecordBatch]) -> Option<(u32, u32)> {
    batches
        .iter()
        .filter(|b| b.num_rows() > 0)
        .map(time_range)
        .try_fold(None, |acc: Option<(u32, u32)>, range| {
            let (min, max) = range?;
            Some(Some(
                acc.map_or((min, max), |(a, b)| (a.min(min), b.max(max))),
            ))
        })?
}

/// Checks the batches of a segment of chunk `[start, start + secs)` before
/// they are written: rows present, one schema, every `time` in the chunk.
pub fn validate_batches(
    batches: &[RecordBatch],
    chunk_start: u32,
    chunk_secs: u32,
) -> Result<(u32, u32), String> {
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Err("no rows".into());
    }
    if batches.windows(2).any(|w| w[0].schema() != w[1].schema()) {
        return Err("batches of different schemas".into());
    }
    let (min, max) = time_range_of(batches).ok_or("no valid time column")?;
    let end = u64::from(chunk_start) + u64::from(chunk_secs);
    if min < chunk_start || u64::from(max) >= end {
        return Err(format!(
            "time {min}..={max} outside chunk {chunk_start}..{end}"
        ));
    }
    Ok((min, max))
}

/// Where the rows of a batch about to be written are already encoded: a
/// segment file of the same commit whose only batch holds exactly those
/// rows in the same order, every column but `time` the very same array (a
/// derived table's passed-through rows, `store/seal.rs`). Those columns
/// are copied from it as encoded column chunks; `time`, which the derived
/// table floors, is encoded.
#[derive(Debug, Clone, Copy)]
pub struct EncodedSource<'a> {
    /// The source segment's file, complete and synced.
    pub path: &'a Path,
    /// Its schema (columns are matched by name).
    pub schema: &'a Schema,
    /// Its Parquet metadata, as its writer returned it (page offsets and
    /// indexes included).
    pub metadata: &'a ParquetMetaData,
}

/// A segment file as written: its size and Parquet metadata.
#[derive(Debug)]
pub struct WrittenSegment {
    /// Size of the file in bytes.
    pub bytes: u64,
    /// The footer's metadata, with the page indexes.
    pub metadata: ParquetMetaData,
}

/// Writes `batches` (of one schema, at least one) to `path` as one file
/// and fsyncs it; returns the file's size. The file is written under a
/// temporary name and renamed when complete (the caller syncs the
/// directory before a manifest names it), so `path` never names a partial
/// file, and no write touches a file a manifest may list.
pub fn write_segment(path: &Path, batches: &[RecordBatch]) -> Result<u64, StoreError> {
    write_segment_reusing(path, batches, &[]).map(|written| written.bytes)
}

/// [`write_segment`], copying the columns of batch `i` that `sources[i]`
/// already holds encoded (see [`EncodedSource`]; `sources` may be shorter
/// than `batches`). Batches without a source are written first.
pub fn write_segment_reusing(
    path: &Path,
    batches: &[RecordBatch],
    sources: &[Option<EncodedSource<'_>>],
) -> Result<WrittenSegment, StoreError> {
    let schema = schema_of(path, batches)?;
    let encoder = RowGroupEncoder::new(schema.clone()).map_err(|source| StoreError::Parquet {
        path: path.to_path_buf(),
        source,
    })?;
    let mut file = SegmentFile::create(path, schema)?;
    let (own, reused) = split_by_source(batches, sources);
    for rows in row_groups_of(&own) {
        let group = encoder.encode(&rows).map_err(|e| file.parquet_error(e))?;
        file.append(group)?;
    }
    for (batch, source) in reused {
        file.append_reusing(&encoder, batch, source)?;
    }
    file.finish()
}

/// The schema of a segment's `batches` (to be written to `path`): the
/// first one's; a segment without batches is refused.
pub fn schema_of(path: &Path, batches: &[RecordBatch]) -> Result<SchemaRef, StoreError> {
    batches
        .first()
        .map(RecordBatch::schema)
        .ok_or_else(|| StoreError::SegmentMismatch {
            path: path.to_path_buf(),
            reason: "no batches to write".into(),
        })
}

/// `batches` without a source (cloned: arrays are shared), and those with
/// one, paired with it.
pub fn split_by_source<'b, 's>(
    batches: &'b [RecordBatch],
    sources: &[Option<EncodedSource<'s>>],
) -> (Vec<RecordBatch>, Vec<(&'b RecordBatch, EncodedSource<'s>)>) {
    let mut own = Vec::new();
    let mut reused = Vec::new();
    for (i, batch) in batches.iter().enumerate() {
        match sources.get(i).copied().flatten() {
            Some(source) => reused.push((batch, source)),
            None => own.push(batch.clone()),
        }
    }
    (own, reused)
}

/// `batches` cut into row groups of at most [`ROW_GROUP_ROWS_MAX`] rows,
/// in order, across batch boundaries (slices share the arrays).
pub fn row_groups_of(batches: &[RecordBatch]) -> Vec<Vec<RecordBatch>> {
    let mut groups = Vec::new();
    let mut group: Vec<RecordBatch> = Vec::new();
    let mut group_rows = 0;
    for batch in batches {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let rows = (batch.num_rows() - offset).min(ROW_GROUP_ROWS_MAX - group_rows);
            group.push(batch.slice(offset, rows));
            (offset, group_rows) = (offset + rows, group_rows + rows);
            if group_rows == ROW_GROUP_ROWS_MAX {
                groups.push(std::mem::take(&mut group));
                group_rows = 0;
            }
        }
    }
    if group_rows > 0 {
        groups.push(group);
    }
    groups
}

/// Bytes of dictionary a small-integer column may build in a column chunk
/// before it falls back to DELTA_BINARY_PACKED: 1,024 `Int32` values.
/// Chosen by measurement on 1 M detail rows (the Arrow writer, one core):
/// random ports (60 k distinct) took 18 ms and 3.1 MB through a dictionary
/// that only overflowed, 5 ms and 2.3 MB falling back at once; columns of
/// a few values (TCP flags, protocol) keep the dictionary (0.18 MB against
/// 0.35 MB in delta), and so do a low-cardinality estate's service ports.
pub const SMALL_INT_DICTIONARY_BYTES_MAX: usize = 4 * 1024;

/// Properties of every segment file of `schema`. Encodings by column type,
/// chosen by measurement (see the module header): text is dictionary
/// encoded (from codes, `dict_chunk.rs`, or by the Arrow writer);
/// 64-bit integers and times (measures, `start`/`end`, `time`) are
/// DELTA_BINARY_PACKED without a dictionary, which was as small or
/// smaller and about twice as fast; 32-bit integers (ports, protocol,
/// flags) keep a dictionary up to [`SMALL_INT_DICTIONARY_BYTES_MAX`],
/// then fall back to DELTA_BINARY_PACKED.
fn segment_properties(schema: &Schema) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS_MAX))
        // Statistics only where pruning uses them: min/max of every text
        // column cost a string comparison per row (a fifth of a seal).
        .set_statistics_enabled(EnabledStatistics::None)
        .set_column_statistics_enabled(ColumnPath::from(TIME_COLUMN), EnabledStatistics::Page);
    for field in schema.fields() {
        let column = || ColumnPath::from(field.name().as_str());
        match field.data_type() {
            DataType::Int64 | DataType::UInt64 | DataType::Timestamp(..) => {
                builder = builder
                    .set_column_dictionary_enabled(column(), false)
                    .set_column_encoding(column(), Encoding::DELTA_BINARY_PACKED);
            }
            DataType::Int32 | DataType::UInt32 => {
                builder = builder
                    .set_column_dictionary_page_size_limit(column(), SMALL_INT_DICTIONARY_BYTES_MAX)
                    .set_column_encoding(column(), Encoding::DELTA_BINARY_PACKED);
            }
            _ => {}
        }
    }
    builder.build()
}

/// Encodes row groups of segments of one schema, apart from any file
/// (row groups are encoded on every core, then appended in order; see
/// [`SegmentFile::append`]). Text dimensions are encoded from their codes
/// (`dict_chunk.rs`), every other column by the Parquet crate's Arrow
/// writer.
#[derive(Debug)]
pub struct RowGroupEncoder {
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// The Parquet column of each field (segment schemas are flat: one
    /// leaf per field).
    leaves: Vec<ColumnDescPtr>,
}

/// A column chunk of an encoded row group.
#[derive(Debug)]
enum Chunk {
    /// Encoded by the Arrow writer.
    Arrow(ArrowColumnChunk),
    /// Encoded from dictionary codes.
    Codes(EncodedChunk),
}

/// A row group's encoded column chunks, in column order.
#[derive(Debug)]
pub struct EncodedRowGroup(Vec<Chunk>);

impl EncodedRowGroup {
    /// Bytes of its encoded column chunks (what it holds until appended).
    pub fn bytes(&self) -> usize {
        let bytes: u64 = self
            .0
            .iter()
            .map(|chunk| match chunk {
                Chunk::Arrow(chunk) => chunk.close().bytes_written,
                Chunk::Codes(chunk) => chunk.bytes.len() as u64,
            })
            .sum();
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }
}

impl RowGroupEncoder {
    /// The encoder of row groups of `schema`, with the segments' properties.
    pub fn new(schema: SchemaRef) -> Result<Self, ParquetError> {
        // The factory takes the schema and properties from a file writer,
        // not the file: a writer to nowhere gives the same encoders.
        let (_, factory) = ArrowWriter::try_new(
            std::io::sink(),
            schema.clone(),
            Some(segment_properties(&schema)),
        )?
        .into_serialized_writer()?;
        let leaves = ArrowSchemaConverter::new()
            .convert(&schema)?
            .columns()
            .to_vec();
        if leaves.len() != schema.fields().len() {
            return Err(ParquetError::General("nested columns in a segment".into()));
        }
        Ok(RowGroupEncoder {
            factory,
            schema,
            leaves,
        })
    }

    /// Encodes `rows` (batches of this schema) as one row group.
    pub fn encode(&self, rows: &[RecordBatch]) -> Result<EncodedRowGroup, ParquetError> {
        let mut chunks = Vec::with_capacity(self.schema.fields().len());
        let writers = self.factory.create_column_writers(0)?;
        for (i, (field, mut writer)) in self.schema.fields().iter().zip(writers).enumerate() {
            if let Some(chunk) = self.encode_codes(i, rows)? {
                chunks.push(Chunk::Codes(chunk));
                continue;
            }
            for batch in rows {
                for leaf in compute_leaves(field, batch.column(i))? {
                    writer.write(&leaf)?;
                }
            }
            chunks.push(Chunk::Arrow(writer.close()?));
        }
        Ok(EncodedRowGroup(chunks))
    }

    /// Column `i` of `rows` encoded from its codes, if it is a text
    /// dimension that [`dict_chunk::encode`] takes.
    fn encode_codes(
        &self,
        i: usize,
        rows: &[RecordBatch],
    ) -> Result<Option<EncodedChunk>, ParquetError> {
        let Some(descr) = self.leaves.get(i) else {
            return Ok(None);
        };
        let arrays: Option<Vec<_>> = rows
            .iter()
            .map(|batch| batch.column(i).as_dictionary_opt::<UInt32Type>())
            .collect();
        match arrays {
            Some(arrays) if !arrays.is_empty() => dict_chunk::encode(descr, &arrays),
            _ => Ok(None),
        }
    }
}

/// A segment file being written: created under a temporary name, row
/// groups appended in order, then finished, fsynced and renamed
/// ([`SegmentFile::finish`]); dropped unfinished, it leaves only the
/// temporary file, which no manifest names.
#[derive(Debug)]
pub struct SegmentFile {
    path: PathBuf,
    partial: PathBuf,
    writer: SerializedFileWriter<File>,
}

impl SegmentFile {
    /// Creates the file of a segment at `path` (of rows of `schema`).
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self, StoreError> {
        let partial = path.with_extension("parquet.tmp");
        let file = File::create(&partial).map_err(|source| StoreError::Io {
            path: partial.clone(),
            source,
        })?;
        let properties = segment_properties(&schema);
        let (writer, _) = ArrowWriter::try_new(file, schema, Some(properties))
            .and_then(ArrowWriter::into_serialized_writer)
            .map_err(|source| StoreError::Parquet {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(SegmentFile {
            path: path.to_path_buf(),
            partial,
            writer,
        })
    }

    /// The error `source` about this segment's file.
    pub fn parquet_error(&self, source: ParquetError) -> StoreError {
        StoreError::Parquet {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends an encoded row group.
    pub fn append(&mut self, group: EncodedRowGroup) -> Result<(), StoreError> {
        let path = self.path.clone();
        let parquet_error = |source| StoreError::Parquet { path, source };
        let mut out = self
            .writer
            .next_row_group()
            .map_err(parquet_error.clone())?;
        for chunk in group.0 {
            match chunk {
                Chunk::Arrow(chunk) => chunk.append_to_row_group(&mut out),
                Chunk::Codes(chunk) => out.append_column(&chunk.bytes, chunk.close),
            }
            .map_err(parquet_error.clone())?;
        }
        out.close().map(drop).map_err(parquet_error)
    }

    /// Appends `batch` as row groups cut like `source`'s: `time` encoded,
    /// every other column's chunk copied from `source`'s file.
    pub fn append_reusing(
        &mut self,
        encoder: &RowGroupEncoder,
        batch: &RecordBatch,
        source: EncodedSource<'_>,
    ) -> Result<(), StoreError> {
        append_reusing(&mut self.writer, &encoder.factory, batch, source)
            .map_err(|e| self.parquet_error(e))
    }

    /// Writes the footer, fsyncs and renames the file to its name.
    pub fn finish(mut self) -> Result<WrittenSegment, StoreError> {
        let metadata = self.writer.finish().map_err(|e| self.parquet_error(e))?;
        let io_error = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let file = self.writer.inner();
        file.sync_all().map_err(io_error)?;
        let bytes = file.metadata().map_err(io_error)?.len();
        std::fs::rename(&self.partial, &self.path).map_err(io_error)?;
        Ok(WrittenSegment { bytes, metadata })
    }
}

/// Appends `batch` as row groups cut like `source`'s: `time` encoded, every
/// other column's chunk copied from `source`'s file.
fn append_reusing(
    out: &mut SerializedFileWriter<File>,
    row_groups: &ArrowRowGroupWriterFactory,
    batch: &RecordBatch,
    source: EncodedSource<'_>,
) -> Result<(), ParquetError> {
    let schema = batch.schema();
    let copied_from: Vec<Option<usize>> = schema
        .fields()
        .iter()
        .map(|field| match field.name().as_str() {
            TIME_COLUMN => Ok(None),
            name => match source.schema.index_of(name) {
                Ok(j) if source.schema.field(j).data_type() == field.data_type() => Ok(Some(j)),
                _ => Err(ParquetError::General(format!(
                    "column {name} is not in the source segment {}",
                    source.path.display()
                ))),
            },
        })
        .collect::<Result<_, _>>()?;
    let file = File::open(source.path)?;
    let mut offset = 0;
    for (group_index, group) in source.metadata.row_groups().iter().enumerate() {
        let rows = usize::try_from(group.num_rows())
            .map_err(|_| ParquetError::General("negative row count".into()))?;
        if offset + rows > batch.num_rows() {
            break;
        }
        let mut writers: Vec<Option<_>> = row_groups
            .create_column_writers(out.flushed_row_groups().len())?
            .into_iter()
            .map(Some)
            .collect();
        let mut group_out = out.next_row_group()?;
        for (i, (field, from)) in schema.fields().iter().zip(&copied_from).enumerate() {
            match from {
                None => {
                    let mut writer =
                        writers.get_mut(i).and_then(Option::take).ok_or_else(|| {
                            ParquetError::General(format!("no writer for column {i}"))
                        })?;
                    for leaf in compute_leaves(field, &batch.column(i).slice(offset, rows))? {
                        writer.write(&leaf)?;
                    }
                    writer.close()?.append_to_row_group(&mut group_out)?;
                }
                Some(j) => {
                    let chunk = group.column(*j);
                    let close = ColumnCloseResult {
                        bytes_written: u64::try_from(chunk.compressed_size()).unwrap_or_default(),
                        rows_written: rows as u64,
                        metadata: chunk.clone(),
                        bloom_filter: None,
                        column_index: page_index_at(
                            source.metadata.column_index(),
                            group_index,
                            *j,
                        )
                        .filter(|index| !matches!(index, ColumnIndexMetaData::NONE)),
                        offset_index: page_index_at(
                            source.metadata.offset_index(),
                            group_index,
                            *j,
                        ),
                    };
                    group_out.append_column(&file, close)?;
                }
            }
        }
        group_out.close()?;
        offset += rows;
    }
    if offset != batch.num_rows() {
        return Err(ParquetError::General(format!(
            "{} rows to write, the source segment {} has {offset}",
            batch.num_rows(),
            source.path.display()
        )));
    }
    Ok(())
}

/// A column chunk's entry in a file's page index (row group, column).
fn page_index_at<T: Clone>(index: Option<&Vec<Vec<T>>>, group: usize, column: usize) -> Option<T> {
    index?.get(group)?.get(column).cloned()
}

/// Checks that the file of `meta` exists with the manifest's size and row count.
pub fn check_segment(path: &Path, meta: &SegmentMeta) -> Result<(), StoreError> {
    let mismatch = |reason: String| StoreError::SegmentMismatch {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|e| mismatch(e.to_string()))?;
    let size = file.metadata().map_err(|e| mismatch(e.to_string()))?.len();
    if size != meta.bytes {
        return Err(mismatch(format!(
            "{size} bytes, manifest says {}",
            meta.bytes
        )));
    }
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| StoreError::Parquet {
            path: path.to_path_buf(),
            source,
        })?;
    let rows = builder.metadata().file_metadata().num_rows();
    if u64::try_from(rows).ok() != Some(meta.rows) {
        return Err(mismatch(format!(
            "{rows} rows, manifest says {}",
            meta.rows
        )));
    }
    Ok(())
}

/// Reads a whole segment (for compaction), checked against `meta`.
pub fn read_segment(path: &Path, meta: &SegmentMeta) -> Result<Vec<RecordBatch>, StoreError> {
    check_segment(path, meta)?;
    let parquet_error = |source| StoreError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(parquet_error)?
        .with_batch_size(64 * 1024)
        .build()
        .map_err(parquet_error)?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parquet_error(e.into()))?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows as u64 != meta.rows {
        return Err(StoreError::SegmentMismatch {
            path: path.to_path_buf(),
            reason: format!("read {rows} rows, manifest says {}", meta.rows),
        });
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, DictionaryArray, StringArray, TimestampSecondArray, UInt32Array, UInt64Array,
    };
    use arrow::datatypes::{DataType, Field, TimeUnit};
    use parquet::arrow::arrow_reader::ArrowReaderOptions;

    use super::*;
    use crate::rollup::regrain;

    /// The one-pass range equals arrow's min and max, with and without
    /// nulls; times outside `u32` and all-null columns give none.
    #[test]
    fn time_range_is_the_min_and_max_time() {
        let batch = |times: Vec<Option<i64>>| {
            let schema = Arc::new(Schema::new(vec![Field::new(
                TIME_COLUMN,
                DataType::Timestamp(TimeUnit::Second, None),
                true,
            )]));
            let column: ArrayRef = Arc::new(TimestampSecondArray::from(times));
            RecordBatch::try_new(schema, vec![column]).expect("batch")
        };
        assert_eq!(
            time_range(&batch(vec![Some(70), Some(5), Some(900)])),
            Some((5, 900))
        );
        assert_eq!(
            time_range(&batch(vec![None, Some(70), None, Some(9)])),
            Some((9, 70))
        );
        assert_eq!(time_range(&batch(vec![Some(7)])), Some((7, 7)));
        assert_eq!(time_range(&batch(vec![None, None])), None);
        assert_eq!(time_range(&batch(vec![])), None);
        assert_eq!(time_range(&batch(vec![Some(1), Some(-1)])), None);
        assert_eq!(time_range(&batch(vec![Some(1 << 40)])), None);
    }

    /// A minute table's batch of `rows` rows over one hour: a text column
    /// (dictionary, every seventh null) and a measure.
    fn minute_rows(rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                TIME_COLUMN,
                DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
                false,
            ),
            Field::new(
                "src_app",
                DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8)),
                true,
            ),
            Field::new("bytes", DataType::UInt64, false),
        ]));
        let n = rows as u32;
        let times =
            TimestampSecondArray::from_iter_values((0..n).map(|i| 3600 + i64::from(i % 60) * 60))
                .with_timezone("UTC");
        let values = Arc::new(StringArray::from_iter_values(
            (0..500).map(|i| format!("app-{i}")),
        ));
        let keys = UInt32Array::from_iter((0..n).map(|i| (i % 7 != 0).then_some(i * 31 % 500)));
        let apps = DictionaryArray::try_new(keys, values).expect("keys within values");
        let bytes = UInt64Array::from_iter_values((0..n).map(|i| u64::from(i) * 3 + 1));
        let columns: Vec<ArrayRef> = vec![Arc::new(times), Arc::new(apps), Arc::new(bytes)];
        RecordBatch::try_new(schema, columns).expect("columns match the schema")
    }

    fn read_all(path: &Path) -> (Vec<RecordBatch>, ParquetMetaData) {
        let file = File::open(path).expect("segment file");
        let options = ArrowReaderOptions::new()
            .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required);
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
            .expect("a readable footer and page index");
        let metadata = builder.metadata().as_ref().clone();
        let batches = builder
            .build()
            .expect("reader")
            .collect::<Result<Vec<_>, _>>()
            .expect("readable pages");
        (batches, metadata)
    }

    /// Two row groups (the source's cut), nulls, and a regrained `time`:
    /// the copy reads back as the batch it stands for, byte for byte in
    /// every copied column chunk.
    #[test]
    fn a_passed_through_batch_copies_its_sources_encoded_columns() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = minute_rows(ROW_GROUP_ROWS_MAX + 1000);
        let source_path = dir.path().join("source.parquet");
        let written = write_segment_reusing(&source_path, std::slice::from_ref(&source), &[])
            .expect("source written");
        assert_eq!(written.metadata.num_row_groups(), 2);
        let hourly = regrain(&source, source.schema_ref(), 3600).expect("regrained");
        let own = regrain(&minute_rows(10), source.schema_ref(), 3600).expect("regrained");
        let reuse = [
            None,
            Some(EncodedSource {
                path: &source_path,
                schema: source.schema_ref(),
                metadata: &written.metadata,
            }),
        ];
        let path = dir.path().join("derived.parquet");
        let derived = write_segment_reusing(&path, &[own.clone(), hourly.clone()], &reuse)
            .expect("derived written");
        assert_eq!(derived.bytes, std::fs::metadata(&path).expect("file").len());

        let (batches, metadata) = read_all(&path);
        let read = arrow::compute::concat_batches(source.schema_ref(), &batches).expect("concat");
        let expected =
            arrow::compute::concat_batches(source.schema_ref(), &[own, hourly]).expect("concat");
        assert_eq!(read.num_rows(), expected.num_rows());
        for (k, field) in source.schema().fields().iter().enumerate() {
            let (got, want) = (read.column(k), expected.column(k));
            let got = arrow::compute::cast(got, want.data_type()).expect("cast");
            assert_eq!(&got.to_data(), &want.to_data(), "column {}", field.name());
        }
        // Row group 0 holds the own rows; 1 and 2 are the source's, copied.
        assert_eq!(metadata.num_row_groups(), 3);
        for group in 0..2 {
            let (from, to) = (
                written.metadata.row_group(group),
                metadata.row_group(group + 1),
            );
            assert_eq!(from.num_rows(), to.num_rows());
            for column in 1..3 {
                assert_eq!(
                    from.column(column).compressed_size(),
                    to.column(column).compressed_size(),
                    "row group {group} column {column} copied"
                );
            }
        }
        assert!(metadata.offset_index().is_some(), "page index kept");
    }

    /// What an encoded row group says it holds (the writer's buffer the
    /// store counts as open memory) is what its column chunks take in the
    /// file.
    #[test]
    fn an_encoded_row_groups_bytes_are_its_chunks_in_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rows = minute_rows(5000);
        let encoder = RowGroupEncoder::new(rows.schema()).expect("encoder");
        let group = encoder
            .encode(std::slice::from_ref(&rows))
            .expect("encoded");
        let held = group.bytes();
        let path = dir.path().join("group.parquet");
        let mut file = SegmentFile::create(&path, rows.schema()).expect("created");
        file.append(group).expect("appended");
        let written = file.finish().expect("finished");
        let in_file: i64 = written
            .metadata
            .row_group(0)
            .columns()
            .iter()
            .map(|c| c.compressed_size())
            .sum();
        assert!(held > 0);
        assert_eq!(held as i64, in_file);
    }

    /// A source that does not hold the batch's rows is refused, not copied.
    #[test]
    fn a_source_with_fewer_rows_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = minute_rows(100);
        let source_path = dir.path().join("source.parquet");
        let written = write_segment_reusing(&source_path, std::slice::from_ref(&source), &[])
            .expect("source written");
        let bigger = minute_rows(200);
        let reuse = [Some(EncodedSource {
            path: &source_path,
            schema: source.schema_ref(),
            metadata: &written.metadata,
        })];
        let outcome = write_segment_reusing(&dir.path().join("d.parquet"), &[bigger], &reuse);
        assert!(
            matches!(&outcome, Err(StoreError::Parquet { source, .. }) if source.to_string().contains("200 rows")),
            "{outcome:?}"
        );
    }
}
