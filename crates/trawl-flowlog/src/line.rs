//! The line decoder: one space-separated record line → typed [`FlowRecord`].
//!
//! This is the hot path. It makes one pass over the line, allocates nothing
//! on success, and borrows text fields from the line. Fields are separated by
//! one or more spaces (AWS writes one; its own documentation has an example
//! with two). `-` is null for any field. A line must carry exactly as many
//! fields as its format; the first bad field ends the line with a
//! [`LineError`] naming that field.

use std::net::IpAddr;

use crate::addr::{parse_ipv4_prefix, parse_ipv6};

use crate::error::{ErrorKind, LineError};
use crate::field::{Field, ValueType};
use crate::format::{Column, LogFormat};
use crate::record::{
    Action, FlowDirection, FlowRecord, LogStatus, SublocationType, TrafficType, Value,
};
use crate::scan::{digit_run, find_space, load8_padded};

/// Decodes lines of one [`LogFormat`].
#[derive(Debug, Clone)]
pub struct LineDecoder {
    format: LogFormat,
    plan: Vec<Step>,
    /// The format is AWS's default: decode with [`DEFAULT_PLAN`], a constant
    /// the compiler specialises the loop for.
    is_default: bool,
    /// Extra columns of the format: slots a record needs beyond the known fields.
    extras: usize,
}

/// The plan of AWS's default format, as a constant.
const DEFAULT_PLAN: [Step; 14] = {
    let fields = Field::DEFAULT_FORMAT;
    let mut plan = [Step {
        slot: 0,
        column: Column::Known(Field::Version),
        value_type: Field::Version.value_type(),
    }; 14];
    let mut i = 0;
    while i < 14 {
        plan[i] = Step {
            slot: fields[i] as usize,
            column: Column::Known(fields[i]),
            value_type: fields[i].value_type(),
        };
        i += 1;
    }
    plan
};

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
                Step {
                    slot: column.slot(),
                    column,
                    value_type,
                }
            })
            .collect();
        let is_default = format == LogFormat::default();
        let extras = format.extra_names().len();
        LineDecoder {
            format,
            plan,
            is_default,
            extras,
        }
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
        self.decode_with(line, record, |start, end| {
            std::str::from_utf8(&line[start..end]).map_err(|_| ErrorKind::InvalidUtf8)
        })
    }

    /// [`decode_into`](Self::decode_into) for a line already known to be
    /// UTF-8 (a whole chunk validated at once): text fields skip validation.
    #[inline]
    pub fn decode_str_into<'a>(
        &self,
        line: &'a str,
        record: &mut FlowRecord<'a>,
    ) -> Result<(), LineError> {
        // Tokens end at ASCII spaces, so they always lie on char boundaries.
        self.decode_with(line.as_bytes(), record, |start, end| {
            line.get(start..end).ok_or(ErrorKind::InvalidUtf8)
        })
    }

    #[inline(always)]
    fn decode_with<'a>(
        &self,
        line: &'a [u8],
        record: &mut FlowRecord<'a>,
        text: impl Fn(usize, usize) -> Result<&'a str, ErrorKind>,
    ) -> Result<(), LineError> {
        if self.is_default {
            decode_default(line, record, text)
        } else {
            record.reserve_extras(self.extras);
            decode_plan(&self.plan, line, record, text)
        }
    }
}

/// Decodes `line` by `plan`. The default format's plan is a constant and its
/// loop is unrolled by a macro, so each step's `match` on the value type
/// folds away: the common case runs as straight-line code.
#[inline(always)]
fn decode_plan<'a>(
    plan: &[Step],
    line: &'a [u8],
    record: &mut FlowRecord<'a>,
    text: impl Fn(usize, usize) -> Result<&'a str, ErrorKind>,
) -> Result<(), LineError> {
    let mut pos = skip_spaces(line, 0);
    for (index, step) in plan.iter().enumerate() {
        pos = decode_step(step, index, plan.len(), line, pos, record, &text)?;
    }
    check_line_end(plan.len(), line, pos)
}

