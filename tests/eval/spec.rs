//! The corpus on disk: attack scenarios (`attack/<tactic>/<name>.sh`) and benign workloads
//! (`benign/<name>.sh`), each a shell script whose leading `# key: value` comments say what it
//! plays and what should be said about it (tests/corpus/README.md).

use std::path::{Path, PathBuf};

/// ATT&CK's Linux tactics the corpus is sorted by (directory names under attack/).
pub const TACTICS: &[&str] = &[
    "discovery",
    "credential-access",
    "defense-evasion",
    "persistence",
    "privilege-escalation",
    "collection",
    "execution",
    "command-and-control",
    "exfiltration",
    "lateral-movement",
    "impact",
];

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{path}:{line}: {why}")]
    Header {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("{0}: {1}")]
    Invalid(PathBuf, String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Attack,
    Benign,
}

/// Who runs the script: the throw-away user itself, or root on its behalf (an admin insider:
/// root with the user's login uid, as after `sudo -i`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum As {
    User,
    Root,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub kind: Kind,
    /// `<tactic>/<name>` or `benign/<name>`.
    pub id: String,
    /// The file name without `.sh`.
    pub name: String,
    /// Path relative to the corpus directory.
    pub rel: PathBuf,
    /// Attack: the tactic (its directory). Benign: the workload kind.
    pub tactic: String,
    /// Attack: ATT&CK id and name. Benign: empty.
    pub technique: String,
    pub behaviour: String,
    pub as_: As,
    /// Detection ids any of which should name it.
    pub expect: Vec<String>,
    /// Needs the stand-in remote side (C2, payload server, exfiltration sink).
    pub needs_remote: bool,
    /// Root shell lines run outside the scenario's session before / after it.
    pub setup: Vec<String>,
    pub teardown: Vec<String>,
    pub known_miss: Option<String>,
    pub out_of_scope: Option<String>,
    /// Benign: (detection, why) of false positives known today.
    pub known_fp: Vec<(String, String)>,
}

impl Scenario {
    /// Counted in recall and asserted by the CI test.
    pub fn in_scope(&self) -> bool {
        self.kind == Kind::Attack && self.out_of_scope.is_none()
    }
}

/// Parses the header of one script.
pub fn parse(kind: Kind, rel: &Path, text: &str) -> Result<Scenario, SpecError> {
    let err = |line: usize, why: String| SpecError::Header {
        path: rel.to_path_buf(),
        line,
        why,
    };
    let name = rel
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| SpecError::Invalid(rel.into(), "no file name".into()))?
        .to_string();
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(SpecError::Invalid(
            rel.into(),
            "names are lowercase letters, digits and '-' (they name files in /etc/cron.d)".into(),
        ));
    }
    let dir = rel
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .to_string();
    let mut s = Scenario {
        kind,
        id: format!("{dir}/{name}"),
        name,
        rel: rel.to_path_buf(),
        tactic: String::new(),
        technique: String::new(),
        behaviour: String::new(),
        as_: As::User,
        expect: Vec::new(),
        needs_remote: false,
        setup: Vec::new(),
        teardown: Vec::new(),
        known_miss: None,
        out_of_scope: None,
        known_fp: Vec::new(),
    };
    let mut saw_as = false;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if n == 1 && line.starts_with("#!") {
            continue;
        }
        let Some(body) = line.strip_prefix('#') else {
            break;
        };
        let Some((k, v)) = body.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim().to_string());
        if k.contains(' ') {
            continue; // prose, not a key
        }
        match k {
            "tactic" | "workload" => s.tactic = v,
            "technique" => s.technique = v,
            "behaviour" => s.behaviour = v,
            "as" => {
                saw_as = true;
                s.as_ = match v.as_str() {
                    "user" => As::User,
                    "root" => As::Root,
                    _ => return Err(err(n, format!("as: user or root, not {v:?}"))),
                }
            }
            "expect" => {
                s.expect = v
                    .split(',')
                    .map(|d| d.trim().to_string())
                    .filter(|d| !d.is_empty())
                    .collect()
            }
            "needs" => match v.as_str() {
                "remote" => s.needs_remote = true,
                _ => return Err(err(n, format!("needs: only `remote`, not {v:?}"))),
            },
            "setup" => s.setup.push(v),
            "teardown" => s.teardown.push(v),
            "known-miss" => s.known_miss = Some(v),
            "out-of-scope" => s.out_of_scope = Some(v),
            "known-fp" => {
                let (d, why) = v
                    .split_once(':')
                    .ok_or_else(|| err(n, "known-fp: <detection>: <why>".into()))?;
                s.known_fp
                    .push((d.trim().to_string(), why.trim().to_string()));
            }
            _ => return Err(err(n, format!("unknown header key {k:?}"))),
        }
    }
    let invalid = |why: &str| Err(SpecError::Invalid(rel.into(), why.into()));
    if !saw_as {
        return invalid("missing `# as: user|root`");
    }
    if s.behaviour.is_empty() {
        return invalid("missing `# behaviour:`");
    }
    match kind {
        Kind::Attack => {
            if s.tactic != dir {
                return invalid(&format!("`# tactic: {}` but it lives in {dir}/", s.tactic));
            }
            if !TACTICS.contains(&s.tactic.as_str()) {
                return invalid(&format!(
                    "unknown tactic {:?} (one of {TACTICS:?})",
                    s.tactic
                ));
            }
            if s.technique.is_empty() {
                return invalid("missing `# technique: T#### Name`");
            }
            if s.expect.is_empty() && s.out_of_scope.is_none() {
                return invalid("missing `# expect:` (or `# out-of-scope: why`)");
            }
            if !s.known_fp.is_empty() {
                return invalid("known-fp is for benign workloads");
            }
        }
        Kind::Benign => {
            if s.tactic.is_empty() {
                return invalid("missing `# workload:`");
            }
            if s.known_miss.is_some() || !s.expect.is_empty() {
                return invalid("known-miss and expect are for attack scenarios");
            }
            s.id = format!("benign/{}", s.name);
        }
    }
    Ok(s)
}

