//! The snapshot commands (at the top: they read the whole configuration): C-Sentinel's flags (`sentinel --quick --network --audit`, `--learn`,
//! `--baseline`, `--json`, `--watch --interval N`, `--color`) and the `quick` / `watch` /
//! `snapshot` subcommands, which take the same flags.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::config::Config;
use crate::exit;
use crate::snapshot::render::{self, Palette};
use crate::snapshot::{ProbeOptions, baseline, take, time, watch};
use crate::store::Store;

#[derive(Clone, Debug, Default, clap::Args)]
pub struct SnapshotArgs {
    /// Print a readable summary instead of JSON.
    #[arg(short = 'q', long)]
    pub quick: bool,
    /// Print the full fingerprint as JSON (the default; wins over --quick).
    #[arg(short = 'j', long)]
    pub json: bool,
    /// Repeat every --interval seconds, printing only what changed, until stopped.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Watch interval in seconds (1-86400; default from [snapshot] interval_secs, 60).
    #[arg(short = 'i', long, value_name = "SEC",
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub interval: Option<u64>,
    /// Include listening sockets and established connections.
    #[arg(short = 'n', long)]
    pub network: bool,
    /// Include the auditd summary.
    #[arg(short = 'a', long)]
    pub audit: bool,
    /// Compare against the learned baseline (exit 2 on any deviation, 3 without a baseline).
    #[arg(short = 'b', long)]
    pub baseline: bool,
    /// Fold this snapshot (and with --audit, the audit window) into the baseline.
    #[arg(short = 'l', long)]
    pub learn: bool,
    /// Show every notable process and listener in --quick output.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Force colour on (default: on for a terminal unless NO_COLOR is set).
    #[arg(
        short = 'K',
        long,
        visible_alias = "colour",
        overrides_with = "no_color"
    )]
    pub color: bool,
    /// Force colour off.
    #[arg(
        short = 'N',
        long = "no-color",
        visible_alias = "no-colour",
        overrides_with = "color"
    )]
    pub no_color: bool,
    /// Audit window in seconds ending now (default from [audit] window_secs).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=31_622_400))]
    pub audit_window: Option<u64>,
    /// auditd log to read (default from [audit] log_path).
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Agent store holding the baselines (default: the top-level `store` setting).
    #[arg(long, alias = "db", value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// Extra file to fingerprint (repeatable), besides [snapshot] config_files.
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,
}

impl SnapshotArgs {
    /// True when any snapshot flag was given (a bare `sentinel` prints help instead).
    pub fn any(&self) -> bool {
        self.quick
            || self.json
            || self.watch
            || self.interval.is_some()
            || self.network
            || self.audit
            || self.baseline
            || self.learn
            || self.verbose
            || self.color
            || self.no_color
            || self.audit_window.is_some()
            || self.audit_log.is_some()
            || self.store.is_some()
            || !self.files.is_empty()
    }

    /// Colour for a terminal unless NO_COLOR is set (the feed's rule); --color and
    /// --no-color override both.
    fn palette(&self) -> Palette {
        use std::io::IsTerminal as _;
        let on = match (self.color, self.no_color) {
            (true, _) => true,
            (_, true) => false,
            _ => crate::feed::terminal::use_color(std::io::stdout().is_terminal()),
        };
        Palette { on }
    }
}

/// Which form was typed: the legacy flags or a subcommand that implies a mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Flags,
    Quick,
    Watch,
}

fn out(text: &str) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()?;
    Ok(())
}

fn store_path(cfg: &Config, args: &SnapshotArgs) -> PathBuf {
    args.store.clone().unwrap_or_else(|| cfg.store.clone())
}

/// The store for reading the audit baseline: only when it already exists, so a read-only
/// command does not create a database as a side effect.
fn existing_store(cfg: &Config, args: &SnapshotArgs) -> Option<Store> {
    if !args.audit || !store_path(cfg, args).exists() {
        return None;
    }
    open_store(cfg, args).ok().map(|s| s.0)
}

fn open_store(cfg: &Config, args: &SnapshotArgs) -> anyhow::Result<(Store, PathBuf)> {
    let path = store_path(cfg, args);
    let store =
        Store::open(&path).with_context(|| format!("opening the store {}", path.display()))?;
    Ok((store, path))
}

