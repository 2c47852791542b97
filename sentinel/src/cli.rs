//! Command-line interface: the subcommands and their flags, and the dispatch from a parsed
//! command line to the room that runs it. Each room owns its own `Args` type; this file only
//! lists them. Exit codes are documented in README.md.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;

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

    /// How diagnostics are written to stderr: readable lines or JSON lines (without
    /// timestamps under systemd, whose journal stamps each line).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "SENTINEL_LOG_FORMAT",
        default_value_t = crate::logging::LogFormat::Text
    )]
    pub log_format: crate::logging::LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// C-Sentinel's flags, used when no subcommand is given (`sentinel --quick --network`).
    #[command(flatten)]
    pub legacy: crate::snapshot_cmd::SnapshotArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the kernel probes and stream events and anomalies until stopped.
    Run(crate::agent::RunArgs),
    /// Learn what is normal: an explicit learning period (live, or from a recording).
    Learn(crate::learn::LearnArgs),
    /// Inspect and manage learned baselines.
    Baseline(crate::learn::BaselineArgs),
    /// Print a readable host summary (same as `sentinel --quick`).
    Quick(crate::snapshot_cmd::SnapshotArgs),
    /// Re-check the host every --interval seconds, printing only changes (`sentinel --watch`).
    Watch(crate::snapshot_cmd::SnapshotArgs),
    /// Take one host fingerprint (JSON by default; same flags as `sentinel --quick`).
    Snapshot(crate::snapshot_cmd::SnapshotArgs),
    /// Serve the web dashboard and ingest API for agents.
    Serve(crate::server::cli::ServeArgs),
    /// Manage dashboard users (the first admin is created here).
    User(crate::server::cli::UserArgs),
    /// The server's fleet: enrolment tokens, agents' states, retiring a host.
    Host(crate::server::fleet_cli::HostArgs),
    /// Enrol this host with a server: get its ingest key and point the configuration there.
    Enroll(crate::enroll_cmd::EnrollArgs),
    /// Explain the host snapshot, a stored anomaly or a snapshot diff in plain language.
    Analyze(crate::analyze::AnalyzeArgs),
    /// Tell Sentinel an anomaly or incident was benign (learn it) or malicious (pin it).
    Feedback(crate::feedback_cmd::FeedbackArgs),
    /// Print the default configuration, or check a configuration file.
    Config(crate::config_cmd::ConfigArgs),
    /// Ask the running agent how it is: hooks, rates, losses, baselines, push and LLM health
    /// (exit 0 healthy, 1 degraded, 2 no agent running, 3 could not ask).
    Status(crate::status_cmd::StatusArgs),
    /// Write man pages or shell completions into a directory (for packagers).
    #[command(hide = true)]
    Generate(crate::generate::GenerateArgs),
}

impl Cli {
    /// Refuses snapshot flags given before a subcommand (`sentinel --json run`): they belong to
    /// the no-subcommand mode, and silently ignoring them would run something else than asked.
    pub fn check(&self) -> Result<(), String> {
        match &self.command {
            Some(cmd) if self.legacy.any() => {
                let name = cmd.name();
                Err(format!(
                    "flags before `{name}` are the snapshot mode's (`sentinel --quick ...`) and \
                     do nothing for a subcommand: put them after it (`sentinel {name} --help` \
                     lists its flags)"
                ))
            }
            _ => Ok(()),
        }
    }
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Run(_) => "run",
            Command::Learn(_) => "learn",
            Command::Baseline(_) => "baseline",
            Command::Quick(_) => "quick",
            Command::Watch(_) => "watch",
            Command::Snapshot(_) => "snapshot",
            Command::Serve(_) => "serve",
            Command::User(_) => "user",
            Command::Host(_) => "host",
            Command::Enroll(_) => "enroll",
            Command::Analyze(_) => "analyze",
            Command::Feedback(_) => "feedback",
            Command::Config(_) => "config",
            Command::Status(_) => "status",
            Command::Generate(_) => "generate",
        }
    }
}

