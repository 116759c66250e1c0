//! Review of c4dd37a: the memory count of an open `flows` part
//! (`DetailBucket::memory_bytes`, summed into `Store::open_bytes`, which
//! the `open_bytes_max` cap and the sources' back-pressure read) against
//! the heap it really takes. Field builders now start with room for a
//! whole part (`PART_ROWS` rows) at a field's first value, and none of
//! that room is counted.

#![allow(clippy::unwrap_used)]

use trawl_flowlog::{Field, FlowRecord, Value, ValueType};
use trawl_store::detail::DetailBucket;
use trawl_store::dims::{DIM_COUNT, NULL_CODE};

/// `VmRSS` and `VmSize` of this process, in bytes.
fn vm() -> (usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap()
            * 1024
    };
    (kb("VmRSS:"), kb("VmSize:"))
}

/// A record carrying every field (a v5 log with ECS fields).
fn full_record() -> FlowRecord<'static> {
    let mut record = FlowRecord::new();
    for field in Field::ALL {
        let value = match field.value_type() {
            ValueType::Int { .. } => Value::Int(1),
            ValueType::Addr => Value::Addr([10, 0, 0, 1].into()),
            _ => Value::Str("some-id-0123456789"),
        };
        record.set(*field, value);
    }
    record
}

/// Open parts of a few rows each (one per open chunk and shard) take
/// about the memory `memory_bytes` counts for them.
#[test]
fn review_open_part_memory_count_misses_the_builders_room_for_a_part() {
    let schema = trawl_store::schema::detail_schema();
    let record = full_record();
    let dims = [NULL_CODE; DIM_COUNT];
    // Warm up allocator state with a part frozen and dropped.
    {
        let mut warm = DetailBucket::default();
        for _ in 0..trawl_store::detail::PART_ROWS + 1 {
            warm.add(1_000, &record, &dims, &schema);
        }
    }
    let (rss0, size0) = vm();
    let mut buckets = Vec::new();
    for _ in 0..48 {
        let mut bucket = DetailBucket::default();
        for _ in 0..100 {
            bucket.add(1_000, &record, &dims, &schema);
        }
        buckets.push(bucket);
    }
    let (rss1, size1) = vm();
    let counted: usize = buckets.iter().map(DetailBucket::memory_bytes).sum();
    eprintln!(
        "48 open parts of 100 rows: RSS +{} KiB, VmSize +{} KiB, counted {} KiB",
        (rss1 - rss0) >> 10,
        (size1 - size0) >> 10,
        counted >> 10
    );
    assert!(rss1 - rss0 <= 4 * counted + (8 << 20));
}
