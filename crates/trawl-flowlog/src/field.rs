//! The fields of an AWS VPC flow-log record: their AWS names, their trawl
//! column names, the version that introduced them and the type of value each
//! carries.
//!
//! Naming rule (one naming everywhere: JSON keys, SQL columns): the AWS name
//! with `-` replaced by `_`, except that the address and port fields split
//! their words (`srcaddr` → `src_addr`, `pkt-dstaddr` → `pkt_dst_addr`,
//! `dstport` → `dst_port`). So `log-status` → `log_status`, `az-id` → `az_id`,
//! `type` → `type`.
//!
//! Invariant: `Field::ALL[f as usize] == f` for every field, so a field's
//! discriminant indexes per-field tables (see `record::FlowRecord`).

/// What kind of value a field carries once decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// An unsigned integer no larger than `max`.
    Int {
        /// The largest accepted value (inclusive).
        max: u64,
    },
    /// An IPv4 or IPv6 address.
    Addr,
    /// Free text without spaces (IDs, ARNs, names).
    Str,
    /// `ACCEPT` or `REJECT`.
    Action,
    /// `OK`, `NODATA` or `SKIPDATA`.
    LogStatus,
    /// `ingress` or `egress`.
    FlowDirection,
    /// `IPv4`, `IPv6` or `EFA`.
    TrafficType,
    /// `wavelength`, `outpost` or `localzone`.
    SublocationType,
}

const U8: ValueType = ValueType::Int {
    max: u8::MAX as u64,
};
const U16: ValueType = ValueType::Int {
    max: u16::MAX as u64,
};
const U64: ValueType = ValueType::Int { max: u64::MAX };
const ADDR: ValueType = ValueType::Addr;
const STR: ValueType = ValueType::Str;

