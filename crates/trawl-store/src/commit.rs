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
//! Segments are encoded on every core at once, row group by row group
//! across segments, and appended to their files in order; a derived
//! table's passed-through rows copy the encoded columns of the segment
//! they came from, written first (see [`write_segments`]). A crash test's
//! step limit still stops the commit after the same segments as a
//! one-by-one write would.
//!
//! Invariant: a segment is validated against its chunk before it is
//! written (and again after every read, in `segment`); the manifest entry
//! of a written segment carries the file's size and time range.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;

use arrow::array::RecordBatch;

use crate::error::StoreError;
use crate::manifest::{Manifest, SegmentMeta, sync_dir};
use crate::schema::TIME_COLUMN;
use crate::segment::{
    EncodedRowGroup, EncodedSource, RowGroupEncoder, SegmentFile, WrittenSegment, row_groups_of,
    schema_of, validate_batches, write_segment_reusing,
};

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
///
/// Segments whose rows another segment of the commit holds already (a
/// derived table's passed-through rows) are written after it, copying its
/// encoded columns ([`encoded_sources`]).
pub(crate) fn write_segments(
    dir: &Path,
    pending: &[PendingSegment],
    next: &mut Manifest,
    steps: &mut Steps,
    held: &AtomicUsize,
) -> Result<(), StoreError> {
    // Retention may have dropped a pending segment from `next` already.
    let listed: Vec<&PendingSegment> = pending
        .iter()
        .filter(|p| next.segments.iter().any(|s| s.id == p.meta.id))
        .collect();
    // One step per segment, as if written one after the other: past the
    // step limit (crash tests), the later segments are not written.
    let allowed = steps.take(listed.len());
    let written = write_reusing(dir, &listed[..allowed], held);
    for (segment, outcome) in listed.iter().zip(written) {
        let (written, time_min, time_max) = outcome?;
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
        entry.bytes = written.bytes;
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

/// The outcome of writing one segment: the file, and its time range.
type Written = Result<(WrittenSegment, u32, u32), StoreError>;

/// Writes `segments` on every core, in two waves, counting in `held` the
/// bytes of encoded row groups not yet appended to their files.
///
/// First the segments that copy nothing: the row groups of all of them
/// are encoded at once (so one large segment does not leave a core idle),
/// each appended to its file as soon as the groups before it are; a file
/// is created at its first group and finished by whoever appends its last,
/// so about one file per core is open at a time, and few encoded groups
/// wait in memory. Then, one segment per core, those that copy encoded
/// columns from the first (a batch whose source failed is encoded).
fn write_reusing(dir: &Path, segments: &[&PendingSegment], held: &AtomicUsize) -> Vec<Written> {
    let sources = encoded_sources(segments);
    let reuses = |i: usize| sources[i].iter().any(Option::is_some);
    let paths: Vec<PathBuf> = segments
        .iter()
        .map(|s| Manifest::segment_path(dir, &s.meta))
        .collect();
    let mut encoders: Vec<Option<RowGroupEncoder>> = Vec::new();
    let mut items: Vec<(usize, usize, Vec<RecordBatch>)> = Vec::new();
    let mut states: Vec<Mutex<Writing>> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let mut prepared = prepare(&paths[i], segment);
        let mut encoder = None;
        let mut groups = Vec::new();
        if let (Ok((schema, _)), false) = (&prepared, reuses(i)) {
            match RowGroupEncoder::new(schema.clone()) {
                Ok(made) => {
                    encoder = Some(made);
                    groups = row_groups_of(&segment.batches);
                }
                Err(source) => {
                    prepared = Err(StoreError::Parquet {
                        path: paths[i].clone(),
                        source,
                    })
                }
            }
        }
        items.extend(
            groups
                .iter()
                .enumerate()
                .map(|(k, rows)| (i, k, rows.clone())),
        );
        states.push(Mutex::new(Writing {
            path: paths[i].clone(),
            prepared,
            file: None,
            appended: 0,
            groups: groups.len(),
            held: std::collections::BTreeMap::new(),
            outcome: None,
        }));
        encoders.push(encoder);
    }
    // Largest segments first (rows x columns; each segment's groups stay
    // together and in order, so about one file per core is open): the
    // detail table's wide groups no longer run alone at the seal's end
    // while the other core waits.
    let costs: Vec<usize> = segments
        .iter()
        .map(|s| {
            s.batches
                .iter()
                .map(|b| b.num_rows() * b.num_columns())
                .sum()
        })
        .collect();
    items.sort_by_key(|(i, k, _)| (std::cmp::Reverse(costs[*i]), *i, *k));
    let lock = |i: usize| {
        states[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    in_parallel(&items, |(i, k, rows)| {
        if let Some(encoder) = &encoders[*i] {
            let group = encoder.encode(rows).map_err(|source| StoreError::Parquet {
                path: paths[*i].clone(),
                source,
            });
            held.fetch_add(
                group.as_ref().map_or(0, EncodedRowGroup::bytes),
                Ordering::Relaxed,
            );
            let appended = lock(*i).add(*k, group);
            held.fetch_sub(appended, Ordering::Relaxed);
        }
    });
    let mut written: Vec<Option<Written>> = Vec::with_capacity(segments.len());
    for i in 0..segments.len() {
        let mut state = lock(i);
        if !reuses(i) && state.outcome.is_none() {
            state.outcome = Some(state.finish());
        }
        written.push(state.outcome.take());
    }
    let second: Vec<usize> = (0..segments.len()).filter(|&i| reuses(i)).collect();
    let seconds = in_parallel(&second, |&i| {
        let reuse: Vec<Option<EncodedSource<'_>>> = sources[i]
            .iter()
            .map(|source| {
                let j = (*source)?;
                let (file, ..) = written[j].as_ref()?.as_ref().ok()?;
                Some(EncodedSource {
                    path: &paths[j],
                    schema: segments[j].batches.first()?.schema_ref(),
                    metadata: &file.metadata,
                })
            })
            .collect();
        // Validated once, in the first pass; its error, if any, is this segment's.
        let prepared = std::mem::replace(
            &mut lock(i).prepared,
            Err(StoreError::Config("segment written twice".into())),
        );
        let (_, (time_min, time_max)) = prepared?;
        let file = write_segment_reusing(&paths[i], &segments[i].batches, &reuse)?;
        Ok((file, time_min, time_max))
    });
    for (i, outcome) in second.iter().zip(seconds) {
        written[*i] = Some(outcome);
    }
    written
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|| Err(StoreError::Config("segment left unwritten".into())))
        })
        .collect()
}

