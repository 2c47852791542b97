//! Defense evasion and configuration tampering: shell history disabled or erased
//! (`history_tampering`), file times forged (`timestomp`), the dynamic loader hijacked
//! (`loader_hijack`), authentication, audit and logging configuration written
//! (`auth_config`), and the watchers themselves stopped or killed (`watcher_silenced`).

use std::sync::OnceLock;

use regex::Regex;

use super::behaviour::{Cmd, FileOp, SYSTEM_DIRS, base, shorten, under};
use super::engine::{Engine, Hit};
use super::rules::hit;
use crate::event::Event;
use crate::proc::Process;

/// History files and the programs that keep them (which may rewrite them).
const HISTORY_FILES: [(&str, &[&str]); 14] = [
    (".bash_history", &["bash"]),
    (".zsh_history", &["zsh"]),
    (".zhistory", &["zsh"]),
    (".sh_history", &["sh", "ksh", "mksh", "ash", "busybox"]),
    (".history", &["csh", "tcsh"]),
    ("fish_history", &["fish"]),
    (".python_history", &["python"]),
    (".mysql_history", &["mysql", "mariadb"]),
    (".psql_history", &["psql"]),
    (".sqlite_history", &["sqlite3"]),
    (".lesshst", &["less"]),
    (".viminfo", &["vim", "vi", "nvim", "view", "vimdiff"]),
    (".node_repl_history", &["node"]),
    (".rediscli_history", &["redis-cli"]),
];

/// Daemons that watch the host (audit, logs, security agents, this agent).
pub(super) const WATCHERS: [&str; 32] = [
    "auditd",
    "audispd",
    "rsyslog",
    "rsyslogd",
    "syslog",
    "syslog-ng",
    "syslogd",
    "systemd-journald",
    "journald",
    "sentinel",
    "osqueryd",
    "falco",
    "wazuh-agent",
    "wazuh-agentd",
    "ossec",
    "auditbeat",
    "filebeat",
    "fluentd",
    "fluent-bit",
    "sysmon",
    "apparmor",
    "clamav-daemon",
    "clamd",
    "fail2ban",
    "falcon-sensor",
    "elastic-agent",
    "splunkd",
    "nxlog",
    "suricata",
    "snort",
    "firewalld",
    "ufw",
];

pub(super) fn is_history_file(path: &str) -> bool {
    history_owner(path).is_some()
}

fn history_owner(path: &str) -> Option<&'static [&'static str]> {
    let b = base(path);
    HISTORY_FILES
        .iter()
        .find(|(f, _)| *f == b)
        .map(|(_, owners)| *owners)
}

/// Shell code that turns history off or wipes it.
fn history_code() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(
            r#"(?x)
            \bunset\s+(-v\s+)?HISTFILE\b
            | \bHISTFILE=(["']{2}|/dev/null|\s|;|$)
            | \bHIST(FILE)?SIZE=["']?0\b
            | \bset\s+\+o\s+history\b
            | \bhistory\s+-c\b
            | \bhistory\s+-w\s+/dev/null
            | \bHISTCONTROL=["']?\S*ignore(space|both)
            | \bHISTIGNORE=["']?\*["']?(\s|;|$)
            | \bkill\s+-9\s+\$\$
            "#,
        )
        .expect("history pattern")
    })
}

fn preload_code() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(r#"\b(LD_PRELOAD|LD_AUDIT)=["']?([^\s"';|&]+)"#).expect("preload pattern")
    })
}

/// Library directories the loader trusts (root-owned; /usr/local/lib is the admin's).
const LIB_DIRS: [&str; 7] = [
    "/lib/",
    "/usr/lib/",
    "/lib64/",
    "/usr/lib64/",
    "/lib32/",
    "/usr/lib32/",
    "/usr/local/lib/",
];

/// The first preloaded library outside the system library directories, if any. A bare
/// name is searched in the system directories and is not suspicious.
pub(super) fn foreign_library(value: &str) -> Option<&str> {
    value
        .split([':', ' '])
        .find(|l| !l.is_empty() && l.contains('/') && !under(l, &LIB_DIRS))
}

impl Engine {
    pub(super) fn tamper_exec(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        cmd: &Cmd,
        hits: &mut Vec<Hit>,
    ) {
        self.history_exec(ev, principal, p, cmd, hits);
        self.timestomp_exec(ev, principal, p, cmd, hits);
        self.preload_exec(ev, principal, cmd, hits);
        self.silence_exec(ev, principal, p, cmd, hits);
    }

