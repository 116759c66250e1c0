//! Sources: flow-log files (plain or gzip, resumed from their manifest
//! position), directories of them (flat or in S3 delivery layout, listed
//! again to pick up new files), byte streams (stdin) and pushed payloads
//! (HTTP bodies, Firehose requests, CloudWatch envelopes).
//!
//! A file is read in chunks of whole lines (`chunk_bytes` of decompressed
//! text); each chunk goes through [`process_text`]. Resuming at a
//! decompressed offset reads the file again up to the offset without
//! adding its lines, but applies the header lines among them (the format
//! active at the offset is the last header's) and counts the lines so
//! that errors still name the right line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use flate2::read::MultiGzDecoder;
use trawl_flowlog::{
    DecodeError, DecodeOptions, DecodeStats, FlowRecord, GZIP_MAGIC, LogFormat, PayloadSummary,
    RecordSink, TextDecoder, decode_payload, write_line,
};

use crate::chunks::{Chunk, LineChunks};
use crate::position::{FilePosition, FileStat, Fingerprint, read_head};
use crate::progress::{FileProgress, Ranges};
use crate::push_log::{PUSH_LOG_KEY, PushLogError, PushPosition};
use crate::worker::{ChunkPosition, Context, PositionSource, process_text, report_decode_error};

/// Counts bytes as they are read (compressed bytes, for progress).
struct Counting<'c, R> {
    inner: R,
    cx: &'c Context,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.cx
            .stats
            .input_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Whether the (decompressed) text's first byte that is not white space
/// is `{`: JSON envelopes, not flow-log lines.
fn starts_with_json(reader: &mut impl BufRead) -> io::Result<bool> {
    Ok(trawl_flowlog::starts_with_json(reader.fill_buf()?))
}

/// Plain or gzip text of `reader`, told apart by the gzip magic bytes.
fn text_reader<'r>(reader: impl Read + 'r) -> io::Result<Box<dyn Read + 'r>> {
    let mut buffered = BufReader::with_capacity(1 << 16, reader);
    let gzip = buffered.fill_buf()?.starts_with(&GZIP_MAGIC);
    Ok(if gzip {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    })
}

/// Reads `path` from `resume` to its end; the last batch records the
/// file's size, marking it complete. A `growing` (followed) file that ends
/// in a line without a newline keeps that line for a later visit, once the
/// file has been left unchanged for `partial_line_wait_secs` (issue 13 #7:
/// read at once, a line half written was stored truncated, or lost). A file read once (ingest, a
/// directory read to its end) is complete as it is.
pub fn read_file(
    cx: &Context,
    path: &Path,
    key: &str,
    resume: FilePosition,
    growing: bool,
) -> io::Result<()> {
    let mut file = File::open(path)?;
    let stat = FileStat::of(&file.metadata()?);
    let head = read_head(&file)?;
    file.rewind()?;
    let fingerprint = Some(Fingerprint::of(&head));
    let resume = if resume.is_same_file(&stat, &head) {
        resume
    } else {
        // Issue 13 #10: resumed at the old file's offset, the new one lost
        // its beginning (or, complete at the same size, all of it).
        cx.stats.files_replaced.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "trawl: {}: not the file read before under this name (its first bytes differ or it shrank): reading it from its start",
            path.display()
        );
        FilePosition::default()
    };
    let mut reader = BufReader::with_capacity(1 << 16, text_reader(Counting { inner: file, cx })?);
    if starts_with_json(&mut reader)? {
        return read_envelope_file(cx, path, key, reader, resume, stat, fingerprint);
    }
    let mut decoder = TextDecoder::new(path.display().to_string(), &cx.decode_options);
    let hold_tail = growing && !tail_settled(cx, &resume, &stat);
    let progress = Arc::new(FileProgress::new(Ranges::new(resume.offset, &resume.done)));
    let at = ChunkPosition {
        key,
        offset: 0,
        source: PositionSource::File(fingerprint),
        progress: Some(&progress),
    };
    let (offset, held) = read_chunks(cx, reader, &mut decoder, Some(at), &progress, hold_tail)?;
    // A tail held back may lie in a range a worker finished in an earlier
    // run: the ranges past the offset stay in the position.
    let done = FilePosition {
        offset,
        done: progress
            .ranges()
            .done()
            .into_iter()
            .filter(|(_, end)| *end > offset)
            .collect(),
        fingerprint,
        ..if held {
            FilePosition {
                tail_at_size: Some(stat.size),
                ..FilePosition::default()
            }
        } else {
            FilePosition {
                size: Some(stat.size),
                mtime_ns: stat.modified_ns,
                ..FilePosition::default()
            }
        }
    };
    record_end(cx, path, key, &done);
    Ok(())
}

