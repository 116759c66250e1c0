//! Rollup dimensions: what a rollup row is keyed by, and how each is read
//! off an enriched flow.
//!
//! Every dimension value is carried as a `u32` code so that a rollup key is a
//! short array of integers: text values are codes into the store's
//! [`Dictionary`](crate::dict::Dictionary), numbers are themselves, booleans
//! are 0/1, and [`NULL_CODE`] stands for null everywhere.
//!
//! **Service port.** Rollups keep one port per flow, the *service* port, so
//! that replies (ephemeral client ports) do not multiply the rows. The rule:
//! for a flow with both ports, the service port is the smaller of the two if
//! it is below [`EPHEMERAL_PORT_MIN`] (32768, the start of Linux's ephemeral
//! range; Windows and IANA start at 49152, above it); when both ports are
//! ephemeral, or a port is missing (ICMP), it is null.

use trawl_flowlog::{Action, FlowDirection, FlowRecord};

/// The code of a null value, for every dimension.
pub const NULL_CODE: u32 = u32::MAX;

/// Ports at or above this are taken as ephemeral (client) ports.
pub const EPHEMERAL_PORT_MIN: u16 = 32768;

/// The service port of a flow (see the module header for the rule).
pub fn service_port(src_port: Option<u16>, dst_port: Option<u16>) -> Option<u16> {
    let lower = src_port?.min(dst_port?);
    (lower < EPHEMERAL_PORT_MIN).then_some(lower)
}

/// A workload attribute kept for each side of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SideField {
    /// Application.
    App,
    /// Cluster, auto-scaling group or deployment.
    Cluster,
    /// AWS account.
    Account,
    /// Region.
    Region,
    /// Availability Zone id.
    Az,
    /// Kind of workload (`instance`, `pod`, `internet`, …).
    Kind,
}

impl SideField {
    /// Every side field, in column order.
    pub const ALL: [SideField; 6] = [
        SideField::App,
        SideField::Cluster,
        SideField::Account,
        SideField::Region,
        SideField::Az,
        SideField::Kind,
    ];

    /// The field's name after the `src_` / `dst_` prefix.
    pub const fn name(self) -> &'static str {
        match self {
            SideField::App => "app",
            SideField::Cluster => "cluster",
            SideField::Account => "account",
            SideField::Region => "region",
            SideField::Az => "az",
            SideField::Kind => "kind",
        }
    }
}

/// How a dimension's codes become an SQL column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DimType {
    /// Text: codes into the store dictionary.
    Text,
    /// A 32-bit integer.
    Int,
    /// A boolean (0 / 1).
    Bool,
}

