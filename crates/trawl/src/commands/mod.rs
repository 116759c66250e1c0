//! One module per subcommand; each exposes its clap `Args` and a `run`.

pub mod demo;
pub mod generate;
pub mod parse;
pub mod whois;
