//! Helpers shared by the binary's integration tests: running `trawl`,
//! a child server with its URL, HTTP calls with the headers a well-behaved
//! client sends, and waiting for a condition.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

pub mod browser;
pub mod kafka;
pub mod load;

pub fn trawl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args(args)
        .output()
        .unwrap()
}

pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A child `trawl` process, the base URL it printed, and how the test
/// talks to it (a token sent with every request; a CA for HTTPS).
pub struct Server {
    pub child: Child,
    pub url: String,
    pub token: Option<String>,
    agent: ureq::Agent,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `trawl run` on `dir` (config and data directory) with `[server]`
/// options `server`, on a free loopback port.
pub fn run_with(dir: &Path, server: &str, env: &[(&str, &str)], ca: Option<&[u8]>) -> Server {
    let config = dir.join("trawl.toml");
    std::fs::write(&config, format!("[server]\n{server}\n")).unwrap();
    let data = dir.join("data");
    Server::start_with(
        &[
            "run",
            "--config",
            path(&config),
            "--data-dir",
            path(&data),
            "--listen",
            "127.0.0.1:0",
        ],
        env,
        ca,
    )
}

/// A client that returns statuses as values, trusting `ca` (PEM) if given.
pub fn agent(ca: Option<&[u8]>) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder().http_status_as_error(false);
    if let Some(pem) = ca {
        let cert = ureq::tls::Certificate::from_pem(pem).unwrap();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
            .build();
        config = config.tls_config(tls);
    }
    config.build().into()
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(args, &[], None)
    }

    /// Starts `trawl ARGS` with extra environment `env`, trusting `ca`.
    pub fn start_with(args: &[&str], env: &[(&str, &str)], ca: Option<&[u8]>) -> Server {
        Server::start_logging(args, env, ca, Stdio::null())
    }

    /// [`start_with`](Self::start_with), the server's stderr to `stderr`.
    pub fn start_logging(
        args: &[&str],
        env: &[(&str, &str)],
        ca: Option<&[u8]>,
        stderr: impl Into<Stdio>,
    ) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_trawl"))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines.next().expect("the server printed its URL").unwrap();
            if let Some(at) = line.find("://") {
                let start = line[..at].rfind(' ').map_or(0, |i| i + 1);
                let rest = &line[start..];
                let scheme_end = at - start + 3;
                let end = rest[scheme_end..]
                    .find('/')
                    .map_or(rest.len(), |i| i + scheme_end);
                break rest[..end].to_string();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            child,
            url,
            token: None,
            agent: agent(ca),
        }
    }

    /// POSTs `body` with `headers` (and the token, if any).
    pub fn post(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
        let mut request = self.agent.post(&format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send(body).unwrap();
        let status = response.status().as_u16();
        (status, response.into_body().read_to_vec().unwrap())
    }

    pub fn sql(&self, sql: &str, format: &str) -> (u16, Vec<u8>) {
        let body = json!({ "sql": sql }).to_string();
        self.post(
            &format!("/api/v1/sql?format={format}"),
            body.as_bytes(),
            &[("Content-Type", "application/json")],
        )
    }

    /// GET `path` with `headers` (and the token): status and body.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut request = self.agent.get(&format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.call().unwrap();
        let status = response.status().as_u16();
        (status, response.into_body().read_to_string().unwrap())
    }

    pub fn get(&self, path: &str) -> String {
        self.get_with(path, &[]).1
    }

    pub fn metric(&self, name: &str) -> u64 {
        self.get("/metrics")
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }

    /// SIGINT, then the exit status.
    pub fn interrupt(self) -> std::process::ExitStatus {
        self.signal("-INT")
    }

    /// Sends `signal` (`-TERM`, `-INT`), then waits for the exit status.
    pub fn signal(mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args([signal, &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
