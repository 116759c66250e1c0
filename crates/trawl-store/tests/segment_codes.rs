//! Text dimensions written from their dictionary codes (`dict_chunk.rs`)
//! read back as the strings they stand for: through the Parquet crate's
//! reader (whole, and page by page through the offset index), through
//! DuckDB, and where the encoder hands the column to the Arrow writer
//! (a dictionary page too large, nulls only).

#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Int32Array, RecordBatch, StringArray,
    TimestampSecondArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, UInt32Type};
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::basic::Encoding;
use parquet::file::metadata::PageIndexPolicy;
use proptest::prelude::*;
use trawl_store::segment::write_segment;

use crate::common::python_stdout;

fn schema() -> SchemaRef {
    let text = DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8));
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
            false,
        ),
        Field::new("app", text.clone(), true),
        Field::new("port", DataType::Int32, true),
        Field::new("az", text, true),
        Field::new("bytes", DataType::UInt64, false),
    ]))
}

/// A batch whose `app` and `az` are `keys` into `dictionary` (None: null).
fn batch(dictionary: &Arc<StringArray>, keys: &[Option<u32>]) -> RecordBatch {
    let rows = keys.len();
    let text = |keys: UInt32Array| -> ArrayRef {
        Arc::new(
            DictionaryArray::<UInt32Type>::try_new(keys, dictionary.clone() as ArrayRef).unwrap(),
        )
    };
    let reversed: UInt32Array = keys.iter().rev().copied().collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(TimestampSecondArray::from(vec![3_600i64; rows]).with_timezone("UTC")),
            text(keys.iter().copied().collect()),
            Arc::new(Int32Array::from_iter((0..rows).map(|i| Some(i as i32 % 7)))),
            text(reversed),
            Arc::new(UInt64Array::from_iter_values(
                (0..rows as u64).map(|i| i * 3),
            )),
        ],
    )
    .unwrap()
}

