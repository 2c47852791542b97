//! The system baseline (`--learn` / `--baseline`): process count range, memory and load peaks,
//! the expected listeners by (protocol, address, port), and the accepted state of each watched
//! file. Versioned JSON in `store::Store` (kind "snapshot", key = host name). Re-learning
//! accepts the current file state, unlike C-Sentinel which kept the first checksum forever.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Fingerprint;

pub const STORE_KIND: &str = "snapshot";
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotBaseline {
    pub version: u32,
    pub samples: u32,
    pub first_learned: String,
    pub last_learned: String,
    pub process_count_min: usize,
    pub process_count_max: usize,
    pub process_count_mean: f64,
    pub memory_used_percent_mean: f64,
    pub memory_used_percent_max: f64,
    pub load1_max: f64,
    pub load5_max: f64,
    /// Whether any learning run probed the network (else listeners are not compared).
    pub network_learned: bool,
    pub listeners: BTreeSet<ListenerKey>,
    pub config_files: BTreeMap<String, FileState>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ListenerKey {
    pub protocol: String,
    pub address: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileState {
    pub exists: bool,
    pub checksum: Option<String>,
    pub permissions: Option<String>,
    pub owner_uid: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Deviation {
    /// process_count, memory, load, new_listener, missing_listener, config_changed,
    /// config_appeared, config_vanished
    pub kind: &'static str,
    pub detail: String,
}

fn listener_keys(fp: &Fingerprint) -> BTreeSet<ListenerKey> {
    fp.network
        .listeners
        .iter()
        .map(|l| ListenerKey {
            protocol: l.protocol.clone(),
            address: l.address.clone(),
            port: l.port,
        })
        .collect()
}

fn file_states(fp: &Fingerprint) -> BTreeMap<String, FileState> {
    fp.config_files
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                FileState {
                    exists: f.exists,
                    checksum: f.checksum.clone(),
                    permissions: f.permissions.clone(),
                    owner_uid: f.owner_uid,
                },
            )
        })
        .collect()
}

impl SnapshotBaseline {
    pub fn learn(&mut self, fp: &Fingerprint) {
        let n = self.samples as f64;
        let pc = fp.process_summary.total_count;
        let mem = fp.system.memory_used_percent.unwrap_or(0.0);
        if self.samples == 0 {
            self.first_learned = fp.probe_time.clone();
            self.process_count_min = pc;
            self.process_count_max = pc;
            self.memory_used_percent_max = mem;
        }
        self.process_count_min = self.process_count_min.min(pc);
        self.process_count_max = self.process_count_max.max(pc);
        self.process_count_mean = (self.process_count_mean * n + pc as f64) / (n + 1.0);
        self.memory_used_percent_mean = (self.memory_used_percent_mean * n + mem) / (n + 1.0);
        self.memory_used_percent_max = self.memory_used_percent_max.max(mem);
        self.load1_max = self.load1_max.max(fp.system.load_average[0]);
        self.load5_max = self.load5_max.max(fp.system.load_average[1]);
        if fp.network.probed {
            self.network_learned = true;
            self.listeners.extend(listener_keys(fp));
        }
        self.config_files.extend(file_states(fp));
        self.last_learned = fp.probe_time.clone();
        self.samples = self.samples.saturating_add(1);
        self.version = VERSION;
    }

