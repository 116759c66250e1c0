//! Segment files: one Parquet file per table, time chunk and seal.
//!
//! Paired checks at the persistence boundary: a batch is validated before it
//! is written (rows present, every `time` inside the chunk) and a file is
//! validated after it is read (its row count and size are the manifest's).
//! Files are fsynced before any manifest names them.

use std::fs::File;
use std::path::Path;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::TimestampSecondType;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::StoreError;
use crate::manifest::SegmentMeta;
use crate::schema::TIME_COLUMN;

/// Rows per Parquet row group (also the unit of row-group pruning).
pub const ROW_GROUP_ROWS_MAX: usize = 256 * 1024;

/// Time range of a batch: `(min, max)` of its `time` column.
pub fn time_range(batch: &RecordBatch) -> Option<(u32, u32)> {
    let times = batch
        .column_by_name(TIME_COLUMN)?
        .as_primitive_opt::<TimestampSecondType>()?;
    let min = arrow::compute::min(times)?;
    let max = arrow::compute::max(times)?;
    Some((u32::try_from(min).ok()?, u32::try_from(max).ok()?))
}

/// Checks a batch before it becomes a segment of chunk `[start, start + secs)`.
pub fn validate_batch(
    batch: &RecordBatch,
    chunk_start: u32,
    chunk_secs: u32,
) -> Result<(u32, u32), String> {
    if batch.num_rows() == 0 {
        return Err("no rows".into());
    }
    let (min, max) = time_range(batch).ok_or("no valid time column")?;
    let end = u64::from(chunk_start) + u64::from(chunk_secs);
    if min < chunk_start || u64::from(max) >= end {
        return Err(format!(
            "time {min}..={max} outside chunk {chunk_start}..{end}"
        ));
    }
    Ok((min, max))
}

/// Writes `batch` to `path` and fsyncs it; returns the file's size.
pub fn write_segment(path: &Path, batch: &RecordBatch) -> Result<u64, StoreError> {
    let parquet_error = |source| StoreError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let io_error = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::create(path).map_err(io_error)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS_MAX))
        // Statistics only where pruning uses them: min/max of every text
        // column cost a string comparison per row (a fifth of a seal).
        .set_statistics_enabled(EnabledStatistics::None)
        .set_column_statistics_enabled(ColumnPath::from(TIME_COLUMN), EnabledStatistics::Page)
        .build();
    let mut writer =
        ArrowWriter::try_new(file, batch.schema(), Some(properties)).map_err(parquet_error)?;
    writer.write(batch).map_err(parquet_error)?;
    let file = writer.into_inner().map_err(parquet_error)?;
    file.sync_all().map_err(io_error)?;
    Ok(file.metadata().map_err(io_error)?.len())
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
