//! `sentinel learn` (an explicit learning period, live or replayed from a JSON-lines event
//! recording) and `sentinel baseline show|export|import|reset`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::detect::replay::{read_events, replay};
use crate::detect::{Engine, EngineOptions};
use crate::model::Anomaly;
use crate::proc::users::UserDb;
use crate::profile::Profile;
use crate::profile::baseline::{KIND_LINEAGE, KIND_PRINCIPAL, KINDS};
use crate::store::{self, Store};

#[derive(Debug, clap::Args)]
pub struct LearnArgs {
    /// Length of the learning period, e.g. 30m, 1h, 2d (live collection).
    #[arg(long, value_parser = crate::timefmt::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Learn from a recorded JSON-lines event stream instead of the kernel.
    #[arg(long, value_name = "EVENTS.JSONL")]
    pub from_file: Option<PathBuf>,
    /// The agent store holding the baselines (default: the top-level `store` setting).
    #[arg(long, alias = "db", value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// passwd-format user database for a recording from another host.
    #[arg(long, value_name = "FILE")]
    pub passwd: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct BaselineArgs {
    /// The agent store holding the baselines (default: the top-level `store` setting).
    // An id of its own: a global argument's value also reaches its parent's argument of the
    // same id, here the snapshot mode's `--store`, which would then refuse the command.
    #[arg(
        id = "baseline_store",
        long = "store",
        alias = "db",
        global = true,
        value_name = "FILE"
    )]
    pub store: Option<PathBuf>,
    #[command(subcommand)]
    pub action: BaselineAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum BaselineAction {
    /// List learned profiles with their calibration state.
    Show {
        /// Only this kind: principal, lineage or exe.
        #[arg(long)]
        kind: Option<String>,
        /// Print the full profiles as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write every profile as one JSON document (to stdout or --out).
    Export {
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Load profiles from an export; existing ones with the same key are replaced.
    Import {
        file: PathBuf,
        /// Delete all profiles first.
        #[arg(long)]
        replace: bool,
    },
    /// Forget what was learned (all profiles, or one principal's).
    Reset {
        /// Only this principal (uid or user name) and its lineages.
        #[arg(long)]
        principal: Option<String>,
    },
}

pub async fn learn(config: Config, args: LearnArgs) -> anyhow::Result<i32> {
    let store = Store::open(args.store.as_ref().unwrap_or(&config.store))?;
    let users = args.passwd.as_deref().map(UserDb::load);
    let Some(file) = &args.from_file else {
        let duration = args
            .duration
            .context("give --duration (live learning) or --from-file")?;
        return learn_live(&config, store, users, duration).await;
    };
    let events = read_events(file)?;
    let mut engine = Engine::with_options(
        &config.detect,
        config.host_name(),
        store,
        EngineOptions {
            live: false,
            users,
            learn_all: true,
        },
    )?;
    let anomalies = replay(&mut engine, &events);
    report_learned(&mut engine, &anomalies)
}

/// Learns from the kernel for `duration` (or until Ctrl-C), then vouches for what it saw.
async fn learn_live(
    config: &Config,
    store: Store,
    users: Option<UserDb>,
    duration: std::time::Duration,
) -> anyhow::Result<i32> {
    use crate::collect::Collector;
    config.validate()?;
    let mut engine = Engine::with_options(
        &config.detect,
        config.host_name(),
        store,
        EngineOptions {
            live: true,
            users,
            learn_all: true,
        },
    )?;
    let (collector, mut events) =
        Collector::start_with(&config.collect).context("starting the kernel probes")?;
    // The end of the period, Ctrl-C or SIGTERM (as `sentinel run`), handled from before the
    // line that says so.
    let stop = crate::agent::wait_for_stop(Some(duration));
    eprintln!(
        "sentinel: learning for {}s; Ctrl-C to end early",
        duration.as_secs()
    );
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    let mut anomalies = Vec::new();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(chunk) => {
                    for ev in &chunk {
                        anomalies.extend(engine.observe(ev));
                    }
                }
                None => break,
            },
            _ = tick.tick() => anomalies.extend(engine.tick(store::now_ns())),
            _ = &mut stop => break,
        }
    }
    let summary = collector.stop().await;
    while let Some(chunk) = events.recv().await {
        for ev in &chunk {
            anomalies.extend(engine.observe(ev));
        }
    }
    anomalies.extend(engine.finish());
    if summary.total_lost() > 0 {
        tracing::warn!(
            "{} events lost during learning: the baseline may miss some activity",
            summary.total_lost()
        );
    }
    report_learned(&mut engine, &anomalies)
}

fn report_learned(engine: &mut Engine, anomalies: &[Anomaly]) -> anyhow::Result<i32> {
    let vouched = engine.vouch()?;
    let s = engine.stats();
    for a in anomalies {
        tracing::warn!(
            "learned despite anomaly (explicit learning period): {} {} {}",
            a.level,
            a.score,
            a.factors.first().map(|f| f.reason.as_str()).unwrap_or("")
        );
    }
    println!(
        "learned {} events in {} windows; {} profiles now calibrated; {} anomalies seen during learning",
        s.events, s.windows_learned, vouched, s.anomalies
    );
    Ok(crate::exit::OK)
}

