//! Parquet column chunks of dictionary-coded text, encoded from the codes.
//!
//! A text dimension is an Arrow `Dictionary(UInt32, Utf8)` column whose keys
//! are the store dictionary's codes. The Parquet crate's Arrow writer
//! dictionary-encodes such a column by hashing and comparing the *string*
//! of every row again (apache/arrow-rs#10465): a third of a
//! high-cardinality seal. This module writes the same column chunk from the
//! keys: each distinct key is looked up once (a table indexed by key), the
//! chunk's dictionary page holds the values in first-seen order, and data
//! pages hold the RLE / bit-packed indices, so a row costs an array lookup
//! and a few bit operations.
//!
//! The chunk is what the Arrow writer would write for the column with the
//! segments' properties (`segment.rs`): data page v1, a PLAIN dictionary
//! page, RLE definition levels, RLE_DICTIONARY values, Snappy, pages of
//! [`PAGE_ROWS_MAX`] rows, an offset index, no statistics. It is spliced
//! into the row group with `append_column`.
//!
//! [`encode`] returns `None` where it does not apply (nested or required
//! columns, null dictionary values, a dictionary page above
//! [`DICTIONARY_BYTES_MAX`], a column of nulls only); the caller then uses
//! the Arrow writer, so every column is still written.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, DictionaryArray, StringArray};
use arrow::datatypes::UInt32Type;
use bytes::Bytes;
use parquet::basic::{Compression, Encoding, EncodingMask, PageType};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ColumnChunkMetaData, OffsetIndexBuilder, PageEncodingStats};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

/// Rows per data page: where the Arrow writer cuts the other columns'
/// pages (its 20,000-row limit, checked every 1,024 rows), so page
/// boundaries line up across columns and a row selection skips the same
/// pages in each.
pub const PAGE_ROWS_MAX: usize = 20 * 1024;

/// Largest dictionary page written here (the Parquet crate's default
/// dictionary page limit); a chunk with more distinct bytes goes to the
/// Arrow writer, which falls back to plain pages.
pub const DICTIONARY_BYTES_MAX: usize = 1024 * 1024;

/// An encoded column chunk: its bytes (starting at offset 0) and what the
/// row group writer needs to splice them.
#[derive(Debug)]
pub struct EncodedChunk {
    /// The dictionary page then the data pages.
    pub bytes: Bytes,
    /// Metadata, with page offsets relative to `bytes`.
    pub close: ColumnCloseResult,
}

/// The chunk's dictionary: distinct values in first-seen order.
struct ChunkDictionary<'a> {
    values: Vec<&'a str>,
    index_of: HashMap<&'a str, u32>,
    bytes: usize,
}

impl<'a> ChunkDictionary<'a> {
    fn index(&mut self, value: &'a str) -> u32 {
        *self.index_of.entry(value).or_insert_with(|| {
            self.values.push(value);
            self.bytes += 4 + value.len();
            (self.values.len() - 1) as u32
        })
    }
}

/// Rows of the chunk: the dictionary index of each non-null row, and
/// whether each row is non-null (`None`: every row is).
struct Rows {
    indices: Vec<u32>,
    defined: Option<Vec<bool>>,
    len: usize,
}

/// Encodes the rows of `arrays` (one column of a row group, in order) as a
/// column chunk of `descr`, or `None` where this encoder does not apply
/// (see the module header).
pub fn encode(
    descr: &ColumnDescPtr,
    arrays: &[&DictionaryArray<UInt32Type>],
) -> Result<Option<EncodedChunk>, ParquetError> {
    if descr.max_rep_level() != 0 || descr.max_def_level() != 1 {
        return Ok(None);
    }
    let Some((dictionary, rows)) = map_rows(arrays) else {
        return Ok(None);
    };
    if dictionary.values.is_empty() {
        return Ok(None);
    }
    write_chunk(descr, &dictionary, &rows).map(Some)
}

