//! One Kafka message, as its container says it is, turned into record
//! lines for the workers (`source::add_lines`).
//!
//! | container | a message is |
//! |---|---|
//! | `lines` | record lines (a last line without a newline is a line) |
//! | `gzip` | a gzip'd file of record lines (header line or not) |
//! | `cloudwatch` | a CloudWatch Logs subscription payload (gzip JSON) |
//! | `firehose` | a Firehose HTTP endpoint request (JSON, base64 records) |
//! | `auto` | any of them: gzip by its magic bytes, JSON by its `{` |
//!
//! Lines go to the workers as they are (inflated if gzip'd); envelopes are
//! decoded and their records written back as lines (`source::decode_push`).
//! The same message always gives the same text, so a position inside it
//! (bytes of its text) means the same after a restart. A message that is
//! not what its container says, or whose gzip breaks, is *bad*: counted,
//! reported with topic, partition and offset, and the complete lines
//! before the break are kept; the partition goes on.

use std::io::Read;

use flate2::read::MultiGzDecoder;
use serde::Deserialize;
use trawl_flowlog::{DecodeOptions, GZIP_MAGIC, starts_with_json};

use crate::source::decode_push;
use crate::worker::Context;

/// What a Kafka message holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    /// Told apart by the message's first bytes.
    #[default]
    Auto,
    /// Record lines.
    Lines,
    /// A gzip'd file of record lines.
    Gzip,
    /// A CloudWatch Logs subscription payload.
    Cloudwatch,
    /// A Firehose HTTP endpoint request.
    Firehose,
}

impl Container {
    /// Parses a container's name (`auto`, `lines`, `gzip`, `cloudwatch`,
    /// `firehose`).
    pub fn parse(name: &str) -> Option<Container> {
        Some(match name {
            "auto" => Container::Auto,
            "lines" => Container::Lines,
            "gzip" => Container::Gzip,
            "cloudwatch" => Container::Cloudwatch,
            "firehose" => Container::Firehose,
            _ => return None,
        })
    }
}

/// What adding one message (or Kinesis record) did.
#[derive(Debug, Default)]
pub struct Added {
    /// Why the message is bad, if it is (not what its container says, or
    /// lines that are all errors).
    pub bad: Option<String>,
    /// The newest record start in it.
    pub start_max: Option<u32>,
}

