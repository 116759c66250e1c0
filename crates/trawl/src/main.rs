//! # trawl
//!
//! The `trawl` binary: parses the command line and runs one subcommand.
//! Each subcommand lives in its own module under `commands/`; this file only
//! declares the CLI and dispatches. Libraries below it (`trawl-flowlog`, …)
//! do the work and report typed errors; here they become `anyhow` errors
//! with the input named, and a non-zero exit.

mod commands;
mod setup;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Real-time network flow-log analytics in one binary.
#[derive(Debug, Parser)]
#[command(name = "trawl", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode flow-log files (or stdin) and print records as JSON lines.
    Parse(commands::parse::ParseArgs),
    /// Generate a synthetic churning estate: flow logs, metadata events, truth.
    Generate(commands::generate::GenerateArgs),
    /// A live churning estate through the whole pipeline, served over HTTP.
    Demo(commands::demo::DemoArgs),
    /// Run the service: sources, pipeline, store, HTTP server.
    Run(Box<commands::run::RunArgs>),
    /// Load flow-log files into a data directory (progress bar, summary).
    Ingest(commands::ingest::IngestArgs),
    /// Run one SQL statement against a data directory or a server.
    Query(commands::query::QueryArgs),
    /// Who held an IP at a given time, from metadata files.
    Whois(commands::whois::WhoisArgs),
    /// Follow a running trawl's live tail of flows matching an SQL condition.
    Tail(commands::tail::TailArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Parse(args) => commands::parse::run(&args),
        Command::Generate(args) => commands::generate::run(&args),
        Command::Demo(args) => commands::demo::run(&args),
        Command::Whois(args) => commands::whois::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Ingest(args) => commands::ingest::run(&args),
        Command::Query(args) => commands::query::run(&args),
        Command::Tail(args) => commands::tail::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("trawl: {error:#}");
            ExitCode::from(2)
        }
    }
}