/// Chunk indices of every row; `None` if a dictionary value is null, a
/// key is out of range, or the dictionary grows past its limit.
fn map_rows<'a>(arrays: &[&'a DictionaryArray<UInt32Type>]) -> Option<(ChunkDictionary<'a>, Rows)> {
    let len: usize = arrays.iter().map(|a| a.len()).sum();
    let mut dictionary = ChunkDictionary {
        values: Vec::new(),
        index_of: HashMap::new(),
        bytes: 0,
    };
    let any_null = arrays.iter().any(|a| a.keys().null_count() > 0);
    let mut rows = Rows {
        indices: Vec::with_capacity(len),
        defined: any_null.then(|| Vec::with_capacity(len)),
        len,
    };
    // Key -> chunk index, kept while arrays share one dictionary (the
    // batches of a seal do).
    let mut by_key: Option<(&ArrayRef, KeyMap)> = None;
    for array in arrays {
        let values = array.values().as_any().downcast_ref::<StringArray>()?;
        if values.null_count() > 0 {
            return None;
        }
        let shared = by_key
            .as_ref()
            .is_some_and(|(previous, _)| Arc::ptr_eq(previous, array.values()));
        if !shared {
            by_key = Some((array.values(), KeyMap::new(values.len(), len)));
        }
        let (_, by_key) = by_key.as_mut()?;
        let keys = array.keys();
        match (&mut rows.defined, keys.nulls()) {
            (Some(defined), Some(nulls)) => {
                // Runs of valid rows, not one row at a time: most columns
                // are valid in long runs.
                let base = defined.len();
                defined.resize(base + keys.len(), false);
                for (start, end) in nulls.inner().set_slices() {
                    defined.get_mut(base + start..base + end)?.fill(true);
                    let valid = keys.values().get(start..end)?.iter().copied();
                    by_key.map(valid, values, &mut dictionary, &mut rows.indices)?;
                }
            }
            (defined, _) => {
                if let Some(defined) = defined {
                    defined.extend(std::iter::repeat_n(true, keys.len()));
                }
                let all = keys.values().iter().copied();
                by_key.map(all, values, &mut dictionary, &mut rows.indices)?;
            }
        }
        if dictionary.bytes > DICTIONARY_BYTES_MAX {
            return None;
        }
    }
    Some((dictionary, rows))
}

/// Key → chunk index: a table (u32::MAX: not seen yet) when the
/// dictionary is not far longer than the rows (keys are the store
/// dictionary's codes), else a hash map.
enum KeyMap {
    Table(Vec<u32>),
    Map(HashMap<u32, u32>),
}

impl KeyMap {
    fn new(keys: usize, rows: usize) -> Self {
        if keys <= rows.saturating_mul(4).max(4096) {
            KeyMap::Table(vec![u32::MAX; keys])
        } else {
            KeyMap::Map(HashMap::new())
        }
    }

    /// Appends the chunk index of every key of `keys` (into `values`) to
    /// `out`, a key's value added to `dictionary` at its first row; `None`
    /// if a key is out of range. One loop per kind of map (the match is
    /// not redone per row).
    fn map<'a>(
        &mut self,
        keys: impl Iterator<Item = u32>,
        values: &'a StringArray,
        dictionary: &mut ChunkDictionary<'a>,
        out: &mut Vec<u32>,
    ) -> Option<()> {
        let mut first_seen = |key: u32| {
            ((key as usize) < values.len()).then(|| dictionary.index(values.value(key as usize)))
        };
        match self {
            KeyMap::Table(table) => {
                // One `extend` over the keys: the vector is grown once for
                // them all, not checked per row as a `push` is.
                let mut out_of_range = false;
                out.extend(keys.map(|key| {
                    let Some(slot) = table.get_mut(key as usize) else {
                        out_of_range = true;
                        return 0;
                    };
                    if *slot == u32::MAX {
                        match first_seen(key) {
                            Some(index) => *slot = index,
                            None => out_of_range = true,
                        }
                    }
                    *slot
                }));
                if out_of_range {
                    return None;
                }
            }
            KeyMap::Map(map) => {
                for key in keys {
                    let slot = map.entry(key).or_insert(u32::MAX);
                    if *slot == u32::MAX {
                        *slot = first_seen(key)?;
                    }
                    out.push(*slot);
                }
            }
        }
        Some(())
    }
}