macro_rules! fields {
    ($( $(#[$doc:meta])* $variant:ident = ($aws:literal, $column:literal, $version:literal, $ty:expr) ),* $(,)?) => {
        /// A field AWS documents for VPC flow-log records, in AWS's table order
        /// (the version 11 fields of June 2026, tags and next hop, come last).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Field {
            $( $(#[$doc])* $variant ),*
        }

        impl Field {
            /// Every field, in declaration order (`ALL[f as usize] == f`).
            pub const ALL: &'static [Field] = &[ $(Field::$variant),* ];

            /// The name AWS uses in format strings and S3 header lines (`pkt-srcaddr`).
            pub const fn aws_name(self) -> &'static str {
                match self { $(Field::$variant => $aws),* }
            }

            /// trawl's column name: JSON key and SQL column (`pkt_src_addr`).
            pub const fn column(self) -> &'static str {
                match self { $(Field::$variant => $column),* }
            }

            /// The flow-log format version that introduced the field.
            pub const fn version(self) -> u8 {
                match self { $(Field::$variant => $version),* }
            }

            /// The type of value the field carries.
            pub const fn value_type(self) -> ValueType {
                match self { $(Field::$variant => $ty),* }
            }
        }
    };
}

fields! {
    /// Flow-log version (2 for the default format).
    Version = ("version", "version", 2, U8),
    /// AWS account that owns the interface (`unknown` for some AWS-managed ones).
    AccountId = ("account-id", "account_id", 2, STR),
    /// Network interface (ENI) the traffic was recorded at.
    InterfaceId = ("interface-id", "interface_id", 2, STR),
    /// Source address (for a NAT or transit gateway interface: the interface's own).
    SrcAddr = ("srcaddr", "src_addr", 2, ADDR),
    /// Destination address.
    DstAddr = ("dstaddr", "dst_addr", 2, ADDR),
    /// Source port.
    SrcPort = ("srcport", "src_port", 2, U16),
    /// Destination port.
    DstPort = ("dstport", "dst_port", 2, U16),
    /// IANA protocol number (6 TCP, 17 UDP, 1 ICMP).
    Protocol = ("protocol", "protocol", 2, U8),
    /// Packets in the aggregation interval.
    Packets = ("packets", "packets", 2, U64),
    /// Bytes in the aggregation interval.
    Bytes = ("bytes", "bytes", 2, U64),
    /// First packet of the interval, Unix seconds.
    Start = ("start", "start", 2, U64),
    /// Last packet of the interval, Unix seconds.
    End = ("end", "end", 2, U64),
    /// `ACCEPT` or `REJECT`.
    Action = ("action", "action", 2, ValueType::Action),
    /// `OK`, `NODATA` or `SKIPDATA`.
    LogStatus = ("log-status", "log_status", 2, ValueType::LogStatus),
    /// VPC of the interface.
    VpcId = ("vpc-id", "vpc_id", 3, STR),
    /// Subnet of the interface.
    SubnetId = ("subnet-id", "subnet_id", 3, STR),
    /// Instance the interface is attached to, when the account owns it.
    InstanceId = ("instance-id", "instance_id", 3, STR),
    /// Bitwise OR of the TCP flags seen (FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32).
    TcpFlags = ("tcp-flags", "tcp_flags", 3, U16),
    /// Traffic type: `IPv4`, `IPv6` or `EFA`.
    Type = ("type", "type", 3, ValueType::TrafficType),
    /// Packet-level source address (the original source behind a NAT or transit gateway).
    PktSrcAddr = ("pkt-srcaddr", "pkt_src_addr", 3, ADDR),
    /// Packet-level destination address.
    PktDstAddr = ("pkt-dstaddr", "pkt_dst_addr", 3, ADDR),
    /// Region of the interface.
    Region = ("region", "region", 4, STR),
    /// Availability Zone ID of the interface (`use1-az2`).
    AzId = ("az-id", "az_id", 4, STR),
    /// `wavelength`, `outpost` or `localzone`.
    SublocationType = ("sublocation-type", "sublocation_type", 4, ValueType::SublocationType),
    /// ID of the sublocation.
    SublocationId = ("sublocation-id", "sublocation_id", 4, STR),
    /// AWS service of `pkt-srcaddr`, when it belongs to one (`S3`, `EC2`, …).
    PktSrcAwsService = ("pkt-src-aws-service", "pkt_src_aws_service", 5, STR),
    /// AWS service of `pkt-dstaddr`.
    PktDstAwsService = ("pkt-dst-aws-service", "pkt_dst_aws_service", 5, STR),
    /// `ingress` or `egress`, relative to the interface.
    FlowDirection = ("flow-direction", "flow_direction", 5, ValueType::FlowDirection),
    /// Egress path: 1 same VPC, 2 internet or gateway endpoint, 3 virtual private gateway,
    /// 4 intra-region peering, 5 inter-region peering, 6 local gateway, 7 gateway endpoint
    /// (Nitro), 8 internet gateway (Nitro).
    TrafficPath = ("traffic-path", "traffic_path", 5, U8),
    /// ECS cluster ARN.
    EcsClusterArn = ("ecs-cluster-arn", "ecs_cluster_arn", 7, STR),
    /// ECS cluster name.
    EcsClusterName = ("ecs-cluster-name", "ecs_cluster_name", 7, STR),
    /// ECS container instance ARN.
    EcsContainerInstanceArn = ("ecs-container-instance-arn", "ecs_container_instance_arn", 7, STR),
    /// ECS container instance ID.
    EcsContainerInstanceId = ("ecs-container-instance-id", "ecs_container_instance_id", 7, STR),
    /// Docker ID of the first container of the task.
    EcsContainerId = ("ecs-container-id", "ecs_container_id", 7, STR),
    /// Docker ID of the second container of the task.
    EcsSecondContainerId = ("ecs-second-container-id", "ecs_second_container_id", 7, STR),
    /// ECS service name.
    EcsServiceName = ("ecs-service-name", "ecs_service_name", 7, STR),
    /// ECS task definition ARN.
    EcsTaskDefinitionArn = ("ecs-task-definition-arn", "ecs_task_definition_arn", 7, STR),
    /// ECS task ARN.
    EcsTaskArn = ("ecs-task-arn", "ecs_task_arn", 7, STR),
    /// ECS task ID.
    EcsTaskId = ("ecs-task-id", "ecs_task_id", 7, STR),
    /// Why traffic was rejected (`BPA`: VPC Block Public Access).
    RejectReason = ("reject-reason", "reject_reason", 8, STR),
    /// ID of the resource (for example a NAT gateway) the interface belongs to.
    ResourceId = ("resource-id", "resource_id", 9, STR),
    /// 0 cleartext, 1 Nitro-encrypted, 2 application TLS, 3 both.
    EncryptionStatus = ("encryption-status", "encryption_status", 10, U8),
    /// Type of the interface (`nat_gateway`, …).
    InterfaceType = ("interface-type", "interface_type", 11, STR),
    /// Value of the first instance tag key the flow log names, on the interface's instance.
    InstanceTag = ("instance-tag", "instance_tag", 11, STR),
    /// Value of the second instance tag key the flow log names.
    InstanceTag2 = ("instance-tag-2", "instance_tag_2", 11, STR),
    /// Value of the first network-interface tag key the flow log names.
    InterfaceTag = ("interface-tag", "interface_tag", 11, STR),
    /// Value of the second network-interface tag key the flow log names.
    InterfaceTag2 = ("interface-tag-2", "interface_tag_2", 11, STR),
    /// Value of the first Auto Scaling group tag key the flow log names, on the instance's group.
    AsgTag = ("asg-tag", "asg_tag", 11, STR),
    /// Value of the second Auto Scaling group tag key the flow log names.
    AsgTag2 = ("asg-tag-2", "asg_tag_2", 11, STR),
    /// Network interface (ENI) of the traffic's next hop.
    NextHopInterfaceId = ("next-hop-interface-id", "next_hop_interface_id", 11, STR),
    /// Subnet of the next hop's interface.
    NextHopSubnetId = ("next-hop-subnet-id", "next_hop_subnet_id", 11, STR),
    /// Availability Zone ID of the next hop's interface (`apse2-az3`).
    NextHopAzId = ("next-hop-az-id", "next_hop_az_id", 11, STR),
    /// VPC of the next hop's interface.
    NextHopVpcId = ("next-hop-vpc-id", "next_hop_vpc_id", 11, STR),
    /// Type of the next hop's interface (`network_load_balancer`, `regional_nat_gateway`, …).
    NextHopInterfaceType = ("next-hop-interface-type", "next_hop_interface_type", 11, STR),
}

impl Field {
    /// Number of known fields.
    pub const COUNT: usize = Field::ALL.len();

    /// Looks a field up by its AWS name (`pkt-srcaddr`) or column name (`pkt_src_addr`).
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL
            .iter()
            .copied()
            .find(|f| f.aws_name() == name || f.column() == name)
    }

    /// The fields of AWS's default format (version 2), in order.
    pub const DEFAULT_FORMAT: &'static [Field] = &[
        Field::Version,
        Field::AccountId,
        Field::InterfaceId,
        Field::SrcAddr,
        Field::DstAddr,
        Field::SrcPort,
        Field::DstPort,
        Field::Protocol,
        Field::Packets,
        Field::Bytes,
        Field::Start,
        Field::End,
        Field::Action,
        Field::LogStatus,
    ];
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.column())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_indexed_by_discriminant() {
        for (i, f) in Field::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "{f:?}");
        }
    }

    #[test]
    fn names_are_unique_and_follow_the_rule() {
        let mut seen = std::collections::HashSet::new();
        for f in Field::ALL {
            assert!(seen.insert(f.aws_name()), "{}", f.aws_name());
            assert!(seen.insert(f.column()) || f.column() == f.aws_name());
            let mechanical = f.aws_name().replace('-', "_");
            let split = mechanical
                .replace("srcaddr", "src_addr")
                .replace("dstaddr", "dst_addr")
                .replace("srcport", "src_port")
                .replace("dstport", "dst_port");
            assert_eq!(f.column(), split);
            assert_eq!(Field::from_name(f.aws_name()), Some(*f));
            assert_eq!(Field::from_name(f.column()), Some(*f));
        }
    }
}