    fn history_exec(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        cmd: &Cmd,
        hits: &mut Vec<Hit>,
    ) {
        let w = self.cfg.weights.history_tampering;
        // Shell code (`bash -c "unset HISTFILE; ..."`) or `env HISTFILE=/dev/null bash`.
        let text = match (&cmd.code, cmd.name.as_str()) {
            (Some(c), _) => Some(c.clone()),
            (None, "env") => Some(cmd.args.join(" ")),
            _ => None,
        };
        if let Some(t) = text
            && let Some(m) = history_code().find(&t)
        {
            let r = format!(
                "disabled or cleared shell history: `{}` in {}",
                m.as_str().trim(),
                shorten(&cmd.line(), 120)
            );
            self.history_hit(ev, principal, p, r, w, hits);
            return;
        }
        // truncate -s0 / shred / ln -s /dev/null on a history file.
        let hist = cmd.operands().find(|a| history_owner(a).is_some());
        let Some(h) = hist else {
            return;
        };
        let what = match cmd.name.as_str() {
            "truncate" => "emptied",
            "shred" | "wipe" | "srm" => "shredded",
            "ln" if cmd.has("/dev/null") => "replaced with a link to /dev/null",
            _ => return,
        };
        let path = self.path_of(ev.pid, h);
        let r = format!(
            "{what} the history file {path} ({}): hides the commands typed",
            shorten(&cmd.line(), 120)
        );
        self.history_hit(ev, principal, p, r, w, hits);
    }

    fn history_hit(
        &mut self,
        ev: &Event,
        principal: u32,
        _p: &Process,
        reason: String,
        weight: u8,
        hits: &mut Vec<Hit>,
    ) {
        if self.first_time(principal, "history_tampering", &format!("{}", ev.pid)) {
            hits.push(hit("history_tampering", reason, weight, ev));
        }
    }

    fn timestomp_exec(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        cmd: &Cmd,
        hits: &mut Vec<Hit>,
    ) {
        if cmd.name != "touch" || self.under_package_manager(ev.pid) {
            return;
        }
        let mut explicit = None;
        let mut targets = Vec::new();
        let mut skip_next = false;
        for a in &cmd.args {
            if skip_next {
                skip_next = false;
                continue;
            }
            if matches!(a.as_str(), "-d" | "-t" | "-r" | "--date" | "--reference") {
                explicit = Some(a.clone());
                skip_next = true;
            } else if a.starts_with("--date=")
                || a.starts_with("--reference=")
                || (a.len() > 2 && (a.starts_with("-d") || a.starts_with("-t")))
            {
                explicit = Some(a.clone());
            } else if !a.starts_with('-') {
                targets.push(self.path_of(ev.pid, a));
            }
        }
        if explicit.is_none() || targets.is_empty() {
            return;
        }
        self.timestomp_hit(ev, principal, p, &targets, &cmd.line(), hits);
    }

    /// A file's times set to a chosen value: full weight on programs, libraries,
    /// configuration and persistence places or other users' files, half elsewhere.
    pub(super) fn timestomp_hit(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        targets: &[String],
        how: &str,
        hits: &mut Vec<Hit>,
    ) {
        if self.known_behaviour(principal, &p.exe, "timestomp") {
            return;
        }
        self.note_behaviour(ev, principal, "timestomp");
        let sensitive = targets.iter().find(|t| {
            under(t, &SYSTEM_DIRS)
                || under(
                    t,
                    &["/etc/", "/boot/", "/var/spool/", "/var/log/", "/var/lib/"],
                )
                || matches!(
                    self.cats.categorize(t, principal, &self.users),
                    Some("persistence" | "auth_config" | "other_home" | "logs" | "accounts")
                )
                || self
                    .cats
                    .categorize(t, principal, &self.users)
                    .is_some_and(|c| self.cats.is_credential(c))
        });
        let w = self.cfg.weights.timestomp;
        let (target, weight, why) = match sensitive {
            Some(t) => (
                t.clone(),
                w,
                "hides when a program, configuration or persistence place changed",
            ),
            None => (targets[0].clone(), w / 2, "hides when the file changed"),
        };
        if self.first_time(principal, "timestomp", &format!("{}:{target}", ev.pid)) {
            hits.push(hit(
                "timestomp",
                format!(
                    "set the times of {target} to a chosen value ({}): {why}",
                    shorten(how, 120)
                ),
                weight,
                ev,
            ));
        }
    }

