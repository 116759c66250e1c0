//! Synthetic attributed flows for the store's tests, and a naive oracle.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use trawl_attrib::{Workload, WorkloadId, WorkloadTable};
use trawl_flowlog::{Action, Field, FlowDirection, FlowRecord, LogStatus, Value};
use trawl_store::{EnrichedFlow, Store, service_port};

/// Apps, regions and AZs of the synthetic estate.
pub const APPS: [&str; 5] = ["api", "db", "cache", "auth", "web"];
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

/// One synthetic flow: what the test decides, before it becomes a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub start: u32,
    /// Index into the estate's workloads; `usize::MAX` = no owner.
    pub src: usize,
    pub dst: usize,
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    pub bytes: u64,
    pub packets: u64,
    pub reject: bool,
    pub egress: bool,
}

/// Workloads of the estate, interned.
pub struct Estate {
    pub table: WorkloadTable,
    pub ids: Vec<WorkloadId>,
    pub workloads: Vec<Workload>,
}

impl Estate {
    pub fn new(count: usize) -> Self {
        let mut table = WorkloadTable::default();
        let mut ids = Vec::new();
        let mut workloads = Vec::new();
        for i in 0..count {
            let region = REGIONS[i % 2];
            let w = Workload {
                app: Some(APPS[i % APPS.len()].to_string()),
                cluster: Some(format!("{}-c{}", APPS[i % APPS.len()], i % 3)),
                account: Some("123456789012".into()),
                region: Some(region.into()),
                az: Some(format!("{region}-az{}", i % 3)),
                kind: Some(if i % 4 == 0 { "pod" } else { "instance" }.into()),
                labels: Default::default(),
            };
            ids.push(table.intern(&w).expect("room"));
            workloads.push(w);
        }
        Estate {
            table,
            ids,
            workloads,
        }
    }

    pub fn id(&self, index: usize) -> WorkloadId {
        self.ids
            .get(index)
            .copied()
            .unwrap_or(trawl_attrib::NO_OWNER)
    }

    pub fn app(&self, index: usize) -> Option<&str> {
        self.workloads.get(index).and_then(|w| w.app.as_deref())
    }

    pub fn az(&self, index: usize) -> Option<&str> {
        self.workloads.get(index).and_then(|w| w.az.as_deref())
    }
}

/// The decoded record of a synthetic flow.
pub fn record(flow: &Flow) -> FlowRecord<'static> {
    let mut r = FlowRecord::new();
    r.set(Field::Version, Value::Int(5));
    r.set(Field::AccountId, Value::Str("123456789012"));
    r.set(Field::InterfaceId, Value::Str("eni-0123456789abcdef0"));
    r.set(
        Field::SrcAddr,
        Value::Addr([10, 0, 0, (flow.src % 250) as u8].into()),
    );
    r.set(
        Field::DstAddr,
        Value::Addr([10, 0, 1, (flow.dst % 250) as u8].into()),
    );
    r.set(Field::SrcPort, Value::Int(flow.src_port.into()));
    r.set(Field::DstPort, Value::Int(flow.dst_port.into()));
    r.set(Field::Protocol, Value::Int(flow.protocol.into()));
    r.set(Field::Packets, Value::Int(flow.packets));
    r.set(Field::Bytes, Value::Int(flow.bytes));
    r.set(Field::Start, Value::Int(flow.start.into()));
    r.set(Field::End, Value::Int(u64::from(flow.start) + 59));
    let action = if flow.reject {
        Action::Reject
    } else {
        Action::Accept
    };
    r.set(Field::Action, Value::Action(action));
    r.set(Field::LogStatus, Value::LogStatus(LogStatus::Ok));
    let direction = if flow.egress {
        FlowDirection::Egress
    } else {
        FlowDirection::Ingress
    };
    r.set(Field::FlowDirection, Value::FlowDirection(direction));
    r
}

/// Adds flows to the store in one batch with one position.
pub fn add(store: &mut Store, estate: &Estate, flows: &[Flow], position: Option<(&str, &str)>) {
    add_to(store, None, estate, flows, position);
}

