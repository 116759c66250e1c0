//! Decode errors: what went wrong, where (source, record, line, field), and
//! the offending text; plus counters per kind.
//!
//! A bad line never stops decoding: the decoder reports one [`DecodeError`]
//! and goes on with the next line. Only container-level damage (a corrupt or
//! truncated gzip stream, an envelope that is not JSON) ends the current
//! container, after every good line before the damage has been delivered.

use std::fmt;
use std::sync::Arc;

use crate::field::Field;

/// Longest offending text kept in an error, in bytes (longer text is cut).
pub const ERROR_TEXT_BYTES_MAX: usize = 96;

/// The kinds of decode error, each with its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// A line with fewer or more fields than its format.
    FieldCount,
    /// A number field that is not a decimal number.
    InvalidNumber,
    /// A number too large for its field (port above 65535, …).
    NumberOutOfRange,
    /// An address field that is not an IPv4 or IPv6 address.
    InvalidAddress,
    /// A keyword field with an unknown value (`action` other than ACCEPT/REJECT, …).
    InvalidValue,
    /// Text that is not UTF-8.
    InvalidUtf8,
    /// A line longer than the configured limit.
    LineTooLong,
    /// A gzip stream that ends early.
    TruncatedGzip,
    /// A gzip stream that is not valid gzip/deflate.
    CorruptGzip,
    /// A CloudWatch Logs or Firehose envelope that is not of the expected shape.
    InvalidEnvelope,
    /// Decompressed or decoded payload above the configured limit.
    PayloadTooLarge,
    /// A read error from the underlying file or stream.
    Io,
}

impl ErrorKind {
    /// Every kind, in counter order.
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::FieldCount,
        ErrorKind::InvalidNumber,
        ErrorKind::NumberOutOfRange,
        ErrorKind::InvalidAddress,
        ErrorKind::InvalidValue,
        ErrorKind::InvalidUtf8,
        ErrorKind::LineTooLong,
        ErrorKind::TruncatedGzip,
        ErrorKind::CorruptGzip,
        ErrorKind::InvalidEnvelope,
        ErrorKind::PayloadTooLarge,
        ErrorKind::Io,
    ];

    /// Whether an error of this kind stands for exactly one input line (the
    /// others are about a whole container and stand for no line).
    pub const fn is_line_error(self) -> bool {
        matches!(
            self,
            ErrorKind::FieldCount
                | ErrorKind::InvalidNumber
                | ErrorKind::NumberOutOfRange
                | ErrorKind::InvalidAddress
                | ErrorKind::InvalidValue
                | ErrorKind::InvalidUtf8
                | ErrorKind::LineTooLong
        )
    }

    /// A stable snake_case name (metrics labels, `--stats` output).
    pub const fn name(self) -> &'static str {
        match self {
            ErrorKind::FieldCount => "field_count",
            ErrorKind::InvalidNumber => "invalid_number",
            ErrorKind::NumberOutOfRange => "number_out_of_range",
            ErrorKind::InvalidAddress => "invalid_address",
            ErrorKind::InvalidValue => "invalid_value",
            ErrorKind::InvalidUtf8 => "invalid_utf8",
            ErrorKind::LineTooLong => "line_too_long",
            ErrorKind::TruncatedGzip => "truncated_gzip",
            ErrorKind::CorruptGzip => "corrupt_gzip",
            ErrorKind::InvalidEnvelope => "invalid_envelope",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::Io => "io",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ErrorKind::FieldCount => "wrong number of fields",
            ErrorKind::InvalidNumber => "not a number",
            ErrorKind::NumberOutOfRange => "number out of range",
            ErrorKind::InvalidAddress => "not an IP address",
            ErrorKind::InvalidValue => "unexpected value",
            ErrorKind::InvalidUtf8 => "invalid UTF-8",
            ErrorKind::LineTooLong => "line too long",
            ErrorKind::TruncatedGzip => "gzip stream ends early",
            ErrorKind::CorruptGzip => "corrupt gzip stream",
            ErrorKind::InvalidEnvelope => "invalid envelope",
            ErrorKind::PayloadTooLarge => "payload too large",
            ErrorKind::Io => "read error",
        }
    }
}

