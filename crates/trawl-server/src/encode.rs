//! Query answers as bytes: JSON (an array of row objects, nulls written
//! out), CSV (with a header), Arrow IPC stream, or a text table for
//! terminals. Shared by the HTTP API and `trawl query`.

use arrow::csv::WriterBuilder as CsvWriterBuilder;
use arrow::error::ArrowError;
use arrow::ipc::writer::StreamWriter;
use arrow::json::writer::{JsonArray, WriterBuilder as JsonWriterBuilder};
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

/// Encodes `result` in `format`.
pub fn encode(result: &QueryResult, format: Format) -> Result<Vec<u8>, ArrowError> {
    let batches: Vec<_> = result.batches.iter().collect();
    let mut out = Vec::new();
    match format {
        Format::Json => {
            let mut writer = JsonWriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, JsonArray>(&mut out);
            writer.write_batches(&batches)?;
            writer.finish()?;
            drop(writer);
            if out.is_empty() {
                out.extend_from_slice(b"[]");
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
                out.extend_from_slice(names.join(",").as_bytes());
                out.push(b'\n');
            } else {
                let mut writer = CsvWriterBuilder::new().with_header(true).build(&mut out);
                for batch in &batches {
                    writer.write(batch)?;
                }
            }
        }
        Format::Arrow => {
            let mut writer = StreamWriter::try_new(&mut out, &result.schema)?;
            for batch in &batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        Format::Table => {
            let table = arrow::util::pretty::pretty_format_batches(&result.batches)?;
            out.extend_from_slice(table.to_string().as_bytes());
            out.push(b'\n');
        }
    }
    Ok(out)
}
