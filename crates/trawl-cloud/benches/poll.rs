//! What one EC2 poll costs trawl once the APIs have answered, at 10,000
//! interfaces (5,000 instances, two private addresses each, some public):
//! the assign and interface events (`poll_events`), the dating of new
//! owners against the index (`dated_assigns`), and applying both to the
//! index — the first poll (every address new) and a steady one (nothing
//! changed). The API calls of such a poll are counted by the poller
//! (`trawl_cloud_api_calls_total`): 10 pages of DescribeNetworkInterfaces,
//! 5 of DescribeInstances.
//! Run: `cargo bench -p trawl-cloud --bench poll`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use trawl_attrib::{AttributionIndex, IndexConfig, Rule, Secs, Workload};
use trawl_cloud::{
    Dates, Instance, Inventory, NetworkInterface, PollOptions, TagKeys, Window, dated_assigns,
    poll_events,
};

const INTERFACES: u32 = 10_000;
const AT: Secs = 1_795_305_600;

fn inventory() -> Inventory {
    let address = |n: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
    let interfaces = (0..INTERFACES)
        .map(|i| NetworkInterface {
            id: format!("eni-{i:017x}"),
            interface_type: "interface".into(),
            description: "Primary network interface".into(),
            owner_id: Some("123456789012".into()),
            availability_zone: Some(format!("use1-az{}", i % 6 + 1)),
            instance_id: Some(format!("i-{:017x}", i / 2)),
            attached_at: Some(AT - 86_400),
            private_ips: vec![address(2 * i), address(2 * i + 1)],
            public_ips: if i % 10 == 0 {
                vec![IpAddr::V4(Ipv4Addr::from(0x3400_0000 + i))]
            } else {
                Vec::new()
            },
            ..NetworkInterface::default()
        })
        .collect();
    let instances = (0..INTERFACES / 2)
        .map(|i| Instance {
            id: format!("i-{i:017x}"),
            tags: BTreeMap::from([
                ("app".to_string(), format!("app-{}", i % 400)),
                (
                    "aws:autoscaling:groupName".to_string(),
                    format!("asg-{}", i % 400),
                ),
            ]),
            state: "running".into(),
        })
        .collect();
    Inventory {
        region: "us-east-1".into(),
        interfaces,
        instances,
        tasks: Vec::new(),
    }
}

fn declared(index: &AttributionIndex, ip: IpAddr, t: Secs) -> Option<Workload> {
    let answer = index.owner_at(ip, t);
    (answer.rule == Rule::Declared)
        .then(|| index.workload(answer.owner).cloned())
        .flatten()
}

fn poll(index: &mut AttributionIndex, inventory: &Inventory, at: Secs, previous_at: Option<Secs>) {
    let keys = TagKeys::default();
    let options = PollOptions {
        keys: &keys,
        leave_pod_addresses: false,
    };
    let events = poll_events(inventory, at, options).events(at);
    let window = Window {
        previous_at,
        at,
        backdate_secs_max: 120,
    };
    let dates = Dates::of(inventory);
    let dated = dated_assigns(&events, &dates, window, |ip, t| declared(index, ip, t));
    for event in dated.iter().chain(&events) {
        index.apply(event).expect("applied");
    }
}

fn bench(c: &mut Criterion) {
    let inventory = inventory();
    let mut group = c.benchmark_group("ec2_poll_10k_interfaces");
    group.sample_size(10);
    group.throughput(Throughput::Elements(u64::from(INTERFACES)));
    let keys = TagKeys::default();
    group.bench_function("poll_events", |b| {
        b.iter(|| {
            let options = PollOptions {
                keys: &keys,
                leave_pod_addresses: false,
            };
            poll_events(&inventory, AT, options).events(AT)
        });
    });
    group.bench_function("first_poll_applied", |b| {
        b.iter_batched(
            || AttributionIndex::new(IndexConfig::default()),
            |mut index| poll(&mut index, &inventory, AT, None),
            BatchSize::LargeInput,
        );
    });
    let mut warm = AttributionIndex::new(IndexConfig::default());
    poll(&mut warm, &inventory, AT, None);
    group.bench_function("steady_poll_applied", |b| {
        b.iter_batched(
            || warm.clone(),
            |mut index| poll(&mut index, &inventory, AT + 60, Some(AT)),
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