/// A segment's schema and time range, validated before it is written.
type Prepared = (SchemaRef, (u32, u32));

/// A segment of the first wave while [`write_reusing`] writes it.
struct Writing {
    path: PathBuf,
    prepared: Result<Prepared, StoreError>,
    /// The file, from its first row group on.
    file: Option<SegmentFile>,
    /// Row groups appended so far, and in all.
    appended: usize,
    groups: usize,
    /// Encoded groups waiting for an earlier one.
    held: std::collections::BTreeMap<usize, Result<EncodedRowGroup, StoreError>>,
    /// Set at the first error, or once finished.
    outcome: Option<Written>,
}

impl Writing {
    /// Row group `index`, encoded: appended with every held one that
    /// follows it, and the file finished after the last. Returns the
    /// encoded bytes that left memory (appended or dropped).
    fn add(&mut self, index: usize, group: Result<EncodedRowGroup, StoreError>) -> usize {
        self.held.insert(index, group);
        let mut released = 0;
        while let Some(group) = self.held.remove(&self.appended) {
            released += group.as_ref().map_or(0, EncodedRowGroup::bytes);
            self.appended += 1;
            if self.outcome.is_none()
                && let Err(e) = group.and_then(|group| self.append(group))
            {
                // The partial file is dropped unfinished: no manifest names it.
                self.file = None;
                self.outcome = Some(Err(e));
            }
        }
        if self.appended == self.groups && self.outcome.is_none() {
            self.outcome = Some(self.finish());
        }
        released
    }

    fn append(&mut self, group: EncodedRowGroup) -> Result<(), StoreError> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(self.create()?),
        };
        file.append(group)
    }

    fn create(&self) -> Result<SegmentFile, StoreError> {
        let (schema, _) = self.prepared.as_ref().map_err(clone_error)?;
        SegmentFile::create(&self.path, schema.clone())
    }

    /// Finishes the file (see [`SegmentFile::finish`]).
    fn finish(&mut self) -> Written {
        let (_, (time_min, time_max)) = *self.prepared.as_ref().map_err(clone_error)?;
        let file = match self.file.take() {
            Some(file) => file,
            None => self.create()?,
        };
        Ok((file.finish()?, time_min, time_max))
    }
}

