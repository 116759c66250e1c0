//! Peer fixtures: the test data six other public VPC flow-log parsers wrote
//! for themselves (Elastic integrations and Beats, Vector's VRL, the
//! OpenTelemetry collector, flowlogs-reader, netobserv), decoded by trawl and
//! compared field by field with each peer's expected values.
//!
//! The data lives outside the repository (its licences differ), in
//! `../shared/fixtures/peers/` beside the checkout; `SOURCES.md` there says
//! where each file comes from and which peer conventions a check translates
//! (names, numbers written as strings, ISO dates, `allow`/`deny`, …). The
//! directory is on every machine that builds trawl, CI included, so a missing
//! one fails the test rather than skipping it.
//!
//! Every record trawl must emit counts once per decode; it matches when trawl
//! emits it and every value the peer expects equals trawl's. Lines a peer
//! rejects or skips must be reported by trawl, with no record.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Map, Value as Json, json};
use trawl_flowlog::{
    DecodeError, DecodeOptions, Field, FlowRecord, LogFormat, RecordSink, TextDecoder, ValueType,
    decode_reader, write_json,
};

/// What one decode gave: the records as trawl's JSON objects, and the errors.
#[derive(Default)]
struct Decoded {
    records: Vec<Map<String, Json>>,
    errors: Vec<String>,
}

impl RecordSink for Decoded {
    fn record(&mut self, record: &FlowRecord<'_>, format: &LogFormat) {
        let mut json = Vec::new();
        write_json(format, record, &mut json);
        match serde_json::from_slice(&json) {
            Ok(Json::Object(map)) => self.records.push(map),
            other => panic!("write_json wrote {other:?}"),
        }
    }

    fn error(&mut self, error: DecodeError) {
        self.errors.push(error.to_string());
    }
}

fn decode(name: &str, input: &[u8], format: Option<&str>) -> Decoded {
    let format =
        format.map(|f| LogFormat::parse(f).unwrap_or_else(|e| panic!("{name}: format {f:?}: {e}")));
    let options = DecodeOptions {
        format,
        ..DecodeOptions::default()
    };
    let mut text = TextDecoder::new(name, &options);
    let mut out = Decoded::default();
    decode_reader(input, &mut text, &mut out);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// The comparison of every peer case: records counted and matched, and what differed.
#[derive(Default)]
struct Report {
    records: usize,
    matched: usize,
    problems: Vec<String>,
}

impl Report {
    /// Checks that `decoded` holds one record per entry of `expected`, in
    /// order, each carrying every expected `(column, value)`; and exactly
    /// `errors` errors.
    fn check(
        &mut self,
        case: &str,
        decoded: &Decoded,
        expected: &[BTreeMap<String, Json>],
        errors: usize,
    ) {
        if decoded.errors.len() != errors {
            self.problems.push(format!(
                "{case}: {} errors, expected {errors}: {:?}",
                decoded.errors.len(),
                decoded.errors
            ));
        }
        for (i, want) in expected.iter().enumerate() {
            self.records += 1;
            let Some(got) = decoded.records.get(i) else {
                self.problems.push(format!("{case}: record {i} missing"));
                continue;
            };
            let mut differences = String::new();
            for (column, value) in want {
                let actual = got.get(column).unwrap_or(&Json::Null);
                if !same(column, value, actual) {
                    let _ = write!(differences, " {column}: expected {value}, trawl {actual};");
                }
            }
            if differences.is_empty() {
                self.matched += 1;
            } else {
                self.problems
                    .push(format!("{case}: record {i}:{differences}"));
            }
        }
        if decoded.records.len() > expected.len() {
            self.problems.push(format!(
                "{case}: {} records, expected {}",
                decoded.records.len(),
                expected.len()
            ));
        }
    }
}

/// Whether trawl's JSON value `actual` of `column` is the peer's `expected`
/// once the peer's conventions are translated (SOURCES.md, "Values").
fn same(column: &str, expected: &Json, actual: &Json) -> bool {
    let Some(field) = Field::from_name(column) else {
        // An extra column (a field newer than this build): text.
        return expected == actual;
    };
    if expected.is_null() || expected.as_str() == Some("-") {
        return actual.is_null();
    }
    let text = expected.as_str();
    match field.value_type() {
        ValueType::Int { .. } => {
            let want = match (expected.as_u64(), text) {
                (Some(n), _) => Some(n),
                (None, Some(t)) if field == Field::Protocol => {
                    t.parse().ok().or_else(|| protocol_number(t))
                }
                (None, Some(t)) if matches!(field, Field::Start | Field::End) => {
                    t.parse().ok().or_else(|| iso_epoch_secs(t))
                }
                (None, Some(t)) => t.parse().ok(),
                _ => None,
            };
            want.is_some() && want == actual.as_u64()
        }
        ValueType::Addr => {
            let addr = |v: &Json| v.as_str().and_then(|t| t.parse::<IpAddr>().ok());
            addr(expected).is_some() && addr(expected) == addr(actual)
        }
        ValueType::Action => {
            let want = match text.map(str::to_ascii_lowercase).as_deref() {
                Some("accept" | "allow" | "success") => "ACCEPT",
                Some("reject" | "deny" | "failure") => "REJECT",
                _ => return false,
            };
            actual.as_str() == Some(want)
        }
        ValueType::FlowDirection => {
            let want = match text {
                Some("receive") => "ingress",
                Some("transmit") => "egress",
                other => other.unwrap_or_default(),
            };
            actual.as_str() == Some(want)
        }
        ValueType::TrafficType => text
            .zip(actual.as_str())
            .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b)),
        ValueType::Str | ValueType::LogStatus | ValueType::SublocationType => {
            text.is_some() && text == actual.as_str()
        }
    }
}

