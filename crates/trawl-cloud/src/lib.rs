//! Ownership from where it lives: cloud inventories turned into trawl's
//! metadata events, with no code written by the user.
//!
//! ```text
//!  aws (the SDK poller: DescribeNetworkInterfaces, DescribeInstances, ECS tasks)
//!     ─► Inventory (NetworkInterface / Instance / EcsTask values) ─► eni::poll_events
//!     ─► an assign per listed address (EKS nodes' pod addresses left to Kubernetes)
//!        and an `interface` event per interface (for learning from flows); the caller
//!        releases what the same target's previous poll listed and this one does not
//!     ─► settle::dated_assigns: new owners dated earlier than the poll when the APIs say when
//!     ─► settle::keep_own_releases: a source releases only addresses it declared
//!  kubernetes (kube: list + watch nodes, ReplicaSets, Jobs, pods; 410 ─► list again)
//!     ─► pod::PodTracker: a watch event is an assign or a release of the pod's IPs
//!        (only the pod that holds an IP releases it); a list releases what it no longer has
//! ```
//!
//! The conversion (`eni`, `ecs`, `pod`, `settle`) is pure functions from
//! values that mirror the APIs' fields, so every rule is unit-tested
//! without a cloud; `aws` and `kubernetes` fill those values from the
//! APIs. The pipeline (`trawl_pipeline::cloud`) runs them in threads and
//! applies the events to the index.
//!
//! Events are timestamped by observation: a poll at `t` says who owned
//! each address at `t`; a change between two polls is seen at the second
//! (see `settle` for what is dated earlier).

pub mod aws;
pub mod ecs;
pub mod eni;
pub mod kubernetes;
pub mod pod;
pub mod settle;

pub use ecs::EcsTask;
pub use eni::{
    Attached, Instance, Inventory, NetworkInterface, PollEvents, PollOptions, TagKeys, owners_of,
    poll_events, workload_of,
};
pub use pod::{Controllers, NodePlace, OwnerRef, Pod, PodTracker, workload_of_pod};
pub use settle::{Dates, Window, dated_assigns, keep_own_releases};
