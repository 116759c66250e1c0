//! Saving the index to disk and loading it back, so a restart keeps the
//! ownership history.
//!
//! Format (little-endian): the magic `TRWLIDX3`, a body, and the CRC-32 of
//! the body. The body holds the newest event time and vouched horizon, the
//! workloads (JSON, in id order), every interface's history (the newest
//! event time naming it, its attachment marks, and per address its marks:
//! see [`crate::interface`]), every IP's marks and learned spans (each with
//! the owner it overrides, 0 for none: see [`crate::index`]), the time
//! before which history was pruned (events there are refused), and the
//! metadata sources' positions (what was applied of each, so that a
//! restart applies only what is new).
//!
//! A file of version 1 (`TRWLIDX1`, which kept one `(at, owner)` per
//! interface, the newest) still loads: each interface becomes attached to
//! that owner from `at` on; version 2 (`TRWLIDX2`, spans without the owner
//! they override) loads with no span overriding. Saving writes version 3. The state is checked before it is written and after
//! it is read (marks in order, owner ids known, spans ordered), and the file
//! is written to a temporary name, synced, and renamed over the old one, so
//! a crash leaves either the old file or the new one.
//! Remembered snapshots are not saved: after a restart, events older than
//! the newest event minus the reorder window are placed without them.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::index::{AttributionIndex, IndexConfig, IpRecord, SOURCE_POSITIONS_MAX, Span};
use crate::interface::{Address, InterfaceRecord};
use crate::ipmap::IpMap;
use crate::timeline::{Mark, Timeline};
use crate::workload::{NO_OWNER, Workload, WorkloadTable};

/// The magic of the version written.
const MAGIC: &[u8; 8] = b"TRWLIDX3";

/// The magic of version 2 (learned spans overriding nothing), still read.
const MAGIC_V2: &[u8; 8] = b"TRWLIDX2";

/// The magic of version 1 (one newest owner per interface), still read.
const MAGIC_V1: &[u8; 8] = b"TRWLIDX1";