/// Adds `flows` through a shared reference, as concurrent writers do:
/// into shard `shard`, or the first one free.
pub fn add_to(
    store: &Store,
    shard: Option<usize>,
    estate: &Estate,
    flows: &[Flow],
    position: Option<(&str, &str)>,
) {
    let records: Vec<_> = flows.iter().map(record).collect();
    let enriched: Vec<_> = flows
        .iter()
        .zip(&records)
        .map(|(f, r)| EnrichedFlow {
            record: r,
            src: estate.id(f.src),
            dst: estate.id(f.dst),
        })
        .collect();
    let positions: Vec<(&str, &str)> = position.into_iter().collect();
    match shard {
        Some(shard) => store.add_batch_to_shard(shard, &enriched, &estate.table, &positions),
        None => store.add_batch(&enriched, &estate.table, &positions),
    }
    .expect("add");
}

/// Key of the oracle's 1-minute rollup: minute, src app, dst app, service
/// port, action, cross-AZ.
pub type OracleKey = (
    i64,
    Option<String>,
    Option<String>,
    Option<i32>,
    String,
    Option<bool>,
);

/// Sums (bytes, packets, flows) by [`OracleKey`], from a plain list.
pub fn oracle(estate: &Estate, flows: &[Flow], grain: u32) -> BTreeMap<OracleKey, (u64, u64, u64)> {
    let mut sums = BTreeMap::new();
    for f in flows {
        let cross_az = match (estate.az(f.src), estate.az(f.dst)) {
            (Some(a), Some(b)) => Some(a != b),
            _ => None,
        };
        let key = (
            i64::from(f.start - f.start % grain),
            estate.app(f.src).map(str::to_string),
            estate.app(f.dst).map(str::to_string),
            service_port(Some(f.src_port), Some(f.dst_port)).map(i32::from),
            if f.reject { "REJECT" } else { "ACCEPT" }.to_string(),
            cross_az,
        );
        let entry: &mut (u64, u64, u64) = sums.entry(key).or_default();
        entry.0 += f.bytes;
        entry.1 += f.packets;
        entry.2 += 1;
    }
    sums
}

/// The same sums as the store answers them, through SQL.
pub fn query_sums(
    engine: &trawl_store::SqlEngine,
    table: &str,
) -> BTreeMap<OracleKey, (u64, u64, u64)> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int32Type, Int64Type, UInt64Type};
    let sql = format!(
        "SELECT CAST(time AS BIGINT) AS t, CAST(src_app AS VARCHAR) AS s, CAST(dst_app AS VARCHAR) AS d, \
         service_port, CAST(action AS VARCHAR) AS a, cross_az, \
         CAST(sum(bytes) AS BIGINT UNSIGNED) AS b, CAST(sum(packets) AS BIGINT UNSIGNED) AS p, \
         CAST(sum(flows) AS BIGINT UNSIGNED) AS f \
         FROM {table} GROUP BY 1, 2, 3, 4, 5, 6"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let result = runtime.block_on(engine.query(&sql)).expect("query");
    let mut sums = BTreeMap::new();
    for batch in &result.batches {
        let t = batch.column(0).as_primitive::<Int64Type>();
        let utf8 = |i: usize| {
            arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8).expect("cast")
        };
        let (s, d, a) = (utf8(1), utf8(2), utf8(4));
        let (s, d, a) = (
            s.as_string::<i32>(),
            d.as_string::<i32>(),
            a.as_string::<i32>(),
        );
        let port = batch.column(3).as_primitive::<Int32Type>();
        let cross = batch.column(5).as_boolean();
        let m = |i: usize| batch.column(i).as_primitive::<UInt64Type>().clone();
        let (b, p, f) = (m(6), m(7), m(8));
        for row in 0..batch.num_rows() {
            let text =
                |c: &arrow::array::StringArray| (!c.is_null(row)).then(|| c.value(row).to_string());
            let key = (
                t.value(row),
                text(s),
                text(d),
                (!port.is_null(row)).then(|| port.value(row)),
                a.value(row).to_string(),
                (!cross.is_null(row)).then(|| cross.value(row)),
            );
            let previous = sums.insert(key, (b.value(row), p.value(row), f.value(row)));
            assert!(previous.is_none(), "GROUP BY returned a key twice");
        }
    }
    sums
}