/// A segment's error, again (reported once per segment).
fn clone_error(error: &StoreError) -> StoreError {
    StoreError::Config(error.to_string())
}

/// Validates `segment` before it is written to `path` (and makes its
/// table's directory): its schema and time range.
fn prepare(path: &Path, segment: &PendingSegment) -> Result<Prepared, StoreError> {
    let time_range = validate_batches(
        &segment.batches,
        segment.meta.chunk_start,
        segment.chunk_secs,
    )
    .map_err(|reason| StoreError::SegmentMismatch {
        path: path.to_path_buf(),
        reason: format!("refused before writing: {reason}"),
    })?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    Ok((schema_of(path, &segment.batches)?, time_range))
}

/// For each batch of each segment, the earlier segment whose file will
/// hold its rows already: one whose only batch has the same rows and, for
/// every column but `time`, the very same array (so the same values in the
/// same order; a derived table's passed-through batch shares its source's
/// arrays). Only segments that reuse nothing themselves are sources.
fn encoded_sources(segments: &[&PendingSegment]) -> Vec<Vec<Option<usize>>> {
    let first_column = |batch: &RecordBatch| -> Option<usize> {
        let (k, _) = batch
            .schema()
            .fields()
            .iter()
            .enumerate()
            .find(|(_, f)| f.name() != TIME_COLUMN)?;
        Some(Arc::as_ptr(batch.column(k)).cast::<()>() as usize)
    };
    let mut by_array: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        let sources: Vec<Option<usize>> = segment
            .batches
            .iter()
            .map(|batch| {
                let j = *by_array.get(&first_column(batch)?)?;
                let source = segments[j].batches.first()?;
                same_rows_but_time(batch, source).then_some(j)
            })
            .collect();
        if let [batch] = &segment.batches[..]
            && sources.iter().all(Option::is_none)
            && let Some(array) = first_column(batch)
        {
            by_array.entry(array).or_insert(i);
        }
        out.push(sources);
    }
    out
}

/// Whether every column of `batch` but `time` is the same array as
/// `source`'s column of that name (and so are the row counts).
fn same_rows_but_time(batch: &RecordBatch, source: &RecordBatch) -> bool {
    batch.num_rows() == source.num_rows()
        && batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .filter(|(field, _)| field.name() != TIME_COLUMN)
            .all(|(field, column)| {
                source
                    .column_by_name(field.name())
                    .is_some_and(|own| Arc::ptr_eq(own, column))
            })
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
    /// Encoded row groups waiting for their files (the store counts them
    /// as open memory).
    pub(crate) encoded_bytes: Arc<AtomicUsize>,
}

impl SealJob {
    /// Writes and syncs the segments and the next manifest (as
    /// `MANIFEST.tmp`); call it without holding the store lock. The outcome
    /// is kept: `seal_finish` reports it, and publishes the manifest.
    pub fn write(&mut self) {
        let outcome = write_segments(
            &self.dir,
            &self.pending,
            &mut self.next,
            &mut self.steps,
            &self.encoded_bytes,
        )
        .and_then(|()| self.steps.step())
        .and_then(|()| self.next.write_pending(&self.dir));
        self.written = Some(outcome);
    }

