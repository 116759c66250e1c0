//! The manifest: the one file that says which segments are live and up to
//! which source positions their data reaches.
//!
//! A data directory's state *is* its manifest: a segment file the manifest
//! does not list is garbage (left by a seal or compaction that did not
//! finish) and is deleted when the store opens. The manifest is replaced
//! atomically: written to `MANIFEST.tmp`, fsynced, renamed over `MANIFEST`,
//! and the directory fsynced. It starts with a header line carrying a CRC32
//! of the JSON body that follows, checked on every read.
//!
//! Source positions are opaque strings handed in by the caller (a file's byte
//! offset, a Kafka partition's offset); the store only promises that every
//! record added before a position was handed in is in the segments listed
//! beside it.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// File name of the manifest inside the data directory.
pub const MANIFEST_FILE: &str = "MANIFEST";
const MANIFEST_TMP: &str = "MANIFEST.tmp";
const HEADER_PREFIX: &str = "trawl-manifest 1 crc32=";

/// One live segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// Unique id (never reused within a data directory).
    pub id: u64,
    /// Table name (`flows_1m`).
    pub table: String,
    /// Start of the segment's time chunk (Unix seconds).
    pub chunk_start: u32,
    /// Path relative to the data directory.
    pub file: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Smallest `time` in the file.
    pub time_min: u32,
    /// Largest `time` in the file.
    pub time_max: u32,
    /// The manifest generation of the seal that wrote it (`None`: written
    /// by compaction, or before this was kept). A sink publishes each
    /// seal's detail segments once, in generation order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_in: Option<u64>,
}

/// The durable state of a store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Incremented by every commit.
    pub generation: u64,
    /// Id of the next segment.
    pub next_segment: u64,
    /// Newest event time added before the commit (for the watermark).
    pub max_event_time: Option<u32>,
    /// Live segments.
    pub segments: Vec<SegmentMeta>,
    /// Source positions covered by the live segments.
    pub positions: BTreeMap<String, String>,
    /// Per table, the time below which it may lack flows (some were past
    /// its retention when they arrived, or its segments there expired);
    /// absent: the table has every flow ever added.
    #[serde(default)]
    pub dropped_below: BTreeMap<String, u32>,
    /// Per sink (its name), the newest seal generation it has published:
    /// detail segments sealed after the smallest are kept out of
    /// compaction (see `Store::hold_detail_after`). Kept here so that a
    /// restart, or a run without the sink, holds them from the start.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail_holds: BTreeMap<String, u64>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Manifest {
    /// Reads the manifest of `dir`; an empty manifest when there is none.
    pub fn load(dir: &Path) -> Result<Manifest, StoreError> {
        let path = dir.join(MANIFEST_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(e) => return Err(io_error(&path)(e)),
        };
        let corrupt = |reason: String| StoreError::CorruptManifest {
            path: path.clone(),
            reason,
        };
        let (header, body) = text
            .split_once('\n')
            .ok_or_else(|| corrupt("no header line".into()))?;
        let expected = header
            .strip_prefix(HEADER_PREFIX)
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .ok_or_else(|| corrupt(format!("bad header line {header:?}")))?;
        let actual = crc32fast::hash(body.as_bytes());
        if actual != expected {
            return Err(corrupt(format!(
                "checksum {actual:08x} does not match the header's {expected:08x}"
            )));
        }
        let manifest: Manifest =
            serde_json::from_str(body).map_err(|e| corrupt(format!("line 2: {e}")))?;
        manifest.check().map_err(corrupt)?;
        Ok(manifest)
    }

    /// Checks internal consistency (paired with [`Manifest::load`]).
    pub fn check(&self) -> Result<(), String> {
        let mut ids = std::collections::HashSet::new();
        for s in &self.segments {
            if !ids.insert(s.id) || s.id >= self.next_segment {
                return Err(format!(
                    "segment id {} repeated or not below next_segment",
                    s.id
                ));
            }
            if s.time_min > s.time_max || s.time_min < s.chunk_start || s.rows == 0 {
                return Err(format!(
                    "segment {} has an impossible time range or no rows",
                    s.file
                ));
            }
        }
        Ok(())
    }

    /// Step 1 of a commit: writes and fsyncs `MANIFEST.tmp`.
    pub fn write_pending(&self, dir: &Path) -> Result<(), StoreError> {
        self.check().map_err(|reason| StoreError::CorruptManifest {
            path: dir.join(MANIFEST_TMP),
            reason,
        })?;
        let body = serde_json::to_string(self).map_err(|e| StoreError::CorruptManifest {
            path: dir.join(MANIFEST_TMP),
            reason: e.to_string(),
        })?;
        let path = dir.join(MANIFEST_TMP);
        let mut file = fs::File::create(&path).map_err(io_error(&path))?;
        let header = format!("{HEADER_PREFIX}{:08x}\n", crc32fast::hash(body.as_bytes()));
        file.write_all(header.as_bytes())
            .and_then(|()| file.write_all(body.as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(io_error(&path))
    }

    /// Step 2 of a commit: renames `MANIFEST.tmp` over `MANIFEST` and
    /// fsyncs the directory. After this the new state is the durable one.
    pub fn publish_pending(dir: &Path) -> Result<(), StoreError> {
        let from = dir.join(MANIFEST_TMP);
        fs::rename(&from, dir.join(MANIFEST_FILE)).map_err(io_error(&from))?;
        sync_dir(dir)
    }

    /// The absolute path of a segment.
    pub fn segment_path(dir: &Path, segment: &SegmentMeta) -> PathBuf {
        dir.join(&segment.file)
    }
}

/// Fsyncs a directory so renames and new files in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            generation: 3,
            next_segment: 2,
            max_event_time: Some(7200),
            segments: vec![SegmentMeta {
                id: 1,
                table: "flows_1m".into(),
                chunk_start: 3600,
                file: "flows_1m/3600-1.parquet".into(),
                rows: 10,
                bytes: 100,
                time_min: 3600,
                time_max: 3660,
                sealed_in: Some(2),
            }],
            positions: [("file:a.log".to_string(), "1234".to_string())].into(),
            dropped_below: [("flows_1m".to_string(), 1800)].into(),
            detail_holds: [("kafka:enriched".to_string(), 1)].into(),
        }
    }

    #[test]
    fn round_trips_and_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), Manifest::default());
        sample().write_pending(dir.path()).unwrap();
        assert_eq!(
            Manifest::load(dir.path()).unwrap(),
            Manifest::default(),
            "not yet published"
        );
        Manifest::publish_pending(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), sample());

        let path = dir.path().join(MANIFEST_FILE);
        let text = fs::read_to_string(&path).unwrap().replace("1234", "1235");
        fs::write(&path, text).unwrap();
        let err = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("MANIFEST") && err.contains("checksum"),
            "{err}"
        );
    }
}