/// Whether a followed file's last line without a newline may be read: the
/// file is as it was at the last visit and unchanged for
/// `partial_line_wait_secs` (a writer pausing mid-line for one poll had
/// its line cut in two: the soak test found it).
fn tail_settled(cx: &Context, resume: &FilePosition, stat: &FileStat) -> bool {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let wait_ns = u128::from(cx.config.partial_line_wait_secs) * 1_000_000_000;
    let old_enough = stat
        .modified_ns
        .is_some_and(|m| now_ns.saturating_sub(u128::from(m)) >= wait_ns);
    resume.tail_at_size == Some(stat.size) && old_enough
}

/// Records the position a read of `path` ended at.
fn record_end(cx: &Context, path: &Path, key: &str, done: &FilePosition) {
    let index = cx.index_read();
    let store = cx.store_read();
    if let Err(error) = store.add_batch(&[], index.workloads(), &[(key, &done.encode())]) {
        cx.stats.store_errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("trawl: {}: recording the end: {error}", path.display());
    }
    cx.stats.files_done.fetch_add(1, Ordering::Relaxed);
}

/// Reads a file of JSON envelopes (CloudWatch Logs subscription payloads,
/// Firehose records: what Firehose delivers to S3 from a CloudWatch Logs
/// subscription, concatenated, usually gzip) whole, up to the payload
/// limit, and adds its records. Its position counts bytes of the records'
/// decoded text (envelopes have no lines to count), so a resumed file is
/// decoded again and its records past the position added (issue 13 #12:
/// such files were one bad line each).
fn read_envelope_file(
    cx: &Context,
    path: &Path,
    key: &str,
    reader: impl Read,
    resume: FilePosition,
    stat: FileStat,
    fingerprint: Option<Fingerprint>,
) -> io::Result<()> {
    let limit = cx.decode_options.payload_bytes_max;
    let mut payload = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut payload)?;
    if payload.len() > limit {
        return Err(io::Error::other(format!(
            "more than {limit} bytes of JSON envelopes (payload_bytes_max)"
        )));
    }
    let name = path.display().to_string();
    let (text, _) = decode_push(cx, &cx.decode_options, &name, &payload);
    let skip = if resume.envelopes { resume.offset } else { 0 };
    add_lines(
        cx,
        &cx.decode_options,
        &name,
        &text,
        Some((key, PositionSource::Envelopes(fingerprint))),
        skip,
    );
    let done = FilePosition {
        offset: text.len() as u64,
        envelopes: true,
        size: Some(stat.size),
        mtime_ns: stat.modified_ns,
        fingerprint,
        ..FilePosition::default()
    };
    record_end(cx, path, key, &done);
    Ok(())
}

/// Reads a stream (stdin) to its end, without positions: flow-log lines
/// (plain or gzip), or, when its first text is `{`, JSON envelopes one a
/// line (CloudWatch Logs subscription payloads, Firehose records), each
/// decoded like a push (issue 13 #12: they were one bad line each).
pub fn read_stream(cx: &Context, name: &str, reader: impl Read) -> io::Result<()> {
    let mut reader =
        BufReader::with_capacity(1 << 16, text_reader(Counting { inner: reader, cx })?);
    if starts_with_json(&mut reader)? {
        return read_envelope_lines(cx, name, reader);
    }
    let mut decoder = TextDecoder::new(name.to_string(), &cx.decode_options);
    let progress = Arc::new(FileProgress::new(Ranges::default()));
    read_chunks(cx, reader, &mut decoder, None, &progress, false)?;
    Ok(())
}