/// Runs the parsed command line; returns the process exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    cli.check().map_err(anyhow::Error::msg)?;
    // Read by every command but `config` (whose `check` is for files that do not load).
    let path = cli.config.clone();
    let config = || -> anyhow::Result<Config> {
        let config = Config::load(path.as_deref())?;
        crate::logging::apply(&config.log).map_err(anyhow::Error::msg)?;
        Ok(config)
    };
    match cli.command {
        Some(Command::Run(args)) => {
            // Stop signals are caught from here on, before the configuration is even read,
            // so that a run stopped during start-up still stops cleanly with its summary.
            let signals = crate::signals::Signals::install()?;
            let reload = crate::reload::Reload {
                path: cli.config.clone(),
                signals,
            };
            crate::agent::run(config()?, args, reload).await
        }
        Some(Command::Learn(args)) => crate::learn::learn(config()?, args).await,
        Some(Command::Feedback(args)) => crate::feedback_cmd::run(config()?, args),
        Some(Command::Baseline(args)) => crate::learn::baseline(config()?, args).await,
        Some(Command::Quick(args)) => {
            crate::snapshot_cmd::run(config()?, args, crate::snapshot_cmd::Mode::Quick).await
        }
        Some(Command::Watch(args)) => {
            crate::snapshot_cmd::run(config()?, args, crate::snapshot_cmd::Mode::Watch).await
        }
        Some(Command::Snapshot(args)) => {
            crate::snapshot_cmd::run(config()?, args, crate::snapshot_cmd::Mode::Flags).await
        }
        None if cli.legacy.any() => {
            crate::snapshot_cmd::run(config()?, cli.legacy, crate::snapshot_cmd::Mode::Flags).await
        }
        Some(Command::Serve(args)) => {
            let c = config()?;
            crate::server::cli::serve(c.server, c.metrics, args).await
        }
        Some(Command::User(args)) => crate::server::cli::user(config()?.server, args).await,
        Some(Command::Host(args)) => crate::server::fleet_cli::host(config()?.server, args).await,
        Some(Command::Enroll(args)) => {
            // A new host may have no configuration yet: enrolment writes it.
            let cfg = match cli.config.as_deref() {
                Some(p) if !p.exists() => Config::default(),
                _ => config()?,
            };
            crate::enroll_cmd::run(cfg, cli.config.clone(), args).await
        }
        Some(Command::Analyze(args)) => crate::analyze::run(config()?, args).await,
        Some(Command::Config(args)) => crate::config_cmd::run(args, cli.config),
        Some(Command::Status(args)) => crate::status_cmd::run(config()?, args).await,
        Some(Command::Generate(args)) => {
            use clap::CommandFactory;
            crate::generate::run(Cli::command(), args)
        }
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(crate::exit::ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("sentinel").chain(args.iter().copied())).unwrap()
    }

    /// The real command line, as `sentinel generate` gets it.
    fn cli() -> clap::Command {
        use clap::CommandFactory as _;
        Cli::command()
    }

    #[test]
    fn man_pages_cover_every_visible_subcommand_and_not_the_hidden_one() {
        let dir = tempfile::tempdir().unwrap();
        let pages = crate::generate::man(cli(), dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in [
            "sentinel.1",
            "sentinel-run.1",
            "sentinel-serve.1",
            "sentinel-config.1",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.starts_with("sentinel-generate")),
            "{names:?}"
        );
        let run = std::fs::read_to_string(dir.path().join("sentinel-run.1")).unwrap();
        assert!(run.starts_with(".ie") || run.contains(".TH"), "{run}");
        assert!(run.contains("\\-\\-duration"), "{run}");
    }

    #[test]
    fn completions_for_three_shells_name_the_subcommands() {
        let dir = tempfile::tempdir().unwrap();
        let files = crate::generate::completions(cli(), dir.path()).unwrap();
        assert_eq!(files.len(), 3, "{files:?}");
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            for sub in ["baseline", "serve", "config", "duration"] {
                assert!(text.contains(sub), "{}: no {sub}: {text}", f.display());
            }
            // Hidden commands (`generate`, used by the package build) are not offered.
            assert!(!text.contains("generate"), "{}: {text}", f.display());
        }
    }

    #[test]
    fn snapshot_flags_before_a_subcommand_are_refused() {
        let e = parse(&["--json", "run"]).check().unwrap_err();
        assert!(
            e.contains("before `run`") && e.contains("put them after it"),
            "{e}"
        );
        assert!(parse(&["--quick", "--network", "learn"]).check().is_err());
        // Where they belong, and the global --config anywhere, are fine.
        assert!(parse(&["run", "--json"]).check().is_ok());
        assert!(parse(&["--config", "/x.toml", "run"]).check().is_ok());
        assert!(parse(&["--quick", "--network"]).check().is_ok());
    }

    /// One name for one thing: every command that reads the agent store takes `--store`, and
    /// `--db` (the old name of some) still works without being shown.
    #[test]
    fn every_agent_store_command_takes_store_and_the_hidden_db_alias() {
        use clap::CommandFactory;
        let cmds: [&[&str]; 8] = [
            &["learn", "--duration", "1s"],
            &["baseline", "show"],
            &["baseline", "reset", "--principal", "1000"],
            &["snapshot"],
            &["quick"],
            &["analyze", "--anomaly", "x"],
            &["feedback", "--list"],
            &["watch"],
        ];
        for flag in ["--store", "--db"] {
            for c in cmds {
                let mut args = vec!["sentinel"];
                args.extend_from_slice(c);
                args.extend([flag, "/x/s.db"]);
                let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
                cli.check().unwrap_or_else(|e| panic!("{args:?}: {e}"));
            }
        }
        let mut cmd = Cli::command();
        for name in ["learn", "baseline", "snapshot", "analyze", "feedback"] {
            let help = cmd
                .find_subcommand_mut(name)
                .unwrap()
                .render_long_help()
                .to_string();
            assert!(help.contains("--store"), "{name}: {help}");
            assert!(!help.contains("--db"), "{name} shows the alias: {help}");
        }
    }
}
