//! Metadata events: applied to the index, logged when pushed, and saved
//! with the attribution snapshot.
//!
//! ```text
//! HTTP metadata push ─► parse ─► [order lock] append to metadata-log/, apply,
//!                                  position metadata-log = seq + 1 in the index
//!                      ─► fsync (group commit) ─► 200
//! snapshot (every snapshot_interval_secs, and at stop) ─► segments before
//!                                  the saved position deleted
//! start ─► load snapshot ─► metadata files ─► replay the log past the position
//! ```
//!
//! The position lives in the index ([`AttributionIndex::source_position`])
//! and so in the same snapshot file as the ownership it produced: a crash
//! between a push and the next snapshot replays exactly the pushes the
//! snapshot lacks (issue 13, "what survives": pushed metadata was kept only
//! in memory until a clean stop). Events are idempotent, so a push cut off
//! before its answer and retried applies twice to no effect.

use std::path::Path;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use trawl_attrib::{AttributionIndex, EventError, MetadataEvent, PersistError, read_json_lines};

use crate::push_log::{PushLogError, PushPosition};
use crate::worker::Context;

/// The index's position key of the metadata log.
pub const METADATA_LOG_KEY: &str = "metadata-log";

/// Applies `events` to `index`, counting and (sparingly) printing the
/// refused; with `complete_to`, vouches that metadata is complete up to
/// that time. Returns how many were applied.
pub(crate) fn apply_events(
    cx: &Context,
    index: &mut AttributionIndex,
    events: &[MetadataEvent],
    complete_to: Option<i64>,
) -> usize {
    let mut applied = 0;
    for event in events {
        match index.apply(event) {
            Ok(()) => applied += 1,
            Err(error) => {
                let n = cx.stats.metadata_errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n <= 20 || n.is_multiple_of(10_000) {
                    eprintln!(
                        "trawl: metadata event #{n} refused, at {}: {error}",
                        event.at()
                    );
                }
            }
        }
    }
    if let Some(t) = complete_to {
        index.advance_horizon(t);
    }
    cx.stats
        .metadata_events
        .fetch_add(applied as u64, Ordering::Relaxed);
    applied
}

/// Parses JSON-lines events, counting the lines refused.
pub(crate) fn parse_events(
    cx: &Context,
    reader: impl std::io::BufRead,
    source_name: &str,
) -> (Vec<MetadataEvent>, Vec<EventError>) {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    read_json_lines(reader, source_name, |e| events.push(e), |e| errors.push(e));
    cx.stats
        .metadata_errors
        .fetch_add(errors.len() as u64, Ordering::Relaxed);
    (events, errors)
}

/// Applies a pushed body of JSON-lines events; with a metadata log, logs
/// it first (in order with its position) and returns once it is on disk.
/// Bodies with no valid event are not logged.
pub(crate) fn push_metadata(
    cx: &Context,
    source_name: &str,
    body: &[u8],
) -> Result<(usize, Vec<EventError>), PushLogError> {
    let (events, errors) = parse_events(cx, body, source_name);
    let Some(log) = cx.metadata_log.as_ref().filter(|_| !events.is_empty()) else {
        let applied = apply_events(cx, &mut cx.index_write(), &events, None);
        return Ok((applied, errors));
    };
    let (seq, applied) = {
        let _order = cx
            .metadata_order
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let seq = log.append(source_name, body)?;
        let mut index = cx.index_write();
        let applied = apply_events(cx, &mut index, &events, None);
        set_position(&mut index, seq);
        (seq, applied)
    };
    log.sync_through(seq)?;
    Ok((applied, errors))
}

/// Every push before `seq + 1` is in the index (set at every push, it is
/// never the stalest position the index forgets past its bound).
fn set_position(index: &mut AttributionIndex, seq: u64) {
    let position = PushPosition {
        seq: seq + 1,
        offset: 0,
    };
    index.set_source_position(METADATA_LOG_KEY, &position.encode());
}

/// The first sequence number the metadata log may hand out: past every
/// push the index has applied.
pub(crate) fn next_seq_min(index: &AttributionIndex) -> u64 {
    saved_position(index).seq
}

fn saved_position(index: &AttributionIndex) -> PushPosition {
    index
        .source_position(METADATA_LOG_KEY)
        .and_then(PushPosition::decode)
        .unwrap_or_default()
}

/// Applies the pushes the metadata log holds past the index's position (at
/// start, after the snapshot and metadata files); returns how many.
pub(crate) fn replay_metadata_log(cx: &Context) -> Result<u64, PushLogError> {
    let Some(log) = &cx.metadata_log else {
        return Ok(0);
    };
    let _order = cx
        .metadata_order
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let from = saved_position(&cx.index_read());
    log.replay(from, |record| {
        let (events, _) = parse_events(cx, &record.payload[..], &record.source);
        let mut index = cx.index_write();
        apply_events(cx, &mut index, &events, None);
        set_position(&mut index, record.seq);
    })
}

/// Saves the index to `path` (atomically), then deletes the metadata log's
/// segments the saved position covers.
pub(crate) fn save_snapshot(cx: &Context, path: &Path) -> Result<(), PersistError> {
    // One save at a time: they share the temporary file.
    let _saving = cx
        .snapshot_lock
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let position = {
        let index = cx.index_read();
        index.save(path)?;
        saved_position(&index)
    };
    if let Some(log) = &cx.metadata_log
        && let Err(error) = log.truncate_before(position)
    {
        eprintln!("trawl: {error}");
    }
    Ok(())
}
