//! Criterion bench of writing a segment file: a `flows_1m`-shaped row
//! group (12 text dimensions, an integer one, three measures) of
//! high-cardinality rows, its text columns encoded from their codes
//! (`dict_chunk.rs`, `UInt32` keys as the store writes them) against the
//! same columns through the Parquet crate's Arrow writer (`Int32` keys,
//! which that encoder leaves to it): the same file either way. And the
//! `flows` detail table's integer columns as the high-cardinality estate
//! has them (random ports, a few TCP flag values, times, counters), whose
//! encodings `segment.rs` chooses by column type.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, DictionaryArray, Int32Array, PrimitiveArray, RecordBatch, StringArray,
    TimestampSecondArray, UInt64Array,
};
use arrow::datatypes::{
    ArrowDictionaryKeyType, DataType, Field, Int32Type, Schema, TimeUnit, UInt32Type,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trawl_store::segment::write_segment;

const ROWS: usize = 262_144;
const TEXT_COLUMNS: usize = 12;

/// A row group of `ROWS` rows whose text columns have keys of type `K`.
fn rows<K: ArrowDictionaryKeyType>() -> RecordBatch
where
    K::Native: TryFrom<usize>,
{
    let cardinality = [3_000, 3_000, 200, 200, 40, 40, 30, 30, 6, 6, 5, 5];
    let mut fields = vec![Field::new(
        "time",
        DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
        false,
    )];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(
        TimestampSecondArray::from_iter_values((0..ROWS).map(|i| 3_600 + (i as i64 % 60) * 60))
            .with_timezone("UTC"),
    )];
    for (c, values) in cardinality.iter().enumerate().take(TEXT_COLUMNS) {
        let dictionary: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..*values).map(|v| format!("column-{c}-value-{v:05}")),
        ));
        let keys: PrimitiveArray<K> = (0..ROWS)
            .map(|i| {
                let key = i.wrapping_mul(2_654_435_761 + c) % values;
                K::Native::try_from(key).ok()
            })
            .collect();
        let array = DictionaryArray::<K>::try_new(keys, dictionary).expect("dictionary");
        fields.push(Field::new(
            format!("text_{c}"),
            array.data_type().clone(),
            true,
        ));
        columns.push(Arc::new(array));
    }
    fields.push(Field::new("service_port", DataType::Int32, true));
    columns.push(Arc::new(Int32Array::from_iter_values(
        (0..ROWS).map(|i| (i % 1_000) as i32),
    )));
    for measure in ["bytes", "packets", "flows"] {
        fields.push(Field::new(measure, DataType::UInt64, false));
        columns.push(Arc::new(UInt64Array::from_iter_values(
            (0..ROWS as u64).map(|i| i * 7 % 90_001),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
}

/// A row group of the detail table's integer columns, high-cardinality.
fn detail_integers() -> RecordBatch {
    let spread = |i: usize, salt: usize| i.wrapping_mul(2_654_435_761 + salt) >> 7;
    let int32 = |name: &str, values: &dyn Fn(usize) -> i32| -> (Field, ArrayRef) {
        let array = Int32Array::from_iter_values((0..ROWS).map(values));
        (Field::new(name, DataType::Int32, true), Arc::new(array))
    };
    let uint64 = |name: &str, values: &dyn Fn(usize) -> u64| -> (Field, ArrayRef) {
        let array = UInt64Array::from_iter_values((0..ROWS).map(values));
        (Field::new(name, DataType::UInt64, true), Arc::new(array))
    };
    let (fields, columns): (Vec<Field>, Vec<ArrayRef>) = [
        int32("version", &|_| 5),
        int32("src_port", &|i| 1_024 + (spread(i, 1) % 64_000) as i32),
        int32("dst_port", &|i| 1_024 + (spread(i, 2) % 64_000) as i32),
        int32("protocol", &|_| 6),
        uint64("packets", &|i| 1 + (spread(i, 3) % 300) as u64),
        uint64("bytes", &|i| 40 + (spread(i, 4) % 1_500_000) as u64),
        uint64("start", &|i| 1_800_000_000 + i as u64 / 2_600),
        uint64("end", &|i| {
            1_800_000_000 + i as u64 / 2_600 + (spread(i, 5) % 60) as u64
        }),
        int32("tcp_flags", &|i| [2, 18, 19][spread(i, 6) % 3]),
        int32("traffic_path", &|i| 1 + (spread(i, 7) % 5) as i32),
        int32("service_port", &|i| (spread(i, 8) % 32_000) as i32),
    ]
    .into_iter()
    .unzip();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
}

fn bench_write(c: &mut Criterion) {
    let mut group = c.benchmark_group("segment_write");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("segment.parquet");
    for (name, batch) in [
        ("text_from_codes", rows::<UInt32Type>()),
        ("text_through_arrow_writer", rows::<Int32Type>()),
        ("detail_integers", detail_integers()),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| write_segment(&path, std::slice::from_ref(&batch)).expect("write"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_write);
criterion_main!(benches);
