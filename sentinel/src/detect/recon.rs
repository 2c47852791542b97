//! Discovery and collection: how many discovery areas a principal explores that its baseline
//! never saw (`recon_breadth`), and sensitive data gathered into archives, chunks or a
//! staging directory (`staging`).

use super::behaviour::{Cmd, Copies, shorten};
use super::engine::{Engine, Hit};
use super::rules::{hit, multi_hit};
use crate::event::Event;
use crate::proc::Process;
use crate::profile::categories::{OTHER_HOME, entry_match};

/// Archivers and compressors (collection into one file).
const ARCHIVERS: [&str; 17] = [
    "tar", "zip", "7z", "7za", "7zz", "7zr", "rar", "gzip", "bzip2", "xz", "zstd", "pigz", "cpio",
    "pax", "lz4", "lzma", "bsdtar",
];

/// Discovery areas that are a finding on their own when new to the principal.
const POINTED: [&str; 4] = [
    "setuid_search",
    "credential_search",
    "security_software",
    "virtualization",
];

/// Where collected data is put before it leaves.
const STAGING_DIRS: [&str; 3] = ["/tmp/", "/var/tmp/", "/dev/shm/"];

/// Database directories (whole databases copied out).
const DATA_DIRS: [&str; 5] = [
    "/var/lib/mysql",
    "/var/lib/postgresql",
    "/var/lib/mongodb",
    "/var/lib/redis",
    "/var/lib/pgsql",
];

impl Engine {
    pub(super) fn recon_exec(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        cmd: &Cmd,
        hits: &mut Vec<Hit>,
    ) {
        self.recon_breadth(ev, principal, cmd, hits);
        self.staging_exec(ev, principal, p, cmd, hits);
    }