/// Writes the dictionary page and the data pages, and the chunk's metadata.
fn write_chunk(
    descr: &ColumnDescPtr,
    dictionary: &ChunkDictionary<'_>,
    rows: &Rows,
) -> Result<EncodedChunk, ParquetError> {
    let mut sink = TrackedWrite::new(Vec::new());
    let mut pages = SerializedPageWriter::new(&mut sink);
    let mut offsets = OffsetIndexBuilder::new();
    let (mut compressed, mut uncompressed) = (0u64, 0u64);

    let dictionary_spec = pages.write_page(dictionary_page(dictionary)?)?;
    compressed += dictionary_spec.compressed_size as u64;
    uncompressed += dictionary_spec.uncompressed_size as u64;

    let bit_width = bit_width(dictionary.values.len());
    let mut data_page_offset = None;
    let mut data_pages = 0;
    let mut next_index = 0;
    for start in (0..rows.len).step_by(PAGE_ROWS_MAX) {
        let page_rows = PAGE_ROWS_MAX.min(rows.len - start);
        let defined = rows.defined.as_ref().map(|d| &d[start..start + page_rows]);
        let present = defined.map_or(page_rows, |d| d.iter().filter(|d| **d).count());
        let indices = &rows.indices[next_index..next_index + present];
        next_index += present;
        let spec = pages.write_page(data_page(page_rows, defined, indices, bit_width)?)?;
        data_page_offset.get_or_insert(spec.offset);
        offsets.append_row_count(page_rows as i64);
        offsets.append_offset_and_size(spec.offset as i64, spec.compressed_size as i32);
        compressed += spec.compressed_size as u64;
        uncompressed += spec.uncompressed_size as u64;
        data_pages += 1;
    }
    pages.close()?;

    let metadata = ColumnChunkMetaData::builder(descr.clone())
        .set_compression(Compression::SNAPPY)
        .set_encodings_mask(EncodingMask::new_from_encodings(
            [Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY].iter(),
        ))
        .set_page_encoding_stats(vec![
            PageEncodingStats {
                page_type: PageType::DICTIONARY_PAGE,
                encoding: Encoding::PLAIN,
                count: 1,
            },
            PageEncodingStats {
                page_type: PageType::DATA_PAGE,
                encoding: Encoding::RLE_DICTIONARY,
                count: data_pages,
            },
        ])
        .set_total_compressed_size(compressed as i64)
        .set_total_uncompressed_size(uncompressed as i64)
        .set_num_values(rows.len as i64)
        .set_data_page_offset(data_page_offset.unwrap_or_default() as i64)
        .set_dictionary_page_offset(Some(dictionary_spec.offset as i64))
        .build()?;
    let bytes = sink.into_inner()?;
    debug_assert_eq!(bytes.len() as u64, compressed);
    Ok(EncodedChunk {
        bytes: Bytes::from(bytes),
        close: ColumnCloseResult {
            bytes_written: compressed,
            rows_written: rows.len as u64,
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index: Some(offsets.build()),
        },
    })
}

/// Bits per dictionary index (at least 1).
fn bit_width(dictionary_len: usize) -> u8 {
    let max_index = dictionary_len.saturating_sub(1) as u64;
    (64 - max_index.leading_zeros()).max(1) as u8
}

/// The PLAIN dictionary page: each value as a 4-byte length and its bytes.
fn dictionary_page(dictionary: &ChunkDictionary<'_>) -> Result<CompressedPage, ParquetError> {
    let mut plain = Vec::with_capacity(dictionary.bytes);
    for value in &dictionary.values {
        plain.extend_from_slice(&(value.len() as u32).to_le_bytes());
        plain.extend_from_slice(value.as_bytes());
    }
    let uncompressed = plain.len();
    Ok(CompressedPage::new(
        Page::DictionaryPage {
            buf: snappy(&plain)?,
            num_values: dictionary.values.len() as u32,
            encoding: Encoding::PLAIN,
            is_sorted: false,
        },
        uncompressed,
    ))
}