/// The strings column `name` of `batches` stands for.
fn strings(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let column =
                arrow::compute::cast(b.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
            let column = column.as_string::<i32>().clone();
            (0..column.len())
                .map(|i| column.is_valid(i).then(|| column.value(i).to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn read_back(path: &Path, selection: Option<RowSelection>) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
    let mut builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).unwrap();
    if let Some(selection) = selection {
        builder = builder.with_row_selection(selection);
    }
    builder.build().unwrap().collect::<Result<_, _>>().unwrap()
}

/// Writes `batches`, reads them back, and checks every column holds the
/// values written.
fn round_trip(batches: &[RecordBatch]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.parquet");
    write_segment(&path, batches).unwrap();
    let back = read_back(&path, None);
    for name in ["app", "az"] {
        assert_eq!(
            strings(&back, name),
            strings(batches, name),
            "column {name}"
        );
    }
    let sum = |b: &[RecordBatch], name: &str| -> u64 {
        b.iter()
            .map(|b| {
                arrow::compute::sum(
                    b.column_by_name(name)
                        .unwrap()
                        .as_primitive::<arrow::datatypes::UInt64Type>(),
                )
                .unwrap_or(0)
            })
            .sum()
    };
    assert_eq!(sum(&back, "bytes"), sum(batches, "bytes"));
}

fn dictionary(values: impl IntoIterator<Item = String>) -> Arc<StringArray> {
    Arc::new(values.into_iter().map(Some).collect::<StringArray>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Batches over several dictionaries (a growing one, as the store's,
    /// and an unrelated one naming the same strings under other codes),
    /// sliced, with nulls, read back as the strings written.
    #[test]
    fn codes_read_back_as_their_strings(
        parts in proptest::collection::vec(
            (0usize..3, proptest::collection::vec(proptest::option::weighted(0.9, 0u32..40), 1..300), 0usize..20),
            1..6,
        ),
    ) {
        let names: Vec<String> = (0..40).map(|i| format!("app-{i}")).collect();
        let dictionaries = [
            dictionary(names[..20].iter().cloned()),
            dictionary(names.iter().cloned()),
            dictionary(names.iter().rev().cloned()),
        ];
        let batches: Vec<RecordBatch> = parts
            .iter()
            .map(|(d, keys, skip)| {
                let len = dictionaries[*d].len() as u32;
                let keys: Vec<Option<u32>> = keys.iter().map(|k| k.map(|k| k % len)).collect();
                let whole = batch(&dictionaries[*d], &keys);
                let skip = (*skip).min(whole.num_rows() - 1);
                whole.slice(skip, whole.num_rows() - skip)
            })
            .collect();
        round_trip(&batches);
    }
}

/// Rows over several row groups and pages: 600,000 rows, 5,000 values in
/// runs and scattered, a null every 7th row.
fn large_batches() -> Vec<RecordBatch> {
    let dict = dictionary((0..5_000).map(|i| format!("service-{i:05}-{}", "x".repeat(i % 13))));
    (0..3)
        .map(|part| {
            let keys: Vec<Option<u32>> = (0..200_000u32)
                .map(|i| {
                    let row = part * 200_000 + i;
                    (row % 7 != 0).then(|| {
                        if row % 1000 < 300 {
                            42
                        } else {
                            row.wrapping_mul(2_654_435_761) % 5_000
                        }
                    })
                })
                .collect();
            batch(&dict, &keys)
        })
        .collect()
}

#[test]
fn many_pages_and_row_groups_read_back_whole_and_by_page() {
    let batches = large_batches();
    round_trip(&batches);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.parquet");
    write_segment(&path, &batches).unwrap();
    // The text columns are dictionary-coded, in pages of at most 20,480
    // rows that the offset index locates.
    let file = std::fs::File::open(&path).unwrap();
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).unwrap();
    let metadata = builder.metadata().clone();
    assert_eq!(metadata.num_row_groups(), 3);
    let app = metadata.row_group(0).column(1);
    assert!(app.dictionary_page_offset().is_some());
    assert!(app.encodings().any(|e| e == Encoding::RLE_DICTIONARY));
    let pages = &metadata.offset_index().unwrap()[0][1].page_locations;
    assert_eq!(pages.len(), 262_144usize.div_ceil(20_480));
    assert!(
        pages
            .windows(2)
            .all(|w| w[1].first_row_index - w[0].first_row_index == 20_480)
    );

    // A selection that skips whole pages reads only the pages it needs,
    // located by the offset index: the rows must still be the right ones.
    let selection = RowSelection::from(vec![
        RowSelector::skip(45_000),
        RowSelector::select(10),
        RowSelector::skip(300_000),
        RowSelector::select(25_000),
    ]);
    let back = read_back(&path, Some(selection));
    let all = strings(&batches, "app");
    let mut expected = all[45_000..45_010].to_vec();
    expected.extend_from_slice(&all[345_010..370_010]);
    assert_eq!(strings(&back, "app"), expected);
}

/// DuckDB, a reader trawl does not share code with, counts the same rows
/// per value as the batches hold.
#[test]
fn duckdb_reads_the_coded_columns() {
    let batches = large_batches();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.parquet");
    write_segment(&path, &batches).unwrap();
    let script = r#"
import duckdb, json, sys
rows = duckdb.execute(f"select coalesce(app, '(null)'), count(*) from read_parquet('{sys.argv[1]}') group by 1").fetchall()
print(json.dumps(dict(rows)))
"#;
    let output = python_stdout(script, &[&path]);
    let answer: BTreeMap<String, u64> = serde_json::from_slice(&output).unwrap();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for value in strings(&batches, "app") {
        *expected
            .entry(value.unwrap_or_else(|| "(null)".into()))
            .or_default() += 1;
    }
    assert_eq!(answer, expected);
}

/// Columns the encoder leaves to the Arrow writer still round-trip: a
/// dictionary page above 1 MiB, and a column of nulls only.
#[test]
fn columns_left_to_the_arrow_writer_round_trip() {
    let wide = dictionary((0..3_000).map(|i| format!("{i}-{}", "w".repeat(500))));
    let keys: Vec<Option<u32>> = (0..30_000).map(|i| Some(i % 3_000)).collect();
    round_trip(&[batch(&wide, &keys)]);
    let small = dictionary(["a".to_string()]);
    round_trip(&[batch(&small, &vec![None; 1_000])]);
}
