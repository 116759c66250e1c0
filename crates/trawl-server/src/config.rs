//! `[server]`: who may reach the HTTP surface and how much one caller may
//! take. Every option has a default (loopback, open, bounded); the binary
//! nests this section in its config file and `trawl.example.toml` lists
//! each option with a line of docs.
//!
//! Invariants [`ServerConfig::validate`] keeps: every limit is at least 1
//! (the live tail's two at most [`TAIL_ROWS_PER_SEC_LIMIT`] and
//! [`TAIL_STREAM_SECS_LIMIT`]),
//! TLS has both halves or neither, configured token hashes are 64 hex
//! digits, and allowed origins are `scheme://host[:port]` without a path.

use std::path::PathBuf;

use serde::Deserialize;

use crate::auth::TokenEntry;

/// The `[server]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Origins (`https://grafana.example.com`) whose browser pages may call
    /// the API (CORS is answered for them); the server's own origin always may.
    pub allowed_origins: Vec<String>,
    /// Host names (with or without `:port`) the server answers to besides
    /// loopback names and IP literals (DNS-rebinding defence).
    pub public_hosts: Vec<String>,
    /// Bearer tokens, stored as SHA-256 hex digests.
    pub tokens: Vec<TokenEntry>,
    /// A file of `ROLE:TOKEN` lines (plain tokens; keep it private).
    pub token_file: Option<PathBuf>,
    /// Serve a non-loopback address without tokens (refused otherwise).
    pub allow_unauthenticated: bool,
    /// `/metrics` without a token even when tokens are configured.
    pub metrics_open: bool,
    /// TLS certificate chain (PEM); with `tls_key`, the server speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Longest a query may run (seconds); past it: 504 and the query is cancelled.
    pub query_timeout_secs: u64,
    /// Memory pool for query execution (bytes); unset: 25 % of physical memory.
    pub query_memory_bytes_max: Option<u64>,
    /// Queries running at once; unset: 2 × cores.
    pub queries_max: Option<usize>,
    /// Longest a query waits for a free slot before a 429 (milliseconds).
    pub query_queue_wait_ms: u64,
    /// Most rows in one answer.
    pub result_rows_max: usize,
    /// Most bytes in one answer (collected Arrow buffers, and the encoded body).
    pub result_bytes_max: usize,
    /// Largest body of a flow or Firehose push (bytes).
    pub push_bytes_max: usize,
    /// Largest body of a SQL request (bytes).
    pub sql_bytes_max: usize,
    /// Largest body of a metadata push (bytes).
    pub metadata_bytes_max: usize,
    /// Connections served at once; more wait in the kernel's backlog.
    pub connections_max: usize,
    /// Longest wait for a request's headers, also on an idle kept-alive connection (seconds).
    pub header_read_timeout_secs: u64,
    /// Longest pause while a request body arrives (seconds).
    pub body_read_timeout_secs: u64,
    /// Longest a request may take from its headers to its answer (seconds).
    pub request_timeout_secs: u64,
    /// Longest a write may wait for the client to read (seconds); past it
    /// the connection is closed (a client that never reads holds no slot).
    pub write_timeout_secs: u64,
    /// Live tail streams (`GET /api/v1/tail`) open at once; past it: 429.
    pub tail_streams_max: usize,
    /// Most flows one tail stream sends a second (a client may ask for
    /// fewer); the rest are counted as skipped.
    pub tail_rows_per_sec_max: usize,
    /// Longest a tail stream stays open (seconds); the client reconnects.
    pub tail_stream_secs_max: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            allowed_origins: Vec::new(),
            public_hosts: Vec::new(),
            tokens: Vec::new(),
            token_file: None,
            allow_unauthenticated: false,
            metrics_open: false,
            tls_cert: None,
            tls_key: None,
            query_timeout_secs: 30,
            query_memory_bytes_max: None,
            queries_max: None,
            query_queue_wait_ms: 2_000,
            result_rows_max: 1_000_000,
            result_bytes_max: 256 << 20,
            push_bytes_max: 64 << 20,
            sql_bytes_max: 4 << 20,
            metadata_bytes_max: 4 << 20,
            connections_max: 1_024,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            request_timeout_secs: 300,
            write_timeout_secs: 30,
            tail_streams_max: 8,
            tail_rows_per_sec_max: 200,
            tail_stream_secs_max: 3600,
        }
    }
}

/// Highest `tail_rows_per_sec_max`: a stream keeps a quarter second's
/// rows in memory, and a terminal or page cannot show more anyway.
pub const TAIL_ROWS_PER_SEC_LIMIT: u64 = 100_000;

/// Highest `tail_stream_secs_max` (30 days).
pub const TAIL_STREAM_SECS_LIMIT: u64 = 30 * 86_400;

