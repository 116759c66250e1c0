//! `trawl query`: run one SQL statement against a data directory (opened
//! and locked for the duration) or a running trawl (`--server URL`), and
//! print the answer as a table, CSV or JSON.
//!
//! Against a data directory the statement runs unrestricted: whoever may
//! open the directory owns it. Against a server it runs as the server
//! allows (read-only, limited), over HTTPS when the URL says so (verified
//! against Mozilla's roots or `--ca`), with `--token` / `TRAWL_TOKEN`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};

use anyhow::{Context, bail};
use clap::Args;
use trawl_attrib::{AttributionIndex, IndexConfig};
use trawl_server::{Format, encode};
use trawl_store::{QueryResult, SqlEngine, SqlError, Store, StoreConfig};

use crate::setup::DataDirLock;

/// Arguments of `trawl query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Data directory (not in use by a running trawl). Runs any statement,
    /// writes included: for the local owner of the directory.
    #[arg(long, value_name = "DIR", conflicts_with = "server")]
    data_dir: Option<PathBuf>,
    /// A running trawl's URL (`http://127.0.0.1:8941`, `https://…`): read-only SQL.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Bearer token for `--server`.
    #[arg(
        long,
        env = "TRAWL_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// PEM file of the CA that signed the server's certificate (private CAs).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Output: table, csv or json.
    #[arg(long, default_value = "table")]
    format: String,
    /// The SQL statement.
    sql: String,
}

/// Runs `trawl query`.
pub fn run(args: &QueryArgs) -> anyhow::Result<ExitCode> {
    let Some(format) = Format::parse(&args.format).filter(|f| *f != Format::Arrow) else {
        bail!("--format {}: expected table, csv or json", args.format);
    };
    let result = match &args.server {
        Some(url) => match from_server(url, args)? {
            Ok(result) => result,
            Err(message) => {
                eprintln!("trawl: {message}");
                return Ok(ExitCode::from(1));
            }
        },
        None => {
            let dir = args
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("trawl-data"));
            match from_data_dir(&dir, &args.sql)? {
                Ok(result) => result,
                Err(error) => {
                    eprintln!("trawl: {error}");
                    return Ok(ExitCode::from(1));
                }
            }
        }
    };
    let bytes = encode(&result, format)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&bytes)?;
    if format == Format::Json {
        stdout.write_all(b"\n")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn from_data_dir(
    dir: &std::path::Path,
    sql: &str,
) -> anyhow::Result<Result<QueryResult, SqlError>> {
    if !dir.join("MANIFEST").exists() {
        bail!(
            "{}: not a trawl data directory (no MANIFEST)",
            dir.display()
        );
    }
    let _lock = DataDirLock::acquire(dir)?;
    let store =
        Store::open(StoreConfig::new(dir)).with_context(|| format!("opening {}", dir.display()))?;
    let snapshot = dir.join("attribution.snapshot");
    let index = if snapshot.exists() {
        AttributionIndex::load(&snapshot, IndexConfig::default())
            .with_context(|| format!("loading {}", snapshot.display()))?
    } else {
        AttributionIndex::default()
    };
    let engine = SqlEngine::new(
        Arc::new(RwLock::new(store)),
        Some(Arc::new(RwLock::new(index))),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()?;
    Ok(runtime.block_on(engine.query(sql)))
}

/// The HTTP client: statuses as values, `--ca` as the only root when given
/// (also `trawl tail`'s).
pub(crate) fn agent(ca: Option<&std::path::Path>) -> anyhow::Result<ureq::Agent> {
    let mut config = ureq::Agent::config_builder().http_status_as_error(false);
    if let Some(path) = ca {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            if let ureq::tls::PemItem::Certificate(cert) =
                item.with_context(|| format!("{}: not PEM", path.display()))?
            {
                certs.push(cert);
            }
        }
        if certs.is_empty() {
            bail!("{}: no CERTIFICATE in it", path.display());
        }
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
            .build();
        config = config.tls_config(tls);
    }
    Ok(config.build().into())
}

/// Asks a server for Arrow IPC and decodes it; `Err(message)` for a 4xx.
fn from_server(url: &str, args: &QueryArgs) -> anyhow::Result<Result<QueryResult, String>> {
    let endpoint = format!("{}/api/v1/sql?format=arrow", url.trim_end_matches('/'));
    let mut request = agent(args.ca.as_deref())?.post(&endpoint);
    if let Some(token) = &args.token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let response = request
        .send_json(serde_json::json!({ "sql": args.sql }))
        .with_context(|| format!("POST {endpoint}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .with_context(|| format!("reading the answer of {endpoint}"))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Ok(Err(format!("{status}: {message}")));
    }
    let reader = arrow::ipc::reader::StreamReader::try_new(body.as_slice(), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok(Ok(QueryResult { schema, batches }))
}
