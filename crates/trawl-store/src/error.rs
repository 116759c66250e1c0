//! Errors of the store; each names the file or table it concerns.

use std::path::PathBuf;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A Parquet file could not be written or read.
    #[error("{path}: parquet: {source}")]
    Parquet {
        /// The segment file.
        path: PathBuf,
        /// The underlying error.
        source: parquet::errors::ParquetError,
    },
    /// The manifest is damaged or inconsistent.
    #[error("{path}: corrupt manifest: {reason}")]
    CorruptManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A segment does not match what the manifest says of it.
    #[error("{path}: segment does not match the manifest: {reason}")]
    SegmentMismatch {
        /// The segment file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// Building or reading Arrow data failed.
    #[error("table {table}: {source}")]
    Arrow {
        /// The table.
        table: String,
        /// The underlying error.
        source: arrow::error::ArrowError,
    },
    /// Merging a chunk would need strings the full dictionary cannot take:
    /// the chunk is left as it is (rewritten, its strings would become
    /// "(dictionary full)").
    #[error("table {table}: the string dictionary is full; chunk {chunk_start} is not compacted")]
    DictionaryFull {
        /// The table.
        table: String,
        /// The chunk.
        chunk_start: u32,
    },
    /// The configuration is invalid.
    #[error("store configuration: {0}")]
    Config(String),
    /// A batch for [`Store::add_noted_batch`](crate::Store::add_noted_batch)
    /// holds a workload whose side codes were not noted: nothing was added.
    #[error(
        "workload {id} was not noted before its flows were added; nothing of the batch was added"
    )]
    WorkloadNotNoted {
        /// The workload id.
        id: u32,
    },
    /// A seal was begun while another one's segments were being written.
    #[error("a seal is already in progress")]
    SealInFlight,
    /// A crash test stopped a commit part-way (never happens otherwise).
    #[error("commit interrupted by a crash test")]
    Interrupted,
}
