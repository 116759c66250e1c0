//! Review of 5f4abee (a detail part's absent fields share one all-null
//! column per type, `detail.rs` `shared_null_column`): what the shared columns
//! do to readers of open rows.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, RwLock};

use crate::common::{self, Estate, Flow};
use trawl_store::{EngineLimits, SqlEngine, Store, StoreConfig};

const HOUR: u32 = 3600;
const T0: u32 = 1_790_000_000 - 1_790_000_000 % 86_400;

fn flow(i: usize, start: u32) -> Flow {
    Flow {
        start,
        src: i % 9,
        dst: (i * 3 + 1) % 11,
        src_port: 40_000 + i as u16,
        dst_port: 443,
        protocol: 6,
        bytes: 100 + i as u64,
        packets: 1,
        reject: false,
        egress: true,
    }
}

/// A query over the open rows of a version 5 estate (no ECS fields), 20
/// rows in each of 8 shards x 6 hourly detail chunks (48 small open
/// parts, under a megabyte of rows in all), sorted under an 8 MiB query
/// memory pool; before 5f4abee 1 MiB was enough. Each small part's absent
/// columns are now slices of the shared 65,536-row null columns, and
/// DataFusion reserves a batch's buffers by capacity: about 0.8 MB for
/// each 20-row batch.
#[test]
fn review_small_open_parts_reserve_a_whole_shared_null_column_per_type() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let mut config = StoreConfig::new(dir.path());
    config.open_shards = 8;
    config.wall_clock_secs = Some(T0 + 6 * HOUR);
    let store = Arc::new(RwLock::new(Store::open(config).unwrap()));
    let mut total = 0;
    for shard in 0..8 {
        for hour in 0..6u32 {
            let flows: Vec<Flow> = (0..20)
                .map(|i| flow(i, T0 + hour * HOUR + 60 * i as u32))
                .collect();
            common::add_to(&store.read().unwrap(), Some(shard), &estate, &flows, None);
            total += flows.len();
        }
    }
    let engine = SqlEngine::with_limits(
        store.clone(),
        None,
        EngineLimits {
            memory_bytes_max: Some(8 << 20),
            cache_segments: false,
        },
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let answer = runtime.block_on(engine.query("SELECT * FROM flows ORDER BY time, src_port"));
    let rows = answer
        .map(|r| r.batches.iter().map(|b| b.num_rows()).sum::<usize>())
        .map_err(|e| e.to_string());
    assert_eq!(rows, Ok(total), "{total} open rows sorted within 8 MiB");
}