/// Adds the record lines of one message of a stream with its position
/// `at` (the first `skip` bytes of its decoded text are in already);
/// counts its input bytes. The caller notes the position past it.
pub(crate) fn add_message(
    cx: &Context,
    options: &DecodeOptions,
    container: Container,
    source: &str,
    payload: &[u8],
    at: (&str, crate::worker::PositionSource<'_>),
    skip: u64,
) -> Added {
    cx.stats
        .input_bytes
        .fetch_add(payload.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let text = message_text(cx, options, container, source, payload);
    let decoded = crate::source::add_lines(cx, options, source, &text.text, Some(at), skip);
    let bad = text.bad.or_else(|| {
        (decoded.errors.total() > 0 && decoded.records == 0)
            .then(|| format!("{} lines, none a flow record", decoded.errors.total()))
    });
    Added {
        bad,
        start_max: decoded.start_max.and_then(|s| u32::try_from(s).ok()),
    }
}

/// A message's record lines, and why it is bad if it is.
#[derive(Debug, Default)]
pub struct MessageText {
    /// Whole lines, each ending in a newline (empty: nothing to add).
    pub text: Vec<u8>,
    /// What is wrong with the message (its lines before the damage are in `text`).
    pub bad: Option<String>,
}

/// The record lines of `payload` under `container`; `source` names the
/// message in the errors its envelopes report.
pub fn message_text(
    cx: &Context,
    options: &DecodeOptions,
    container: Container,
    source: &str,
    payload: &[u8],
) -> MessageText {
    let gzip = payload.starts_with(&GZIP_MAGIC);
    match container {
        Container::Lines => lines(payload.to_vec(), None),
        Container::Gzip if !gzip => MessageText {
            bad: Some("not gzip (container = gzip)".to_string()),
            ..MessageText::default()
        },
        Container::Cloudwatch | Container::Firehose => envelopes(cx, options, source, payload),
        Container::Gzip | Container::Auto => {
            let (inflated, broken) = if gzip {
                inflate(payload, options.payload_bytes_max)
            } else {
                (payload.to_vec(), None)
            };
            if container == Container::Auto && starts_with_json(&inflated) && broken.is_none() {
                envelopes(cx, options, source, payload)
            } else {
                lines(inflated, broken)
            }
        }
    }
}

/// `text` cut to whole lines: a final line without a newline is whole when
/// the text is (`broken` none), and dropped when the gzip broke inside it.
fn lines(mut text: Vec<u8>, broken: Option<String>) -> MessageText {
    if !text.is_empty() && !text.ends_with(b"\n") {
        if broken.is_some() {
            let whole = memchr::memrchr(b'\n', &text).map_or(0, |i| i + 1);
            text.truncate(whole);
        } else {
            text.push(b'\n');
        }
    }
    MessageText { text, bad: broken }
}

/// The inflated text of a gzip payload (at most `limit` bytes), and what
/// broke if it did not inflate whole.
fn inflate(payload: &[u8], limit: usize) -> (Vec<u8>, Option<String>) {
    let mut text = Vec::with_capacity(payload.len().saturating_mul(4).min(limit));
    let read = MultiGzDecoder::new(payload)
        .take(limit as u64 + 1)
        .read_to_end(&mut text);
    match read {
        Err(error) => (text, Some(format!("gzip: {error}"))),
        Ok(_) if text.len() > limit => {
            text.truncate(limit);
            (
                text,
                Some(format!("inflates past {limit} bytes (payload_bytes_max)")),
            )
        }
        Ok(_) => (text, None),
    }
}

/// The records of JSON envelopes (gzip'd or not) as lines; a payload with
/// no envelope in it is bad.
fn envelopes(cx: &Context, options: &DecodeOptions, source: &str, payload: &[u8]) -> MessageText {
    let (text, report) = decode_push(cx, options, source, payload);
    let bad = if report.summary.json_envelopes == 0 {
        Some("not a CloudWatch Logs or Firehose JSON envelope".to_string())
    } else if report.errors > 0 {
        Some(format!("{} errors in its envelopes", report.errors))
    } else {
        None
    };
    MessageText { text, bad }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(text: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(text).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn a_line_without_a_newline_is_whole_unless_the_gzip_broke_inside_it() {
        let whole = lines(b"a b\nc d".to_vec(), None);
        assert_eq!(whole.text, b"a b\nc d\n");
        assert!(whole.bad.is_none());
        let broken = lines(b"a b\nc d".to_vec(), Some("gzip".into()));
        assert_eq!(broken.text, b"a b\n");
        assert!(broken.bad.is_some());
        assert!(lines(Vec::new(), None).text.is_empty());
    }

    #[test]
    fn a_truncated_gzip_keeps_its_whole_lines_and_is_bad() {
        let text = b"line one\nline two\nline three\n".repeat(200);
        let packed = gzip(&text);
        let (whole, broken) = inflate(&packed, 1 << 20);
        assert_eq!((whole.as_slice(), broken), (text.as_slice(), None));
        let (part, broken) = inflate(&packed[..packed.len() / 2], 1 << 20);
        assert!(broken.is_some());
        assert!(text.starts_with(&part));
        let (capped, broken) = inflate(&packed, 100);
        assert_eq!(capped.len(), 100);
        assert!(broken.unwrap().contains("payload_bytes_max"));
    }

    #[test]
    fn containers_are_named_as_in_the_config() {
        for (name, container) in [
            ("auto", Container::Auto),
            ("lines", Container::Lines),
            ("gzip", Container::Gzip),
            ("cloudwatch", Container::Cloudwatch),
            ("firehose", Container::Firehose),
        ] {
            assert_eq!(Container::parse(name), Some(container));
        }
        assert_eq!(Container::parse("zip"), None);
    }
}
