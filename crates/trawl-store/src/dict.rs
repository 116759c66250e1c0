//! The store's string dictionary: every text dimension value gets a `u32`
//! code, so rollup keys are integers and SQL columns are dictionary arrays.
//!
//! Invariants: append-only (a code never changes meaning while the store is
//! open); at most `strings_max` strings, past which new strings share the
//! code of [`OVERFLOW_TEXT`] (counted) instead of growing memory. Codes live
//! only in memory: segments on disk hold the strings themselves.

use std::sync::Arc;

use arrow::array::StringArray;

/// The text that stands in for strings past the dictionary's bound.
pub const OVERFLOW_TEXT: &str = "(dictionary full)";

/// Interns strings to dense `u32` codes.
#[derive(Debug)]
pub struct Dictionary {
    codes: hashbrown::HashMap<Arc<str>, u32, foldhash::fast::FixedState>,
    strings: Vec<Arc<str>>,
    strings_max: usize,
    /// Bytes of the strings held (with their `Arc` headers), kept as they
    /// are added so the memory count is O(1) on the add path.
    text_bytes: usize,
    overflowed: u64,
    snapshot: std::sync::Mutex<Option<Arc<StringArray>>>,
}

impl Dictionary {
    /// An empty dictionary holding at most `strings_max` strings.
    pub fn new(strings_max: usize) -> Self {
        let mut dict = Dictionary {
            codes: hashbrown::HashMap::default(),
            strings: Vec::new(),
            strings_max: strings_max.max(1),
            text_bytes: 0,
            overflowed: 0,
            snapshot: std::sync::Mutex::new(None),
        };
        dict.insert(OVERFLOW_TEXT);
        dict
    }

    fn insert(&mut self, text: &str) -> u32 {
        let code = u32::try_from(self.strings.len()).unwrap_or(u32::MAX - 1);
        let shared: Arc<str> = Arc::from(text);
        self.text_bytes += text.len() + 16;
        self.strings.push(shared.clone());
        self.codes.insert(shared, code);
        *self.snapshot.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        code
    }

    /// The code of `text`, adding it if new.
    pub fn code(&mut self, text: &str) -> u32 {
        if let Some(code) = self.codes.get(text) {
            return *code;
        }
        if self.strings.len() >= self.strings_max {
            self.overflowed += 1;
            return 0;
        }
        self.insert(text)
    }

    /// The code of `text`, adding it if there is room; `None` when the
    /// dictionary is full and lacks it (nothing counted: for rewriting
    /// stored data, which must keep its strings or stay as it is).
    pub fn code_exact(&mut self, text: &str) -> Option<u32> {
        if let Some(code) = self.codes.get(text) {
            return Some(*code);
        }
        (self.strings.len() < self.strings_max).then(|| self.insert(text))
    }

    /// The text of `code`.
    pub fn text(&self, code: u32) -> Option<&str> {
        self.strings.get(code as usize).map(|s| &**s)
    }

    /// Number of strings held.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// Whether only the overflow text is held.
    pub fn is_empty(&self) -> bool {
        self.strings.len() <= 1
    }

    /// Strings refused because the dictionary was full.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Every string, indexed by code, as an arrow array (rebuilt only after
    /// the dictionary grew).
    pub fn values(&self) -> Arc<StringArray> {
        let mut snapshot = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        snapshot
            .get_or_insert_with(|| {
                Arc::new(StringArray::from_iter_values(
                    self.strings.iter().map(|s| &**s),
                ))
            })
            .clone()
    }

    /// Approximate heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.text_bytes + self.codes.capacity() * 24 + self.strings.capacity() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn codes_are_stable_and_bounded() {
        let mut dict = Dictionary::new(3);
        let a = dict.code("api");
        let b = dict.code("db");
        assert_eq!(dict.code("api"), a);
        assert_ne!(a, b);
        assert_eq!(dict.code("third"), 0, "past the bound: the overflow code");
        assert_eq!(dict.overflowed(), 1);
        assert_eq!(dict.code_exact("api"), Some(a));
        assert_eq!(
            dict.code_exact("fourth"),
            None,
            "full: refused, not replaced"
        );
        assert_eq!(dict.overflowed(), 1);
        assert_eq!(dict.text(a), Some("api"));
        let values = dict.values();
        assert_eq!(values.value(b as usize), "db");
        assert_eq!(values.len(), 3);
        let text: usize = dict.strings.iter().map(|s| s.len() + 16).sum();
        assert_eq!(dict.text_bytes, text, "the running count equals a recount");
    }
}
