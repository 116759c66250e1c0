//! Integer columns' encodings, chosen by measurement (`segment.rs`,
//! `segment_properties`): 64-bit integers and times are DELTA_BINARY_PACKED
//! without a dictionary; a 32-bit column keeps its dictionary while it
//! stays small and falls back to DELTA_BINARY_PACKED in the same column
//! chunk once it grows. Every value reads back, through the Parquet crate
//! and through DuckDB (a chunk of dictionary pages then delta pages is
//! what other readers must accept).

#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, TimestampSecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Encoding;
use parquet::file::metadata::ParquetMetaData;
use trawl_store::segment::write_segment;

use crate::common::{int_sum_and_count, python_stdout};

const ROWS: usize = 100_000;

/// Random ports (about 60 k distinct), a few TCP flag values, ports of a
/// small service set, an end time and byte counts.
fn batch() -> RecordBatch {
    let spread = |i: usize, salt: usize| i.wrapping_mul(2_654_435_761 + salt) >> 7;
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
            false,
        ),
        Field::new("src_port", DataType::Int32, true),
        Field::new("tcp_flags", DataType::Int32, true),
        Field::new("service_port", DataType::Int32, true),
        Field::new("end", DataType::UInt64, true),
        Field::new("bytes", DataType::UInt64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampSecondArray::from_iter_values((0..ROWS).map(|i| 60 * (i as i64 / 1_000)))
                .with_timezone("UTC"),
        ),
        Arc::new(Int32Array::from_iter((0..ROWS).map(|i| {
            (i % 97 != 0).then_some(1_024 + (spread(i, 1) % 64_000) as i32)
        }))),
        Arc::new(Int32Array::from_iter_values(
            (0..ROWS).map(|i| [2, 18, 19][spread(i, 2) % 3]),
        )),
        Arc::new(Int32Array::from_iter_values(
            (0..ROWS).map(|i| [443, 80, 5432, 6379][spread(i, 3) % 4]),
        )),
        Arc::new(UInt64Array::from_iter((0..ROWS).map(|i| {
            (i % 89 != 0).then_some(1_800_000_000 + i as u64 / 900)
        }))),
        Arc::new(UInt64Array::from_iter_values(
            (0..ROWS).map(|i| 40 + (spread(i, 4) % 1_500_000) as u64),
        )),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn encodings(metadata: &ParquetMetaData, column: usize) -> Vec<Encoding> {
    let mut out: Vec<Encoding> = metadata
        .row_groups()
        .iter()
        .flat_map(|g| g.column(column).encodings().collect::<Vec<_>>())
        .collect();
    out.sort_by_key(|e| format!("{e:?}"));
    out.dedup();
    out
}

#[test]
fn integer_columns_are_encoded_by_their_type_and_read_back() {
    let batch = batch();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.parquet");
    write_segment(&path, std::slice::from_ref(&batch)).unwrap();

    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap();
    let metadata = builder.metadata().clone();
    let has_dictionary = |c: usize| {
        metadata
            .row_groups()
            .iter()
            .any(|g| g.column(c).dictionary_page_offset().is_some())
    };
    // 64-bit and times: delta, no dictionary.
    for c in [0, 4, 5] {
        assert!(
            encodings(&metadata, c).contains(&Encoding::DELTA_BINARY_PACKED),
            "column {c}"
        );
        assert!(!has_dictionary(c), "column {c} has no dictionary page");
    }
    // Random ports: the dictionary overflowed its 4 KiB and the column
    // went on in delta.
    let ports = encodings(&metadata, 1);
    assert!(ports.contains(&Encoding::DELTA_BINARY_PACKED), "{ports:?}");
    // Few values: dictionary only.
    for c in [2, 3] {
        let found = encodings(&metadata, c);
        assert!(
            found.contains(&Encoding::RLE_DICTIONARY),
            "column {c}: {found:?}"
        );
        assert!(
            !found.contains(&Encoding::DELTA_BINARY_PACKED),
            "column {c}: {found:?}"
        );
    }

    let read: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
    let read = arrow::compute::concat_batches(&batch.schema(), &read).unwrap();
    assert_eq!(read, batch, "every value reads back");

    // DuckDB: sums and null counts of every integer column.
    let script = r#"
import sys, json, duckdb
row = duckdb.execute(f"""select sum(src_port), count(src_port), sum(tcp_flags), sum(service_port),
    sum("end"), count("end"), sum(bytes), sum("time") from read_parquet('{sys.argv[1]}')""").fetchone()
print(json.dumps([int(v) for v in row]))
"#;
    let answer: Vec<i128> = serde_json::from_slice(&python_stdout(script, &[&path])).unwrap();
    let sum = |name: &str| int_sum_and_count(&batch, name).0.unwrap();
    let count = |name: &str| int_sum_and_count(&batch, name).1;
    let times: i128 = (0..ROWS).map(|i| 60 * (i as i128 / 1_000)).sum();
    assert_eq!(
        answer,
        vec![
            sum("src_port"),
            count("src_port"),
            sum("tcp_flags"),
            sum("service_port"),
            sum("end"),
            count("end"),
            sum("bytes"),
            times
        ]
    );
}