/// One JSON envelope a line, each at most `line_bytes_max` bytes (a longer
/// one is counted as an error and skipped).
fn read_envelope_lines(cx: &Context, name: &str, reader: impl BufRead) -> io::Result<()> {
    let line_max = cx.decode_options.line_bytes_max;
    let mut chunks = LineChunks::new(reader, cx.config.chunk_bytes.max(1 << 12), line_max);
    let mut decoder = TextDecoder::new(name.to_string(), &cx.decode_options);
    while let Some(chunk) = chunks.next_chunk()? {
        match chunk {
            Chunk::Lines { text, .. } | Chunk::Tail { text, .. } => {
                for line in text
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.trim_ascii().is_empty())
                {
                    push_payload(cx, name, line);
                }
            }
            Chunk::Overlong(head) => decoder.overlong_line(head, &mut ErrorsOnly(cx)),
        }
    }
    Ok(())
}

/// Reads whole-line chunks and has them processed (see [`dispatch`]);
/// returns the decompressed offset reached, and whether a last line
/// without a newline was left unread (only with `hold_tail`). Lines that
/// `progress` already counts finished (before the resumed offset, or in a
/// finished range past it) are not added; their header lines set the
/// format ([`skip_text`]). Returns once every chunk handed out is done.
fn read_chunks(
    cx: &Context,
    reader: impl Read,
    decoder: &mut TextDecoder,
    at: Option<ChunkPosition<'_>>,
    progress: &Arc<FileProgress>,
    hold_tail: bool,
) -> io::Result<(u64, bool)> {
    let finished_before = progress.ranges();
    let line_max = cx.decode_options.line_bytes_max;
    let mut chunks = LineChunks::new(reader, cx.config.chunk_bytes.max(1 << 12), line_max);
    let mut read = || -> io::Result<(u64, bool)> {
        // Where a line too long to read began (the chunker skips it): it
        // is finished, with nothing added, once the next chunk shows where
        // it ended (else it would stay a gap in the position for good).
        let mut skipped_from = None;
        loop {
            let before = chunks.offset();
            let Some(chunk) = chunks.next_chunk()? else {
                break;
            };
            let (offset, text) = match chunk {
                Chunk::Overlong(head) => {
                    decoder.overlong_line(head, &mut ErrorsOnly(cx));
                    skipped_from.get_or_insert(before);
                    continue;
                }
                Chunk::Lines { offset, text } => (offset, text),
                // A last line without a newline: the writer may be in its
                // middle, unless an earlier run added it already.
                Chunk::Tail { offset, .. } if hold_tail && !finished_before.contains(offset) => {
                    finish_skipped(cx, at, skipped_from.take(), offset);
                    return Ok((offset, true));
                }
                Chunk::Tail { offset, text } => {
                    // Its added newline is not in the file.
                    progress.limit(offset + text.len() as u64 - 1);
                    (offset, text)
                }
            };
            finish_skipped(cx, at, skipped_from.take(), offset);
            let mut begin = 0;
            while begin < text.len() {
                let here = offset + begin as u64;
                let (skip_from, skip_to) = finished_before
                    .next_done(here)
                    .unwrap_or((u64::MAX, u64::MAX));
                let within = |at: u64| {
                    usize::try_from(at - offset).map_or(text.len(), |a| a.min(text.len()))
                };
                let (add_end, skip_end) = (within(skip_from.max(here)), within(skip_to.max(here)));
                if add_end > begin {
                    let at = at.map(|at| ChunkPosition { offset: here, ..at });
                    dispatch(cx, decoder, &text[begin..add_end], at, progress);
                }
                if skip_end > add_end {
                    skip_text(cx, decoder, &text[add_end..skip_end]);
                }
                begin = skip_end.max(add_end);
            }
        }
        finish_skipped(cx, at, skipped_from.take(), chunks.offset());
        Ok((chunks.offset(), false))
    };
    // Chunks still out when the reader panics must end before the file
    // is read again (their positions would undo the new read's).
    let _unwinding = WaitOnUnwind(progress);
    let outcome = read();
    wait_for_chunks(cx, progress);
    if progress.failed() {
        // Not recorded complete: the file is read again from its position.
        return Err(io::Error::other("a chunk of it failed part way"));
    }
    outcome
}