fn decode_default<'a>(
    line: &'a [u8],
    record: &mut FlowRecord<'a>,
    text: impl Fn(usize, usize) -> Result<&'a str, ErrorKind>,
) -> Result<(), LineError> {
    let mut pos = skip_spaces(line, 0);
    macro_rules! steps {
        ($($i:literal)*) => {
            $( pos = decode_step(&DEFAULT_PLAN[$i], $i, DEFAULT_PLAN.len(), line, pos, record, &text)?; )*
        };
    }
    steps!(0 1 2 3 4 5 6 7 8 9 10 11 12 13);
    check_line_end(DEFAULT_PLAN.len(), line, pos)
}

/// Decodes field `index` of `fields` starting at `pos`; returns where the next starts.
#[inline(always)]
fn decode_step<'a>(
    step: &Step,
    index: usize,
    fields: usize,
    line: &'a [u8],
    pos: usize,
    record: &mut FlowRecord<'a>,
    text: &impl Fn(usize, usize) -> Result<&'a str, ErrorKind>,
) -> Result<usize, LineError> {
    if pos >= line.len() {
        return Err(field_count_error(fields, index, line));
    }
    let slot = record.slot_mut(step.slot);
    let end = parse_field(step.value_type, line, pos, text, slot).map_err(|kind| {
        let token = &line[pos..find_space(line, pos)];
        LineError::new(kind, step.column.field(), token)
    })?;
    // `end` is at a space or the end of the line; AWS writes one space.
    let next = end + 1;
    if line.get(next) == Some(&b' ') {
        return Ok(skip_spaces(line, next));
    }
    Ok(next)
}

/// After the last field: nothing but spaces may follow.
fn check_line_end(fields: usize, line: &[u8], pos: usize) -> Result<(), LineError> {
    if pos < line.len() {
        let extra = line[pos..]
            .split(|&b| b == b' ')
            .filter(|t| !t.is_empty())
            .count();
        return Err(field_count_error(fields, fields + extra, line));
    }
    Ok(())
}

/// One column's decoding step, precomputed from the format.
#[derive(Debug, Clone, Copy)]
struct Step {
    slot: usize,
    column: Column,
    value_type: ValueType,
}

fn field_count_error(expected: usize, found: usize, line: &[u8]) -> LineError {
    let excerpt = LineError::new(ErrorKind::FieldCount, None, line).found;
    LineError {
        kind: ErrorKind::FieldCount,
        field: None,
        found: format!("expected {expected}, found {found} in {excerpt:?}"),
    }
}

#[inline]
fn skip_spaces(line: &[u8], mut pos: usize) -> usize {
    while pos < line.len() && line[pos] == b' ' {
        pos += 1;
    }
    pos
}

/// Parses the token starting at `start` (not a space) as `value_type` into
/// `slot` and returns where it ends (a space or the end of the line). `-` is
/// null for every type. `text(start, end)` yields a token as `&str`.
///
/// Numbers and IPv4 addresses are parsed while scanning, without looking
/// for the token's end first.
#[inline(always)]
fn parse_field<'a>(
    value_type: ValueType,
    line: &'a [u8],
    start: usize,
    text: &impl Fn(usize, usize) -> Result<&'a str, ErrorKind>,
    slot: &mut Value<'a>,
) -> Result<usize, ErrorKind> {
    let rest = &line[start..];
    if rest.first() == Some(&b'-') && rest.get(1).is_none_or(|b| *b == b' ') {
        *slot = Value::Null;
        return Ok(start + 1);
    }
    match value_type {
        ValueType::Int { max } => {
            let (value, len) = parse_uint_prefix(rest)?;
            if value > max {
                return Err(ErrorKind::NumberOutOfRange);
            }
            *slot = Value::Int(value);
            Ok(start + len)
        }
        ValueType::Addr => {
            if let Some((v4, len)) = parse_ipv4_prefix(rest) {
                *slot = Value::Addr(IpAddr::V4(v4));
                return Ok(start + len);
            }
            let end = find_space(line, start);
            let v6 = parse_ipv6(&line[start..end]).ok_or(ErrorKind::InvalidAddress)?;
            *slot = Value::Addr(IpAddr::V6(v6));
            Ok(end)
        }
        ValueType::Str => {
            let end = find_space(line, start);
            *slot = Value::Str(text(start, end)?);
            Ok(end)
        }
        keyword_type => {
            let end = find_space(line, start);
            parse_keyword(keyword_type, &line[start..end], slot)?;
            Ok(end)
        }
    }
}

