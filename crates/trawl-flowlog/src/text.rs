//! Text decoding: newline-separated record lines from one source, with
//! header detection, line numbers, limits and counters.
//!
//! [`TextDecoder`] is the per-source state every container feeds: plain and
//! gzip files hand it chunks of text, CloudWatch and Firehose envelopes hand
//! it single messages. It decides each line's fate exactly once — record,
//! header, blank, or error — so that
//! `lines == records + header_lines + blank_lines + line errors`.
//!
//! Header lines (S3 delivery writes one at the top of each file) switch the
//! format unless an explicit format was given; they are recognised on any
//! line starting with a lowercase letter, so concatenated files decode too.
//! A header line past [`COLUMNS_MAX`](crate::COLUMNS_MAX) fields is a
//! `field_count` error naming the first field past the limit; the format
//! stays as it was.

use std::sync::Arc;

use crate::error::{DecodeError, ErrorCounts, ErrorKind, LineError, Position};
use crate::format::{FormatError, LogFormat};
use crate::line::LineDecoder;
use crate::record::{FlowRecord, LogStatus};

/// Default longest accepted line, in bytes.
pub const LINE_BYTES_MAX_DEFAULT: usize = 64 * 1024;

/// Default largest decompressed payload (envelope or decoded record), in bytes.
pub const PAYLOAD_BYTES_MAX_DEFAULT: usize = 256 * 1024 * 1024;

/// How to decode a source.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// An explicit format; without it, header lines, else the default format, decide.
    pub format: Option<LogFormat>,
    /// Longest accepted line in bytes; longer lines are errors.
    pub line_bytes_max: usize,
    /// Largest decompressed payload in bytes (gzip envelopes, base64 records).
    pub payload_bytes_max: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            format: None,
            line_bytes_max: LINE_BYTES_MAX_DEFAULT,
            payload_bytes_max: PAYLOAD_BYTES_MAX_DEFAULT,
        }
    }
}

/// Counters of one or more decoded sources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Lines (or log events) seen.
    pub lines: u64,
    /// Records decoded, including NODATA and SKIPDATA ones.
    pub records: u64,
    /// Records with `log-status` NODATA.
    pub nodata_records: u64,
    /// Records with `log-status` SKIPDATA.
    pub skipdata_records: u64,
    /// Header lines recognised.
    pub header_lines: u64,
    /// Empty lines skipped.
    pub blank_lines: u64,
    /// Bytes read from the source as stored (compressed bytes for gzip).
    pub input_bytes: u64,
    /// Bytes of decoded text.
    pub text_bytes: u64,
    /// Errors by kind.
    pub errors: ErrorCounts,
    /// Latest record `start` decoded (Unix seconds), for a stream's
    /// event-time progress.
    pub start_max: Option<u64>,
}

impl DecodeStats {
    /// Adds another source's counters.
    pub fn merge(&mut self, other: &DecodeStats) {
        self.lines += other.lines;
        self.records += other.records;
        self.nodata_records += other.nodata_records;
        self.skipdata_records += other.skipdata_records;
        self.header_lines += other.header_lines;
        self.blank_lines += other.blank_lines;
        self.input_bytes += other.input_bytes;
        self.text_bytes += other.text_bytes;
        self.errors.merge(&other.errors);
        self.start_max = self.start_max.max(other.start_max);
    }
}

