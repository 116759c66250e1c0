//! Criterion benches of open rollup rows: adding flows to a minute
//! (`RollupBucket::prefetch` then `add_hashed` a few adds later, as a
//! store shard adds them), with distinct keys (high-cardinality traffic,
//! every flow a new row, the table growing from empty) and with recurring
//! ones; and a seal's conversion of the rows into an Arrow batch
//! (`RollupBucket::to_checked_batch`), which reads as many rows as were
//! added.

use std::sync::Arc;

use arrow::array::StringArray;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trawl_flowlog::sample::SplitMix64;
use trawl_store::RollupSpec;
use trawl_store::dims::{DIM_COUNT, Dim, NULL_CODE};
use trawl_store::rollup::{Measures, RollupBucket, RollupLayout, RowKey};

/// Rows of the bucket: about one shard's minute of the high estate.
const ROWS: usize = 500_000;
/// Workloads (each with its own side codes).
const WORKLOADS: u32 = 4_000;
/// Texts in the dictionary the codes point into.
const TEXTS: u32 = 10_000;

/// Adds made before the one a flow's slot was prefetched for (as
/// `store/shard.rs` does).
const PREFETCH_AHEAD: usize = 16;

/// `ROWS` distinct keys of one minute (with measures) and their layout.
fn high_cardinality_keys() -> (RollupSpec, RollupLayout, Vec<(RowKey, Measures)>) {
    let spec = RollupSpec::minutely();
    let mut layout = RollupLayout::new(&spec.dims);
    let mut keys = Vec::with_capacity(ROWS);
    let mut rng = SplitMix64::new(11);
    for _ in 0..ROWS {
        let (src, dst) = (
            rng.next_u64() as u32 % WORKLOADS,
            rng.next_u64() as u32 % WORKLOADS,
        );
        let mut codes = [NULL_CODE; DIM_COUNT];
        for (side, workload) in [(0, src), (6, dst)] {
            // App, cluster, account, region, AZ, kind; a third have no cluster.
            let side_codes = [
                workload,
                workload % 3 * 7 + 1,
                100 + workload % 4,
                200 + workload % 3,
                210 + workload % 9,
                300,
            ];
            codes[side..side + 6].copy_from_slice(&side_codes);
            if workload % 3 == 0 {
                codes[side + 1] = NULL_CODE;
            }
        }
        codes[Dim::Protocol as usize] = 6;
        codes[Dim::ServicePort as usize] = (rng.next_u64() % 40_000) as u32;
        codes[Dim::Action as usize] = 400 + (rng.next_u64() % 2) as u32;
        codes[Dim::FlowDirection as usize] = 402 + (rng.next_u64() % 2) as u32;
        codes[Dim::CrossAz as usize] = (rng.next_u64() % 2) as u32;
        codes[Dim::CrossRegion as usize] = 0;
        let key = layout.key(1_790_000_040, Some([src, dst]), &codes);
        let bytes = rng.next_u64() % 100_000;
        let measures = Measures {
            bytes,
            packets: bytes / 500 + 1,
            flows: 1,
        };
        keys.push((key, measures));
    }
    (spec, layout, keys)
}

/// A bucket of `ROWS` distinct rows in one minute and its layout.
fn high_cardinality_minute() -> (RollupSpec, RollupLayout, RollupBucket) {
    let (spec, layout, keys) = high_cardinality_keys();
    (spec, layout, add_all(&keys))
}

/// A new bucket of `adds`, each slot prefetched `PREFETCH_AHEAD` adds
/// before its add.
fn add_all(adds: &[(RowKey, Measures)]) -> RollupBucket {
    let mut bucket = RollupBucket::default();
    let mut hashes = Vec::with_capacity(adds.len());
    for (i, (key, _)) in adds.iter().enumerate() {
        hashes.push(bucket.prefetch(key));
        if let Some(j) = i.checked_sub(PREFETCH_AHEAD) {
            bucket.add_hashed(hashes[j], &adds[j].0, adds[j].1);
        }
    }
    let pending = adds.len().saturating_sub(PREFETCH_AHEAD);
    for (j, (key, measures)) in adds.iter().enumerate().skip(pending) {
        bucket.add_hashed(hashes[j], key, *measures);
    }
    bucket
}

fn bench_add(c: &mut Criterion) {
    let (_, _, distinct) = high_cardinality_keys();
    // The same number of adds over 20,000 keys (a table that stays in
    // cache), and over half the keys, each added twice in scattered order
    // (a large table whose rows are found again).
    let recurring: Vec<(RowKey, Measures)> = (0..ROWS).map(|i| distinct[i % 20_000]).collect();
    let half = ROWS / 2;
    let twice: Vec<(RowKey, Measures)> = (0..ROWS).map(|i| distinct[i * 104_729 % half]).collect();
    let mut group = c.benchmark_group("rollup_add");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(20);
    let cases = [
        ("distinct_keys", &distinct),
        ("recurring_keys", &recurring),
        ("each_key_twice", &twice),
    ];
    for (name, adds) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                let bucket = add_all(adds);
                assert!(bucket.len() <= ROWS);
                bucket
            })
        });
    }
    group.finish();
}

fn bench_to_batch(c: &mut Criterion) {
    let (spec, layout, bucket) = high_cardinality_minute();
    let schema = spec.schema();
    let texts: Vec<String> = (0..TEXTS).map(|i| format!("text-{i}")).collect();
    let dictionary = Arc::new(StringArray::from(texts));
    let mut group = c.benchmark_group("rollup_to_batch");
    group.throughput(Throughput::Elements(bucket.len() as u64));
    group.sample_size(20);
    group.bench_function("high_cardinality_minute", |b| {
        b.iter(|| {
            bucket
                .to_checked_batch(&schema, &layout, &dictionary, spec.grain_secs)
                .expect("batch")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_add, bench_to_batch);
criterion_main!(benches);