macro_rules! dims {
    ($( $(#[$doc:meta])* $variant:ident = ($name:literal, $ty:ident) ),* $(,)?) => {
        /// A rollup dimension (also an SQL column of the rollup tables).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Dim {
            $( $(#[$doc])* $variant ),*
        }

        impl Dim {
            /// Every dimension, in column order (`ALL[d as usize] == d`).
            pub const ALL: &'static [Dim] = &[ $(Dim::$variant),* ];

            /// The SQL column name.
            pub const fn name(self) -> &'static str {
                match self { $(Dim::$variant => $name),* }
            }

            /// The column's type.
            pub const fn dim_type(self) -> DimType {
                match self { $(Dim::$variant => DimType::$ty),* }
            }
        }
    };
}

dims! {
    /// Source application.
    SrcApp = ("src_app", Text),
    /// Source cluster.
    SrcCluster = ("src_cluster", Text),
    /// Source account.
    SrcAccount = ("src_account", Text),
    /// Source region.
    SrcRegion = ("src_region", Text),
    /// Source Availability Zone.
    SrcAz = ("src_az", Text),
    /// Source kind.
    SrcKind = ("src_kind", Text),
    /// Destination application.
    DstApp = ("dst_app", Text),
    /// Destination cluster.
    DstCluster = ("dst_cluster", Text),
    /// Destination account.
    DstAccount = ("dst_account", Text),
    /// Destination region.
    DstRegion = ("dst_region", Text),
    /// Destination Availability Zone.
    DstAz = ("dst_az", Text),
    /// Destination kind.
    DstKind = ("dst_kind", Text),
    /// IANA protocol number.
    Protocol = ("protocol", Int),
    /// Service port (see the module header).
    ServicePort = ("service_port", Int),
    /// `ACCEPT` or `REJECT`.
    Action = ("action", Text),
    /// `ingress` or `egress`.
    FlowDirection = ("flow_direction", Text),
    /// Both sides' AZs known and different.
    CrossAz = ("cross_az", Bool),
    /// Both sides' regions known and different.
    CrossRegion = ("cross_region", Bool),
}

/// Number of dimensions.
pub const DIM_COUNT: usize = Dim::ALL.len();

impl Dim {
    /// The dimension called `name` (its SQL column name).
    pub fn from_name(name: &str) -> Option<Dim> {
        Dim::ALL.iter().copied().find(|d| d.name() == name)
    }
}

/// Codes of one side's workload attributes, in [`SideField::ALL`] order.
pub type SideCodes = [u32; 6];

/// The codes of a side without a workload.
pub const NULL_SIDE: SideCodes = [NULL_CODE; 6];

/// Dictionary codes of the keyword values, fixed when the store starts.
#[derive(Debug, Clone, Copy)]
pub struct KeywordCodes {
    /// Code of each [`Action`], by discriminant.
    pub action: [u32; 2],
    /// Code of each [`FlowDirection`], by discriminant.
    pub direction: [u32; 2],
}

/// Every dimension's code for one flow, indexed by `Dim as usize`.
pub fn flow_dims(
    record: &FlowRecord<'_>,
    src: &SideCodes,
    dst: &SideCodes,
    keywords: &KeywordCodes,
) -> [u32; DIM_COUNT] {
    let int = |v: Option<u16>| v.map_or(NULL_CODE, u32::from);
    let differ = |a: u32, b: u32| {
        if a == NULL_CODE || b == NULL_CODE {
            NULL_CODE
        } else {
            u32::from(a != b)
        }
    };
    let region = SideField::Region as usize;
    let az = SideField::Az as usize;
    let mut out = [NULL_CODE; DIM_COUNT];
    out[..6].copy_from_slice(src);
    out[6..12].copy_from_slice(dst);
    out[Dim::Protocol as usize] = int(record.protocol().map(u16::from));
    out[Dim::ServicePort as usize] = int(service_port(record.src_port(), record.dst_port()));
    out[Dim::Action as usize] = record
        .action()
        .map_or(NULL_CODE, |a| keywords.action[a as usize]);
    out[Dim::FlowDirection as usize] = record
        .flow_direction()
        .map_or(NULL_CODE, |d| keywords.direction[d as usize]);
    out[Dim::CrossAz as usize] = differ(src[az], dst[az]);
    out[Dim::CrossRegion as usize] = differ(src[region], dst[region]);
    out
}

/// The keyword texts the store interns at start, in discriminant order.
pub const ACTION_TEXTS: [Action; 2] = [Action::Accept, Action::Reject];
/// See [`ACTION_TEXTS`].
pub const DIRECTION_TEXTS: [FlowDirection; 2] = [FlowDirection::Ingress, FlowDirection::Egress];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_are_in_discriminant_order() {
        for (i, d) in Dim::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i);
            assert_eq!(Dim::from_name(d.name()), Some(*d));
        }
        assert_eq!(Dim::SrcApp as usize + 6, Dim::DstApp as usize);
        assert_eq!(ACTION_TEXTS[Action::Reject as usize], Action::Reject);
        assert_eq!(
            DIRECTION_TEXTS[FlowDirection::Egress as usize],
            FlowDirection::Egress
        );
    }

    #[test]
    fn service_port_is_the_non_ephemeral_side() {
        assert_eq!(service_port(Some(443), Some(51234)), Some(443));
        assert_eq!(service_port(Some(51234), Some(443)), Some(443));
        assert_eq!(service_port(Some(5432), Some(8080)), Some(5432));
        assert_eq!(service_port(Some(40000), Some(50000)), None);
        assert_eq!(service_port(None, Some(80)), None);
        assert_eq!(service_port(Some(0), Some(0)), Some(0));
    }
}
