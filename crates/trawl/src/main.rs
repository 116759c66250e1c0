//! # trawl
//!
//! The `trawl` binary: parses the command line and runs one subcommand.
//! Each subcommand lives in its own module under `commands/`; this file only
//! declares the CLI and dispatches. Libraries below it (`trawl-flowlog`, …)
//! do the work and report typed errors; here they become `anyhow` errors
//! with the input named, and a non-zero exit.

mod commands;

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
    /// Write deterministic sample flow logs in AWS's S3 delivery format.
    Generate(commands::generate::GenerateArgs),
    /// Generate sample flow logs in memory, decode them, and show what came out.
    Demo(commands::demo::DemoArgs),
    /// Who held an IP at a given time, from metadata files.
    Whois(commands::whois::WhoisArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Parse(args) => commands::parse::run(&args),
        Command::Generate(args) => commands::generate::run(&args),
        Command::Demo(args) => commands::demo::run(&args),
        Command::Whois(args) => commands::whois::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("trawl: {error:#}");
            ExitCode::from(2)
        }
    }
}
