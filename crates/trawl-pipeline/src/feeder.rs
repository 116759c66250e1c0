//! The feeder: which files to read, under which name, from where.
//!
//! Directories (read once or followed) and files named on their own become
//! [`Job`]s on the pipeline's bounded queue. For each file the feeder
//!
//! 1. names it: a file in a watched directory by the directory's label
//!    (its last component) and the path relative to it, so that moving or
//!    remounting the directory re-reads nothing; a file named on its own by
//!    its absolute path (see [`crate::position`]);
//! 2. claims the name ([`InFlight`]): one job a file at a time, and a
//!    position read after the claim is never stale (issue 13 #9);
//! 3. finds where to resume: the position under its name; or, for a name
//!    never seen, the position of a file that is gone and had the same
//!    first bytes (the file was moved or renamed: resumed, not read
//!    again), or the position an older trawl kept under its absolute path;
//!    the worker then checks that the file under a known name is still the
//!    file read before ([`FilePosition::is_same_file`]);
//! 4. after listing a directory, forgets the positions of its files that
//!    are gone and were read to their end, so the manifest holds the files
//!    there are, not every file there ever was.
//!
//! A moved file's position moves to its new name in one edit of the
//! store's positions, committed with the next seal: a crash before leaves
//! the old name, and the move is found again.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::os::unix::ffi::OsStrExt;

use crossbeam_channel::Sender;

use crate::pipeline::PipelineError;
use crate::position::{FilePosition, FileStat, Fingerprint, read_head};
use crate::source::list_files;
use crate::worker::Context;

/// Work for a worker.
pub(crate) enum Job {
    /// A file, from a position.
    File {
        path: PathBuf,
        key: String,
        resume: FilePosition,
        /// Followed: the file may still grow (see `read_file`).
        growing: bool,
    },
    /// A stream read to its end (stdin).
    Stream {
        name: String,
        reader: Box<dyn Read + Send>,
    },
}

/// Jobs queued or running, and the file names among them; and the files
/// whose last read failed, retried with backoff while they are unchanged
/// (a gzip file that never completes was decompressed from its start at
/// every poll, and its error printed each time).
#[derive(Default)]
pub(crate) struct InFlight {
    state: Mutex<(usize, HashSet<String>)>,
    idle: Condvar,
    failed: Mutex<HashMap<String, Failed>>,
}

/// A file whose last read failed.
struct Failed {
    stat: Option<FileStat>,
    attempts: u32,
    retry_at: Instant,
}

/// Longest wait before a file that keeps failing, unchanged, is tried again.
const RETRY_SECS_MAX: u64 = 300;

