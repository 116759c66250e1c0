//! Source positions of files, as the store's manifest carries them.
//!
//! A file's position is the number of *decompressed* bytes consumed, through
//! the last complete line added to the store, and the file's size on disk
//! when it was last read to its end. Decompressed offsets make gzip files
//! resumable (the input is read again and skipped up to the offset);
//! the size tells a finished file from one that has grown since.
//!
//! Key: `file:` and the path relative to the watched directory. Value:
//! JSON `{"offset":N,"size":S}` (`size` absent until the end was reached;
//! `tail_at_size` set while a followed file ends in a line without a
//! newline, which is read only once the file has stopped growing).

use serde::{Deserialize, Serialize};

/// Where reading a file stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// Decompressed bytes consumed (whole lines only).
    pub offset: u64,
    /// Size of the file on disk when it was read to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Size of a file that may still grow when it was last read, if its
    /// end was a line without a newline (left unread: the writer may be in
    /// the middle of it). Read at the next visit if the size is unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_at_size: Option<u64>,
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

    /// Whether a file now `size` bytes long has nothing new to read.
    pub fn is_complete(&self, size: u64) -> bool {
        self.size == Some(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tells_grown_files() {
        let done = FilePosition {
            offset: 120,
            size: Some(40),
            tail_at_size: None,
        };
        assert_eq!(FilePosition::decode(&done.encode()), Some(done));
        assert!(done.is_complete(40) && !done.is_complete(41));
        let partial = FilePosition {
            offset: 7,
            size: None,
            tail_at_size: None,
        };
        assert_eq!(partial.encode(), r#"{"offset":7}"#);
        assert!(!partial.is_complete(40));
        let held = FilePosition {
            offset: 7,
            size: None,
            tail_at_size: Some(9),
        };
        assert_eq!(FilePosition::decode(&held.encode()), Some(held));
        assert!(
            !held.is_complete(9),
            "a held tail is read at the next visit"
        );
        assert_eq!(FilePosition::decode("kafka:3"), None);
    }
}
