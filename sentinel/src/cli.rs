//! Command-line interface: the subcommands and their flags, and the dispatch from a parsed
//! command line to the room that runs it. Each room owns its own `Args` type; this file only
//! lists them. Exit codes are documented in README.md.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// Exit codes shared by every command (C-Sentinel compatible for snapshots).
pub mod exit {
    pub const OK: i32 = 0;
    pub const WARNINGS: i32 = 1;
    pub const CRITICAL: i32 = 2;
    pub const ERROR: i32 = 3;
}

#[derive(Debug, Parser)]
#[command(
    name = "sentinel",
    version,
    about = "Linux security observer: kernel events, learned baselines, explainable anomalies"
)]
pub struct Cli {
    /// Configuration file (default /etc/sentinel/sentinel.toml, optional).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the kernel probes and stream events and anomalies until stopped.
    Run(crate::agent::RunArgs),
    /// Explain the host snapshot, a stored anomaly or a snapshot diff in plain language.
    Analyze(crate::explain::analyze::AnalyzeArgs),
}

/// Runs the parsed command line; returns the process exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Some(Command::Run(args)) => crate::agent::run(config, args).await,
        Some(Command::Analyze(args)) => crate::explain::analyze::run(config, args).await,
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(exit::ERROR)
        }
    }
}
