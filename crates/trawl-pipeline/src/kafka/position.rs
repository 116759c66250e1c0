//! Where a Kafka partition stands in the store, and where a process that
//! is handed the partition starts reading it.
//!
//! Key: `kafka:TOPIC/PARTITION` (topic names cannot hold `/`). Value: JSON
//! `{"offset":O,"byte":B}`: every message before offset `O` is in the
//! store, and the first `B` bytes of message `O`'s decoded text (a seal
//! may fall inside a message of many lines). A message read whole moves
//! the position to `{"offset":O+1,"byte":0}`.
//!
//! Handing a partition over between stores: every group commit carries
//! metadata naming the committing store and whether it still holds the
//! partition ([`handoff_metadata`]). A process assigned a partition that
//! another store holds waits (bounded) for that store to seal and commit
//! it `released`: a store that lost the partition without a revocation
//! (the group moved on while its commits were refused) releases it once it
//! has rejoined.
//!
//! Where to start ([`start_at`]): the store's position, unless the group's
//! committed offset is past it. A process commits to the group only
//! offsets its own store has sealed, and seals before it gives a partition
//! up; so a committed offset past this store's position means another
//! member of the group holds the records in between, and they must not be
//! read again here. With neither, the consumer's `auto.offset.reset`
//! decides (earliest by default).

use serde::{Deserialize, Serialize};

/// A partition's position: messages before `offset` whole, and `byte`
/// bytes of message `offset`'s decoded text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionPosition {
    /// The first message not wholly in the store.
    pub offset: u64,
    /// Bytes of that message's decoded text in the store.
    pub byte: u64,
}

impl PartitionPosition {
    /// The manifest value.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a manifest value.
    pub fn decode(value: &str) -> Option<PartitionPosition> {
        serde_json::from_str(value).ok()
    }

    /// The offset to commit to the group for lag tools and for the next
    /// owner: the first message not wholly in the store.
    pub fn group_offset(&self) -> u64 {
        self.offset
    }
}

/// The manifest key of `topic`'s `partition`.
pub fn partition_key(topic: &str, partition: i32) -> String {
    format!("kafka:{topic}/{partition}")
}

/// Where a newly assigned partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At this position (a message, and bytes of it already in).
    At(PartitionPosition),
    /// Nowhere known: the consumer's `auto.offset.reset` decides.
    Reset,
}

/// Where to start a partition this store has at `stored` (its newest
/// position, sealed or not) and the group has committed at `committed`.
pub fn start_at(stored: Option<PartitionPosition>, committed: Option<u64>) -> Start {
    match (stored, committed) {
        (Some(stored), Some(committed)) if committed > stored.offset => {
            Start::At(PartitionPosition {
                offset: committed,
                byte: 0,
            })
        }
        (Some(stored), _) => Start::At(stored),
        (None, Some(committed)) => Start::At(PartitionPosition {
            offset: committed,
            byte: 0,
        }),
        (None, None) => Start::Reset,
    }
}

/// Metadata of a group commit: the store (data directory) whose flows
/// reach the offset, and whether it still holds the partition (`held`: it
/// may seal further than the group knows) or has let it go (`released`:
/// the offset is where its flows end).
pub fn handoff_metadata(store_id: &str, released: bool) -> String {
    let state = if released { "released" } else { "held" };
    format!("trawl:{store_id}:{state}")
}

/// Who a group commit says holds a partition, seen from store `me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Nobody: no commit, one trawl did not write, or a released one.
    Nobody,
    /// This store (a restart: its own positions are the truth).
    Me,
    /// Another store, which may have sealed past the committed offset.
    Other(String),
}

/// Reads a commit's metadata (see [`handoff_metadata`]).
pub fn holder(metadata: &str, me: &str) -> Holder {
    let mut parts = metadata.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("trawl"), Some(id), Some("held"), None) if id == me => Holder::Me,
        (Some("trawl"), Some(id), Some("held"), None) => Holder::Other(id.to_string()),
        _ => Holder::Nobody,
    }
}

