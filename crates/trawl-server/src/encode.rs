//! Query answers as bytes: JSON (an array of row objects, nulls written
//! out), CSV (with a header), Arrow IPC stream, or a text table for
//! terminals. Shared by the HTTP API and `trawl query`; the live tail
//! sends its rows as [`json_rows`], the same objects JSON answers hold.

use arrow::array::RecordBatch;
use arrow::csv::WriterBuilder as CsvWriterBuilder;
use arrow::error::ArrowError;
use arrow::ipc::writer::StreamWriter;
use arrow::json::writer::{JsonArray, LineDelimited, WriterBuilder as JsonWriterBuilder};
use trawl_store::QueryResult;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `[{"col": value, …}, …]`.
    Json,
    /// RFC 4180 CSV with a header line.
    Csv,
    /// Arrow IPC stream.
    Arrow,
    /// A text table.
    Table,
}

impl Format {
    /// Parses `json`, `csv`, `arrow` or `table`.
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "arrow" => Some(Format::Arrow),
            "table" => Some(Format::Table),
            _ => None,
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
            Format::Table => "text/plain; charset=utf-8",
        }
    }
}

/// Why an answer could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The encoded answer passed the byte bound.
    #[error(
        "the answer is larger than {bytes_max} bytes encoded (the server's limit); narrow the query: \
         a WHERE on time, fewer columns, GROUP BY, or a LIMIT"
    )]
    TooLarge {
        /// The bound.
        bytes_max: usize,
    },
    /// Arrow could not encode it.
    #[error("encoding the answer: {0}")]
    Arrow(#[from] ArrowError),
}

/// A `Vec` that refuses to grow past `cap` bytes.
struct CappedVec {
    bytes: Vec<u8>,
    cap: usize,
    overflowed: bool,
}

impl std::io::Write for CappedVec {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len().saturating_add(data.len()) > self.cap {
            self.overflowed = true;
            return Err(std::io::Error::other("answer over its byte bound"));
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How rows become JSON objects: every column named, nulls written out.
fn json_writer() -> JsonWriterBuilder {
    JsonWriterBuilder::new().with_explicit_nulls(true)
}

/// Each row of `batch` as a JSON object, encoded as [`Format::Json`]
/// answers encode it.
pub fn json_rows(batch: &RecordBatch) -> Result<Vec<String>, ArrowError> {
    let mut out = Vec::new();
    let mut writer = json_writer().build::<_, LineDelimited>(&mut out);
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    let text = String::from_utf8(out).map_err(|e| ArrowError::JsonError(e.to_string()))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// Encodes `result` in `format`.
pub fn encode(result: &QueryResult, format: Format) -> Result<Vec<u8>, ArrowError> {
    encode_within(result, format, usize::MAX).map_err(|e| match e {
        EncodeError::Arrow(e) => e,
        EncodeError::TooLarge { .. } => ArrowError::MemoryError(e.to_string()),
    })
}

/// Encodes `result` in `format`, stopping as soon as the output passes
/// `bytes_max` bytes.
pub fn encode_within(
    result: &QueryResult,
    format: Format,
    bytes_max: usize,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = CappedVec {
        bytes: Vec::new(),
        cap: bytes_max,
        overflowed: false,
    };
    match encode_into(result, format, &mut out) {
        Ok(()) => Ok(out.bytes),
        Err(_) if out.overflowed => Err(EncodeError::TooLarge { bytes_max }),
        Err(e) => Err(EncodeError::Arrow(e)),
    }
}

fn encode_into(
    result: &QueryResult,
    format: Format,
    out: &mut CappedVec,
) -> Result<(), ArrowError> {
    use std::io::Write;
    let batches: Vec<_> = result.batches.iter().collect();
    match format {
        Format::Json => {
            let mut writer = json_writer().build::<_, JsonArray>(&mut *out);
            writer.write_batches(&batches)?;
            writer.finish()?;
            drop(writer);
            if out.bytes.is_empty() {
                out.write_all(b"[]")?;
            }
        }
        Format::Csv => {
            if batches.is_empty() {
                let names: Vec<&str> = result
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                out.write_all(names.join(",").as_bytes())?;
                out.write_all(b"\n")?;
            } else {
                let mut writer = CsvWriterBuilder::new().with_header(true).build(&mut *out);
                for batch in &batches {
                    writer.write(batch)?;
                }
            }
        }
        Format::Arrow => {
            let mut writer = StreamWriter::try_new(&mut *out, &result.schema)?;
            for batch in &batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        Format::Table => {
            let table = arrow::util::pretty::pretty_format_batches(&result.batches)?;
            out.write_all(table.to_string().as_bytes())?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}
