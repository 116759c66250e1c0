//! Regression tests of the durability review (`shared/reviews/durability-2026-12.md`),
//! each named after the defect it found (issue 13).
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use trawl_attrib::AttributionIndex;
use trawl_flowlog::TextDecoder;
use trawl_pipeline::source::{push_payload, read_file, read_stream};
use trawl_pipeline::worker::{ChunkPosition, Context, PositionSource, process_text};
use trawl_pipeline::{FilePosition, FileStat, PipelineConfig};
use trawl_store::{SqlEngine, Store, StoreConfig};

fn context(data: &Path, open_bytes_max: usize, hold_secs: u64) -> Context {
    let mut store_config = StoreConfig::new(data);
    store_config.open_bytes_max = open_bytes_max;
    let config = PipelineConfig {
        workers: 1,
        hold_secs,
        ..PipelineConfig::default()
    };
    Context::new(
        config,
        Store::open(store_config).unwrap(),
        AttributionIndex::default(),
        None,
        None,
    )
}

fn sums(store: Arc<RwLock<Store>>) -> (u64, u64) {
    let engine = SqlEngine::new(store, None).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let result = runtime
        .block_on(engine.query(
            "SELECT CAST(coalesce(sum(flows),0) AS BIGINT UNSIGNED), CAST(coalesce(sum(bytes),0) AS BIGINT UNSIGNED) FROM flows_1m",
        ))
        .unwrap();
    let batch = &result.batches[0];
    use arrow::array::AsArray;
    use arrow::datatypes::UInt64Type;
    (
        batch.column(0).as_primitive::<UInt64Type>().value(0),
        batch.column(1).as_primitive::<UInt64Type>().value(0),
    )
}

const PUBLIC: &str =
    "2 123456789012 eni-1 8.8.8.8 1.1.1.1 443 50000 6 10 840 1790000000 1790000060 ACCEPT OK";
const PRIVATE: &str =
    "2 123456789012 eni-1 10.0.0.5 1.1.1.1 443 50000 6 10 840 1790000000 1790000060 ACCEPT OK";

/// Issue 13 #3. The store's own early seal (open memory past the cap, inside add_batch)
/// commits the batch's position while the batch's unknown-address flows go
/// to the hold (and without emptying the hold first). A crash then loses
/// the held flows: the manifest says the file was read past them.
#[test]
fn early_seal_in_add_batch_commits_positions_past_held_flows() {
    let data = tempfile::tempdir().unwrap();
    let cx = context(data.path(), 1, 3600);
    let text = format!("{PUBLIC}\n{PRIVATE}\n");
    let mut decoder = TextDecoder::new("flows.log", &cx.decode_options);
    process_text(
        &cx,
        &mut decoder,
        text.as_bytes(),
        Some(ChunkPosition {
            key: "file:/flows.log",
            offset: 0,
            source: PositionSource::File(None),
            progress: None,
        }),
    );
    let held = cx.hold.lock().unwrap().len();
    let committed = cx
        .store
        .read()
        .unwrap()
        .positions()
        .get("file:/flows.log")
        .cloned();
    eprintln!(
        "held {held}, committed position {committed:?}, text {} bytes",
        text.len()
    );
    // kill -9 now: reopen from disk.
    drop(cx);
    let store = Arc::new(RwLock::new(
        Store::open(StoreConfig::new(data.path())).unwrap(),
    ));
    let resume = store
        .read()
        .unwrap()
        .positions()
        .get("file:/flows.log")
        .and_then(|v| FilePosition::decode(v))
        .unwrap_or_default();
    let (flows, _) = sums(store);
    eprintln!(
        "after restart: {flows} flows in the store, resume at offset {}",
        resume.offset
    );
    assert!(
        flows == 2 || resume.offset < text.len() as u64,
        "the held flow is neither stored nor before the resume position: lost"
    );
}

/// Issue 13 #12. README: "stdin (`--stdin`) takes any container the decoder reads". The
/// stream path only ungzips and splits lines: a CloudWatch Logs payload on
/// stdin is one bad line, while the same payload pushed over HTTP is decoded.
#[test]
fn stdin_does_not_read_cloudwatch_envelopes() {
    let payload = format!(
        r#"{{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[{{"id":"1","timestamp":1790000000000,"message":"{PUBLIC}"}}]}}"#
    );
    let data = tempfile::tempdir().unwrap();
    let cx = context(data.path(), 1 << 30, 0);
    let pushed = push_payload(&cx, "http", payload.as_bytes());
    let after_push = cx.stats.records.load(Ordering::Relaxed);
    read_stream(
        &cx,
        "stdin",
        std::io::Cursor::new(payload.clone().into_bytes()),
    )
    .unwrap();
    let after_stdin = cx.stats.records.load(Ordering::Relaxed);
    eprintln!(
        "push: {pushed:?}; records after push {after_push}, after the same bytes on stdin {after_stdin}, errors {}",
        cx.stats.decode_errors_total()
    );
    assert_eq!(after_stdin, 2 * after_push);
}