/// An error within one line, before its position is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The field at fault, when one is.
    pub field: Option<Field>,
    /// What was found (the field's text, a count, …), cut to [`ERROR_TEXT_BYTES_MAX`].
    pub found: String,
}

impl LineError {
    pub(crate) fn new(kind: ErrorKind, field: Option<Field>, found: &[u8]) -> Self {
        LineError {
            kind,
            field,
            found: excerpt(found),
        }
    }
}

/// Where in the input an error is: which record of an envelope (if any) and
/// which line (1-based; for CloudWatch payloads, the log event's index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// 1-based record index within a Firehose request, if the input is one.
    pub record: Option<u64>,
    /// 1-based line (or log event) number; 0 when the error is about the whole container.
    pub line: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(record) = self.record {
            write!(f, "record {record}, ")?;
        }
        write!(f, "line {}", self.line)
    }
}

/// A decode error with its full location: source name, position, field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DecodeError {
    /// The input's name (file path, `-` for stdin, a topic/partition/offset, …).
    pub source_name: Arc<str>,
    /// Where in the input.
    pub position: Position,
    /// What went wrong, and in which field.
    pub error: LineError,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.source_name, self.position)?;
        if let Some(field) = self.error.field {
            write!(f, "field {field}: ")?;
        }
        write!(f, "{}", self.error.kind.describe())?;
        match self.error.kind {
            // Already a sentence that quotes the line itself.
            ErrorKind::FieldCount => write!(f, ": {}", self.error.found)?,
            _ if !self.error.found.is_empty() => write!(f, ": {:?}", self.error.found)?,
            _ => {}
        }
        Ok(())
    }
}

impl DecodeError {
    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.error.kind
    }
}

/// Counts of decode errors per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    counts: [u64; ErrorKind::ALL.len()],
}

impl ErrorCounts {
    /// Adds one error of `kind`.
    pub fn add(&mut self, kind: ErrorKind) {
        self.counts[kind as usize] += 1;
    }

    /// Errors of `kind` so far.
    pub fn get(&self, kind: ErrorKind) -> u64 {
        self.counts[kind as usize]
    }

    /// Errors of every kind so far.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds another set of counts to this one.
    pub fn merge(&mut self, other: &ErrorCounts) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
    }

    /// `(kind, count)` for every kind with a non-zero count.
    pub fn nonzero(&self) -> impl Iterator<Item = (ErrorKind, u64)> + '_ {
        ErrorKind::ALL
            .iter()
            .map(|k| (*k, self.get(*k)))
            .filter(|(_, n)| *n > 0)
    }
}

/// The offending text as a printable string, cut at [`ERROR_TEXT_BYTES_MAX`].
fn excerpt(found: &[u8]) -> String {
    let cut = &found[..found.len().min(ERROR_TEXT_BYTES_MAX)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if found.len() > ERROR_TEXT_BYTES_MAX {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_index_their_counters() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
    }

    #[test]
    fn message_names_source_line_field_and_text() {
        let e = DecodeError {
            source_name: "flows.log".into(),
            position: Position {
                record: None,
                line: 7,
            },
            error: LineError::new(ErrorKind::NumberOutOfRange, Some(Field::DstPort), b"70000"),
        };
        assert_eq!(
            e.to_string(),
            "flows.log: line 7: field dst_port: number out of range: \"70000\""
        );
    }

    #[test]
    fn long_text_is_cut() {
        let e = LineError::new(ErrorKind::InvalidValue, None, &[b'x'; 500]);
        assert!(e.found.len() < 110);
        assert!(e.found.ends_with('…'));
    }
}