    /// The discovery areas one command explores ("accounts", "network", ...).
    fn recon_areas(&self, cmd: &Cmd) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in &self.cats.lists.recon {
            let Some((area, entry)) = e.split_once(':') else {
                continue;
            };
            let area = area.trim();
            if !out.iter().any(|a| a == area) && entry_match(entry.trim(), &cmd.name, &cmd.args) {
                out.push(area.to_string());
            }
        }
        out
    }

    fn recon_breadth(&mut self, ev: &Event, principal: u32, cmd: &Cmd, hits: &mut Vec<Hit>) {
        let areas = self.recon_areas(cmd);
        self.recon_seen(ev, principal, areas, hits);
    }

    /// An interpreter reading the files discovery commands read (`pwd.getpwall()`,
    /// `open("/etc/os-release")`): the same areas, without a command.
    fn recon_file(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        path: &str,
        hits: &mut Vec<Hit>,
    ) {
        if !super::behaviour::is_interpreter(p.name()) {
            return;
        }
        let area = match path {
            "/etc/passwd" => "accounts",
            "/etc/group" => "groups",
            "/etc/hosts" | "/etc/resolv.conf" => "network",
            "/proc/mounts" | "/etc/fstab" | "/proc/self/mounts" => "storage",
            "/etc/os-release" | "/proc/version" | "/proc/cpuinfo" | "/etc/issue" => "system",
            "/proc/1/cgroup" | "/.dockerenv" => "virtualization",
            "/etc/shells" => "shells",
            "/etc/sudoers" => "sudo",
            "/etc/login.defs" => "password_policy",
            "/etc/crontab" => "scheduled_tasks",
            _ if path.starts_with("/proc/net/") => "network",
            _ if path.starts_with("/sys/class/dmi/id/") => "virtualization",
            _ => return,
        };
        self.recon_seen(ev, principal, vec![area.to_string()], hits);
    }

    fn recon_seen(&mut self, ev: &Event, principal: u32, areas: Vec<String>, hits: &mut Vec<Hit>) {
        if areas.is_empty() {
            return;
        }
        let baseline = self.usable_profile(principal).map(|p| p.span_words());
        let mut fresh = Vec::new();
        for a in areas {
            let det = format!("recon:{a}");
            // What the principal explored before is not new (a baseline learned it).
            if baseline.is_none() || !self.known_behaviour(principal, "", &det) {
                fresh.push(a);
            }
            self.note_behaviour(ev, principal, &det);
        }
        if fresh.is_empty() {
            return;
        }
        // Some areas point at a next step on their own: a set-uid or credential search, a
        // look for the security tools watching, a sandbox check.
        for a in &fresh {
            if POINTED.contains(&a.as_str()) && self.first_time(principal, "recon_breadth", a) {
                let what = super::evidence::summary(ev);
                let r = match &baseline {
                    Some(s) => format!(
                        "{} discovery ({}): never explored by this user in {s} of baseline, a step towards escalation or evasion",
                        a.replace('_', " "),
                        shorten(&what, 80)
                    ),
                    None => format!(
                        "{} discovery ({}): a step towards escalation or evasion",
                        a.replace('_', " "),
                        shorten(&what, 80)
                    ),
                };
                hits.push(hit(
                    "recon_breadth",
                    r,
                    self.cfg.weights.recon_breadth * 5 / 7,
                    ev,
                ));
            }
        }
        let span = self.cfg.recon_window_secs as i64 * 1_000_000_000;
        let mut q = self.behaviour.recon.remove(&principal).unwrap_or_default();
        for a in fresh {
            q.push_back((ev.time_ns, a, ev.clone()));
        }
        while q.front().is_some_and(|(t, _, _)| *t < ev.time_ns - span) || q.len() > 128 {
            q.pop_front();
        }
        // Areas explored while the baseline was still being learned are known by now.
        if baseline.is_some() {
            q.retain(|(_, a, _)| !self.known_behaviour(principal, "", &format!("recon:{a}")));
        }
        let q = self.behaviour.recon.entry(principal).or_insert(q);
        // The first command that explored each area is its evidence.
        let mut areas: Vec<(String, Event)> = Vec::new();
        for (_, a, e) in q.iter() {
            if !areas.iter().any(|(x, _)| x == a) {
                areas.push((a.clone(), e.clone()));
            }
        }
        self.bound_state();
        if areas.len() < self.cfg.recon_categories as usize
            || !self.first_time(principal, "recon_breadth", "")
        {
            return;
        }
        let list: Vec<String> = areas
            .iter()
            .map(|(a, e)| {
                let what = match &e.payload {
                    crate::event::Payload::Exec { argv, .. } => argv
                        .iter()
                        .map(|x| x.lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(" "),
                    crate::event::Payload::Open { path, .. } => format!("read {path}"),
                    _ => String::new(),
                };
                format!("{a} ({})", shorten(&what, 40))
            })
            .collect();
        let n = areas.len();
        let secs = self.cfg.recon_window_secs;
        let reason = match baseline {
            Some(s) => format!(
                "explored {n} discovery areas within {secs} s that this user never explored in {s} of baseline: {}",
                list.join(", ")
            ),
            None => format!(
                "explored {n} discovery areas within {secs} s: {}",
                list.join(", ")
            ),
        };
        let evidence: Vec<Event> = areas.into_iter().map(|(_, e)| e).collect();
        hits.push(multi_hit(
            "recon_breadth",
            reason,
            self.cfg.weights.recon_breadth,
            evidence,
        ));
    }

    /// Is this path sensitive data worth collecting (credentials, account databases,
    /// other users' homes, all of /etc or /home, databases, keys)?
    fn sensitive_source(&self, principal: u32, path: &str) -> bool {
        let p = path.trim_end_matches('/');
        if matches!(p, "/etc" | "/home" | "/root" | "/var/lib" | "/var/backups")
            && !(p == "/root" && principal == 0)
        {
            return true;
        }
        if DATA_DIRS.iter().any(|d| p.starts_with(d))
            || [
                ".ssh",
                ".gnupg",
                ".aws",
                ".mozilla",
                ".password-store",
                ".kube",
            ]
            .iter()
            .any(|d| p.contains(&format!("/{d}")))
            || [".kdbx", ".sqlite", ".db", ".sql"]
                .iter()
                .any(|x| p.ends_with(x))
        {
            return true;
        }
        if self
            .users
            .home_owner(&format!("{p}/"))
            .is_some_and(|o| o != principal)
        {
            return true;
        }
        match self.cats.categorize(p, principal, &self.users) {
            Some(c) => {
                c == OTHER_HOME
                    || c == "accounts"
                    || c == "auth_config"
                    || self.cats.is_credential(c)
            }
            None => false,
        }
    }

    fn staging_exec(
        &mut self,
        ev: &Event,
        principal: u32,
        _p: &Process,
        cmd: &Cmd,
        hits: &mut Vec<Hit>,
    ) {
        if ev.auid.is_none() || self.under_package_manager(ev.pid) {
            return;
        }
        let n = cmd.name.as_str();
        let w = self.cfg.weights.staging;
        let (what, weight) = if ARCHIVERS.contains(&n) {
            // Operands are relative to the last `-C DIR` (tar) when one was given.
            let mut dir: Option<String> = None;
            let mut src = None;
            let mut it = cmd.args.iter().peekable();
            while let Some(a) = it.next() {
                if a == "-C" || a == "--directory" {
                    dir = it.next().map(|d| self.path_of(ev.pid, d));
                    continue;
                }
                let a = a.split_once('=').map(|(_, v)| v).unwrap_or(a);
                if a.starts_with('-') {
                    continue;
                }
                let path = match &dir {
                    Some(d) if !a.starts_with('/') => crate::proc::absolute(a, Some(d)),
                    _ => self.path_of(ev.pid, a),
                };
                if self.sensitive_source(principal, &path) {
                    src = Some(path);
                    break;
                }
            }
            match src {
                Some(s) => (format!("packed {s} with {}", shorten(&cmd.line(), 120)), w),
                None => return,
            }
        } else if n == "split" {
            // The first operand that is not the value of a size or count option.
            let mut input = "";
            let mut skip = false;
            for a in &cmd.args {
                if skip {
                    skip = false;
                } else if matches!(a.as_str(), "-b" | "-C" | "-l" | "-n" | "-a") {
                    skip = true;
                } else if !a.starts_with('-') {
                    input = a;
                    break;
                }
            }
            let archive = [
                ".tar", ".gz", ".tgz", ".zip", ".7z", ".rar", ".xz", ".bz2", ".zst",
            ]
            .iter()
            .any(|x| input.contains(x));
            let path = self.path_of(ev.pid, input);
            let sensitive = self.sensitive_source(principal, &path);
            if !(archive || sensitive) {
                return;
            }
            (
                format!("split {path} into chunks ({})", shorten(&cmd.line(), 100)),
                if sensitive { w } else { w * 2 / 3 },
            )
        } else {
            return;
        };
        if self.first_time(principal, "staging", &ev.pid.to_string()) {
            hits.push(hit(
                "staging",
                format!("{what}: collecting sensitive data, as before exfiltration"),
                weight,
                ev,
            ));
        }
    }

    /// Kernel evidence of collection: an archiver reading credentials or other users'
    /// files, or one process copying sensitive files into a staging directory.
    pub(super) fn recon_open(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        path: &str,
        write: bool,
        hits: &mut Vec<Hit>,
    ) {
        if ev.auid.is_none() {
            return;
        }
        if !write {
            self.recon_file(ev, principal, p, path, hits);
            self.other_history(ev, principal, p, path, hits);
        }
        let cat = self.cats.categorize(path, principal, &self.users);
        let sensitive = cat.is_some_and(|c| c == OTHER_HOME || self.cats.is_credential(c));
        let staging_write = write && STAGING_DIRS.iter().any(|d| path.starts_with(d));
        if !sensitive && !staging_write {
            return;
        }
        if sensitive && !write && ARCHIVERS.contains(&p.name()) {
            if !self.under_package_manager(ev.pid)
                && self.first_time(principal, "staging", &ev.pid.to_string())
            {
                hits.push(hit(
                    "staging",
                    format!(
                        "{} read {path} into an archive: collecting sensitive data, as before exfiltration",
                        p.exe_or_comm()
                    ),
                    self.cfg.weights.staging,
                    ev,
                ));
            }
            return;
        }
        let key = p.key();
        if sensitive && !write {
            let c = self.behaviour.copies.entry(key).or_default();
            if !c.read.iter().any(|r| r == path) && c.read.len() < 64 {
                c.read.push(path.to_string());
                if c.evidence.len() < 8 {
                    c.evidence.push(ev.clone());
                }
            }
            self.bound_state();
            return;
        }
        let Some(c) = self.behaviour.copies.get_mut(&key) else {
            return;
        };
        if c.wrote.is_none() {
            c.wrote = Some(path.to_string());
            c.evidence.push(ev.clone());
        }
        let Copies { read, evidence, .. } = &*c;
        let n = read.len();
        let first = read.first().cloned().unwrap_or_default();
        let evidence = evidence.clone();
        if n == 0 || self.under_package_manager(ev.pid) {
            return;
        }
        if self.first_time(principal, "staging", &ev.pid.to_string()) {
            hits.push(multi_hit(
                "staging",
                format!(
                    "{} copied {n} sensitive file{} ({first}{}) into {path}: collecting data in a staging place",
                    p.exe_or_comm(),
                    if n == 1 { "" } else { "s" },
                    if n > 1 { ", ..." } else { "" }
                ),
                self.cfg.weights.staging,
                evidence,
            ));
        }
    }
}

impl Engine {
    /// Another user's shell history read: the commands they typed, passwords given on
    /// command lines among them.
    fn other_history(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        path: &str,
        hits: &mut Vec<Hit>,
    ) {
        if !super::tamper::is_history_file(path) {
            return;
        }
        let Some(owner) = self.users.home_owner(path) else {
            return;
        };
        if owner == principal
            || !self.first_time(
                principal,
                "credential_access",
                &format!("history:{}", ev.pid),
            )
        {
            return;
        }
        hits.push(hit(
            "credential_access",
            format!(
                "read {}'s shell history {path} with {}: the commands they typed, passwords given on command lines among them",
                self.users.display(owner),
                p.exe_or_comm()
            ),
            self.cfg.weights.credential_access,
            ev,
        ));
    }
}