pub async fn run(mut cfg: Config, mut args: SnapshotArgs, mode: Mode) -> anyhow::Result<i32> {
    match mode {
        Mode::Quick => args.quick = true,
        Mode::Watch => args.watch = true,
        Mode::Flags => {}
    }
    if let Some(p) = &args.audit_log {
        cfg.audit.log_path = p.clone();
    }
    if let Some(w) = args.audit_window {
        cfg.audit.window_secs = w;
    }
    args.network |= cfg.snapshot.network_by_default;
    let palette = args.palette();
    if args.learn {
        return learn(&cfg, &args).await;
    }
    if args.baseline {
        return compare(&cfg, &args, palette).await;
    }
    if args.watch {
        return super_watch(&cfg, &args, palette).await;
    }
    // The audit baseline is optional for a one-shot run (non-root may not open the store).
    let store = existing_store(&cfg, &args);
    let fp = probe(&cfg, &args, store.as_ref(), None).await?;
    if args.quick && !args.json {
        out(&render::quick(&fp, palette, args.verbose))?;
    } else {
        out(&(serde_json::to_string_pretty(&fp)? + "\n"))?;
    }
    Ok(fp.exit_code)
}

/// Takes one fingerprint with the audit window ending now.
async fn probe(
    cfg: &Config,
    args: &SnapshotArgs,
    store: Option<&Store>,
    audit_since: Option<i64>,
) -> anyhow::Result<crate::snapshot::Fingerprint> {
    let now = time::now_ms();
    let audit = args.audit.then(|| {
        let since = audit_since.unwrap_or(now - cfg.audit.window_secs as i64 * 1000);
        (since, now + 1)
    });
    let opts = ProbeOptions {
        network: args.network,
        audit,
        extra_files: &args.files,
        store,
    };
    // Runs in place: the CLI has nothing else to do meanwhile, and the store is not Send.
    Ok(take(&cfg.snapshot, &cfg.audit, &opts))
}

fn host_key(fp: &crate::snapshot::Fingerprint) -> String {
    if fp.system.hostname.is_empty() {
        "localhost".into()
    } else {
        fp.system.hostname.clone()
    }
}

async fn learn(cfg: &Config, args: &SnapshotArgs) -> anyhow::Result<i32> {
    let (store, path) = match open_store(cfg, args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sentinel: {e:#}");
            return Ok(exit::ERROR);
        }
    };
    let fp = probe(cfg, args, Some(&store), None).await?;
    let key = host_key(&fp);
    let mut b: baseline::SnapshotBaseline = match store.get_baseline(baseline::STORE_KIND, &key) {
        Ok(Some(v)) => serde_json::from_value(v).unwrap_or_else(|e| {
            tracing::warn!("stored snapshot baseline unreadable ({e}); starting a new one");
            Default::default()
        }),
        Ok(None) => Default::default(),
        Err(e) => {
            eprintln!("sentinel: reading the baseline: {e}");
            return Ok(exit::ERROR);
        }
    };
    b.learn(&fp);
    if let Err(e) = store.put_baseline(baseline::STORE_KIND, &key, &serde_json::to_value(&b)?) {
        eprintln!("sentinel: saving the baseline: {e}");
        return Ok(exit::ERROR);
    }
    let mut text = render::learned(&b, &path);
    if args.audit {
        if fp.audit_summary.enabled {
            match crate::audit::learn(&store, &fp.audit_summary) {
                Ok(ab) => text.push_str(&format!(
                    "Audit baseline updated: {} sample(s), sudo {:.2}/h, auth failures {:.2}/h\n",
                    ab.samples, ab.sudo_per_hour, ab.auth_failures_per_hour
                )),
                Err(e) => {
                    eprintln!("sentinel: saving the audit baseline: {e}");
                    return Ok(exit::ERROR);
                }
            }
        } else {
            text.push_str("Audit baseline not updated: the audit log could not be read\n");
        }
    }
    if args.json {
        out(&(serde_json::to_string_pretty(&b)? + "\n"))?;
    } else {
        out(&text)?;
    }
    Ok(exit::OK)
}

