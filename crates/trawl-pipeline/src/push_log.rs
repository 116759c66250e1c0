//! The push log: a write-ahead log of pushed payloads (HTTP pushes,
//! Firehose requests), so that a push acknowledged is a push kept.
//!
//! ```text
//! push ─► decode (any thread) ─► [order lock] append record N, add its flows
//!         with position push-log = {seq N, offset} ─► group fsync ─► 200
//! seal ─► manifest: positions incl. push-log ─► segments wholly before N deleted
//! start ─► replay records from the manifest's push-log position on
//! ```
//!
//! Invariants:
//! - Records are appended and their flows added in sequence order, under
//!   one lock, so the store's `push-log` position (`seq`, and the offset in
//!   that push's decoded text, as a file's) says exactly which pushes are
//!   in: those before `seq` wholly, push `seq` through `offset`.
//! - A push is answered only after its record is on disk (`fsync`); fsyncs
//!   of concurrent pushes are shared (group commit: one leader syncs every
//!   record written so far, the others wait for it).
//! - A segment is deleted only when a published manifest's position is
//!   past its last record; its last record is durable before a new segment
//!   starts.
//! - Bounded: a record at most `record_bytes_max`, the log at most
//!   `bytes_max` (a push past it is refused until a seal frees space).
//!
//! On disk: `DIR/push-SEQ.log` segments, each a run of records
//! `len: u32 LE | crc32(body): u32 LE | body`, body
//! `seq: u64 LE | source_len: u16 LE | source | payload`. Reading stops at
//! the first record that is short or fails its CRC (a torn write at a
//! crash, never acknowledged): the rest of that segment is cut off.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

/// The store position key of the push log.
pub const PUSH_LOG_KEY: &str = "push-log";

const HEADER_BYTES: usize = 8;
const BODY_FIXED_BYTES: usize = 10;

/// Why the push log refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PushLogError {
    /// Reading or writing a segment failed.
    #[error("push log {path}: {source}")]
    Io {
        /// The segment or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The log holds `bytes_max` bytes not yet covered by a seal.
    #[error(
        "the push log is full ({bytes} bytes not yet sealed, at most {bytes_max}): retry after the next seal"
    )]
    Full {
        /// Bytes in the log.
        bytes: u64,
        /// The limit.
        bytes_max: u64,
    },
    /// One payload is larger than a record may be.
    #[error("a pushed payload of {bytes} bytes is more than the push log takes ({bytes_max})")]
    TooLarge {
        /// The payload's size.
        bytes: usize,
        /// The limit.
        bytes_max: usize,
    },
}

/// Where pushes stand in the store: every push before `seq`, and push
/// `seq`'s decoded text through `offset`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushPosition {
    /// Sequence number of the push being added.
    pub seq: u64,
    /// Bytes of its decoded text added.
    pub offset: u64,
}

impl PushPosition {
    /// The manifest value.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a manifest value.
    pub fn decode(value: &str) -> Option<PushPosition> {
        serde_json::from_str(value).ok()
    }
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRecord {
    /// Its sequence number.
    pub seq: u64,
    /// The source name it was pushed as.
    pub source: String,
    /// The payload, as pushed.
    pub payload: Vec<u8>,
}

/// Limits of a push log.
#[derive(Debug, Clone, Copy)]
pub struct PushLogLimits {
    /// Bytes in one segment before the next starts (at most a quarter of
    /// `bytes_max` is used: the newest segment is never deleted, so a
    /// segment as large as the log would fill it for ever).
    pub segment_bytes_max: u64,
    /// Bytes in the whole log (not yet covered by a seal).
    pub bytes_max: u64,
    /// Bytes of one payload.
    pub record_bytes_max: usize,
}

impl Default for PushLogLimits {
    fn default() -> Self {
        PushLogLimits {
            segment_bytes_max: 64 << 20,
            bytes_max: 4 << 30,
            record_bytes_max: 256 << 20,
        }
    }
}

struct Segment {
    first_seq: u64,
    last_seq: Option<u64>,
    path: PathBuf,
    bytes: u64,
}

struct Appender {
    /// Segments, oldest first; the last is the one appended to.
    segments: Vec<Segment>,
    file: Option<File>,
    next_seq: u64,
    /// A write failed: the newest segment takes no more records.
    broken: bool,
}

#[derive(Default)]
struct SyncState {
    synced_seq: Option<u64>,
    syncing: bool,
}

/// A push log over a directory. See the module header.
pub struct PushLog {
    dir: PathBuf,
    limits: PushLogLimits,
    appender: Mutex<Appender>,
    sync: Mutex<SyncState>,
    synced: Condvar,
}

impl std::fmt::Debug for PushLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushLog").field("dir", &self.dir).finish()
    }
}

