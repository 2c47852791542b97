//! `--watch`: what changed between two fingerprints (listeners, zombies, watched files,
//! findings, status) and the new audit factors of each interval, printed as time-stamped lines
//! (or one JSON object per line with --json, which stays parseable).

use std::collections::BTreeSet;

use serde::Serialize;

use super::Fingerprint;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// listener_added, listener_removed, zombie_appeared, zombie_gone, config_changed,
    /// finding, status, audit
    pub kind: &'static str,
    pub detail: String,
}

fn listeners(fp: &Fingerprint) -> BTreeSet<(String, String, u16, String)> {
    fp.network
        .listeners
        .iter()
        .map(|l| {
            let owner = match (&l.process, l.pid) {
                (Some(c), Some(p)) => format!("{c}, pid {p}"),
                _ => "owner unknown".into(),
            };
            let owner = if l.unusual {
                format!("{owner}, unusual port")
            } else {
                owner
            };
            (l.protocol.clone(), l.address.clone(), l.port, owner)
        })
        .collect()
}

fn zombies(fp: &Fingerprint) -> BTreeSet<(u32, String, u32)> {
    fp.process_summary
        .notable_processes
        .iter()
        .filter(|p| p.flags.iter().any(|f| f == "zombie"))
        .map(|p| (p.pid, p.name.clone(), p.ppid))
        .collect()
}

/// Changes from `prev` to `cur` (the snapshot part; audit changes come from its own window).
pub fn changes(prev: &Fingerprint, cur: &Fingerprint) -> Vec<Change> {
    let mut out = Vec::new();
    let key = |t: &(String, String, u16, String)| (t.0.clone(), t.1.clone(), t.2);
    let (a, b) = (listeners(prev), listeners(cur));
    let (ak, bk): (BTreeSet<_>, BTreeSet<_>) =
        (a.iter().map(key).collect(), b.iter().map(key).collect());
    for l in b.iter().filter(|l| !ak.contains(&key(l))) {
        out.push(Change {
            kind: "listener_added",
            detail: format!("+ listener {}/{}:{} ({})", l.0, l.1, l.2, l.3),
        });
    }
    for l in a.iter().filter(|l| !bk.contains(&key(l))) {
        out.push(Change {
            kind: "listener_removed",
            detail: format!("- listener {}/{}:{} ({})", l.0, l.1, l.2, l.3),
        });
    }
    let (za, zb) = (zombies(prev), zombies(cur));
    for z in zb.difference(&za) {
        out.push(Change {
            kind: "zombie_appeared",
            detail: format!("+ zombie {}({}) parent {}", z.1, z.0, z.2),
        });
    }
    for z in za.difference(&zb) {
        out.push(Change {
            kind: "zombie_gone",
            detail: format!("- zombie {}({}) reaped", z.1, z.0),
        });
    }
    for f in &cur.config_files {
        let Some(old) = prev.config_files.iter().find(|o| o.path == f.path) else {
            continue;
        };
        let mut what = Vec::new();
        if old.exists != f.exists {
            what.push(if f.exists { "created" } else { "deleted" }.to_string());
        }
        if old.checksum != f.checksum && old.exists && f.exists {
            what.push("content changed".into());
        }
        if old.permissions != f.permissions && old.exists && f.exists {
            what.push(format!(
                "mode {} -> {}",
                old.permissions.as_deref().unwrap_or("?"),
                f.permissions.as_deref().unwrap_or("?")
            ));
        }
        if old.owner_uid != f.owner_uid && old.exists && f.exists {
            what.push("owner changed".into());
        }
        if !what.is_empty() {
            out.push(Change {
                kind: "config_changed",
                detail: format!("~ {}: {}", f.path, what.join(", ")),
            });
        }
    }
    let old: BTreeSet<_> = prev.findings.iter().map(|f| f.detection).collect();
    for f in cur.findings.iter().filter(|f| !old.contains(f.detection)) {
        out.push(Change {
            kind: "finding",
            detail: format!(
                "! {}: {}",
                match f.severity {
                    super::Severity::Critical => "critical",
                    super::Severity::Warning => "warning",
                },
                f.reason
            ),
        });
    }
    if prev.exit_code != cur.exit_code {
        out.push(Change {
            kind: "status",
            detail: format!("status {} -> {}", prev.status, cur.status),
        });
    }
    out
}

/// The audit factors of one interval, as changes.
pub fn audit_changes(fp: &Fingerprint) -> Vec<Change> {
    fp.audit_summary
        .risk_factors
        .iter()
        .map(|f| Change {
            kind: "audit",
            detail: format!(
                "audit: {} [{}] +{}",
                f.reason,
                f.evidence.join(" "),
                f.weight
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::network::Listener;

    fn fp() -> Fingerprint {
        crate::snapshot::test_fingerprint()
    }

    #[test]
    fn only_changes_are_reported() {
        let a = fp();
        assert!(changes(&a, &a).is_empty());
        let mut b = a.clone();
        b.network.listeners.push(Listener {
            protocol: "tcp".into(),
            address: "127.0.0.1".into(),
            port: 4444,
            pid: Some(7),
            process: Some("nc".into()),
            unusual: true,
        });
        let c = changes(&a, &b);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].detail,
            "+ listener tcp/127.0.0.1:4444 (nc, pid 7, unusual port)"
        );
        assert_eq!(changes(&b, &a)[0].kind, "listener_removed");
    }
}
