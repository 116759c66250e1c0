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

/// Writes `batches` (of one schema, at least one) to `path` as one file
/// and fsyncs it; returns the file's size. The file is written under a
/// temporary name and renamed when complete (the caller syncs the
/// directory before a manifest names it), so `path` never names a partial
/// file, and no write touches a file a manifest may list.
pub fn write_segment(path: &Path, batches: &[RecordBatch]) -> Result<u64, StoreError> {
    let partial = path.with_extension("parquet.tmp");
    let bytes = write_file(&partial, batches)?;
    let io_error = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::rename(&partial, path).map_err(io_error)?;
    Ok(bytes)
}

fn write_file(path: &Path, batches: &[RecordBatch]) -> Result<u64, StoreError> {
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
    let schema =
        batches
            .first()
            .map(RecordBatch::schema)
            .ok_or_else(|| StoreError::SegmentMismatch {
                path: path.to_path_buf(),
                reason: "no batches to write".into(),
            })?;
    let mut writer = ArrowWriter::try_new(file, schema, Some(properties)).map_err(parquet_error)?;
    for batch in batches {
        writer.write(batch).map_err(parquet_error)?;
    }
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
