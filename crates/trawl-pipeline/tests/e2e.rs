//! End to end: generated estate files → pipeline → store → SQL, checked
//! against the generator's own ground truth; and resuming a file from its
//! manifest position.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use arrow::util::display::array_value_to_string;
use trawl_attrib::AttributionIndex;
use trawl_gen::files::Layout;
use trawl_gen::{EstateConfig, Truth, write_estate};
use trawl_pipeline::{FilePosition, Pipeline, PipelineConfig};
use trawl_store::{QueryResult, SqlEngine, Store, StoreConfig};

/// Rows of a result as text (nulls as "NULL").
fn rows(result: &QueryResult) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for batch in &result.batches {
        for row in 0..batch.num_rows() {
            let text = |c: &arrow::array::ArrayRef| match c.is_null(row) {
                true => "NULL".to_string(),
                false => array_value_to_string(c.as_ref(), row).unwrap(),
            };
            out.push(batch.columns().iter().map(text).collect());
        }
    }
    out
}

fn estate(dir: &Path) -> Truth {
    let config = EstateConfig {
        apps: 40,
        records_per_sec: 250,
        churn_per_hour: 20.0,
        snapshot_every_secs: 600,
        ..EstateConfig::default()
    };
    let layout = Layout {
        gzip: true,
        flat: false,
    };
    write_estate(config, 900, dir, layout).unwrap();
    serde_json::from_slice(&std::fs::read(dir.join("truth.json")).unwrap()).unwrap()
}

