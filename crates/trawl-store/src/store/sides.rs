//! Side codes of workloads, shared by every shard: the six dictionary codes
//! (app, cluster, account, region, AZ, kind) of each workload id seen.
//!
//! ```text
//! worker, under the index's read lock: owner_at … ─► Store::note_workloads(ids, table)
//! worker, without the index:           Store::add_noted_batch(flows) ─► codes of src, dst
//! ```
//!
//! Filling the cache needs the workload table (in the pipeline, the
//! attribution index, read-locked for the lookups anyway); adding flows
//! then reads only the cache, so an add holds no index lock and a worker
//! learning from flows (the index's write lock) does not wait for
//! another worker's add.
//!
//! Invariant: an id's codes are those of the workload its table interned
//! under it (tables are append-only: an id never changes workload);
//! [`Store::forget_workloads`](super::Store::forget_workloads) clears the
//! cache when the table is replaced. [`NO_OWNER`] is always known (nulls).

use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

use trawl_attrib::{NO_OWNER, WorkloadId, WorkloadTable};

use super::shard::lock;
use crate::dict::Dictionary;
use crate::dims::{NULL_CODE, NULL_SIDE, SideCodes};

/// The cache (see the module header).
#[derive(Debug, Default)]
pub(super) struct WorkloadSides {
    codes: RwLock<Vec<Option<SideCodes>>>,
}

/// The cache as read by one add.
pub(super) struct SidesRead<'a>(RwLockReadGuard<'a, Vec<Option<SideCodes>>>);

impl SidesRead<'_> {
    /// The codes of `id`, if noted.
    pub fn get(&self, id: WorkloadId) -> Option<SideCodes> {
        noted(&self.0, id)
    }
}

/// The codes of `id` in `codes`, if noted ([`NO_OWNER`]: always, nulls).
fn noted(codes: &[Option<SideCodes>], id: WorkloadId) -> Option<SideCodes> {
    if id == NO_OWNER {
        return Some(NULL_SIDE);
    }
    codes.get(id as usize).copied().flatten()
}

impl WorkloadSides {
    /// Notes the codes of every id of `ids` not noted yet (interning their
    /// strings in `dict`); one read lock when all are known.
    pub fn note(
        &self,
        ids: impl IntoIterator<Item = WorkloadId> + Clone,
        workloads: &WorkloadTable,
        dict: &Mutex<Dictionary>,
    ) {
        let all_known = {
            let known = self.read();
            ids.clone().into_iter().all(|id| known.get(id).is_some())
        };
        if all_known {
            return;
        }
        let mut codes = self.codes.write().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            if noted(&codes, id).is_some() {
                continue;
            }
            if codes.len() <= id as usize {
                codes.resize(id as usize + 1, None);
            }
            codes[id as usize] = Some(side_codes_of(id, workloads, dict));
        }
    }

    /// The cache for reading (held through one add).
    pub fn read(&self) -> SidesRead<'_> {
        SidesRead(self.codes.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Forgets every id (the workload table was replaced).
    pub fn clear(&mut self) {
        self.codes
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// The six side codes of workload `id` of `workloads` (nulls for an id the
/// table does not hold).
fn side_codes_of(id: WorkloadId, workloads: &WorkloadTable, dict: &Mutex<Dictionary>) -> SideCodes {
    let Some(w) = workloads.get(id) else {
        return NULL_SIDE;
    };
    let mut dict = lock(dict);
    let mut code = |s: &Option<String>| s.as_deref().map_or(NULL_CODE, |s| dict.code(s));
    [
        code(&w.app),
        code(&w.cluster),
        code(&w.account),
        code(&w.region),
        code(&w.az),
        code(&w.kind),
    ]
}
