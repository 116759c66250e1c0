//! Crash-and-restart soak (issue 13): `trawl run` follows a directory that
//! receives new files (plain and gzip), files growing mid-line, files
//! moved into a subdirectory and files replaced under their name, and takes
//! HTTP pushes from a client thread; it is killed at random moments with
//! SIGKILL or SIGTERM and started again, a bounded number of times. At the
//! end every unit of input (a file's content, a push) must be stored
//! exactly once: each unit carries its own `packets` value, and the
//! `flows` table must hold exactly its lines for it. A push cut off by a
//! kill before its answer may be stored once or not at all, never twice.
//!
//! Bounded: `TRAWL_SOAK_KILLS` kills (default 8), and at most
//! `TRAWL_SOAK_SECS` seconds (default 120) of kills. The seed is printed;
//! `TRAWL_SOAK_SEED` repeats a run.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Server, ok, path, trawl};

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

/// `lines` records marked by `packets = marker`, stamped around `start`.
fn unit(marker: u64, lines: u64, start: u64) -> String {
    let mut text = format!("{HEADER}\n");
    for i in 0..lines {
        text.push_str(&format!(
            "2 123456789012 eni-1 8.8.8.8 1.1.1.1 {} 443 6 {marker} {} {} {} ACCEPT OK\n",
            40_000 + i,
            100 + i,
            start + i,
            start + i + 60
        ));
    }
    text
}

/// What is expected of one marker: its lines, exactly (or, for a push cut
/// off by a kill, zero or its lines).
#[derive(Clone, Copy)]
struct Expect {
    lines: u64,
    maybe: bool,
    kind: &'static str,
}

struct Input {
    dir: PathBuf,
    rng: Rng,
    next_marker: u64,
    start: u64,
    expected: BTreeMap<u64, Expect>,
    /// Files half written: path, whole text, bytes written.
    growing: Vec<(PathBuf, String, usize)>,
    /// Files written whole, by name (candidates to move or replace).
    whole: Vec<PathBuf>,
    moved: u64,
    replaced: u64,
}

impl Input {
    fn marker(&mut self, lines: u64, maybe: bool, kind: &'static str) -> u64 {
        self.next_marker += 1;
        let expect = Expect { lines, maybe, kind };
        self.expected.insert(self.next_marker, expect);
        self.next_marker
    }

    fn text(&mut self, lines: u64, kind: &'static str) -> (u64, String) {
        let marker = self.marker(lines, false, kind);
        let text = unit(marker, lines, self.start + marker % 3600);
        (marker, text)
    }

