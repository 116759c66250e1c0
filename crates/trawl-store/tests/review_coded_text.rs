//! Review of c4dd37a (coded text fields in `flows`): SQL over coded
//! columns held open (frozen and active parts), sealed, mixed, compacted,
//! and read from segments written before the change (plain Utf8).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::common::{self, Estate, Flow};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use trawl_flowlog::{Field, Value};
use trawl_store::{EnrichedFlow, Manifest, SqlEngine, Store, StoreConfig};

const HOUR: u32 = 3600;
const T0: u32 = 1_790_000_000 - 1_790_000_000 % 86_400;

const VPCS: [&str; 6] = ["vpc-1", "vpc-10", "vpc-2", "vpc-3", "vpc-4", "vpc-33"];
const SUBNETS: [&str; 4] = ["vpc-1", "subnet-b", "subnet-c", "vpc-3"];

/// The vpc_id of row `i` of a batch (`None`: the field is absent).
fn vpc_of(i: usize, nulls_first: usize) -> Option<&'static str> {
    if i < nulls_first || i % 17 == 5 {
        None
    } else {
        Some(VPCS[(i / 3 + i % 5) % VPCS.len()])
    }
}

fn subnet_of(i: usize) -> Option<&'static str> {
    (!i.is_multiple_of(11)).then(|| SUBNETS[(i * 7) % SUBNETS.len()])
}

/// One row as the oracle sees it.
#[derive(Debug, Clone)]
struct Row {
    vpc: Option<&'static str>,
    subnet: Option<&'static str>,
    reject: bool,
}

fn flow(i: usize, start: u32) -> Flow {
    Flow {
        start,
        src: i % 9,
        dst: (i * 3 + 1) % 11,
        src_port: 40_000 + (i % 1000) as u16,
        dst_port: if i.is_multiple_of(3) { 443 } else { 5432 },
        protocol: 6,
        bytes: 100 + i as u64,
        packets: 1,
        reject: i.is_multiple_of(13),
        egress: i.is_multiple_of(2),
    }
}

/// Adds `count` rows in hour `hour` (after T0), the first `nulls_first`
/// without vpc_id; returns them for the oracle.
fn add_rows(
    store: &Store,
    estate: &Estate,
    count: usize,
    hour: u32,
    nulls_first: usize,
) -> Vec<Row> {
    let flows: Vec<Flow> = (0..count)
        .map(|i| flow(i, T0 + hour * HOUR + (i as u32 * 7919) % HOUR))
        .collect();
    let mut rows = Vec::new();
    let records: Vec<_> = flows
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut r = common::record(f);
            let vpc = vpc_of(i, nulls_first);
            let subnet = subnet_of(i);
            if let Some(v) = vpc {
                r.set(Field::VpcId, Value::Str(v));
            }
            if let Some(s) = subnet {
                r.set(Field::SubnetId, Value::Str(s));
            }
            rows.push(Row {
                vpc,
                subnet,
                reject: f.reject,
            });
            r
        })
        .collect();
    let enriched: Vec<_> = flows
        .iter()
        .zip(&records)
        .map(|(f, r)| EnrichedFlow {
            record: r,
            src: estate.id(f.src),
            dst: estate.id(f.dst),
        })
        .collect();
    store
        .add_batch_to_shard(0, &enriched, &estate.table, &[])
        .unwrap();
    rows
}

fn config(dir: &std::path::Path) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    config.open_shards = 1;
    config.wall_clock_secs = Some(T0 + 2 * HOUR);
    config
}

fn open(dir: &std::path::Path) -> (Arc<RwLock<Store>>, SqlEngine) {
    let store = Arc::new(RwLock::new(Store::open(config(dir)).unwrap()));
    let engine = SqlEngine::new(store.clone(), None).unwrap();
    (store, engine)
}

fn run(engine: &SqlEngine, sql: &str) -> Result<Vec<RecordBatch>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(engine.query(sql))
        .map(|r| r.batches)
        .map_err(|e| e.to_string())
}

/// The answer's rows as text (every column cast to Utf8), sorted.
fn rows_of(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
    let mut out = Vec::new();
    for batch in batches {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| arrow::compute::cast(c, &DataType::Utf8).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| {
                        let c = c.as_string::<i32>();
                        (!c.is_null(row)).then(|| c.value(row).to_string())
                    })
                    .collect(),
            );
        }
    }
    out.sort();
    out
}

