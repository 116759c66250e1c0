//! Metadata events: the public JSON-lines format that tells trawl who owns
//! which IP, and the CSV snapshot loader.
//!
//! ```text
//! {"type":"assign","ip":"10.1.2.3","at":"2026-11-22T10:00:00Z","interface_id":"eni-0a1b…",
//!  "workload":{"app":"api","cluster":"api-prod-v042","account":"123456789012",
//!              "region":"us-east-1","az":"use1-az2","kind":"instance","labels":{"team":"edge"}}}
//! {"type":"release","ip":"10.1.2.3","at":"2026-11-22T10:05:00Z"}
//! {"type":"snapshot","at":"2026-11-22T10:10:00Z","owners":[{"ip":"10.1.2.4","workload":{…}}]}
//! {"type":"interface","interface_id":"eni-0a1b…","at":1795341600,"workload":{…}}
//! ```
//!
//! `at` is RFC 3339 or epoch seconds; `interface_id` is optional on assign
//! and maps that ENI to the workload (for records without a usable IP, and
//! for learning owners from flows). Workload fields may be missing (null).
//!
//! CSV snapshots: a header naming `ip` and any of `app,cluster,account,
//! region,az,kind,interface_id`, plus `label:NAME` columns; the snapshot
//! time comes from an `at` column (every row the same) or from the caller.

use std::io::{BufRead, Read};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::time::{Secs, deserialize_time, parse_time};
use crate::workload::Workload;

/// One metadata event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MetadataEvent {
    /// `ip` belongs to `workload` from `at` on (closing any earlier interval).
    Assign {
        /// The address.
        ip: IpAddr,
        /// From when.
        #[serde(deserialize_with = "deserialize_time")]
        at: Secs,
        /// The new owner.
        workload: Workload,
        /// The ENI the address is on, if known.
        #[serde(default)]
        interface_id: Option<String>,
    },
    /// Nobody owns `ip` from `at` on.
    Release {
        /// The address.
        ip: IpAddr,
        /// From when.
        #[serde(deserialize_with = "deserialize_time")]
        at: Secs,
    },
    /// The complete set of owners at `at`: every IP not listed (within
    /// `within`, if it names prefixes, and not in `except`) is released.
    Snapshot {
        /// When the snapshot was taken.
        #[serde(deserialize_with = "deserialize_time")]
        at: Secs,
        /// Every owner at that time.
        owners: Vec<SnapshotOwner>,
        /// The networks the snapshot covers: only IPs in them are released
        /// (a poller of one region's VPCs releases nothing of another's);
        /// empty: every IP.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        within: Vec<ipnet::IpNet>,
        /// Networks or addresses inside `within` the snapshot says nothing
        /// of: neither listed nor released (an EC2 poll leaves the
        /// addresses the VPC CNI gives pods to the Kubernetes watcher).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        except: Vec<ipnet::IpNet>,
    },
    /// ENI `interface_id` belongs to `workload` from `at` on.
    Interface {
        /// The ENI.
        interface_id: String,
        /// From when.
        #[serde(deserialize_with = "deserialize_time")]
        at: Secs,
        /// Its owner.
        workload: Workload,
    },
    /// Flows at interface `interface_id` showed `ip` as its own address
    /// over `[from, to]` (a heartbeat another process learned and shared:
    /// applied by the same rules as one learned here, see
    /// `AttributionIndex::learn`). It declares nothing: it moves neither
    /// the newest event time nor the horizon.
    Heartbeat {
        /// The address.
        ip: IpAddr,
        /// The ENI whose flows showed it.
        interface_id: String,
        /// First flow start.
        #[serde(deserialize_with = "deserialize_time")]
        from: Secs,
        /// Last flow end.
        #[serde(deserialize_with = "deserialize_time")]
        to: Secs,
    },
}

/// One owner listed in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotOwner {
    /// The address.
    pub ip: IpAddr,
    /// Its owner.
    pub workload: Workload,
    /// The ENI the address is on, if known.
    #[serde(default)]
    pub interface_id: Option<String>,
}

