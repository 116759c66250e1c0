//! A text column of the `flows` detail table kept as codes into a
//! dictionary of its own distinct values, built as rows are added.
//!
//! IDs such as `interface-id`, `vpc-id` or `account-id`, and keywords such
//! as `action`, repeat across a part's rows: a code per row is 4 bytes
//! where the string was 10–30, and a seal writes the column from its codes
//! (`dict_chunk.rs`) instead of parquet's writer hashing and comparing the
//! string of every row again (apache/arrow-rs#10465).
//!
//! Where it sits: `detail.rs` holds one per coded field of an active part
//! and freezes it into a `Dictionary(UInt32, Utf8)` array of that part's
//! rows.
//!
//! Invariants: code `c` is the `c`-th distinct value added, so codes are
//! below the dictionary's length; a null row has code 0 and is null in the
//! validity buffer; the dictionary is at most the part's rows long (a part
//! is at most `PART_ROWS`), so a column of distinct values costs what a
//! plain one does, plus 4 bytes a row.

use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, DictionaryArray, NullBufferBuilder, StringBuilder, UInt32Array,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::UInt32Type;
use hashbrown::HashTable;

/// No previous row to compare with (see [`CodedText::last`]).
const NO_CODE: u32 = u32::MAX;

/// Rows of one text column as codes into their distinct values.
pub(crate) struct CodedText {
    codes: Vec<u32>,
    validity: NullBufferBuilder,
    /// Distinct values, in first-seen order: code `c` is value `c`.
    values: StringBuilder,
    /// Codes, found by the hash of their value.
    lookup: HashTable<u32>,
    hasher: foldhash::fast::FixedState,
    /// The previous non-null row's code: runs of one value (one
    /// interface's records) skip the hash.
    last: u32,
    /// The code of each keyword variant seen ([`append_keyword`]), by
    /// its slot; [`NO_CODE`] before its first row.
    ///
    /// [`append_keyword`]: Self::append_keyword
    keyword_codes: [u32; KEYWORD_SLOTS],
}

/// Slots of keyword variants a column caches the codes of: every variant
/// of every keyword type of a record (13 today), with room to spare.
pub(crate) const KEYWORD_SLOTS: usize = 16;

impl CodedText {
    /// An empty column with room for `rows` rows.
    pub(crate) fn with_capacity(rows: usize) -> Self {
        CodedText {
            codes: Vec::with_capacity(rows),
            validity: NullBufferBuilder::new(rows),
            values: StringBuilder::new(),
            lookup: HashTable::new(),
            hasher: foldhash::fast::FixedState::default(),
            last: NO_CODE,
            keyword_codes: [NO_CODE; KEYWORD_SLOTS],
        }
    }

    /// Rows added.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.codes.len()
    }

    /// Adds a row of `text`.
    pub(crate) fn append(&mut self, text: &str) {
        let code = self.code_of(text);
        self.push(code);
    }

    /// Adds a row of keyword `text`, whose variant has slot `slot` (below
    /// [`KEYWORD_SLOTS`]; one slot per text): after a variant's first
    /// row, its code is an array read, not a hash and a compare (a
    /// version 5 record carries four keywords).
    pub(crate) fn append_keyword(&mut self, slot: usize, text: &str) {
        let code = match self.keyword_codes.get(slot) {
            Some(&code) if code != NO_CODE => code,
            _ => {
                let code = self.code_of(text);
                if let Some(cached) = self.keyword_codes.get_mut(slot) {
                    *cached = code;
                }
                code
            }
        };
        self.push(code);
    }

    fn push(&mut self, code: u32) {
        self.codes.push(code);
        self.validity.append_non_null();
        self.last = code;
    }

    /// Adds `n` null rows.
    pub(crate) fn append_nulls(&mut self, n: usize) {
        self.codes.resize(self.codes.len() + n, 0);
        self.validity.append_n_nulls(n);
    }

    /// Heap bytes held, counting the room the buffers have.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.codes.capacity() * 4
            + self.validity.allocated_size()
            + self.values.values_capacity()
            + self.values.offsets_capacity() * 4
            // A slot and a control byte per bucket.
            + self.lookup.capacity() * 5
    }

    /// The code of `text`, added to the dictionary if new.
    fn code_of(&mut self, text: &str) -> u32 {
        if self.last != NO_CODE && self.value(self.last) == text.as_bytes() {
            return self.last;
        }
        let hash = self.hasher.hash_one(text.as_bytes());
        let (values, hasher) = (&self.values, &self.hasher);
        let value = |code: u32| value_of(values, code);
        if let Some(code) = self.lookup.find(hash, |c| value(*c) == text.as_bytes()) {
            return *code;
        }
        let code = self.values.len() as u32;
        self.values.append_value(text);
        let values = &self.values;
        self.lookup
            .insert_unique(hash, code, |c| hasher.hash_one(value_of(values, *c)));
        code
    }

    fn value(&self, code: u32) -> &[u8] {
        value_of(&self.values, code)
    }

    /// The rows as a dictionary array, taking them (the column is left
    /// empty).
    pub(crate) fn finish(&mut self) -> ArrayRef {
        let codes = std::mem::take(&mut self.codes);
        let validity = self.validity.finish();
        self.lookup.clear();
        self.last = NO_CODE;
        self.keyword_codes = [NO_CODE; KEYWORD_SLOTS];
        dictionary(codes, validity, self.values.finish())
    }

    /// The rows as a dictionary array, copied (the column stays as it is).
    pub(crate) fn finish_cloned(&self) -> ArrayRef {
        dictionary(
            self.codes.clone(),
            self.validity.finish_cloned(),
            self.values.finish_cloned(),
        )
    }
}

