//! The work on one chunk of text: decode its lines, attribute both sides
//! of every record at the record's time, and add the batch to the store
//! together with the source position just past its last line.
//!
//! ```text
//! text chunk ─► TextDecoder (lines → FlowRecords, errors counted)
//!            ─► index (write): learn from every record
//!            ─► index (read): owner_at(src|dst, start); note the owners' side codes in the store
//!            ─► store (read; index too only if some flows wait): add(flows, position); push held flows
//! ```
//!
//! Lock order everywhere: index, then store, then hold. Held flows enter
//! the hold under the store lock, in the same step that records the
//! position covering them, so a seal (which empties the hold first) sees
//! either the batch, its held flows and its position, or none of them.

use std::net::IpAddr;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use trawl_attrib::{AttributionIndex, NO_OWNER, Secs, WorkloadId, is_private};
use trawl_flowlog::{
    DecodeError, DecodeOptions, FlowRecord, LineDecoder, LogFormat, RecordSink, TextDecoder,
};
use trawl_store::{EnrichedFlow, SealReport, SharedIndex, SharedStore, Store, StoreError};

use crate::config::{HOLD_SECS_MAX, PipelineConfig};
use crate::heartbeats::{Heartbeat, HeartbeatOutbox};
use crate::hold::{HeldFlow, HoldBuffer};
use crate::kafka::PartitionPosition;
use crate::kinesis::ShardPosition;
use crate::position::{FilePosition, Fingerprint};
use crate::progress::FileProgress;
use crate::push_log::{PUSH_LOG_KEY, PushLog, PushPosition};
use crate::source::{ChunkJob, SpareTexts};
use crate::stats::{PipelineStats, ReleaseReason};

/// Everything the stages share.
#[derive(Debug)]
pub struct Context {
    /// Settings.
    pub config: PipelineConfig,
    /// The store.
    pub store: SharedStore,
    /// The attribution index.
    pub index: SharedIndex,
    /// Counters.
    pub stats: PipelineStats,
    /// Held flows.
    pub hold: Mutex<HoldBuffer>,
    /// Decoder limits.
    pub decode_options: DecodeOptions,
    /// The write-ahead log of pushes, if pushes are to be durable.
    pub push_log: Option<PushLog>,
    /// Held while a push is appended to the log and added, so that pushes
    /// are added in their log order (see `push_log`).
    pub push_order: Mutex<()>,
    /// The log of pushed metadata, if the snapshot is saved.
    pub metadata_log: Option<PushLog>,
    /// The same for metadata pushes (see `metadata_log`).
    pub metadata_order: Mutex<()>,
    /// Held while the attribution snapshot is saved (one save at a time).
    pub snapshot_lock: Mutex<()>,
    /// Chunks of files and streams for any free worker (bounded: a reader
    /// past it processes its chunk itself).
    pub chunks: crossbeam_channel::Sender<ChunkJob>,
    /// The other end of `chunks`.
    pub chunk_jobs: crossbeam_channel::Receiver<ChunkJob>,
    /// Text buffers of processed chunks, for the next ones.
    pub spare_texts: SpareTexts,
    /// Heartbeats learned here, kept to be shared (set when a metadata
    /// topic publishes them).
    pub heartbeats: OnceLock<HeartbeatOutbox>,
}

impl Context {
    /// A context over `store` and `index`, with the logs of pushes and of
    /// pushed metadata if they are kept.
    pub fn new(
        config: PipelineConfig,
        store: Store,
        index: AttributionIndex,
        push_log: Option<PushLog>,
        metadata_log: Option<PushLog>,
    ) -> Context {
        // Two chunks a worker: enough to keep them busy while readers inflate.
        let (chunks, chunk_jobs) = crossbeam_channel::bounded(2 * config.workers.max(1));
        // As many spare texts as queued chunks; a chunk is `chunk_bytes`
        // and one line more, so twice that bounds every ordinary one.
        let spare_texts = SpareTexts::new(
            2 * config.workers.max(1),
            config.chunk_bytes.saturating_mul(2).max(1 << 20),
        );
        Context {
            push_log,
            push_order: Mutex::new(()),
            metadata_log,
            metadata_order: Mutex::new(()),
            snapshot_lock: Mutex::new(()),
            chunks,
            chunk_jobs,
            spare_texts,
            heartbeats: OnceLock::new(),
            hold: Mutex::new(HoldBuffer::new(config.held_records_max)),
            store: Arc::new(std::sync::RwLock::new(store)),
            index: Arc::new(std::sync::RwLock::new(index)),
            stats: PipelineStats::default(),
            decode_options: DecodeOptions::default(),
            config,
        }
    }

