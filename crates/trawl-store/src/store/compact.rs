//! Compaction in three steps, so that reading, merging and writing a
//! chunk's segments never holds the store lock (a detail chunk is large:
//! every segment was read into memory under the write lock).
//!
//! ```text
//! Store::compaction_begin  (store lock)  choose chunks (each within compaction_bytes_max);
//!                                        merge rollup chunks (they need the dictionary);
//!                                        reserve segment ids
//! CompactionJob::run       (no lock)     read and concatenate detail chunks; write and
//!                                        sync every merged segment
//! Store::compaction_finish (store lock)  if every replaced segment is still listed and no
//!                                        seal is out: manifest without them, with the
//!                                        merged ones (and retention), published; else the
//!                                        written files are dropped and the next pass retries
//! ```
//!
//! Merged segments hold exactly the rows of the ones they replace, so a
//! seal published meanwhile (it only adds segments) changes nothing: the
//! job is re-based onto the newest manifest. Files of an abandoned or
//! failed job are in no manifest; they are doomed (deleted after the
//! delay) or removed at the next open.

use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use super::{DETAIL_TABLE, Store, read_segment_of, within_budget};
use crate::commit::{PendingSegment, Steps, write_segments};
use crate::error::StoreError;
use crate::manifest::{Manifest, SegmentMeta};

/// One chunk being compacted.
#[derive(Debug)]
struct Input {
    table: String,
    chunk: u32,
    chunk_secs: u32,
    /// The segments it replaces.
    segments: Vec<SegmentMeta>,
    /// Merged already (rollups), or to be read (detail).
    merged: Option<Vec<RecordBatch>>,
    id: u64,
}

/// A compaction between [`Store::compaction_begin`] and
/// [`Store::compaction_finish`]; [`run`](Self::run) it without the lock.
#[derive(Debug)]
pub struct CompactionJob {
    inputs: Vec<Input>,
    dir: std::path::PathBuf,
    detail_schema: Option<SchemaRef>,
    steps: Steps,
    pending: Vec<PendingSegment>,
    written: Manifest,
    outcome: Option<Result<(), StoreError>>,
}

impl CompactionJob {
    /// Reads the detail chunks, then writes and syncs every merged segment.
    pub fn run(&mut self) {
        let outcome = self.read_and_write();
        self.outcome = Some(outcome);
    }

    /// One chunk at a time: read (detail), write, drop the rows, so that
    /// the job holds one chunk's rows at most.
    fn read_and_write(&mut self) -> Result<(), StoreError> {
        for input in &mut self.inputs {
            let batches = match input.merged.take() {
                Some(batches) => batches,
                None => read_chunk(&self.dir, self.detail_schema.as_ref(), input)?,
            };
            let mut segment = PendingSegment::new(
                &input.table,
                input.chunk,
                input.chunk_secs,
                batches,
                input.id,
            );
            self.written.segments.push(segment.meta.clone());
            self.written.next_segment = self.written.next_segment.max(input.id + 1);
            // Compaction's memory is bounded by its own budget, not counted
            // as open rows.
            write_segments(
                &self.dir,
                std::slice::from_ref(&segment),
                &mut self.written,
                &mut self.steps,
                &std::sync::atomic::AtomicUsize::new(0),
            )?;
            segment.batches = Vec::new();
            segment.memory_bytes = 0;
            self.pending.push(segment);
        }
        Ok(())
    }
}

/// The rows of a detail chunk's segments, validated after reading.
fn read_chunk(
    dir: &std::path::Path,
    schema: Option<&SchemaRef>,
    input: &Input,
) -> Result<Vec<RecordBatch>, StoreError> {
    let schema = schema.ok_or_else(|| StoreError::Config(format!("no table {}", input.table)))?;
    let mut batches = Vec::new();
    for segment in &input.segments {
        let path = Manifest::segment_path(dir, segment);
        batches.extend(read_segment_of(&path, segment, &input.table, schema)?);
    }
    Ok(batches)
}