    fn preload_exec(&mut self, ev: &Event, principal: u32, cmd: &Cmd, hits: &mut Vec<Hit>) {
        let mut found: Option<String> = None;
        let assignments = cmd
            .args
            .iter()
            .any(|a| a.starts_with("LD_PRELOAD=") || a.starts_with("LD_AUDIT="));
        let text = match &cmd.code {
            Some(c) => Some(c.clone()),
            None if assignments => Some(cmd.args.join(" ")),
            None => None,
        };
        if let Some(t) = text {
            for c in preload_code().captures_iter(&t) {
                if let Some(lib) = c.get(2).and_then(|v| foreign_library(v.as_str())) {
                    found = Some(format!("{}={lib}", &c[1]));
                    break;
                }
            }
        }
        // ld.so run by hand: /lib64/ld-linux-x86-64.so.2 --preload /tmp/x.so prog
        if found.is_none() && (cmd.name.starts_with("ld-linux") || cmd.name.starts_with("ld.so")) {
            let mut it = cmd.args.iter();
            while let Some(a) = it.next() {
                if (a == "--preload" || a == "--audit")
                    && let Some(v) = it.next()
                    && let Some(lib) = foreign_library(v)
                {
                    found = Some(format!("{a} {lib}"));
                }
            }
        }
        if let Some(f) = found {
            self.preload_hit(ev, principal, &f, &cmd.line(), hits);
        }
    }

    pub(super) fn preload_hit(
        &mut self,
        ev: &Event,
        principal: u32,
        what: &str,
        line: &str,
        hits: &mut Vec<Hit>,
    ) {
        if self.first_time(principal, "loader_hijack", &format!("{}", ev.pid)) {
            hits.push(hit(
                "loader_hijack",
                format!(
                    "forced a library outside the system library directories into a program ({what} in {}): code injection through the dynamic loader",
                    shorten(line, 120)
                ),
                self.cfg.weights.loader_hijack,
                ev,
            ));
        }
    }

    /// History, loader and authentication files written, truncated, deleted or moved.
    pub(super) fn tamper_file(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        path: &str,
        op: FileOp,
        hits: &mut Vec<Hit>,
    ) {
        if op == FileOp::Read {
            return;
        }
        if let Some(owners) = history_owner(path) {
            self.history_file(ev, principal, p, path, op, owners, hits);
            return;
        }
        let loader = path == "/etc/ld.so.preload"
            || path == "/etc/ld.so.conf"
            || path.starts_with("/etc/ld.so.conf.d/");
        let auth = path.starts_with("/etc/sudoers")
            || self.cats.categorize(path, principal, &self.users) == Some("auth_config");
        if !(loader || auth) || !(op.writes() || op == FileOp::Delete) {
            return;
        }
        if self.under_package_manager(ev.pid) {
            return;
        }
        let verb = match op {
            FileOp::Delete => "deleted",
            FileOp::Truncate => "overwrote",
            _ => "wrote",
        };
        if loader {
            if self.first_time(principal, "loader_hijack", &format!("{}:{path}", ev.pid)) {
                hits.push(hit(
                    "loader_hijack",
                    format!(
                        "{verb} {path} with {}: the dynamic loader's configuration decides which libraries every program loads",
                        p.exe_or_comm()
                    ),
                    self.cfg.weights.loader_hijack,
                    ev,
                ));
            }
            return;
        }
        // Configuration management the baseline knows writing these is routine.
        let learned = self.usable_profile(principal).is_some()
            && self
                .baselines
                .exe(&p.exe)
                .is_some_and(|x| x.categories.contains_key("write:auth_config"));
        if ev.auid.is_none()
            || learned
            || self.exempt(&["visudo".to_string()], p)
            || !self.first_time(principal, "auth_config", &format!("{}:{path}", ev.pid))
        {
            return;
        }
        hits.push(hit(
            "auth_config",
            format!(
                "{verb} {path} with {}: authentication, privilege, audit or logging configuration changed",
                p.exe_or_comm()
            ),
            self.cfg.weights.auth_config,
            ev,
        ));
    }

    #[allow(clippy::too_many_arguments)]
    fn history_file(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        path: &str,
        op: FileOp,
        owners: &[&str],
        hits: &mut Vec<Hit>,
    ) {
        // The program keeping the file rewrites it (bash truncates and rewrites at exit,
        // vim and less replace theirs by rename), unless it runs code given on its command
        // line (`bash -c '> ~/.bash_history'`).
        let owner = owners.iter().any(|o| p.name().starts_with(o));
        let inline =
            p.argv.iter().skip(1).any(|a| {
                a == "-c" || (a.starts_with('-') && !a.starts_with("--") && a.contains('c'))
            });
        if owner && !inline {
            return;
        }
        let what = match op {
            FileOp::Truncate => "emptied",
            FileOp::Delete => "deleted",
            FileOp::RenameFrom => "moved away",
            FileOp::RenameTo => "replaced",
            FileOp::Write | FileOp::Read => return,
        };
        let r = format!(
            "{what} the history file {path} with {}: hides the commands typed",
            p.exe_or_comm()
        );
        let w = self.cfg.weights.history_tampering;
        self.history_hit(ev, principal, p, r, w, hits);
    }

