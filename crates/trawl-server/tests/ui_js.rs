//! The web UI's pure functions (SQL building, filters as typed, URL state
//! and its versions, time ranges, units, series), tested with Node.js's
//! own runner: `node --test crates/trawl-server/ui-tests/`. Node.js is
//! needed only to test, never to build or run trawl.

use std::process::Command;

#[test]
fn ui_pure_functions_pass_their_node_tests() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/ui-tests");
    let output = Command::new("node")
        .args(["--test", "--test-reporter=spec", dir])
        .output()
        .expect("node on PATH (.ci/test-deps installs it)");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node --test failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every file ran (a file that fails to import counts as no tests).
    for file in ["sql", "urlstate", "timerange", "units", "series", "api"] {
        let path = format!("{dir}/{file}.test.mjs");
        assert!(std::path::Path::new(&path).exists(), "{path}");
    }
    assert!(report.contains("pass"), "{report}");
}
