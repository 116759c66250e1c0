//! Third review (35a7f98~1..d6a8090: metadata log, envelope files,
//! escaped keys). Each test states the behaviour that should hold; each
//! fails on the reviewed commit.
#![allow(missing_docs, clippy::unwrap_used)]

use crate::common::{bytes_of, file_pipeline, flows, mkdirs, serial, sums};

use trawl_attrib::{AttributionIndex, SOURCE_POSITIONS_MAX};
use trawl_pipeline::{Pipeline, PipelineConfig};
use trawl_store::{Store, StoreConfig};

/// feeder.rs:531-555 (`escaped`, new in 35a7f98) with feeder.rs:410-435
/// (`gone_files` via `path_of`/`unescaped`): a store written before
/// 35a7f98 names `flows/a%zz.log` by the key `file:flows/a%zz.log`; after
/// the upgrade its key is `file:flows/a%25zz.log`. The new key has no
/// position, so `find_moved` looks for a gone file, but the old key's
/// path, unescaped ("%zz" is not hex, kept), is the file itself, which
/// exists: not gone, not matched. The file is read again from its start
/// (every complete file whose name holds a '%' not followed by two hex
/// digits is stored twice at the first start of the new version).
#[test]
fn a_file_with_a_percent_in_its_name_is_read_again_after_keys_became_escaped() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = mkdirs(root.path(), &["flows"]);
    std::fs::write(dir.join("a%zz.log"), flows(5, 100)).unwrap();
    let pipeline = file_pipeline(data.path(), 16);
    pipeline.add_dir(&dir).unwrap();
    pipeline.wait_idle();
    pipeline.shutdown().unwrap();
    // Rewrite the position under the key the version before 35a7f98 wrote
    // (to_string_lossy, no escaping), as an upgraded store holds it.
    {
        let mut store = Store::open(StoreConfig::new(data.path())).unwrap();
        let (new_key, value) = store
            .positions()
            .iter()
            .find(|(k, _)| k.starts_with("file:") && k.contains("a%25zz.log"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .expect("the escaped key");
        let old_key = new_key.replace("%25", "%");
        store.edit_positions(&[(&old_key, &value)], &[&new_key]);
        store.seal().unwrap();
        assert!(store.positions().contains_key(&old_key));
    }
    let pipeline = file_pipeline(data.path(), 16);
    pipeline.add_dir(&dir).unwrap();
    pipeline.wait_idle();
    let got = sums(pipeline.store());
    pipeline.shutdown().unwrap();
    assert_eq!(got, (5, bytes_of(5, 100)), "read once across the upgrade");
}

/// metadata_log.rs:110-115 (`set_position` ignores the `false` of
/// `set_source_position`): the index keeps at most SOURCE_POSITIONS_MAX
/// source positions (index.rs:408-417), and positions are never removed
/// (every metadata file ever configured keeps one). Once the map is full
/// without a "metadata-log" entry, the position of pushed metadata is never
/// saved: the snapshot never covers the log, `truncate_before` deletes
/// nothing, every restart replays every push ever made, and the log grows
/// until push_log_bytes_max, after which every metadata push is refused.
#[test]
fn the_metadata_log_position_is_saved_even_when_the_index_holds_many_source_positions() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let mut index = AttributionIndex::default();
    for i in 0..SOURCE_POSITIONS_MAX {
        assert!(index.set_source_position(&format!("metadata-file:/m/{i}.jsonl"), "{}"));
    }
    let store = Store::open(StoreConfig::new(data.path())).unwrap();
    let snapshot = data.path().join("attribution.snapshot");
    let config = PipelineConfig {
        hold_secs: 0,
        workers: 1,
        snapshot_path: Some(snapshot.clone()),
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::start(config, store, index).unwrap();
    let event = r#"{"type":"assign","ip":"10.0.0.1","at":1795305000,"workload":{"app":"web"}}"#;
    let (applied, errors) = pipeline.push_metadata("http", event.as_bytes()).unwrap();
    assert_eq!((applied, errors.len()), (1, 0));
    pipeline.save_snapshot().unwrap();
    let position = pipeline
        .index()
        .read()
        .unwrap()
        .source_position("metadata-log")
        .map(str::to_string);
    pipeline.shutdown().unwrap();
    assert!(
        position.is_some(),
        "the metadata log's position is in the index (and so in the snapshot)"
    );
}