/// Opens a log and collects what [`PushLog::replay`] hands out (tests).
#[cfg(test)]
fn open_and_read(
    dir: &Path,
    limits: PushLogLimits,
    from: PushPosition,
) -> (PushLog, Vec<PushRecord>) {
    let log = PushLog::open(dir, limits, from.seq).unwrap();
    let mut records = Vec::new();
    log.replay(from, |r| records.push(r)).unwrap();
    (log, records)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> PushLogError + '_ {
    move |source| PushLogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn segment_name(first_seq: u64) -> String {
    format!("push-{first_seq:020}.log")
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl PushLog {
    /// Opens (creating) the log in `dir`: finds its segments, cuts a torn
    /// tail off each, and goes on after the highest record found, and at
    /// `next_seq_min` at least (past every sequence number a position
    /// already names: one the log lost must not be handed out again).
    pub fn open(
        dir: &Path,
        limits: PushLogLimits,
        next_seq_min: u64,
    ) -> Result<PushLog, PushLogError> {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        let mut segments = Vec::new();
        let mut next_seq = next_seq_min;
        for (first_seq, path) in segment_files(dir)? {
            let mut last_seq = None;
            let good_bytes =
                read_segment(&path, limits.record_bytes_max, |r| last_seq = Some(r.seq))?;
            next_seq = next_seq.max(last_seq.map_or(first_seq, |s| s + 1));
            cut_torn_tail(&path, good_bytes)?;
            segments.push(Segment {
                first_seq,
                last_seq,
                path,
                bytes: good_bytes,
            });
        }
        Ok(PushLog {
            dir: dir.to_path_buf(),
            limits,
            appender: Mutex::new(Appender {
                segments,
                file: None,
                next_seq,
                broken: false,
            }),
            sync: Mutex::new(SyncState::default()),
            synced: Condvar::new(),
        })
    }

    /// Hands every record from `from` on to `replay`, in order (at start,
    /// before any push is appended); returns how many.
    pub fn replay(
        &self,
        from: PushPosition,
        mut replay: impl FnMut(PushRecord),
    ) -> Result<u64, PushLogError> {
        let paths: Vec<PathBuf> = lock(&self.appender)
            .segments
            .iter()
            .filter(|s| s.last_seq.is_some_and(|last| last >= from.seq))
            .map(|s| s.path.clone())
            .collect();
        let mut count = 0;
        for path in paths {
            read_segment(&path, self.limits.record_bytes_max, |record| {
                if record.seq >= from.seq {
                    count += 1;
                    replay(record);
                }
            })?;
        }
        Ok(count)
    }

    /// Appends a record (not yet synced: see [`sync_through`](Self::sync_through));
    /// returns its sequence number.
    pub fn append(&self, source: &str, payload: &[u8]) -> Result<u64, PushLogError> {
        if payload.len() > self.limits.record_bytes_max {
            return Err(PushLogError::TooLarge {
                bytes: payload.len(),
                bytes_max: self.limits.record_bytes_max,
            });
        }
        let source = &source.as_bytes()[..source.len().min(u16::MAX as usize)];
        let body_bytes = BODY_FIXED_BYTES + source.len() + payload.len();
        let mut appender = lock(&self.appender);
        let bytes: u64 = appender.segments.iter().map(|s| s.bytes).sum();
        if bytes + (HEADER_BYTES + body_bytes) as u64 > self.limits.bytes_max {
            return Err(PushLogError::Full {
                bytes,
                bytes_max: self.limits.bytes_max,
            });
        }
        let seq = appender.next_seq;
        let mut body = Vec::with_capacity(HEADER_BYTES + body_bytes);
        body.extend_from_slice(&[0; HEADER_BYTES]);
        body.extend_from_slice(&seq.to_le_bytes());
        body.extend_from_slice(&(source.len() as u16).to_le_bytes());
        body.extend_from_slice(source);
        body.extend_from_slice(payload);
        let crc = crc32fast::hash(&body[HEADER_BYTES..]);
        body[..4].copy_from_slice(&(body_bytes as u32).to_le_bytes());
        body[4..8].copy_from_slice(&crc.to_le_bytes());
        let written = match self.writable(&mut appender, seq) {
            Ok(file) => file.write_all(&body),
            Err(error) => {
                // No new segment: its name (this seq) is never tried again.
                appender.next_seq = seq + 1;
                return Err(error);
            }
        };
        if let Err(error) = written {
            // The segment may end in part of this record: cut it back to
            // its good records, or, failing that, write no more to it (the
            // torn tail is cut at open, and nothing acknowledged follows it).
            let good = appender.segments.last().map_or(0, |s| s.bytes);
            let cut = appender.file.as_ref().map(|f| f.set_len(good));
            if !matches!(cut, Some(Ok(()))) {
                appender.broken = true;
                appender.next_seq = seq + 1;
            }
            let path = appender.segments.last().map(|s| s.path.clone());
            return Err(io_at(&path.unwrap_or_default())(error));
        }
        appender.next_seq = seq + 1;
        if let Some(segment) = appender.segments.last_mut() {
            segment.bytes += body.len() as u64;
            segment.last_seq = Some(seq);
        }
        Ok(seq)
    }

    /// The file to append record `seq` to: the newest segment, or a new one
    /// named after `seq` when it is full or broken (the old one synced
    /// first, so that a sync of the new one covers every record before
    /// it). Nothing changes unless the new segment is open and its
    /// directory entry synced; a name is never opened twice for a new
    /// segment.
    fn writable<'a>(
        &self,
        appender: &'a mut Appender,
        seq: u64,
    ) -> Result<&'a mut File, PushLogError> {
        let segment_bytes_max = self
            .limits
            .segment_bytes_max
            .min(self.limits.bytes_max / 4)
            .max(1);
        let full = appender.broken
            || appender
                .segments
                .last()
                .is_none_or(|s| s.bytes >= segment_bytes_max);
        if full {
            if let (Some(file), Some(segment)) = (&appender.file, appender.segments.last()) {
                file.sync_data().map_err(io_at(&segment.path))?;
            }
            let path = self.dir.join(segment_name(seq));
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(io_at(&path))?;
            sync_dir(&self.dir).map_err(io_at(&self.dir))?;
            appender.segments.push(Segment {
                first_seq: seq,
                last_seq: None,
                path,
                bytes: 0,
            });
            appender.file = Some(file);
            appender.broken = false;
        } else if appender.file.is_none() {
            // The newest segment found at open: appended to from its end.
            let path = appender
                .segments
                .last()
                .map(|s| s.path.clone())
                .unwrap_or_default();
            let file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(io_at(&path))?;
            appender.file = Some(file);
        }
        appender.file.as_mut().ok_or_else(|| PushLogError::Io {
            path: self.dir.clone(),
            source: io::Error::other("no segment open"),
        })
    }

    /// Returns once record `seq` is on disk: syncs every record written so
    /// far, or waits for the sync already running to cover it.
    pub fn sync_through(&self, seq: u64) -> Result<(), PushLogError> {
        let mut sync = lock(&self.sync);
        loop {
            if sync.synced_seq.is_some_and(|s| s >= seq) {
                return Ok(());
            }
            if !sync.syncing {
                sync.syncing = true;
                break;
            }
            sync = self
                .synced
                .wait(sync)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(sync);
        let (through, file, path) = {
            let appender = lock(&self.appender);
            let file = appender.file.as_ref().map(File::try_clone);
            let path = appender.segments.last().map(|s| s.path.clone());
            (appender.next_seq.checked_sub(1), file, path)
        };
        let path = path.unwrap_or_else(|| self.dir.clone());
        let result = match file {
            Some(Ok(file)) => file.sync_data().map_err(io_at(&path)),
            Some(Err(error)) => Err(io_at(&path)(error)),
            None => Ok(()),
        };
        let mut sync = lock(&self.sync);
        sync.syncing = false;
        if result.is_ok() {
            sync.synced_seq = sync.synced_seq.max(through);
        }
        self.synced.notify_all();
        result
    }

    /// Deletes the segments every record of which is before `position`
    /// (published in a manifest); returns how many.
    pub fn truncate_before(&self, position: PushPosition) -> Result<usize, PushLogError> {
        let mut appender = lock(&self.appender);
        let count = appender.segments.len();
        // The newest segment stays: it is the one appended to.
        let deletable = appender.segments[..count.saturating_sub(1)]
            .iter()
            .take_while(|s| s.last_seq.is_none_or(|last| last < position.seq))
            .count();
        for _ in 0..deletable {
            let path = appender.segments[0].path.clone();
            // A segment that cannot be removed stays listed, for the next seal.
            std::fs::remove_file(&path).map_err(io_at(&path))?;
            appender.segments.remove(0);
        }
        Ok(deletable)
    }

    /// Bytes in the log.
    pub fn bytes(&self) -> u64 {
        lock(&self.appender).segments.iter().map(|s| s.bytes).sum()
    }

    /// The first sequence number of every segment (for tests and metrics).
    pub fn segment_seqs(&self) -> Vec<u64> {
        lock(&self.appender)
            .segments
            .iter()
            .map(|s| s.first_seq)
            .collect()
    }
}

/// The segments in `dir`, by first sequence number.
fn segment_files(dir: &Path) -> Result<BTreeMap<u64, PathBuf>, PushLogError> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let name = entry.file_name();
        let first = name
            .to_str()
            .and_then(|n| n.strip_prefix("push-"))
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            found.insert(first, entry.path());
        }
    }
    Ok(found)
}

