//! Deterministic sample flow-log lines for benches, tests and `trawl generate`.
//!
//! The mix resembles a busy VPC in AWS's default (version 2) format:
//! mostly accepted IPv4 TCP between private addresses with ephemeral client
//! ports, some UDP and ICMP, rejected probes from the internet, a share of
//! IPv6, and NODATA / SKIPDATA records. The same seed always yields the same
//! lines, and [`SampleTotals`] says exactly what was written, so tests can
//! check decoded counts against it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::field::Field;
use crate::format::LogFormat;
use crate::record::{Action, FlowRecord, LogStatus, Value};
use crate::write::write_line;

/// What a [`SampleLines`] generator has written so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleTotals {
    /// Records written.
    pub records: u64,
    /// NODATA records among them.
    pub nodata_records: u64,
    /// SKIPDATA records among them.
    pub skipdata_records: u64,
    /// REJECT records among them.
    pub rejected_records: u64,
    /// Sum of `bytes` over all records.
    pub bytes: u64,
    /// Sum of `packets` over all records.
    pub packets: u64,
}

/// splitmix64: a small, fast, seeded generator, good enough for sample data
/// and simulations (not for anything that must be unpredictable).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`; slightly biased for huge `n`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `low..high`.
    pub fn range(&mut self, low: i64, high: i64) -> i64 {
        low + self.below(high.abs_diff(low)) as i64
    }
}

/// An endless, seeded source of default-format record lines.
#[derive(Debug, Clone)]
pub struct SampleLines {
    rng: SplitMix64,
    time: u64,
    format: LogFormat,
    totals: SampleTotals,
}

/// Start of the sample's clock: 2026-11-22T00:00:00Z.
pub const SAMPLE_EPOCH_SECS: u64 = 1_795_305_600;

impl SampleLines {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SampleLines {
            rng: SplitMix64::new(seed),
            time: SAMPLE_EPOCH_SECS,
            format: LogFormat::default(),
            totals: SampleTotals::default(),
        }
    }

    /// The format lines are written in (AWS's default).
    pub fn format(&self) -> &LogFormat {
        &self.format
    }

    /// Totals of everything written so far.
    pub fn totals(&self) -> &SampleTotals {
        &self.totals
    }

    fn next(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.rng.below(n)
    }

    /// Appends one line (with its newline) to `out`.
    pub fn write_next(&mut self, out: &mut Vec<u8>) {
        let mut record = FlowRecord::new();
        let account = ACCOUNTS[self.below(ACCOUNTS.len() as u64) as usize];
        let eni = self.below(4096);
        let eni_text = format!("eni-{eni:017x}");
        self.time += self.below(2);
        let start = self.time - self.below(60);
        record.set(Field::Version, Value::Int(2));
        record.set(Field::AccountId, Value::Str(account));
        record.set(Field::InterfaceId, Value::Str(&eni_text));
        record.set(Field::Start, Value::Int(start));
        record.set(Field::End, Value::Int(start + 60));
        let roll = self.below(1000);
        if roll < 15 {
            let status = if roll < 12 {
                LogStatus::NoData
            } else {
                LogStatus::SkipData
            };
            record.set(Field::LogStatus, Value::LogStatus(status));
        } else {
            self.fill_flow(&mut record, roll);
        }
        self.count(&record);
        write_line(&self.format, &record, out);
        out.push(b'\n');
    }

    fn fill_flow(&mut self, record: &mut FlowRecord<'_>, roll: u64) {
        let (src, dst) = if roll < 45 {
            (self.ipv6(), self.ipv6())
        } else if roll < 120 {
            (self.public_v4(), self.private_v4())
        } else {
            (self.private_v4(), self.private_v4())
        };
        let protocol = match self.below(100) {
            0..=84 => 6,
            85..=97 => 17,
            _ => 1,
        };
        let (src_port, dst_port) = if protocol == 1 {
            (0, 0)
        } else {
            let service = SERVICE_PORTS[self.below(SERVICE_PORTS.len() as u64) as usize];
            (32768 + self.below(28232), service)
        };
        let packets = 1 + self.below(200);
        let bytes = packets * (40 + self.below(1400));
        let action = if (45..120).contains(&roll) && self.below(2) == 0 {
            Action::Reject
        } else {
            Action::Accept
        };
        record.set(Field::SrcAddr, Value::Addr(src));
        record.set(Field::DstAddr, Value::Addr(dst));
        record.set(Field::SrcPort, Value::Int(src_port));
        record.set(Field::DstPort, Value::Int(dst_port));
        record.set(Field::Protocol, Value::Int(protocol));
        record.set(Field::Packets, Value::Int(packets));
        record.set(Field::Bytes, Value::Int(bytes));
        record.set(Field::Action, Value::Action(action));
        record.set(Field::LogStatus, Value::LogStatus(LogStatus::Ok));
    }

    fn count(&mut self, record: &FlowRecord<'_>) {
        let totals = &mut self.totals;
        totals.records += 1;
        match record.log_status() {
            Some(LogStatus::NoData) => totals.nodata_records += 1,
            Some(LogStatus::SkipData) => totals.skipdata_records += 1,
            _ => {}
        }
        if record.action() == Some(Action::Reject) {
            totals.rejected_records += 1;
        }
        totals.bytes += record.bytes().unwrap_or(0);
        totals.packets += record.packets().unwrap_or(0);
    }

    fn private_v4(&mut self) -> IpAddr {
        let n = self.below(1 << 16) as u32;
        IpAddr::V4(Ipv4Addr::from(
            0x0a00_0000 | (self.below(4) as u32) << 16 | n,
        ))
    }

    fn public_v4(&mut self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xcb00_7100 | self.below(256) as u32))
    }

    fn ipv6(&mut self) -> IpAddr {
        let host = u128::from(self.next());
        IpAddr::V6(Ipv6Addr::from(0x2001_0db8_1234_a100_u128 << 64 | host))
    }
}

const ACCOUNTS: [&str; 4] = ["123456789010", "210987654321", "555555555555", "unknown"];

const SERVICE_PORTS: [u64; 10] = [443, 443, 443, 80, 5432, 6379, 9092, 8080, 22, 53];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::LineDecoder;

    #[test]
    fn same_seed_same_lines_and_every_line_decodes() {
        let (mut a, mut b) = (SampleLines::new(7), SampleLines::new(7));
        let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
        for _ in 0..2000 {
            a.write_next(&mut out_a);
            b.write_next(&mut out_b);
        }
        assert_eq!(out_a, out_b);
        let decoder = LineDecoder::default();
        let mut bytes = 0;
        for line in out_a.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            bytes += decoder.decode(line).unwrap().bytes().unwrap_or(0);
        }
        assert_eq!(bytes, a.totals().bytes);
        assert!(a.totals().nodata_records > 0 && a.totals().rejected_records > 0);
    }
}
