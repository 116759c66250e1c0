//! Whole-line chunks of a byte stream, read into one buffer that grows, by
//! doubling, only as far as the stream needs (a small file does not pay for
//! zeroing a whole `chunk_bytes` buffer).
//!
//! The source reads decompressed text through [`LineChunks`]: each step
//! reads up to `chunk_bytes` and yields the complete lines in it (more when
//! one line is longer than that),
//! with the decompressed offset of its first byte, so a batch's position is
//! that offset plus its end within the chunk.
//!
//! Invariants: every yielded chunk of lines ends with `\n` (a last line
//! without one gets one, not counted as input); bytes are yielded once and
//! in order, and [`LineChunks::offset`] is the count of bytes consumed. A line
//! longer than `line_bytes_max` cannot fill the buffer for ever: its first
//! `line_bytes_max + 1` bytes are yielded as [`Chunk::Overlong`] (for the
//! decoder to report) and the rest of it is skipped.

use std::io::{self, Read};

/// The buffer's first size; it doubles from there as the stream needs.
const BUFFER_BYTES_FIRST: usize = 64 << 10;

/// What [`LineChunks::next_chunk`] yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk<'b> {
    /// Complete lines, each ending in `\n`, starting at `offset`.
    Lines {
        /// Decompressed offset of `text[0]`.
        offset: u64,
        /// The lines.
        text: &'b [u8],
    },
    /// The head of a line longer than the limit (no newline in it); the rest
    /// of the line is skipped.
    Overlong(&'b [u8]),
    /// The stream's last line, which had no newline (one is added to
    /// `text`; the offset counts only the real bytes). A file that may
    /// still grow can leave it for later.
    Tail {
        /// Decompressed offset of `text[0]`.
        offset: u64,
        /// The line and the added newline.
        text: &'b [u8],
    },
}

/// Reads a stream as runs of whole lines.
#[derive(Debug)]
pub struct LineChunks<R> {
    reader: R,
    /// Grows by doubling up to `buffer_bytes_max`.
    buffer: Vec<u8>,
    buffer_bytes_max: usize,
    filled: usize,
    chunk_bytes: usize,
    /// Decompressed offset of `buffer[0]`.
    offset: u64,
    /// Bytes yielded by the last call, dropped at the next one.
    yielded: usize,
    eof: bool,
    skipping_overlong: bool,
}

impl<R: Read> LineChunks<R> {
    /// Chunks of about `chunk_bytes` (one line of up to `line_bytes_max`
    /// bytes always fits).
    pub fn new(reader: R, chunk_bytes: usize, line_bytes_max: usize) -> Self {
        let chunk_bytes = chunk_bytes.max(1);
        // One spare byte for the newline a last line may lack.
        let buffer_bytes_max = chunk_bytes.max(line_bytes_max + 1) + 1;
        LineChunks {
            reader,
            buffer: vec![0; buffer_bytes_max.min(BUFFER_BYTES_FIRST)],
            buffer_bytes_max,
            filled: 0,
            chunk_bytes,
            offset: 0,
            yielded: 0,
            eof: false,
            skipping_overlong: false,
        }
    }

    /// Decompressed offset just past everything yielded so far.
    pub fn offset(&self) -> u64 {
        self.offset + self.yielded as u64
    }

