//! The line decoder: one space-separated record line → typed [`FlowRecord`].
//!
//! This is the hot path. It makes one pass over the line, allocates nothing
//! on success, and borrows text fields from the line. Fields are separated by
//! one or more spaces (AWS writes one; its own documentation has an example
//! with two). `-` is null for any field. A line must carry exactly as many
//! fields as its format; the first bad field ends the line with a
//! [`LineError`] naming that field.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{ErrorKind, LineError};
use crate::field::ValueType;
use crate::format::{Column, LogFormat};
use crate::record::{
    Action, FlowDirection, FlowRecord, LogStatus, SublocationType, TrafficType, Value,
};

/// Decodes lines of one [`LogFormat`].
#[derive(Debug, Clone)]
pub struct LineDecoder {
    format: LogFormat,
    plan: Vec<(Column, ValueType)>,
}

impl Default for LineDecoder {
    fn default() -> Self {
        Self::new(LogFormat::default())
    }
}

impl LineDecoder {
    /// A decoder for lines of `format`.
    pub fn new(format: LogFormat) -> Self {
        let plan = format
            .columns()
            .iter()
            .map(|&column| {
                let value_type = match column {
                    Column::Known(field) => field.value_type(),
                    Column::Extra(_) => ValueType::Str,
                };
                (column, value_type)
            })
            .collect();
        LineDecoder { format, plan }
    }

    /// The format this decoder reads.
    pub fn format(&self) -> &LogFormat {
        &self.format
    }

    /// Decodes `line` (without its newline) into a fresh record.
    pub fn decode<'a>(&self, line: &'a [u8]) -> Result<FlowRecord<'a>, LineError> {
        let mut record = FlowRecord::new();
        self.decode_into(line, &mut record)?;
        Ok(record)
    }

    /// Decodes `line` into `record`, overwriting exactly the format's columns.
    ///
    /// Reusing one record for many lines of one format avoids clearing it:
    /// every column the format carries is written on success. On error the
    /// record holds a mix of old and new values and must not be used.
    #[inline]
    pub fn decode_into<'a>(
        &self,
        line: &'a [u8],
        record: &mut FlowRecord<'a>,
    ) -> Result<(), LineError> {
        let mut pos = 0;
        for (index, &(column, value_type)) in self.plan.iter().enumerate() {
            let Some(token) = next_token(line, &mut pos) else {
                return Err(field_count_error(self.plan.len(), index));
            };
            let value = parse_value(value_type, token).map_err(|kind| {
                let field = match column {
                    Column::Known(field) => Some(field),
                    Column::Extra(_) => None,
                };
                LineError::new(kind, field, token)
            })?;
            record.set_column(column, value);
        }
        if next_token(line, &mut pos).is_some() {
            let mut found = self.plan.len() + 1;
            while next_token(line, &mut pos).is_some() {
                found += 1;
            }
            return Err(field_count_error(self.plan.len(), found));
        }
        Ok(())
    }
}

fn field_count_error(expected: usize, found: usize) -> LineError {
    let text = format!("expected {expected} fields, found {found}");
    LineError::new(ErrorKind::FieldCount, None, text.as_bytes())
}

/// The next space-separated token at or after `pos`, skipping runs of spaces.
#[inline]
fn next_token<'a>(line: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let rest = line.get(*pos..)?;
    let start = *pos + rest.iter().position(|&b| b != b' ')?;
    let len = line[start..]
        .iter()
        .position(|&b| b == b' ')
        .unwrap_or(line.len() - start);
    *pos = start + len;
    Some(&line[start..start + len])
}

/// Parses one token as `value_type`; `-` is null for every type.
#[inline]
pub(crate) fn parse_value(value_type: ValueType, token: &[u8]) -> Result<Value<'_>, ErrorKind> {
    if token == b"-" {
        return Ok(Value::Null);
    }
    Ok(match value_type {
        ValueType::Int { max } => Value::Int(parse_uint(token, max)?),
        ValueType::Addr => Value::Addr(parse_addr(token).ok_or(ErrorKind::InvalidAddress)?),
        ValueType::Str => {
            Value::Str(std::str::from_utf8(token).map_err(|_| ErrorKind::InvalidUtf8)?)
        }
        ValueType::Action => Value::Action(keyword(Action::from_bytes(token))?),
        ValueType::LogStatus => Value::LogStatus(keyword(LogStatus::from_bytes(token))?),
        ValueType::FlowDirection => {
            Value::FlowDirection(keyword(FlowDirection::from_bytes(token))?)
        }
        ValueType::TrafficType => Value::TrafficType(keyword(TrafficType::from_bytes(token))?),
        ValueType::SublocationType => {
            Value::SublocationType(keyword(SublocationType::from_bytes(token))?)
        }
    })
}

fn keyword<T>(value: Option<T>) -> Result<T, ErrorKind> {
    value.ok_or(ErrorKind::InvalidValue)
}

/// A decimal unsigned integer no larger than `max`.
#[inline]
fn parse_uint(token: &[u8], max: u64) -> Result<u64, ErrorKind> {
    let mut value: u64 = 0;
    for &b in token {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return Err(ErrorKind::InvalidNumber);
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or(ErrorKind::NumberOutOfRange)?;
    }
    if value > max {
        return Err(ErrorKind::NumberOutOfRange);
    }
    Ok(value)
}

