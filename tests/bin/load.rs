//! `sentinel-load`: the server load generator (sentinel_e2e::load) as a command, for
//! `cargo xtask bench --server`. Runs one plan on each backend given, one after the other,
//! and prints one JSON report per line on stdout (progress goes to stderr).

use std::path::PathBuf;

use clap::Parser;
use sentinel_e2e::load::{self, Backend, Fault, Plan};

#[derive(Parser)]
#[command(name = "sentinel-load")]
struct Args {
    /// The `sentinel` binary to serve with.
    #[arg(long)]
    sentinel: PathBuf,
    /// Backends to run on, in order (sqlite, postgres).
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// Simulated agents.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Time compression of the agents' schedule.
    #[arg(long, default_value_t = 10.0)]
    compression: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 60.0)]
    secs: f64,
    /// Dashboard readers.
    #[arg(long, default_value_t = 20)]
    readers: usize,
    /// Live-feed clients.
    #[arg(long, default_value_t = 20)]
    live: usize,
    /// Faults: server@SECS (restart sentinel serve), database@SECS (restart PostgreSQL;
    /// ignored on SQLite).
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// Longest wait for the spools to drain after the load.
    #[arg(long, default_value_t = 120.0)]
    drain_secs: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let faults = a
        .faults
        .iter()
        .map(|f| Fault::parse(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for b in &a.backends {
        let backend = Backend::parse(b)?;
        let plan = Plan {
            agents: a.agents,
            compression: a.compression,
            secs: a.secs,
            readers: a.readers,
            live: a.live,
            // A database restart is PostgreSQL's fault; SQLite runs inside the server.
            faults: faults
                .iter()
                .copied()
                .filter(|f| {
                    backend == Backend::Postgres || matches!(f, Fault::RestartServer { .. })
                })
                .collect(),
            drain_secs: a.drain_secs,
            work: std::env::temp_dir(),
        };
        eprintln!(
            "load: {} agents x{} for {} s on {}",
            plan.agents,
            plan.compression,
            plan.secs,
            backend.name()
        );
        let r = load::run(&a.sentinel, backend, &plan).await?;
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}
