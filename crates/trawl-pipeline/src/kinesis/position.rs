//! Where a Kinesis shard stands in the store, and which process reads it.
//!
//! Key: `kinesis:STREAM/SHARD_ID`. Value: JSON
//! `{"seq":S,"byte":B,"whole":W,"ended":E}`:
//! - `whole`: every record through sequence number `S` is in the store
//!   (resume `AFTER_SEQUENCE_NUMBER S`);
//! - not `whole`: the records before `S`, and the first `B` bytes of
//!   record `S`'s decoded text (a seal inside a record of many lines;
//!   resume `AT_SEQUENCE_NUMBER S`, skipping `B` bytes);
//! - `ended`: the shard is closed (resharded) and read to its end: its
//!   children may start;
//! - `from`: the shard's starting sequence number, which tells it from a
//!   shard of the same id in a stream deleted and made again (ids start
//!   over at `shardId-000000000000`): a position whose `from` differs, or
//!   that lies before the shard's start, belongs to the old stream and is
//!   not used.
//!
//! Sequence numbers are decimal strings of up to 129 digits, increasing
//! within a shard; they are compared as numbers ([`sequence_order`]).
//!
//! Several processes on one stream: a static split, `node_index` of
//! `node_count`, by each shard's starting hash key ([`owner_of`]): the
//! hash key space cut into `node_count` equal ranges, a shard read by the
//! node whose range holds its first key. A shard's hash range never
//! changes, so its reader never changes either (no lease table, no hand
//! over), and each process's store holds its own shards' positions. A
//! split's lower child stays with its parent; the other child may belong
//! to another node, which does not wait for the parent there (it cannot
//! see that node's progress): per-key order across nodes is best effort;
//! totals stay exact (each shard is read by one node, once).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// A shard's position in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardPosition {
    /// A record's sequence number.
    pub seq: String,
    /// Bytes of that record's decoded text in the store (when not `whole`).
    #[serde(default)]
    pub byte: u64,
    /// The record `seq` is wholly in.
    #[serde(default)]
    pub whole: bool,
    /// The shard is closed and read to its end.
    #[serde(default)]
    pub ended: bool,
    /// The shard's starting sequence number (see the module header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl ShardPosition {
    /// `byte` bytes of record `seq` are in, of the shard starting at `from`.
    pub fn inside(seq: &str, byte: u64, from: &str) -> ShardPosition {
        ShardPosition {
            seq: seq.to_string(),
            byte,
            whole: false,
            ended: false,
            from: Some(from.to_string()),
        }
    }

    /// Record `seq` and every one before it are in, of the shard starting at `from`.
    pub fn after(seq: &str, from: &str) -> ShardPosition {
        ShardPosition {
            seq: seq.to_string(),
            byte: 0,
            whole: true,
            ended: false,
            from: Some(from.to_string()),
        }
    }

    /// Whether the position belongs to the shard listed now, which starts
    /// at `starting_seq` and is open unless `closed` (see the module
    /// header: a stream made again reuses shard ids).
    pub fn is_of(&self, starting_seq: &str, closed: bool) -> bool {
        match &self.from {
            Some(from) => from == starting_seq,
            // Written before `from` was kept: judged by what it says.
            None => {
                let before = !self.seq.is_empty()
                    && sequence_order(&self.seq, starting_seq) == Ordering::Less;
                !before && (closed || !self.ended)
            }
        }
    }

    /// The manifest value.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a manifest value.
    pub fn decode(value: &str) -> Option<ShardPosition> {
        serde_json::from_str(value).ok()
    }
}

/// The manifest key of `stream`'s shard `shard_id`.
pub fn shard_key(stream: &str, shard_id: &str) -> String {
    format!("kinesis:{stream}/{shard_id}")
}

/// Orders two sequence numbers (decimal strings without leading zeros)
/// as numbers.
pub fn sequence_order(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The node (of `node_count`) that reads the shard whose hash key range
/// starts at `starting_hash_key` (a decimal string below 2^128); `None`
/// if the key is not a number.
pub fn owner_of(starting_hash_key: &str, node_count: u32) -> Option<u32> {
    let key: u128 = starting_hash_key.parse().ok()?;
    if node_count <= 1 {
        return Some(0);
    }
    let range = u128::MAX / u128::from(node_count) + 1;
    let node = (key / range).min(u128::from(node_count - 1));
    u32::try_from(node).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_say_where_to_resume() {
        let inside = ShardPosition::inside(
            "49590338271490256608559692538361571095921575989136588898",
            120,
            "49590338271490256608559692538361571095921575989136588000",
        );
        assert!(!inside.whole);
        assert_eq!(ShardPosition::decode(&inside.encode()), Some(inside));
        let after = ShardPosition::after("17", "1");
        assert!(after.whole && after.byte == 0 && !after.ended);
        assert_eq!(ShardPosition::decode(&after.encode()), Some(after));
        assert_eq!(
            ShardPosition::decode("{\"seq\":\"1\",\"nonsense\":1}"),
            None
        );
        assert_eq!(
            shard_key("flows", "shardId-000000000001"),
            "kinesis:flows/shardId-000000000001"
        );
    }

    #[test]
    fn a_position_of_a_stream_made_again_is_not_taken_for_the_new_shards() {
        let kept = ShardPosition::after("17", "1");
        assert!(kept.is_of("1", false));
        assert!(!kept.is_of("900", false), "another shard of the same id");
        let mut old = ShardPosition::decode(r#"{"seq":"17","whole":true}"#).unwrap();
        assert!(old.is_of("1", false));
        assert!(!old.is_of("18", false), "before the shard's start");
        old.ended = true;
        assert!(old.is_of("1", true));
        assert!(
            !old.is_of("1", false),
            "ended, but the listed shard is open"
        );
    }

    #[test]
    fn sequence_numbers_compare_as_numbers_not_strings() {
        assert_eq!(sequence_order("9", "10"), Ordering::Less);
        assert_eq!(sequence_order("10", "9"), Ordering::Greater);
        assert_eq!(sequence_order("0042", "42"), Ordering::Equal);
        let long = "49590338271490256608559692538361571095921575989136588898";
        let longer = "49590338271490256608559692538361571095921575989136588899";
        assert_eq!(sequence_order(long, longer), Ordering::Less);
    }

    #[test]
    fn the_hash_key_space_is_cut_into_equal_ranges() {
        let max = u128::MAX.to_string();
        assert_eq!(owner_of("0", 1), Some(0));
        assert_eq!(owner_of(&max, 1), Some(0));
        assert_eq!(owner_of("0", 3), Some(0));
        assert_eq!(owner_of(&max, 3), Some(2));
        let half = (u128::MAX / 2 + 1).to_string();
        assert_eq!(owner_of(&half, 2), Some(1));
        assert_eq!(owner_of(&(u128::MAX / 2).to_string(), 2), Some(0));
        assert_eq!(owner_of("not a number", 2), None);
    }
}
