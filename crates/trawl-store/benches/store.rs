//! Criterion benches of the store's hot path: adding attributed flows to the
//! 1-minute rollup (target: 5 M flows/s on one core), with the default
//! rollups (`flows_1h` and `flows_1d` derived from `flows_1m`), and the cost
//! of deriving a coarser table's open rows when a query reads them; the
//! detail table `flows`: adding to it, and sealing it into Parquet.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trawl_store::{DetailSpec, RollupSpec, Store, StoreConfig};

mod synth;

const BATCH: usize = 4096;
const FLOWS: usize = 400_000;

fn config(dir: &std::path::Path, rollups: Vec<RollupSpec>) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    config.rollups = rollups;
    config.detail = DetailSpec {
        enabled: false,
        ..DetailSpec::default()
    };
    config.open_bytes_max = usize::MAX;
    config
}

fn bench_add(c: &mut Criterion) {
    let mut day = synth::Day::new(7);
    // 400 k flows over 10 minutes: ~ the rate of a 100 M flows/day estate.
    let flows: Vec<_> = (0..FLOWS)
        .map(|i| day.flow(1_790_000_000 + (i as u32 * 600 / FLOWS as u32)))
        .collect();
    let enriched: Vec<_> = flows.iter().map(synth::Generated::enriched).collect();
    let mut group = c.benchmark_group("store_add");
    group.throughput(Throughput::Elements(FLOWS as u64));
    group.sample_size(20);
    for (name, rollups) in [
        ("flows_1m", vec![RollupSpec::minutely()]),
        (
            "default_rollups",
            vec![
                RollupSpec::minutely(),
                RollupSpec::hourly(),
                RollupSpec::daily(),
            ],
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(config(dir.path(), rollups)).expect("open");
        group.bench_function(name, |b| {
            b.iter(|| {
                for batch in enriched.chunks(BATCH) {
                    store.add_batch(batch, &day.workloads, &[]).expect("add");
                }
            })
        });
        eprintln!(
            "{name}: {} open rollup rows for {FLOWS} flows",
            store.open_rows()
        );
        if name == "default_rollups" {
            // Filled here too, for runs that filter out the adding benches.
            for batch in enriched.chunks(BATCH) {
                store.add_batch(batch, &day.workloads, &[]).expect("add");
            }
            group.bench_function("derive_open_flows_1h", |b| {
                b.iter(|| store.open_batches("flows_1h", 0, u32::MAX).expect("open"))
            });
        }
    }
    group.finish();
}

fn generated_flows(flows: usize) -> (synth::Day, Vec<synth::Generated>) {
    let mut day = synth::Day::new(7);
    let generated = (0..flows)
        .map(|i| day.flow(1_790_000_000 + (i as u32 * 600 / flows as u32)))
        .collect();
    (day, generated)
}

/// A store with the detail table and the default rollups, holding `flows`.
fn detail_store(
    dir: &std::path::Path,
    day: &synth::Day,
    enriched: &[trawl_store::EnrichedFlow<'_, 'static>],
) -> Store {
    let mut config = config(dir, StoreConfig::new(dir).rollups);
    config.detail = DetailSpec::default();
    let store = Store::open(config).expect("open");
    for batch in enriched.chunks(BATCH) {
        store.add_batch(batch, &day.workloads, &[]).expect("add");
    }
    store
}

fn bench_detail(c: &mut Criterion) {
    let (day, flows) = generated_flows(FLOWS);
    let enriched: Vec<_> = flows.iter().map(synth::Generated::enriched).collect();
    let mut group = c.benchmark_group("store_detail");
    group.throughput(Throughput::Elements(FLOWS as u64));
    group.sample_size(10);
    let fresh = || tempfile::tempdir().expect("tempdir");
    group.bench_function("add_with_detail_and_default_rollups", |b| {
        b.iter_batched(
            fresh,
            |dir| detail_store(dir.path(), &day, &enriched),
            criterion::BatchSize::PerIteration,
        )
    });
    group.bench_function("seal_detail_and_default_rollups", |b| {
        b.iter_batched(
            || {
                let dir = fresh();
                let store = detail_store(dir.path(), &day, &enriched);
                (dir, store)
            },
            |(dir, mut store)| {
                store.seal().expect("seal");
                (dir, store)
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_add, bench_detail);
criterion_main!(benches);
