//! `[[detect.exceptions]]`: operator tuning. Each entry names a detection and at least one of
//! a principal, an executable, a path and a lineage; a factor of that detection whose event
//! matches every given field is dropped, and the engine counts what each entry suppressed so
//! that one too broad shows in the run summary (docs/anomalies.md).

use globset::{Glob, GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

use super::config::Weights;

/// A principal by uid or by user name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum PrincipalRef {
    Uid(u32),
    Name(String),
}

impl std::fmt::Display for PrincipalRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrincipalRef::Uid(u) => write!(f, "{u}"),
            PrincipalRef::Name(n) => f.write_str(n),
        }
    }
}

/// One `[[detect.exceptions]]` entry as written in the config file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    /// The detection id whose factors are dropped (a key of `[detect.weights]`).
    pub detection: String,
    /// Login uid (number) or user name of the principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<PrincipalRef>,
    /// Full path of the acting executable (glob: `*` within a component, `**` across).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// A path the event names (file opened, renamed, deleted; program executed), as a glob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The process lineage ("cron>sh>tar", base names oldest first), as a glob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<String>,
}

impl Exception {
    /// A short label for counts and logs: `mass_read principal=backup lineage=cron>*>tar`.
    pub fn label(&self) -> String {
        let mut s = self.detection.clone();
        if let Some(p) = &self.principal {
            s.push_str(&format!(" principal={p}"));
        }
        for (k, v) in [
            ("exe", &self.exe),
            ("path", &self.path),
            ("lineage", &self.lineage),
        ] {
            if let Some(v) = v {
                s.push_str(&format!(" {k}={v}"));
            }
        }
        s
    }
}

/// The detection ids an exception may name: every key of `[detect.weights]`.
pub fn known_detections() -> Vec<String> {
    match serde_json::to_value(Weights::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

fn path_glob(what: &str, pattern: &str) -> Result<GlobMatcher, String> {
    if !pattern.starts_with('/') {
        return Err(format!(
            "{what} {pattern:?} must be a full path starting with /"
        ));
    }
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("{what} {pattern:?} is not a valid glob: {e}"))
}

/// Checks every entry; the error names the entry (1-based) and the problem.
pub fn validate(list: &[Exception]) -> Result<(), String> {
    compile(list).map(|_| ())
}

struct Compiled {
    rule: Exception,
    exe: Option<GlobMatcher>,
    path: Option<GlobMatcher>,
    lineage: Option<GlobMatcher>,
}

fn compile(list: &[Exception]) -> Result<Vec<Compiled>, String> {
    let known = known_detections();
    let mut out = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let at = |msg: String| format!("detect.exceptions[{}]: {msg}", i + 1);
        if !known.contains(&r.detection) {
            let mut ids = known.clone();
            ids.sort();
            return Err(at(format!(
                "unknown detection {:?} (known: {})",
                r.detection,
                ids.join(", ")
            )));
        }
        if r.principal.is_none() && r.exe.is_none() && r.path.is_none() && r.lineage.is_none() {
            return Err(at(format!(
                "an exception for {} needs at least one of principal, exe, path, lineage \
                 (to turn the detection off, set its weight to 0)",
                r.detection
            )));
        }
        if let Some(PrincipalRef::Name(n)) = &r.principal
            && n.is_empty()
        {
            return Err(at("principal must be a uid or a user name".into()));
        }
        let exe = r
            .exe
            .as_deref()
            .map(|p| path_glob("exe", p))
            .transpose()
            .map_err(at)?;
        let path = r
            .path
            .as_deref()
            .map(|p| path_glob("path", p))
            .transpose()
            .map_err(at)?;
        let lineage = match r.lineage.as_deref() {
            Some("") => return Err(at("lineage must not be empty".into())),
            Some(l) => Some(
                Glob::new(l)
                    .map(|g| g.compile_matcher())
                    .map_err(|e| at(format!("lineage {l:?} is not a valid glob: {e}")))?,
            ),
            None => None,
        };
        out.push(Compiled {
            rule: r.clone(),
            exe,
            path,
            lineage,
        });
    }
    Ok(out)
}

/// What a factor's event is about, for matching exceptions.
pub(super) struct Subject<'a> {
    pub principal: u32,
    pub user: Option<String>,
    pub exe: &'a str,
    pub paths: Vec<String>,
    pub lineage: &'a str,
}

/// The compiled exceptions and how many factors each dropped.
#[derive(Default)]
pub(super) struct Exceptions {
    rules: Vec<Compiled>,
    counts: Vec<u64>,
}

impl Exceptions {
    pub fn new(list: &[Exception]) -> Result<Exceptions, String> {
        let rules = compile(list)?;
        let counts = vec![0; rules.len()];
        Ok(Exceptions { rules, counts })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The index of the first exception that drops a factor of `detection` for `s`.
    pub fn matching(&self, detection: &str, s: &Subject<'_>) -> Option<usize> {
        self.rules.iter().position(|c| {
            c.rule.detection == detection
                && c.rule.principal.as_ref().is_none_or(|p| match p {
                    PrincipalRef::Uid(u) => *u == s.principal,
                    PrincipalRef::Name(n) => s.user.as_deref() == Some(n.as_str()),
                })
                && c.exe.as_ref().is_none_or(|g| g.is_match(s.exe))
                && c.path
                    .as_ref()
                    .is_none_or(|g| s.paths.iter().any(|p| g.is_match(p)))
                && c.lineage.as_ref().is_none_or(|g| g.is_match(s.lineage))
        })
    }

    pub fn count(&mut self, i: usize) {
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
    }

    /// (label, factors suppressed) of every exception, in config order.
    pub fn suppressed(&self) -> Vec<(String, u64)> {
        self.rules
            .iter()
            .zip(&self.counts)
            .map(|(c, n)| (c.rule.label(), *n))
            .collect()
    }
}