/// An IPv4 address (fast path) or IPv6 address (standard parser).
#[inline]
fn parse_addr(token: &[u8]) -> Option<IpAddr> {
    if token.contains(&b':') {
        let text = std::str::from_utf8(token).ok()?;
        return text.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    parse_ipv4(token).map(IpAddr::V4)
}

/// Dotted-quad IPv4 with the standard library's rules: four decimal octets,
/// each 0–255, no leading zeros.
#[inline]
fn parse_ipv4(token: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut index = 0;
    let mut value: u32 = 0;
    let mut digits = 0;
    let mut leading_zero = false;
    for &b in token {
        if b == b'.' {
            if digits == 0 || index == 3 {
                return None;
            }
            octets[index] = value as u8;
            index += 1;
            value = 0;
            digits = 0;
            leading_zero = false;
            continue;
        }
        let digit = b.wrapping_sub(b'0');
        if digit > 9 || leading_zero {
            return None;
        }
        leading_zero = digits == 0 && digit == 0;
        value = value * 10 + u32::from(digit);
        digits += 1;
        if value > 255 {
            return None;
        }
    }
    if index != 3 || digits == 0 {
        return None;
    }
    octets[3] = value as u8;
    Some(Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Field;

    fn decode(format: &str, line: &str) -> Result<FlowRecord<'static>, LineError> {
        let decoder = LineDecoder::new(LogFormat::parse(format).unwrap());
        let line: &'static str = Box::leak(line.to_string().into_boxed_str());
        decoder.decode(line.as_bytes())
    }

    #[test]
    fn ipv4_matches_the_standard_parser() {
        for text in [
            "0.0.0.0",
            "10.1.2.3",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1..2.3",
            "1.2.3.",
            ".1.2.3",
            "1.2.3.04",
            "1.2.3.0",
            "",
            "a.b.c.d",
            "1.2.3.1000",
        ] {
            assert_eq!(
                parse_ipv4(text.as_bytes()),
                text.parse::<Ipv4Addr>().ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn uint_limits() {
        assert_eq!(parse_uint(b"65535", 65535), Ok(65535));
        assert_eq!(
            parse_uint(b"65536", 65535),
            Err(ErrorKind::NumberOutOfRange)
        );
        assert_eq!(parse_uint(b"18446744073709551615", u64::MAX), Ok(u64::MAX));
        assert_eq!(
            parse_uint(b"18446744073709551616", u64::MAX),
            Err(ErrorKind::NumberOutOfRange)
        );
        assert_eq!(parse_uint(b"12a", 999), Err(ErrorKind::InvalidNumber));
        assert_eq!(parse_uint(b"-1", 999), Err(ErrorKind::InvalidNumber));
    }

    #[test]
    fn dash_is_null_for_every_type() {
        let r = decode(
            "srcaddr dstport action log-status type vpc-id",
            "- - - - - -",
        )
        .unwrap();
        for f in [
            Field::SrcAddr,
            Field::DstPort,
            Field::Action,
            Field::LogStatus,
            Field::Type,
            Field::VpcId,
        ] {
            assert!(r.get(f).is_null(), "{f}");
        }
    }

    #[test]
    fn errors_name_the_field_and_text() {
        let e = decode("srcaddr dstport", "10.0.0.1 99999").unwrap_err();
        assert_eq!(e.kind, ErrorKind::NumberOutOfRange);
        assert_eq!(e.field, Some(Field::DstPort));
        assert_eq!(e.found, "99999");

        let e = decode("srcaddr dstport", "10.0.0.300 80").unwrap_err();
        assert_eq!(
            (e.kind, e.field),
            (ErrorKind::InvalidAddress, Some(Field::SrcAddr))
        );

        let e = decode("action", "ALLOW").unwrap_err();
        assert_eq!(
            (e.kind, e.field),
            (ErrorKind::InvalidValue, Some(Field::Action))
        );
    }

    #[test]
    fn field_count_is_checked_both_ways() {
        let e = decode("srcaddr dstport", "10.0.0.1").unwrap_err();
        assert_eq!(e.kind, ErrorKind::FieldCount);
        assert_eq!(e.found, "expected 2 fields, found 1");
        let e = decode("srcaddr dstport", "10.0.0.1 80 extra more").unwrap_err();
        assert_eq!(e.found, "expected 2 fields, found 4");
    }

    #[test]
    fn runs_of_spaces_separate_like_one() {
        let r = decode("srcport dstport", "  80   443  ").unwrap();
        assert_eq!((r.src_port(), r.dst_port()), (Some(80), Some(443)));
    }

    #[test]
    fn invalid_utf8_in_a_text_field() {
        let decoder = LineDecoder::new(LogFormat::parse("vpc-id").unwrap());
        let e = decoder.decode(b"vpc-\xff\xfe").unwrap_err();
        assert_eq!(
            (e.kind, e.field),
            (ErrorKind::InvalidUtf8, Some(Field::VpcId))
        );
    }
}
