//! Metadata files (`sources.metadata_files`), applied at start from where
//! the saved index left them.
//!
//! A metadata file is JSON lines of ownership events, usually appended to.
//! What was applied of it is saved with the attribution index (its
//! position: bytes through the last complete line, and the file's
//! fingerprint, as for flow files: [`crate::position`]), in the same
//! snapshot as the ownership it produced, so the two never disagree. At
//! start only the lines past the position are applied (issue 13 #13:
//! applying the whole file again brought back assignments whose release
//! had been pruned); a file whose first bytes changed, or that shrank, is a
//! new file and applied from its start (events before the pruned history
//! are then refused by the index). A last line without a newline waits for
//! the next start.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use trawl_attrib::AttributionIndex;

use crate::position::{FilePosition, FileStat, Fingerprint, read_head};

/// The key under which a metadata file's position is saved.
pub fn metadata_file_key(path: &Path) -> String {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!("metadata-file:{}", absolute.display())
}

/// What to read of a metadata file.
pub(crate) struct Plan {
    /// The file, positioned at `from`, limited to the complete lines.
    pub reader: io::Take<File>,
    /// The position key.
    pub key: String,
    /// Where reading starts (0 for a new or replaced file).
    pub from: u64,
    /// The position to save once the lines are applied.
    pub done: FilePosition,
}

/// Plans reading `path` from the position `index` saved for it.
pub(crate) fn plan(index: &AttributionIndex, path: &Path) -> io::Result<Plan> {
    let key = metadata_file_key(path);
    let mut file = File::open(path)?;
    let stat = FileStat::of(&file.metadata()?);
    let head = read_head(&file)?;
    let saved = index
        .source_position(&key)
        .and_then(FilePosition::decode)
        .filter(|p| p.is_same_file(&stat, &head) && p.offset <= stat.size);
    let from = saved.map_or(0, |p| p.offset);
    let end = complete_lines_end(&mut file, from, stat.size)?;
    file.seek(SeekFrom::Start(from))?;
    let done = FilePosition {
        offset: end,
        size: Some(stat.size),
        mtime_ns: stat.modified_ns,
        fingerprint: Some(Fingerprint::of(&head)),
        ..FilePosition::default()
    };
    Ok(Plan {
        reader: file.take(end - from),
        key,
        from,
        done,
    })
}

/// The offset just past the last newline at or after `from` (`from` when
/// there is none): a last line without one may still be being written.
fn complete_lines_end(file: &mut File, from: u64, size: u64) -> io::Result<u64> {
    const WINDOW: u64 = 64 << 10;
    let mut end = size;
    let mut buffer = Vec::new();
    while end > from {
        let start = end.saturating_sub(WINDOW).max(from);
        buffer.resize((end - start) as usize, 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buffer)?;
        if let Some(i) = memchr::memrchr(b'\n', &buffer) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_text(index: &AttributionIndex, path: &Path) -> (u64, String) {
        let mut plan = plan(index, path).unwrap();
        let mut text = String::new();
        plan.reader.read_to_string(&mut text).unwrap();
        (plan.from, text)
    }

    #[test]
    fn reads_complete_lines_past_the_saved_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        std::fs::write(&path, "one\ntwo\nthr").unwrap();
        let mut index = AttributionIndex::default();
        let (from, text) = plan_text(&index, &path);
        assert_eq!((from, text.as_str()), (0, "one\ntwo\n"));
        let done = plan(&index, &path).unwrap().done;
        assert_eq!(done.offset, 8);
        index.set_source_position(&metadata_file_key(&path), &done.encode());
        std::fs::write(&path, "one\ntwo\nthree\nfour\n").unwrap();
        let (from, text) = plan_text(&index, &path);
        assert_eq!((from, text.as_str()), (8, "three\nfour\n"));
        // Replaced: other first bytes, read from the start.
        std::fs::write(&path, "ONE\ntwo\nthree\nfour\n").unwrap();
        assert_eq!(plan_text(&index, &path).0, 0);
    }
}