/// Why a saved index could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Reading or writing the file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        error: io::Error,
    },
    /// The file is not a valid saved index.
    #[error("{path}: not a valid saved index: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PersistError + '_ {
    move |error| PersistError::Io {
        path: path.display().to_string(),
        error,
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> PersistError {
    PersistError::Invalid {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Checks the invariants of every record.
fn check_records(ips: &IpMap<IpRecord>, workloads: usize) -> Result<(), String> {
    for (ip, record) in ips.iter() {
        record
            .timeline
            .check(workloads)
            .map_err(|e| format!("{ip}: {e}"))?;
        for pair in record.learned.windows(2) {
            if pair[0].from > pair[1].from {
                return Err(format!("{ip}: learned spans out of order"));
            }
        }
        if record.learned.iter().any(|s| {
            s.from > s.to
                || s.owner as usize > workloads
                || s.overrides as usize > workloads
                || (s.is_overriding() && s.overrides == s.owner)
        }) {
            return Err(format!("{ip}: invalid learned span"));
        }
    }
    Ok(())
}

impl AttributionIndex {
    /// Writes the index to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), PersistError> {
        let (workloads, ips, newest_at, vouched) = self.parts();
        check_records(ips, workloads.len()).map_err(|reason| invalid(path, reason))?;
        let mut body = Vec::with_capacity(64 + self.mark_count() * 8);
        put_u32(&mut body, newest_at);
        put_u32(&mut body, vouched);
        put_u32(&mut body, workloads.len() as u32);
        for (_, workload) in workloads.iter() {
            let json = serde_json::to_vec(&**workload).map_err(|e| invalid(path, e.to_string()))?;
            put_bytes(&mut body, &json);
        }
        let interfaces: Vec<_> = self.interfaces().collect();
        for (id, record) in &interfaces {
            record
                .check(workloads.len())
                .map_err(|reason| invalid(path, format!("interface {id}: {reason}")))?;
        }
        put_u32(&mut body, interfaces.len() as u32);
        for (id, record) in interfaces {
            put_bytes(&mut body, id.as_bytes());
            put_u32(&mut body, record.named_at);
            put_marks(&mut body, &record.attached);
            put_u32(&mut body, record.addresses.len() as u32);
            for address in &record.addresses {
                put_ip(&mut body, address.ip);
                put_marks(&mut body, &address.marks);
            }
        }
        body.extend_from_slice(&(ips.len() as u64).to_le_bytes());
        for (ip, record) in ips.iter() {
            put_ip(&mut body, ip);
            put_marks(&mut body, &record.timeline);
            put_u32(&mut body, record.learned.len() as u32);
            for span in &record.learned {
                put_u32(&mut body, span.from);
                put_u32(&mut body, span.to);
                put_u32(&mut body, span.owner);
                put_u32(&mut body, span.overrides);
            }
        }
        let (pruned_before, positions) = self.saved_extras();
        put_u32(&mut body, pruned_before);
        put_u32(&mut body, positions.len() as u32);
        for (key, value) in positions {
            put_bytes(&mut body, key.as_bytes());
            put_bytes(&mut body, value.as_bytes());
        }
        let temporary = path.with_extension("tmp");
        let mut file = BufWriter::new(File::create(&temporary).map_err(io_error(&temporary))?);
        file.write_all(MAGIC).map_err(io_error(&temporary))?;
        file.write_all(&body).map_err(io_error(&temporary))?;
        file.write_all(&crc32fast::hash(&body).to_le_bytes())
            .map_err(io_error(&temporary))?;
        let file = file
            .into_inner()
            .map_err(|e| io_error(&temporary)(e.into_error()))?;
        file.sync_all().map_err(io_error(&temporary))?;
        fs::rename(&temporary, path).map_err(io_error(path))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error(dir))?;
        }
        Ok(())
    }

    /// Reads an index written by [`save`](Self::save).
    pub fn load(path: &Path, config: IndexConfig) -> Result<Self, PersistError> {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_error(path))?;
        let (version, body) = match bytes.split_first_chunk::<8>() {
            Some((magic, body)) if magic == MAGIC => (Version::V3, body),
            Some((magic, body)) if magic == MAGIC_V2 => (Version::V2, body),
            Some((magic, body)) if magic == MAGIC_V1 => (Version::V1, body),
            Some((magic, _)) if magic.starts_with(b"TRWLIDX") => {
                return Err(invalid(
                    path,
                    format!(
                        "version {} is not known to this build (it reads 1, 2 and 3)",
                        String::from_utf8_lossy(&magic[7..])
                    ),
                ));
            }
            _ => return Err(invalid(path, "wrong magic bytes")),
        };
        let (body, crc) = body
            .split_last_chunk::<4>()
            .ok_or_else(|| invalid(path, "truncated"))?;
        if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
            return Err(invalid(path, "checksum mismatch"));
        }
        let mut reader = Reader { bytes: body };
        let parsed =
            read_body(&mut reader, version, config).map_err(|reason| invalid(path, reason))?;
        if !reader.bytes.is_empty() {
            return Err(invalid(path, "trailing bytes"));
        }
        Ok(parsed)
    }
}

/// Versions of the format read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// One `(at, owner)` per interface.
    V1,
    /// Interface histories.
    V2,
    /// Learned spans with the owner they override.
    V3,
}