/// Marks the bytes of skipped overlong lines, from `from` to `to`,
/// finished in the file's progress (nothing of them is added).
fn finish_skipped(cx: &Context, at: Option<ChunkPosition<'_>>, from: Option<u64>, to: u64) {
    let (Some(at), Some(from)) = (at, from) else {
        return;
    };
    let Ok(len) = usize::try_from(to.saturating_sub(from)) else {
        return;
    };
    let at = ChunkPosition { offset: from, ..at };
    if let Err(error) = at.complete(&cx.store_read(), 0..len) {
        cx.stats.store_errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("trawl: noting the position of {}: {error}", at.key);
    }
}

/// Waits, while its reader unwinds from a panic, for the chunks of a file
/// that other workers hold (it runs no chunk itself: a second panic while
/// unwinding would abort).
struct WaitOnUnwind<'p>(&'p FileProgress);

impl Drop for WaitOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            while !self.0.wait_finished(Duration::from_millis(100)) {}
        }
    }
}

/// A chunk of one file or stream, to be processed by any worker.
#[derive(Debug)]
pub struct ChunkJob {
    text: Vec<u8>,
    /// The reader's decoder as it was at the chunk's first line.
    decoder: TextDecoder,
    /// The file's position key and what its positions say, if it has them.
    position: Option<(Arc<str>, PositionSource<'static>)>,
    offset: u64,
    progress: Arc<FileProgress>,
}

impl ChunkJob {
    /// Decodes, attributes and adds the chunk; then it is done (also if
    /// processing panicked: the reader waits for it).
    pub fn run(self, cx: &Context) {
        self.run_with(cx, process_text);
    }

    /// [`run`](Self::run) with `process` in place of [`process_text`]: a
    /// seam for tests that make a chunk fail part way.
    #[doc(hidden)]
    pub fn run_with(
        mut self,
        cx: &Context,
        process: impl FnOnce(&Context, &mut TextDecoder, &[u8], Option<ChunkPosition<'_>>),
    ) {
        struct Finished<'p>(&'p FileProgress);
        impl Drop for Finished<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.fail();
                }
                self.0.finished();
            }
        }
        let _finished = Finished(&self.progress);
        let at = self.position.as_ref().map(|(key, source)| ChunkPosition {
            key,
            offset: self.offset,
            source: *source,
            progress: Some(&self.progress),
        });
        process(cx, &mut self.decoder, &self.text, at);
        cx.spare_texts.give_back(std::mem::take(&mut self.text));
    }
}

/// Text buffers of processed chunks, kept for the next chunks readers hand
/// out: copying each 4 MiB chunk into a new allocation faulted its pages
/// in again every time (6 % of a detail-on ingest's page faults). Bounded:
/// at most `buffers_max` buffers of at most `bytes_max` bytes each.
#[derive(Debug)]
pub struct SpareTexts {
    give: crossbeam_channel::Sender<Vec<u8>>,
    take: crossbeam_channel::Receiver<Vec<u8>>,
    bytes_max: usize,
}

impl SpareTexts {
    /// Room for `buffers_max` spare buffers of up to `bytes_max` bytes.
    pub fn new(buffers_max: usize, bytes_max: usize) -> SpareTexts {
        let (give, take) = crossbeam_channel::bounded(buffers_max);
        SpareTexts {
            give,
            take,
            bytes_max,
        }
    }

