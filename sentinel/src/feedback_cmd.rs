//! `sentinel feedback ID benign|malicious [--scope principal|exe|host] [--note TEXT]`: an
//! analyst's verdict on a stored anomaly, or on every step of a stored incident, saved in the
//! agent store where the running engine picks it up (detect/feedback.rs). `--undo ID` takes a
//! verdict back; `--list` shows those in force.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::detect::feedback::{self, Rule, Scope, Verdict};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct FeedbackArgs {
    /// The anomaly or incident id.
    #[arg(required_unless_present_any = ["list", "undo"])]
    pub id: Option<String>,
    /// benign: lower the same finding below medium next time; malicious: raise it in full
    /// and never learn it.
    #[arg(required_unless_present_any = ["list", "undo"])]
    pub verdict: Option<Verdict>,
    /// Where the verdict applies: this user and program, this program, or the whole host.
    #[arg(long, value_enum, default_value = "principal")]
    pub scope: Scope,
    #[arg(long)]
    pub note: Option<String>,
    /// Take back the verdict given on this anomaly or incident id.
    #[arg(long, value_name = "ID", conflicts_with_all = ["id", "verdict", "list"])]
    pub undo: Option<String>,
    /// List the verdicts in force.
    #[arg(long, conflicts_with_all = ["id", "verdict"])]
    pub list: bool,
    /// The agent store (default: the top-level `store` setting).
    #[arg(long, alias = "db", value_name = "FILE")]
    pub store: Option<PathBuf>,
}

pub fn run(config: Config, args: FeedbackArgs) -> anyhow::Result<i32> {
    let path = args.store.as_ref().unwrap_or(&config.store);
    if !path.exists() {
        bail!("no store at {} (see --store)", path.display());
    }
    let store =
        Store::open(path).with_context(|| format!("opening the store {}", path.display()))?;
    if args.list {
        for v in store.feedback_rules()? {
            let r: Rule = serde_json::from_value(v).context("a stored verdict is unreadable")?;
            println!(
                "{} {:?} scope {:?} uid {} exe {} detections {} by {}{}",
                r.anomaly_id,
                r.verdict,
                r.scope,
                r.principal,
                r.exe,
                r.detections.join(","),
                r.by,
                r.note.map(|n| format!(": {n}")).unwrap_or_default()
            );
        }
        return Ok(crate::exit::OK);
    }
    if let Some(id) = &args.undo {
        let removed = feedback::take_back(&store, id, None)?;
        if removed == 0 {
            bail!("no verdict on {id}");
        }
        println!("took back {removed} verdict(s) on {id}");
        return Ok(crate::exit::OK);
    }
    let (Some(id), Some(verdict)) = (&args.id, args.verdict) else {
        bail!("give an id and a verdict (benign or malicious)");
    };
    let by = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "root".into());
    let now = crate::store::now_ns();
    for rule in feedback::give(&store, id, verdict, args.scope, args.note.clone(), &by, now)? {
        println!(
            "{}: {verdict:?} for {} in scope {:?}",
            rule.anomaly_id,
            rule.detections.join(", "),
            args.scope
        );
    }
    Ok(crate::exit::OK)
}
