//! Source positions of files, as the store's manifest carries them, and
//! how a file is known again.
//!
//! A file's position is the number of *decompressed* bytes consumed, through
//! the last complete line added to the store, and the file's size and
//! modification time on disk when it was last read to its end.
//! Decompressed offsets make gzip files resumable (the input is read again
//! and skipped up to the offset); size and time tell a finished file from
//! one that has grown or been replaced since.
//!
//! Key: `file:` and the file's name: for a file in a watched directory, the
//! directory's label and the path relative to it (`file:flows/a/b.log.gz`),
//! so that moving or remounting the directory changes nothing; for a file
//! named on its own (`trawl ingest FILE`), its absolute path. Value: JSON
//! `{"offset":N,"size":S,"mtime_ns":T,"fp":{..}}`: `size` and `mtime_ns`
//! absent until the end was reached; `tail_at_size` set while a followed
//! file ends in a line without a newline, which is read only once the file
//! has stopped growing.
//!
//! The [`Fingerprint`] (a digest of the file's first bytes on disk) is the
//! file's identity: a file found under a known name whose first bytes
//! differ is a new file (read from the start, not resumed at another
//! file's offset), and a file under a new name whose first bytes are those
//! of a file that is gone is that file, moved (resumed, not read again).
//! Positions written before fingerprints existed have none and are trusted
//! by name.

use std::io::{self, Read};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bytes of a file's beginning that its [`Fingerprint`] digests.
pub const FINGERPRINT_BYTES_MAX: u64 = 1024;

/// A digest of a file's first bytes: who the file is, whatever its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint {
    /// How many bytes were digested: [`FINGERPRINT_BYTES_MAX`], or the
    /// whole file when it was shorter.
    pub bytes: u64,
    /// The first eight bytes of their SHA-256, as a number.
    pub hash: u64,
}

impl Fingerprint {
    /// The fingerprint of `head`, a file's first bytes.
    pub fn of(head: &[u8]) -> Fingerprint {
        let digest = Sha256::digest(head);
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        Fingerprint {
            bytes: head.len() as u64,
            hash: u64::from_be_bytes(first),
        }
    }

    /// Whether a file whose first bytes (up to [`FINGERPRINT_BYTES_MAX`])
    /// are `head` begins with the bytes this digests.
    pub fn matches(&self, head: &[u8]) -> bool {
        usize::try_from(self.bytes)
            .ok()
            .and_then(|n| head.get(..n))
            .is_some_and(|prefix| Fingerprint::of(prefix) == *self)
    }
}

/// The first [`FINGERPRINT_BYTES_MAX`] bytes of `reader` (fewer if it ends
/// before): what fingerprints are taken of.
pub fn read_head(reader: impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(FINGERPRINT_BYTES_MAX as usize);
    reader.take(FINGERPRINT_BYTES_MAX).read_to_end(&mut head)?;
    Ok(head)
}

/// What a file's metadata says of it: enough to tell it unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// Size on disk, in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since 1970 (`None` where the file
    /// system has none).
    pub modified_ns: Option<u64>,
}

impl FileStat {
    /// The stat of an open file or of a path's metadata.
    pub fn of(metadata: &std::fs::Metadata) -> FileStat {
        let modified_ns = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| u64::try_from(d.as_nanos()).ok());
        FileStat {
            size: metadata.len(),
            modified_ns,
        }
    }
}

/// Where reading a file stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// Decompressed bytes consumed (whole lines only).
    pub offset: u64,
    /// Ranges of decompressed bytes past `offset` already in the store
    /// (chunks of one file are added by several workers at once, and
    /// finish out of order: `progress.rs`); a resumed read skips them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<(u64, u64)>,
    /// Size of the file on disk when it was read to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Size of a file that may still grow when it was last read, if its
    /// end was a line without a newline (left unread: the writer may be in
    /// the middle of it). Read at the next visit if the size is unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_at_size: Option<u64>,
    /// Modification time (ns since 1970) when the file was read to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_ns: Option<u64>,
    /// The file's identity (absent in positions older than fingerprints).
    #[serde(default, rename = "fp", skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// The file holds JSON envelopes, and `offset` counts bytes of its
    /// records' decoded text, not of the file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub envelopes: bool,
}

