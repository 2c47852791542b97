//! `sentinel analyze`: explain the host snapshot, one stored anomaly (`--anomaly ID`), one
//! stored incident as a story (`--incident ID`) or the difference of two snapshots (`--diff A
//! B`); `--show-prompt` prints what would be sent.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::config::Config;
use crate::exit;
use crate::explain::{Engine, LlmConfig, ProviderKind, Subject, facts};
use crate::model::Explanation;

#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// Explain one stored anomaly by id.
    #[arg(long, value_name = "ID", conflicts_with_all = ["diff", "snapshot", "incident"])]
    pub anomaly: Option<String>,
    /// Explain one stored incident (a login session's anomalies) by id, as one story.
    #[arg(long, value_name = "ID", conflicts_with_all = ["diff", "snapshot"])]
    pub incident: Option<String>,
    /// Explain what changed between two snapshot JSON files.
    #[arg(long, num_args = 2, value_names = ["BEFORE", "AFTER"], conflicts_with = "snapshot")]
    pub diff: Option<Vec<PathBuf>>,
    /// Explain this snapshot JSON file ("-" for stdin) instead of taking a fresh snapshot
    /// (the default: system, processes, config files, network, and audit when readable).
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
    /// The agent store, where `--anomaly` and `--incident` look (default: the top-level
    /// `store` setting).
    #[arg(long, alias = "db", value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// Print exactly what would be sent to the model, and send nothing.
    #[arg(long)]
    pub show_prompt: bool,
    /// Print the explanation as JSON.
    #[arg(long)]
    pub json: bool,
    /// Provider override: openai, anthropic or local.
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// Model override.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Endpoint base URL override.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
}

/// The `[llm]` section with the command line's overrides applied.
pub fn effective_config(cfg: &LlmConfig, args: &AnalyzeArgs) -> anyhow::Result<LlmConfig> {
    let mut c = cfg.clone();
    if let Some(p) = &args.provider {
        c.provider = ProviderKind::parse(p)
            .with_context(|| format!("--provider {p}: expected openai, anthropic or local"))?;
    }
    if let Some(m) = &args.model {
        c.model = m.clone();
    }
    if let Some(b) = &args.base_url {
        c.base_url = b.clone();
    }
    c.validate().map_err(anyhow::Error::msg)?;
    Ok(c)
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the snapshot from stdin")?;
        s
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// What `analyze` explains, owned.
pub enum Target {
    Anomaly(Box<crate::model::Anomaly>),
    Incident(Box<crate::incident::Incident>),
    Snapshot(Value),
    Diff(Value),
}

impl Target {
    pub fn subject(&self) -> Subject<'_> {
        match self {
            Target::Anomaly(a) => Subject::Anomaly {
                anomaly: a,
                baseline: None,
            },
            Target::Incident(i) => Subject::Incident(i),
            Target::Snapshot(v) => Subject::Snapshot(v),
            Target::Diff(d) => Subject::Diff(d),
        }
    }
}

/// A fresh fingerprint of this host, with network sockets, and the audit summary when the
/// audit log is readable (C-Sentinel's analyzer never showed either to the model).
fn fresh_snapshot(config: &Config) -> anyhow::Result<Value> {
    let now = crate::snapshot::time::now_ms();
    let audit = std::fs::File::open(&config.audit.log_path)
        .is_ok()
        .then(|| (now - config.audit.window_secs as i64 * 1000, now + 1));
    let opts = crate::snapshot::ProbeOptions {
        network: true,
        audit,
        extra_files: &[],
        store: None,
    };
    let fp = crate::snapshot::take(&config.snapshot, &config.audit, &opts);
    serde_json::to_value(&fp).context("serialising the snapshot")
}

/// The agent store, for reading: a missing file is an error, never an empty new database.
fn open_store(path: &Path) -> anyhow::Result<crate::store::Store> {
    if !path.exists() {
        bail!("no store at {} (see --store)", path.display());
    }
    crate::store::Store::open(path).with_context(|| format!("opening the store {}", path.display()))
}