impl MetadataEvent {
    /// The event's time.
    pub fn at(&self) -> Secs {
        match self {
            MetadataEvent::Assign { at, .. }
            | MetadataEvent::Release { at, .. }
            | MetadataEvent::Snapshot { at, .. }
            | MetadataEvent::Interface { at, .. } => *at,
            MetadataEvent::Heartbeat { from, .. } => *from,
        }
    }

    /// Whether the event declares ownership (every kind but heartbeats,
    /// which report what flows showed).
    pub fn is_declaration(&self) -> bool {
        !matches!(self, MetadataEvent::Heartbeat { .. })
    }
}

/// A metadata input that could not be read, with its place.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// A JSON line that is not a valid event.
    #[error("{source_name}: line {line}: {message}")]
    Json {
        /// The input's name.
        source_name: String,
        /// 1-based line.
        line: u64,
        /// What serde said (names the field).
        message: String,
    },
    /// A CSV row that is not a valid snapshot row.
    #[error("{source_name}: line {line}: field {field}: {message}")]
    Csv {
        /// The input's name.
        source_name: String,
        /// 1-based line.
        line: u64,
        /// The column at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The input could not be read.
    #[error("{source_name}: {error}")]
    Io {
        /// The input's name.
        source_name: String,
        /// The read error.
        error: std::io::Error,
    },
}

/// Reads JSON-lines events, handing each good event and each error to the
/// callbacks (a bad line never stops reading). Blank lines and lines
/// starting with `#` are skipped.
pub fn read_json_lines(
    reader: impl BufRead,
    source_name: &str,
    mut on_event: impl FnMut(MetadataEvent),
    mut on_error: impl FnMut(EventError),
) {
    for (index, line) in reader.lines().enumerate() {
        let line_no = index as u64 + 1;
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                on_error(EventError::Io {
                    source_name: source_name.to_string(),
                    error,
                });
                return;
            }
        };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match serde_json::from_str::<MetadataEvent>(trimmed) {
            Ok(event) => on_event(event),
            Err(error) => on_error(EventError::Json {
                source_name: source_name.to_string(),
                line: line_no,
                message: error.to_string(),
            }),
        }
    }
}

/// Reads a CSV snapshot into one [`MetadataEvent::Snapshot`]. Rows with
/// errors are reported and skipped; `at` is used when the file has no `at`
/// column.
pub fn read_csv_snapshot(
    reader: impl Read,
    source_name: &str,
    at: Option<Secs>,
    mut on_error: impl FnMut(EventError),
) -> Option<MetadataEvent> {
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let error = |line: u64, field: &str, message: String| EventError::Csv {
        source_name: source_name.to_string(),
        line,
        field: field.to_string(),
        message,
    };
    let headers = match csv.headers() {
        Ok(headers) => headers.clone(),
        Err(e) => {
            on_error(error(1, "header", e.to_string()));
            return None;
        }
    };
    if !headers.iter().any(|h| h == "ip") {
        on_error(error(1, "ip", "the header has no `ip` column".into()));
        return None;
    }
    let mut snapshot_at = at;
    let mut owners = Vec::new();
    for (index, row) in csv.records().enumerate() {
        let line = index as u64 + 2;
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                on_error(error(line, "row", e.to_string()));
                continue;
            }
        };
        match csv_owner(&headers, &row, &mut snapshot_at) {
            Ok(owner) => owners.push(owner),
            Err((field, message)) => on_error(error(line, &field, message)),
        }
    }
    match snapshot_at {
        Some(at) => Some(MetadataEvent::Snapshot {
            at,
            owners,
            within: Vec::new(),
            except: Vec::new(),
        }),
        None => {
            on_error(error(
                1,
                "at",
                "no `at` column and no snapshot time given".into(),
            ));
            None
        }
    }
}