impl Store {
    /// Step 1 of a compaction (under the store lock): chooses the chunks,
    /// merges the rollup ones, reserves ids. `None` while a seal is out.
    pub fn compaction_begin(&mut self) -> Result<Option<CompactionJob>, StoreError> {
        if self.seal_in_flight() {
            return Ok(None);
        }
        let mut inputs = Vec::new();
        // The budget holds for the whole pass: merged rollup rows wait in
        // the job, and the lock is held while they are merged.
        let mut budget = self.config.compaction_bytes_max;
        for (table, chunk) in self.compaction_candidates() {
            let segments: Vec<SegmentMeta> = self
                .manifest
                .segments
                .iter()
                .filter(|s| s.table == table && s.chunk_start == chunk)
                .cloned()
                .collect();
            let segments = self.without_held_detail(&table, segments);
            let (segments, _) = within_budget(segments, budget);
            if segments.len() < 2 {
                continue;
            }
            budget -= segments.iter().map(|s| s.bytes).sum::<u64>();
            let merged = if table == DETAIL_TABLE {
                None
            } else {
                match self.merge_segments(&table, &segments) {
                    Ok(batches) => Some(batches),
                    Err(StoreError::DictionaryFull { .. }) => {
                        // Left as it is: queries merge its segments anyway.
                        self.stats.compactions_refused += 1;
                        continue;
                    }
                    Err(error) => return Err(error),
                }
            };
            let id = self.ids_drafted.max(self.manifest.next_segment);
            self.ids_drafted = id + 1;
            let chunk_secs = self.chunk_secs(&table);
            inputs.push(Input {
                table,
                chunk,
                chunk_secs,
                segments,
                merged,
                id,
            });
        }
        Ok(Some(CompactionJob {
            inputs,
            dir: self.config.data_dir.clone(),
            detail_schema: self.table_schema(DETAIL_TABLE),
            steps: Steps::new(self.interrupt_after_steps.take()),
            pending: Vec::new(),
            written: Manifest::default(),
            outcome: None,
        }))
    }

    /// `segments` of `table` less the detail segments a sink has yet to
    /// publish (see [`Store::hold_detail_after`]).
    fn without_held_detail(&self, table: &str, segments: Vec<SegmentMeta>) -> Vec<SegmentMeta> {
        match self.detail_held_after() {
            Some(after) if table == DETAIL_TABLE => segments
                .into_iter()
                .filter(|s| s.sealed_in.is_none_or(|g| g <= after))
                .collect(),
            _ => segments,
        }
    }

    /// Step 3 of a compaction (under the store lock): publishes the merged
    /// segments in place of the ones they replace, with retention applied.
    /// Returns the number of chunks compacted.
    pub fn compaction_finish(&mut self, job: CompactionJob) -> Result<usize, StoreError> {
        let CompactionJob {
            inputs,
            mut steps,
            pending,
            written,
            outcome,
            ..
        } = job;
        outcome.unwrap_or(Ok(()))?;
        let replaced: Vec<&SegmentMeta> = inputs.iter().flat_map(|i| &i.segments).collect();
        let listed = |id: u64| self.manifest.segments.iter().any(|s| s.id == id);
        if self.seal_in_flight() || !replaced.iter().all(|s| listed(s.id)) {
            // Re-based, it would race the seal's manifest: dropped, retried.
            self.doom(&written.segments);
            return Ok(0);
        }
        let mut next = self.manifest.clone();
        next.next_segment = next.next_segment.max(self.ids_drafted);
        next.segments
            .retain(|s| !replaced.iter().any(|r| r.id == s.id));
        next.segments.extend(written.segments.iter().cloned());
        let expired = self.expire(&mut next);
        if pending.is_empty() && expired == 0 {
            self.delete_doomed(false);
            return Ok(0);
        }
        // A merged segment retention dropped at once is no one's.
        let unlisted: Vec<SegmentMeta> = written
            .segments
            .iter()
            .filter(|w| !next.segments.iter().any(|s| s.id == w.id))
            .cloned()
            .collect();
        // Merged rows are dropped once written (one chunk held at a
        // time): queries load the merged segments into the cache.
        self.publish(next, &mut steps)?;
        let replaced: Vec<SegmentMeta> = replaced.into_iter().cloned().collect();
        self.doom(&replaced);
        self.doom(&unlisted);
        self.stats.compactions += pending.len() as u64;
        self.stats.segments_compacted += replaced.len() as u64;
        self.stats.segments_expired += expired as u64;
        self.delete_doomed(false);
        Ok(pending.len())
    }

    /// Marks segment files for deletion after the delay (never while a
    /// published manifest lists them: see `delete_doomed`).
    fn doom(&mut self, segments: &[SegmentMeta]) {
        let now = Instant::now();
        let dir = self.config.data_dir.clone();
        self.doomed.extend(
            segments
                .iter()
                .map(|s| (Manifest::segment_path(&dir, s), now)),
        );
    }
}