/// Hands the good records of a segment to `each` and returns the bytes
/// they take; reading stops at the first record that is short, too large
/// or fails its CRC.
fn read_segment(
    path: &Path,
    record_bytes_max: usize,
    mut each: impl FnMut(PushRecord),
) -> Result<u64, PushLogError> {
    let file = File::open(path).map_err(io_at(path))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut good = 0u64;
    let body_max = record_bytes_max + BODY_FIXED_BYTES + u16::MAX as usize;
    loop {
        let mut header = [0; HEADER_BYTES];
        if !read_full(&mut reader, &mut header).map_err(io_at(path))? {
            break;
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if !(BODY_FIXED_BYTES..=body_max).contains(&len) {
            break;
        }
        let mut body = vec![0; len];
        if !read_full(&mut reader, &mut body).map_err(io_at(path))? || crc32fast::hash(&body) != crc
        {
            break;
        }
        let Some(record) = parse_body(&body) else {
            break;
        };
        each(record);
        good += (HEADER_BYTES + len) as u64;
    }
    Ok(good)
}

fn parse_body(body: &[u8]) -> Option<PushRecord> {
    let seq = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    let source_len = u16::from_le_bytes(body.get(8..10)?.try_into().ok()?) as usize;
    let source = body.get(10..10 + source_len)?;
    Some(PushRecord {
        seq,
        source: String::from_utf8_lossy(source).into_owned(),
        payload: body.get(10 + source_len..)?.to_vec(),
    })
}

/// Fills `buf`; `false` at a clean or torn end of input.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Cuts a segment back to its good records (a record torn by a crash was
/// never acknowledged).
fn cut_torn_tail(path: &Path, good_bytes: u64) -> Result<(), PushLogError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_at(path))?;
    if file.metadata().map_err(io_at(path))?.len() > good_bytes {
        eprintln!(
            "trawl: {}: cutting a torn record after byte {good_bytes} (a push never acknowledged)",
            path.display()
        );
        file.set_len(good_bytes).map_err(io_at(path))?;
        file.sync_all().map_err(io_at(path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> PushLogLimits {
        PushLogLimits {
            segment_bytes_max: 100,
            bytes_max: 10_000,
            record_bytes_max: 1_000,
        }
    }

    #[test]
    fn records_come_back_from_a_position_on_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (log, replay) = open_and_read(dir.path(), small(), PushPosition::default());
        assert!(replay.is_empty());
        for i in 0..10u64 {
            let seq = log
                .append("http", format!("payload {i} {}", "x".repeat(30)).as_bytes())
                .unwrap();
            assert_eq!(seq, i);
            log.sync_through(seq).unwrap();
        }
        assert!(log.segment_seqs().len() > 2, "{:?}", log.segment_seqs());
        drop(log);
        let from = PushPosition { seq: 4, offset: 3 };
        let (log, replay) = open_and_read(dir.path(), small(), from);
        let seqs: Vec<u64> = replay.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [4, 5, 6, 7, 8, 9]);
        assert!(replay[0].payload.starts_with(b"payload 4 "));
        assert_eq!(replay[0].source, "http");
        assert_eq!(log.append("http", b"next").unwrap(), 10);
    }

    #[test]
    fn a_torn_last_record_is_cut_and_the_log_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open_and_read(
            dir.path(),
            PushLogLimits::default(),
            PushPosition::default(),
        );
        log.append("a", b"first").unwrap();
        log.append("a", b"second").unwrap();
        log.sync_through(1).unwrap();
        let path = dir.path().join(segment_name(0));
        drop(log);
        let len = std::fs::metadata(&path).unwrap().len();
        // A crash in the middle of the second record's write.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (log, replay) = open_and_read(
            dir.path(),
            PushLogLimits::default(),
            PushPosition::default(),
        );
        assert_eq!(replay.len(), 1);
        assert_eq!(log.append("a", b"again").unwrap(), 1);
        log.sync_through(1).unwrap();
        drop(log);
        let (_, replay) = open_and_read(
            dir.path(),
            PushLogLimits::default(),
            PushPosition::default(),
        );
        let payloads: Vec<&[u8]> = replay.iter().map(|r| r.payload.as_slice()).collect();
        assert_eq!(payloads, [&b"first"[..], b"again"]);
    }

    #[test]
    fn a_flipped_bit_ends_the_segment_at_the_record_before() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open_and_read(
            dir.path(),
            PushLogLimits::default(),
            PushPosition::default(),
        );
        log.append("a", b"one").unwrap();
        log.append("a", b"two").unwrap();
        log.sync_through(1).unwrap();
        drop(log);
        let path = dir.path().join(segment_name(0));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let (_, replay) = open_and_read(
            dir.path(),
            PushLogLimits::default(),
            PushPosition::default(),
        );
        assert_eq!(replay.len(), 1);
    }

    #[test]
    fn segments_before_a_sealed_position_are_deleted_and_the_log_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open_and_read(dir.path(), small(), PushPosition::default());
        for _ in 0..10 {
            log.append("http", &[b'y'; 40]).unwrap();
        }
        let before = log.segment_seqs();
        let deleted = log
            .truncate_before(PushPosition { seq: 6, offset: 0 })
            .unwrap();
        let after = log.segment_seqs();
        assert!(deleted > 0 && after[0] <= 6, "{before:?} -> {after:?}");
        assert_eq!(before.len() - deleted, after.len());
        let full_dir = tempfile::tempdir().unwrap();
        let limits = PushLogLimits {
            bytes_max: 100,
            ..small()
        };
        let full = PushLog::open(full_dir.path(), limits, 0).unwrap();
        full.append("a", &[0; 50]).unwrap();
        assert!(matches!(
            full.append("a", &[0; 50]),
            Err(PushLogError::Full { .. })
        ));
        assert!(matches!(
            full.append("a", &[0; 5000]),
            Err(PushLogError::TooLarge { .. })
        ));
    }

    #[test]
    fn concurrent_pushes_share_fsyncs_and_every_one_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open_and_read(
            dir.path(),
            PushLogLimits::default(),
            PushPosition::default(),
        );
        std::thread::scope(|scope| {
            for t in 0..4 {
                let log = &log;
                scope.spawn(move || {
                    for i in 0..50 {
                        let seq = log.append("t", format!("{t}/{i}").as_bytes()).unwrap();
                        log.sync_through(seq).unwrap();
                    }
                });
            }
        });
        drop(log);
        let (_, replay) = open_and_read(
            dir.path(),
            PushLogLimits::default(),
            PushPosition::default(),
        );
        let mut seqs: Vec<u64> = replay.iter().map(|r| r.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    }
}