fn protocol_number(name: &str) -> Option<u64> {
    match name {
        "icmp" => Some(1),
        "tcp" => Some(6),
        "udp" => Some(17),
        "ipv6-icmp" => Some(58),
        _ => None,
    }
}

/// `2015-08-12T13:47:44`, with optional fraction and `Z`, as Unix seconds (UTC).
fn iso_epoch_secs(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, time) = text.split_once('T')?;
    let time = time.split('.').next()?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':').map(|p| p.parse::<i64>());
    let (h, min, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + min * 60 + s).ok()
}

/// A peer's name for a field spelled the AWS way with `_` or `-`
/// (`pkt_srcaddr`, `log-status`), as trawl's column.
fn aws_column(name: &str) -> Option<String> {
    let name = match name {
        "pkt_src_service" => "pkt-src-aws-service",
        "pkt_dst_service" => "pkt-dst-aws-service",
        other => other,
    };
    Field::from_name(&name.replace('_', "-")).map(|f| f.column().to_string())
}

/// An ECS (Elastic) key as trawl's column; `None` for keys not compared.
fn ecs_column(key: &str) -> Option<String> {
    if let Some(name) = key.strip_prefix("aws.vpcflow.") {
        return aws_column(name);
    }
    let column = match key {
        "source.address" | "source.ip" => "src_addr",
        "destination.address" | "destination.ip" => "dst_addr",
        "source.port" => "src_port",
        "destination.port" => "dst_port",
        "network.iana_number" => "protocol",
        "source.bytes" | "network.bytes" => "bytes",
        "source.packets" | "network.packets" => "packets",
        "event.start" => "start",
        "event.end" | "@timestamp" => "end",
        "cloud.account.id" => "account_id",
        "cloud.instance.id" => "instance_id",
        "cloud.region" => "region",
        "cloud.availability_zone" => "az_id",
        "network.direction" => "flow_direction",
        "orchestrator.cluster.id" => "ecs_cluster_arn",
        "orchestrator.cluster.name" => "ecs_cluster_name",
        "orchestrator.resource.name" => "ecs_container_instance_arn",
        "orchestrator.resource.id" => "ecs_container_instance_id",
        "container.id" => "ecs_container_id",
        "service.name" => "ecs_service_name",
        "event.reason" => "reject_reason",
        "event.outcome" | "event.action" => "action",
        _ => return None,
    };
    Some(column.to_string())
}