/// A v1 data page of `rows` rows: definition levels (length-prefixed RLE,
/// width 1; `defined` `None`: every row is non-null), then the bit width
/// and the RLE / bit-packed indices of the non-null rows.
fn data_page(
    rows: usize,
    defined: Option<&[bool]>,
    indices: &[u32],
    bit_width: u8,
) -> Result<CompressedPage, ParquetError> {
    let mut page = Vec::with_capacity(16 + indices.len() * usize::from(bit_width) / 8);
    page.extend_from_slice(&[0; 4]);
    match defined {
        Some(defined) => {
            let levels: Vec<u32> = defined.iter().map(|d| u32::from(*d)).collect();
            encode_hybrid(&levels, 1, &mut page);
        }
        None => write_rle_run(1, rows, 1, &mut page),
    }
    let levels_len = (page.len() - 4) as u32;
    page[..4].copy_from_slice(&levels_len.to_le_bytes());
    page.push(bit_width);
    encode_hybrid(indices, bit_width, &mut page);
    let uncompressed = page.len();
    Ok(CompressedPage::new(
        Page::DataPage {
            buf: snappy(&page)?,
            num_values: rows as u32,
            encoding: Encoding::RLE_DICTIONARY,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        },
        uncompressed,
    ))
}

fn snappy(data: &[u8]) -> Result<Bytes, ParquetError> {
    snap::raw::Encoder::new()
        .compress_vec(data)
        .map(Bytes::from)
        .map_err(|e| ParquetError::External(Box::new(e)))
}

/// Shortest run written as an RLE run (shorter ones are bit-packed).
const RLE_RUN_MIN: usize = 8;

/// Appends `values` (each below `2^bit_width`) in Parquet's RLE /
/// bit-packing hybrid, without a length prefix: runs of at least
/// [`RLE_RUN_MIN`] equal values as RLE runs, the rest in bit-packed groups
/// of 8 (the last group padded with zeros; readers stop at the count the
/// page gives).
pub fn encode_hybrid(values: &[u32], bit_width: u8, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < values.len() {
        let run = run_length(values, i);
        if run >= RLE_RUN_MIN {
            write_rle_run(values[i], run, bit_width, out);
            i += run;
            continue;
        }
        // Bit-packed groups until a long run starts at a group boundary.
        let start = i;
        let mut end = i;
        while end < values.len() && (end == start || run_length(values, end) < RLE_RUN_MIN) {
            end = (end + 8).min(values.len());
        }
        write_bit_packed(&values[start..end], bit_width, out);
        i = end;
    }
}

/// How many values from `i` equal `values[i]`.
fn run_length(values: &[u32], i: usize) -> usize {
    let first = values[i];
    values[i..].iter().take_while(|v| **v == first).count()
}

