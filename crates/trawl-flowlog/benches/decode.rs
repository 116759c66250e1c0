//! Decoder throughput: default-format lines from memory (target: at least
//! 8 million lines per second on one core) and gzip files (MB/s of
//! compressed input).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flate2::Compression;
use flate2::write::GzEncoder;
use trawl_flowlog::sample::SampleLines;
use trawl_flowlog::{
    DecodeError, DecodeOptions, FlowRecord, LineDecoder, LogFormat, RecordSink, TextDecoder,
    decode_reader,
};

const LINES: usize = 200_000;

struct Sum(u64);

impl RecordSink for Sum {
    fn record(&mut self, record: &FlowRecord<'_>, _: &LogFormat) {
        self.0 = self.0.wrapping_add(record.bytes().unwrap_or(0));
    }
    fn error(&mut self, error: DecodeError) {
        panic!("sample lines must decode: {error}");
    }
}

fn sample_text() -> Vec<u8> {
    let mut lines = SampleLines::new(42);
    let mut out = Vec::with_capacity(LINES * 110);
    for _ in 0..LINES {
        lines.write_next(&mut out);
    }
    out
}

fn bench_lines(c: &mut Criterion) {
    let text = sample_text();
    let mut group = c.benchmark_group("decode_lines");
    group.throughput(Throughput::Elements(LINES as u64));
    group.bench_function("text_decoder_default_format", |b| {
        b.iter(|| {
            let mut decoder = TextDecoder::new("bench", &DecodeOptions::default());
            let mut sum = Sum(0);
            decoder.decode_chunk(black_box(&text), true, &mut sum);
            sum.0
        })
    });
    group.bench_function("line_decoder_only", |b| {
        let decoder = LineDecoder::default();
        let lines: Vec<&[u8]> = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        b.iter(|| {
            let mut record = FlowRecord::new();
            let mut sum = 0u64;
            for line in &lines {
                decoder.decode_into(black_box(line), &mut record).unwrap();
                sum = sum.wrapping_add(record.bytes().unwrap_or(0));
            }
            sum
        })
    });
    group.finish();
}

fn bench_gzip(c: &mut Criterion) {
    let text = sample_text();
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(&text).unwrap();
    let gz = encoder.finish().unwrap();
    let mut group = c.benchmark_group("decode_gzip");
    group.throughput(Throughput::Bytes(gz.len() as u64));
    group.bench_function("s3_log_gz_compressed_bytes", |b| {
        b.iter(|| {
            let mut decoder = TextDecoder::new("bench.log.gz", &DecodeOptions::default());
            let mut sum = Sum(0);
            decode_reader(black_box(gz.as_slice()), &mut decoder, &mut sum);
            sum.0
        })
    });
    group.finish();
    println!(
        "gzip sample: {} lines, {} text bytes, {} compressed bytes (ratio {:.1})",
        LINES,
        text.len(),
        gz.len(),
        text.len() as f64 / gz.len() as f64
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench_lines, bench_gzip
}
criterion_main!(benches);
