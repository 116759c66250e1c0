//! Attribution speed. An estate of 1 million IPs with 10 million ownership
//! intervals (heavy churn: every IP changes hands ten times a day among
//! 1,000 applications):
//! - `owner_at`: random (IP, time) lookups (target: 20 million per second on one core);
//! - `apply`: assignment events into an index (target: 2 million per second),
//!   and the same from JSON lines including parsing;
//! - memory: bytes per interval, printed once.
//!
//! `deep_history`: the same 10 million intervals over 100,000 IPs that
//! change hands every 15 minutes (100 marks an IP, kept on the heap), looked
//! up at random times of the day and at recent times (the last 15 minutes,
//! as live flows ask).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use trawl_attrib::{AttributionIndex, IndexConfig, MetadataEvent, Workload, read_json_lines};

const IPS: u32 = 1_000_000;
const CHANGES_PER_IP: u32 = 10;
const APPS: usize = 1000;
const DAY: i64 = 86_400;
const BASE: i64 = 1_795_305_600;

type Rng = trawl_flowlog::sample::SplitMix64;

fn workloads() -> Vec<Workload> {
    (0..APPS)
        .map(|i| Workload {
            app: Some(format!("app-{i:04}")),
            cluster: Some(format!("app-{i:04}-prod-v{:03}", i % 97)),
            account: Some(format!("{:012}", 100_000_000_000u64 + (i % 40) as u64)),
            region: Some(["us-east-1", "eu-west-1", "ap-south-1"][i % 3].into()),
            az: Some(format!("az{}", i % 9)),
            kind: Some(["instance", "pod"][i % 2].into()),
            labels: Default::default(),
        })
        .collect()
}

fn ip_of(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
}

/// Assignment `step` (of `changes` a day) of every IP in `ips`, in time order.
fn events(
    pool: &[Workload],
    rng: &mut Rng,
    ips: std::ops::Range<u32>,
    (step, changes): (u32, u32),
) -> Vec<MetadataEvent> {
    let slot = DAY / i64::from(changes);
    ips.map(|n| MetadataEvent::Assign {
        ip: ip_of(n),
        at: BASE + i64::from(step) * slot + (rng.next_u64() % slot as u64) as i64,
        workload: pool[(rng.next_u64() % APPS as u64) as usize].clone(),
        interface_id: None,
    })
    .collect()
}

/// Cumulative distribution of Zipf(`s`) over `n` ranks.
fn zipf_ranks(n: usize, s: f64) -> Vec<f64> {
    let weights: Vec<f64> = (1..=n).map(|k| 1.0 / (k as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut sum = 0.0;
    weights
        .iter()
        .map(|w| {
            sum += w / total;
            sum
        })
        .collect()
}

/// `ips` IPs, each changing hands `changes` times over a day.
fn churned_index(pool: &[Workload], ips: u32, changes: u32) -> AttributionIndex {
    let mut index = AttributionIndex::new(IndexConfig::default());
    let mut rng = Rng::new(7);
    for step in 0..changes {
        for chunk in (0..ips).step_by(250_000) {
            let chunk = chunk..(chunk + 250_000).min(ips);
            for event in events(pool, &mut rng, chunk, (step, changes)) {
                index.apply(&event).unwrap();
            }
        }
    }
    index
}

fn bench_owner_at(c: &mut Criterion) {
    let pool = workloads();
    let index = churned_index(&pool, IPS, CHANGES_PER_IP);
    let marks = index.mark_count();
    let bytes = index.memory_bytes();
    println!(
        "index: {} IPs, {marks} intervals, {:.1} MB, {:.1} bytes per interval",
        index.ip_count(),
        bytes as f64 / 1e6,
        bytes as f64 / marks as f64
    );
    let mut rng = Rng::new(11);
    let queries: Vec<(IpAddr, i64)> = (0..1_000_000)
        .map(|_| {
            (
                ip_of((rng.next_u64() % u64::from(IPS)) as u32),
                BASE + (rng.next_u64() % DAY as u64) as i64,
            )
        })
        .collect();
    let mut group = c.benchmark_group("owner_at");
    group.throughput(Throughput::Elements(queries.len() as u64));
    group.bench_function("1M_ips_10M_intervals_random", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for (ip, t) in &queries {
                sum = sum.wrapping_add(u64::from(index.owner_at(black_box(*ip), *t).owner));
            }
            sum
        })
    });
    // Flows are not uniform: a few talkers carry most of them. Zipf(1.0)
    // over the same 1M IPs, by inverse transform on a precomputed CDF.
    let zipf = zipf_ranks(IPS as usize, 1.0);
    let mut rng = Rng::new(13);
    let skewed: Vec<(IpAddr, i64)> = (0..1_000_000)
        .map(|_| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let rank = zipf.partition_point(|c| *c < u).min(IPS as usize - 1);
            let n = (rank as u64).wrapping_mul(2_654_435_761) % u64::from(IPS);
            (ip_of(n as u32), BASE + (rng.next_u64() % DAY as u64) as i64)
        })
        .collect();
    bench_batched(
        &mut group,
        "1M_ips_10M_intervals_zipf_batched",
        &index,
        &skewed,
    );
    // The same lookups confined to 20,000 IPs: what a lookup costs when the
    // working set is in cache (the CPU's share of the figures above).
    let hot: Vec<(IpAddr, i64)> = queries
        .iter()
        .map(|(ip, t)| match ip {
            IpAddr::V4(v4) => (ip_of(v4.to_bits() % 20_000), *t),
            IpAddr::V6(_) => (*ip, *t),
        })
        .collect();
    bench_batched(&mut group, "20k_hot_ips_batched", &index, &hot);
    bench_batched(
        &mut group,
        "1M_ips_10M_intervals_random_batched",
        &index,
        &queries,
    );
    group.finish();
}