    /// The next chunk, or `None` once the stream is consumed.
    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk<'_>>> {
        let yielded = std::mem::take(&mut self.yielded);
        self.drop_front(yielded);
        let room = self.buffer_bytes_max - 1;
        let mut want = self.chunk_bytes;
        loop {
            self.fill(want)?;
            if self.skipping_overlong {
                self.skip_rest_of_line();
                if self.skipping_overlong {
                    if self.eof {
                        return Ok(None);
                    }
                    continue;
                }
            }
            if self.filled == 0 && self.eof {
                return Ok(None);
            }
            if let Some(last) = memchr::memrchr(b'\n', &self.buffer[..self.filled]) {
                self.yielded = last + 1;
                return Ok(Some(self.lines(self.yielded)));
            }
            if self.eof {
                self.buffer[self.filled] = b'\n';
                self.yielded = self.filled;
                return Ok(Some(Chunk::Tail {
                    offset: self.offset,
                    text: &self.buffer[..self.filled + 1],
                }));
            }
            if self.filled < room {
                want = room;
                continue;
            }
            self.skipping_overlong = true;
            self.yielded = self.filled;
            return Ok(Some(Chunk::Overlong(&self.buffer[..self.filled])));
        }
    }

    fn lines(&self, end: usize) -> Chunk<'_> {
        Chunk::Lines {
            offset: self.offset,
            text: &self.buffer[..end],
        }
    }

    /// Reads until `want` bytes are buffered or the stream ends.
    fn fill(&mut self, want: usize) -> io::Result<()> {
        let want = want.min(self.buffer_bytes_max - 1);
        while self.filled < want && !self.eof {
            if self.filled == self.buffer.len() - 1 {
                let grown = (self.buffer.len() * 2).min(self.buffer_bytes_max);
                self.buffer.resize(grown, 0);
            }
            let end = want.min(self.buffer.len() - 1);
            match self.reader.read(&mut self.buffer[self.filled..end]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Drops buffered bytes up to and including the next newline.
    fn skip_rest_of_line(&mut self) {
        match memchr::memchr(b'\n', &self.buffer[..self.filled]) {
            Some(newline) => {
                self.skipping_overlong = false;
                self.drop_front(newline + 1);
            }
            None => self.drop_front(self.filled),
        }
    }

    fn drop_front(&mut self, n: usize) {
        debug_assert!(n <= self.filled);
        self.buffer.copy_within(n..self.filled, 0);
        self.filled -= n;
        self.offset += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most `step` bytes per read.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Every chunk as (offset, text) or ("overlong", head length).
    fn chunks(data: &[u8], chunk: usize, line_max: usize) -> Vec<(u64, String)> {
        let mut reader = LineChunks::new(Trickle { data, step: 3 }, chunk, line_max);
        let mut out = Vec::new();
        while let Some(chunk) = reader.next_chunk().unwrap() {
            out.push(match chunk {
                Chunk::Lines { offset, text } | Chunk::Tail { offset, text } => {
                    (offset, String::from_utf8(text.to_vec()).unwrap())
                }
                Chunk::Overlong(head) => (u64::MAX, format!("overlong {}", head.len())),
            });
        }
        out
    }

    #[test]
    fn chunks_are_whole_lines_with_their_offsets() {
        let got = chunks(b"aa\nbb\ncc\ndd", 4, 10);
        assert_eq!(
            got,
            vec![
                (0, "aa\n".to_string()),
                (3, "bb\n".to_string()),
                (6, "cc\n".to_string()),
                (9, "dd\n".to_string())
            ]
        );
    }

    #[test]
    fn line_longer_than_the_chunk_but_within_the_limit_is_whole() {
        // Regression: a line longer than chunk_bytes made the reader spin.
        let got = chunks(b"x\n0123456789abcdef\ny\n", 4, 32);
        assert_eq!(
            got,
            vec![
                (0, "x\n".to_string()),
                (2, "0123456789abcdef\ny\n".to_string())
            ]
        );
    }

    #[test]
    fn overlong_line_is_reported_once_and_the_next_line_kept() {
        let long = "z".repeat(50);
        let data = format!("a\n{long}\nb\n");
        let got = chunks(data.as_bytes(), 4, 8);
        assert_eq!(
            got,
            vec![
                (0, "a\n".to_string()),
                (u64::MAX, "overlong 9".to_string()),
                (53, "b\n".to_string())
            ]
        );
    }

    #[test]
    fn empty_input_yields_nothing() {
        assert!(chunks(b"", 4, 8).is_empty());
    }

    #[test]
    fn offset_counts_every_byte_consumed() {
        let data = b"one\ntwo\nthree";
        let mut reader = LineChunks::new(&data[..], 4, 8);
        while reader.next_chunk().unwrap().is_some() {}
        assert_eq!(reader.offset(), data.len() as u64);
    }

    #[test]
    fn buffer_grows_only_as_far_as_the_stream_needs() {
        // 300 kB of lines with 1 MiB chunks: the buffer doubles from
        // 64 KiB past the stream's size, never to the whole chunk, and
        // every line comes out once, whole, in order.
        let data: Vec<u8> = (0..30_000)
            .flat_map(|i| format!("line {i:04}\n").into_bytes())
            .collect();
        let mut reader = LineChunks::new(
            Trickle {
                data: &data,
                step: 10_000,
            },
            1 << 20,
            1 << 20,
        );
        let mut out = Vec::new();
        while let Some(chunk) = reader.next_chunk().unwrap() {
            let Chunk::Lines { offset, text } = chunk else {
                panic!("only whole lines in this stream");
            };
            assert_eq!(offset, out.len() as u64);
            assert_eq!(text.last(), Some(&b'\n'));
            out.extend_from_slice(text);
        }
        assert_eq!(out, data);
        assert!(
            reader.buffer.len() <= 512 << 10,
            "buffer {}",
            reader.buffer.len()
        );
        // And a long line still fits past the first size.
        let long = [vec![b'x'; 200_000], b"\nend\n".to_vec()].concat();
        assert_eq!(
            chunks(&long, 1 << 20, 1 << 20),
            vec![(0, String::from_utf8(long.clone()).unwrap())]
        );
    }
}