    /// The index for reading (a poisoned lock still holds consistent data:
    /// every writer leaves it whole between calls).
    pub fn index_read(&self) -> RwLockReadGuard<'_, AttributionIndex> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The index for writing.
    pub fn index_write(&self) -> RwLockWriteGuard<'_, AttributionIndex> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store for writing.
    pub fn store_write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store for reading.
    pub fn store_read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn hold_lock(&self) -> std::sync::MutexGuard<'_, HoldBuffer> {
        self.hold.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where a chunk starts in a file: its position key and decompressed offset.
#[derive(Debug, Clone, Copy)]
pub struct ChunkPosition<'k> {
    /// The manifest key of the file.
    pub key: &'k str,
    /// Decompressed offset of the chunk's first byte.
    pub offset: u64,
    /// What else the position says.
    pub source: PositionSource<'k>,
    /// For a file whose chunks several workers add at once: its finished
    /// ranges, through which every position is noted (`progress.rs`).
    pub progress: Option<&'k FileProgress>,
}

/// The kind of source a [`ChunkPosition`] is in.
#[derive(Debug, Clone, Copy)]
pub enum PositionSource<'k> {
    /// A file, with its identity (recorded with every position).
    File(Option<Fingerprint>),
    /// A push, by its sequence number in the push log.
    Push(u64),
    /// A file of JSON envelopes: the offset is in its records' decoded text.
    Envelopes(Option<Fingerprint>),
    /// A Kafka message, by its offset in its partition: the offset is in
    /// the message's decoded text.
    Partition(u64),
    /// A Kinesis record, by its sequence number in its shard (and the
    /// shard's starting sequence number): the offset is in the record's
    /// decoded text.
    Sequence {
        /// The record's sequence number.
        seq: &'k str,
        /// The shard's starting sequence number.
        shard_start: &'k str,
    },
}

impl PositionSource<'_> {
    /// The same source with no borrow, if it holds none.
    pub fn into_static(self) -> Option<PositionSource<'static>> {
        Some(match self {
            PositionSource::File(f) => PositionSource::File(f),
            PositionSource::Push(seq) => PositionSource::Push(seq),
            PositionSource::Envelopes(f) => PositionSource::Envelopes(f),
            PositionSource::Partition(offset) => PositionSource::Partition(offset),
            PositionSource::Sequence { .. } => return None,
        })
    }
}

impl ChunkPosition<'_> {
    /// The manifest value of the position `end` bytes past the chunk's start.
    fn value(&self, end: usize) -> String {
        let offset = self.offset + end as u64;
        match self.source {
            PositionSource::File(fingerprint) => FilePosition {
                offset,
                fingerprint,
                ..FilePosition::default()
            }
            .encode(),
            PositionSource::Push(seq) => PushPosition { seq, offset }.encode(),
            PositionSource::Partition(message) => PartitionPosition {
                offset: message,
                byte: offset,
            }
            .encode(),
            PositionSource::Envelopes(fingerprint) => FilePosition {
                offset,
                envelopes: true,
                fingerprint,
                ..FilePosition::default()
            }
            .encode(),
            PositionSource::Sequence { seq, shard_start } => {
                ShardPosition::inside(seq, offset, shard_start).encode()
            }
        }
    }

    /// Marks `range` (bytes of the chunk) finished in the file's progress
    /// and notes the position that follows, if the file has progress.
    pub(crate) fn complete(&self, store: &Store, range: Range<usize>) -> Result<(), StoreError> {
        let Some(progress) = self.progress else {
            return Ok(());
        };
        let fingerprint = match self.source {
            PositionSource::File(fingerprint) | PositionSource::Envelopes(fingerprint) => {
                fingerprint
            }
            PositionSource::Push(_)
            | PositionSource::Partition(_)
            | PositionSource::Sequence { .. } => None,
        };
        let (start, end) = (
            self.offset + range.start as u64,
            self.offset + range.end as u64,
        );
        let mut noted = Ok(());
        progress.complete(start..end, |ranges| {
            let value = FilePosition {
                offset: ranges.offset,
                done: ranges.done(),
                fingerprint,
                ..FilePosition::default()
            }
            .encode();
            noted = store.note_positions(&[(self.key, &value)]);
        });
        noted
    }
}