/// `count` flows of 9 sources and 11 destinations spread over
/// `span_secs` from `start`; `seed` shifts the mix.
pub fn spread_flows(count: usize, start: u32, span_secs: u32, seed: usize) -> Vec<Flow> {
    (0..count)
        .map(|i| {
            let n = (i + seed * 7) as u32;
            Flow {
                start: start + (n * 7919) % span_secs,
                src: (i + seed) % 9,
                dst: (i * 3 + 1) % 11,
                src_port: 40_000 + (i % 1000) as u16,
                dst_port: if i % 3 == 0 { 443 } else { 5432 },
                protocol: 6,
                bytes: 100 + (i as u64 * 37) % 5000,
                packets: 1 + i as u64 % 7,
                reject: i % 13 == 0,
                egress: i % 2 == 0,
            }
        })
        .collect()
}

/// An estate whose workloads have long names of their own: a dictionary
/// of a few MB, shared by every text column of every batch of a seal.
pub fn wordy_estate(count: usize) -> Estate {
    let mut table = trawl_attrib::WorkloadTable::default();
    let mut ids = Vec::new();
    let mut workloads = Vec::new();
    let long = |what: &str, i: usize| Some(format!("{what}-{i:06}-{}", "x".repeat(200)));
    for i in 0..count {
        let w = trawl_attrib::Workload {
            app: long("app", i),
            cluster: long("cluster", i),
            account: long("account", i),
            region: long("region", i),
            az: long("az", i),
            kind: long("kind", i),
            labels: Default::default(),
        };
        ids.push(table.intern(&w).unwrap());
        workloads.push(w);
    }
    Estate {
        table,
        ids,
        workloads,
    }
}

/// The Python of the tests' venv (`.ci/test-deps`; `TRAWL_TEST_VENV`
/// overrides), which has DuckDB.
pub fn test_python() -> std::path::PathBuf {
    let venv = std::env::var_os("TRAWL_TEST_VENV").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-deps/venv"),
        std::path::PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{}: missing; run .ci/test-deps",
        python.display()
    );
    python
}

/// Sum (`None` when every value is null, as SQL has it) and non-null
/// count of integer column `name` of `batch`, whatever its integer type
/// (`u64::MAX` included: summed as `i128`).
pub fn int_sum_and_count(batch: &arrow::array::RecordBatch, name: &str) -> (Option<i128>, i128) {
    use arrow::array::{Array, AsArray};
    let column = batch.column_by_name(name).unwrap();
    let wide =
        arrow::compute::cast(column, &arrow::datatypes::DataType::Decimal128(38, 0)).unwrap();
    let values = wide.as_primitive::<arrow::datatypes::Decimal128Type>();
    let count = (values.len() - values.null_count()) as i128;
    let sum = (count > 0).then(|| values.iter().flatten().sum());
    (sum, count)
}

/// The footer of segment file `path`, with its page indexes.
pub fn footer(path: &std::path::Path) -> parquet::file::metadata::ParquetMetaData {
    let file = std::fs::File::open(path).unwrap();
    parquet::file::metadata::ParquetMetaDataReader::new()
        .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required)
        .parse_and_finish(&file)
        .unwrap()
}

/// The bytes of every column chunk of `path` but `time`'s.
pub fn column_chunks(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let file = std::fs::File::open(path).unwrap();
    let metadata = footer(path);
    let mut out = Vec::new();
    for group in metadata.row_groups() {
        for column in group.columns() {
            let name = column.column_path().string();
            if name == "time" {
                continue;
            }
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            let mut bytes = vec![0; usize::try_from(column.compressed_size()).unwrap()];
            std::os::unix::fs::FileExt::read_exact_at(
                &file,
                &mut bytes,
                u64::try_from(start).unwrap(),
            )
            .unwrap();
            out.push((name, bytes));
        }
    }
    out
}

/// The standard output of `script` run by the tests' Python with `args`
/// (`sys.argv[1:]`); a failed run fails the test with its standard error.
pub fn python_stdout<S: AsRef<std::ffi::OsStr>>(script: &str, args: &[S]) -> Vec<u8> {
    let output = std::process::Command::new(test_python())
        .args(["-c", script])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The rows of `batches` as text, in order (each value as Arrow displays it).
pub fn text_rows(batches: &[arrow::array::RecordBatch]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| arrow::util::display::array_value_to_string(c, row).unwrap())
                    .collect(),
            );
        }
    }
    rows
}

/// `result` as an Arrow IPC stream, as the server sends it (trawl-server
/// `encode.rs`: a `StreamWriter` over `QueryResult::schema`, then the
/// batches).
pub fn arrow_ipc(result: &trawl_store::QueryResult) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, &result.schema).unwrap();
    for batch in &result.batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();
    drop(writer);
    out
}