fn write_uleb128(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn write_rle_run(value: u32, run: usize, bit_width: u8, out: &mut Vec<u8>) {
    write_uleb128((run as u64) << 1, out);
    let value_bytes = usize::from(bit_width).div_ceil(8);
    out.extend_from_slice(&value.to_le_bytes()[..value_bytes]);
}

fn write_bit_packed(values: &[u32], bit_width: u8, out: &mut Vec<u8>) {
    let groups = values.len().div_ceil(8);
    write_uleb128(((groups as u64) << 1) | 1, out);
    let width = usize::from(bit_width);
    out.reserve(groups * width);
    for group in values.chunks(8) {
        if width <= 8 {
            pack_group_narrow(group, width, out);
        } else if width <= PACKED_WIDTH_WIDE_MIN {
            pack_group(group, width, out);
        } else {
            pack_group_wide(group, width, out);
        }
    }
}

/// Widths above this pack value by value ([`pack_group_wide`]).
const PACKED_WIDTH_WIDE_MIN: usize = 16;

/// Up to 8 values (missing ones are zeros) of `width` bits, at most 16, as
/// `width` bytes: the first value in the lowest bits.
#[inline]
fn pack_group(group: &[u32], width: usize, out: &mut Vec<u8>) {
    debug_assert!(group.len() <= 8 && width <= PACKED_WIDTH_WIDE_MIN);
    let mut packed = 0u128;
    for (j, value) in group.iter().enumerate() {
        packed |= u128::from(*value) << (j * width);
    }
    out.extend_from_slice(&packed.to_le_bytes()[..width]);
}

/// [`pack_group`] for widths up to 8 (dictionaries of at most 256
/// values, most of a part's), in one 64-bit word.
#[inline]
fn pack_group_narrow(group: &[u32], width: usize, out: &mut Vec<u8>) {
    debug_assert!(group.len() <= 8 && width <= 8);
    let mut packed = 0u64;
    for (j, value) in group.iter().enumerate() {
        packed |= u64::from(*value) << (j * width);
    }
    out.extend_from_slice(&packed.to_le_bytes()[..width]);
}

/// [`pack_group`] for any width up to 32, a byte at a time.
fn pack_group_wide(group: &[u32], width: usize, out: &mut Vec<u8>) {
    let (mut buffer, mut bits) = (0u64, 0);
    for k in 0..8 {
        buffer |= u64::from(group.get(k).copied().unwrap_or(0)) << bits;
        bits += width;
        while bits >= 8 {
            out.push(buffer as u8);
            buffer >>= 8;
            bits -= 8;
        }
    }
    debug_assert_eq!(bits, 0, "8 values fill whole bytes");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reference decoder of the hybrid encoding (what the spec says).
    fn decode_hybrid(mut data: &[u8], bit_width: u8, count: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let read_uleb = |data: &mut &[u8]| {
            let (mut value, mut shift) = (0u64, 0);
            loop {
                let byte = data[0];
                *data = &data[1..];
                value |= u64::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    return value;
                }
                shift += 7;
            }
        };
        while out.len() < count {
            let header = read_uleb(&mut data);
            if header & 1 == 0 {
                let n = usize::from(bit_width).div_ceil(8);
                let mut bytes = [0u8; 4];
                bytes[..n].copy_from_slice(&data[..n]);
                data = &data[n..];
                out.extend(std::iter::repeat_n(
                    u32::from_le_bytes(bytes),
                    (header >> 1) as usize,
                ));
            } else {
                let values = (header >> 1) as usize * 8;
                let bytes = values * usize::from(bit_width) / 8;
                let (mut buffer, mut bits, mut used) = (0u64, 0u32, 0);
                for _ in 0..values {
                    while bits < u32::from(bit_width) {
                        buffer |= u64::from(data[used]) << bits;
                        used += 1;
                        bits += 8;
                    }
                    out.push((buffer & ((1u64 << bit_width) - 1)) as u32);
                    buffer >>= bit_width;
                    bits -= u32::from(bit_width);
                }
                data = &data[bytes..];
            }
        }
        out.truncate(count);
        out
    }

    proptest::proptest! {
        #[test]
        fn hybrid_round_trips(
            bit_width in 1u8..=32,
            runs in proptest::collection::vec((proptest::prelude::any::<u32>(), 1usize..40), 0..60),
        ) {
            let mask = u32::MAX >> (32 - bit_width);
            let values: Vec<u32> = runs
                .iter()
                .flat_map(|(v, n)| std::iter::repeat_n(v & mask, *n))
                .collect();
            let mut out = Vec::new();
            encode_hybrid(&values, bit_width, &mut out);
            proptest::prop_assert_eq!(decode_hybrid(&out, bit_width, values.len()), values);
        }
    }

    #[test]
    fn bit_width_covers_the_largest_index() {
        assert_eq!(bit_width(0), 1);
        assert_eq!(bit_width(1), 1);
        assert_eq!(bit_width(2), 1);
        assert_eq!(bit_width(3), 2);
        assert_eq!(bit_width(256), 8);
        assert_eq!(bit_width(257), 9);
    }
}