/// The bytes of dictionary value `code`.
fn value_of(values: &StringBuilder, code: u32) -> &[u8] {
    let offsets = values.offsets_slice();
    let (start, end) = (offsets[code as usize], offsets[code as usize + 1]);
    &values.values_slice()[start as usize..end as usize]
}

fn dictionary(
    codes: Vec<u32>,
    validity: Option<NullBuffer>,
    values: arrow::array::StringArray,
) -> ArrayRef {
    let keys = UInt32Array::new(codes.into(), validity);
    // Every code was handed out by `code_of`, below the values' length.
    debug_assert!(
        keys.values()
            .iter()
            .all(|&c| (c as usize) < values.len().max(1))
    );
    Arc::new(DictionaryArray::<UInt32Type>::new(keys, Arc::new(values)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, StringArray};
    use proptest::prelude::*;

    /// The column's rows as strings (the oracle's form).
    fn rows(array: &ArrayRef) -> Vec<Option<String>> {
        let utf8 = arrow::compute::cast(array, &arrow::datatypes::DataType::Utf8).unwrap();
        let strings: &StringArray = utf8.as_string();
        strings.iter().map(|s| s.map(str::to_string)).collect()
    }

    proptest! {
        /// Whatever the mix of repeats, runs and nulls, the array holds the
        /// rows as added, each distinct value once in its dictionary.
        #[test]
        fn rows_come_back_as_added(
            added in proptest::collection::vec(
                proptest::option::weighted(0.8, "[a-c]{0,3}"), 0..300),
            copy_at in 0usize..300,
        ) {
            let mut column = CodedText::with_capacity(4);
            let mut copied = None;
            for (i, row) in added.iter().enumerate() {
                if i == copy_at {
                    copied = Some(column.finish_cloned());
                }
                match row {
                    Some(text) => { column.append(text); }
                    None => column.append_nulls(1),
                }
            }
            prop_assert_eq!(column.len(), added.len());
            let array = column.finish();
            prop_assert_eq!(rows(&array), added.clone());
            let values = array.as_dictionary::<UInt32Type>().values().as_string::<i32>().clone();
            let mut distinct: Vec<&str> = values.iter().flatten().collect();
            distinct.sort_unstable();
            let before = distinct.len();
            distinct.dedup();
            prop_assert_eq!(before, distinct.len(), "a value twice in the dictionary");
            if let Some(copied) = copied {
                prop_assert_eq!(rows(&copied), added[..copy_at].to_vec());
            }
            // Emptied: the next part starts from nothing.
            prop_assert_eq!(column.len(), 0);
            column.append("z");
            prop_assert_eq!(rows(&column.finish()), vec![Some("z".to_string())]);
        }
    }

    /// A keyword's text, by slot (two slots may not share a text).
    const KEYWORDS: [&str; 4] = ["ACCEPT", "REJECT", "OK", "egress"];

    proptest! {
        /// Keyword rows (by slot), the same texts added as plain rows, and
        /// nulls mix in any order, across parts: rows come back as added,
        /// each text once in a part's dictionary, and no cached code
        /// outlives the part it was handed out in.
        #[test]
        fn keyword_rows_mix_with_plain_rows_across_parts(
            parts in proptest::collection::vec(
                proptest::collection::vec((0usize..3, 0usize..4), 0..60), 1..4),
        ) {
            let mut column = CodedText::with_capacity(4);
            for part in parts {
                let mut expected = Vec::new();
                for (kind, k) in part {
                    match kind {
                        0 => column.append_keyword(k, KEYWORDS[k]),
                        1 => column.append(KEYWORDS[k]),
                        _ => column.append_nulls(1),
                    }
                    expected.push((kind < 2).then(|| KEYWORDS[k].to_string()));
                }
                let array = column.finish();
                prop_assert_eq!(rows(&array), expected);
                let values = array.as_dictionary::<UInt32Type>().values().as_string::<i32>().clone();
                let mut distinct: Vec<&str> = values.iter().flatten().collect();
                let before = distinct.len();
                distinct.sort_unstable();
                distinct.dedup();
                prop_assert_eq!(before, distinct.len(), "a value twice in the dictionary");
            }
        }
    }

    #[test]
    fn nulls_before_the_first_value_have_code_zero_and_are_null() {
        let mut column = CodedText::with_capacity(0);
        column.append_nulls(3);
        column.append("eni-1");
        let before = column.memory_bytes();
        column.append("eni-1");
        assert!(column.memory_bytes() >= before, "a repeat adds no value");
        let array = column.finish();
        assert_eq!(array.null_count(), 3);
        let keys = array.as_dictionary::<UInt32Type>().keys();
        assert_eq!(keys.values().to_vec(), vec![0, 0, 0, 0, 0]);
    }

    /// The count includes the room a part's column is given up front.
    #[test]
    fn memory_counts_the_room_not_only_the_rows() {
        let column = CodedText::with_capacity(1 << 16);
        assert!(column.memory_bytes() >= 4 << 16);
    }
}