/// Queries per `owner_at_many` call: both sides of a pipeline batch of
/// 1,024 flow records, as
/// the pipeline asks (the answers of one batch stay in cache).
const BATCH: usize = 2048;

/// `owner_at_many` over `queries` in batches of [`BATCH`], as the pipeline calls it.
fn bench_batched(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    index: &AttributionIndex,
    queries: &[(IpAddr, i64)],
) {
    group.bench_function(name, |b| {
        let mut out = Vec::with_capacity(BATCH);
        b.iter(|| {
            let mut sum = 0u64;
            for batch in queries.chunks(BATCH) {
                out.clear();
                index.owner_at_many(black_box(batch), &mut out);
                sum = out
                    .iter()
                    .fold(sum, |sum, a| sum.wrapping_add(u64::from(a.owner)));
            }
            sum
        })
    });
}

fn bench_apply(c: &mut Criterion) {
    let pool = workloads();
    let mut rng = Rng::new(3);
    let batch: Vec<MetadataEvent> = (0..CHANGES_PER_IP)
        .flat_map(|step| events(&pool, &mut rng, 0..100_000, (step, CHANGES_PER_IP)))
        .collect();
    let json: String = batch
        .iter()
        .map(|e| match e {
            MetadataEvent::Assign {
                ip, at, workload, ..
            } => format!(
                "{{\"type\":\"assign\",\"ip\":\"{ip}\",\"at\":{at},\"workload\":{}}}\n",
                serde_json::to_string(workload).unwrap()
            ),
            _ => unreachable!(),
        })
        .collect();
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.sample_size(10);
    group.bench_function("assign_events_100k_ips", |b| {
        b.iter_batched(
            AttributionIndex::default,
            |mut index| {
                for event in &batch {
                    index.apply(event).unwrap();
                }
                index
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("json_lines_parse_and_apply", |b| {
        b.iter_batched(
            AttributionIndex::default,
            |mut index| {
                read_json_lines(
                    json.as_bytes(),
                    "bench",
                    |e| index.apply(&e).unwrap(),
                    |e| panic!("{e}"),
                );
                index
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_deep_history(c: &mut Criterion) {
    const DEEP_IPS: u32 = 100_000;
    const RECENT_SECS: u64 = 900;
    let index = churned_index(&workloads(), DEEP_IPS, 100);
    let mut rng = Rng::new(17);
    let mut queries = |window: u64| -> Vec<(IpAddr, i64)> {
        (0..1_000_000)
            .map(|_| {
                let ip = ip_of((rng.next_u64() % u64::from(DEEP_IPS)) as u32);
                (ip, BASE + DAY - (rng.next_u64() % window) as i64 - 1)
            })
            .collect()
    };
    let (any_time, recent) = (queries(DAY as u64), queries(RECENT_SECS));
    let mut group = c.benchmark_group("deep_history");
    group.throughput(Throughput::Elements(any_time.len() as u64));
    bench_batched(
        &mut group,
        "100k_ips_10M_intervals_any_time_batched",
        &index,
        &any_time,
    );
    bench_batched(
        &mut group,
        "100k_ips_10M_intervals_recent_batched",
        &index,
        &recent,
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench_owner_at, bench_deep_history, bench_apply
}
criterion_main!(benches);
