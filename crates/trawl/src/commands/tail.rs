//! `trawl tail`: follow a running trawl's live tail (`GET /api/v1/tail`,
//! server-sent events) and print each flow as it is stored: one JSON object
//! a line (the row `/api/v1/sql` would answer), or a compact table line.
//!
//! The server sends at most `--rate` flows a second (and at most its own
//! `tail_rows_per_sec_max`), a uniform sample of what matched; a window
//! that left flows out is noted on stderr (`trawl: skipped N flows (rate
//! limit)`), as are batches the server dropped because this client fell
//! behind. A refused request (bad filter, too many streams, no token)
//! exits 1 with the server's message; the stream's end (the server's
//! `tail_stream_secs_max`, or it stopping) exits 0; Ctrl-C ends it.
//!
//! The token goes in `Authorization` (`--token` / `TRAWL_TOKEN`); an open
//! server (loopback by default) needs none.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use crate::commands::query::agent;

/// Longest event line read from a server (a `rows` event at the highest
/// rate is far below it).
const LINE_BYTES_MAX: u64 = 64 << 20;

/// Arguments of `trawl tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// A running trawl's URL (`http://127.0.0.1:8941`, `https://…`).
    #[arg(long, value_name = "URL")]
    server: String,
    /// An SQL condition over the `flows` columns (`dst_app = 'checkout'
    /// AND action = 'REJECT'`); default: every flow.
    #[arg(long = "where", value_name = "SQL", default_value = "")]
    filter: String,
    /// Bearer token (read role), for a server that needs one.
    #[arg(
        long,
        env = "TRAWL_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// Most flows a second to receive (the server may allow fewer).
    #[arg(long, value_name = "N")]
    rate: Option<u64>,
    /// Output: json (one object a line) or table.
    #[arg(long, default_value = "json")]
    format: String,
    /// PEM file of the CA that signed the server's certificate (private CAs).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
}

/// How rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Json,
    Table,
}

/// What an event asks of the loop.
enum Next {
    Continue,
    Exit(ExitCode),
}