fn count(engine: &SqlEngine, where_sql: &str) -> Result<i64, String> {
    let batches = run(
        engine,
        &format!("SELECT count(*) FROM flows WHERE {where_sql}"),
    )?;
    Ok(batches
        .iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| b.column(0).as_primitive::<Int64Type>().value(0))
        .sum())
}

/// A predicate's oracle over the rows.
type RowPredicate = Box<dyn Fn(&Row) -> bool>;

/// Every query this review checks, with the oracle's answer: `Err` lines
/// name each disagreement.
fn check_queries(engine: &SqlEngine, rows: &[Row], stage: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    let predicates: Vec<(&str, RowPredicate)> = vec![
        ("vpc_id = 'vpc-3'", Box::new(|r| r.vpc == Some("vpc-3"))),
        (
            "vpc_id <> 'vpc-3'",
            Box::new(|r| r.vpc.is_some_and(|v| v != "vpc-3")),
        ),
        (
            "vpc_id LIKE 'vpc-3%'",
            Box::new(|r| r.vpc.is_some_and(|v| v.starts_with("vpc-3"))),
        ),
        (
            "vpc_id NOT LIKE 'vpc-1%'",
            Box::new(|r| r.vpc.is_some_and(|v| !v.starts_with("vpc-1"))),
        ),
        (
            "vpc_id IN ('vpc-1', 'vpc-4')",
            Box::new(|r| matches!(r.vpc, Some("vpc-1" | "vpc-4"))),
        ),
        (
            "vpc_id NOT IN ('vpc-1', 'vpc-4')",
            Box::new(|r| r.vpc.is_some_and(|v| v != "vpc-1" && v != "vpc-4")),
        ),
        ("vpc_id IS NULL", Box::new(|r| r.vpc.is_none())),
        (
            "vpc_id > 'vpc-2'",
            Box::new(|r| r.vpc.is_some_and(|v| v > "vpc-2")),
        ),
        (
            "vpc_id BETWEEN 'vpc-10' AND 'vpc-3'",
            Box::new(|r| r.vpc.is_some_and(|v| ("vpc-10"..="vpc-3").contains(&v))),
        ),
        (
            "upper(vpc_id) = 'VPC-4'",
            Box::new(|r| r.vpc == Some("vpc-4")),
        ),
        (
            "length(vpc_id) = 6",
            Box::new(|r| r.vpc.is_some_and(|v| v.len() == 6)),
        ),
        (
            "vpc_id = subnet_id",
            Box::new(|r| r.vpc.is_some() && r.vpc == r.subnet),
        ),
        (
            "coalesce(vpc_id, 'none') = 'none'",
            Box::new(|r| r.vpc.is_none()),
        ),
        ("vpc_id = 'nowhere'", Box::new(|_| false)),
        (
            "action = 'REJECT' AND vpc_id = 'vpc-2'",
            Box::new(|r| r.reject && r.vpc == Some("vpc-2")),
        ),
        ("sublocation_id IS NULL", Box::new(|_| true)),
        ("sublocation_id = 'x'", Box::new(|_| false)),
    ];
    for (sql, keep) in &predicates {
        let expected = rows.iter().filter(|r| keep(r)).count() as i64;
        match count(engine, sql) {
            Ok(n) if n == expected => {}
            Ok(n) => wrong.push(format!(
                "{stage}: WHERE {sql}: {n} rows, expected {expected}"
            )),
            Err(e) => wrong.push(format!("{stage}: WHERE {sql}: failed: {e}")),
        }
    }
    // GROUP BY the coded column.
    let mut by_vpc: BTreeMap<Option<String>, i64> = BTreeMap::new();
    for r in rows {
        *by_vpc.entry(r.vpc.map(str::to_string)).or_default() += 1;
    }
    let mut expected: Vec<Vec<Option<String>>> = by_vpc
        .iter()
        .map(|(v, n)| vec![v.clone(), Some(n.to_string())])
        .collect();
    expected.sort();
    match run(engine, "SELECT vpc_id, count(*) FROM flows GROUP BY vpc_id") {
        Ok(b) if rows_of(&b) == expected => {}
        Ok(b) => wrong.push(format!(
            "{stage}: GROUP BY vpc_id: {:?}, expected {expected:?}",
            rows_of(&b)
        )),
        Err(e) => wrong.push(format!("{stage}: GROUP BY vpc_id failed: {e}")),
    }
    let distinct = by_vpc.keys().filter(|k| k.is_some()).count();
    let min = by_vpc.keys().flatten().min().cloned();
    let max = by_vpc.keys().flatten().max().cloned();
    let expected = vec![vec![Some(distinct.to_string()), min, max]];
    match run(
        engine,
        "SELECT count(DISTINCT vpc_id), min(vpc_id), max(vpc_id) FROM flows",
    ) {
        Ok(b) if rows_of(&b) == expected => {}
        Ok(b) => wrong.push(format!(
            "{stage}: distinct/min/max: {:?}, expected {expected:?}",
            rows_of(&b)
        )),
        Err(e) => wrong.push(format!("{stage}: distinct/min/max failed: {e}")),
    }
    // ORDER BY the coded column.
    let mut sorted: Vec<&str> = rows.iter().filter_map(|r| r.vpc).collect();
    sorted.sort_unstable();
    let expected: Vec<Vec<Option<String>>> = sorted[..5]
        .iter()
        .map(|v| vec![Some(v.to_string())])
        .collect();
    match run(
        engine,
        "SELECT vpc_id FROM flows WHERE vpc_id IS NOT NULL ORDER BY vpc_id LIMIT 5",
    ) {
        Ok(b) if rows_of(&b) == expected => {}
        Ok(b) => wrong.push(format!("{stage}: ORDER BY: {:?}", rows_of(&b))),
        Err(e) => wrong.push(format!("{stage}: ORDER BY failed: {e}")),
    }
    // A join on the coded column.
    let expected = rows.iter().filter(|r| r.vpc == Some("vpc-33")).count();
    match run(
        engine,
        "SELECT count(*) FROM flows f JOIN (SELECT 'vpc-33' AS v) k ON f.vpc_id = k.v",
    ) {
        Ok(b) if rows_of(&b) == vec![vec![Some(expected.to_string())]] => {}
        Ok(b) => wrong.push(format!(
            "{stage}: JOIN: {:?}, expected {expected}",
            rows_of(&b)
        )),
        Err(e) => wrong.push(format!("{stage}: JOIN failed: {e}")),
    }
    wrong
}