/// Counts decode errors and prints the first ones (then one in 10,000).
struct Outcome<'s> {
    decoded: bool,
    stats: &'s PipelineStats,
}

impl RecordSink for Outcome<'_> {
    fn record(&mut self, _: &FlowRecord<'_>, _: &LogFormat) {
        self.decoded = true;
    }

    fn error(&mut self, error: DecodeError) {
        report_decode_error(self.stats, &error);
    }
}

/// Counts and (for the first 20, then every 10,000th) prints a decode error.
pub fn report_decode_error(stats: &PipelineStats, error: &DecodeError) {
    stats.decode_error(error.kind());
    let n = stats.decode_errors_total();
    if n <= 20 || n.is_multiple_of(10_000) {
        eprintln!("trawl: decode error #{n}: {error}");
    }
}

/// The format of the records being decoded, shared with held flows.
struct FormatCache(Option<Arc<LogFormat>>);

impl FormatCache {
    fn get(&mut self, decoder: &TextDecoder) -> Arc<LogFormat> {
        self.keep(decoder).clone()
    }

    /// The format held, taken from `decoder` if none is yet (no clone of
    /// the `Arc` on the per-record path).
    fn keep(&mut self, decoder: &TextDecoder) -> &Arc<LogFormat> {
        self.0
            .get_or_insert_with(|| Arc::new(decoder.format().clone()))
    }
}

/// Decodes, attributes and stores every line of `text` (which must end
/// with a newline; a final line without one is left out). With `at`, each
/// batch records the position just past its last line.
pub fn process_text(
    cx: &Context,
    decoder: &mut TextDecoder,
    text: &[u8],
    at: Option<ChunkPosition<'_>>,
) {
    // SIMD validation of the whole chunk (simdutf8): the standard
    // library's was 2 % of an ingest's instructions.
    let valid = simdutf8::basic::from_utf8(text).ok();
    let batch = cx.config.batch_records.max(1);
    let mut records = vec![FlowRecord::new(); batch];
    let mut lines: Vec<Range<usize>> = Vec::with_capacity(batch);
    let mut format = FormatCache(None);
    let mut outcome = Outcome {
        decoded: false,
        stats: &cx.stats,
    };
    let (mut start, mut batch_start) = (0, 0);
    for newline in memchr::memchr_iter(b'\n', text) {
        let range = start..newline;
        let n = lines.len();
        let headers = decoder.stats().header_lines;
        outcome.decoded = false;
        match valid.and_then(|v| v.get(range.clone())) {
            Some(line) => decoder.decode_text_line(line, &mut records[n], &mut outcome),
            None => decoder.decode_line(&text[range.clone()], &mut records[n], &mut outcome),
        }
        if outcome.decoded {
            // The record's format, before a header line can change it.
            format.keep(decoder);
            lines.push(range);
        }
        if decoder.stats().header_lines != headers {
            // A header may change the format: what came before is stored
            // with the old one, and every slot starts again empty.
            let position = at.map(|a| (a, batch_start..start));
            flush(
                cx,
                &records[..lines.len()],
                &lines,
                text,
                &mut format,
                decoder,
                position,
            );
            batch_start = start;
            lines.clear();
            records.iter_mut().for_each(|r| *r = FlowRecord::new());
            format = FormatCache(None);
        } else if lines.len() == batch {
            let position = at.map(|a| (a, batch_start..newline + 1));
            flush(cx, &records, &lines, text, &mut format, decoder, position);
            batch_start = newline + 1;
            lines.clear();
        }
        start = newline + 1;
    }
    let position = at.map(|a| (a, batch_start..start));
    flush(
        cx,
        &records[..lines.len()],
        &lines,
        text,
        &mut format,
        decoder,
        position,
    );
}

