//! The disk half of a commit: writing the segments of a seal or a
//! compaction, which needs no store lock.
//!
//! A seal runs in three steps so that adding flows and answering queries
//! never wait on Parquet encoding or `fsync`:
//!
//! ```text
//! Store::seal_begin   (store lock)   open buckets ─► batches of a SealJob, visible
//!                                    to queries as "sealing" rows; next manifest drafted
//! SealJob::write      (no lock)      validate ─► write each segment ─► sync the directories
//!                                    ─► serialize and fsync MANIFEST.tmp
//! Store::seal_finish  (store lock)   rename MANIFEST.tmp, sync the directory; the sealing
//!                                    rows are now segments
//! ```
//!
//! If writing or publishing fails, or the job is dropped unfinished, the
//! sealing rows stay in the store (still answered by queries) and the next
//! seal writes them again under new ids; files of the failed attempt are in
//! no manifest and are never read.
//!
//! Segments are encoded and written on every core at once (each is a file
//! of its own); a crash test's step limit still stops the commit after the
//! same segments as a one-by-one write would.
//!
//! Invariant: a segment is validated against its chunk before it is
//! written (and again after every read, in `segment`); the manifest entry
//! of a written segment carries the file's size and time range.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::error::StoreError;
use crate::manifest::{Manifest, SegmentMeta, sync_dir};
use crate::segment::{validate_batches, write_segment};

/// A segment about to be written by a seal or compaction.
#[derive(Debug, Clone)]
pub(crate) struct PendingSegment {
    /// Its manifest entry (size and time range filled in when written).
    pub meta: SegmentMeta,
    /// The segment's rows, written as one file.
    pub batches: Vec<RecordBatch>,
    /// Length of its table's chunks.
    pub chunk_secs: u32,
    /// Memory the batches hold (counted once, when the segment is made:
    /// the store's open-memory figure is read after every batch of flows).
    pub memory_bytes: usize,
}

impl PendingSegment {
    /// Segment `id` of `table`'s chunk at `chunk` (chunks `chunk_secs`
    /// long) holding `batches`. Its time range is validated for real
    /// before writing; this one only has to be right for retention, which
    /// may run before the write.
    pub fn new(
        table: &str,
        chunk: u32,
        chunk_secs: u32,
        batches: Vec<RecordBatch>,
        id: u64,
    ) -> PendingSegment {
        let (time_min, time_max) =
            crate::segment::time_range_of(&batches).unwrap_or((chunk, chunk));
        PendingSegment {
            meta: SegmentMeta {
                id,
                table: table.to_string(),
                chunk_start: chunk,
                file: format!("{table}/{chunk}-{id}.parquet"),
                rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
                bytes: 0,
                time_min,
                time_max,
                sealed_in: None,
            },
            memory_bytes: batches.iter().map(RecordBatch::get_array_memory_size).sum(),
            batches,
            chunk_secs,
        }
    }
}

/// Sets each segment's `memory_bytes` to the bytes of the buffers no
/// earlier segment of `pending` holds: batches share buffers (every text
/// column the dictionary's values, a derived table's passed-through batch
/// its source's columns), and summing each batch's size counted them once
/// per use.
pub(crate) fn count_memory_once(pending: &mut [PendingSegment]) {
    let mut seen = std::collections::HashSet::new();
    for segment in pending {
        let mut bytes = 0;
        for column in segment.batches.iter().flat_map(RecordBatch::columns) {
            bytes += unseen_bytes(&column.to_data(), &mut seen);
        }
        segment.memory_bytes = bytes;
    }
}

/// Bytes of the buffers `batches` hold, each buffer counted once (every
/// text column of a sealed batch shares the store's dictionary).
pub(crate) fn batches_memory_once(batches: &[RecordBatch]) -> usize {
    let mut seen = std::collections::HashSet::new();
    batches
        .iter()
        .flat_map(RecordBatch::columns)
        .map(|column| unseen_bytes(&column.to_data(), &mut seen))
        .sum()
}

/// Capacity of the buffers of `data` (and of its children) not in `seen`,
/// which it joins.
fn unseen_bytes(
    data: &arrow::array::ArrayData,
    seen: &mut std::collections::HashSet<usize>,
) -> usize {
    let mut buffers: Vec<&arrow::buffer::Buffer> = data.buffers().iter().collect();
    buffers.extend(data.nulls().map(|n| n.buffer()));
    let own: usize = buffers
        .into_iter()
        .filter(|b| seen.insert(b.data_ptr().as_ptr() as usize))
        .map(arrow::buffer::Buffer::capacity)
        .sum();
    own + data
        .child_data()
        .iter()
        .map(|child| unseen_bytes(child, seen))
        .sum::<usize>()
}

