//! Workloads — who can own an IP — and the table that interns them.
//!
//! Many intervals share few workloads, so intervals carry a [`WorkloadId`]
//! (a `u32`) into a [`WorkloadTable`] instead of the workload itself. Id 0 is
//! reserved for "no owner". Workloads compare field by field; that order (not
//! the arrival order of ids) breaks ties between simultaneous assignments, so
//! the outcome does not depend on delivery order.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A workload: an application instance, pod, load balancer, AWS service, … .
/// Every field may be missing (`null`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Application name (`api`).
    #[serde(default)]
    pub app: Option<String>,
    /// Cluster, auto-scaling group or deployment (`api-prod-v042`).
    #[serde(default)]
    pub cluster: Option<String>,
    /// AWS account id.
    #[serde(default)]
    pub account: Option<String>,
    /// Region (`us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// Availability Zone id (`use1-az2`).
    #[serde(default)]
    pub az: Option<String>,
    /// `instance`, `pod`, `load_balancer`, `nat_gateway`, `aws_service`,
    /// `internet`, `unknown`, `network`, or any other word.
    #[serde(default)]
    pub kind: Option<String>,
    /// Free-form labels (`team = edge`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Workload {
    /// A workload of only a kind (`internet`, `unknown`).
    pub fn of_kind(kind: &str) -> Self {
        Workload {
            kind: Some(kind.to_string()),
            ..Workload::default()
        }
    }
}

/// Index of a workload in a [`WorkloadTable`]; 0 means "no owner".
pub type WorkloadId = u32;

/// The "no owner" id.
pub const NO_OWNER: WorkloadId = 0;

/// Most distinct workloads a table holds (ids are `u32`; the limit keeps a
/// runaway label from exhausting memory).
pub const WORKLOADS_MAX: usize = 50_000_000;

/// Interns workloads: equal workloads get the same id.
#[derive(Debug, Clone)]
pub struct WorkloadTable {
    list: Vec<Arc<Workload>>,
    ids: hashbrown::HashMap<Arc<Workload>, WorkloadId, foldhash::fast::RandomState>,
}

impl Default for WorkloadTable {
    fn default() -> Self {
        WorkloadTable {
            list: vec![Arc::new(Workload::default())],
            ids: hashbrown::HashMap::default(),
        }
    }
}

impl WorkloadTable {
    /// The id of `workload`, adding it if new; `None` when the table is full.
    pub fn intern(&mut self, workload: &Workload) -> Option<WorkloadId> {
        if let Some(id) = self.ids.get(workload) {
            return Some(*id);
        }
        if self.list.len() >= WORKLOADS_MAX {
            return None;
        }
        let id = WorkloadId::try_from(self.list.len()).ok()?;
        let shared = Arc::new(workload.clone());
        self.list.push(shared.clone());
        self.ids.insert(shared, id);
        Some(id)
    }

    /// The workload of `id` (`None` for [`NO_OWNER`] or an unknown id).
    pub fn get(&self, id: WorkloadId) -> Option<&Arc<Workload>> {
        if id == NO_OWNER {
            return None;
        }
        self.list.get(id as usize)
    }

    /// Number of workloads (without the reserved id 0).
    pub fn len(&self) -> usize {
        self.list.len() - 1
    }

    /// Whether no workload was interned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every workload with its id.
    pub fn iter(&self) -> impl Iterator<Item = (WorkloadId, &Arc<Workload>)> {
        self.list
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, w)| (i as WorkloadId, w))
    }

    /// Deterministic order of two owners, independent of interning order:
    /// by workload content, "no owner" lowest.
    pub fn order(&self, a: WorkloadId, b: WorkloadId) -> std::cmp::Ordering {
        self.get(a).map(|w| &**w).cmp(&self.get(b).map(|w| &**w))
    }

    /// Approximate heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        let strings: usize = self
            .list
            .iter()
            .map(|w| {
                [&w.app, &w.cluster, &w.account, &w.region, &w.az, &w.kind]
                    .iter()
                    .map(|s| s.as_ref().map_or(0, String::capacity))
                    .sum::<usize>()
                    + w.labels
                        .iter()
                        .map(|(k, v)| k.len() + v.len() + 48)
                        .sum::<usize>()
            })
            .sum();
        self.list.capacity() * 8
            + self.list.len() * (std::mem::size_of::<Workload>() + 16)
            + self.ids.capacity() * 13
            + strings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> Workload {
        Workload {
            app: Some(name.into()),
            ..Workload::default()
        }
    }

    #[test]
    fn equal_workloads_share_an_id_and_zero_is_nobody() {
        let mut table = WorkloadTable::default();
        let a = table.intern(&app("a")).unwrap();
        let b = table.intern(&app("b")).unwrap();
        assert_eq!(table.intern(&app("a")), Some(a));
        assert_ne!(a, b);
        assert_ne!(a, NO_OWNER);
        assert_eq!(table.get(NO_OWNER), None);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn order_is_by_content_not_by_id() {
        let mut table = WorkloadTable::default();
        let z = table.intern(&app("z")).unwrap();
        let a = table.intern(&app("a")).unwrap();
        assert_eq!(table.order(a, z), std::cmp::Ordering::Less);
        assert_eq!(table.order(NO_OWNER, a), std::cmp::Ordering::Less);
    }

    #[test]
    fn missing_fields_are_null_and_unknown_fields_refused() {
        let w: Workload =
            serde_json::from_str(r#"{"app":"api","labels":{"team":"edge"}}"#).unwrap();
        assert_eq!(w.cluster, None);
        assert_eq!(w.labels["team"], "edge");
        assert!(serde_json::from_str::<Workload>(r#"{"ap":"api"}"#).is_err());
    }
}