fn start(data: &Path, inputs: &Path) -> Pipeline {
    let store = Store::open(StoreConfig::new(data)).unwrap();
    let mut index = AttributionIndex::default();
    let ranges = std::fs::read(inputs.join("ip-ranges.json")).unwrap();
    index.add_aws_ip_ranges(&ranges, "ip-ranges.json").unwrap();
    let config = PipelineConfig {
        chunk_bytes: 64 << 10,
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::start(config, store, index).unwrap();
    let metadata = std::fs::File::open(inputs.join("metadata.jsonl")).unwrap();
    let (applied, errors) =
        pipeline.apply_metadata(std::io::BufReader::new(metadata), "metadata.jsonl", true);
    assert!(applied > 0 && errors.is_empty(), "{errors:?}");
    pipeline
}

fn query(pipeline: &Pipeline, sql: &str) -> Vec<Vec<String>> {
    let engine = SqlEngine::new(pipeline.store(), Some(pipeline.index())).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rows(&runtime.block_on(engine.query(sql)).unwrap())
}

fn totals(pipeline: &Pipeline) -> Vec<String> {
    query(
        pipeline,
        "SELECT sum(flows), sum(bytes), sum(packets) FROM flows_1m",
    )
    .remove(0)
}

#[test]
fn generated_files_to_sql_answers_equal_the_generators_truth() {
    let inputs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let truth = estate(inputs.path());
    let pipeline = start(data.path(), inputs.path());
    let queued = pipeline.add_dir(inputs.path()).unwrap();
    assert!(queued >= 24, "{queued} files");
    pipeline.wait_idle();
    let expected = vec![
        truth.records.to_string(),
        truth.bytes.to_string(),
        truth.packets.to_string(),
    ];
    assert_eq!(totals(&pipeline), expected);
    let detail = query(&pipeline, "SELECT count(*) FROM flows");
    assert_eq!(detail[0][0], truth.records.to_string());

    // Every app pair, attributed at the flow's time, as the generator knows it.
    let pairs = query(
        &pipeline,
        "SELECT src_app, dst_app, sum(bytes), sum(flows) FROM flows_1m GROUP BY 1, 2",
    );
    let found: BTreeMap<(String, String), (String, String)> = pairs
        .into_iter()
        .map(|r| ((r[0].clone(), r[1].clone()), (r[2].clone(), r[3].clone())))
        .collect();
    let name = |app: &Option<String>| app.clone().unwrap_or_else(|| "NULL".into());
    let wanted: BTreeMap<(String, String), (String, String)> = truth
        .app_pairs
        .iter()
        .map(|p| {
            (
                (name(&p.src_app), name(&p.dst_app)),
                (p.bytes.to_string(), p.flows.to_string()),
            )
        })
        .collect();
    assert_eq!(found, wanted);
    let stats = pipeline.stats();
    assert_eq!(stats.decode_errors_total(), 0);
    pipeline.shutdown().unwrap();

    // Reopened: every file is complete, nothing is read twice.
    let pipeline = start(data.path(), inputs.path());
    assert_eq!(pipeline.add_dir(inputs.path()).unwrap(), 0);
    assert_eq!(totals(&pipeline), expected);
    pipeline.shutdown().unwrap();
}

#[test]
fn a_file_resumes_at_its_manifest_position_with_its_header() {
    let inputs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
    let mut text = format!("{header}\n");
    let mut offsets = Vec::new();
    for i in 0..1000u64 {
        let bytes = 100 + i;
        text.push_str(&format!(
            "2 123456789012 eni-1 10.0.0.1 10.0.0.2 40000 443 6 1 {bytes} {} {} ACCEPT OK\n",
            1_795_305_600 + i,
            1_795_305_660 + i
        ));
        offsets.push(text.len() as u64);
    }
    text.push_str(
        "2 123456789012 eni-1 10.0.0.1 not-an-ip 40000 443 6 1 5 1795306600 1795306660 ACCEPT OK\n",
    );
    let path = inputs.path().join("flows.log.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();

    // As if a run had stored the first 400 lines and then died.
    let key = FilePosition::key(&std::fs::canonicalize(&path).unwrap().to_string_lossy());
    {
        let mut store = Store::open(StoreConfig::new(data.path())).unwrap();
        let resume = FilePosition {
            offset: offsets[399],
            ..FilePosition::default()
        }
        .encode();
        let workloads = AttributionIndex::default();
        store
            .add_batch(&[], workloads.workloads(), &[(&key, &resume)])
            .unwrap();
        store.seal().unwrap();
    }
    let store = Store::open(StoreConfig::new(data.path())).unwrap();
    // No metadata: without hold_secs 0 every flow would wait for it.
    let config = PipelineConfig {
        chunk_bytes: 4096,
        hold_secs: 0,
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::start(config, store, AttributionIndex::default()).unwrap();
    assert_eq!(pipeline.add_files(std::slice::from_ref(&path)).unwrap(), 1);
    pipeline.wait_idle();
    let expected_bytes: u64 = (400..1000).map(|i| 100 + i).sum();
    assert_eq!(
        query(&pipeline, "SELECT count(*), sum(bytes) FROM flows"),
        [[600.to_string(), expected_bytes.to_string()]]
    );
    // The bad last line is counted, and named by its real line number.
    assert_eq!(pipeline.stats().decode_errors_total(), 1);
    let end = pipeline
        .store()
        .read()
        .unwrap()
        .pending_positions()
        .get(&key)
        .cloned()
        .unwrap();
    let end = FilePosition::decode(&end).unwrap();
    assert_eq!(end.offset, text.len() as u64);
    assert!(end.size.is_some());
    pipeline.shutdown().unwrap();
}

#[test]
fn lines_longer_than_a_chunk_are_read_and_overlong_ones_skipped_alone() {
    // Regression: a line longer than chunk_bytes made the file reader spin.
    let inputs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status vpc-id";
    let line = |vpc: &str, bytes: u64| {
        format!(
            "2 123456789012 eni-1 10.0.0.1 10.0.0.2 40000 443 6 1 {bytes} 1795305600 1795305660 ACCEPT OK {vpc}\n"
        )
    };
    let long_vpc = format!("vpc-{}", "a".repeat(6000));
    let overlong_vpc = format!("vpc-{}", "b".repeat(70_000));
    let text = [
        format!("{header}\n"),
        line("vpc-1", 1),
        line(&long_vpc, 10),
        line("vpc-2", 100),
        line(&overlong_vpc, 1000),
        line("vpc-3", 10_000),
    ]
    .concat();
    let path = inputs.path().join("flows.log");
    std::fs::write(&path, &text).unwrap();
    let store = Store::open(StoreConfig::new(data.path())).unwrap();
    let config = PipelineConfig {
        chunk_bytes: 4096,
        hold_secs: 0,
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::start(config, store, AttributionIndex::default()).unwrap();
    pipeline.add_files(std::slice::from_ref(&path)).unwrap();
    pipeline.wait_idle();
    assert_eq!(
        query(&pipeline, "SELECT count(*), sum(bytes) FROM flows"),
        [["4".to_string(), "10111".to_string()]]
    );
    assert_eq!(
        query(
            &pipeline,
            "SELECT length(vpc_id) FROM flows WHERE bytes = 10"
        ),
        [[long_vpc.len().to_string()]]
    );
    assert_eq!(pipeline.stats().decode_errors_total(), 1);
    pipeline.shutdown().unwrap();
}