#[derive(Debug, Serialize, Deserialize)]
struct ExportDoc {
    format: String,
    version: u32,
    profiles: Vec<ExportItem>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ExportItem {
    kind: String,
    key: String,
    profile: Profile,
}

const FORMAT: &str = "sentinel-baselines";

fn kind_name(k: &str) -> anyhow::Result<&'static str> {
    KINDS
        .iter()
        .find(|x| **x == k || x.strip_prefix("profile:") == Some(k))
        .copied()
        .with_context(|| format!("unknown kind {k:?} (principal, lineage or exe)"))
}

fn all_profiles(store: &Store) -> anyhow::Result<Vec<ExportItem>> {
    let mut out = Vec::new();
    for kind in KINDS {
        for (key, v) in store.list_baselines(kind)? {
            match serde_json::from_value::<Profile>(v) {
                Ok(profile) => out.push(ExportItem {
                    kind: kind.to_string(),
                    key,
                    profile,
                }),
                Err(e) => tracing::warn!("{kind} {key}: unreadable, skipped: {e}"),
            }
        }
    }
    Ok(out)
}

fn active_hours(p: &Profile) -> String {
    let hs: Vec<String> = (0..24)
        .filter(|h| p.hours[*h] > 0)
        .map(|h| format!("{h:02}"))
        .collect();
    if hs.is_empty() {
        "-".into()
    } else {
        hs.join(",")
    }
}

pub async fn baseline(config: Config, args: BaselineArgs) -> anyhow::Result<i32> {
    let store = Store::open(args.store.as_ref().unwrap_or(&config.store))?;
    let users = UserDb::system();
    match args.action {
        BaselineAction::Show { kind, json } => {
            let kind = kind.as_deref().map(kind_name).transpose()?;
            let items: Vec<ExportItem> = all_profiles(&store)?
                .into_iter()
                .filter(|i| kind.is_none_or(|k| i.kind == k))
                .collect();
            match show(&items, json, &users) {
                // A closed pipe (`| head`) is the reader's choice, not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r?,
            }
        }
        BaselineAction::Export { out } => {
            let doc = ExportDoc {
                format: FORMAT.into(),
                version: 1,
                profiles: all_profiles(&store)?,
            };
            let text = serde_json::to_string_pretty(&doc)?;
            match out {
                Some(p) => std::fs::write(&p, text + "\n")
                    .with_context(|| format!("write {}", p.display()))?,
                None => println!("{text}"),
            }
        }
        BaselineAction::Import { file, replace } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("read {}", file.display()))?;
            let doc: ExportDoc = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a baseline export", file.display()))?;
            if doc.format != FORMAT || doc.version != 1 {
                bail!(
                    "{}: format {:?} version {} is not {FORMAT} version 1",
                    file.display(),
                    doc.format,
                    doc.version
                );
            }
            let mut items = Vec::with_capacity(doc.profiles.len());
            for i in doc.profiles {
                let kind = kind_name(&i.kind)?;
                items.push((kind, i.key, serde_json::to_value(&i.profile)?));
            }
            if replace {
                for k in KINDS {
                    store.delete_baselines(Some(k))?;
                }
            }
            store.put_baselines(&items)?;
            println!("imported {} profiles", items.len());
        }
        BaselineAction::Reset { principal } => {
            let n = match principal {
                None => {
                    let mut n = 0;
                    for k in KINDS {
                        n += store.delete_baselines(Some(k))?;
                    }
                    n
                }
                Some(who) => {
                    let uid = who
                        .parse::<u32>()
                        .ok()
                        .or_else(|| users.uid_of(&who))
                        .with_context(|| format!("unknown user {who:?}"))?;
                    let mut n = store.delete_baseline(KIND_PRINCIPAL, &uid.to_string())?;
                    for (key, _) in store.list_baselines(KIND_LINEAGE)? {
                        if key.split('|').next() == Some(&uid.to_string()) {
                            n += store.delete_baseline(KIND_LINEAGE, &key)?;
                        }
                    }
                    n
                }
            };
            println!("removed {n} profiles");
        }
    }
    Ok(crate::exit::OK)
}

fn show(items: &[ExportItem], json: bool, users: &UserDb) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, items)?;
        return writeln!(out);
    }
    writeln!(
        out,
        "{:<10} {:<40} {:<12} {:>7} {:>8} {:<11} {:>5} {:>5} {:>5}  hours",
        "KIND", "KEY", "STATE", "WINDOWS", "REJECTED", "SPAN", "BINS", "DESTS", "CATS"
    )?;
    for i in items {
        let key = if i.kind == KIND_PRINCIPAL {
            i.key
                .parse::<u32>()
                .map(|u| format!("{} ({})", users.display(u), u))
                .unwrap_or_else(|_| i.key.clone())
        } else {
            i.key.clone()
        };
        let p = &i.profile;
        writeln!(
            out,
            "{:<10} {:<40} {:<12} {:>7} {:>8} {:<11} {:>5} {:>5} {:>5}  {}",
            i.kind.trim_start_matches("profile:"),
            key,
            p.state.as_str(),
            p.windows,
            p.rejected_windows,
            p.span_words(),
            p.binaries.len(),
            p.destinations.len(),
            p.categories.len(),
            active_hours(p)
        )?;
    }
    if items.is_empty() {
        writeln!(out, "(nothing learned yet: run `sentinel learn`)")?;
    }
    Ok(())
}