/// Receives what a decoder finds, in input order.
pub trait RecordSink {
    /// A decoded record of `format`; it borrows the input and is only valid
    /// during the call.
    fn record(&mut self, record: &FlowRecord<'_>, format: &LogFormat);
    /// A decode error (already counted in the decoder's stats).
    fn error(&mut self, error: DecodeError);
}

/// Per-source decoding state: format, line number, counters. A clone
/// decodes on from where this one is (chunks of one file decoded by
/// several threads each start from the reader's decoder).
#[derive(Debug, Clone)]
pub struct TextDecoder {
    source_name: Arc<str>,
    explicit_format: bool,
    decoder: LineDecoder,
    line_bytes_max: usize,
    payload_bytes_max: usize,
    line: u64,
    record_index: Option<u64>,
    skipping_overlong: bool,
    stats: DecodeStats,
}

impl TextDecoder {
    /// A decoder for the source called `source_name` (used in error messages).
    pub fn new(source_name: impl Into<Arc<str>>, options: &DecodeOptions) -> Self {
        TextDecoder {
            source_name: source_name.into(),
            explicit_format: options.format.is_some(),
            decoder: LineDecoder::new(options.format.clone().unwrap_or_default()),
            line_bytes_max: options.line_bytes_max,
            payload_bytes_max: options.payload_bytes_max,
            line: 0,
            record_index: None,
            skipping_overlong: false,
            stats: DecodeStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// The format lines are currently decoded with.
    pub fn format(&self) -> &LogFormat {
        self.decoder.format()
    }

    /// The source's name.
    pub fn source_name(&self) -> &Arc<str> {
        &self.source_name
    }

    pub(crate) fn payload_bytes_max(&self) -> usize {
        self.payload_bytes_max
    }

    pub(crate) fn line_bytes_max(&self) -> usize {
        self.line_bytes_max
    }

    pub(crate) fn add_input_bytes(&mut self, bytes: u64) {
        self.stats.input_bytes += bytes;
    }

    /// Starts record `index` (1-based) of an envelope: positions name it and
    /// line numbers restart.
    pub(crate) fn begin_record(&mut self, index: Option<u64>) {
        self.record_index = index;
        self.restart_lines();
    }

    /// Restarts line numbering (each CloudWatch payload numbers its events from 1).
    pub(crate) fn restart_lines(&mut self) {
        self.line = 0;
        self.skipping_overlong = false;
    }

    /// Reports a container-level error (counted) at the line where decoding
    /// stopped: the one after the last line seen.
    pub(crate) fn container_error(
        &mut self,
        kind: ErrorKind,
        found: &[u8],
        sink: &mut impl RecordSink,
    ) {
        let error = LineError::new(kind, None, found);
        self.report_at(self.line + 1, error, sink);
    }

    /// Reports an error in the current line (counted).
    fn report(&mut self, error: LineError, sink: &mut impl RecordSink) {
        self.report_at(self.line, error, sink);
    }

    fn report_at(&mut self, line: u64, error: LineError, sink: &mut impl RecordSink) {
        self.stats.errors.add(error.kind);
        sink.error(DecodeError {
            source_name: self.source_name.clone(),
            position: Position {
                record: self.record_index,
                line,
            },
            error,
        });
    }

    /// Decodes every complete line of `text` and returns the bytes consumed
    /// (through the last newline). With `at_end`, the final unterminated line
    /// is decoded too and everything is consumed. An unterminated tail longer
    /// than the line limit is reported and skipped through its newline.
    pub fn decode_chunk(&mut self, text: &[u8], at_end: bool, sink: &mut impl RecordSink) -> usize {
        let mut record = FlowRecord::new();
        let mut consumed = 0;
        if self.skipping_overlong {
            match memchr::memchr(b'\n', text) {
                Some(newline) => {
                    self.skipping_overlong = false;
                    consumed = newline + 1;
                }
                None => return text.len(),
            }
        }
        let lines_end =
            memchr::memrchr(b'\n', &text[consumed..]).map_or(consumed, |i| consumed + i + 1);
        let lines = &text[consumed..lines_end];
        // Validating a chunk of text at once is far cheaper than validating
        // each text field, and SIMD validation (simdutf8) cheaper than the
        // standard library's (2 % of an ingest's instructions); a chunk
        // that fails falls back to per-field checks.
        if let Ok(valid) = simdutf8::basic::from_utf8(lines) {
            let mut start = 0;
            for newline in memchr::memchr_iter(b'\n', lines) {
                // Newlines are ASCII, so both ends lie on char boundaries.
                let line = valid.get(start..newline).unwrap_or_default();
                start = newline + 1;
                self.decode(Line::Text(line), &mut record, sink);
            }
        } else if let Some((_, lines)) = lines.split_last() {
            for line in lines.split(|&b| b == b'\n') {
                self.decode(Line::Bytes(line), &mut record, sink);
            }
        }
        consumed = lines_end;
        let tail = &text[consumed..];
        if at_end && !tail.is_empty() {
            self.decode(Line::Bytes(tail), &mut record, sink);
            consumed = text.len();
        } else if tail.len() > self.line_bytes_max {
            self.line += 1;
            self.stats.lines += 1;
            let error = LineError::new(ErrorKind::LineTooLong, None, tail);
            self.report(error, sink);
            self.skipping_overlong = true;
            consumed = text.len();
        }
        consumed
    }

    /// Reports the head of a line longer than `line_bytes_max` whose rest a
    /// reader skipped itself (a whole-line chunker): counts the line and
    /// the error, and leaves the decoder ready for the next line (unlike
    /// [`decode_chunk`](Self::decode_chunk), which skips the rest of such a
    /// line in the text it is given next).
    pub fn overlong_line(&mut self, head: &[u8], sink: &mut impl RecordSink) {
        self.line += 1;
        self.stats.lines += 1;
        let error = LineError::new(ErrorKind::LineTooLong, None, head);
        self.report(error, sink);
    }

    /// Counts `lines` lines as read without decoding them (a source that
    /// resumes past them), so that later errors name the right line.
    pub fn skip_lines(&mut self, lines: u64) {
        self.line += lines;
    }

    /// Decodes one line (without its newline) into `record` and hands the
    /// outcome to `sink`.
    pub fn decode_line<'a>(
        &mut self,
        line: &'a [u8],
        record: &mut FlowRecord<'a>,
        sink: &mut impl RecordSink,
    ) {
        self.decode(Line::Bytes(line), record, sink);
    }

    /// [`decode_line`](Self::decode_line) for a line known to be UTF-8.
    pub fn decode_text_line<'a>(
        &mut self,
        line: &'a str,
        record: &mut FlowRecord<'a>,
        sink: &mut impl RecordSink,
    ) {
        self.decode(Line::Text(line), record, sink);
    }

