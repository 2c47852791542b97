//! The file detections: credential reads, mass reads of other users' homes, persistence
//! writes, account database writes and log tampering.

use std::collections::HashSet;

use super::engine::{Engine, Hit, MassRead};
use super::rules::{O_TRUNC, hit, is_write, multi_hit};
use crate::event::Event;
use crate::proc::Process;
use crate::profile::categories::OTHER_HOME;

impl Engine {
    /// The category of `path` for this principal and process: "other_home" only for a home
    /// that belongs neither to the principal nor to the process's own real or effective uid
    /// (root working in /root reads its own home, whoever logged in).
    pub(super) fn category_of(&self, path: &str, principal: u32, p: &Process) -> Option<&str> {
        match self.cats.categorize(path, principal, &self.users) {
            Some(OTHER_HOME) => match self.users.home_owner(path) {
                Some(owner) if owner == p.euid || owner == p.uid => None,
                _ => Some(OTHER_HOME),
            },
            c => c,
        }
    }

    pub(super) fn on_open(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        path: &str,
        flags: u64,
        hits: &mut Vec<Hit>,
    ) {
        let Some(cat) = self.category_of(path, principal, p).map(str::to_string) else {
            return;
        };
        let write = is_write(flags);
        let w = self.cfg.weights.clone();
        let cats = std::sync::Arc::clone(&self.cats);
        let lists = &cats.lists;
        if self.cats.is_credential(&cat) && !write && !self.exempt(&lists.credential_readers, p) {
            let key = format!("read:{cat}");
            // The program, or this principal's lineage (a backup job), read it while learning.
            let exe_knows = self
                .baselines
                .exe(&p.exe)
                .is_some_and(|x| x.categories.contains_key(&key))
                || self
                    .lineage_profile(principal, ev.pid)
                    .is_some_and(|l| l.categories.contains_key(&key));
            let reason = match self.usable_profile(principal) {
                Some(prof) if !prof.categories.contains_key(&key) => Some((
                    format!(
                        "read {path}: never seen for this user in {} of baseline",
                        prof.span_words()
                    ),
                    Engine::novelty_weight(w.credential_access, prof),
                )),
                Some(prof) if !exe_knows => Some((
                    format!(
                        "read {path} with {}: this program never read {cat} in {} of baseline",
                        p.exe_or_comm(),
                        prof.span_words()
                    ),
                    w.credential_access,
                )),
                Some(_) => None,
                None if exe_knows => None,
                None => Some((
                    format!(
                        "read {path} with {}, which is not a known credential reader (no baseline yet)",
                        p.exe_or_comm()
                    ),
                    w.credential_access,
                )),
            };
            if let Some((r, weight)) = reason
                && self.first_time(
                    principal,
                    "credential_access",
                    &format!("{}:{path}", ev.pid),
                )
            {
                hits.push(hit("credential_access", r, weight, ev));
            }
        }
        if cat == OTHER_HOME && !write {
            self.on_other_home_read(ev, principal, p, path, hits);
        }
        if !write || self.under_package_manager(ev.pid) {
            return;
        }
        match cat.as_str() {
            "persistence"
                if !self.learned_persistence(principal, ev.pid, p)
                    && self.first_time(principal, "persistence", &format!("{}:{path}", ev.pid)) =>
            {
                hits.push(hit(
                    "persistence",
                    format!(
                        "wrote {path} with {}: a persistence place (code there runs again later)",
                        p.exe_or_comm()
                    ),
                    w.persistence,
                    ev,
                ));
            }
            "accounts" | "credentials"
                if !self.exempt(&lists.account_tools, p)
                    && !self.learned_write(principal, ev.pid, p, &cat)
                    && self.first_time(
                        principal,
                        "account_change",
                        &format!("{}:{path}", ev.pid),
                    ) =>
            {
                hits.push(hit(
                    "account_change",
                    format!(
                        "wrote {path} with {}: the account database changed",
                        p.exe_or_comm()
                    ),
                    w.account_change,
                    ev,
                ));
            }
            "logs" if flags & O_TRUNC != 0 && !self.exempt(&lists.log_maintainers, p) => {
                hits.push(hit(
                    "log_tampering",
                    format!("truncated {path} with {}", p.exe_or_comm()),
                    w.log_tampering,
                    ev,
                ));
            }
            _ => {}
        }
    }

    /// Did this principal write `category` this way while learning: in this lineage (a
    /// user's editor on its own shell rc, an admin's account script), or with this program
    /// (visudo replacing /etc/sudoers) when the principal itself wrote the category? Another
    /// user's habit never covers this principal: `bash` writing someone's ~/.bashrc while
    /// learning says nothing about `bash` writing /etc/systemd/system for someone else.
    pub(super) fn learned_write(
        &self,
        principal: u32,
        pid: u32,
        p: &Process,
        category: &str,
    ) -> bool {
        let key = format!("write:{category}");
        let Some(prof) = self.usable_profile(principal) else {
            return false;
        };
        self.lineage_profile(principal, pid)
            .is_some_and(|l| l.categories.contains_key(&key))
            || (prof.categories.contains_key(&key)
                && self
                    .baselines
                    .exe(&p.exe)
                    .is_some_and(|x| x.categories.contains_key(&key)))
    }

