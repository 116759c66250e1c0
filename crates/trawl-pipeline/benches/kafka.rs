//! Kafka consumption bench (issue 15): a topic of gzip'd multi-line
//! messages (gzip'd files and CloudWatch Logs payloads, as CloudWatch and
//! Firehose deliver them) consumed into sealed segments, beside what the
//! broker itself serves; then a burst of 10x the steady rate, with the lag
//! and the memory sampled while it grows and drains.
//!
//! The broker is noida-db and the producer Python's confluent-kafka, from
//! the tests' environment (`.ci/test-deps`; `TRAWL_TEST_VENV` overrides):
//! without it the bench says so and stops. Reported:
//! - `broker`: a bare rdkafka consumer reading every message (no decode):
//!   messages/s, MB/s, and the flows/s they carry;
//! - `trawl`: `KafkaSource` into a store (detail on, as by default) until
//!   every flow is added, then a seal: flows/s, cores used (user + system
//!   CPU over wall), and their ratio to the broker's;
//! - `burst`: steady `R` messages/s, `10 R` for a few seconds, `R` again:
//!   every half second the records behind (sum of `trawl_kafka_lag_records`),
//!   flows added, RSS; the largest lag, the time it took to drain, peak RSS.
//!
//! Medians of `TRAWL_KAFKA_RUNS` runs (default 3) over `TRAWL_KAFKA_FLOWS`
//! flows (default 1 M, 500 a message). Run: `cargo bench -p trawl-pipeline
//! --bench kafka`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use trawl_attrib::AttributionIndex;
use trawl_pipeline::{Container, KafkaSourceConfig, Pipeline, PipelineConfig};
use trawl_store::{Store, StoreConfig};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn venv() -> PathBuf {
    std::env::var_os("TRAWL_TEST_VENV").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-deps/venv"),
        PathBuf::from,
    )
}

fn python(args: &[&str]) -> String {
    let output = Command::new(venv().join("bin/python"))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("python");
    assert!(output.status.success(), "python {args:?} failed");
    String::from_utf8(output.stdout).expect("utf-8")
}

fn produce_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../trawl/tests/kafka/produce.py")
        .display()
        .to_string()
}

