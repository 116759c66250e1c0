//! Ownership from where it lives: cloud inventories turned into trawl's
//! metadata events, with no code written by the user.
//!
//! ```text
//!  poll (an API client, elsewhere) ─► NetworkInterface / Instance values ─► eni::snapshot
//!     ─► one `snapshot` event scoped to the polled networks (`within`): every address
//!        of every interface with the workload that owns it, so releases follow from absence
//!     ─► one `interface` event per interface (for learning from flows)
//! ```
//!
//! Kubernetes pods go the other way (`pod`): a watch event is an assign
//! or a release of the pod's IPs, a full list releases what it no longer
//! has.
//!
//! This crate holds the conversion only: pure functions from values that
//! mirror the cloud APIs' fields to [`trawl_attrib::MetadataEvent`]s, so
//! every rule is unit-tested without a cloud. The pollers that fill those
//! values (EC2's `DescribeNetworkInterfaces` and `DescribeInstances`, ECS,
//! Kubernetes) sit in the pipeline and hand the events to the index like
//! any other metadata source.
//!
//! Events are timestamped by observation: a poll at `t` says who owned
//! each address at `t`; a change between two polls is seen at the second.

pub mod aws;
pub mod ecs;
pub mod eni;
pub mod kubernetes;
pub mod pod;
pub mod settle;

pub use ecs::EcsTask;
pub use eni::{
    Attached, Instance, Inventory, NetworkInterface, PollOptions, TagKeys, owners_of, snapshot,
    workload_of,
};
pub use pod::{Controllers, NodePlace, OwnerRef, Pod, PodTracker, workload_of_pod};
pub use settle::{Window, dated_assigns};