    /// A persistence write this principal makes by habit: `learned_write`, or the crontab
    /// tool's own write in a lineage that installed a crontab while learning (persist.rs),
    /// even when that write was not placed then.
    fn learned_persistence(&self, principal: u32, pid: u32, p: &Process) -> bool {
        self.learned_write(principal, pid, p, "persistence")
            || (self.usable_profile(principal).is_some()
                && self.lineage_knows_behaviour(principal, pid, "persistence"))
    }

    fn on_other_home_read(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        path: &str,
        hits: &mut Vec<Hit>,
    ) {
        // Judged against the baseline: a (principal x lineage) that read other homes while
        // learning (a backup job, a toolchain shared from another home) does not count.
        if self
            .lineage_profile(principal, ev.pid)
            .is_some_and(|l| l.categories.contains_key("read:other_home"))
        {
            return;
        }
        let owner = self.users.home_owner(path).unwrap_or(u32::MAX);
        let m = self.mass.entry(p.key()).or_insert_with(|| MassRead {
            paths: HashSet::new(),
            owners: HashSet::new(),
            evidence: Vec::new(),
        });
        if !m.paths.insert(path.to_string()) || m.paths.len() > 10_000 {
            return;
        }
        m.owners.insert(owner);
        if m.evidence.len() < 10 {
            m.evidence.push(ev.clone());
        }
        if m.paths.len() < self.cfg.mass_read_threshold as usize {
            return;
        }
        let n = m.paths.len();
        let mut owners: Vec<String> = m.owners.iter().map(|u| self.users.display(*u)).collect();
        owners.sort();
        let extra = m.evidence.clone();
        if !self.first_time(principal, "mass_read", &ev.pid.to_string()) {
            return;
        }
        hits.push(multi_hit(
            "mass_read",
            format!(
                "{} read {n} files in other users' home directories ({})",
                p.exe_or_comm(),
                owners.join(", ")
            ),
            self.cfg.weights.mass_read,
            extra,
        ));
    }

    pub(super) fn on_log_change(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        path: &str,
        what: String,
        hits: &mut Vec<Hit>,
    ) {
        let in_logs = self.category_of(path, principal, p) == Some("logs");
        if in_logs
            && !self.exempt(&self.cats.lists.log_maintainers, p)
            && !self.under_package_manager(ev.pid)
        {
            // Old rotated archives removed by the lineage that removed them while learning
            // (an admin's retention clean-up: find /var/log -name '*.gz' -mtime +7 -delete)
            // are its routine; a live log, or a lineage that never did it, stays a finding.
            if is_rotated_archive(path) {
                let known = self.usable_profile(principal).is_some()
                    && self.lineage_knows_behaviour(principal, ev.pid, "log_retention");
                self.note_behaviour(ev, principal, "log_retention");
                if known {
                    return;
                }
            }
            hits.push(hit(
                "log_tampering",
                format!("{what} with {}", p.exe_or_comm()),
                self.cfg.weights.log_tampering,
                ev,
            ));
        }
    }
}

/// A rotated log's archive, not a live log: compressed (`auth.log.2.gz`), numbered
/// (`syslog.1`), `.old`, or dated by logrotate's dateext (`syslog-20261129`).
pub(super) fn is_rotated_archive(path: &str) -> bool {
    let name = crate::proc::basename(path);
    let compressed = [".gz", ".xz", ".bz2", ".zst", ".lz4", ".zip"]
        .iter()
        .any(|x| name.len() > x.len() && name.ends_with(x));
    let last = name.rsplit(['.', '-']).next().unwrap_or("");
    let digits = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
    let numbered = digits && last.len() <= 3 && name.len() > last.len() + 1;
    let dated = digits && last.len() == 8 && name.len() > 9;
    compressed || numbered || dated || name.ends_with(".old")
}

#[cfg(test)]
mod tests {
    #[test]
    fn rotated_archives_are_told_from_live_logs() {
        for a in [
            "/var/log/auth.log.2.gz",
            "/var/log/syslog.1",
            "/var/log/app/worker.log.old",
            "/var/log/syslog-20261129",
            "/var/log/app/x.log-20261129.xz",
        ] {
            assert!(super::is_rotated_archive(a), "{a}");
        }
        for l in [
            "/var/log/auth.log",
            "/var/log/wtmp",
            "/var/log/audit/audit.log",
            "/var/log/sntl-ev-a012.log",
            "/var/log/.gz",
            "/var/log/app/2026",
        ] {
            assert!(!super::is_rotated_archive(l), "{l}");
        }
    }
}