/// noida-db on a free port, killed when dropped.
struct Broker {
    child: Child,
    brokers: String,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    fn start() -> Broker {
        let binary = python(&[
            "-c",
            "import importlib.resources as r; print(r.files('noida_db').joinpath('noida-db'))",
        ]);
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new(binary.trim())
            .args([
                "start",
                "--only",
                "kafka",
                "--kafka-port",
                &port.to_string(),
            ])
            .args(["--host", "127.0.0.1", "--data-dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("noida-db");
        let brokers = format!("127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "no broker");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        Broker {
            child,
            brokers,
            _dir: dir,
        }
    }

    fn create(&self, topic: &str, partitions: u32) {
        python(&[
            &produce_script(),
            "create",
            &self.brokers,
            topic,
            &partitions.to_string(),
        ]);
    }
}

fn rss_mib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// User plus system CPU time of this process so far (seconds).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Reads every message of `topic` (`messages` of them) with a bare
/// consumer; returns (seconds, payload bytes).
fn broker_read(brokers: &str, topic: &str, group: &str, messages: u64) -> (f64, u64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let started = Instant::now();
    let (mut read, mut bytes) = (0u64, 0u64);
    while read < messages {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            read += 1;
            bytes += message.payload().map_or(0, |p| p.len() as u64);
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "broker read stalled"
        );
    }
    (started.elapsed().as_secs_f64(), bytes)
}

/// A pipeline over a fresh store reading `topic`. No metadata: nothing is
/// held back (`hold_secs = 0`), as when a metadata topic vouches for
/// every flow's time.
fn pipeline(data: &Path, brokers: &str, topic: &str, group: &str) -> Pipeline {
    let store = Store::open(StoreConfig::new(data)).expect("store");
    let workers = env_u64("TRAWL_KAFKA_WORKERS", 0) as usize;
    let defaults = PipelineConfig::default();
    let config = PipelineConfig {
        hold_secs: 0,
        workers: if workers == 0 {
            defaults.workers
        } else {
            workers
        },
        ..defaults
    };
    let pipeline = Pipeline::start(config, store, AttributionIndex::default()).expect("pipeline");
    pipeline
        .add_kafka(KafkaSourceConfig {
            brokers: brokers.to_string(),
            topics: vec![topic.to_string()],
            group: group.to_string(),
            container: Container::Auto,
            ..KafkaSourceConfig::default()
        })
        .expect("kafka source");
    pipeline
}

/// Consumes `flows` flows into a fresh store, then seals; (seconds, CPU seconds).
fn trawl_run(brokers: &str, topic: &str, group: &str, flows: u64) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (started, cpu) = (Instant::now(), cpu_secs());
    let pipeline = pipeline(dir.path(), brokers, topic, group);
    let mut first = None;
    let mut polled_at = None;
    let messages = flows.div_ceil(500);
    loop {
        let added = pipeline.stats().records.load(Ordering::Relaxed);
        if added > 0 && first.is_none() {
            first = Some(started.elapsed().as_secs_f64());
        }
        let polled = pipeline.stats().kafka.messages.load(Ordering::Relaxed);
        if polled >= messages && polled_at.is_none() {
            polled_at = Some(started.elapsed().as_secs_f64());
        }
        if added >= flows {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "trawl stalled"
        );
    }
    let added_at = started.elapsed().as_secs_f64();
    pipeline.seal().expect("seal");
    println!(
        "    first flow at {:.2} s, every message polled at {:.2} s, all added at {added_at:.2} s, sealed at {:.2} s",
        first.unwrap_or(0.0),
        polled_at.unwrap_or(added_at),
        started.elapsed().as_secs_f64()
    );
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu;
    pipeline.shutdown().expect("shutdown");
    (elapsed, cpu)
}

fn throughput(broker: &Broker) {
    let flows_total = env_u64("TRAWL_KAFKA_FLOWS", 1_000_000);
    let runs = env_u64("TRAWL_KAFKA_RUNS", 3).max(1);
    let lines = 500;
    let messages = flows_total.div_ceil(lines);
    broker.create("bench", 2);
    let produced = python(&[
        &produce_script(),
        "flows",
        &broker.brokers,
        "bench",
        "--messages",
        &messages.to_string(),
        "--lines",
        &lines.to_string(),
        "--kinds",
        "gzip,cloudwatch",
    ]);
    let totals: serde_json::Value = serde_json::from_str(produced.trim()).expect("totals");
    let flows = totals["records"].as_u64().expect("records");
    let mut broker_secs = Vec::new();
    let mut payload = 0;
    for run in 0..runs {
        let (secs, bytes) = broker_read(&broker.brokers, "bench", &format!("raw-{run}"), messages);
        broker_secs.push(secs);
        payload = bytes;
    }
    let broker_secs = median(broker_secs);
    println!(
        "broker: {messages} messages ({:.1} MB) in {broker_secs:.2} s: {:.0} messages/s, {:.1} MB/s, {:.2} M flows/s carried",
        payload as f64 / 1e6,
        messages as f64 / broker_secs,
        payload as f64 / 1e6 / broker_secs,
        flows as f64 / broker_secs / 1e6
    );
    let (mut secs, mut cores) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let (elapsed, cpu) = trawl_run(&broker.brokers, "bench", &format!("trawl-{run}"), flows);
        secs.push(elapsed);
        cores.push(cpu / elapsed);
        println!(
            "  trawl run {run}: {:.2} s, {:.2} M flows/s, {:.2} cores",
            elapsed,
            flows as f64 / elapsed / 1e6,
            cpu / elapsed
        );
    }
    let trawl_secs = median(secs);
    println!(
        "trawl: {flows} flows to sealed segments, median {trawl_secs:.2} s: {:.2} M flows/s, {:.2} cores; {:.2}x the broker's bare read time (peak RSS {} MiB)",
        flows as f64 / trawl_secs / 1e6,
        median(cores),
        trawl_secs / broker_secs,
        rss_mib("VmHWM:")
    );
}