/// Counts the durable steps of a commit and stops after a set number of
/// them (crash tests: see `Store::interrupt_next_commit_after`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steps {
    done: usize,
    max: usize,
}

impl Steps {
    /// No limit unless `max` is given.
    pub fn new(max: Option<usize>) -> Self {
        Steps {
            done: 0,
            max: max.unwrap_or(usize::MAX),
        }
    }

    /// Takes up to `n` steps at once: how many are allowed before the
    /// commit stops as a crash would (then the next step fails).
    pub fn take(&mut self, n: usize) -> usize {
        let allowed = n.min(self.max.saturating_sub(self.done));
        self.done += allowed;
        allowed
    }

    /// Takes the next step, or stops the commit as a crash would.
    pub fn step(&mut self) -> Result<(), StoreError> {
        self.done += 1;
        if self.done <= self.max {
            Ok(())
        } else {
            Err(StoreError::Interrupted)
        }
    }
}

/// Writes every segment of `pending` that `next` lists into `dir`, filling
/// in its entry's size and time range, then syncs the table directories.
pub(crate) fn write_segments(
    dir: &Path,
    pending: &[PendingSegment],
    next: &mut Manifest,
    steps: &mut Steps,
) -> Result<(), StoreError> {
    // Retention may have dropped a pending segment from `next` already.
    let listed: Vec<&PendingSegment> = pending
        .iter()
        .filter(|p| next.segments.iter().any(|s| s.id == p.meta.id))
        .collect();
    // One step per segment, as if written one after the other: past the
    // step limit (crash tests), the later segments are not written.
    let allowed = steps.take(listed.len());
    let written = in_parallel(&listed[..allowed], |segment| write_pending(dir, segment));
    for (segment, outcome) in listed.iter().zip(written) {
        let (bytes, time_min, time_max) = outcome?;
        let entry = next
            .segments
            .iter_mut()
            .find(|s| s.id == segment.meta.id)
            .ok_or_else(|| {
                StoreError::Config(format!(
                    "segment {} missing from the next manifest",
                    segment.meta.id
                ))
            })?;
        entry.bytes = bytes;
        entry.time_min = time_min;
        entry.time_max = time_max;
    }
    if allowed < listed.len() {
        return steps.step();
    }
    steps.step()?;
    let tables: std::collections::BTreeSet<&str> =
        listed.iter().map(|p| p.meta.table.as_str()).collect();
    for table in tables {
        sync_dir(&dir.join(table))?;
    }
    Ok(())
}

/// Validates and writes one segment; its size and time range.
fn write_pending(dir: &Path, segment: &PendingSegment) -> Result<(u64, u32, u32), StoreError> {
    let path = Manifest::segment_path(dir, &segment.meta);
    let (time_min, time_max) = validate_batches(
        &segment.batches,
        segment.meta.chunk_start,
        segment.chunk_secs,
    )
    .map_err(|reason| StoreError::SegmentMismatch {
        path: path.clone(),
        reason: format!("refused before writing: {reason}"),
    })?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let bytes = write_segment(&path, &segment.batches)?;
    Ok((bytes, time_min, time_max))
}

/// `work` on every item, on up to one thread per core; the results in
/// the items' order.
pub(crate) fn in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(work).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return done;
                        };
                        done.push((i, work(item)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// What a seal writes, between [`Store::seal_begin`](crate::store::Store::seal_begin)
/// and [`Store::seal_finish`](crate::store::Store::seal_finish).
#[derive(Debug)]
pub struct SealJob {
    pub(crate) pending: Arc<[PendingSegment]>,
    pub(crate) next: Manifest,
    pub(crate) dir: PathBuf,
    pub(crate) steps: Steps,
    /// Segments that add to a chunk already on disk.
    pub(crate) deltas: usize,
    /// Segments retention removed from the manifest.
    pub(crate) expired: usize,
    /// The outcome of [`write`](Self::write), if it ran.
    pub(crate) written: Option<Result<(), StoreError>>,
}

impl SealJob {
    /// Writes and syncs the segments and the next manifest (as
    /// `MANIFEST.tmp`); call it without holding the store lock. The outcome
    /// is kept: `seal_finish` reports it, and publishes the manifest.
    pub fn write(&mut self) {
        let outcome = write_segments(&self.dir, &self.pending, &mut self.next, &mut self.steps)
            .and_then(|()| self.steps.step())
            .and_then(|()| self.next.write_pending(&self.dir));
        self.written = Some(outcome);
    }

    /// Number of segments the seal writes.
    pub fn segments(&self) -> usize {
        self.pending.len()
    }
}