    pub fn compare(&self, fp: &Fingerprint) -> Vec<Deviation> {
        let mut out = Vec::new();
        let mut add = |kind, detail| out.push(Deviation { kind, detail });
        let pc = fp.process_summary.total_count;
        let margin = (self.process_count_max - self.process_count_min) / 2 + 10;
        let lo = self.process_count_min.saturating_sub(margin);
        let hi = self.process_count_max + margin;
        if pc < lo || pc > hi {
            add(
                "process_count",
                format!("{pc} processes, outside the learned range {lo}..={hi}"),
            );
        }
        if let Some(mem) = fp.system.memory_used_percent
            && mem > self.memory_used_percent_max + 10.0
        {
            add(
                "memory",
                format!(
                    "memory {mem:.1}% used, learned peak {:.1}%",
                    self.memory_used_percent_max
                ),
            );
        }
        // A floor of 1.0 keeps an idle learning host from calling any work a deviation.
        let (l1, l5) = (fp.system.load_average[0], fp.system.load_average[1]);
        if l1 > 2.0 * self.load1_max.max(1.0) || l5 > 2.0 * self.load5_max.max(1.0) {
            add(
                "load",
                format!(
                    "load {l1:.2}/{l5:.2}, more than twice the learned peak {:.2}/{:.2}",
                    self.load1_max, self.load5_max
                ),
            );
        }
        // Listeners are compared only when both sides probed the network (C-Sentinel
        // reported every port as missing without -n).
        if fp.network.probed && self.network_learned {
            let now = listener_keys(fp);
            for k in now.difference(&self.listeners) {
                let owner = fp
                    .network
                    .listeners
                    .iter()
                    .find(|l| {
                        l.protocol == k.protocol && l.address == k.address && l.port == k.port
                    })
                    .and_then(|l| Some(format!(" ({}, pid {})", l.process.as_ref()?, l.pid?)))
                    .unwrap_or_default();
                add(
                    "new_listener",
                    format!(
                        "new listener {}/{}:{}{owner}",
                        k.protocol, k.address, k.port
                    ),
                );
            }
            for k in self.listeners.difference(&now) {
                add(
                    "missing_listener",
                    format!("listener gone: {}/{}:{}", k.protocol, k.address, k.port),
                );
            }
        }
        for (path, now) in file_states(fp) {
            let Some(then) = self.config_files.get(&path) else {
                if now.exists {
                    add("config_appeared", format!("{path}: not in the baseline"));
                }
                continue;
            };
            match (then.exists, now.exists) {
                (true, false) => add("config_vanished", format!("{path}: deleted")),
                (false, true) => add("config_appeared", format!("{path}: created")),
                (false, false) => {}
                (true, true) => {
                    let mut what = Vec::new();
                    if then.checksum != now.checksum {
                        what.push("content".to_string());
                    }
                    if then.permissions != now.permissions {
                        what.push(format!(
                            "mode {} -> {}",
                            then.permissions.as_deref().unwrap_or("?"),
                            now.permissions.as_deref().unwrap_or("?")
                        ));
                    }
                    if then.owner_uid != now.owner_uid {
                        what.push("owner".to_string());
                    }
                    if !what.is_empty() {
                        add(
                            "config_changed",
                            format!("{path}: {} changed", what.join(", ")),
                        );
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::network::Listener;

    fn fp() -> Fingerprint {
        crate::snapshot::test_fingerprint()
    }

    #[test]
    fn learn_then_compare_finds_new_and_missing_listeners_and_file_drift() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.conf");
        std::fs::write(&p, "a").unwrap();
        let mut a = fp();
        a.network.probed = true;
        a.network.listeners = vec![Listener {
            protocol: "tcp".into(),
            address: "0.0.0.0".into(),
            port: 22,
            ..Default::default()
        }];
        a.config_files = vec![crate::snapshot::files::probe_file(&p, 1 << 20)];
        let mut b = SnapshotBaseline::default();
        b.learn(&a);
        assert!(b.compare(&a).iter().all(|d| d.kind != "new_listener"));
        let mut c = a.clone();
        c.network.listeners[0].port = 4444;
        std::fs::write(&p, "b").unwrap();
        c.config_files = vec![crate::snapshot::files::probe_file(&p, 1 << 20)];
        let kinds: Vec<_> = b.compare(&c).into_iter().map(|d| d.kind).collect();
        assert!(kinds.contains(&"new_listener"));
        assert!(kinds.contains(&"missing_listener"));
        assert!(kinds.contains(&"config_changed"));
        // Without -n nothing is "missing".
        c.network = Default::default();
        assert!(b.compare(&c).iter().all(|d| d.kind != "missing_listener"));
        // Re-learning accepts the new content.
        b.learn(&c);
        assert!(b.compare(&c).iter().all(|d| d.kind != "config_changed"));
    }
}