/// Runs `trawl tail`.
pub fn run(args: &TailArgs) -> anyhow::Result<ExitCode> {
    let output = match args.format.as_str() {
        "json" => Output::Json,
        "table" => Output::Table,
        other => bail!("--format {other}: expected json or table"),
    };
    let endpoint = format!("{}/api/v1/tail", args.server.trim_end_matches('/'));
    let mut request = agent(args.ca.as_deref())?
        .get(&endpoint)
        .query("where", &args.filter)
        .header("Accept", "text/event-stream");
    if let Some(rate) = args.rate {
        request = request.query("rate", rate.to_string());
    }
    if let Some(token) = &args.token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let response = request.call().with_context(|| format!("GET {endpoint}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response
            .into_body()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .unwrap_or_default();
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        eprintln!("trawl: {status}: {message}");
        return Ok(ExitCode::from(1));
    }
    let mut reader = BufReader::new(response.into_body().into_reader());
    follow(&mut reader, output, &mut std::io::stdout().lock())
}

/// Reads events until the stream ends (see the module header).
fn follow(
    reader: &mut impl BufRead,
    output: Output,
    stdout: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let (mut event, mut data) = (String::new(), String::new());
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .by_ref()
            .take(LINE_BYTES_MAX)
            .read_until(b'\n', &mut line)
            .context("reading the stream")?;
        if read == 0 {
            eprintln!("trawl: the server closed the stream");
            return Ok(ExitCode::from(1));
        }
        if !line.ends_with(b"\n") && read as u64 == LINE_BYTES_MAX {
            bail!("the server sent a line longer than {LINE_BYTES_MAX} bytes");
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            let next = dispatch(&event, &data, output, stdout);
            event.clear();
            data.clear();
            match next {
                Ok(Next::Continue) => continue,
                Ok(Next::Exit(code)) => return Ok(code),
                // `trawl tail | head`: the reader left; not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(ExitCode::SUCCESS);
                }
                Err(e) => return Err(e).context("writing to stdout"),
            }
        }
        if text.starts_with(':') {
            continue;
        }
        let (field, value) = text.split_once(':').unwrap_or((text, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = value.to_string(),
            "data" => {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
            _ => {}
        }
    }
}

/// Handles one event: prints its rows, notes skips and losses on stderr.
fn dispatch(
    event: &str,
    data: &str,
    output: Output,
    out: &mut impl Write,
) -> std::io::Result<Next> {
    let value: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    match event {
        "rows" => {
            for row in value["rows"].as_array().into_iter().flatten() {
                match output {
                    Output::Json => writeln!(out, "{row}")?,
                    Output::Table => writeln!(out, "{}", table_line(row))?,
                }
            }
            out.flush()?;
            let skipped = value["skipped"].as_u64().unwrap_or(0);
            if skipped > 0 {
                eprintln!("trawl: skipped {skipped} flows (rate limit)");
            }
            let lagged = value["lagged_batches"].as_u64().unwrap_or(0);
            if lagged > 0 {
                eprintln!(
                    "trawl: the server dropped {lagged} batches of flows for this stream (it fell behind)"
                );
            }
            Ok(Next::Continue)
        }
        "end" => {
            let reason = value["reason"].as_str().unwrap_or("no reason given");
            eprintln!("trawl: the server ended the stream: {reason}");
            Ok(Next::Exit(ExitCode::SUCCESS))
        }
        "error" => {
            let message = value["error"].as_str().unwrap_or(data);
            eprintln!("trawl: {message}");
            Ok(Next::Exit(ExitCode::from(1)))
        }
        _ => Ok(Next::Continue),
    }
}

/// `time  src_app→dst_app  src:port → dst:port  protocol  action  bytes`.
fn table_line(row: &Value) -> String {
    let text = |name: &str| match &row[name] {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let protocol = match row["protocol"].as_u64() {
        Some(1) => "icmp".to_string(),
        Some(6) => "tcp".to_string(),
        Some(17) => "udp".to_string(),
        Some(58) => "icmpv6".to_string(),
        _ => text("protocol"),
    };
    format!(
        "{}  {}→{}  {}:{} → {}:{}  {}  {}  {} B",
        text("time"),
        text("src_app"),
        text("dst_app"),
        text("src_addr"),
        text("src_port"),
        text("dst_addr"),
        text("dst_port"),
        protocol,
        text("action"),
        text("bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_across_lines_and_comments() {
        let stream = b": keep-alive\n\nevent: hello\ndata: {\"columns\":[],\"rate\":4}\n\n\
event: rows\ndata: {\"rows\":[{\"src_app\":\"web\",\"dst_app\":\"db\",\"protocol\":6,\
\"src_addr\":\"10.0.0.1\",\"src_port\":40000,\"dst_addr\":\"10.0.0.2\",\"dst_port\":5432,\
\"action\":\"ACCEPT\",\"bytes\":10,\"time\":\"2026-12-05T10:00:00\"}],\"matched\":3,\"skipped\":2,\"lagged_batches\":0}\n\n\
event: end\ndata: {\"reason\":\"done\"}\n\n";
        let mut reader = &stream[..];
        let mut out = Vec::new();
        let code = follow(&mut reader, Output::Json, &mut out).unwrap();
        assert_eq!(format!("{code:?}"), format!("{:?}", ExitCode::SUCCESS));
        let printed: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(printed["dst_port"], 5432);
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        let row: Value = serde_json::from_str(
            r#"{"src_app":"web","dst_app":"db","protocol":6,"src_addr":"10.0.0.1","src_port":40000,"dst_addr":"10.0.0.2","dst_port":5432,"action":"ACCEPT","bytes":10,"time":"2026-12-05T10:00:00"}"#,
        )
        .unwrap();
        assert_eq!(
            table_line(&row),
            "2026-12-05T10:00:00  web→db  10.0.0.1:40000 → 10.0.0.2:5432  tcp  ACCEPT  10 B"
        );
    }
}