    fn new_file(&mut self, gzip: bool) {
        let lines = 1 + self.rng.below(200);
        let (marker, text) = self.text(lines, if gzip { "gzip file" } else { "file" });
        let name = format!("f{marker}.log{}", if gzip { ".gz" } else { "" });
        // Written elsewhere and renamed in, as S3 sync and log shippers do.
        let staging = self.dir.join(format!(".{name}.tmp"));
        if gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(text.as_bytes()).unwrap();
            std::fs::write(&staging, gz.finish().unwrap()).unwrap();
        } else {
            std::fs::write(&staging, &text).unwrap();
        }
        let final_path = self.dir.join(&name);
        std::fs::rename(&staging, &final_path).unwrap();
        self.whole.push(final_path);
    }

    /// A plain file written up to the middle of a line; finished later.
    fn start_growing(&mut self) {
        let lines = 2 + self.rng.below(100);
        let (marker, text) = self.text(lines, "growing file");
        let path = self.dir.join(format!("g{marker}.log"));
        let cut = text.len() / 2 + 3;
        std::fs::write(&path, &text[..cut]).unwrap();
        self.growing.push((path, text, cut));
    }

    fn finish_growing(&mut self) {
        if self.growing.is_empty() {
            return;
        }
        let i = self.rng.below(self.growing.len() as u64) as usize;
        let (path, text, cut) = self.growing.swap_remove(i);
        // Appended, as a writer does (never truncated and rewritten).
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        file.write_all(&text.as_bytes()[cut..]).unwrap();
        self.whole.push(path);
    }

    fn move_one(&mut self) {
        if self.whole.is_empty() {
            return;
        }
        let i = self.rng.below(self.whole.len() as u64) as usize;
        let from = self.whole.swap_remove(i);
        let done = self.dir.join("done");
        std::fs::create_dir_all(&done).unwrap();
        let to = done.join(from.file_name().unwrap());
        std::fs::rename(&from, &to).unwrap();
        self.moved += 1;
    }

    /// Replaces a file the durable manifest lists as read to its end (a
    /// file replaced before it is sealed loses its old content: that is
    /// the writer's doing, not trawl's).
    fn replace_one(&mut self, data: &Path) {
        let Ok(manifest) = trawl_store::Manifest::load(data) else {
            return;
        };
        let sealed: Vec<PathBuf> = self
            .whole
            .iter()
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                manifest
                    .positions
                    .get(&format!("file:in/{name}"))
                    .is_some_and(|v| v.contains("\"size\""))
                    && !name.ends_with(".gz")
            })
            .cloned()
            .collect();
        if sealed.is_empty() {
            return;
        }
        let target = sealed[self.rng.below(sealed.len() as u64) as usize].clone();
        let lines = 1 + self.rng.below(50);
        let (_, text) = self.text(lines, "replacing file");
        let staging = self.dir.join(".replace.tmp");
        std::fs::write(&staging, text).unwrap();
        std::fs::rename(&staging, &target).unwrap();
        // Not replaced again (the manifest would show the old content's
        // position until the new one is sealed) nor moved.
        self.whole.retain(|p| *p != target);
        self.replaced += 1;
    }
}

/// Pushes units over HTTP until told to stop, recording each as exact
/// (answered 200) or maybe (no answer: the server was killed).
fn pusher(url: String, input: Arc<Mutex<Input>>, stop: Arc<AtomicBool>) -> u64 {
    let agent = common::agent(None);
    let mut pushed = 0;
    while !stop.load(Ordering::Relaxed) {
        let (marker, text) = {
            let mut input = input.lock().unwrap();
            let lines = 1 + input.rng.below(30);
            let marker = input.marker(lines, true, "push");
            let start = input.start + marker % 3600;
            (marker, unit(marker, lines, start))
        };
        let answer = agent
            .post(&format!("{url}/api/v1/flows"))
            .header("Content-Type", "application/octet-stream")
            .send(text.as_bytes());
        let status = answer.as_ref().map(|r| r.status().as_u16()).ok();
        let mut input = input.lock().unwrap();
        match status {
            Some(200) => {
                input.expected.get_mut(&marker).unwrap().maybe = false;
                pushed += 1;
            }
            Some(503) => {
                // Refused: nothing kept.
                input.expected.get_mut(&marker).unwrap().lines = 0;
                input.expected.get_mut(&marker).unwrap().maybe = false;
            }
            _ => break,
        }
        drop(input);
        std::thread::sleep(Duration::from_millis(20));
    }
    pushed
}