/// Parses a keyword field straight into its slot (going through an
/// `Option<Value>` costs a store-forwarding stall per field).
#[inline(always)]
fn parse_keyword(
    value_type: ValueType,
    token: &[u8],
    slot: &mut Value<'_>,
) -> Result<(), ErrorKind> {
    fn set<T>(
        slot: &mut Value<'_>,
        parsed: Option<T>,
        wrap: fn(T) -> Value<'static>,
    ) -> Result<(), ErrorKind> {
        *slot = wrap(parsed.ok_or(ErrorKind::InvalidValue)?);
        Ok(())
    }
    match value_type {
        ValueType::Action => set(slot, Action::from_bytes(token), Value::Action),
        ValueType::LogStatus => set(slot, LogStatus::from_bytes(token), Value::LogStatus),
        ValueType::FlowDirection => {
            set(slot, FlowDirection::from_bytes(token), Value::FlowDirection)
        }
        ValueType::TrafficType => set(slot, TrafficType::from_bytes(token), Value::TrafficType),
        ValueType::SublocationType => set(
            slot,
            SublocationType::from_bytes(token),
            Value::SublocationType,
        ),
        ValueType::Int { .. } | ValueType::Addr | ValueType::Str => Err(ErrorKind::InvalidValue),
    }
}

/// Powers of ten up to 10^8.
const POW10: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// The decimal number at the start of `rest`, which must end at a space or
/// the end of `rest`; returns the value and its length. Eight digits at a
/// time, without branching on how many there are.
#[inline(always)]
fn parse_uint_prefix(rest: &[u8]) -> Result<(u64, usize), ErrorKind> {
    let (mut len, mut value) = digit_run(load8_padded(rest, 0));
    if len == 8 {
        let (more, tail) = digit_run(load8_padded(rest, 8));
        if more == 8 {
            // Seventeen digits or more: rare, and may overflow.
            return parse_uint_checked(&rest[..find_space(rest, 0)]);
        }
        value = value * POW10[more] + tail;
        len += more;
    }
    if len == 0 || rest.get(len).is_some_and(|b| *b != b' ') {
        return Err(ErrorKind::InvalidNumber);
    }
    Ok((value, len))
}

/// The slow, overflow-checked parse for long digit strings.
fn parse_uint_checked(token: &[u8]) -> Result<(u64, usize), ErrorKind> {
    if !token.iter().all(u8::is_ascii_digit) {
        return Err(ErrorKind::InvalidNumber);
    }
    let value = token.iter().try_fold(0u64, |value, &b| {
        value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(ErrorKind::NumberOutOfRange)
    })?;
    Ok((value, token.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(format: &str, line: &str) -> Result<FlowRecord<'static>, LineError> {
        let decoder = LineDecoder::new(LogFormat::parse(format).unwrap());
        let line: &'static str = Box::leak(line.to_string().into_boxed_str());
        decoder.decode(line.as_bytes())
    }

    #[test]
    fn uint_limits() {
        let parse = |text: &str| parse_uint_prefix(text.as_bytes()).map(|(v, _)| v);
        assert_eq!(parse("65535"), Ok(65535));
        assert_eq!(parse("1418530010 1"), Ok(1_418_530_010));
        assert_eq!(parse("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse("18446744073709551616"),
            Err(ErrorKind::NumberOutOfRange)
        );
        assert_eq!(
            parse("184467440737095516150"),
            Err(ErrorKind::NumberOutOfRange)
        );
        assert_eq!(parse("1234567890123456789x"), Err(ErrorKind::InvalidNumber));
        assert_eq!(parse("12a"), Err(ErrorKind::InvalidNumber));
        assert_eq!(parse("1234567a"), Err(ErrorKind::InvalidNumber));
        assert_eq!(parse("-1"), Err(ErrorKind::InvalidNumber));
        let e = decode("dstport", "65536").unwrap_err();
        assert_eq!(e.kind, ErrorKind::NumberOutOfRange);
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
        assert_eq!(e.found, r#"expected 2, found 1 in "10.0.0.1""#);
        let e = decode("srcaddr dstport", "10.0.0.1 80 extra more").unwrap_err();
        assert!(
            e.found.starts_with("expected 2, found 4 in "),
            "{}",
            e.found
        );
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
