//! One file read by several workers at once (issue 14 #2): its reader
//! inflates and hands chunks to free workers, so chunks finish out of
//! order. Every record is added once, positions name the finished ranges
//! past the contiguous prefix, and a restart from such a position adds the
//! rest exactly once.
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;

use crate::common::{bytes_of, flows, sums};
use flate2::Compression;
use flate2::write::GzEncoder;
use trawl_attrib::AttributionIndex;
use trawl_flowlog::TextDecoder;
use trawl_pipeline::progress::{FileProgress, Ranges};
use trawl_pipeline::source::read_file;
use trawl_pipeline::worker::{ChunkPosition, Context, PositionSource, process_text};
use trawl_pipeline::{FilePosition, Pipeline, PipelineConfig};
use trawl_store::{Store, StoreConfig};

const KEY: &str = "file:/flows.log";

/// Small chunks and batches, so a file of a few thousand lines is many chunks.
fn config(workers: usize) -> PipelineConfig {
    PipelineConfig {
        workers,
        hold_secs: 0,
        chunk_bytes: 4096,
        batch_records: 16,
        ..PipelineConfig::default()
    }
}

fn context(data: &Path) -> Context {
    let store = Store::open(StoreConfig::new(data)).unwrap();
    Context::new(config(1), store, AttributionIndex::default(), None, None)
}

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

fn position(cx: &Context) -> FilePosition {
    let store = cx.store.read().unwrap();
    let value = store.pending_positions().get(KEY).cloned().unwrap();
    FilePosition::decode(&value).unwrap()
}

#[test]
fn a_gzip_file_read_by_two_workers_in_many_chunks_is_added_once() {
    let (files, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let path = files.path().join("flows.log.gz");
    std::fs::write(&path, gzip(&flows(5000, 1))).unwrap();
    let store = Store::open(StoreConfig::new(data.path())).unwrap();
    let pipeline = Pipeline::start(config(2), store, AttributionIndex::default()).unwrap();
    pipeline.add_files(&[path]).unwrap();
    pipeline.wait_idle();
    assert_eq!(sums(pipeline.store()), (5000, bytes_of(5000, 1)));
    let positions = pipeline.store().read().unwrap().pending_positions().clone();
    let position = positions
        .values()
        .next()
        .map(|v| FilePosition::decode(v).unwrap());
    let end = flows(5000, 1).len() as u64;
    assert_eq!(position.map(|p| (p.offset, p.done)), Some((end, vec![])));
    pipeline.shutdown().unwrap();
}

#[test]
fn a_chunk_finished_before_an_earlier_one_is_named_past_the_prefix_and_not_read_again() {
    let (files, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let text = flows(300, 1);
    let path = files.path().join("flows.log");
    std::fs::write(&path, &text).unwrap();
    // The lines after the header, split into thirds at line ends.
    let ends: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
    let (header, a, b) = (ends[0], ends[100], ends[200]);
    {
        // A worker finishes the middle third while the first is still being
        // added; a seal commits it; the process dies.
        let cx = context(data.path());
        let progress = FileProgress::new(Ranges::default());
        let mut decoder = TextDecoder::new("flows.log", &cx.decode_options);
        process_text(&cx, &mut decoder, &text.as_bytes()[..header], None);
        let at = ChunkPosition {
            key: KEY,
            offset: a as u64,
            source: PositionSource::File(None),
            progress: Some(&progress),
        };
        process_text(&cx, &mut decoder, &text.as_bytes()[a..b], Some(at));
        let noted = position(&cx);
        assert_eq!((noted.offset, noted.done), (0, vec![(a as u64, b as u64)]));
        cx.store.write().unwrap().seal().unwrap();
    }
    // Restarted from the manifest: the first and last thirds are added,
    // the middle one is not added again.
    let cx = context(data.path());
    let resume = FilePosition::decode(&cx.store.read().unwrap().positions()[KEY]).unwrap();
    read_file(&cx, &path, KEY, resume, false).unwrap();
    assert_eq!(sums(cx.store.clone()), (300, bytes_of(300, 1)));
    let done = position(&cx);
    assert_eq!((done.offset, done.done), (text.len() as u64, vec![]));
}

#[test]
fn lines_after_a_second_header_in_a_later_chunk_use_its_format() {
    // Two files' worth of lines concatenated: the second header (in a
    // chunk far from the first) swaps two columns; a chunk handed to
    // another worker must decode with the format in force where it starts.
    let (files, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = flows(2000, 1);
    let mut second = String::from(
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol bytes packets start end action log-status\n",
    );
    for i in 0..2000u64 {
        second.push_str(&format!(
            "2 123456789012 eni-1 8.8.8.8 1.1.1.1 443 50000 6 {} 1 {} {} ACCEPT OK\n",
            10_000 + i,
            1_790_000_000 + i,
            1_790_000_060 + i
        ));
    }
    let path = files.path().join("flows.log");
    std::fs::write(&path, format!("{first}{second}")).unwrap();
    let store = Store::open(StoreConfig::new(data.path())).unwrap();
    let pipeline = Pipeline::start(config(2), store, AttributionIndex::default()).unwrap();
    pipeline.add_files(&[path]).unwrap();
    pipeline.wait_idle();
    let expected = bytes_of(2000, 1) + bytes_of(2000, 10_000);
    assert_eq!(sums(pipeline.store()), (4000, expected));
    assert_eq!(pipeline.stats().decode_errors_total(), 0);
    pipeline.shutdown().unwrap();
}