/// Open (two parts: frozen + active), sealed, open + sealed, compacted,
/// reopened: the same answers as the oracle's.
#[test]
fn fine_sql_over_coded_columns_open_sealed_mixed_and_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let (store, engine) = open(dir.path());
    let part = trawl_store::detail::PART_ROWS;
    let mut rows = add_rows(&store.read().unwrap(), &estate, part + 3000, 0, part + 10);
    let mut wrong = check_queries(&engine, &rows, "open");
    store.write().unwrap().seal().unwrap();
    wrong.extend(check_queries(&engine, &rows, "sealed"));
    rows.extend(add_rows(&store.read().unwrap(), &estate, 5000, 0, 100));
    wrong.extend(check_queries(&engine, &rows, "sealed + open"));
    store.write().unwrap().seal().unwrap();
    wrong.extend(check_queries(&engine, &rows, "two segments"));
    drop((store, engine));
    let mut config = config(dir.path());
    config.segments_per_chunk_max = 1;
    let store = Arc::new(RwLock::new(Store::open(config).unwrap()));
    let compacted = store.write().unwrap().maintain().unwrap();
    assert!(compacted >= 1, "the two flows segments were compacted");
    let engine = SqlEngine::new(store.clone(), None).unwrap();
    wrong.extend(check_queries(&engine, &rows, "compacted"));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The flows segments of `dir` rewritten as a version before c4dd37a