    /// `text` copied into a spare buffer, or a new one if none is spare.
    fn copy_of(&self, text: &[u8]) -> Vec<u8> {
        let mut buffer = self.take.try_recv().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(text);
        buffer
    }

    /// Keeps `buffer` for a later chunk, unless it is too large or enough
    /// are kept.
    fn give_back(&self, buffer: Vec<u8>) {
        if buffer.capacity() <= self.bytes_max {
            // Full: enough buffers are spare, this one is freed.
            let _ = self.give.try_send(buffer);
        }
    }
}

/// Has `text` (whole lines) processed: queued for a free worker when the
/// chunk queue has room (the reader's decoder then goes over it only for
/// its line count and header lines), else processed here. So one file
/// keeps every core busy: its reader inflates while other workers decode,
/// attribute and add, and a reader that gets ahead does the work itself.
fn dispatch(
    cx: &Context,
    decoder: &mut TextDecoder,
    text: &[u8],
    at: Option<ChunkPosition<'_>>,
    progress: &Arc<FileProgress>,
) {
    // With no other worker, queued chunks would wait for the end of the
    // read; with the queue full, the copy below would be thrown away.
    // A position that borrows (a Kinesis record's) stays with its reader.
    let owned = at.map(|at| at.source.into_static());
    if cx.config.workers <= 1 || cx.chunks.is_full() || matches!(owned, Some(None)) {
        process_text(cx, decoder, text, at);
        return;
    }
    let job = ChunkJob {
        text: cx.spare_texts.copy_of(text),
        decoder: decoder.clone(),
        position: at
            .zip(owned.flatten())
            .map(|(at, source)| (Arc::from(at.key), source)),
        offset: at.map_or(0, |at| at.offset),
        progress: progress.clone(),
    };
    progress.started();
    match cx.chunks.try_send(job) {
        Ok(()) => advance(decoder, text, &mut Quiet),
        Err(refused) => {
            // Filled by another reader since the check above.
            progress.finished();
            drop(refused);
            process_text(cx, decoder, text, at);
        }
    }
}

/// Waits until every chunk `progress` handed out is done, doing queued
/// chunks (of any file) meanwhile, so that readers waiting for their
/// chunks never leave the queue to no one.
fn wait_for_chunks(cx: &Context, progress: &FileProgress) {
    while !progress.wait_finished(Duration::ZERO) {
        match cx.chunk_jobs.try_recv() {
            Ok(job) => job.run(cx),
            Err(_) => {
                progress.wait_finished(Duration::from_millis(5));
            }
        }
    }
}

/// Goes over `text`, whole lines a resumed source added before: counts
/// them, so that later errors name the right line, and applies the header
/// lines among them, so that the lines after the position are decoded with
/// the format active there (issue 13 #11: only the file's first line was
/// taken for a header, and lines after a second header were decoded with
/// the first header's format).
fn skip_text(cx: &Context, decoder: &mut TextDecoder, text: &[u8]) {
    advance(decoder, text, &mut ErrorsOnly(cx));
}

/// Moves `decoder` past `text` (whole lines) without adding anything: counts
/// the lines and applies the header lines among them, reporting what a
/// header line gets wrong to `sink`.
fn advance(decoder: &mut TextDecoder, text: &[u8], sink: &mut impl RecordSink) {
    let mut plain_lines = 0;
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', text) {
        let line = &text[start..end];
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let header = line.first().is_some_and(u8::is_ascii_lowercase)
            && LogFormat::from_header_line(line).is_some();
        if header {
            decoder.skip_lines(std::mem::take(&mut plain_lines));
            decoder.decode_line(line, &mut FlowRecord::new(), sink);
        } else {
            plain_lines += 1;
        }
    }
    decoder.skip_lines(plain_lines);
}

/// Reports nothing: the worker that decodes the same lines reports them.
struct Quiet;

impl RecordSink for Quiet {
    fn record(&mut self, _: &FlowRecord<'_>, _: &LogFormat) {}

    fn error(&mut self, _: DecodeError) {}
}

struct ErrorsOnly<'c>(&'c Context);

