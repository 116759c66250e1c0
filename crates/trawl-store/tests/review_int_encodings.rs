//! Review of d8493bc (integer columns' encodings by type): edge cases the
//! change's own test leaves out, through a source file and a derived file
//! that copies its column chunks (`write_segment_reusing`, as a seal's
//! `flows_1h` copies `flows_1m`): all-null 32- and 64-bit columns, nulls,
//! the extremes of both types (DELTA_BINARY_PACKED wraps its deltas), a
//! 32-bit column whose dictionary overflows in the middle of a chunk, and
//! the `time` column's page index (what page pruning reads). Everything
//! must read back through the Parquet crate (page index required) and
//! through DuckDB.

#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int32Array, RecordBatch, TimestampSecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::basic::Encoding;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use trawl_store::rollup::regrain;
use trawl_store::segment::{EncodedSource, ROW_GROUP_ROWS_MAX, write_segment_reusing};

use crate::common::{footer, int_sum_and_count, python_stdout};

const ROWS: usize = ROW_GROUP_ROWS_MAX + 30_000;

fn batch() -> RecordBatch {
    let spread = |i: usize, salt: usize| i.wrapping_mul(2_654_435_761 + salt) >> 7;
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
            false,
        ),
        Field::new("ports", DataType::Int32, true),
        Field::new("no_ints", DataType::Int32, true),
        Field::new("extreme_ints", DataType::Int32, true),
        Field::new("no_longs", DataType::UInt64, true),
        Field::new("extreme_longs", DataType::UInt64, true),
        Field::new("bytes", DataType::UInt64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampSecondArray::from_iter_values(
                (0..ROWS).map(|i| 3_600 + 60 * (i as i64 * 60 / ROWS as i64)),
            )
            .with_timezone("UTC"),
        ),
        // A few values for the first 5,000 rows (dictionary), then random
        // (the dictionary overflows in the middle of the chunk).
        Arc::new(Int32Array::from_iter((0..ROWS).map(|i| {
            (i % 11 != 0).then_some(if i < 5_000 {
                443 + (i % 3) as i32
            } else {
                (spread(i, 1) % 65_536) as i32
            })
        }))),
        Arc::new(Int32Array::from_iter((0..ROWS).map(|_| None::<i32>))),
        Arc::new(Int32Array::from_iter((0..ROWS).map(|i| match i % 5 {
            0 => Some(i32::MIN),
            1 => Some(i32::MAX),
            2 => None,
            3 => Some(0),
            _ => Some(spread(i, 2) as i32),
        }))),
        Arc::new(UInt64Array::from_iter((0..ROWS).map(|_| None::<u64>))),
        Arc::new(UInt64Array::from_iter((0..ROWS).map(|i| match i % 4 {
            0 => Some(u64::MAX),
            1 => Some(0),
            2 => None,
            _ => Some((i as u64) << 40),
        }))),
        Arc::new(UInt64Array::from_iter_values(
            (0..ROWS).map(|i| 40 + (spread(i, 4) % 1_500_000) as u64),
        )),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn read(path: &std::path::Path) -> RecordBatch {
    let options = ArrowReaderOptions::new()
        .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(
        std::fs::File::open(path).unwrap(),
        options,
    )
    .unwrap();
    let schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
    arrow::compute::concat_batches(&schema, &batches).unwrap()
}

/// Sums (as i128, wrapping nothing) and non-null counts of the integer
/// columns, as DuckDB and as the batch have them.
fn expected(batch: &RecordBatch) -> Vec<String> {
    let mut out = Vec::new();
    for name in [
        "ports",
        "no_ints",
        "extreme_ints",
        "no_longs",
        "extreme_longs",
        "bytes",
    ] {
        let (sum, count) = int_sum_and_count(batch, name);
        out.push(sum.map_or_else(|| "None".to_string(), |s| s.to_string()));
        out.push(count.to_string());
    }
    out
}

fn duckdb(path: &std::path::Path) -> Vec<String> {
    let script = r#"
import sys, json, duckdb
cols = ["ports", "no_ints", "extreme_ints", "no_longs", "extreme_longs", "bytes"]
exprs = ", ".join(f"sum({c}::HUGEINT), count({c})" for c in cols)
row = duckdb.execute(f"select {exprs} from read_parquet('{sys.argv[1]}')").fetchone()
print(json.dumps([str(v) for v in row]))
"#;
    serde_json::from_slice(&python_stdout(script, &[path])).unwrap()
}

#[test]
fn edge_case_integer_columns_survive_encoding_and_chunk_copying() {
    let dir = tempfile::tempdir().unwrap();
    let source = batch();
    let source_path = dir.path().join("source.parquet");
    let written = write_segment_reusing(&source_path, std::slice::from_ref(&source), &[]).unwrap();
    assert_eq!(written.metadata.num_row_groups(), 2);

    // The chunk of `ports` in the first row group: a dictionary, then delta.
    let meta = footer(&source_path);
    let ports: Vec<Encoding> = meta.row_group(0).column(1).encodings().collect();
    assert!(
        ports.contains(&Encoding::RLE_DICTIONARY) && ports.contains(&Encoding::DELTA_BINARY_PACKED),
        "{ports:?}"
    );
    // Pruning: `time` keeps a page index with min/max per page.
    let index = meta.column_index().expect("column index");
    assert_eq!(index.len(), meta.num_row_groups());
    for (group, columns) in index.iter().enumerate() {
        assert!(
            !matches!(columns[0], ColumnIndexMetaData::NONE),
            "time has page statistics in row group {group}"
        );
    }

    assert_eq!(read(&source_path), source, "source reads back");
    assert_eq!(
        duckdb(&source_path),
        expected(&source),
        "DuckDB reads the source"
    );

    // Derived (hourly) file: time regrained and encoded, every other
    // column's chunk copied from the source file.
    let hourly = regrain(&source, source.schema_ref(), 3600).unwrap();
    let derived_path = dir.path().join("derived.parquet");
    let reuse = [Some(EncodedSource {
        path: &source_path,
        schema: source.schema_ref(),
        metadata: &written.metadata,
    })];
    write_segment_reusing(&derived_path, std::slice::from_ref(&hourly), &reuse).unwrap();
    let derived = read(&derived_path);
    for (k, field) in hourly.schema().fields().iter().enumerate() {
        let got = arrow::compute::cast(derived.column(k), hourly.column(k).data_type()).unwrap();
        assert_eq!(
            got.to_data(),
            hourly.column(k).to_data(),
            "derived column {}",
            field.name()
        );
    }
    assert_eq!(
        duckdb(&derived_path),
        expected(&hourly),
        "DuckDB reads the derived file"
    );
}
