//! Every integration test file of the crate is built. The crate sets
//! `autotests = false`, so a file under `tests/` runs only if `tests/all.rs`
//! names it as a module or `Cargo.toml` names it as a `[[test]]`. Shared
//! by the crates that link their tests as one binary (`#[path]`);
//! `CARGO_MANIFEST_DIR` is the crate that includes it.

use std::path::Path;

#[test]
fn every_test_file_is_built() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |file: &str| std::fs::read_to_string(root.join(file)).expect(file);
    let (all, cargo) = (read("tests/all.rs"), read("Cargo.toml"));
    let mut unbuilt: Vec<String> = std::fs::read_dir(root.join("tests"))
        .expect("tests/")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".rs") && name != "all.rs")
        .filter(|name| {
            let module = format!("#[path = \"{name}\"]");
            let target = format!("path = \"tests/{name}\"");
            // Whole lines, so that a commented-out line does not count.
            !all.lines().any(|line| line.trim() == module)
                && !cargo.lines().any(|line| line.trim() == target)
        })
        .collect();
    unbuilt.sort();
    assert!(
        unbuilt.is_empty(),
        "test files no target builds: {unbuilt:?}"
    );
}
