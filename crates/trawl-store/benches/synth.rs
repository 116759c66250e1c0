//! A synthetic day of attributed flows for the store's benches: `APPS`
//! applications spread over 3 regions × 3 AZs, each calling 8 dependencies;
//! callers are Zipf(1.0)-distributed (a few apps carry most traffic), 80% of
//! calls stay in the caller's AZ, 1% are rejected, half the records are the
//! ingress side. Deterministic for a seed.

#![allow(dead_code)]

use trawl_attrib::{Workload, WorkloadId, WorkloadTable};
use trawl_flowlog::sample::SplitMix64;
use trawl_flowlog::{Action, Field, FlowDirection, FlowRecord, LogStatus, Value};
use trawl_store::EnrichedFlow;

/// Applications in the estate.
pub const APPS: usize = 1000;
const DEPENDENCIES: usize = 8;
const PORTS: [u16; 6] = [443, 8080, 5432, 6379, 9092, 3306];

/// The estate and its random source.
pub struct Day {
    /// Every (app, AZ) workload.
    pub workloads: WorkloadTable,
    /// Workload of (app, az index).
    ids: Vec<[WorkloadId; 3]>,
    dependencies: Vec<[usize; DEPENDENCIES]>,
    zipf: Vec<f64>,
    rng: SplitMix64,
}

/// One generated flow with its owners.
pub struct Generated {
    /// The record.
    pub record: FlowRecord<'static>,
    /// Source owner.
    pub src: WorkloadId,
    /// Destination owner.
    pub dst: WorkloadId,
}

impl Generated {
    /// The flow as the store takes it.
    pub fn enriched(&self) -> EnrichedFlow<'_, 'static> {
        EnrichedFlow {
            record: &self.record,
            src: self.src,
            dst: self.dst,
        }
    }
}

impl Day {
    /// The estate for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mut workloads = WorkloadTable::default();
        let regions = ["us-east-1", "eu-west-1", "ap-southeast-2"];
        let ids = (0..APPS)
            .map(|app| {
                let region = regions[app % 3];
                [0, 1, 2].map(|az| {
                    let w = Workload {
                        app: Some(format!("app-{app:04}")),
                        cluster: Some(format!("app-{app:04}-prod")),
                        account: Some(format!("{:012}", 100_000_000_000u64 + (app % 40) as u64)),
                        region: Some(region.to_string()),
                        az: Some(format!("{region}-az{}", az + 1)),
                        kind: Some(if app % 3 == 0 { "pod" } else { "instance" }.to_string()),
                        labels: Default::default(),
                    };
                    workloads.intern(&w).expect("room for the estate")
                })
            })
            .collect();
        let mut cumulative = 0.0;
        let mut zipf: Vec<f64> = (1..=APPS)
            .map(|r| {
                cumulative += 1.0 / r as f64;
                cumulative
            })
            .collect();
        for c in &mut zipf {
            *c /= cumulative;
        }
        let dependencies = (0..APPS)
            .map(|_| [0; DEPENDENCIES].map(|_| rng.below(APPS as u64) as usize))
            .collect();
        Day {
            workloads,
            ids,
            dependencies,
            zipf,
            rng,
        }
    }

    fn zipf_app(&mut self) -> usize {
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        self.zipf.partition_point(|c| *c < u).min(APPS - 1)
    }

    /// One flow starting at `start`.
    pub fn flow(&mut self, start: u32) -> Generated {
        let src_app = self.zipf_app();
        let dst_app = self.dependencies[src_app][self.rng.below(DEPENDENCIES as u64) as usize];
        let src_az = self.rng.below(3) as usize;
        let dst_az = if self.rng.below(5) == 0 {
            (src_az + 1 + self.rng.below(2) as usize) % 3
        } else {
            src_az
        };
        let port = PORTS[dst_app % PORTS.len()];
        let bytes = 200 + self.rng.below(1_000_000);
        let mut r = FlowRecord::new();
        r.set(Field::Version, Value::Int(2));
        r.set(Field::AccountId, Value::Str("123456789012"));
        r.set(Field::InterfaceId, Value::Str("eni-0a1b2c3d4e5f60718"));
        r.set(
            Field::SrcAddr,
            Value::Addr([10, (src_app >> 8) as u8, src_app as u8, src_az as u8].into()),
        );
        r.set(
            Field::DstAddr,
            Value::Addr([10, (dst_app >> 8) as u8, dst_app as u8, dst_az as u8].into()),
        );
        r.set(Field::SrcPort, Value::Int(32768 + self.rng.below(28000)));
        r.set(Field::DstPort, Value::Int(port.into()));
        r.set(Field::Protocol, Value::Int(6));
        r.set(Field::Packets, Value::Int(bytes / 900 + 1));
        r.set(Field::Bytes, Value::Int(bytes));
        r.set(Field::Start, Value::Int(start.into()));
        r.set(Field::End, Value::Int(u64::from(start) + 60));
        let action = if self.rng.below(100) == 0 {
            Action::Reject
        } else {
            Action::Accept
        };
        r.set(Field::Action, Value::Action(action));
        r.set(Field::LogStatus, Value::LogStatus(LogStatus::Ok));
        let direction = if self.rng.below(2) == 0 {
            FlowDirection::Egress
        } else {
            FlowDirection::Ingress
        };
        r.set(Field::FlowDirection, Value::FlowDirection(direction));
        Generated {
            record: r,
            src: self.ids[src_app][src_az],
            dst: self.ids[dst_app][dst_az],
        }
    }
}