    fn silence_exec(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        cmd: &Cmd,
        hits: &mut Vec<Hit>,
    ) {
        if ev.auid.is_none() {
            return;
        }
        let watcher = |u: &str| {
            let u = base(u);
            let u = u
                .trim_end_matches(".service")
                .trim_end_matches(".socket")
                .trim_end_matches(".path");
            WATCHERS.contains(&u)
        };
        let a = &cmd.args;
        let first = a.first().map(String::as_str).unwrap_or("");
        let what: Option<String> = match cmd.name.as_str() {
            "auditctl"
                if cmd.has("-D")
                    || cmd.has("-e0")
                    || a.windows(2).any(|w| w[0] == "-e" && w[1] == "0") =>
            {
                Some("turned kernel auditing off or deleted its rules".into())
            }
            "systemctl" => {
                let verb = a.iter().find(|x| !x.starts_with('-'));
                match verb.map(String::as_str) {
                    Some("stop" | "disable" | "mask" | "kill") => a
                        .iter()
                        .find(|u| watcher(u))
                        .map(|u| format!("stopped or disabled the watcher {u}")),
                    _ => None,
                }
            }
            "service" if watcher(first) && a.get(1).is_some_and(|v| v == "stop") => {
                Some(format!("stopped the watcher {first}"))
            }
            "update-rc.d" | "chkconfig"
                if watcher(first)
                    && a.get(1)
                        .is_some_and(|v| matches!(v.as_str(), "disable" | "remove" | "off")) =>
            {
                Some(format!("disabled the watcher {first} at boot"))
            }
            n if p.exe.starts_with("/etc/init.d/") && watcher(n) && cmd.has("stop") => {
                Some(format!("stopped the watcher {n}"))
            }
            "pkill" | "killall" | "killall5" => cmd
                .operands()
                .find(|o| WATCHERS.iter().any(|w| o.contains(w)))
                .map(|o| format!("killed the watcher {o}")),
            "setenforce" if first == "0" || first.eq_ignore_ascii_case("permissive") => {
                Some("switched SELinux to permissive".into())
            }
            "aa-teardown" | "aa-disable" | "aa-complain" => {
                Some("unloaded or relaxed AppArmor profiles".into())
            }
            "apparmor_parser" if cmd.has("-R") || cmd.has("--remove") => {
                Some("unloaded AppArmor profiles".into())
            }
            "ufw" if first == "disable" => Some("disabled the firewall".into()),
            "iptables" | "ip6tables" | "iptables-nft" | "iptables-legacy"
                if cmd.has("-F") || cmd.has("--flush") =>
            {
                Some("flushed the firewall rules".into())
            }
            "nft" if a.windows(2).any(|w| w[0] == "flush" && w[1] == "ruleset") => {
                Some("flushed the firewall rules".into())
            }
            "journalctl" if a.iter().any(|x| x.starts_with("--vacuum")) => {
                Some("erased the system journal".into())
            }
            _ => None,
        };
        // Asked last: it walks the whole chain.
        if let Some(w) = what
            && !self.under_package_manager(ev.pid)
            && self.first_time(principal, "watcher_silenced", &ev.pid.to_string())
        {
            hits.push(hit(
                "watcher_silenced",
                format!(
                    "{w} ({}): blinds auditing, logging or defences",
                    shorten(&cmd.line(), 120)
                ),
                self.cfg.weights.watcher_silenced,
                ev,
            ));
        }
    }

    /// A signal that stops or ends a watcher (audit, logging, this agent).
    pub(super) fn watcher_kill(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        target: i32,
        signal: i32,
        hits: &mut Vec<Hit>,
    ) {
        // 0 probes, HUP and USR1/2 make daemons reload or reopen their logs.
        if !ev.ok() || target <= 0 || matches!(signal, 0 | 1 | 10 | 12 | 17 | 18 | 28) {
            return;
        }
        let Some(t) = self.procs.get(target as u32) else {
            return;
        };
        let is_agent = target as u32 == self.own_pid;
        if !(is_agent || WATCHERS.contains(&t.name())) || t.pid == ev.pid {
            return;
        }
        let lists = &self.cats.lists;
        if (!is_agent && ev.auid.is_none())
            || self.exempt(&lists.log_maintainers, p)
            || p.name() == "systemd"
            || self.under_package_manager(ev.pid)
        {
            return;
        }
        let r = format!(
            "sent signal {signal} to the watcher {} (pid {target}) with {}: blinds auditing or logging",
            t.exe_or_comm(),
            p.exe_or_comm()
        );
        if self.first_time(principal, "watcher_silenced", &format!("kill:{target}")) {
            hits.push(hit(
                "watcher_silenced",
                r,
                self.cfg.weights.watcher_silenced,
                ev,
            ));
        }
    }
}