/// Waits while open memory is past the store's cap, sealing when no seal
/// is writing (a seal first releases every held flow, so the positions it
/// publishes cover only flows in the store). Sources therefore always wait
/// past the cap, also while seals fail (disk full): retried every 100 ms,
/// each failure counted. At most one seal per batch (a cap smaller than
/// what no seal frees, the dictionary, must not seal for ever). Memory
/// stays under the cap plus one batch per worker. Counted once per wait.
fn wait_while_full(cx: &Context) {
    let mut waited = false;
    loop {
        let (over, sealing) = {
            let store = cx.store_read();
            (store.over_cap(), store.seal_in_flight())
        };
        if !over {
            break;
        }
        waited = true;
        if sealing {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        match seal(cx) {
            Ok(_) => {
                // Once per batch: what a seal cannot free (the dictionary)
                // must not make every batch seal again and again.
                cx.stats.early_seals.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Err(StoreError::SealInFlight) => std::thread::sleep(Duration::from_millis(5)),
            Err(error) => {
                cx.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("trawl: seal at the memory cap failed (retrying): {error}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    if waited {
        cx.stats.full_waits.fetch_add(1, Ordering::Relaxed);
    }
}

/// Seals in three steps: take the open rows (and the held flows, with the
/// positions covering them) under the locks, write the segments without
/// them so workers keep adding and queries keep answering, then publish the
/// manifest under the store lock (see `trawl_store::commit`).
pub fn seal(cx: &Context) -> Result<SealReport, StoreError> {
    let mut job = {
        let index = cx.index_read();
        let mut store = cx.store_write();
        release_all(cx, &index, &mut store);
        store.seal_begin()?
    };
    job.write();
    let report = cx.store_write().seal_finish(job)?;
    cx.stats.seals.fetch_add(1, Ordering::Relaxed);
    truncate_push_log(cx);
    Ok(report)
}

/// Deletes the push log's segments that the published manifest covers.
fn truncate_push_log(cx: &Context) {
    let Some(log) = &cx.push_log else {
        return;
    };
    let sealed = cx
        .store_read()
        .positions()
        .get(PUSH_LOG_KEY)
        .and_then(|v| PushPosition::decode(v));
    if let Some(sealed) = sealed
        && let Err(error) = log.truncate_before(sealed)
    {
        cx.stats.store_errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("trawl: {error}");
    }
    cx.stats
        .push_log_bytes
        .store(log.bytes(), Ordering::Relaxed);
}

/// The owners of both sides of every record at the record's start, and
/// whether the flow should wait for metadata: a side is a private address
/// nobody held at `t`, while metadata is not yet complete up to `t`. The
/// lookups go to the index as one batch ([`AttributionIndex::owner_at_many`]).
fn owners(
    index: &AttributionIndex,
    records: &[FlowRecord<'_>],
    hold: bool,
) -> Vec<(WorkloadId, WorkloadId, bool)> {
    let sides = |r: &FlowRecord<'_>| [r.src_addr(), r.dst_addr()];
    let queries: Vec<(IpAddr, Secs)> = records
        .iter()
        .flat_map(|r| {
            let t = r.start().map_or(0, |s| s as Secs);
            sides(r).into_iter().flatten().map(move |ip| (ip, t))
        })
        .collect();
    let mut answers = Vec::with_capacity(queries.len());
    index.owner_at_many(&queries, &mut answers);
    let mut answers = queries.iter().zip(answers).map(|((ip, _), answer)| {
        let wait = !answer.settled && !answer.rule.is_interval() && is_private(*ip);
        (answer.owner, wait)
    });
    let mut side = |ip: Option<IpAddr>| match ip {
        Some(_) => answers.next().unwrap_or((NO_OWNER, false)),
        None => (NO_OWNER, false),
    };
    records
        .iter()
        .map(|r| {
            let (src, wait_src) = side(r.src_addr());
            let (dst, wait_dst) = side(r.dst_addr());
            (src, dst, hold && (wait_src || wait_dst))
        })
        .collect()
}

/// Learns from every record (the index's write lock, once); with an
/// outbox (heartbeats shared through the metadata topic), keeps what was
/// learned for it.
fn learn(cx: &Context, records: &[FlowRecord<'_>]) {
    let outbox = cx.heartbeats.get();
    let mut learned = Vec::new();
    {
        let mut index = cx.index_write();
        index.learn_from_flows(records, |record, (ip, from, to)| {
            if let (Some(_), Some(interface_id)) = (outbox, record.interface_id()) {
                learned.push(Heartbeat {
                    ip,
                    interface_id: interface_id.to_string(),
                    from,
                    to,
                });
            }
        });
    }
    if let Some(outbox) = outbox.filter(|_| !learned.is_empty()) {
        outbox.add(learned);
    }
}

fn flush(
    cx: &Context,
    records: &[FlowRecord<'_>],
    lines: &[Range<usize>],
    text: &[u8],
    format: &mut FormatCache,
    decoder: &TextDecoder,
    position: Option<(ChunkPosition<'_>, Range<usize>)>,
) {
    if records.is_empty() && position.is_none() {
        return;
    }
    // Learning writes the index; the lookups only read it, so workers
    // attribute at once.
    learn(cx, records);
    let owners = {
        // Attributed, and their workloads' codes noted in the store, under
        // one read lock: the add below needs no index lock, so a worker
        // learning (the write lock) does not wait for this one's add.
        let index = cx.index_read();
        let owners = owners(&index, records, cx.config.hold_secs > 0);
        let ids = owners.iter().flat_map(|&(src, dst, _)| [src, dst]);
        cx.store_read().note_workloads(ids, index.workloads());
        owners
    };
    let newest = records
        .iter()
        .filter_map(FlowRecord::start)
        .max()
        .unwrap_or(0);
    cx.stats
        .newest_event_secs
        .fetch_max(newest, Ordering::Relaxed);
    cx.stats
        .records
        .fetch_add(records.len() as u64, Ordering::Relaxed);
    let flows: Vec<EnrichedFlow<'_, '_>> = records
        .iter()
        .zip(&owners)
        .filter(|(_, (_, _, wait))| !wait)
        .map(|(record, &(src, dst, _))| EnrichedFlow { record, src, dst })
        .collect();
    // A file with progress notes its position after the flows, below.
    let value = position
        .as_ref()
        .filter(|(at, _)| at.progress.is_none())
        .map(|(at, range)| (at.key, at.value(range.end)));
    let positions: Vec<(&str, &str)> = value.iter().map(|(k, v)| (*k, v.as_str())).collect();
    wait_while_full(cx);
    // The store's shared lock: workers add at once, each to its own shard;
    // a seal (which takes it exclusively) never falls between these flows,
    // their position and the held ones pushed below.
    let (index, store) = add_flows(cx, &flows, &positions, flows.len() != records.len());
    if let Some((at, range)) = &position
        && let Err(error) = at.complete(&store, range.clone())
    {
        cx.stats.store_errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("trawl: noting the position of {}: {error}", at.key);
    }
    // Without held flows, every flow was added (and no index was taken).
    let Some(index) = index else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(cx.config.hold_secs.min(HOLD_SECS_MAX));
    let mut evicted = Vec::new();
    let mut hold = cx.hold_lock();
    for ((record, range), _) in records.iter().zip(lines).zip(&owners).filter(|(_, o)| o.2) {
        let held = HeldFlow {
            line: String::from_utf8_lossy(&text[range.clone()]).into(),
            format: format.get(decoder),
            start: record.start().map_or(0, |s| s as i64),
            deadline,
        };
        evicted.extend(hold.push(held));
    }
    cx.stats.held.store(hold.len() as u64, Ordering::Relaxed);
    drop(hold);
    let held = records.len() - flows.len();
    cx.stats
        .held_total
        .fetch_add(held as u64, Ordering::Relaxed);
    add_held(cx, &index, &store, evicted, ReleaseReason::Full);
}

/// Adds `flows` (their workloads noted) and notes `positions`, under the
/// store's read lock, which it returns held. With `held` (some of the
/// batch's flows wait: flows the hold releases need attributing) the index
/// is read-locked first (lock order: index, then store) and returned too;
/// otherwise no index lock is taken, unless the store refuses a workload
/// it was not told about (then nothing was added: added again the way
/// `held` adds).
fn add_flows<'c>(
    cx: &'c Context,
    flows: &[EnrichedFlow<'_, '_>],
    positions: &[(&str, &str)],
    held: bool,
) -> (
    Option<RwLockReadGuard<'c, AttributionIndex>>,
    RwLockReadGuard<'c, Store>,
) {
    if !held {
        let store = cx.store_read();
        match store.add_noted_batch(flows, positions) {
            Err(StoreError::WorkloadNotNoted { .. }) => drop(store),
            added => {
                report_add(cx, flows.len(), added);
                return (None, store);
            }
        }
    }
    let index = cx.index_read();
    let store = cx.store_read();
    add_or_report(cx, &store, flows, &index, positions);
    (Some(index), store)
}

fn add_or_report(
    cx: &Context,
    store: &Store,
    flows: &[EnrichedFlow<'_, '_>],
    index: &AttributionIndex,
    positions: &[(&str, &str)],
) {
    let added = store.add_batch(flows, index.workloads(), positions);
    report_add(cx, flows.len(), added);
}

/// Counts and prints a failed add.
fn report_add(cx: &Context, flows: usize, added: Result<(), StoreError>) {
    if let Err(error) = added {
        cx.stats.store_errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("trawl: adding {flows} flows to the store: {error}");
    }
}

/// Attributes held flows with what the index knows now (no more holding)
/// and adds them to the store. The caller holds the index and the store.
pub fn add_held(
    cx: &Context,
    index: &AttributionIndex,
    store: &Store,
    held: Vec<HeldFlow>,
    reason: ReleaseReason,
) {
    if held.is_empty() {
        return;
    }
    let mut decoders: Vec<(Arc<LogFormat>, LineDecoder)> = Vec::new();
    for group in held.chunks(cx.config.batch_records.max(1)) {
        let mut flows = Vec::with_capacity(group.len());
        let mut records = Vec::with_capacity(group.len());
        for flow in group {
            let decoder = match decoders
                .iter()
                .position(|(f, _)| Arc::ptr_eq(f, &flow.format))
            {
                Some(i) => &decoders[i].1,
                None => {
                    let decoder = LineDecoder::new((*flow.format).clone());
                    decoders.push((flow.format.clone(), decoder));
                    &decoders[decoders.len() - 1].1
                }
            };
            // Held lines decoded once already; one that fails now is dropped.
            if let Ok(record) = decoder.decode(flow.line.as_bytes()) {
                records.push(record);
            }
        }
        for (record, (src, dst, _)) in records.iter().zip(owners(index, &records, false)) {
            flows.push(EnrichedFlow { record, src, dst });
        }
        add_or_report(cx, store, &flows, index, &[]);
    }
    cx.stats.released(reason, held.len() as u64);
}

/// Empties the hold into the store (before a seal). The caller holds the
/// index and the store.
pub fn release_all(cx: &Context, index: &AttributionIndex, store: &mut Store) {
    let held = {
        let mut hold = cx.hold_lock();
        cx.stats.held.store(0, Ordering::Relaxed);
        hold.take_all()
    };
    add_held(cx, index, store, held, ReleaseReason::Seal);
}

/// Releases held flows that metadata now covers or whose delay passed.
pub fn release_ready(cx: &Context) {
    if cx.stats.held.load(Ordering::Relaxed) == 0 {
        return;
    }
    let index = cx.index_read();
    let store = cx.store_read();
    let (settled, late) = {
        let mut hold = cx.hold_lock();
        let ready = hold.take_ready(Instant::now(), index.horizon());
        cx.stats.held.store(hold.len() as u64, Ordering::Relaxed);
        ready
    };
    add_held(cx, &index, &store, settled, ReleaseReason::Settled);
    add_held(cx, &index, &store, late, ReleaseReason::Deadline);
}
