//! The `trawl` binary end to end: generate → parse with the counts right,
//! AWS's examples through `trawl parse`, errors and exit codes, stdin, whois.
//! The service commands (demo, run, ingest, query) are in `service.rs`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn trawl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args(args)
        .output()
        .unwrap()
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../trawl-flowlog/tests/golden")
        .join(name)
}

fn stdout_json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn generated_gzip_file_parses_with_the_counts_right() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.log.gz");
    let path = path.to_str().unwrap();
    let args = [
        "generate",
        "--records",
        "30000",
        "--apps",
        "40",
        "--seed",
        "7",
        "-o",
        path,
    ];
    let generated = trawl(&args);
    assert!(generated.status.success());
    let totals: serde_json::Value = serde_json::from_slice(&generated.stderr).unwrap();
    assert!(totals["records"].as_u64().unwrap() >= 30000, "{totals}");

    let parsed = trawl(&["parse", "--stats", path]);
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let stats = stdout_json(&parsed);
    assert_eq!(stats["records"], totals["records"]);
    assert_eq!(stats["flow_bytes"], totals["bytes"]);
    assert_eq!(stats["flow_packets"], totals["packets"]);
    assert_eq!(stats["header_lines"], 1);
    assert_eq!(stats["errors_total"], 0);
    assert_eq!(
        trawl(&args).stderr,
        generated.stderr,
        "same seed, same output"
    );
}

#[test]
fn aws_examples_print_as_their_golden_json() {
    for name in [
        "aws_default_accept_reject",
        "aws_default_nodata_skipdata",
        "aws_default_ipv6",
    ] {
        let output = trawl(&["parse", golden(&format!("{name}.log")).to_str().unwrap()]);
        assert!(output.status.success());
        let expected = std::fs::read_to_string(golden(&format!("{name}.expected"))).unwrap();
        let records: String = expected
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(String::from_utf8(output.stdout).unwrap(), records, "{name}");
    }
}