pub fn load_target(args: &AnalyzeArgs, config: &Config) -> anyhow::Result<Target> {
    // --store, else the configuration's `store` (whose default is the system path).
    let store_path = args.store.as_deref().unwrap_or(&config.store);
    if let Some(id) = &args.incident {
        let i = open_store(store_path)?
            .get_incident(id)
            .with_context(|| format!("reading incident {id}"))?
            .with_context(|| format!("no incident {id} in {}", store_path.display()))?;
        return Ok(Target::Incident(Box::new(i)));
    }
    if let Some(id) = &args.anomaly {
        let store = open_store(store_path)?;
        let a = store
            .get_anomaly(id)
            .with_context(|| format!("reading anomaly {id}"))?
            .with_context(|| format!("no anomaly {id} in {}", store_path.display()))?;
        return Ok(Target::Anomaly(Box::new(a)));
    }
    if let Some(paths) = &args.diff {
        let [a, b] = paths.as_slice() else {
            bail!("--diff takes two snapshot files");
        };
        return Ok(Target::Diff(facts::diff(&read_json(a)?, &read_json(b)?)));
    }
    if let Some(p) = &args.snapshot {
        return Ok(Target::Snapshot(read_json(p)?));
    }
    Ok(Target::Snapshot(fresh_snapshot(config)?))
}

pub async fn run(config: Config, args: AnalyzeArgs) -> anyhow::Result<i32> {
    let cfg = effective_config(&config.llm, &args)?;
    let target = load_target(&args, &config)?;
    let engine = Engine::new(&cfg)?;
    let subject = target.subject();
    if args.show_prompt {
        let p = engine.prompt(&subject);
        println!("{}", serde_json::to_string_pretty(&engine.preview(&p))?);
        return Ok(exit::OK);
    }
    let outcome = engine.explain(&subject).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome.explanation)?);
    } else {
        print!("{}", render(&outcome.explanation));
    }
    Ok(exit::OK)
}

