#![allow(missing_docs, clippy::unwrap_used)]
//! Cold review of text dimensions written from their codes (`dict_chunk.rs`)
//! and of `bytes`/`packets` as DELTA_BINARY_PACKED: rows read back as
//! written, through parquet-rs (whole, by page through the offset index),
//! DataFusion (page pruning on `time`), DuckDB, a compaction's
//! read-and-rewrite, and the copy path (`append_reusing`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, RecordBatch, StringArray, TimestampSecondArray,
    UInt32Array, UInt64Array,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, UInt32Type, UInt64Type};
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use trawl_store::SegmentMeta;
use trawl_store::segment::{EncodedSource, read_segment, write_segment, write_segment_reusing};

use crate::common::python_stdout;

// ---------------------------------------------------------------- helpers

fn text() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8))
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
            false,
        ),
        Field::new("app", text(), true),
        Field::new("az", text(), true),
        Field::new("bytes", DataType::UInt64, true),
        Field::new("packets", DataType::UInt64, false),
    ]))
}

fn dict(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn dict_owned(values: impl IntoIterator<Item = String>) -> ArrayRef {
    Arc::new(values.into_iter().map(Some).collect::<StringArray>())
}

/// Keys (None: null, stored as `null_key`, which may be out of range).
fn coded(values: &ArrayRef, keys: &[Option<u32>], null_key: u32) -> ArrayRef {
    let raw: Vec<u32> = keys.iter().map(|k| k.unwrap_or(null_key)).collect();
    let nulls = NullBuffer::from(keys.iter().map(Option::is_some).collect::<Vec<_>>());
    let nulls = Some(nulls).filter(|n| n.null_count() > 0);
    let keys = UInt32Array::new(raw.into(), nulls);
    Arc::new(DictionaryArray::<UInt32Type>::try_new(keys, values.clone()).unwrap())
}

/// A batch: `time` from `times`, `app` and `az` coded, `bytes` and `packets`.
fn batch_of(
    times: Vec<i64>,
    app: ArrayRef,
    az: ArrayRef,
    bytes: Vec<Option<u64>>,
    packets: Vec<u64>,
) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(TimestampSecondArray::from(times).with_timezone("UTC")),
            app,
            az,
            Arc::new(UInt64Array::from(bytes)),
            Arc::new(UInt64Array::from(packets)),
        ],
    )
    .unwrap()
}

/// A simple batch: `app` from `keys` into `values`, `az` the same keys reversed.
fn batch(values: &ArrayRef, keys: &[Option<u32>], null_key: u32) -> RecordBatch {
    let n = keys.len();
    let reversed: Vec<Option<u32>> = keys.iter().rev().copied().collect();
    batch_of(
        (0..n as i64).map(|i| 3_600 + i % 3_600).collect(),
        coded(values, keys, null_key),
        coded(values, &reversed, null_key),
        (0..n as u64)
            .map(|i| (i % 11 != 0).then_some(i * 7))
            .collect(),
        (0..n as u64).map(|i| i / 3).collect(),
    )
}

