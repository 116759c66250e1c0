//! Review of c4dd37a: `LineChunks` growing its buffer by doubling from
//! 64 KiB yields exactly what the buffer allocated once did (copied below
//! from c4dd37a^), for any stream, chunk size, line limit and read sizes.

#![allow(clippy::unwrap_used, dead_code)]

use std::io::{self, Read};

use proptest::prelude::*;
use trawl_pipeline::chunks::{Chunk, LineChunks};

/// Hands out the stream in reads of the sizes given (cycled), with an
/// `Interrupted` now and then.
struct Uneven {
    data: Vec<u8>,
    at: usize,
    steps: Vec<usize>,
    call: usize,
}

impl Read for Uneven {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.call += 1;
        if self.call % 7 == 3 {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        let step = self.steps[self.call % self.steps.len()];
        let n = step.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Out {
    Lines(u64, Vec<u8>),
    Overlong(Vec<u8>),
    Tail(u64, Vec<u8>),
}

fn out(chunk: Chunk<'_>) -> Out {
    match chunk {
        Chunk::Lines { offset, text } => Out::Lines(offset, text.to_vec()),
        Chunk::Overlong(text) => Out::Overlong(text.to_vec()),
        Chunk::Tail { offset, text } => Out::Tail(offset, text.to_vec()),
    }
}

fn reader(data: &[u8], steps: &[usize]) -> Uneven {
    Uneven {
        data: data.to_vec(),
        at: 0,
        steps: steps.to_vec(),
        call: 0,
    }
}

fn new_chunks(
    data: &[u8],
    steps: &[usize],
    chunk: usize,
    line_max: usize,
) -> (Vec<(Out, u64)>, u64) {
    let mut r = LineChunks::new(reader(data, steps), chunk, line_max);
    let mut v = Vec::new();
    while let Some(c) = r.next_chunk().unwrap() {
        let c = out(c);
        v.push((c, r.offset()));
    }
    (v, r.offset())
}

fn old_chunks(
    data: &[u8],
    steps: &[usize],
    chunk: usize,
    line_max: usize,
) -> (Vec<(Out, u64)>, u64) {
    let mut r = OldLineChunks::new(reader(data, steps), chunk, line_max);
    let mut v = Vec::new();
    while let Some(c) = r.next_chunk().unwrap() {
        let c = out(c);
        v.push((c, r.offset()));
    }
    (v, r.offset())
}

/// Lines of the given lengths (a length 0 is an empty line), the last
/// one without its newline when `tail`.
fn stream(lines: &[usize], tail: bool) -> Vec<u8> {
    let mut data = Vec::new();
    for (i, len) in lines.iter().enumerate() {
        data.extend((0..*len).map(|k| b'a' + ((i + k) % 26) as u8));
        data.push(b'\n');
    }
    if tail && !data.is_empty() {
        data.pop();
    }
    data
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn fine_doubling_buffer_yields_what_the_allocated_once_buffer_did(
        lines in proptest::collection::vec(
            prop_oneof![8 => 0usize..200, 1 => 60_000usize..200_000], 0..12),
        tail in any::<bool>(),
        chunk in prop_oneof![1usize..300, 60_000usize..300_000],
        line_max in prop_oneof![1usize..300, 60_000usize..300_000],
        steps in proptest::collection::vec(1usize..100_000, 1..5),
    ) {
        let data = stream(&lines, tail);
        let new = new_chunks(&data, &steps, chunk, line_max);
        let old = old_chunks(&data, &steps, chunk, line_max);
        prop_assert!(new == old, "chunk {chunk} line_max {line_max}: {} vs {} chunks", new.0.len(), old.0.len());
    }
}

#[test]
fn fine_doubling_buffer_long_lines_overlong_and_tail() {
    // Lines past 64 KiB, one past the limit, and a last line without a newline.
    let data = stream(&[10, 70_000, 5, 300_000, 200_000, 3, 150_000], true);
    for (chunk, line_max) in [
        (1 << 20, 1 << 20),
        (1 << 20, 250_000),
        (100, 250_000),
        (4 << 20, 100),
    ] {
        let new = new_chunks(&data, &[70_001, 3, 65_536], chunk, line_max);
        let old = old_chunks(&data, &[70_001, 3, 65_536], chunk, line_max);
        assert!(new.0.len() > 1);
        assert!(new == old, "chunk {chunk} line_max {line_max}");
        assert_eq!(new.1, data.len() as u64);
    }
}

// ---- LineChunks as of c4dd37a^ (buffer allocated once) ----

/// Reads a stream as runs of whole lines.
#[derive(Debug)]
pub struct OldLineChunks<R> {
    reader: R,
    buffer: Vec<u8>,
    filled: usize,
    chunk_bytes: usize,
    /// Decompressed offset of `buffer[0]`.
    offset: u64,
    /// Bytes yielded by the last call, dropped at the next one.
    yielded: usize,
    eof: bool,
    skipping_overlong: bool,
}

impl<R: Read> OldLineChunks<R> {
    /// Chunks of about `chunk_bytes` (one line of up to `line_bytes_max`
    /// bytes always fits).
    pub fn new(reader: R, chunk_bytes: usize, line_bytes_max: usize) -> Self {
        let chunk_bytes = chunk_bytes.max(1);
        // One spare byte for the newline a last line may lack.
        let capacity = chunk_bytes.max(line_bytes_max + 1) + 1;
        OldLineChunks {
            reader,
            buffer: vec![0; capacity],
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
        let room = self.buffer.len() - 1;
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
        let want = want.min(self.buffer.len() - 1);
        while self.filled < want && !self.eof {
            match self.reader.read(&mut self.buffer[self.filled..want]) {
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