/// A `[server]` option that cannot work, named.
#[derive(Debug, thiserror::Error)]
#[error("[server] {option}: {problem}")]
pub struct ConfigError {
    /// The option.
    pub option: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl ServerConfig {
    /// Checks the invariants in the module header.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("query_timeout_secs", self.query_timeout_secs as usize),
            ("result_rows_max", self.result_rows_max),
            ("result_bytes_max", self.result_bytes_max),
            ("push_bytes_max", self.push_bytes_max),
            ("sql_bytes_max", self.sql_bytes_max),
            ("metadata_bytes_max", self.metadata_bytes_max),
            ("connections_max", self.connections_max),
            (
                "header_read_timeout_secs",
                self.header_read_timeout_secs as usize,
            ),
            (
                "body_read_timeout_secs",
                self.body_read_timeout_secs as usize,
            ),
            ("request_timeout_secs", self.request_timeout_secs as usize),
            ("write_timeout_secs", self.write_timeout_secs as usize),
            ("tail_streams_max", self.tail_streams_max),
            ("tail_rows_per_sec_max", self.tail_rows_per_sec_max),
            ("tail_stream_secs_max", self.tail_stream_secs_max as usize),
            ("queries_max", self.queries_max.unwrap_or(1)),
            (
                "query_memory_bytes_max",
                self.query_memory_bytes_max.unwrap_or(1) as usize,
            ),
        ];
        for (option, value) in positive {
            if value == 0 {
                return Err(ConfigError {
                    option,
                    problem: "must be at least 1".into(),
                });
            }
        }
        for (option, value, max) in [
            (
                "tail_rows_per_sec_max",
                self.tail_rows_per_sec_max as u64,
                TAIL_ROWS_PER_SEC_LIMIT,
            ),
            (
                "tail_stream_secs_max",
                self.tail_stream_secs_max,
                TAIL_STREAM_SECS_LIMIT,
            ),
        ] {
            if value > max {
                return Err(ConfigError {
                    option,
                    problem: format!("must be at most {max}"),
                });
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError {
                option: "tls_cert",
                problem: "tls_cert and tls_key go together".into(),
            });
        }
        for entry in &self.tokens {
            entry.digest().map_err(|problem| ConfigError {
                option: "tokens",
                problem,
            })?;
        }
        for origin in &self.allowed_origins {
            if !origin_is_well_formed(origin) {
                return Err(ConfigError {
                    option: "allowed_origins",
                    problem: format!("{origin:?} is not scheme://host[:port]"),
                });
            }
        }
        Ok(())
    }

    /// Queries running at once (configured, or 2 × cores).
    pub fn queries_max(&self) -> usize {
        self.queries_max
            .unwrap_or_else(|| 2 * std::thread::available_parallelism().map_or(2, usize::from))
    }

    /// The query memory pool (configured, or 25 % of physical memory).
    pub fn query_memory_bytes_max(&self) -> usize {
        match self.query_memory_bytes_max {
            Some(bytes) => usize::try_from(bytes).unwrap_or(usize::MAX),
            None => physical_memory_bytes() / 4,
        }
    }
}

fn origin_is_well_formed(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains('/')
}

/// Physical memory from `/proc/meminfo` (4 GiB where it cannot be read).
fn physical_memory_bytes() -> usize {
    const FALLBACK: usize = 4 << 30;
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return FALLBACK;
    };
    text.lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<usize>()
                .ok()
        })
        .map_or(FALLBACK, |kib| kib.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_bounded() {
        let config = ServerConfig::default();
        config.validate().expect("defaults valid");
        assert!(config.queries_max() >= 2);
        let memory = config.query_memory_bytes_max();
        assert!(memory > 0 && memory < physical_memory_bytes(), "{memory}");
    }

    #[test]
    fn a_zero_limit_is_refused_by_name() {
        let config = ServerConfig {
            result_rows_max: 0,
            ..ServerConfig::default()
        };
        let error = config.validate().expect_err("refused").to_string();
        assert!(error.contains("result_rows_max"), "{error}");
    }

    #[test]
    fn tail_limits_are_bounded_on_both_sides() {
        for (config, option) in [
            (
                ServerConfig {
                    tail_streams_max: 0,
                    ..ServerConfig::default()
                },
                "tail_streams_max",
            ),
            (
                ServerConfig {
                    tail_rows_per_sec_max: TAIL_ROWS_PER_SEC_LIMIT as usize + 1,
                    ..ServerConfig::default()
                },
                "tail_rows_per_sec_max",
            ),
            (
                ServerConfig {
                    tail_stream_secs_max: u64::MAX,
                    ..ServerConfig::default()
                },
                "tail_stream_secs_max",
            ),
        ] {
            let error = config.validate().expect_err(option).to_string();
            assert!(error.contains(option), "{error}");
        }
    }

    #[test]
    fn half_a_tls_setup_is_refused() {
        let config = ServerConfig {
            tls_cert: Some("cert.pem".into()),
            ..ServerConfig::default()
        };
        assert!(config.validate().is_err());
    }

    #[test]
    fn an_origin_with_a_path_is_refused() {
        for (origin, ok) in [
            ("https://grafana.example.com", true),
            ("http://10.0.0.1:3000", true),
            ("https://x.example.com/", false),
            ("grafana.example.com", false),
            ("*", false),
        ] {
            let config = ServerConfig {
                allowed_origins: vec![origin.into()],
                ..ServerConfig::default()
            };
            assert_eq!(config.validate().is_ok(), ok, "{origin}");
        }
    }
}
