//! Discovery and collection: how many discovery areas a principal explores that its baseline
//! never saw (`recon_breadth`), and sensitive data gathered into archives, chunks or a
//! staging directory (`staging`).

use super::behaviour::{Cmd, Copies, shorten};
use super::engine::{Engine, Hit};
use super::rules::{hit, multi_hit};
use crate::event::Event;
use crate::proc::Process;
use crate::profile::categories::{OTHER_HOME, in_list};

/// Archivers and compressors (collection into one file).
const ARCHIVERS: [&str; 17] = [
    "tar", "zip", "7z", "7za", "7zz", "7zr", "rar", "gzip", "bzip2", "xz", "zstd", "pigz", "cpio",
    "pax", "lz4", "lzma", "bsdtar",
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

/// Discovery areas that point at a next step on their own: what an intruder looking for root,
/// for secrets or for the watchers does, and rarely anyone else.
fn pointed_area(area: &str) -> Option<&'static str> {
    Some(match area {
        "setuid_search" => {
            "hunted for set-uid programs or file capabilities: the first step of a local privilege escalation"
        }
        "credential_search" => "searched files for passwords, keys or tokens",
        "security_software" => "checked which security tools watch this host",
        "virtualization" => {
            "checked whether it runs in a virtual machine, a container or a sandbox"
        }
        _ => return None,
    })
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
        // A lineage that read others' histories while learning (a backup job archiving
        // /home) does so as its job.
        if owner == principal
            || owner == p.uid
            || self.lineage_knows_behaviour(principal, ev.pid, "history_read")
            || !self.first_time(
                principal,
                "credential_access",
                &format!("history:{}", ev.pid),
            )
        {
            return;
        }
        self.note_behaviour(ev, principal, "history_read");
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

/// What an archiver is asked to read: (directory given with -C, operand). tar counts only
/// when it creates or appends (`c`, `r`, `u`, `A`), old-style option clusters (`czf`) and the
/// archive named by `-f` are not sources; zip and 7z's first operand is the archive.
pub(super) fn archive_sources(name: &str, args: &[String]) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    let mut dir: Option<String> = None;
    let mut it = args.iter().enumerate().peekable();
    let mut writes = !matches!(name, "tar" | "bsdtar");
    let mut skip_next = false;
    let mut archive_seen = !matches!(name, "zip" | "7z" | "7za" | "7zz" | "7zr" | "rar");
    while let Some((i, a)) = it.next() {
        if skip_next {
            skip_next = false;
            continue;
        }
        let tar = matches!(name, "tar" | "bsdtar");
        if tar && i == 0 && !a.starts_with('-') && a.chars().all(|c| c.is_ascii_alphabetic()) {
            // Old-style cluster: `czf ARCHIVE`.
            writes = a.contains(['c', 'r', 'u', 'A']);
            skip_next = a.contains('f');
            continue;
        }
        if let Some(opts) = a.strip_prefix('-').filter(|o| !o.starts_with('-')) {
            if tar && opts.contains(['c', 'r', 'u', 'A']) {
                writes = true;
            }
            if opts == "C" {
                dir = it.next().map(|(_, d)| d.clone());
            } else if tar && opts.ends_with('f') {
                skip_next = true;
            }
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            match long {
                "create" | "append" | "update" => writes = true,
                "file" | "directory" => {
                    let v = it.next().map(|(_, d)| d.clone());
                    if long == "directory" {
                        dir = v;
                    }
                }
                _ => {
                    if let Some(d) = long.strip_prefix("directory=") {
                        dir = Some(d.to_string());
                    }
                }
            }
            continue;
        }
        if matches!(name, "7z" | "7za" | "7zz" | "7zr" | "rar") && i == 0 {
            continue; // the command letter (a, u, x...)
        }
        if !archive_seen {
            archive_seen = true;
            continue;
        }
        out.push((dir.clone(), a.clone()));
    }
    if writes { out } else { Vec::new() }
}

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
        for (area, _) in self.cats.recon_matches(&cmd.name, &cmd.args) {
            if !out.iter().any(|a| a == area) {
                out.push(area.to_string());
            }
        }
        // A file that describes the host named on the command line explores its area
        // whatever the program (`awk -F: ... /etc/passwd`, `head /proc/net/route`).
        for a in cmd.operands().filter(|a| a.starts_with('/')) {
            for area in self.cats.recon_file_areas(a) {
                if !out.contains(&area) {
                    out.push(area);
                }
            }
        }
        out
    }

    fn recon_breadth(&mut self, ev: &Event, principal: u32, cmd: &Cmd, hits: &mut Vec<Hit>) {
        let areas = self.recon_areas(cmd);
        self.explored(ev, principal, areas, hits);
    }

    /// A file a discovery area is about was opened or listed (`[lists] recon_files`) by an
    /// interpreter or a shell: reading the system's description without running a discovery
    /// command counts the same.
    pub(super) fn recon_file(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        path: &str,
        hits: &mut Vec<Hit>,
    ) {
        // Only programs whose own code surveys (interpreters, shells reading through a
        // redirection): ls, df or ps read these files for their job, and a command that
        // surveys is counted by `recon` already.
        let name = p.name();
        let surveyor =
            super::behaviour::is_interpreter(name) || in_list(&self.cats.lists.shells, name);
        if ev.auid.is_none() || !path.starts_with('/') || !surveyor {
            return;
        }
        // /proc/self, /proc/thread-self and the process's own pid describe itself.
        if let Some(rest) = path.strip_prefix("/proc/") {
            let first = rest.split('/').next().unwrap_or("");
            if first == "self" || first == "thread-self" || first == p.pid.to_string() {
                return;
            }
        }
        let areas = self.cats.recon_file_areas(path);
        if !areas.is_empty() {
            self.explored(ev, principal, areas, hits);
        }
    }

    /// Areas one event explored: counted toward `recon_breadth` when the baseline never
    /// explored them; a pointed area (set-uid or capability hunting, searching for secrets,
    /// checking for security tools or a sandbox) is `targeted_discovery` on its own.
    fn explored(&mut self, ev: &Event, principal: u32, areas: Vec<String>, hits: &mut Vec<Hit>) {
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
        let session = ev.session.map(|x| x.to_string()).unwrap_or_default();
        for a in &fresh {
            let Some(what) = pointed_area(a) else {
                continue;
            };
            if self.first_time(principal, "targeted_discovery", &format!("{session}:{a}")) {
                let line = match &ev.payload {
                    crate::event::Payload::Exec { argv, .. } => argv
                        .iter()
                        .map(|x| x.lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(" "),
                    crate::event::Payload::Open { path, .. } => format!("opened {}", path.lossy()),
                    _ => String::new(),
                };
                let novel = if baseline.is_some() {
                    ", never done by this user in its baseline"
                } else {
                    ""
                };
                hits.push(hit(
                    "targeted_discovery",
                    format!("{what} ({}){novel}", shorten(&line, 80)),
                    self.cfg.weights.targeted_discovery,
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
            || !self.first_time(principal, "recon_breadth", &session)
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
                    crate::event::Payload::Open { path, .. } => path.lossy().into_owned(),
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
            let cwd = self.path_of(ev.pid, ".");
            let src = archive_sources(n, &cmd.args)
                .into_iter()
                .map(|(dir, a)| match dir {
                    Some(d) => crate::proc::absolute(&a, Some(&self.path_of(ev.pid, &d))),
                    None => crate::proc::absolute(&a, Some(&cwd)),
                })
                .find(|a| self.sensitive_source(principal, a));
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
        if !self.lineage_knows_behaviour(principal, ev.pid, "staging")
            && self.first_time(principal, "staging", &ev.pid.to_string())
        {
            self.note_behaviour(ev, principal, "staging");
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
            self.other_history(ev, principal, p, path, hits);
        }
        // The home of the process's own uid or euid is not another user's (root in /root).
        let cat = self.category_of(path, principal, p);
        let sensitive = cat.is_some_and(|c| c == OTHER_HOME || self.cats.is_credential(c));
        let staging_write = write && STAGING_DIRS.iter().any(|d| path.starts_with(d));
        if !sensitive && !staging_write {
            return;
        }
        if sensitive && !write && ARCHIVERS.contains(&p.name()) {
            // A lineage that archived such files while learning (the nightly backup job).
            if !self.under_package_manager(ev.pid)
                && !self.lineage_knows_behaviour(principal, ev.pid, "staging")
                && self.first_time(principal, "staging", &ev.pid.to_string())
            {
                self.note_behaviour(ev, principal, "staging");
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
        if !self.lineage_knows_behaviour(principal, ev.pid, "staging")
            && self.first_time(principal, "staging", &ev.pid.to_string())
        {
            self.note_behaviour(ev, principal, "staging");
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

#[cfg(test)]
mod tests {
    use super::archive_sources;

    fn src(name: &str, args: &[&str]) -> Vec<(Option<String>, String)> {
        let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        archive_sources(name, &a)
    }

    #[test]
    fn archive_operands_are_told_from_options_and_the_archive() {
        let some = |d: &str, p: &str| (Some(d.to_string()), p.to_string());
        let none = |p: &str| (None, p.to_string());
        assert_eq!(
            src(
                "tar",
                &[
                    "czf",
                    "/var/backups/h.tgz",
                    "--exclude=*/.cache",
                    "-C",
                    "/",
                    "home"
                ]
            ),
            [some("/", "home")]
        );
        assert_eq!(
            src("tar", &["tzf", "/var/backups/h.tgz"]),
            [],
            "listing reads no source"
        );
        assert_eq!(
            src("tar", &["-xzf", "a.tgz", "-C", "/tmp"]),
            [],
            "extracting neither"
        );
        assert_eq!(
            src("tar", &["-czvf", "/tmp/.e.tgz", "/etc"]),
            [none("/etc")]
        );
        assert_eq!(
            src("tar", &["--create", "--file", "x.tar", "docs"]),
            [none("docs")]
        );
        assert_eq!(
            src("zip", &["-r", "/tmp/o.zip", "/home/bob"]),
            [none("/home/bob")]
        );
        assert_eq!(
            src("7z", &["a", "-pSecret", "/tmp/o.7z", "/etc"]),
            [none("/etc")]
        );
        assert_eq!(src("gzip", &["-k", "/etc/shadow"]), [none("/etc/shadow")]);
    }

    fn exec(id: u64, pid: u32, argv: &[&str]) -> crate::event::Event {
        let quoted: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
        crate::detect::testing::event(
            id,
            1_781_780_400_000_000_000 + id as i64 * 1_000_000,
            pid,
            1,
            1000,
            9,
            &format!(
                r#""syscall":"execve","kind":"exec","filename":"/usr/bin/{}","argv":[{}],"argv_truncated":false"#,
                argv[0],
                quoted.join(",")
            ),
        )
    }

    fn open(id: u64, pid: u32, path: &str) -> crate::event::Event {
        crate::detect::testing::event(
            id,
            1_781_780_400_000_000_000 + id as i64 * 1_000_000,
            pid,
            1,
            1000,
            9,
            &format!(
                r#""syscall":"openat","kind":"open","dfd":-100,"path":"{path}","flags":0,"mode":0"#
            ),
        )
    }

    fn found(a: &[crate::model::Anomaly], det: &str) -> Vec<String> {
        a.iter()
            .flat_map(|a| &a.factors)
            .filter(|f| f.detection == det)
            .map(|f| f.reason.clone())
            .collect()
    }

    const PASSWD: &str = "alice:x:1000:1000::/home/alice:/bin/bash\n";

    #[test]
    fn hunting_for_set_uid_programs_is_a_finding_on_its_own() {
        let mut e = crate::detect::testing::engine(PASSWD);
        let mut out = e.observe(&exec(
            1,
            50,
            &["find", "/", "-xdev", "-perm", "-4000", "-type", "f"],
        ));
        out.extend(e.observe(&exec(2, 51, &["getcap", "-r", "/usr"])));
        let r = found(&out, "targeted_discovery");
        assert_eq!(r.len(), 1, "once per session and area: {out:#?}");
        assert!(r[0].starts_with("hunted for set-uid programs"), "{}", r[0]);
        assert!(out.iter().any(|a| a.level >= crate::model::Level::Medium));
    }

    #[test]
    fn surveying_the_host_by_reading_files_is_recon_breadth() {
        // One program reading one file of each of four host areas.
        let survey = |argv: &[&str], first: u64, pid: u32| {
            let mut e = crate::detect::testing::engine(PASSWD);
            let mut out = e.observe(&exec(first - 1, pid, argv));
            let files = [
                "/etc/crontab",
                "/etc/systemd/system",
                "/proc/mounts",
                "/proc/net/route",
            ];
            for (i, p) in files.iter().enumerate() {
                out.extend(e.observe(&open(first + i as u64, pid, p)));
            }
            out
        };
        let out = survey(&["python3", "-"], 10, 60);
        let r = found(&out, "recon_breadth");
        assert_eq!(r.len(), 1, "{out:#?}");
        assert!(r[0].contains("scheduled_tasks (/etc/crontab)"), "{}", r[0]);
        // A program reading the same files for its own work is not surveying.
        let out = survey(&["ls", "-l"], 31, 62);
        assert!(found(&out, "recon_breadth").is_empty(), "{out:#?}");
        // The process's own /proc entries are not discovery.
        let mut e = crate::detect::testing::engine(PASSWD);
        e.observe(&exec(19, 61, &["python3", "-"]));
        assert!(e.observe(&open(20, 61, "/proc/61/cmdline")).is_empty());
        assert!(e.observe(&open(21, 61, "/proc/self/status")).is_empty());
        let v = e.observe(&open(22, 61, "/proc/1/cgroup"));
        assert!(
            found(&v, "targeted_discovery")[0].contains("virtual machine"),
            "{v:#?}"
        );
    }
}