/// wrote them: every dictionary column but the enrichment ones as plain
/// Utf8 (`statistics`: as versions before 0dfb703 did, with page
/// statistics on every column); the manifest's sizes updated.
fn rewrite_flows_segments_as_before(dir: &std::path::Path, statistics: bool) {
    let manifest_path = dir.join("MANIFEST");
    let mut manifest = Manifest::load(dir).unwrap();
    let coded: Vec<String> = Field::ALL
        .iter()
        .filter(|f| {
            matches!(
                trawl_store::schema::field_column(**f),
                trawl_store::schema::FieldColumn::Coded
            )
        })
        .map(|f| f.column().to_string())
        .collect();
    for segment in manifest.segments.iter_mut().filter(|s| s.table == "flows") {
        let path = dir.join(&segment.file);
        let file = std::fs::File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        let schema = batches[0].schema();
        let fields: Vec<arrow::datatypes::Field> = schema
            .fields()
            .iter()
            .map(|f| {
                if coded.contains(f.name()) {
                    arrow::datatypes::Field::new(f.name(), DataType::Utf8, true)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        let old = Arc::new(arrow::datatypes::Schema::new(fields));
        let mut props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY);
        if !statistics {
            props = props
                .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
                .set_column_statistics_enabled(
                    parquet::schema::types::ColumnPath::from("time"),
                    parquet::file::properties::EnabledStatistics::Page,
                );
        }
        let out = std::fs::File::create(&path).unwrap();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(out, old.clone(), Some(props.build())).unwrap();
        for batch in &batches {
            let columns = batch
                .columns()
                .iter()
                .zip(old.fields())
                .map(|(c, f)| arrow::compute::cast(c, f.data_type()).unwrap())
                .collect();
            writer
                .write(&RecordBatch::try_new(old.clone(), columns).unwrap())
                .unwrap();
        }
        writer.close().unwrap();
        segment.bytes = std::fs::metadata(&path).unwrap().len();
    }
    manifest.write_pending(dir).unwrap();
    Manifest::publish_pending(dir).unwrap();
    assert!(manifest_path.exists());
}

fn old_segments_then_new_rows(statistics: bool) {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let mut rows;
    {
        let (store, _engine) = open(dir.path());
        rows = add_rows(&store.read().unwrap(), &estate, 3000, 0, 50);
        store.write().unwrap().seal().unwrap();
    }
    rewrite_flows_segments_as_before(dir.path(), statistics);
    let (store, engine) = open(dir.path());
    let mut wrong = check_queries(&engine, &rows, "old segment");
    rows.extend(add_rows(&store.read().unwrap(), &estate, 2000, 0, 0));
    wrong.extend(check_queries(&engine, &rows, "old segment + open"));
    store.write().unwrap().seal().unwrap();
    wrong.extend(check_queries(&engine, &rows, "old + new segment"));
    drop((store, engine));
    let mut config = config(dir.path());
    config.segments_per_chunk_max = 1;
    let store = Arc::new(RwLock::new(Store::open(config).unwrap()));
    let compacted = store.write().unwrap().maintain();
    match compacted {
        Ok(n) if n >= 1 => {}
        other => wrong.push(format!("compaction of old + new: {other:?}")),
    }
    let engine = SqlEngine::new(store.clone(), None).unwrap();
    wrong.extend(check_queries(&engine, &rows, "compacted old + new"));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A data dir written before c4dd37a (flows text as Utf8, no statistics):
/// queried alone, with open rows, with new segments, then compacted.
#[test]
fn fine_old_utf8_segments_mixed_with_coded_ones() {
    old_segments_then_new_rows(false);
}

/// The same with segments of versions before 0dfb703 (statistics on
/// every column: DataFusion prunes with them).
#[test]
fn fine_old_utf8_segments_with_statistics_mixed_with_coded_ones() {
    old_segments_then_new_rows(true);
}

/// Answers with coded columns from several parts (each its own
/// dictionary), open and sealed, encode as the server encodes them (JSON
/// rows, CSV, Arrow IPC stream) to what the same rows as plain text give.
#[test]
fn fine_answers_with_coded_columns_encode_like_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let (store, engine) = open(dir.path());
    let part = trawl_store::detail::PART_ROWS;
    add_rows(&store.read().unwrap(), &estate, part + 100, 0, 3);
    store.write().unwrap().seal().unwrap();
    add_rows(&store.read().unwrap(), &estate, 500, 0, 7);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let result =
        runtime
            .block_on(engine.query(
                "SELECT * FROM flows WHERE bytes < 400 OR bytes > 65600 ORDER BY bytes, time",
            ))
            .unwrap();
    let plain_schema = Arc::new(arrow::datatypes::Schema::new(
        result
            .schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Dictionary(..) => {
                    arrow::datatypes::Field::new(f.name(), DataType::Utf8, true)
                }
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ));
    let plain: Vec<RecordBatch> = result
        .batches
        .iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(plain_schema.fields())
                .map(|(c, f)| arrow::compute::cast(c, f.data_type()).unwrap())
                .collect();
            RecordBatch::try_new(plain_schema.clone(), columns).unwrap()
        })
        .collect();
    assert!(
        result
            .batches
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>()
            > 500
    );
    let json = |batches: &[RecordBatch]| {
        let mut out = Vec::new();
        let mut w = arrow::json::writer::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut out);
        w.write_batches(&batches.iter().collect::<Vec<_>>())
            .unwrap();
        w.finish().unwrap();
        drop(w);
        out
    };
    assert_eq!(json(&result.batches), json(&plain), "JSON");
    let csv = |batches: &[RecordBatch]| {
        let mut out = Vec::new();
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        for b in batches {
            w.write(b).unwrap();
        }
        drop(w);
        out
    };
    assert_eq!(csv(&result.batches), csv(&plain), "CSV");
    let ipc = common::arrow_ipc(&result);
    let read: Vec<RecordBatch> =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None)
            .unwrap()
            .map(Result::unwrap)
            .collect();
    assert_eq!(json(&read), json(&plain), "IPC round trip");
}

