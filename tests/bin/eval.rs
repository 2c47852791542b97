//! `sentinel-eval`: plays the attack corpus and the benign workloads of tests/corpus against
//! the agent binary and reports detected and missed scenarios, recall per tactic and benign
//! false positives (`cargo xtask eval` runs it; tests/corpus_eval.rs asserts the same run).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sentinel_e2e::eval::{self, Options, report};

#[derive(Parser)]
#[command(name = "sentinel-eval")]
struct Args {
    /// The agent binary under test.
    #[arg(long)]
    sentinel: PathBuf,
    /// Only scenarios whose id (e.g. persistence/cron-d) contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Write the coverage document here (docs/detection-coverage.md).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep each script's output here.
    #[arg(long, default_value = "target/eval-logs")]
    logs: PathBuf,
    /// The corpus directory.
    #[arg(long)]
    corpus: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let logs = std::path::absolute(&a.logs)?;
    let _ = std::fs::remove_dir_all(&logs);
    let mut opts = Options::new(std::path::absolute(&a.sentinel)?, logs.clone());
    opts.filter = a.filter.clone();
    if let Some(c) = a.corpus {
        opts.corpus = std::path::absolute(c)?;
    }
    let e = eval::evaluate(&opts)?;
    print!("{}", report::text(&e));
    println!("  script output: {}", logs.display());
    if let Some(out) = a.out {
        std::fs::write(&out, report::markdown(&e, a.filter.as_deref()))
            .with_context(|| format!("writing {}", out.display()))?;
        println!("  wrote {}", out.display());
    }
    Ok(())
}