impl RecordSink for ErrorsOnly<'_> {
    fn record(&mut self, _: &FlowRecord<'_>, _: &LogFormat) {}

    fn error(&mut self, error: DecodeError) {
        report_decode_error(&self.0.stats, &error);
    }
}

/// What a pushed payload held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Records decoded (and added, or held).
    pub records: u64,
    /// Decode errors.
    pub errors: u64,
    /// The container's own facts (Firehose request id, …).
    pub summary: PayloadSummary,
}

/// Turns a payload's records back into lines (with a header per format),
/// so that pushed and read data take one path.
struct Lines<'c> {
    cx: &'c Context,
    text: Vec<u8>,
    format: Option<LogFormat>,
    records: u64,
    errors: u64,
}

impl RecordSink for Lines<'_> {
    fn record(&mut self, record: &FlowRecord<'_>, format: &LogFormat) {
        if self.format.as_ref() != Some(format) {
            self.text.extend_from_slice(format.header_line().as_bytes());
            self.text.push(b'\n');
            self.format = Some(format.clone());
        }
        write_line(format, record, &mut self.text);
        self.text.push(b'\n');
        self.records += 1;
    }

    fn error(&mut self, error: DecodeError) {
        self.errors += 1;
        report_decode_error(&self.cx.stats, &error);
    }
}

/// Decodes a pushed payload (record lines, gzip, CloudWatch Logs or
/// Firehose envelopes) into record lines.
pub(crate) fn decode_push(
    cx: &Context,
    options: &DecodeOptions,
    source: &str,
    payload: &[u8],
) -> (Vec<u8>, PushReport) {
    let mut decoder = TextDecoder::new(source.to_string(), options);
    let mut lines = Lines {
        cx,
        text: Vec::with_capacity(payload.len()),
        format: None,
        records: 0,
        errors: 0,
    };
    let summary = decode_payload(payload, &mut decoder, &mut lines);
    cx.stats.payloads.fetch_add(1, Ordering::Relaxed);
    let report = PushReport {
        records: lines.records,
        errors: lines.errors,
        summary,
    };
    (lines.text, report)
}

/// Processes decoded record lines from byte `skip` on (a replayed push, a
/// resumed envelope file or Kafka message the store holds in part),
/// recording the position `at` (a key and its kind) with every batch;
/// returns what the decoder counted.
pub(crate) fn add_lines(
    cx: &Context,
    options: &DecodeOptions,
    source: &str,
    text: &[u8],
    at: Option<(&str, PositionSource<'_>)>,
    skip: u64,
) -> DecodeStats {
    let mut decoder = TextDecoder::new(source.to_string(), options);
    let begin = usize::try_from(skip).map_or(text.len(), |s| s.min(text.len()));
    skip_text(cx, &mut decoder, &text[..begin]);
    let at = at.map(|(key, source)| ChunkPosition {
        key,
        offset: begin as u64,
        source,
        progress: None,
    });
    process_text(cx, &mut decoder, &text[begin..], at);
    *decoder.stats()
}

/// Decodes a payload and processes its records, with no log (nothing
/// acknowledged it: stdin's envelope lines, a pipeline without a push log).
pub fn push_payload(cx: &Context, source: &str, payload: &[u8]) -> PushReport {
    let (text, report) = decode_push(cx, &cx.decode_options, source, payload);
    add_lines(cx, &cx.decode_options, source, &text, None, 0);
    report
}

/// What a push must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// Any container the decoder reads.
    Any,
    /// A Firehose HTTP endpoint request (its records are kept only if it is one).
    Firehose,
}