/// The terminal form. Blocked commands are not printed, only the reason they were held back.
pub fn render(e: &Explanation) -> String {
    let mut s = format!(
        "Summary: {}\n\nLikely explanation: {}\n",
        e.summary, e.likely_explanation
    );
    if !e.benign_alternatives.is_empty() {
        s.push_str("\nBenign alternatives:\n");
        for b in &e.benign_alternatives {
            s.push_str(&format!("  - {b}\n"));
        }
    }
    s.push_str(&format!(
        "\nConfidence: {:.2} (stated by {})\n",
        e.confidence, e.source
    ));
    if !e.evidence_ids.is_empty() {
        s.push_str(&format!("Evidence: {}\n", e.evidence_ids.join(", ")));
    }
    if !e.next_steps.is_empty() {
        s.push_str("\nNext steps:\n");
        for (i, st) in e.next_steps.iter().enumerate() {
            s.push_str(&format!("  {}. {}\n", i + 1, st.description));
            match (st.command.as_deref(), st.policy.as_deref()) {
                (Some(_), Some("blocked")) => {
                    s.push_str("     (command withheld: blocked by the command policy)\n")
                }
                (Some(c), Some("warn")) => {
                    s.push_str(&format!("     $ {c}    [caution: changes the system]\n"))
                }
                (Some(c), _) => s.push_str(&format!("     $ {c}\n")),
                (None, _) => {}
            }
        }
    }
    if !e.warnings.is_empty() {
        s.push_str("\nWarnings:\n");
        for w in &e.warnings {
            s.push_str(&format!("  - {w}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NextStep;

    #[test]
    fn blocked_commands_are_withheld_in_the_terminal_form() {
        let e = Explanation {
            summary: "s".into(),
            likely_explanation: "l".into(),
            benign_alternatives: vec![],
            confidence: 0.5,
            evidence_ids: vec![],
            next_steps: vec![
                NextStep {
                    description: "bad".into(),
                    command: Some("rm -rf /".into()),
                    policy: Some("blocked".into()),
                },
                NextStep {
                    description: "ok".into(),
                    command: Some("ps -ef".into()),
                    policy: Some("allowed".into()),
                },
            ],
            source: "local".into(),
            warnings: vec![],
        };
        let out = render(&e);
        assert!(!out.contains("rm -rf /"), "{out}");
        assert!(out.contains("$ ps -ef") && out.contains("withheld"));
    }

    #[test]
    fn flags_override_the_config_section() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            a: AnalyzeArgs,
        }
        let t = T::parse_from([
            "t",
            "--snapshot",
            "x.json",
            "--provider",
            "openai",
            "--model",
            "m",
        ]);
        let c = effective_config(&LlmConfig::default(), &t.a).unwrap();
        assert_eq!(c.provider, ProviderKind::OpenAi);
        assert_eq!(c.model, "m");
        let t = T::parse_from(["t", "--provider", "bogus"]);
        assert!(effective_config(&LlmConfig::default(), &t.a).is_err());
        assert!(T::try_parse_from(["t", "--anomaly", "a", "--snapshot", "s"]).is_err());
    }

    #[test]
    fn anomaly_target_comes_from_the_store() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("s.db");
        let a: crate::model::Anomaly = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/explain/anomaly.json"),
            )
            .unwrap(),
        )
        .unwrap();
        crate::store::Store::open(&db)
            .unwrap()
            .put_anomaly(&a)
            .unwrap();
        let args = |id: &str| AnalyzeArgs {
            anomaly: Some(id.into()),
            incident: None,
            diff: None,
            snapshot: None,
            store: Some(db.clone()),
            show_prompt: false,
            json: false,
            provider: None,
            model: None,
            base_url: None,
        };
        assert!(
            matches!(load_target(&args(&a.id), &Config::default()).unwrap(), Target::Anomaly(x) if x.id == a.id)
        );
        // Without --store, the configuration's `store` is where it looks.
        let from_config = Config {
            store: db.clone(),
            ..Config::default()
        };
        let mut no_flag = args(&a.id);
        no_flag.store = None;
        assert!(
            matches!(load_target(&no_flag, &from_config).unwrap(), Target::Anomaly(x) if x.id == a.id)
        );
        let err = load_target(&args("nope"), &Config::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no anomaly nope"), "{err}");
        let mut missing = args("x");
        let absent = d.path().join("absent.db");
        missing.store = Some(absent.clone());
        let err = load_target(&missing, &Config::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no store at"), "{err}");
        assert!(!absent.exists(), "a read created the store");
    }

    #[test]
    fn incident_target_comes_from_the_store_and_tells_the_story_locally() {
        use crate::model::{ChainLink, Factor, Level, Principal};
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("s.db");
        let mut tracker = crate::incident::Tracker::default();
        let mut last = None;
        for (n, (det, w)) in [("discovery_burst", 35u8), ("credential_access", 45)]
            .iter()
            .enumerate()
        {
            let factors = vec![Factor {
                detection: det.to_string(),
                reason: format!("{det} reason"),
                weight: *w,
                evidence: vec![format!("{n}")],
            }];
            let (score, level) = crate::model::Anomaly::score_of(&factors);
            last = tracker.observe(&crate::model::Anomaly {
                id: format!("h-{n}"),
                host: "h".into(),
                time_ns: 1_000_000_000 * (n as i64 + 1),
                principal: Principal {
                    uid: 1000,
                    user: Some("alice".into()),
                    session: Some(3),
                },
                chain: vec![ChainLink {
                    pid: 9,
                    exe: "/usr/bin/cat".into(),
                    argv: vec![],
                    uid: 1000,
                }],
                score,
                level,
                factors,
                evidence: vec![],
                fingerprint: String::new(),
                explanation: None,
            });
        }
        let inc = last.expect("two steps make an incident");
        assert_eq!(inc.level, Level::High);
        crate::store::Store::open(&db)
            .unwrap()
            .put_incident(&inc)
            .unwrap();
        let args = AnalyzeArgs {
            anomaly: None,
            incident: Some(inc.id.clone()),
            diff: None,
            snapshot: None,
            store: Some(db.clone()),
            show_prompt: false,
            json: false,
            provider: None,
            model: None,
            base_url: None,
        };
        let t = load_target(&args, &Config::default()).unwrap();
        let subject = t.subject();
        let x = crate::explain::local::explain(&subject);
        assert!(
            x.summary.contains("discovery -> credential access"),
            "{}",
            x.summary
        );
        assert_eq!(x.evidence_ids, ["h-0", "h-1"]);
        let p = crate::explain::prompt::build(
            &subject,
            &crate::explain::redact::Redactor::new(b"analyze-test-key-0123456789".to_vec()),
            3000,
        );
        assert!(
            p.user.contains("[h-1]") && p.known_ids.contains("h-0"),
            "{}",
            p.user
        );
    }
}