    fn decode<'a>(
        &mut self,
        line: Line<'a>,
        record: &mut FlowRecord<'a>,
        sink: &mut impl RecordSink,
    ) {
        self.line += 1;
        self.stats.lines += 1;
        let line = line.strip_cr();
        let bytes = line.bytes();
        self.stats.text_bytes += bytes.len() as u64 + 1;
        if bytes.len() > self.line_bytes_max {
            let error = LineError::new(ErrorKind::LineTooLong, None, bytes);
            return self.report(error, sink);
        }
        if bytes.iter().all(|&b| b == b' ') {
            self.stats.blank_lines += 1;
            return;
        }
        if bytes[0].is_ascii_lowercase() {
            match LogFormat::read_header_line(bytes) {
                Ok(None) => {}
                Ok(Some(format)) => {
                    self.stats.header_lines += 1;
                    if !self.explicit_format && &format != self.decoder.format() {
                        self.decoder = LineDecoder::new(format);
                        *record = FlowRecord::new();
                    }
                    return;
                }
                Err(error) => return self.report(header_error(&error), sink),
            }
        }
        let decoded = match line {
            Line::Text(text) => self.decoder.decode_str_into(text, record),
            Line::Bytes(bytes) => self.decoder.decode_into(bytes, record),
        };
        match decoded {
            Ok(()) => {
                self.stats.records += 1;
                self.stats.start_max = self.stats.start_max.max(record.start());
                match record.log_status() {
                    Some(LogStatus::NoData) => self.stats.nodata_records += 1,
                    Some(LogStatus::SkipData) => self.stats.skipdata_records += 1,
                    _ => {}
                }
                sink.record(record, self.decoder.format());
            }
            Err(error) => self.report(error, sink),
        }
    }
}

/// The line error for a header line that was refused: the format stays as it was.
fn header_error(error: &FormatError) -> LineError {
    let found = match error {
        FormatError::TooManyColumns {
            count,
            max,
            column,
            name,
        } => format!("header line has {count} fields, at most {max}; field {column} is {name:?}"),
        other => format!("header line: {other}"),
    };
    LineError::new(ErrorKind::FieldCount, None, found.as_bytes())
}