    /// Number of segments the seal writes.
    pub fn segments(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, StringArray, TimestampSecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;
    use crate::rollup::regrain;

    fn minutes(apps: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                TIME_COLUMN,
                DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
                false,
            ),
            Field::new("src_app", DataType::Utf8, true),
        ]));
        let times = (0..apps.len() as i64).map(|i| 3600 + 60 * i);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampSecondArray::from_iter_values(times).with_timezone("UTC")),
            Arc::new(StringArray::from(apps.to_vec())),
        ];
        RecordBatch::try_new(schema, columns).expect("columns match the schema")
    }

    /// Only a batch sharing its source's very arrays reuses it; equal
    /// values in other arrays, or a source of several batches, do not.
    #[test]
    fn only_passed_through_batches_reuse_their_sources_columns() {
        let batch = minutes(&["a", "b", "c"]);
        let hourly = regrain(&batch, batch.schema_ref(), 3600).expect("regrained");
        let daily = regrain(&batch, batch.schema_ref(), 86400).expect("regrained");
        let lookalike =
            regrain(&minutes(&["a", "b", "c"]), batch.schema_ref(), 3600).expect("regrained");
        let other = minutes(&["d", "e"]);
        let other_hourly = regrain(&other, other.schema_ref(), 3600).expect("regrained");
        let segments = [
            PendingSegment::new("flows_1m", 3600, 3600, vec![batch], 1),
            PendingSegment::new("flows_1h", 0, 86400, vec![lookalike, hourly], 2),
            PendingSegment::new("flows_1d", 0, 86400, vec![daily.clone()], 3),
            PendingSegment::new("flows_1m", 7200, 3600, vec![other.clone(), other], 4),
            PendingSegment::new("flows_1h", 0, 86400, vec![other_hourly], 5),
            PendingSegment::new("flows_1d", 0, 86400, vec![daily], 6),
        ];
        let refs: Vec<&PendingSegment> = segments.iter().collect();
        assert_eq!(
            encoded_sources(&refs),
            vec![
                vec![None],
                vec![None, Some(0)],
                vec![Some(0)],
                // Several batches: no source for others.
                vec![None, None],
                vec![None],
                // Segment 2 reuses segment 0, so it is no source itself.
                vec![Some(0)],
            ]
        );
    }

    /// Writes `segments` with [`write_reusing`] and reads each file back.
    fn write_and_read_back(dir: &Path, segments: &[PendingSegment]) -> Vec<Vec<RecordBatch>> {
        let refs: Vec<&PendingSegment> = segments.iter().collect();
        let held = AtomicUsize::new(0);
        let written = write_reusing(dir, &refs, &held);
        assert_eq!(
            held.load(Ordering::Relaxed),
            0,
            "an encoded group still counted"
        );
        segments
            .iter()
            .zip(written)
            .map(|(segment, outcome)| {
                let (written, ..) = outcome.expect("written");
                let meta = SegmentMeta {
                    bytes: written.bytes,
                    ..segment.meta.clone()
                };
                crate::segment::read_segment(&Manifest::segment_path(dir, &meta), &meta)
                    .expect("read back")
            })
            .collect()
    }

    /// Row groups of one segment encoded on several threads land in the
    /// file in order, whichever finishes first.
    #[test]
    fn a_segment_of_several_row_groups_reads_back_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rows = crate::segment::ROW_GROUP_ROWS_MAX * 3 + 5;
        let apps: Vec<String> = (0..rows).map(|i| format!("a{}", i % 1000)).collect();
        let apps: Vec<&str> = apps.iter().map(String::as_str).collect();
        let mut batch = minutes(&apps);
        let times =
            TimestampSecondArray::from_iter_values((0..rows as i64).map(|i| 3600 + i % 3600))
                .with_timezone("UTC");
        batch = RecordBatch::try_new(
            batch.schema(),
            vec![Arc::new(times), batch.column(1).clone()],
        )
        .expect("columns match the schema");
        let segments = [
            PendingSegment::new(
                "flows_1m",
                3600,
                3600,
                vec![batch.slice(0, 10), batch.slice(10, rows - 10)],
                1,
            ),
            PendingSegment::new("flows_1m", 3600, 3600, vec![batch.slice(0, 7)], 2),
        ];
        for (segment, read) in segments
            .iter()
            .zip(write_and_read_back(dir.path(), &segments))
        {
            let read = arrow::compute::concat_batches(&batch.schema(), &read).expect("concat");
            let want =
                arrow::compute::concat_batches(&batch.schema(), &segment.batches).expect("concat");
            assert_eq!(read, want, "segment {}", segment.meta.id);
        }
    }

    /// Written in two waves, every segment reads back as its batches.
    #[test]
    fn reusing_segments_read_back_as_their_batches() {
        let dir = tempfile::tempdir().expect("temp dir");
        let batch = minutes(&["a", "b", "c", "a"]);
        let hourly = regrain(&batch, batch.schema_ref(), 3600).expect("regrained");
        let segments = [
            PendingSegment::new("flows_1m", 3600, 3600, vec![batch], 1),
            PendingSegment::new("flows_1h", 0, 86400, vec![hourly], 2),
        ];
        for (segment, read) in segments
            .iter()
            .zip(write_and_read_back(dir.path(), &segments))
        {
            assert_eq!(read, segment.batches, "{}", segment.meta.table);
        }
    }
}