async fn compare(cfg: &Config, args: &SnapshotArgs, palette: Palette) -> anyhow::Result<i32> {
    let (store, _) = match open_store(cfg, args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sentinel: {e:#}");
            return Ok(exit::ERROR);
        }
    };
    let fp = probe(cfg, args, Some(&store), None).await?;
    let b: baseline::SnapshotBaseline = match store
        .get_baseline(baseline::STORE_KIND, &host_key(&fp))
    {
        Ok(Some(v)) => match serde_json::from_value(v) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("sentinel: the stored baseline is unreadable ({e}); run --learn again");
                return Ok(exit::ERROR);
            }
        },
        Ok(None) => {
            eprintln!("sentinel: no baseline for this host yet; run `sentinel --learn` first");
            return Ok(exit::ERROR);
        }
        Err(e) => {
            eprintln!("sentinel: reading the baseline: {e}");
            return Ok(exit::ERROR);
        }
    };
    let devs = b.compare(&fp);
    if args.json {
        let doc = serde_json::json!({ "baseline": b, "deviations": devs, "fingerprint": fp });
        out(&(serde_json::to_string_pretty(&doc)? + "\n"))?;
    } else {
        let mut text = render::baseline_report(&b, &fp, &devs, palette);
        if args.audit {
            text.push('\n');
            text.push_str(&render::audit_block(&fp.audit_summary, palette));
        }
        out(&text)?;
    }
    Ok(if devs.is_empty() {
        exit::OK
    } else {
        exit::CRITICAL
    })
}

async fn super_watch(cfg: &Config, args: &SnapshotArgs, palette: Palette) -> anyhow::Result<i32> {
    let interval =
        std::time::Duration::from_secs(args.interval.unwrap_or(cfg.snapshot.interval_secs));
    let store = existing_store(cfg, args);
    let store = store.as_ref();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    eprintln!(
        "sentinel: watching every {}s (Ctrl-C to stop)",
        interval.as_secs()
    );
    let mut prev = probe(cfg, args, store, None).await?;
    let mut worst = prev.exit_code;
    let ts = |ms: i64| {
        format!(
            "[{}]",
            crate::timefmt::utc_stamp(ms.saturating_mul(1_000_000))
        )
    };
    if args.json {
        out(&(serde_json::to_string(&prev)? + "\n"))?;
    } else {
        let n = &prev.network;
        let mut line = format!(
            "{} {} processes, {} zombies, {} world-writable configs",
            ts(prev.time_ms),
            prev.process_summary.total_count,
            prev.process_summary.zombie_count,
            prev.config_files
                .iter()
                .filter(|f| f.world_writable)
                .count()
        );
        if n.probed {
            line.push_str(&format!(
                ", {} listeners ({} unusual)",
                n.total_listeners, n.unusual_ports
            ));
        }
        if args.audit {
            line.push_str(&format!(", audit risk {}", prev.audit_summary.risk_score));
        }
        out(&format!("{line} {}\n", palette.status(prev.exit_code)))?;
        for f in &prev.findings {
            out(&format!("{} ! {}\n", ts(prev.time_ms), f.reason))?;
        }
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
        // Each later audit window starts where the previous one ended: every record once.
        let since = prev.audit_summary.window.until_ms;
        let cur = probe(cfg, args, store, (since > 0).then_some(since)).await?;
        worst = worst.max(cur.exit_code);
        let mut ch = watch::changes(&prev, &cur);
        ch.extend(watch::audit_changes(&cur));
        if !ch.is_empty() {
            if args.json {
                let doc = serde_json::json!({
                    "time": cur.probe_time, "status": cur.status,
                    "exit_code": cur.exit_code, "changes": ch,
                });
                out(&(serde_json::to_string(&doc)? + "\n"))?;
            } else {
                for c in &ch {
                    out(&format!("{} {}\n", ts(cur.time_ms), c.detail))?;
                }
                out(&format!(
                    "{} {}\n",
                    ts(cur.time_ms),
                    palette.status(cur.exit_code)
                ))?;
            }
        }
        prev = cur;
    }
    Ok(worst)
}