/// Messages in `topic` (the sum of its partitions' high watermarks).
fn produced_messages(watcher: &BaseConsumer, topic: &str, partitions: i32) -> u64 {
    (0..partitions)
        .filter_map(|p| {
            watcher
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .ok()
        })
        .map(|(_, high)| u64::try_from(high).unwrap_or(0))
        .sum()
}

fn burst(broker: &Broker) {
    let rate = env_u64("TRAWL_KAFKA_BURST_RATE", 150);
    let lines = env_u64("TRAWL_KAFKA_BURST_LINES", 500);
    let watcher: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.brokers)
        .create()
        .expect("watcher");
    broker.create("burst", 2);
    let dir = tempfile::tempdir().expect("temp dir");
    let pipeline = pipeline(dir.path(), &broker.brokers, "burst", "burst");
    let producer = Command::new(venv().join("bin/python"))
        .args([&produce_script(), "burst", &broker.brokers, "burst"])
        .args([
            "--rate",
            &rate.to_string(),
            "--lines",
            "200",
            "--steady",
            "10",
            "--burst",
            "3",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("producer");
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut finished = None;
    let mut producer = Some(producer);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        // Behind: messages in the topic less those consumed (trawl's own
        // gauge comes from client statistics every 5 s: printed beside).
        let consumed = pipeline.stats().kafka.messages.load(Ordering::Relaxed);
        let lag = produced_messages(&watcher, "burst", 2).saturating_sub(consumed);
        let gauge: u64 = pipeline
            .stats()
            .kafka
            .lags()
            .iter()
            .map(|(_, r, _)| r)
            .sum();
        let added = pipeline.stats().records.load(Ordering::Relaxed);
        samples.push((
            started.elapsed().as_secs_f64(),
            lag,
            gauge,
            added,
            rss_mib("VmRSS:"),
        ));
        if let Some(child) = producer.as_mut()
            && child.try_wait().expect("producer").is_some()
        {
            let output = producer
                .take()
                .expect("producer")
                .wait_with_output()
                .expect("output");
            let totals: serde_json::Value = serde_json::from_slice(&output.stdout).expect("totals");
            finished = Some(totals);
        }
        if let Some(totals) = &finished
            && added >= totals["records"].as_u64().unwrap_or(u64::MAX)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "burst never drained"
        );
    }
    let totals = finished.expect("totals");
    pipeline.shutdown().expect("shutdown");
    println!(
        "burst: {rate} messages/s of {lines} flows, 10x for 3 s; t (s), messages behind, trawl_kafka_lag_records, flows added, RSS (MiB):"
    );
    for (t, lag, gauge, added, rss) in &samples {
        println!("  {t:6.1} {lag:8} {gauge:8} {added:10} {rss:6}");
    }
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let peak_at = samples.iter().find(|s| s.1 == peak).map_or(0.0, |s| s.0);
    let drained_at = samples
        .iter()
        .filter(|s| s.0 > peak_at && s.1 <= rate)
        .map(|s| s.0)
        .next();
    println!(
        "burst: {} flows; largest lag {peak} records at {peak_at:.1} s, back under one second's worth at {}; RSS max {} MiB",
        totals["records"],
        drained_at.map_or("never".to_string(), |t| format!("{t:.1} s")),
        samples.iter().map(|s| s.4).max().unwrap_or(0)
    );
}

fn main() {
    if !venv().join("bin/python").exists() {
        println!(
            "kafka bench skipped: no test environment at {} (run .ci/test-deps)",
            venv().display()
        );
        return;
    }
    // cargo bench passes --bench; a filter word picks one part.
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let broker = Broker::start();
    if words.is_empty() || words.iter().any(|w| w == "throughput") {
        throughput(&broker);
    }
    if words.is_empty() || words.iter().any(|w| w == "burst") {
        burst(&broker);
    }
}