#[test]
fn crash_and_restart_soak_counts_every_input_exactly_once() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let dir = root.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    let config = root.path().join("trawl.toml");
    std::fs::write(
        &config,
        "[pipeline]\nseal_interval_secs = 1\nseal_interval_min_secs = 0\npoll_interval_ms = 100\nsnapshot_interval_secs = 1\nhold_secs = 0\npartial_line_wait_secs = 600\n",
    )
    .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let seed = env_u64("TRAWL_SOAK_SEED", now | 1);
    eprintln!("soak seed {seed} (TRAWL_SOAK_SEED to repeat)");
    let input = Arc::new(Mutex::new(Input {
        dir: dir.clone(),
        rng: Rng(seed),
        next_marker: 1000,
        start: now - 3 * 3600,
        expected: BTreeMap::new(),
        growing: Vec::new(),
        whole: Vec::new(),
        moved: 0,
        replaced: 0,
    }));
    let kills_max = env_u64("TRAWL_SOAK_KILLS", 8);
    let deadline = Instant::now() + Duration::from_secs(env_u64("TRAWL_SOAK_SECS", 120));
    let args = [
        "run",
        "--config",
        path(&config),
        "--data-dir",
        path(&data),
        "--flows-dir",
        path(&dir),
        "--listen",
        "127.0.0.1:0",
    ];
    let (mut kills, mut terms, mut pushed) = (0, 0, 0);
    while kills + terms < kills_max && Instant::now() < deadline {
        let server = Server::start(&args);
        let stop = Arc::new(AtomicBool::new(false));
        let pushing = {
            let (url, input, stop) = (server.url.clone(), input.clone(), stop.clone());
            std::thread::spawn(move || pusher(url, input, stop))
        };
        let steps = 3 + input.lock().unwrap().rng.below(12);
        for _ in 0..steps {
            let mut input = input.lock().unwrap();
            match input.rng.below(6) {
                0 => input.new_file(false),
                1 => input.new_file(true),
                2 => input.start_growing(),
                3 => input.finish_growing(),
                4 => input.move_one(),
                _ => input.replace_one(&data),
            }
            let pause = 20 + input.rng.below(300);
            drop(input);
            std::thread::sleep(Duration::from_millis(pause));
        }
        let signal = if input.lock().unwrap().rng.below(3) == 0 {
            terms += 1;
            "-TERM"
        } else {
            kills += 1;
            "-KILL"
        };
        // Sends the signal and waits for the exit (SIGTERM: after sealing).
        server.signal(signal);
        stop.store(true, Ordering::Relaxed);
        pushed += pushing.join().unwrap();
    }
    // Every file whole, then one last run to the end of the input.
    {
        let mut input = input.lock().unwrap();
        while !input.growing.is_empty() {
            input.finish_growing();
        }
    }
    let once = [
        "run",
        "--config",
        path(&config),
        "--data-dir",
        path(&data),
        "--flows-dir",
        path(&dir),
        "--once",
    ];
    ok(trawl(&once));
    let counts = ok(trawl(&[
        "query",
        "--data-dir",
        path(&data),
        "--format",
        "csv",
        "SELECT packets, count(*) AS n FROM flows GROUP BY packets ORDER BY packets",
    ]));
    let stored: BTreeMap<u64, u64> = counts
        .lines()
        .skip(1)
        .map(|l| {
            let (marker, n) = l.split_once(',').unwrap();
            (marker.parse().unwrap(), n.parse().unwrap())
        })
        .collect();
    let input = input.lock().unwrap();
    let mut wrong = Vec::new();
    for (marker, expect) in &input.expected {
        let got = stored.get(marker).copied().unwrap_or(0);
        let fine = got == expect.lines || (expect.maybe && got == 0);
        if !fine {
            wrong.push(format!(
                "marker {marker} ({}): stored {got} lines, expected {}{}",
                expect.kind,
                expect.lines,
                if expect.maybe { " or 0" } else { "" }
            ));
        }
    }
    for marker in stored.keys().filter(|m| !input.expected.contains_key(m)) {
        wrong.push(format!("marker {marker}: stored, never written"));
    }
    eprintln!(
        "soak: survived {kills} SIGKILL and {terms} SIGTERM; {} units ({pushed} pushes answered, {} files moved, {} replaced), {} stored lines",
        input.expected.len(),
        input.moved,
        input.replaced,
        stored.values().sum::<u64>()
    );
    assert!(kills + terms >= 3, "too few kills to mean anything");
    assert!(
        wrong.is_empty(),
        "{} units wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