impl InFlight {
    /// Counts a job in; `false` (and nothing counted) if `key` is taken.
    pub(crate) fn start(&self, key: Option<&str>) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = key
            && !state.1.insert(key.to_string())
        {
            return false;
        }
        state.0 += 1;
        true
    }

    /// Counts a job out and gives its key back.
    pub(crate) fn finish(&self, key: Option<&str>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 -= 1;
        if let Some(key) = key {
            state.1.remove(key);
        }
        // Waiters: for idleness, or for one name to be given back.
        self.idle.notify_all();
    }

    /// Waits until no job holds `key`.
    fn wait_released(&self, key: &str) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while state.1.contains(key) {
            state = self
                .idle
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Records that reading `key` failed with the file at `stat`; `true` if
    /// this is news (first failure, or the file changed since the last).
    pub(crate) fn record_failure(&self, key: &str, stat: Option<FileStat>) -> bool {
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = failed.entry(key.to_string()).or_insert(Failed {
            stat: None,
            attempts: 0,
            retry_at: Instant::now(),
        });
        let news = entry.attempts == 0 || entry.stat != stat;
        entry.attempts = if news { 1 } else { entry.attempts + 1 };
        entry.stat = stat;
        let wait = (1u64 << entry.attempts.min(16)).min(RETRY_SECS_MAX);
        entry.retry_at = Instant::now() + Duration::from_secs(wait);
        news
    }

    /// Forgets a failure (the file was read).
    pub(crate) fn forget_failure(&self, key: &str) {
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        failed.remove(key);
    }

    /// Whether `key`, now at `stat`, failed unchanged and waits for its retry.
    fn backing_off(&self, key: &str, stat: &FileStat) -> bool {
        let failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        failed
            .get(key)
            .is_some_and(|f| f.stat.as_ref() == Some(stat) && Instant::now() < f.retry_at)
    }

    fn holds(&self, key: &str) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.1.contains(key)
    }

    /// Jobs queued or running.
    pub(crate) fn pending(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0
    }

    /// Waits until no job is queued or running, or `timeout` has passed;
    /// whether none is.
    pub(crate) fn wait_idle_for(&self, timeout: Duration) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (state, _) = self
            .idle
            .wait_timeout_while(state, timeout, |state| state.0 > 0)
            .unwrap_or_else(PoisonError::into_inner);
        state.0 == 0
    }

    /// Waits until no job is queued or running.
    pub(crate) fn wait_idle(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while state.0 > 0 {
            state = self
                .idle
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Queues jobs: what the pipeline and its follow threads share.
#[derive(Clone)]
pub(crate) struct Feeder {
    pub(crate) cx: Arc<Context>,
    pub(crate) jobs: Sender<Job>,
    pub(crate) in_flight: Arc<InFlight>,
    /// Watched directories by label.
    labels: Arc<Mutex<HashMap<String, PathBuf>>>,
    /// Names of complete files missing from consecutive listings of their
    /// directory: forgotten at [`ABSENT_LISTINGS_PRUNED`].
    absent: Arc<Mutex<HashMap<String, u32>>>,
    /// Run between claiming a file and reading its position (tests pause
    /// a queueing there while a worker finishes the file).
    #[cfg(test)]
    between_claim_and_read: Option<Pause>,
}

/// A test's pause in [`Feeder::queue`], given the file's key.
#[cfg(test)]
type Pause = Arc<dyn Fn(&str) + Send + Sync>;

/// Listings a complete file must be missing from before its position is
/// forgotten: a file moved to another watched directory is found there by
/// then (the other directory's listing may come after this one's).
const ABSENT_LISTINGS_PRUNED: u32 = 3;

/// A file found, and its name in the manifest.
struct Named {
    path: PathBuf,
    key: String,
    /// Its name as versions before escaped names wrote it, if different.
    lossy_key: Option<String>,
}

/// Positions of files that are gone, by fingerprint length and hash: where
/// a file under a new name may have come from (some may still be being
/// read, under their old name).
#[derive(Default)]
struct GoneFiles(HashMap<u64, HashMap<u64, String>>);

impl Feeder {
    /// A feeder over `jobs`.
    pub(crate) fn new(cx: Arc<Context>, jobs: Sender<Job>, in_flight: Arc<InFlight>) -> Self {
        Feeder {
            cx,
            jobs,
            in_flight,
            labels: Arc::default(),
            absent: Arc::default(),
            #[cfg(test)]
            between_claim_and_read: None,
        }
    }

    /// Queues files named on their own (by absolute path).
    pub(crate) fn add_files(
        &self,
        files: &[PathBuf],
        growing: bool,
    ) -> Result<usize, PipelineError> {
        let named = files
            .iter()
            .map(|path| {
                let absolute = std::fs::canonicalize(path).map_err(|source| PipelineError::Io {
                    path: path.clone(),
                    source,
                })?;
                let key = FilePosition::key(&escaped(&absolute));
                Ok(Named {
                    path: absolute,
                    key,
                    lossy_key: None,
                })
            })
            .collect::<Result<Vec<_>, PipelineError>>()?;
        self.queue(&named, growing)
    }

    /// Queues the files under `dir` (named relative to it), then forgets
    /// the positions of its files that are gone and complete.
    pub(crate) fn add_dir(&self, dir: &Path, growing: bool) -> Result<usize, PipelineError> {
        let io_error = |source| PipelineError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let dir = std::fs::canonicalize(dir).map_err(io_error)?;
        let label = self.label(&dir)?;
        let files = list_files(&dir).map_err(io_error)?;
        let named: Vec<Named> = files
            .into_iter()
            .map(|path| {
                let key = dir_key(&label, &dir, &path);
                let relative = path.strip_prefix(&dir).unwrap_or(&path);
                let lossy = FilePosition::key(&format!("{label}/{}", relative.to_string_lossy()));
                let lossy_key = (lossy != key).then_some(lossy);
                Named {
                    path,
                    key,
                    lossy_key,
                }
            })
            .collect();
        let queued = self.queue(&named, growing)?;
        self.prune(&label, &named);
        Ok(queued)
    }

    /// Registers `dir` (canonical) under its last component; refuses a
    /// second directory with the same one, whose files would share names.
    pub(crate) fn label(&self, dir: &Path) -> Result<String, PipelineError> {
        let label = dir
            .file_name()
            .map_or_else(|| "root".to_string(), |n| n.to_string_lossy().into_owned());
        let mut labels = self.labels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(other) = labels
            .values()
            .find(|d| *d != dir && (d.starts_with(dir) || dir.starts_with(d)))
        {
            // A file under both would have two names, and be read twice.
            return Err(PipelineError::NestedDirs {
                outer: if dir.starts_with(other) {
                    other.clone()
                } else {
                    dir.to_path_buf()
                },
                inner: if dir.starts_with(other) {
                    dir.to_path_buf()
                } else {
                    other.clone()
                },
            });
        }
        match labels.get(&label) {
            Some(known) if known != dir => Err(PipelineError::DirLabel {
                label,
                first: known.clone(),
                second: dir.to_path_buf(),
            }),
            Some(_) => Ok(label),
            None => {
                labels.insert(label.clone(), dir.to_path_buf());
                Ok(label)
            }
        }
    }

    fn queue(&self, files: &[Named], growing: bool) -> Result<usize, PipelineError> {
        let mut queued = 0;
        let mut gone: Option<GoneFiles> = None;
        for file in files {
            let stat = match std::fs::metadata(&file.path) {
                Ok(metadata) => FileStat::of(&metadata),
                Err(error) => {
                    // Gone since the listing, or a dangling link: the files
                    // after it are still read (they all stopped here).
                    self.cx.stats.file_errors.fetch_add(1, Ordering::Relaxed);
                    if self.in_flight.record_failure(&file.key, None) {
                        eprintln!("trawl: {}: {error}", file.path.display());
                    }
                    continue;
                }
            };
            if self.in_flight.backing_off(&file.key, &stat) {
                continue;
            }
            // Claim first, then read the position: a worker records a
            // file's last position before it gives up its claim, so a
            // position read after the claim is never a stale one (issue 13
            // #9: read before, a file finishing in between was queued
            // again from the old offset and its tail counted twice).
            if !self.in_flight.start(Some(&file.key)) {
                continue;
            }
            #[cfg(test)]
            if let Some(pause) = &self.between_claim_and_read {
                pause(&file.key);
            }
            let resume = match self.position(&file.key) {
                Some(position) => position,
                None => {
                    let gone = gone.get_or_insert_with(|| self.gone_files(files));
                    self.find_moved(file, gone).unwrap_or_default()
                }
            };
            if resume.is_complete(&stat) {
                self.in_flight.finish(Some(&file.key));
                continue;
            }
            let sent = self.send(Job::File {
                path: file.path.clone(),
                key: file.key.clone(),
                resume,
                growing,
            });
            if let Err(error) = sent {
                self.in_flight.finish(Some(&file.key));
                return Err(error);
            }
            queued += 1;
        }
        Ok(queued)
    }

    fn position(&self, key: &str) -> Option<FilePosition> {
        let store = self.cx.store_read();
        store
            .pending_positions()
            .get(key)
            .and_then(|v| FilePosition::decode(v))
    }

    /// The position of the file a new name belongs to, moved to that name:
    /// a gone file with the same first bytes (waiting, if a job still
    /// reads it under its old name, until that job has recorded where it
    /// stopped), or the file's position under its absolute path (kept by
    /// trawl before names were relative). A file named on its own may also
    /// be a file read in a directory not watched now: its position is
    /// copied, not moved.
    fn find_moved(&self, file: &Named, gone: &mut GoneFiles) -> Option<FilePosition> {
        // Older names of the same file: its absolute path (before names
        // were relative), its relative name before names were escaped.
        let absolute = std::fs::canonicalize(&file.path)
            .ok()
            .map(|p| FilePosition::key(&p.to_string_lossy()));
        let unescaped = file.lossy_key.clone();
        let legacy = [absolute, unescaped]
            .into_iter()
            .flatten()
            .find(|legacy| *legacy != file.key && self.position(legacy).is_some());
        let from = match legacy {
            Some(legacy) => legacy,
            None => {
                let head = File::open(&file.path).and_then(read_head).ok()?;
                match gone.take_match(&head) {
                    Some(from) => from,
                    None if is_named_alone(&file.key) => return self.find_copy(&head),
                    None => return None,
                }
            }
        };
        // Issue 13 review: read from its start under the new name while
        // the old job still ran, a renamed file was stored twice.
        self.in_flight.wait_released(&from);
        let mut store = self.cx.store_write();
        let value = store.pending_positions().get(&from)?.clone();
        let position = FilePosition::decode(&value)?;
        store.edit_positions(&[(&file.key, &value)], &[&from]);
        drop(store);
        self.cx.stats.files_moved.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "trawl: {}: the file known as {} (moved): resuming it",
            file.path.display(),
            from.strip_prefix("file:").unwrap_or(&from)
        );
        Some(position)
    }

    /// A position of any name whose fingerprint is that of `head`.
    fn find_copy(&self, head: &[u8]) -> Option<FilePosition> {
        let store = self.cx.store_read();
        store
            .pending_positions()
            .iter()
            .filter(|(key, _)| key.starts_with("file:"))
            .filter_map(|(_, value)| FilePosition::decode(value))
            .find(|p| p.fingerprint.is_some_and(|fp| fp.matches(head)))
    }

    /// Positions with fingerprints whose file is gone: not in `listing` and
    /// not found where their name says (names under a directory not
    /// watched now count as present: nothing is known of them). One may
    /// still be being read under its old name.
    fn gone_files(&self, listing: &[Named]) -> GoneFiles {
        let listed: HashSet<&str> = listing.iter().map(|f| f.key.as_str()).collect();
        let candidates: Vec<(String, Fingerprint)> = {
            let store = self.cx.store_read();
            store
                .pending_positions()
                .iter()
                .filter(|(key, _)| key.starts_with("file:") && !listed.contains(key.as_str()))
                .filter_map(|(key, value)| {
                    let fingerprint = FilePosition::decode(value)?.fingerprint?;
                    Some((key.clone(), fingerprint))
                })
                .collect()
        };
        let mut gone = GoneFiles::default();
        for (key, fingerprint) in candidates {
            if self.path_of(&key).is_some_and(|path| !path.exists()) {
                gone.0
                    .entry(fingerprint.bytes)
                    .or_default()
                    .insert(fingerprint.hash, key);
            }
        }
        gone
    }

    /// Where the file named `key` would be, if its directory is watched.
    fn path_of(&self, key: &str) -> Option<PathBuf> {
        let name = key.strip_prefix("file:")?;
        if name.starts_with('/') {
            return Some(unescaped(name));
        }
        let (label, relative) = name.split_once('/')?;
        let labels = self.labels.lock().unwrap_or_else(PoisonError::into_inner);
        labels.get(label).map(|dir| dir.join(unescaped(relative)))
    }

    /// Forgets the positions under `label` of files not in `listing`, not
    /// being read, and read to their end (issue 13 #10: positions were
    /// never removed, so the manifest grew with every file ever read).
    fn prune(&self, label: &str, listing: &[Named]) {
        let prefix = FilePosition::key(&format!("{label}/"));
        let listed: HashSet<&str> = listing.iter().map(|f| f.key.as_str()).collect();
        let missing: Vec<String> = {
            let store = self.cx.store_read();
            store
                .pending_positions()
                .range(prefix.clone()..)
                .take_while(|(key, _)| key.starts_with(&prefix))
                .filter(|(key, value)| {
                    !listed.contains(key.as_str())
                        && !self.in_flight.holds(key)
                        && FilePosition::decode(value).is_some_and(|p| p.size.is_some())
                })
                .map(|(key, _)| key.clone())
                .collect()
        };
        let doomed: Vec<String> = {
            let mut absent = self.absent.lock().unwrap_or_else(PoisonError::into_inner);
            absent.retain(|key, _| !key.starts_with(&prefix) || missing.contains(key));
            missing
                .into_iter()
                .filter(|key| {
                    let count = absent.entry(key.clone()).or_default();
                    *count += 1;
                    *count >= ABSENT_LISTINGS_PRUNED
                })
                .collect()
        };
        if doomed.is_empty() {
            return;
        }
        let doomed: Vec<&str> = doomed.iter().map(String::as_str).collect();
        self.cx.store_write().edit_positions(&[], &doomed);
        let mut absent = self.absent.lock().unwrap_or_else(PoisonError::into_inner);
        doomed.iter().for_each(|key| {
            absent.remove(*key);
        });
        self.cx
            .stats
            .positions_pruned
            .fetch_add(doomed.len() as u64, Ordering::Relaxed);
    }

    /// Queues a job, waiting while the queue is full.
    pub(crate) fn send(&self, job: Job) -> Result<(), PipelineError> {
        self.jobs
            .send(job)
            .map_err(|_| PipelineError::Thread(std::io::Error::other("the pipeline has stopped")))
    }
}

impl GoneFiles {
    /// The gone file whose fingerprint `head` matches, taken out (a second
    /// new file with the same bytes is a new file).
    fn take_match(&mut self, head: &[u8]) -> Option<String> {
        let (&bytes, hash) = self.0.iter().find_map(|(bytes, by_hash)| {
            let n = usize::try_from(*bytes).ok()?;
            let fingerprint = Fingerprint::of(head.get(..n)?);
            by_hash
                .contains_key(&fingerprint.hash)
                .then_some((bytes, fingerprint.hash))
        })?;
        self.0.get_mut(&bytes)?.remove(&hash)
    }
}

/// The manifest key of `path` under the directory `dir` labelled `label`:
/// `file:LABEL/RELATIVE`, `/`-separated, [`escaped`].
fn dir_key(label: &str, dir: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(dir).unwrap_or(path);
    FilePosition::key(&format!("{label}/{}", escaped(relative)))
}

/// Whether `key` names a file by its absolute path (named on its own).
fn is_named_alone(key: &str) -> bool {
    key.starts_with("file:/")
}

/// `path` as key text, losslessly: `/`-separated components, with `%` and
/// every byte of a name that is not UTF-8 written `%XX` (two names that are
/// not UTF-8 shared one lossy key and were read again and again).
fn escaped(path: &Path) -> String {
    let mut out = String::new();
    for (i, component) in path.components().enumerate() {
        let part = component.as_os_str();
        if i > 0 && !out.ends_with('/') {
            out.push('/');
        }
        match part.to_str() {
            Some(text) => out.push_str(&text.replace('%', "%25")),
            None => {
                for &byte in part.as_bytes() {
                    if byte.is_ascii() && byte != b'%' {
                        out.push(byte as char);
                    } else {
                        out.push_str(&format!("%{byte:02X}"));
                    }
                }
            }
        }
    }
    out
}

/// The path [`escaped`] wrote.
fn unescaped(text: &str) -> PathBuf {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::Receiver;
    use trawl_attrib::AttributionIndex;
    use trawl_store::{Store, StoreConfig};

    use crate::config::PipelineConfig;

    /// A feeder whose jobs the test takes (it plays the worker).
    fn feeder(dir: &Path) -> (Feeder, Receiver<Job>) {
        let store = Store::open(StoreConfig::new(dir.join("data"))).unwrap();
        let cx = Context::new(
            PipelineConfig::default(),
            store,
            AttributionIndex::default(),
            None,
            None,
        );
        let (jobs, taken) = crossbeam_channel::bounded(4);
        let feeder = Feeder::new(Arc::new(cx), jobs, Arc::new(InFlight::default()));
        (feeder, taken)
    }

    /// Records a position for `key` and gives the claim back, as a worker
    /// does when it ends a job.
    fn finish_job(feeder: &Feeder, key: &str, position: FilePosition) {
        feeder
            .cx
            .store_write()
            .edit_positions(&[(key, &position.encode())], &[]);
        feeder.in_flight.finish(Some(key));
    }

    /// Issue 13 #9 (review: confirmed by reading). The follow loop queues a
    /// file while a worker is reading it; the worker ends the file in
    /// between the loop's two steps (claim, read the position). Read first
    /// and claimed second, the loop queued the file again from the
    /// position it read before the end, and the tail was counted twice.
    /// Here the loop is paused between its two steps, whatever their
    /// order, while the test (as the worker) ends the file; then no second
    /// job may be queued from the stale position.
    #[test]
    fn a_file_finished_while_the_follow_loop_queues_it_is_not_queued_from_a_stale_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.log");
        std::fs::write(&path, b"line one\nline two\nline three\n").unwrap();
        let stat = FileStat::of(&std::fs::metadata(&path).unwrap());
        let (mut feeder, taken) = feeder(dir.path());
        assert_eq!(
            feeder.add_files(std::slice::from_ref(&path), true).unwrap(),
            1
        );
        let Ok(Job::File { key, .. }) = taken.try_recv() else {
            panic!("the first job");
        };
        // The worker is mid-file.
        let middle = FilePosition {
            offset: 9,
            ..FilePosition::default()
        };
        feeder
            .cx
            .store_write()
            .edit_positions(&[(&key, &middle.encode())], &[]);
        let end = FilePosition {
            offset: stat.size,
            size: Some(stat.size),
            mtime_ns: stat.modified_ns,
            ..FilePosition::default()
        };

        let (reached, paused) = crossbeam_channel::bounded::<()>(1);
        let (resume, go) = crossbeam_channel::bounded::<()>(1);
        feeder.between_claim_and_read = Some(Arc::new(move |_key: &str| {
            let _ = reached.send(());
            let _ = go.recv_timeout(Duration::from_secs(10));
        }));
        let follow = {
            let (feeder, path) = (feeder.clone(), path.clone());
            std::thread::spawn(move || feeder.add_files(&[path], true).unwrap())
        };
        // Wait for the loop to pause between its steps (or to have given
        // up on a claim the worker holds), then end the file.
        let _ = paused.recv_timeout(Duration::from_secs(1));
        finish_job(&feeder, &key, end);
        let _ = resume.send(());
        follow.join().unwrap();
        if let Ok(Job::File { resume, .. }) = taken.try_recv() {
            assert_eq!(
                resume.offset, stat.size,
                "queued again from a position read before the file ended"
            );
        }

        // Once the worker is done, the next visit finds the file complete.
        assert_eq!(feeder.add_files(&[path], true).unwrap(), 0);
        assert!(taken.try_recv().is_err());
    }

    #[test]
    fn names_that_are_not_utf8_or_hold_a_percent_sign_keep_their_own_keys() {
        let a = Path::new(std::ffi::OsStr::from_bytes(b"x/a\xfe.log"));
        let b = Path::new(std::ffi::OsStr::from_bytes(b"x/a\xff.log"));
        let literal = Path::new("x/a%FE.log");
        let keys = [escaped(a), escaped(b), escaped(literal)];
        assert_eq!(keys, ["x/a%FE.log", "x/a%FF.log", "x/a%25FE.log"]);
        for (path, key) in [a, b, literal].iter().zip(&keys) {
            assert_eq!(unescaped(key), *path);
        }
    }

    #[test]
    fn keys_are_relative_to_the_watched_directory() {
        let key = dir_key(
            "flows",
            Path::new("/mnt/x/flows"),
            Path::new("/mnt/x/flows/2026/12/a.log.gz"),
        );
        assert_eq!(key, "file:flows/2026/12/a.log.gz");
    }

    #[test]
    fn a_gone_file_matches_once_by_its_first_bytes() {
        let head = b"version srcaddr\n2 10.0.0.1\n".to_vec();
        let mut gone = GoneFiles::default();
        let fp = Fingerprint::of(&head[..10]);
        gone.0
            .entry(fp.bytes)
            .or_default()
            .insert(fp.hash, "file:flows/old.log".into());
        assert_eq!(gone.take_match(b"other bytes entirely"), None);
        assert_eq!(
            gone.take_match(&head).as_deref(),
            Some("file:flows/old.log")
        );
        assert_eq!(gone.take_match(&head), None, "taken once");
    }
}