/// A coded column of distinct long values (ECS task ARNs): a part's
/// dictionary is as long as its rows, a row group's passes the 1 MiB
/// dictionary page limit (the Arrow writer writes it, falling back to
/// plain pages). Equality, distinct counts and compaction still agree.
#[test]
fn fine_high_cardinality_coded_column_past_the_dictionary_page_limit() {
    let dir = tempfile::tempdir().unwrap();
    let estate = Estate::new(10);
    let (store, engine) = open(dir.path());
    let arn = |i: usize| {
        format!(
            "arn:aws:ecs:us-east-1:123456789012:task/cluster-{}/{i:032x}",
            i % 3
        )
    };
    let add = |store: &Store, from: usize, count: usize| {
        let arns: Vec<String> = (from..from + count).map(arn).collect();
        let flows: Vec<Flow> = (from..from + count)
            .map(|i| flow(i, T0 + (i as u32 * 7919) % HOUR))
            .collect();
        let records: Vec<_> = flows
            .iter()
            .zip(&arns)
            .map(|(f, a)| {
                let mut r = common::record(f);
                r.set(Field::EcsTaskArn, Value::Str(a));
                r
            })
            .collect();
        let enriched: Vec<_> = flows
            .iter()
            .zip(&records)
            .map(|(f, r)| EnrichedFlow {
                record: r,
                src: estate.id(f.src),
                dst: estate.id(f.dst),
            })
            .collect();
        store
            .add_batch_to_shard(0, &enriched, &estate.table, &[])
            .unwrap();
    };
    add(&store.read().unwrap(), 0, 40_000);
    store.write().unwrap().seal().unwrap();
    add(&store.read().unwrap(), 40_000, 30_000);
    let mut wrong = Vec::new();
    let mut check = |stage: &str| {
        for (sql, expected) in [
            (
                format!(
                    "SELECT count(*) FROM flows WHERE ecs_task_arn = '{}'",
                    arn(12_345)
                ),
                "1",
            ),
            (
                format!(
                    "SELECT count(*) FROM flows WHERE ecs_task_arn = '{}'",
                    arn(55_555)
                ),
                "1",
            ),
            (
                "SELECT count(DISTINCT ecs_task_arn) FROM flows".to_string(),
                "70000",
            ),
            (
                "SELECT count(*) FROM flows WHERE ecs_task_arn LIKE '%cluster-1/%'".to_string(),
                "23333",
            ),
        ] {
            match run(&engine, &sql) {
                Ok(b) if rows_of(&b) == vec![vec![Some(expected.to_string())]] => {}
                other => wrong.push(format!("{stage}: {sql}: {:?}", other.map(|b| rows_of(&b)))),
            }
        }
    };
    check("sealed + open");
    store.write().unwrap().seal().unwrap();
    check("two segments");
    drop((store, engine));
    let mut config = config(dir.path());
    config.segments_per_chunk_max = 1;
    let store = Arc::new(RwLock::new(Store::open(config).unwrap()));
    assert!(store.write().unwrap().maintain().unwrap() >= 1);
    let engine = SqlEngine::new(store.clone(), None).unwrap();
    for (sql, expected) in [
        (
            format!(
                "SELECT count(*) FROM flows WHERE ecs_task_arn = '{}'",
                arn(12_345)
            ),
            "1",
        ),
        (
            "SELECT count(DISTINCT ecs_task_arn) FROM flows".to_string(),
            "70000",
        ),
    ] {
        match run(&engine, &sql) {
            Ok(b) if rows_of(&b) == vec![vec![Some(expected.to_string())]] => {}
            other => wrong.push(format!(
                "compacted: {sql}: {:?}",
                other.map(|b| rows_of(&b))
            )),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