fn csv_owner(
    headers: &csv::StringRecord,
    row: &csv::StringRecord,
    snapshot_at: &mut Option<Secs>,
) -> Result<SnapshotOwner, (String, String)> {
    let mut ip = None;
    let mut workload = Workload::default();
    let mut interface_id = None;
    for (name, value) in headers.iter().zip(row.iter()) {
        let present = (!value.is_empty()).then(|| value.to_string());
        match name {
            "ip" => {
                ip = Some(
                    value
                        .parse::<IpAddr>()
                        .map_err(|e| (name.to_string(), format!("{value:?}: {e}")))?,
                );
            }
            "at" => {
                let at = parse_time(value).map_err(|e| (name.to_string(), e.to_string()))?;
                if snapshot_at.is_some_and(|first| first != at) {
                    return Err((
                        name.into(),
                        "every row of a snapshot must have the same `at`".into(),
                    ));
                }
                *snapshot_at = Some(at);
            }
            "app" => workload.app = present,
            "cluster" => workload.cluster = present,
            "account" => workload.account = present,
            "region" => workload.region = present,
            "az" => workload.az = present,
            "kind" => workload.kind = present,
            "interface_id" => interface_id = present,
            other => match other.strip_prefix("label:") {
                Some(label) => {
                    if let Some(value) = present {
                        workload.labels.insert(label.to_string(), value);
                    }
                }
                None => return Err((other.to_string(), "unknown column".into())),
            },
        }
    }
    let ip = ip.ok_or_else(|| ("ip".to_string(), "missing".to_string()))?;
    Ok(SnapshotOwner {
        ip,
        workload,
        interface_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_parses_with_either_time_form() {
        let input = r#"
{"type":"assign","ip":"10.1.2.3","at":"2026-11-22T10:00:00Z","workload":{"app":"api","kind":"instance","labels":{"team":"edge"}},"interface_id":"eni-1"}
# a comment
{"type":"release","ip":"10.1.2.3","at":1795341900}
{"type":"snapshot","at":"2026-11-22T10:10:00Z","owners":[{"ip":"2001:db8::1","workload":{"app":"db"}}]}
{"type":"interface","interface_id":"eni-2","at":1795341600,"workload":{"app":"lb"}}
{"type":"assign","ip":"10.1.2.3","at":"yesterday","workload":{}}
{"type":"rename","ip":"10.1.2.3"}
"#;
        let mut events = Vec::new();
        let mut errors = Vec::new();
        read_json_lines(
            input.as_bytes(),
            "meta.jsonl",
            |e| events.push(e),
            |e| errors.push(e.to_string()),
        );
        assert_eq!(events.len(), 4);
        assert_eq!(
            events[1],
            MetadataEvent::Release {
                ip: "10.1.2.3".parse().unwrap(),
                at: 1_795_341_900
            }
        );
        assert_eq!(events[0].at(), 1_795_341_600);
        assert_eq!(errors.len(), 2);
        assert!(
            errors[0].starts_with("meta.jsonl: line 7: invalid time \"yesterday\""),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].starts_with("meta.jsonl: line 8: unknown variant `rename`"),
            "{}",
            errors[1]
        );
    }

    #[test]
    fn csv_snapshot_with_labels_and_a_bad_row() {
        let input = "ip,app,kind,label:team,at\n10.0.0.1,api,instance,edge,2026-11-22T10:00:00Z\nnot-an-ip,db,,,2026-11-22T10:00:00Z\n10.0.0.2,db,,,2026-11-22T10:00:00Z\n";
        let mut errors = Vec::new();
        let event = read_csv_snapshot(input.as_bytes(), "owners.csv", None, |e| {
            errors.push(e.to_string())
        })
        .unwrap();
        let MetadataEvent::Snapshot { at, owners, .. } = event else {
            panic!("not a snapshot")
        };
        assert_eq!(at, 1_795_341_600);
        assert_eq!(owners.len(), 2);
        assert_eq!(owners[0].workload.labels["team"], "edge");
        assert_eq!(owners[1].workload.kind, None);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("owners.csv: line 3: field ip: \"not-an-ip\""),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn csv_snapshot_needs_a_time() {
        let mut errors = Vec::new();
        assert!(
            read_csv_snapshot("ip,app\n10.0.0.1,api\n".as_bytes(), "o.csv", None, |e| {
                errors.push(e.to_string())
            })
            .is_none()
        );
        assert!(errors[0].contains("field at"));
        let event = read_csv_snapshot(
            "ip,app\n10.0.0.1,api\n".as_bytes(),
            "o.csv",
            Some(5),
            |_| {},
        );
        assert!(matches!(event, Some(MetadataEvent::Snapshot { at: 5, .. })));
    }
}