/// The store that made a group commit (held or released), if trawl did.
pub fn committer(metadata: &str) -> Option<&str> {
    let mut parts = metadata.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("trawl"), Some(id), Some("held" | "released"), None) => Some(id),
        _ => None,
    }
}

/// Whether a release this store could not commit in time (its assignment
/// was lost, the group refused its commits) is stale now: another store
/// holds the partition, or the group's offset is past the release's.
/// Committed anyway, it would move the group's offset back over flows
/// the newer owner sealed, and the next owner would read them again.
pub fn release_is_stale(released_at: u64, committed: Option<(u64, &str)>, me: &str) -> bool {
    match committed {
        None => false,
        Some((offset, metadata)) => {
            matches!(holder(metadata, me), Holder::Other(_)) || offset > released_at
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64, byte: u64) -> PartitionPosition {
        PartitionPosition { offset, byte }
    }

    #[test]
    fn positions_round_trip_and_foreign_values_are_refused() {
        let position = at(41, 1200);
        assert_eq!(position.encode(), r#"{"offset":41,"byte":1200}"#);
        assert_eq!(
            PartitionPosition::decode(&position.encode()),
            Some(position)
        );
        assert_eq!(PartitionPosition::decode(r#"{"seq":1,"offset":2}"#), None);
        assert_eq!(PartitionPosition::decode("12"), None);
        assert_eq!(partition_key("flows", 3), "kafka:flows/3");
    }

    #[test]
    fn a_commit_names_its_holder_until_released() {
        assert_eq!(holder(&handoff_metadata("a1", false), "a1"), Holder::Me);
        assert_eq!(
            holder(&handoff_metadata("b2", false), "a1"),
            Holder::Other("b2".into())
        );
        assert_eq!(holder(&handoff_metadata("b2", true), "a1"), Holder::Nobody);
        for foreign in ["", "hello", "trawl:b2", "trawl:b2:held:x", "other:b2:held"] {
            assert_eq!(holder(foreign, "a1"), Holder::Nobody, "{foreign}");
        }
    }

    #[test]
    fn a_commit_names_the_store_that_made_it() {
        assert_eq!(committer(&handoff_metadata("a1", true)), Some("a1"));
        assert_eq!(committer(&handoff_metadata("a1", false)), Some("a1"));
        assert_eq!(committer("trawl:a1"), None);
        assert_eq!(committer(""), None);
    }

    #[test]
    fn a_late_release_never_moves_a_newer_owners_offset_back() {
        let held_by_b = handoff_metadata("b2", false);
        let released_by_b = handoff_metadata("b2", true);
        let mine = handoff_metadata("a1", false);
        // The group still has this store's own commit, or nothing: release.
        assert!(!release_is_stale(40, Some((35, &mine)), "a1"));
        assert!(!release_is_stale(40, None, "a1"));
        // Another store holds it now, or sealed past this release: drop it.
        assert!(release_is_stale(40, Some((38, &held_by_b)), "a1"));
        assert!(release_is_stale(40, Some((55, &released_by_b)), "a1"));
        assert!(release_is_stale(40, Some((41, "")), "a1"));
    }

    #[test]
    fn the_store_decides_unless_the_group_is_past_it() {
        // Resumed inside a message this store holds in part.
        assert_eq!(start_at(Some(at(10, 5)), Some(10)), Start::At(at(10, 5)));
        assert_eq!(start_at(Some(at(10, 5)), Some(3)), Start::At(at(10, 5)));
        assert_eq!(start_at(Some(at(10, 5)), None), Start::At(at(10, 5)));
        // Another member sealed up to 20 and handed the partition over.
        assert_eq!(start_at(Some(at(10, 5)), Some(20)), Start::At(at(20, 0)));
        assert_eq!(start_at(None, Some(7)), Start::At(at(7, 0)));
        assert_eq!(start_at(None, None), Start::Reset);
    }
}