fn read_body(
    r: &mut Reader<'_>,
    version: Version,
    config: IndexConfig,
) -> Result<AttributionIndex, String> {
    let newest_at = r.u32()?;
    let vouched = r.u32()?;
    let mut workloads = WorkloadTable::default();
    for expected in 1..=r.u32()? {
        let workload: Workload = serde_json::from_slice(r.bytes()?).map_err(|e| e.to_string())?;
        if workloads.intern(&workload) != Some(expected) {
            return Err(format!("workload {expected} is a duplicate"));
        }
    }
    let mut interfaces = Vec::new();
    for _ in 0..r.u32()? {
        let id = String::from_utf8(r.bytes()?.to_vec()).map_err(|e| e.to_string())?;
        let record = match version {
            Version::V1 => {
                let (at, owner) = (r.u32()?, r.u32()?);
                InterfaceRecord {
                    attached: Timeline::from_marks(vec![Mark { at, owner }]),
                    addresses: Vec::new(),
                    named_at: at,
                }
            }
            Version::V2 | Version::V3 => {
                let named_at = r.u32()?;
                let attached = Timeline::from_marks(r.marks()?);
                let addresses = (0..r.u32()?)
                    .map(|_| {
                        Ok(Address {
                            ip: r.ip()?,
                            marks: Timeline::from_marks(r.marks()?),
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                InterfaceRecord {
                    attached,
                    addresses,
                    named_at,
                }
            }
        };
        interfaces.push((id, record));
    }
    let mut ips = IpMap::default();
    for _ in 0..r.u64()? {
        let ip = r.ip()?;
        let marks = r.marks()?;
        let learned = (0..r.u32()?)
            .map(|_| {
                Ok(Span {
                    from: r.u32()?,
                    to: r.u32()?,
                    owner: r.u32()?,
                    overrides: match version {
                        Version::V1 | Version::V2 => NO_OWNER,
                        Version::V3 => r.u32()?,
                    },
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        ips.insert(
            ip,
            IpRecord {
                timeline: Timeline::from_marks(marks),
                learned: learned.into(),
            },
        );
    }
    check_records(&ips, workloads.len())?;
    for (id, record) in &interfaces {
        record
            .check(workloads.len())
            .map_err(|reason| format!("interface {id}: {reason}"))?;
    }
    let (pruned_before, positions) = match version {
        // Version 1 kept neither: history is taken to be pruned up to the
        // retention, as the next maintenance would.
        Version::V1 => (
            newest_at.saturating_sub(config.retention_secs),
            BTreeMap::new(),
        ),
        Version::V2 | Version::V3 => read_extras(r)?,
    };
    let mut index =
        AttributionIndex::restore(config, workloads, ips, interfaces, newest_at, vouched);
    index.restore_extras(pruned_before, positions);
    Ok(index)
}

/// Where history was pruned, and the sources' positions (version 2).
fn read_extras(r: &mut Reader<'_>) -> Result<(u32, BTreeMap<String, String>), String> {
    let pruned_before = r.u32()?;
    let count = r.u32()? as usize;
    if count > SOURCE_POSITIONS_MAX {
        return Err(format!(
            "{count} source positions, at most {SOURCE_POSITIONS_MAX}"
        ));
    }
    let mut positions = BTreeMap::new();
    for _ in 0..count {
        let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string());
        let key = text(r.bytes()?)?;
        let value = text(r.bytes()?)?;
        positions.insert(key, value);
    }
    Ok((pruned_before, positions))
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_marks(out: &mut Vec<u8>, timeline: &Timeline) {
    let marks = timeline.marks();
    put_u32(out, marks.len() as u32);
    for mark in marks {
        put_u32(out, mark.at);
        put_u32(out, mark.owner);
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.push(4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(6);
            out.extend_from_slice(&v6.octets());
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("truncated body".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let bytes: [u8; 4] = self.take(4)?.try_into().map_err(|_| "truncated body")?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let bytes: [u8; 8] = self.take(8)?.try_into().map_err(|_| "truncated body")?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn marks(&mut self) -> Result<Vec<Mark>, String> {
        (0..self.u32()?)
            .map(|_| {
                Ok(Mark {
                    at: self.u32()?,
                    owner: self.u32()?,
                })
            })
            .collect()
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn ip(&mut self) -> Result<IpAddr, String> {
        match self.take(1)?[0] {
            4 => {
                let octets: [u8; 4] = self.take(4)?.try_into().map_err(|_| "truncated ip")?;
                Ok(IpAddr::V4(Ipv4Addr::from(octets)))
            }
            6 => {
                let octets: [u8; 16] = self.take(16)?.try_into().map_err(|_| "truncated ip")?;
                Ok(IpAddr::V6(Ipv6Addr::from(octets)))
            }
            other => Err(format!("unknown address family {other}")),
        }
    }
}