/// Every scenario under `dir` (attack/ and benign/), sorted by id.
pub fn load(dir: &Path) -> Result<Vec<Scenario>, SpecError> {
    let mut out = Vec::new();
    let read = |p: &Path| std::fs::read_dir(p).map_err(|e| SpecError::Io(p.to_path_buf(), e));
    for (kind, sub) in [(Kind::Attack, "attack"), (Kind::Benign, "benign")] {
        let mut files = Vec::new();
        for e in read(&dir.join(sub))? {
            let p = e.map_err(|e| SpecError::Io(dir.join(sub), e))?.path();
            if p.is_dir() {
                for f in read(&p)? {
                    files.push(f.map_err(|e| SpecError::Io(p.clone(), e))?.path());
                }
            } else {
                files.push(p);
            }
        }
        for p in files {
            if p.extension().is_none_or(|x| x != "sh") {
                continue;
            }
            let text = std::fs::read_to_string(&p).map_err(|e| SpecError::Io(p.clone(), e))?;
            let rel = p.strip_prefix(dir).unwrap_or(&p).to_path_buf();
            out.push(parse(kind, &rel, &text)?);
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(w) = out.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(SpecError::Invalid(
            w[1].rel.clone(),
            format!("name also used by {}", w[0].rel.display()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "#!/usr/bin/env bash\n# tactic: persistence\n# technique: T1053.003 Cron\n\
        # behaviour: writes a cron file\n# as: root\n# expect: persistence, x\n\
        # setup: touch /a\n# known-miss: not yet\nset -u\n# tactic: ignored after the header\n";

    #[test]
    fn header_parses() {
        let s = parse(
            Kind::Attack,
            Path::new("attack/persistence/cron-d.sh"),
            GOOD,
        )
        .unwrap();
        assert_eq!(s.id, "persistence/cron-d");
        assert_eq!(s.as_, As::Root);
        assert_eq!(s.expect, vec!["persistence", "x"]);
        assert_eq!(s.setup, vec!["touch /a"]);
        assert_eq!(s.known_miss.as_deref(), Some("not yet"));
        assert!(s.in_scope());
    }

    #[test]
    fn bad_headers_are_refused() {
        let p = Path::new("attack/discovery/cron-d.sh");
        assert!(
            parse(Kind::Attack, p, GOOD).is_err(),
            "tactic must match the directory"
        );
        let p = Path::new("attack/persistence/cron-d.sh");
        assert!(parse(Kind::Attack, p, &GOOD.replace("# as: root\n", "")).is_err());
        assert!(
            parse(
                Kind::Attack,
                p,
                &GOOD.replace("# expect: persistence, x\n", "")
            )
            .is_err()
        );
        assert!(parse(Kind::Attack, p, &GOOD.replace("setup:", "setpu:")).is_err());
        let p = Path::new("attack/persistence/Cron.sh");
        assert!(parse(Kind::Attack, p, GOOD).is_err());
    }

    /// The repository's corpus itself: every header valid, every tactic present, and at
    /// least the size the evaluation promises.
    #[test]
    fn the_corpus_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        let all = load(&dir).unwrap_or_else(|e| panic!("{e}"));
        let attacks = all.iter().filter(|s| s.in_scope()).count();
        let benign = all.iter().filter(|s| s.kind == Kind::Benign).count();
        assert!(attacks >= 80, "{attacks} in-scope attack scenarios");
        assert!(benign >= 5, "{benign} benign workloads");
        for t in TACTICS {
            assert!(all.iter().any(|s| s.tactic == *t), "no scenario for {t}");
        }
    }

    #[test]
    fn benign_known_fp() {
        let t = "# workload: developer\n# behaviour: builds\n# as: user\n\
                 # known-fp: exec_from_writable: runs its build from /tmp\n";
        let s = parse(Kind::Benign, Path::new("benign/dev.sh"), t).unwrap();
        assert_eq!(s.id, "benign/dev");
        assert_eq!(s.known_fp[0].0, "exec_from_writable");
        assert!(!s.in_scope());
    }
}
