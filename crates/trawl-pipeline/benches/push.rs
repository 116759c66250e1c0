//! What the push log costs: pushes of 1,000 flow-log lines (the size of a
//! busy Firehose request) into a pipeline with the push log on (append,
//! group-committed fsync before the answer) and off, from one thread and
//! from four at once (concurrent HTTP requests share fsyncs). Reports
//! records/s for each; compare the ratios of one run.
//! Run: `cargo bench -p trawl-pipeline --bench push`.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trawl_attrib::AttributionIndex;
use trawl_pipeline::{Pipeline, PipelineConfig};
use trawl_store::{Store, StoreConfig};

const LINES: u64 = 1_000;

fn payload(seed: u64) -> Vec<u8> {
    let mut text = String::from(
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n",
    );
    for i in 0..LINES {
        let start = 1_795_305_600 + (seed * LINES + i) % 3_600;
        text.push_str(&format!(
            "2 123456789012 eni-{} 8.8.{}.{} 1.1.1.{} {} 443 6 3 {} {start} {} ACCEPT OK\n",
            i % 50,
            i % 200,
            i % 250,
            i % 100,
            40_000 + i % 20_000,
            100 + i,
            start + 60
        ));
    }
    text.into_bytes()
}

fn pipeline(dir: &std::path::Path, push_log: bool) -> Arc<Pipeline> {
    let store = Store::open(StoreConfig::new(dir)).expect("store");
    let config = PipelineConfig {
        push_log,
        hold_secs: 0,
        ..PipelineConfig::default()
    };
    Arc::new(Pipeline::start(config, store, AttributionIndex::default()).expect("pipeline"))
}

fn bench(c: &mut Criterion) {
    let payloads: Vec<Vec<u8>> = (0..16).map(payload).collect();
    let mut group = c.benchmark_group("push");
    group.sample_size(20);
    for threads in [1u64, 4] {
        group.throughput(Throughput::Elements(LINES * threads));
        for push_log in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let pipeline = pipeline(dir.path(), push_log);
            let name = format!(
                "{}x1000_lines_log_{}",
                threads,
                if push_log { "on" } else { "off" }
            );
            let mut round = 0usize;
            group.bench_function(name, |b| {
                b.iter(|| {
                    round += 1;
                    std::thread::scope(|scope| {
                        for t in 0..threads as usize {
                            let (pipeline, body) =
                                (&pipeline, &payloads[(round + t) % payloads.len()]);
                            scope.spawn(move || pipeline.push("bench", body).expect("push"));
                        }
                    });
                });
            });
            drop(pipeline);
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