/// Decodes a pushed payload, appends it to the push log and adds its
/// records, in log order; returns once the payload is on disk, so that the
/// caller may acknowledge it (issue 13 #6: pushes were acknowledged while
/// only in memory). A payload with no records is not logged. Without a
/// push log, as [`push_payload`].
pub fn push_durably(
    cx: &Context,
    source: &str,
    payload: &[u8],
    envelope: Envelope,
) -> Result<PushReport, PushLogError> {
    cx.stats
        .input_bytes
        .fetch_add(payload.len() as u64, Ordering::Relaxed);
    let (text, report) = decode_push(cx, &cx.decode_options, source, payload);
    let refused = envelope == Envelope::Firehose && report.summary.json_envelopes == 0;
    if report.records == 0 || refused {
        // Nothing kept: a Firehose request that is not one is answered 400
        // (it was stored, then refused, and Firehose sent it again).
        return Ok(report);
    }
    let Some(log) = &cx.push_log else {
        add_lines(cx, &cx.decode_options, source, &text, None, 0);
        return Ok(report);
    };
    let refused = |error: PushLogError| {
        cx.stats.pushes_refused.fetch_add(1, Ordering::Relaxed);
        error
    };
    let seq = {
        let _order = cx.push_order.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = log.append(source, payload).map_err(refused)?;
        add_lines(
            cx,
            &cx.decode_options,
            source,
            &text,
            Some((PUSH_LOG_KEY, PositionSource::Push(seq))),
            0,
        );
        seq
    };
    cx.stats
        .push_log_bytes
        .store(log.bytes(), Ordering::Relaxed);
    log.sync_through(seq).map_err(refused)?;
    Ok(report)
}

/// Adds the pushes the log holds past the store's position (at start,
/// after metadata is loaded and before anything is pushed); returns how
/// many were replayed.
pub fn replay_push_log(cx: &Context) -> Result<u64, PushLogError> {
    let Some(log) = &cx.push_log else {
        return Ok(0);
    };
    let from = cx
        .store_read()
        .pending_positions()
        .get(PUSH_LOG_KEY)
        .and_then(|v| PushPosition::decode(v))
        .unwrap_or_default();
    let _order = cx.push_order.lock().unwrap_or_else(PoisonError::into_inner);
    cx.stats
        .push_log_bytes
        .store(log.bytes(), Ordering::Relaxed);
    let mut replayed = 0;
    log.replay(from, |record| {
        let (text, _) = decode_push(cx, &cx.decode_options, &record.source, &record.payload);
        let skip = if record.seq == from.seq {
            from.offset
        } else {
            0
        };
        // The store's position may be the end of this push: all of it in.
        if skip < text.len() as u64 {
            let at = (PUSH_LOG_KEY, PositionSource::Push(record.seq));
            add_lines(
                cx,
                &cx.decode_options,
                &record.source,
                &text,
                Some(at),
                skip,
            );
            replayed += 1;
        }
    })?;
    cx.stats
        .pushes_replayed
        .fetch_add(replayed, Ordering::Relaxed);
    Ok(replayed)
}

/// Flow-log files under `dir` (any depth), sorted: regular files (or links
/// to them) with names ending in `.log`, `.log.gz`, `.gz` or `.txt`, not
/// hidden, not `.tmp`; a dangling link is left out.
pub fn list_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if [".log", ".gz", ".txt"].iter().any(|s| name.ends_with(s))
                && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file())
            {
                // Regular files only (a link is followed): a FIFO blocked
                // the listing at open, a link to /dev/zero never ended.
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::SpareTexts;

    #[test]
    fn spare_texts_reuse_a_given_back_buffer_and_stay_bounded() {
        let spares = SpareTexts::new(2, 1 << 10);
        let first = spares.copy_of(b"one line\n");
        assert_eq!(first, b"one line\n");
        let at = first.as_ptr();
        spares.give_back(first);
        let again = spares.copy_of(b"two\n");
        assert_eq!(again, b"two\n", "the old text is gone");
        assert_eq!(again.as_ptr(), at, "the spare buffer was reused");
        // Too large to keep: freed, not kept.
        spares.give_back(vec![0; 2 << 10]);
        assert!(spares.take.is_empty());
        // At most two kept.
        for _ in 0..3 {
            spares.give_back(Vec::with_capacity(16));
        }
        assert_eq!(spares.take.len(), 2);
    }
}