impl FilePosition {
    /// The manifest key of `relative_path`.
    pub fn key(relative_path: &str) -> String {
        format!("file:{relative_path}")
    }

    /// The manifest value.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a manifest value; `None` if it is not a file position.
    pub fn decode(value: &str) -> Option<FilePosition> {
        serde_json::from_str(value).ok()
    }

    /// Whether a file that now has `stat` has nothing new to read: read to
    /// its end at this size and, where both are known, this modification
    /// time (a file replaced by one of the same size has another).
    pub fn is_complete(&self, stat: &FileStat) -> bool {
        let same_time = match (self.mtime_ns, stat.modified_ns) {
            (Some(then), Some(now)) => then == now,
            _ => true,
        };
        self.size == Some(stat.size) && same_time
    }

    /// Whether this position can belong to the file that now has `stat`
    /// and begins with `head` ([`read_head`]): its fingerprint, if any, is
    /// that of the file's first bytes, and the file has not shrunk below a
    /// size it was read at. Otherwise the file is a new one under an old
    /// name, to be read from its start.
    pub fn is_same_file(&self, stat: &FileStat, head: &[u8]) -> bool {
        let seen_size = self.size.or(self.tail_at_size).unwrap_or(0);
        stat.size >= seen_size && self.fingerprint.is_none_or(|fp| fp.matches(head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(size: u64, modified_ns: u64) -> FileStat {
        FileStat {
            size,
            modified_ns: Some(modified_ns),
        }
    }

    #[test]
    fn round_trips_and_tells_grown_files() {
        let done = FilePosition {
            offset: 120,
            size: Some(40),
            mtime_ns: Some(7),
            fingerprint: Some(Fingerprint::of(b"abc")),
            ..FilePosition::default()
        };
        assert_eq!(FilePosition::decode(&done.encode()), Some(done.clone()));
        assert!(done.is_complete(&stat(40, 7)) && !done.is_complete(&stat(41, 7)));
        assert!(
            !done.is_complete(&stat(40, 8)),
            "same size, another time: replaced"
        );
        let partial = FilePosition {
            offset: 7,
            ..FilePosition::default()
        };
        assert_eq!(partial.encode(), r#"{"offset":7}"#);
        assert!(!partial.is_complete(&stat(40, 7)));
        let held = FilePosition {
            offset: 7,
            tail_at_size: Some(9),
            ..FilePosition::default()
        };
        assert_eq!(FilePosition::decode(&held.encode()), Some(held.clone()));
        assert!(
            !held.is_complete(&stat(9, 1)),
            "a held tail is read at the next visit"
        );
        assert_eq!(FilePosition::decode("kafka:3"), None);
    }

    #[test]
    fn positions_without_time_or_fingerprint_still_decode_and_count() {
        let old = FilePosition::decode(r#"{"offset":120,"size":40}"#).unwrap();
        assert!(
            old.is_complete(&stat(40, 99)),
            "no time recorded: size decides"
        );
        assert!(old.is_same_file(&stat(50, 1), b"anything"));
    }

    #[test]
    fn a_fingerprint_tells_a_grown_file_from_a_replaced_one() {
        let first = b"version srcaddr\n1 10.0.0.1\n";
        let seen = FilePosition {
            offset: first.len() as u64,
            fingerprint: Some(Fingerprint::of(first)),
            ..FilePosition::default()
        };
        let grown = [&first[..], b"1 10.0.0.2\n"].concat();
        assert!(seen.is_same_file(&stat(grown.len() as u64, 1), &grown));
        let replaced = b"version dstaddr\n1 10.0.0.9\n2 10.0.0.8\n";
        assert!(!seen.is_same_file(&stat(replaced.len() as u64, 1), replaced));
        let shrunk = FilePosition {
            size: Some(100),
            ..seen
        };
        assert!(!shrunk.is_same_file(&stat(first.len() as u64, 1), first));
        let long = vec![b'x'; 5000];
        let head = read_head(&long[..]).unwrap();
        assert_eq!(head.len() as u64, FINGERPRINT_BYTES_MAX);
        assert!(Fingerprint::of(&head[..10]).matches(&head));
        assert!(!Fingerprint::of(&long[..2000]).matches(&head));
    }
}