/// A line as bytes, or as text already validated as UTF-8.
#[derive(Clone, Copy)]
enum Line<'a> {
    Bytes(&'a [u8]),
    Text(&'a str),
}

impl<'a> Line<'a> {
    #[inline]
    fn bytes(self) -> &'a [u8] {
        match self {
            Line::Bytes(bytes) => bytes,
            Line::Text(text) => text.as_bytes(),
        }
    }

    #[inline]
    fn strip_cr(self) -> Self {
        match self {
            Line::Bytes(bytes) => Line::Bytes(bytes.strip_suffix(b"\r").unwrap_or(bytes)),
            Line::Text(text) => Line::Text(text.strip_suffix('\r').unwrap_or(text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Field;

    #[derive(Default)]
    struct Collect {
        ports: Vec<Option<u16>>,
        errors: Vec<String>,
    }

    impl RecordSink for Collect {
        fn record(&mut self, record: &FlowRecord<'_>, _: &LogFormat) {
            self.ports.push(record.dst_port());
        }
        fn error(&mut self, error: DecodeError) {
            self.errors.push(error.to_string());
        }
    }

    fn options(format: Option<&str>) -> DecodeOptions {
        DecodeOptions {
            format: format.map(|f| LogFormat::parse(f).unwrap()),
            line_bytes_max: 32,
            ..DecodeOptions::default()
        }
    }

    #[test]
    fn header_switches_format_and_lines_are_counted() {
        let mut text = TextDecoder::new("t.log", &options(None));
        let mut sink = Collect::default();
        let input = b"srcport dstport\n1 2\n\n3 x\r\n5 6";
        assert_eq!(text.decode_chunk(input, true, &mut sink), input.len());
        assert_eq!(sink.ports, [Some(2), Some(6)]);
        assert_eq!(
            sink.errors,
            ["t.log: line 4: field dst_port: not a number: \"x\""]
        );
        let s = text.stats();
        assert_eq!(
            (s.lines, s.records, s.header_lines, s.blank_lines),
            (5, 2, 1, 1)
        );
        assert_eq!(s.errors.get(ErrorKind::InvalidNumber), 1);
    }

    #[test]
    fn a_header_past_the_column_limit_is_one_error_and_keeps_the_format() {
        let mut text = TextDecoder::new("t.log", &DecodeOptions::default());
        let mut sink = Collect::default();
        let mut header = String::from("srcport dstport");
        let letter = |d: usize| char::from(b'a' + (d % 26) as u8);
        for i in 0..crate::COLUMNS_MAX {
            header.push_str(&format!(" field-{}-{}", letter(i / 26), letter(i)));
        }
        let input = format!("srcport dstport\n{header}\n1 2\n");
        text.decode_chunk(input.as_bytes(), true, &mut sink);
        assert_eq!(sink.ports, [Some(2)]);
        assert_eq!(
            sink.errors,
            [
                "t.log: line 2: wrong number of fields: header line has 258 fields, at most 256; field 257 is \"field-j-u\""
            ]
        );
        let s = text.stats();
        assert_eq!((s.lines, s.records, s.header_lines), (3, 1, 1));
        assert_eq!(s.errors.get(ErrorKind::FieldCount), 1);
    }

    #[test]
    fn explicit_format_wins_over_the_header() {
        let mut text = TextDecoder::new("t.log", &options(Some("dstport srcport")));
        let mut sink = Collect::default();
        text.decode_chunk(b"srcport dstport\n1 2\n", true, &mut sink);
        assert_eq!(sink.ports, [Some(1)]);
        assert!(text.format().contains(Field::DstPort));
    }

    #[test]
    fn unterminated_tail_waits_for_more_unless_at_end() {
        let mut text = TextDecoder::new("t.log", &options(Some("dstport")));
        let mut sink = Collect::default();
        assert_eq!(text.decode_chunk(b"1\n2", false, &mut sink), 2);
        assert_eq!(text.decode_chunk(b"2", true, &mut sink), 1);
        assert_eq!(sink.ports, [Some(1), Some(2)]);
    }

    #[test]
    fn overlong_line_is_reported_once_and_skipped_across_chunks() {
        let mut text = TextDecoder::new("t.log", &options(Some("dstport")));
        let mut sink = Collect::default();
        let long = vec![b'9'; 40];
        assert_eq!(text.decode_chunk(&long, false, &mut sink), 40);
        assert_eq!(text.decode_chunk(b"999\n7\n", true, &mut sink), 6);
        assert_eq!(sink.ports, [Some(7)]);
        assert_eq!(sink.errors.len(), 1);
        assert!(sink.errors[0].starts_with("t.log: line 1: line too long"));
        assert_eq!(text.stats().lines, 2);
    }
}