/// `{"a": {"b": 1}}` as `{"a.b": 1}` (dotted keys kept as they are).
fn flatten(prefix: &str, value: &Json, out: &mut BTreeMap<String, Json>) {
    match value {
        Json::Object(map) => {
            for (key, value) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// An Elastic document's comparable values by trawl column, and its original line.
fn ecs_expected(document: &Json) -> (BTreeMap<String, Json>, Option<String>) {
    let mut flat = BTreeMap::new();
    flatten("", document, &mut flat);
    let original = flat
        .get("event.original")
        .or_else(|| flat.get("message"))
        .and_then(Json::as_str)
        .map(str::to_string);
    let mut expected = BTreeMap::new();
    for (key, value) in flat {
        if let Some(column) = ecs_column(&key) {
            // `event.outcome` and `event.action` both say the action; they
            // must agree, so either may stand.
            expected.insert(column, value);
        }
    }
    (expected, original)
}

/// The peers' fixtures: `TRAWL_PEER_FIXTURES`, else `../shared/fixtures/peers`
/// beside the checkout, else `/work/shared/fixtures/peers`. They are not in
/// the repository (they are other projects' test data), so a checkout
/// without them skips these tests, loudly; `TRAWL_PEER_FIXTURES` set to a
/// missing directory fails them.
fn peers_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TRAWL_PEER_FIXTURES") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("SOURCES.md").is_file(),
            "TRAWL_PEER_FIXTURES={} holds no SOURCES.md",
            dir.display()
        );
        return Some(dir);
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/peers");
    let found = [beside.clone(), PathBuf::from("/work/shared/fixtures/peers")]
        .into_iter()
        .find(|d| d.join("SOURCES.md").is_file());
    if found.is_none() {
        eprintln!(
            "SKIPPED: peer fixtures not found at {} or /work/shared/fixtures/peers (set TRAWL_PEER_FIXTURES)",
            beside.display()
        );
    }
    found
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_json(path: &Path) -> Json {
    serde_json::from_slice(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text_lines(input: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(input)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The 29 fields of Elastic's positional pattern (SOURCES.md, "Formats").
const ELASTIC_29: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path";
const ECS_FIELDS: &str = "ecs-cluster-arn ecs-cluster-name ecs-container-instance-arn ecs-container-instance-id ecs-container-id ecs-second-container-id ecs-service-name ecs-task-definition-arn ecs-task-arn ecs-task-id";

fn elastic_integrations(dir: &Path, report: &mut Report) {
    let dir = dir.join("elastic-integrations");
    for name in [
        "test-ecs-samples.log",
        "test-extra-samples.log",
        "test-tcp-flag-sequence.log",
        "test-v5-all-fields.log",
        "test-v8-samples.log",
        "test-with-message-field.log",
    ] {
        let mut input = read(&dir.join(name));
        if name == "test-with-message-field.log" {
            // The `{"message": …}` wrapper is not a container trawl reads.
            let lines: Vec<String> = text_lines(&input)
                .iter()
                .map(|l| {
                    let v: Json = serde_json::from_str(l).unwrap();
                    v["message"].as_str().unwrap().to_string()
                })
                .collect();
            input = lines.join("\n").into_bytes();
        }
        let lines = text_lines(&input);
        let records: Vec<&String> = lines
            .iter()
            .filter(|l| !l.starts_with("version "))
            .collect();
        let tokens = records.first().map_or(0, |l| l.split_whitespace().count());
        let format = match tokens {
            14 | 21 => None,
            29 => Some(ELASTIC_29.to_string()),
            39 => Some(format!("{ELASTIC_29} {ECS_FIELDS}")),
            40 => Some(format!("{ELASTIC_29} {ECS_FIELDS} reject-reason")),
            n => panic!("{name}: no Elastic pattern of {n} tokens"),
        };
        let documents = read_json(&dir.join(format!("{name}-expected.json")));
        let mut expected = Vec::new();
        for (document, line) in documents["expected"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&records)
        {
            let (values, original) = ecs_expected(document);
            if original.as_deref() != Some(line.as_str()) {
                report.problems.push(format!(
                    "{name}: event.original {original:?} is not the line {line:?}"
                ));
            }
            expected.push(values);
        }
        let decoded = decode(name, &input, format.as_deref());
        report.check(
            &format!("elastic-integrations/{name}"),
            &decoded,
            &expected,
            0,
        );
    }
}

/// The groups of Beats' `aws-vpc-flow-logs.yml`: name → (format, samples).
fn beats_groups(yaml: &str) -> BTreeMap<String, (String, Vec<String>)> {
    let mut groups = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in yaml.lines() {
        if !line.starts_with(' ') && !line.starts_with('#') && line.contains(':') && line != "---" {
            let name = line.split(':').next().unwrap().trim().to_string();
            groups.insert(name.clone(), (String::new(), Vec::new()));
            current = Some(name);
            continue;
        }
        let Some(group) = current.as_ref().and_then(|c| groups.get_mut(c)) else {
            continue;
        };
        let trimmed = line.trim();
        if let Some(format) = trimmed.strip_prefix("format: ") {
            group.0 = format.to_string();
        } else if let Some(sample) = trimmed.strip_prefix("- ") {
            let sample = match sample.strip_prefix('\'') {
                Some(quoted) => quoted.split('\'').next().unwrap_or_default(),
                // A YAML comment starts at ` #`.
                None => sample.split(" #").next().unwrap_or_default(),
            };
            group.1.push(sample.trim_end().to_string());
        }
    }
    groups
}

fn elastic_beats(dir: &Path, report: &mut Report) {
    let dir = dir.join("elastic-beats");
    let yaml = String::from_utf8(read(&dir.join("processor/aws-vpc-flow-logs.yml"))).unwrap();
    let groups = beats_groups(&yaml);
    for (golden, group) in [
        ("default-v2-format", "default-v2-format"),
        ("tcp-flag-sequence", "tcp-flag-sequence"),
        ("custom-nat-gateway", "custom-nat-gateway"),
        ("transit-gateway", "transit-gateway"),
        ("service-name-path-direction", "service-name-path-direction"),
        ("v5-fields-original", "v5-fields-original"),
        ("v7-fields-original", "v7-fields-original"),
        // The ECS mode of the v7 group: the same format and samples.
        ("v7-fields-ecs", "v7-fields-original"),
    ] {
        let (format, samples) = &groups[group];
        let documents = read_json(&dir.join(format!("processor/{golden}.golden.json")));
        let documents = documents.as_array().unwrap();
        assert_eq!(documents.len(), samples.len(), "{golden}");
        let mut expected = Vec::new();
        for (document, sample) in documents.iter().zip(samples) {
            let (values, original) = ecs_expected(document);
            if original.as_ref().is_some_and(|o| o != sample) {
                report.problems.push(format!(
                    "beats {golden}: message {original:?} is not {sample:?}"
                ));
            }
            expected.push(values);
        }
        let input = samples.join("\n");
        let decoded = decode(golden, input.as_bytes(), Some(format));
        report.check(
            &format!("elastic-beats/processor/{golden}"),
            &decoded,
            &expected,
            0,
        );
    }
    for (name, errors) in [
        ("custom-nat-gateway.log", 0),
        ("tcp-flag-sequence-skip-data.log", 0),
        ("bad.log", 1),
    ] {
        let input = read(&dir.join("module").join(name));
        let documents = read_json(&dir.join(format!("module/{name}-expected.json")));
        let mut expected = Vec::new();
        for document in documents.as_array().unwrap() {
            let (values, original) = ecs_expected(document);
            let offset = document["log.offset"].as_u64().unwrap() as usize;
            let line = input[offset..].split(|&b| b == b'\n').next().unwrap();
            if original.as_deref().map(str::as_bytes) != Some(line) {
                report
                    .problems
                    .push(format!("beats {name}: log.offset {offset} is not its line"));
            }
            // Elastic emits a bare event for a line it cannot parse: trawl reports it.
            if values.is_empty() {
                continue;
            }
            expected.push(values);
        }
        let decoded = decode(name, &input, None);
        report.check(
            &format!("elastic-beats/module/{name}"),
            &decoded,
            &expected,
            errors,
        );
    }
}

/// VRL's names (`pkt_srcaddr`) spelled the AWS way (`pkt-srcaddr`).
fn vrl_format(format: &str) -> String {
    format.replace('_', "-")
}

fn vrl_expected(want: &Json) -> BTreeMap<String, Json> {
    want.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let column = aws_column(k).unwrap_or_else(|| panic!("VRL field {k}"));
            (column, v.clone())
        })
        .collect()
}

/// The quoted strings of a VRL call: the line, then the format if given.
fn vrl_arguments(source: &str) -> Vec<String> {
    source
        .split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

fn vector_vrl(dir: &Path, report: &mut Report) {
    let dir = dir.join("vector-vrl");
    let cases = read_json(&dir.join("test-cases.json"));
    for case in cases["test_function"].as_array().unwrap() {
        let format = case["format"].as_str().map(vrl_format);
        let line = case["line"].as_str().unwrap();
        let decoded = decode("vrl", line.as_bytes(), format.as_deref());
        let name = format!("vector-vrl/test_function/{}", case["name"]);
        report.check(&name, &decoded, &[vrl_expected(&case["want"])], 0);
    }
    for (i, group) in cases["parse_ok"].as_array().unwrap().iter().enumerate() {
        let lines: Vec<&str> = group["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        let format = group["format"].as_str().map(vrl_format);
        let all_known = format
            .as_deref()
            .is_none_or(|f| f.split_whitespace().all(|n| Field::from_name(n).is_some()));
        // A format this build does not wholly know comes as a header line,
        // as S3 delivers it (SOURCES.md, "Fields newer than trawl's table").
        let (input, explicit) = match (&format, all_known) {
            (Some(f), false) => (format!("{f}\n{}", lines.join("\n")), None),
            (f, _) => (lines.join("\n"), f.clone()),
        };
        let decoded = decode("vrl", input.as_bytes(), explicit.as_deref());
        // Only that each line decodes to one record is asserted.
        let expected = vec![BTreeMap::new(); lines.len()];
        report.check(&format!("vector-vrl/parse_ok/{i}"), &decoded, &expected, 0);
    }
    let docs = read_json(&dir.join("parse_aws_vpc_flow_log.json"));
    for example in docs["examples"].as_array().unwrap() {
        let arguments = vrl_arguments(example["source"].as_str().unwrap());
        let format = arguments.get(1).map(|f| vrl_format(f));
        let decoded = decode("vrl", arguments[0].as_bytes(), format.as_deref());
        let name = format!("vector-vrl/example/{}", example["title"]);
        report.check(&name, &decoded, &[vrl_expected(&example["return"])], 0);
    }
}

/// An OTel attribute as trawl's column; `None` for attributes not compared.
fn otel_column(key: &str) -> Option<String> {
    if let Some(ecs) = key.strip_prefix("aws.ecs.") {
        return Some(format!("ecs_{}", ecs.replace('.', "_")));
    }
    let column = match key {
        "aws.vpc.flow.log.version" | "aws.vpc.flow.version" => "version",
        "network.interface.name" | "aws.eni.id" => "interface_id",
        "cloud.account.id" => "account_id",
        "source.address" => "src_addr",
        "destination.address" => "dst_addr",
        "source.port" => "src_port",
        "destination.port" => "dst_port",
        "network.protocol.name" => "protocol",
        "aws.vpc.flow.packets" => "packets",
        "aws.vpc.flow.bytes" => "bytes",
        "aws.vpc.flow.start" => "start",
        "aws.vpc.flow.end" => "end",
        "aws.vpc.flow.action" => "action",
        "aws.vpc.flow.status" => "log_status",
        "aws.vpc.flow.type" => "type",
        "aws.vpc.flow.direction" | "network.io.direction" => "flow_direction",
        "cloud.provider" | "aws.log.group.names" | "aws.log.stream.names" | "encoding.format" => {
            return None;
        }
        other => panic!("OTel attribute {other} has no mapping"),
    };
    Some(column.to_string())
}

/// The log records of an OTel expected YAML, by trawl column: resource
/// attributes apply to each record of their resource; `timeUnixNano` is `end`.
fn otel_expected(yaml: &str) -> Vec<BTreeMap<String, Json>> {
    #[derive(PartialEq)]
    enum Section {
        Resource,
        Records,
        Scope,
    }
    let mut records: Vec<BTreeMap<String, Json>> = Vec::new();
    let mut resource = BTreeMap::new();
    let mut resource_start = 0;
    let mut section = Section::Resource;
    let mut key: Option<String> = None;
    let unquote = |v: &str| v.trim().trim_matches('"').to_string();
    for line in yaml.lines() {
        let trimmed = line.trim();
        if trimmed == "- resource:" {
            for record in &mut records[resource_start..] {
                record.extend(resource.clone());
            }
            resource.clear();
            resource_start = records.len();
            section = Section::Resource;
        } else if trimmed == "scopeLogs:" || trimmed == "- logRecords:" {
            section = Section::Records;
        } else if trimmed == "scope:" {
            section = Section::Scope;
        } else if trimmed == "- attributes:" && section == Section::Records {
            records.push(BTreeMap::new());
        } else if let Some(k) = trimmed.strip_prefix("- key: ") {
            key = Some(k.to_string());
        } else if let Some(time) = trimmed.strip_prefix("timeUnixNano: ") {
            let nanos: u64 = unquote(time).parse().unwrap();
            records
                .last_mut()
                .unwrap()
                .insert("end".into(), json!(nanos / 1_000_000_000));
        } else if let Some((kind, value)) = trimmed.split_once(": ")
            && matches!(kind, "stringValue" | "intValue")
            && section != Section::Scope
        {
            let Some(column) = key.take().and_then(|k| otel_column(&k)) else {
                continue;
            };
            let value = Json::String(unquote(value));
            match section {
                Section::Resource => {
                    resource.insert(column, value);
                }
                _ => {
                    records.last_mut().unwrap().insert(column, value);
                }
            }
        }
    }
    for record in &mut records[resource_start..] {
        record.extend(resource.clone());
    }
    records
}

fn otel_collector(dir: &Path, report: &mut Report) {
    let dir = dir.join("otel-collector-contrib");
    let yaml = |name: &str| otel_expected(&String::from_utf8(read(&dir.join(name))).unwrap());
    for (log, expected) in [
        ("valid_vpc_flow_log.log", "valid_vpc_flow_log_expected.yaml"),
        (
            "valid_vpc_flow_log_multi.log",
            "valid_vpc_flow_log_expected_multi.yaml",
        ),
        (
            "valid_vpc_flow_log_ecs.log",
            "valid_vpc_flow_log_ecs_expected.yaml",
        ),
    ] {
        // OTel's test gzips its inputs.
        let decoded = decode(log, &gzip(&read(&dir.join(log))), None);
        report.check(&format!("otel/{log}"), &decoded, &yaml(expected), 0);
    }
    for (payload, expected, format) in [
        (
            "valid_vpc_flow_cw.json",
            "valid_vpc_flow_cw_expected.yaml",
            None,
        ),
        (
            "valid_vpc_flow_cw_custom.json",
            "valid_vpc_flow_cw_custom_expected.yaml",
            Some("version interface-id srcaddr dstaddr"),
        ),
    ] {
        let input = read(&dir.join(payload));
        let expected = yaml(expected);
        let plain = decode(payload, &input, format);
        report.check(&format!("otel/{payload} (plain)"), &plain, &expected, 0);
        let gzipped = decode(payload, &gzip(&input), format);
        report.check(&format!("otel/{payload} (gzip)"), &gzipped, &expected, 0);
    }
    for bad in [
        "vpc_flow_log_too_few_fields.log",
        "vpc_flow_log_too_many_fields.log",
    ] {
        let decoded = decode(bad, &gzip(&read(&dir.join(bad))), None);
        report.check(&format!("otel/{bad}"), &decoded, &[], 1);
    }
}

fn aws_expected(record: &Json) -> BTreeMap<String, Json> {
    record
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                aws_column(k).unwrap_or_else(|| panic!("field {k}")),
                v.clone(),
            )
        })
        .collect()
}

fn flowlogs_reader(dir: &Path, report: &mut Report) {
    let cases = read_json(&dir.join("flowlogs-reader/cases.json"));
    let lines: Vec<&str> = cases["v2_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let mut expected = vec![BTreeMap::new(); lines.len()];
    for e in cases["v2_expected"].as_array().unwrap() {
        expected[e["record_index"].as_u64().unwrap() as usize] = aws_expected(&e["expected"]);
    }
    let decoded = decode("V2_RECORDS", lines.join("\n").as_bytes(), None);
    report.check("flowlogs-reader/V2_RECORDS", &decoded, &expected, 0);

    // trawl keeps a millisecond epoch as written; the peer divides it by 1000.
    let ms = &cases["millisecond_record"];
    let mut want = BTreeMap::new();
    for column in ["start", "end"] {
        let secs = iso_epoch_secs(ms["expected"][column].as_str().unwrap()).unwrap();
        want.insert(column.to_string(), json!(secs * 1000));
    }
    let decoded = decode("ms", ms["record"].as_str().unwrap().as_bytes(), None);
    report.check("flowlogs-reader/millisecond_record", &decoded, &[want], 0);

    for name in ["V3_FILE", "V4_FILE", "V5_FILE"] {
        let file = &cases["s3_files"][name];
        let expected: Vec<_> = file["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(aws_expected)
            .collect();
        // V5_FILE's `bogus line` is skipped by the peer and reported by trawl.
        let errors = usize::from(name == "V5_FILE");
        let decoded = decode(name, file["file"].as_str().unwrap().as_bytes(), None);
        report.check(
            &format!("flowlogs-reader/{name}"),
            &decoded,
            &expected,
            errors,
        );
    }
}

fn netobserv(dir: &Path, report: &mut Report) {
    let cases = read_json(&dir.join("netobserv-flowlogs-pipeline/cases.json"));
    for case in cases["cases"].as_array().unwrap() {
        let format = case["fields"].as_array().map(|fields| {
            let names: Vec<&str> = fields.iter().map(|f| f.as_str().unwrap()).collect();
            names.join(" ")
        });
        let records = case["records"].as_u64().unwrap() as usize;
        let mut expected = vec![BTreeMap::new(); records];
        if !case["expected_first"].is_null() {
            expected[0] = aws_expected(&case["expected_first"]);
        }
        let input = case["input"].as_str().unwrap();
        // The peer drops lines it cannot read (its 15-token line): trawl reports them.
        let errors = input.lines().count() - records;
        let decoded = decode("netobserv", input.as_bytes(), format.as_deref());
        report.check(
            &format!("netobserv/{}", case["name"]),
            &decoded,
            &expected,
            errors,
        );
    }
}

#[test]
fn every_peer_record_decodes_to_the_values_its_peer_expects() {
    let Some(dir) = peers_dir() else {
        return;
    };
    let mut report = Report::default();
    elastic_integrations(&dir, &mut report);
    elastic_beats(&dir, &mut report);
    vector_vrl(&dir, &mut report);
    otel_collector(&dir, &mut report);
    flowlogs_reader(&dir, &mut report);
    netobserv(&dir, &mut report);
    println!(
        "peers: {} of {} records match",
        report.matched, report.records
    );
    assert!(
        report.problems.is_empty(),
        "{} of {} peer records match:\n{}",
        report.matched,
        report.records,
        report.problems.join("\n")
    );
    assert_eq!(report.matched, report.records);
}

// See: issue 13 #15. VRL's `parse_ok` group of the June 2026 (version 11)
// fields: its header carries eleven fields older builds did not know, and
// with more than eight unknown names it was not taken for a header.
#[test]
fn the_2026_fields_of_vrls_fixture_decode_from_their_header() {
    let Some(dir) = peers_dir() else {
        return;
    };
    let cases = read_json(&dir.join("vector-vrl/test-cases.json"));
    let group = cases["parse_ok"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| {
            g["format"]
                .as_str()
                .is_some_and(|f| f.contains("next_hop_interface_type"))
        })
        .expect("the 2026 group");
    let header = vrl_format(group["format"].as_str().unwrap());
    let lines: Vec<&str> = group["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let input = format!("{header}\n{}\n", lines.join("\n"));
    let decoded = decode("vrl-2026", input.as_bytes(), None);
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    assert_eq!(decoded.records.len(), 2);
    let first = &decoded.records[0];
    for (column, value) in [
        ("instance_tag", "web"),
        ("instance_tag_2", "web-2"),
        ("interface_tag", "eth0"),
        ("interface_tag_2", "eth0-2"),
        ("asg_tag", "my-asg"),
        ("asg_tag_2", "my-asg-2"),
        ("next_hop_interface_id", "eni-1111aaaa2222bbbb3"),
        ("next_hop_subnet_id", "subnet-aaaaaaaa012345678"),
        ("next_hop_az_id", "apse2-az3"),
        ("next_hop_vpc_id", "vpc-abcdefab012345678"),
        ("next_hop_interface_type", "network_load_balancer"),
    ] {
        assert_eq!(first[column], json!(value), "{column}");
        assert_eq!(decoded.records[1][column], Json::Null, "{column}");
    }
}
