//! Writing records back out: as AWS record lines (the exact inverse of the
//! line decoder, used by generators and round-trip tests) and as JSON objects
//! keyed by trawl's column names (`trawl parse`).
//!
//! JSON carries exactly the format's columns, in format order; a null value
//! (`-`) is JSON `null`; numbers are JSON numbers, everything else strings.

use std::io::Write as _;

use crate::format::LogFormat;
use crate::record::{FlowRecord, Value};

/// Appends `record`'s line in `format` (no newline) to `out`.
pub fn write_line(format: &LogFormat, record: &FlowRecord<'_>, out: &mut Vec<u8>) {
    for (i, column) in format.columns().iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        write_value(record.column(*column), out);
    }
}

/// Appends one value as AWS writes it (`-` for null).
fn write_value(value: Value<'_>, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(b'-'),
        Value::Int(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
        Value::Addr(a) => {
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{a}");
        }
        Value::Str(s) => out.extend_from_slice(s.as_bytes()),
        Value::Action(v) => out.extend_from_slice(v.as_str().as_bytes()),
        Value::LogStatus(v) => out.extend_from_slice(v.as_str().as_bytes()),
        Value::FlowDirection(v) => out.extend_from_slice(v.as_str().as_bytes()),
        Value::TrafficType(v) => out.extend_from_slice(v.as_str().as_bytes()),
        Value::SublocationType(v) => out.extend_from_slice(v.as_str().as_bytes()),
    }
}

/// Appends `record` as one JSON object (no newline) to `out`.
pub fn write_json(format: &LogFormat, record: &FlowRecord<'_>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, column) in format.columns().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_string(format.column_name(*column), out);
        out.push(b':');
        match record.column(*column) {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Int(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            Value::Str(s) => write_json_string(s, out),
            other => {
                out.push(b'"');
                write_value(other, out);
                out.push(b'"');
            }
        }
    }
    out.push(b'}');
}

fn write_json_string(text: &str, out: &mut Vec<u8>) {
    // serde_json escapes exactly as JSON requires; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::LineDecoder;

    #[test]
    fn line_round_trips_and_json_names_columns() {
        let format = LogFormat::parse("version srcaddr dstport action vpc-id log-status").unwrap();
        let decoder = LineDecoder::new(format.clone());
        let line = b"5 2001:db8::1 443 REJECT - NODATA";
        let record = decoder.decode(line).unwrap();
        let mut out = Vec::new();
        write_line(&format, &record, &mut out);
        assert_eq!(out, line);
        out.clear();
        write_json(&format, &record, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"version":5,"src_addr":"2001:db8::1","dst_port":443,"action":"REJECT","vpc_id":null,"log_status":"NODATA"}"#
        );
    }
}