/// Every column of `batches` as strings (None: null), column by column.
fn columns(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
    let names = ["app", "az", "bytes", "packets"];
    names
        .iter()
        .map(|name| {
            batches
                .iter()
                .flat_map(|b| {
                    let c = b.column_by_name(name).unwrap();
                    let c = arrow::compute::cast(c, &DataType::Utf8).unwrap();
                    let c = c.as_string::<i32>().clone();
                    (0..c.len())
                        .map(|i| c.is_valid(i).then(|| c.value(i).to_string()))
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .collect()
}

fn metadata(path: &Path) -> ParquetMetaData {
    let file = std::fs::File::open(path).unwrap();
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
    ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
        .unwrap()
        .metadata()
        .as_ref()
        .clone()
}

fn read(path: &Path, selection: Option<RowSelection>, batch_rows: usize) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
    let mut builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
        .unwrap()
        .with_batch_size(batch_rows);
    if let Some(selection) = selection {
        builder = builder.with_row_selection(selection);
    }
    builder.build().unwrap().collect::<Result<_, _>>().unwrap()
}

/// Whether text column `column` of every row group was written from codes
/// (dict_chunk's offset index has no unencoded byte sizes; the Arrow
/// writer's has).
fn from_codes(path: &Path, column: usize) -> bool {
    let metadata = metadata(path);
    metadata
        .offset_index()
        .unwrap()
        .iter()
        .all(|group| group[column].unencoded_byte_array_data_bytes.is_none())
}

/// DuckDB's reading of each file: columns app, az, bytes, packets as
/// strings, rows in file order.
fn duckdb_columns(paths: &[PathBuf]) -> Vec<Vec<Vec<Option<String>>>> {
    let script = r#"
import duckdb, json, sys
out = []
for path in sys.argv[1:]:
    rows = duckdb.execute(f"select app::varchar, az::varchar, bytes::varchar, packets::varchar from read_parquet('{path}', file_row_number=true) order by file_row_number").fetchall()
    out.append([[r[k] for r in rows] for k in range(4)])
print(json.dumps(out))
"#;
    let output = python_stdout(script, paths);
    serde_json::from_slice(&output).unwrap()
}

fn write(dir: &Path, name: &str, batches: &[RecordBatch]) -> PathBuf {
    let path = dir.join(name);
    write_segment(&path, batches).unwrap();
    path
}

// ---------------------------------------------------------------- checks

/// Slices at odd offsets (keys and null buffers), two dictionaries in one
/// row group (one with duplicate and empty strings), null keys whose value
/// is out of range, zero-row batches: parquet-rs and DuckDB read the rows
/// written, and the columns were written from codes.
#[test]
fn fine_slices_dictionaries_duplicates_and_out_of_range_null_keys() {
    let growing = dict(&["a", "", "b", "c", "a", ""]);
    let other = dict(&["c", "c", "", "zz", "b"]);
    let keys = |n: u32, m: u32| -> Vec<Option<u32>> {
        (0..n)
            .map(|i| (i % 5 != 2).then_some((i * 7 + i / 3) % m))
            .collect()
    };
    let batches = vec![
        batch(&growing, &keys(50, 6), u32::MAX).slice(3, 41),
        batch(&growing, &[], 0),
        batch(&other, &keys(37, 5), 1_000_000).slice(1, 35),
        batch(&growing, &keys(90, 6), 6).slice(13, 0),
        batch(&growing, &keys(90, 6), 77).slice(13, 60),
        batch(&other, &[None, None, None], u32::MAX),
        batch(&other, &keys(9, 5), 5).slice(8, 1),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "s.parquet", &batches);
    assert!(
        from_codes(&path, 1) && from_codes(&path, 2),
        "written from codes"
    );
    let expected = columns(&batches);
    assert_eq!(columns(&read(&path, None, 1024)), expected);
    assert_eq!(duckdb_columns(std::slice::from_ref(&path))[0], expected);
    // DuckDB's filters on a coded column (it may skip by the dictionary).
    let script = r#"
import duckdb, json, sys
q = lambda w: duckdb.execute(f"select count(*) from read_parquet('{sys.argv[1]}') where {w}").fetchone()[0]
print(json.dumps([q("app = ''"), q("app = 'zz'"), q("app is null"), q("app = 'a'"), q("az = 'nope'")]))
"#;
    let output = python_stdout(script, &[&path]);
    let counts: Vec<usize> = serde_json::from_slice(&output).unwrap();
    let count = |v: Option<&str>| expected[0].iter().filter(|s| s.as_deref() == v).count();
    assert_eq!(
        counts,
        vec![
            count(Some("")),
            count(Some("zz")),
            count(None),
            count(Some("a")),
            0
        ]
    );
}

/// Random selections over batches of several dictionaries with nulls,
/// across pages and row groups: the rows selected, whatever pages they
/// start in.
#[test]
fn fine_random_selections_across_pages() {
    let dictionaries = [
        dict_owned((0..3).map(|i| format!("d0-{i}"))),
        dict_owned((0..1_000).map(|i| format!("d1-{}", i % 400))),
        dict_owned((0..17).map(|i| format!("d0-{}", 16 - i))),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut batches = Vec::new();
    let mut total = 0;
    while total < 300_000 {
        let d = &dictionaries[next(3) as usize];
        let n = 1 + next(60_000) as u32;
        let run = 1 + next(50) as u32;
        let keys: Vec<Option<u32>> = (0..n)
            .map(|i| (next(10) != 0).then_some((i / run) % d.len() as u32))
            .collect();
        let skip = next(u64::from(n).min(100)) as usize;
        let b = batch(d, &keys, u32::MAX).slice(skip, n as usize - skip);
        total += b.num_rows();
        batches.push(b);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "r.parquet", &batches);
    assert!(from_codes(&path, 1));
    let all = columns(&batches);
    let mut selectors = Vec::new();
    let mut want: Vec<Vec<Option<String>>> = vec![Vec::new(); 4];
    let mut at = 0;
    while at < total {
        let skip = (next(30_000) as usize).min(total - at);
        let take = (1 + next(3_000) as usize).min(total - at - skip);
        selectors.push(RowSelector::skip(skip));
        selectors.push(RowSelector::select(take));
        for (k, column) in all.iter().enumerate() {
            want[k].extend_from_slice(&column[at + skip..at + skip + take]);
        }
        at += skip + take;
    }
    let got = columns(&read(&path, Some(RowSelection::from(selectors)), 5_000));
    assert_eq!(got, want);
}

/// Dictionaries of 1, 2, 2^k and 2^k+1 values (bit widths 1, 8/9,
/// 16/17), in runs and scattered: parquet-rs and DuckDB read them back.
#[test]
fn fine_bit_width_edges() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    let mut expected = Vec::new();
    for n in [1u32, 2, 3, 4, 5, 8, 9, 255, 256, 257, 65_536, 65_537] {
        let values = dict_owned((0..n).map(|i| format!("v{i}")));
        let rows = (n as usize).max(3_000);
        let keys: Vec<Option<u32>> = (0..rows as u32)
            .map(|i| {
                Some(match i % 100 {
                    0..=29 => n - 1,                          // runs of the largest index
                    30..=39 => i % n,                         // scattered
                    _ => (i.wrapping_mul(2_654_435_761)) % n, // every value somewhere
                })
            })
            .chain([Some(n - 1), Some(0)])
            .collect();
        // Every code appears (so the chunk dictionary has n values).
        let mut keys = keys;
        keys.extend((0..n).map(Some));
        let b = batch(&values, &keys, 0);
        let path = write(
            dir.path(),
            &format!("w{n}.parquet"),
            std::slice::from_ref(&b),
        );
        assert!(from_codes(&path, 1), "{n} values from codes");
        assert_eq!(
            columns(&read(&path, None, 4096)),
            columns(std::slice::from_ref(&b)),
            "{n} values"
        );
        paths.push(path);
        expected.push(columns(&[b]));
    }
    assert_eq!(duckdb_columns(&paths), expected);
}

/// Row counts at the page size (20,000) and around it, and a page of nulls
/// only between pages with values: pages of exactly 20,000 rows that the
/// offset index locates, and selections across page boundaries read the
/// right rows.
#[test]
fn fine_pages_at_and_around_20480_rows() {
    let values = dict_owned((0..300).map(|i| format!("s{i}")));
    let dir = tempfile::tempdir().unwrap();
    for rows in [20_480usize, 20_481, 40_959, 40_960, 61_441] {
        let keys: Vec<Option<u32>> = (0..rows as u32)
            .map(|i| (!(20_480..40_960).contains(&i)).then_some(i * 13 % 300))
            .collect();
        let b = batch(&values, &keys, u32::MAX);
        let path = write(
            dir.path(),
            &format!("p{rows}.parquet"),
            std::slice::from_ref(&b),
        );
        assert!(from_codes(&path, 1));
        let metadata = metadata(&path);
        let pages = &metadata.offset_index().unwrap()[0][1].page_locations;
        let firsts: Vec<i64> = pages.iter().map(|p| p.first_row_index).collect();
        let expected_firsts: Vec<i64> = (0..rows).step_by(20_480).map(|r| r as i64).collect();
        assert_eq!(firsts, expected_firsts, "{rows} rows");
        let all = columns(&[b]);
        assert_eq!(columns(&read(&path, None, 8192)), all);
        // Around each boundary: the last row of a page, the first of the next.
        let mut selectors = Vec::new();
        let mut at = 0;
        let mut want: Vec<Vec<Option<String>>> = vec![Vec::new(); 4];
        for boundary in (20_480..rows).step_by(20_480) {
            selectors.push(RowSelector::skip(boundary - 1 - at));
            selectors.push(RowSelector::select(2));
            for (k, column) in all.iter().enumerate() {
                want[k].extend_from_slice(&column[boundary - 1..boundary + 1]);
            }
            at = boundary + 1;
        }
        selectors.push(RowSelector::skip(rows - at));
        let got = columns(&read(&path, Some(RowSelection::from(selectors)), 8192));
        assert_eq!(got, want, "{rows} rows by page");
    }
}

/// A dictionary page of exactly 1 MiB is written from codes; one byte more
/// goes to the Arrow writer (also when a later batch pushes a row group's
/// dictionary over); every variant reads back.
#[test]
fn fine_dictionary_limit_boundary() {
    // 16 values of 4 + 65,532 bytes: exactly 1,048,576 bytes.
    let exact = dict_owned((0..16).map(|i| format!("{i:02}{}", "x".repeat(65_530))));
    let over =
        dict_owned((0..16).map(|i| format!("{i:02}{}", "y".repeat(65_530 + usize::from(i == 0)))));
    let keys: Vec<Option<u32>> = (0..64).map(|i| (i % 9 != 0).then_some(i % 16)).collect();
    let dir = tempfile::tempdir().unwrap();
    let exact_batch = batch(&exact, &keys, 0);
    let path = write(
        dir.path(),
        "exact.parquet",
        std::slice::from_ref(&exact_batch),
    );
    assert!(from_codes(&path, 1), "1 MiB from codes");
    assert_eq!(
        columns(&read(&path, None, 1024)),
        columns(std::slice::from_ref(&exact_batch))
    );
    let over_batch = batch(&over, &keys, 0);
    let path = write(
        dir.path(),
        "over.parquet",
        std::slice::from_ref(&over_batch),
    );
    assert!(!from_codes(&path, 1), "1 MiB + 1 by the Arrow writer");
    assert_eq!(
        columns(&read(&path, None, 1024)),
        columns(std::slice::from_ref(&over_batch))
    );
    let both = [exact_batch.slice(0, 10), over_batch.slice(5, 20)];
    let path = write(dir.path(), "both.parquet", &both);
    assert!(!from_codes(&path, 1));
    assert_eq!(columns(&read(&path, None, 1024)), columns(&both));
}

/// `bytes` and `packets` are DELTA_BINARY_PACKED: values across the whole
/// u64 range (above i64::MAX, wrapping deltas), nulls, a page of nulls
/// only, read whole, by selections inside pages, and by DuckDB.
#[test]
fn fine_delta_measures_over_the_whole_u64_range() {
    let rows = 45_000usize;
    let special = [
        u64::MAX,
        0,
        i64::MAX as u64,
        i64::MAX as u64 + 1,
        1,
        u64::MAX - 1,
    ];
    let bytes: Vec<Option<u64>> = (0..rows)
        .map(|i| {
            // A page of nulls only, and a null every 17th row elsewhere.
            let null = (20_480..40_960).contains(&i) || i % 17 == 0;
            (!null).then(|| special[i % special.len()].wrapping_add((i as u64) << 40))
        })
        .collect();
    let packets: Vec<u64> = (0..rows as u64)
        .map(|i| if i % 2 == 0 { u64::MAX - i } else { i })
        .collect();
    let values = dict(&["a", "b"]);
    let keys: Vec<Option<u32>> = (0..rows as u32).map(|i| Some(i % 2)).collect();
    let b = batch_of(
        vec![3_600; rows],
        coded(&values, &keys, 0),
        coded(&values, &keys, 0),
        bytes,
        packets,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "delta.parquet", std::slice::from_ref(&b));
    let metadata = metadata(&path);
    for column in [3, 4] {
        let chunk = metadata.row_group(0).column(column);
        assert!(
            chunk
                .encodings()
                .any(|e| e == parquet::basic::Encoding::DELTA_BINARY_PACKED),
            "column {column} is DELTA_BINARY_PACKED"
        );
        assert!(chunk.dictionary_page_offset().is_none());
    }
    let all = columns(&[b]);
    assert_eq!(columns(&read(&path, None, 3_000)), all);
    let selection = RowSelection::from(vec![
        RowSelector::skip(129),
        RowSelector::select(3),
        RowSelector::skip(19_000),
        RowSelector::select(1_000),
        RowSelector::skip(24_000),
        RowSelector::select(500),
        RowSelector::skip(368),
    ]);
    let got = columns(&read(&path, Some(selection), 700));
    let take = |c: &Vec<Option<String>>| {
        let mut v = c[129..132].to_vec();
        v.extend_from_slice(&c[19_132..20_132]);
        v.extend_from_slice(&c[44_132..44_632]);
        v
    };
    assert_eq!(got, all.iter().map(take).collect::<Vec<_>>());
    assert_eq!(duckdb_columns(std::slice::from_ref(&path))[0], all);
}

/// A segment of several row groups read as a compaction reads it
/// (`read_segment`: batches of 64 Ki rows, across row groups and their
/// dictionaries) and written again holds the same rows.
#[test]
fn fine_compaction_read_and_rewrite() {
    let first = dict_owned((0..700).map(|i| format!("app-{i}")));
    let second = dict_owned((0..700).rev().map(|i| format!("app-{i}")));
    let keys = |n: u32, salt: u32| -> Vec<Option<u32>> {
        (0..n)
            .map(|i| (i % 13 != salt).then_some(i.wrapping_mul(40_503) % 700))
            .collect()
    };
    let batches = vec![
        batch(&first, &keys(200_000, 1), u32::MAX).slice(7, 199_000),
        batch(&second, &keys(150_000, 5), 3),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.parquet", &batches);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let meta = SegmentMeta {
        id: 1,
        table: "t".into(),
        chunk_start: 3_600,
        file: "a.parquet".into(),
        rows: rows as u64,
        bytes: std::fs::metadata(&path).unwrap().len(),
        time_min: 3_600,
        time_max: 7_199,
        sealed_in: None,
    };
    let read_back = read_segment(&path, &meta).unwrap();
    let again = write(dir.path(), "b.parquet", &read_back);
    assert!(from_codes(&again, 1) && from_codes(&again, 2));
    assert_eq!(metadata(&again).num_row_groups(), 2);
    assert_eq!(columns(&read(&again, None, 10_000)), columns(&batches));
}

/// The copy path: a derived segment copies the coded chunks of a source
/// written from codes; parquet-rs (whole and by page) and DuckDB read the
/// derived rows.
#[test]
fn fine_copied_coded_chunks_read_back() {
    let values = dict_owned((0..50).map(|i| format!("svc-{i}")));
    let keys: Vec<Option<u32>> = (0..30_000u32)
        .map(|i| (i % 6 != 0).then_some(i / 7 % 50))
        .collect();
    let source_batch = batch(&values, &keys, u32::MAX).slice(11, 29_000);
    let dir = tempfile::tempdir().unwrap();
    let source_path = dir.path().join("source.parquet");
    let written =
        write_segment_reusing(&source_path, std::slice::from_ref(&source_batch), &[]).unwrap();
    // The derived batch: the same arrays, `time` floored to the hour.
    let mut derived_columns = source_batch.columns().to_vec();
    derived_columns[0] = Arc::new(
        TimestampSecondArray::from(vec![3_600i64; source_batch.num_rows()]).with_timezone("UTC"),
    );
    let derived = RecordBatch::try_new(schema(), derived_columns).unwrap();
    let own = batch(&values, &keys[..100], 0);
    let sources = [
        None,
        Some(EncodedSource {
            path: &source_path,
            schema: source_batch.schema_ref(),
            metadata: &written.metadata,
        }),
    ];
    let path = dir.path().join("derived.parquet");
    write_segment_reusing(&path, &[own.clone(), derived.clone()], &sources).unwrap();
    assert!(from_codes(&path, 1));
    let expected = columns(&[own, derived]);
    assert_eq!(columns(&read(&path, None, 4096)), expected);
    let selection = RowSelection::from(vec![
        RowSelector::skip(100 + 19_990),
        RowSelector::select(20),
        RowSelector::skip(29_000 - 20_010),
    ]);
    let got = columns(&read(&path, Some(selection), 4096));
    let want: Vec<Vec<Option<String>>> = expected
        .iter()
        .map(|c| c[20_090..20_110].to_vec())
        .collect();
    assert_eq!(got, want);
    assert_eq!(duckdb_columns(std::slice::from_ref(&path))[0], expected);
}

/// DataFusion over a coded file, with filters on `time` (page pruning by
/// its column index; the text columns' pages are then skipped through
/// their offset index) and on a text dimension, filters pushed into the
/// scan or not: the same counts as the rows.
#[test]
fn fine_datafusion_page_pruning_with_text_filters() {
    let values = dict_owned((0..40).map(|i| format!("app-{i}")));
    let rows = 100_000usize;
    let keys: Vec<Option<u32>> = (0..rows as u32)
        .map(|i| (i % 9 != 4).then_some((i / 3 + i % 5) % 40))
        .collect();
    let reversed: Vec<Option<u32>> = keys.iter().rev().copied().collect();
    let b = batch_of(
        (0..rows as i64)
            .map(|i| 3_600 + i * 3_600 / rows as i64)
            .collect(),
        coded(&values, &keys, u32::MAX),
        coded(&values, &reversed, 0),
        (0..rows as u64).map(Some).collect(),
        vec![1; rows],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "df.parquet", std::slice::from_ref(&b));
    let (lo, hi) = (3_600 + 1_000, 3_600 + 1_900);
    let times = b
        .column(0)
        .as_primitive::<arrow::datatypes::TimestampSecondType>();
    let app = b.column(1).as_dictionary::<UInt32Type>();
    let app_values = app.values().as_string::<i32>();
    let mut expected = 0i64;
    let mut expected_bytes = 0u64;
    for i in 0..rows {
        let t = times.value(i);
        if (lo..hi).contains(&t)
            && app.is_valid(i)
            && app_values.value(app.keys().value(i) as usize) == "app-7"
        {
            expected += 1;
            expected_bytes += i as u64;
        }
    }
    assert!(expected > 0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for pushdown in [false, true] {
        let mut config = datafusion::prelude::SessionConfig::new().with_target_partitions(2);
        config.options_mut().execution.parquet.pushdown_filters = pushdown;
        config.options_mut().execution.parquet.reorder_filters = pushdown;
        let ctx = datafusion::prelude::SessionContext::new_with_config(config);
        let answer = runtime.block_on(async {
            ctx.register_parquet("t", path.to_str().unwrap(), Default::default())
                .await
                .unwrap();
            let sql = format!(
                "select count(*), sum(bytes) from t where time >= to_timestamp_seconds({lo}) and time < to_timestamp_seconds({hi}) and app = 'app-7'"
            );
            let plan = ctx.sql(&format!("explain analyze {sql}")).await.unwrap();
            let plan = plan.collect().await.unwrap();
            let plan = arrow::util::pretty::pretty_format_batches(&plan).unwrap().to_string();
            // The time filter pruned pages (5 pages of `time`, 2 read).
            assert!(plan.contains("page_index_pages_pruned=5 total → 2 matched"), "{plan}");
            ctx.sql(&sql).await.unwrap().collect().await.unwrap()
        });
        let count = answer[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
        let sum = answer[0].column(1).as_primitive::<UInt64Type>().value(0);
        assert_eq!(
            (count, sum),
            (expected, expected_bytes),
            "pushdown {pushdown}"
        );
    }
}