/// Envelopes one a line, gzip'd as a whole, and a bad line among them:
/// every good envelope is decoded, the bad one counted.
#[test]
fn stdin_reads_gzip_envelope_lines_and_counts_a_bad_one() {
    let envelope = |id: u32| {
        format!(
            r#"{{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[{{"id":"{id}","timestamp":1790000000000,"message":"{PUBLIC}"}}]}}"#
        )
    };
    let text = format!("{}\n{{not json\n{}\n", envelope(1), envelope(2));
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gzip, text.as_bytes()).unwrap();
    let bytes = gzip.finish().unwrap();
    let data = tempfile::tempdir().unwrap();
    let cx = context(data.path(), 1 << 30, 0);
    read_stream(&cx, "stdin", std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(cx.stats.records.load(Ordering::Relaxed), 2);
    assert!(cx.stats.decode_errors_total() >= 1);
}

/// Issue 13 #7. A plain file that grows: read while its last line is half written. The
/// half line is decoded (here as a valid record with a truncated `bytes`),
/// its bytes are counted as consumed, and the rest of the line, read later,
/// is an error.
#[test]
fn growing_plain_file_half_written_last_line() {
    let data = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let path = input.path().join("grow.log");
    let header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets start end action log-status bytes";
    let line =
        "2 123456789012 eni-1 8.8.8.8 1.1.1.1 443 50000 6 10 1790000000 1790000060 ACCEPT OK 8400";
    let (head, tail) = line.split_at(line.len() - 2); // "...OK 84" | "00"
    std::fs::write(&path, format!("{header}\n{line}\n{head}")).unwrap();
    let cx = context(data.path(), 1 << 30, 0);
    let key = FilePosition::key(&path.to_string_lossy());
    read_file(&cx, &path, &key, FilePosition::default(), true).unwrap();
    // The writer finishes its line.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(file, "{tail}").unwrap();
    drop(file);
    let resume = cx
        .store
        .read()
        .unwrap()
        .pending_positions()
        .get(&key)
        .and_then(|v| FilePosition::decode(v))
        .unwrap();
    read_file(&cx, &path, &key, resume, true).unwrap();
    let errors = cx.stats.decode_errors_total();
    let (flows, bytes) = sums(cx.store.clone());
    eprintln!("flows {flows}, bytes {bytes}, decode errors {errors}");
    assert_eq!((flows, bytes, errors), (2, 16_800, 0));
}

/// A followed file whose last line has no newline and that stops growing:
/// the line is read at the next visit, and the file is then complete; read
/// once (ingest), it is read at once.
#[test]
fn a_last_line_without_a_newline_is_read_once_the_file_stops_growing() {
    let data = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let path = input.path().join("done.log");
    std::fs::write(&path, format!("{PUBLIC}\n{PUBLIC}")).unwrap();
    let size = FileStat::of(&std::fs::metadata(&path).unwrap());
    let key = FilePosition::key(&path.to_string_lossy());
    let position = |cx: &Context| {
        cx.store
            .read()
            .unwrap()
            .pending_positions()
            .get(&key)
            .and_then(|v| FilePosition::decode(v))
            .unwrap()
    };
    let mut cx = context(data.path(), 1 << 30, 0);
    read_file(&cx, &path, &key, FilePosition::default(), true).unwrap();
    let first = position(&cx);
    assert!(!first.is_complete(&size), "{first:?}");
    // Unchanged, but for less than partial_line_wait_secs: still held (a
    // writer pausing mid-line).
    read_file(&cx, &path, &key, first.clone(), true).unwrap();
    assert!(!position(&cx).is_complete(&size));
    assert_eq!(sums(cx.store.clone()).0, 1);
    cx.config.partial_line_wait_secs = 0;
    read_file(&cx, &path, &key, first, true).unwrap();
    assert!(position(&cx).is_complete(&size));
    assert_eq!(sums(cx.store.clone()).0, 2);
    let once_dir = tempfile::tempdir().unwrap();
    let once = context(once_dir.path(), 1 << 30, 0);
    read_file(&once, &path, &key, FilePosition::default(), false).unwrap();
    assert_eq!(sums(once.store.clone()).0, 2);
}

/// Issue 13 #11. A file with a second header line, resumed after it: only
/// the first line was taken for a header, so the resumed lines were
/// decoded with the first format (here `bytes` and `packets` swapped: 10
/// bytes stored instead of 840).
#[test]
fn resume_after_a_mid_file_header_uses_the_first_format() {
    let data = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let path = input.path().join("two.log");
    let h1 = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
    let h2 = "version account-id interface-id srcaddr dstaddr srcport dstport protocol bytes packets start end action log-status";
    let a =
        "2 123456789012 eni-1 8.8.8.8 1.1.1.1 443 50000 6 10 840 1790000000 1790000060 ACCEPT OK";
    let b =
        "2 123456789012 eni-1 8.8.8.8 1.1.1.1 443 50000 6 840 10 1790000000 1790000060 ACCEPT OK";
    let first = format!("{h1}\n{a}\n{h2}\n{b}\n");
    std::fs::write(&path, format!("{first}{b}\nnot a record\n")).unwrap();
    let cx = context(data.path(), 1 << 30, 0);
    let key = FilePosition::key(&path.to_string_lossy());
    // As if a crash came after the first four lines were sealed.
    let resume = FilePosition {
        offset: first.len() as u64,
        ..FilePosition::default()
    };
    read_file(&cx, &path, &key, resume, false).unwrap();
    assert_eq!(
        sums(cx.store.clone()),
        (1, 840),
        "decoded with the second header"
    );
    assert_eq!(cx.stats.decode_errors_total(), 1);
}