#[test]
fn explicit_log_format_in_aws_syntax() {
    let format = std::fs::read_to_string(golden("aws_custom_nat_gateway.format")).unwrap();
    let input = golden("aws_custom_nat_gateway.log");
    let output = trawl(&[
        "parse",
        "--log-format",
        format.trim(),
        input.to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.lines().count(), 6);
    assert!(text.starts_with(r#"{"instance_id":null,"interface_id":"eni-1235b8ca123456789""#));
}

#[test]
fn bad_lines_are_reported_counted_and_skipped() {
    let input = golden("bad_lines.log");
    let output = trawl(&[
        "parse",
        "--stats",
        "--errors-max",
        "2",
        input.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert!(
        stderr.contains("bad_lines.log: line 4: field dst_port: number out of range: \"99999\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("7 more decode errors not shown"),
        "{stderr}"
    );
    let stats = stdout_json(&output);
    assert_eq!(stats["records"], 3);
    assert_eq!(stats["errors"]["number_out_of_range"], 3);
}

#[test]
fn unknown_field_in_log_format_is_a_clear_error() {
    let output = trawl(&["parse", "--log-format", "${srcadr}", "-"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--log-format"), "{stderr}");
    assert!(stderr.contains("unknown field \"srcadr\""), "{stderr}");
}

#[test]
fn missing_file_names_the_file() {
    let output = trawl(&["parse", "/nonexistent/flows.log"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("opening /nonexistent/flows.log"));
}

#[test]
fn stdin_is_read_with_a_dash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args(["parse", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = std::fs::read(golden("aws_default_security_group_icmp.log")).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8(output.stdout).unwrap().lines().count(), 2);
}

const METADATA: &str = r#"{"type":"assign","ip":"10.1.2.3","at":"2026-11-22T10:00:00Z","workload":{"app":"api","cluster":"api-prod-v042","account":"123456789012","region":"us-east-1","az":"use1-az2","kind":"instance","labels":{"team":"edge"}}}
{"type":"release","ip":"10.1.2.3","at":"2026-11-22T10:05:00Z"}
{"type":"assign","ip":"10.1.2.3","at":1795342020,"workload":{"app":"billing","kind":"pod"}}
{"type":"assign","ip":"10.1.2.3","at":"not a time","workload":{}}
"#;

fn whois(
    dir: &Path,
    ip: &str,
    at: &str,
    extra: &[&str],
) -> (Option<i32>, serde_json::Value, String) {
    let metadata = dir.join("meta.jsonl");
    std::fs::write(&metadata, METADATA).unwrap();
    let mut args = vec![
        "whois",
        "--metadata",
        metadata.to_str().unwrap(),
        ip,
        "--at",
        at,
    ];
    args.extend_from_slice(extra);
    let output = trawl(&args);
    let json = serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    (
        output.status.code(),
        json,
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn whois_answers_with_the_owner_at_that_moment() {
    let dir = tempfile::tempdir().unwrap();
    let (code, answer, stderr) = whois(dir.path(), "10.1.2.3", "2026-11-22T10:03:00Z", &[]);
    assert_eq!(code, Some(1), "one bad line in the metadata");
    assert!(
        stderr.contains("meta.jsonl: line 4: invalid time"),
        "{stderr}"
    );
    assert_eq!(answer["app"], "api");
    assert_eq!(answer["cluster"], "api-prod-v042");
    assert_eq!(answer["labels"]["team"], "edge");
    assert_eq!(answer["rule"], "declared");
    assert_eq!(answer["interval"]["from"], "2026-11-22T10:00:00Z");
    assert_eq!(answer["interval"]["to"], "2026-11-22T10:05:00Z");
    assert_eq!(answer["settled"], true);

    let (_, later, _) = whois(dir.path(), "10.1.2.3", "1795342200", &[]);
    assert_eq!(later["app"], "billing");
    assert_eq!(later["interval"]["to"], serde_json::Value::Null);
}

#[test]
fn whois_says_null_when_no_one_held_it_and_uses_networks() {
    let dir = tempfile::tempdir().unwrap();
    let (_, gap, _) = whois(dir.path(), "10.1.2.3", "2026-11-22T10:06:00Z", &[]);
    assert_eq!(gap["app"], serde_json::Value::Null);
    assert_eq!(gap["rule"], "unknown");
    let networks = dir.path().join("networks.toml");
    std::fs::write(
        &networks,
        "[[networks]]\ncidr = \"10.1.0.0/16\"\nname = \"prod-east\"\nregion = \"us-east-1\"\n",
    )
    .unwrap();
    let (_, net, _) = whois(
        dir.path(),
        "10.1.9.9",
        "2026-11-22T10:06:00Z",
        &["--networks", networks.to_str().unwrap()],
    );
    assert_eq!(net["rule"], "network");
    assert_eq!(net["region"], "us-east-1");
    assert_eq!(net["prefix"], "10.1.0.0/16");
    let (_, public, _) = whois(dir.path(), "8.8.8.8", "0", &[]);
    assert_eq!(
        (public["rule"].as_str(), public["kind"].as_str()),
        (Some("internet"), Some("internet"))
    );
}

#[test]
fn whois_refuses_a_bad_time() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = whois(dir.path(), "10.1.2.3", "noon", &[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("--at") && stderr.contains("noon"),
        "{stderr}"
    );
}

/// Issue 13 #16: `trawl generate --apps 5` spun at 100 % CPU for ever.
#[test]
fn generate_with_few_apps_finishes_and_impossible_counts_are_refused() {
    for apps in ["2", "5"] {
        let output = trawl(&[
            "generate",
            "--apps",
            apps,
            "--duration-secs",
            "5",
            "--rate",
            "50",
        ]);
        assert!(output.status.success(), "--apps {apps}: {output:?}");
        assert!(!output.stdout.is_empty(), "--apps {apps} wrote nothing");
    }
    for apps in ["0", "1", "1000001"] {
        let output = trawl(&["generate", "--apps", apps, "--duration-secs", "5"]);
        assert_eq!(output.status.code(), Some(2), "--apps {apps}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("--apps"),
            "--apps {apps}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `--records` was ignored with `--out-dir`: a bench asking for a 2 M-record
/// estate over a day got 27 M.
#[test]
fn generate_records_caps_an_out_dir_estate_too() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("estate");
    let output = trawl(&[
        "generate",
        "--out-dir",
        out.to_str().unwrap(),
        "--records",
        "3000",
        "--rate",
        "100",
        "--duration-secs",
        "3600",
    ]);
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary: serde_json::Value = serde_json::from_str(stderr.lines().next().unwrap()).unwrap();
    let records = summary["records"].as_u64().unwrap();
    assert!(
        (3000..3000 + 300).contains(&records),
        "asked for 3000 records at 100/s, got {records}"
    );
}
