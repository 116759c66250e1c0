//! One module per subcommand; each exposes its clap `Args` and a `run`.

pub mod demo;
pub mod generate;
pub mod ingest;
pub mod parse;
pub mod query;
pub mod run;
pub mod tail;
pub mod whois;
