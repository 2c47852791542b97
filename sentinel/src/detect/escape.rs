//! Execution behaviours: a shell escaping from a program that should not start one
//! (`unusual_child`), decoded payloads run (`decode_and_run`), and programs dressed up as
//! something else (`masquerade`).

use std::collections::HashSet;
use std::sync::OnceLock;

use regex::Regex;

use super::behaviour::{Cmd, SYSTEM_DIRS, base, is_interpreter, shorten, under};
use super::engine::{Engine, Hit};
use super::rules::{hit, multi_hit};
use crate::event::Event;
use crate::proc::Process;
use crate::profile::baseline::KIND_LINEAGE;
use crate::profile::categories::in_list;

/// Service scripts are named after the daemon they start (/etc/init.d/cron runs cron): a
/// daemon's name there is what the place is for, not a disguise.
const SERVICE_SCRIPT_DIRS: [&str; 3] = ["/etc/init.d/", "/etc/rc.d/init.d/", "/etc/rc.d/"];

/// Programs that start interactive shells as their job: logins, terminals, multiplexers,
/// privilege switches, container entry.
const SHELL_STARTERS: [&str; 45] = [
    "sshd",
    "sshd-session",
    "login",
    "su",
    "sudo",
    "sudo-rs",
    "su-rs",
    "doas",
    "pkexec",
    "runuser",
    "setpriv",
    "tmux*",
    "screen",
    "script",
    "byobu",
    "zellij",
    "tmate",
    "*term*",
    "xterm",
    "konsole",
    "alacritty",
    "kitty",
    "wezterm*",
    "foot",
    "tilix",
    "terminator",
    "guake",
    "yakuake",
    "ptyxis",
    "ghostty",
    "st",
    "urxvt*",
    "rxvt*",
    "systemd",
    "init",
    "agetty",
    "getty",
    "dropbear",
    "mosh-server",
    "runc",
    "containerd-shim*",
    "nsenter",
    "chroot",
    "machinectl",
    "lxc-attach",
];

/// Decoders and how they are told to decode.
fn decoder(cmd: &Cmd) -> bool {
    match cmd.name.as_str() {
        "base64" | "base32" | "basenc" => {
            cmd.has("-d") || cmd.has("--decode") || cmd.has("-D") || cmd.has("-di")
        }
        "xxd" => cmd
            .args
            .iter()
            .any(|a| a.starts_with('-') && a.contains('r')),
        "openssl" => cmd.has("-d") || cmd.has("-base64") && cmd.has("-d"),
        "uudecode" | "b64decode" => true,
        _ => false,
    }
}

/// Inline code that decodes a payload and runs it.
fn decode_code() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(
            r#"(?xi)
            # shell: a decoder piped or substituted into a shell or interpreter
            (base64|base32|basenc|xxd|openssl|uudecode)[^|;&]*\s(-d|--decode|-D|-r|-rp|-pr)\b[^|;&]*\|\s*(sudo\s+)?(\S*/)?(sh|bash|dash|zsh|ksh|python\d*(\.\d+)?|perl|ruby|php|node)\b
            | (eval|exec|source|\.|sh|bash)\s+["']?(\$\(|`|<\()[^)`]*(base64|base32|xxd|openssl)[^)`]*(-d|--decode|-r)\b
            # interpreters: decode and execute in one breath
            | (exec|eval|system|popen|spawn|execSync|subprocess|os\.system|`)[^\n]{0,200}(b64decode|b32decode|a85decode|decodebytes|unhexlify|fromhex|decode_base64|MIME::Base64|base64_decode|Base64\.decode64|unpack\(["']m|atob\(|Buffer\.from\([^)]*base64)
            | (b64decode|b32decode|decodebytes|unhexlify|decode_base64|MIME::Base64|base64_decode|Base64\.decode64|atob\(|Buffer\.from\([^)]*base64)[^\n]{0,400}(exec|eval|system|popen|spawn|subprocess|os\.system)\b
            # fetched and run without touching the disk
            | (curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(\S*/)?(sh|bash|dash|zsh|python\d*(\.\d+)?|perl|ruby)\b
            | (eval|exec|source|\.|sh|bash)\s+["']?(\$\(|`|<\()\s*(curl|wget)\b
            | (exec|eval)\s*\([^\n]{0,200}(urlopen|requests\.get|urllib|http\.client|fetch\()
            "#,
        )
        .expect("decode pattern")
    })
}

/// Kernel threads and well-known daemons: names a planted program borrows.
fn kernel_thread_like(name: &str) -> bool {
    let n = name.trim_start_matches('[').trim_end_matches(']');
    const KT: [&str; 16] = [
        "kworker",
        "kthreadd",
        "ksoftirqd",
        "migration/",
        "rcu_",
        "kswapd",
        "watchdog/",
        "jbd2/",
        "kauditd",
        "khugepaged",
        "kdevtmpfs",
        "irq/",
        "cpuhp/",
        "kcompactd",
        "oom_reaper",
        "kblockd",
    ];
    KT.iter().any(|k| n.starts_with(k))
}

const DAEMONS: [&str; 20] = [
    "sshd",
    "systemd",
    "systemd-journald",
    "systemd-logind",
    "systemd-udevd",
    "cron",
    "crond",
    "dbus-daemon",
    "rsyslogd",
    "agetty",
    "init",
    "udevd",
    "polkitd",
    "atd",
    "auditd",
    "containerd",
    "dockerd",
    "snapd",
    "NetworkManager",
    "accounts-daemon",
];

/// A thread name that is a daemon's (the kernel keeps 15 bytes of it).
fn daemon_comm(comm: &str) -> bool {
    DAEMONS
        .iter()
        .any(|d| *d == comm || (d.len() > 15 && comm.len() == 15 && d.starts_with(comm)))
}

/// Extensions of documents and media: a program named like one is meant to deceive.
const DOC_EXTS: [&str; 22] = [
    "jpg", "jpeg", "png", "gif", "bmp", "ico", "svg", "pdf", "txt", "doc", "docx", "xls", "xlsx",
    "ppt", "pptx", "odt", "csv", "mp3", "mp4", "avi", "mov", "rtf",
];

/// Hidden directories that hold ordinary tool chains and editor servers.
const USUAL_HIDDEN: [&str; 28] = [
    ".cargo",
    ".rustup",
    ".local",
    ".npm",
    ".nvm",
    ".pyenv",
    ".rbenv",
    ".vscode-server",
    ".vscode",
    ".cursor-server",
    ".sdkman",
    ".gradle",
    ".m2",
    ".deno",
    ".bun",
    ".venv",
    ".tox",
    ".nox",
    ".direnv",
    ".dotnet",
    ".ghcup",
    ".cabal",
    ".opam",
    ".elan",
    ".asdf",
    ".volta",
    ".git",
    ".build-id",
];

impl Engine {
    pub(super) fn escape_exec(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        cmd: &Cmd,
        before: Option<&Process>,
        hits: &mut Vec<Hit>,
    ) {
        self.unusual_child(ev, principal, p, cmd, before, hits);
        self.decode_exec(ev, principal, p, cmd, hits);
        self.masquerade_exec(ev, principal, p, cmd, hits);
    }

    /// The edges "parent>child" this principal's lineage baseline has seen.
    fn learned_edges(&self, principal: u32) -> HashSet<String> {
        let prefix = format!("{principal}|");
        let mut out = HashSet::new();
        for (key, _) in self.baselines.keyed(KIND_LINEAGE) {
            if let Some(l) = key.strip_prefix(&prefix) {
                let names: Vec<&str> = l.split('>').collect();
                for w in names.windows(2) {
                    out.insert(format!("{}>{}", w[0], w[1]));
                }
            }
        }
        out
    }

    fn unusual_child(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        cmd: &Cmd,
        before: Option<&Process>,
        hits: &mut Vec<Hit>,
    ) {
        let lists = std::sync::Arc::clone(&self.cats);
        let shells = &lists.lists.shells;
        if !in_list(shells, &cmd.name) {
            return;
        }
        // The image that started it: the forked copy of the parent, or the program that
        // replaced itself with the shell (`perl -e 'exec "/bin/sh"'`, `env /bin/sh`).
        // A process first seen at this exec was read from /proc after the fact, and /proc
        // may already show a later program: its comm (from this event) then names the new
        // program while its exe names another. Such an image is no evidence of a starter.
        let comm = ev.comm.lossy();
        let trusted = |b: &&Process| {
            !b.exe.is_empty() && (*b.comm != *comm || b.name().starts_with(&*b.comm))
        };
        let parent = self.parent_of(p);
        let Some(starter) = before.filter(trusted).or(parent) else {
            return;
        };
        // The image replaced itself (not a forked copy of the parent): a wrapper like env,
        // nice or setpriv, or an escape like `perl -e 'exec "/bin/sh"'`.
        let in_place = parent.is_some_and(|pp| pp.exe != starter.exe || pp.argv != starter.argv);
        let sname = starter.name().to_string();
        if in_list(shells, &sname) || in_list(&lists.lists.network_services, &sname) {
            // Shells start shells; a service starting one is `service_shell`.
            return;
        }
        let interactive = interactive_shell(cmd, shells);
        let normal = SHELL_STARTERS
            .iter()
            .any(|s| in_list(std::slice::from_ref(&s.to_string()), &sname));
        let edge = format!("{sname}>{}", cmd.name);
        let profile = self.usable_profile(principal).map(|prof| {
            (
                prof.span_words(),
                super::engine::Engine::novelty_weight(self.cfg.weights.unusual_child, prof),
            )
        });
        let seen = profile.is_some() && self.learned_edges(principal).contains(&edge);
        let w = self.cfg.weights.unusual_child;
        let reason = match (interactive, normal, seen, &profile) {
            (_, _, true, _) => None,
            (true, false, false, None) => Some((
                format!(
                    "interactive shell {} started by {} (pid {}), a program that has no business starting one: a shell escape ({})",
                    p.exe,
                    starter.exe_or_comm(),
                    starter.pid,
                    shorten(&cmd.line(), 80)
                ),
                w,
            )),
            (true, false, false, Some((span, _))) => Some((
                format!(
                    "interactive shell {} started by {} (pid {}): this user's processes never had {edge} in {span} of baseline, a shell escape",
                    p.exe,
                    starter.exe_or_comm(),
                    starter.pid
                ),
                w,
            )),
            // Editors, pagers, debuggers and database shells run commands for a person at a
            // keyboard, not for scripts: a shell from one that this user's processes never
            // had is the escape itself, even with a command (`:!sh -c id`).
            (false, false, false, Some((span, nw))) if !in_place && escape_host(&sname) => Some((
                format!(
                    "shell {} started by {} (pid {}), an interactive program that runs commands on request: {edge} never seen for this user in {span} of baseline, a shell escape ({})",
                    p.exe,
                    starter.exe_or_comm(),
                    starter.pid,
                    shorten(&cmd.line(), 60)
                ),
                *nw,
            )),
            (false, false, false, Some((span, nw))) if !in_place => Some((
                format!(
                    "shell {} started by {} (pid {}): {edge} never seen for this user in {span} of baseline",
                    p.exe,
                    starter.exe_or_comm(),
                    starter.pid
                ),
                nw / 2,
            )),
            _ => None,
        };
        if let Some((r, weight)) = reason
            && weight > 0
            && self.first_time(principal, "unusual_child", &format!("{}:{edge}", ev.pid))
        {
            hits.push(hit("unusual_child", r, weight, ev));
        }
    }

    fn decode_exec(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        cmd: &Cmd,
        hits: &mut Vec<Hit>,
    ) {
        let w = self.cfg.weights.decode_and_run;
        // 1. Inline: `bash -c "echo .. | base64 -d | sh"`, `python -c "exec(b64decode(..))"`.
        if let Some(code) = &cmd.code
            && let Some(m) = decode_code().find(code)
        {
            if self.first_time(principal, "decode_and_run", &ev.pid.to_string()) {
                hits.push(hit(
                    "decode_and_run",
                    format!(
                        "{}: `{}` in {}",
                        if [
                            "curl",
                            "wget",
                            "urlopen",
                            "requests",
                            "urllib",
                            "http.client",
                            "fetch("
                        ]
                        .iter()
                        .any(|f| m.as_str().contains(f))
                        {
                            "ran code fetched from the network without saving it"
                        } else {
                            "decoded a hidden payload and ran it"
                        },
                        shorten(m.as_str(), 80),
                        shorten(&cmd.line(), 100)
                    ),
                    w,
                    ev,
                ));
            }
            return;
        }
        let is_decoder = decoder(cmd);
        // 2. A decoder writing a file through the shell's redirection (`base64 -d > x`).
        let redirect = self.behaviour.redirect.remove(&ev.pid);
        if is_decoder
            && let Some((path, oev)) = redirect
            && ev.time_ns - oev.time_ns < 5_000_000_000
        {
            self.behaviour.decoded.entry(principal).or_default().push((
                path,
                cmd.name.clone(),
                ev.time_ns,
                ev.clone(),
            ));
        }
        // 3. A pipeline: the decoder and a shell reading its standard input are siblings.
        let stdin_reader = (in_list(&self.cats.lists.shells, &cmd.name)
            || is_interpreter(&cmd.name))
            && cmd.code.is_none()
            && cmd.operands().next().is_none();
        if (is_decoder || stdin_reader) && p.ppid != 0 {
            let now = ev.time_ns;
            let sibs = self.behaviour.pipes.entry(p.ppid).or_default();
            sibs.retain(|(t, _, _)| now - *t < 5_000_000_000);
            let partner = sibs
                .iter()
                .find(|(_, d, _)| *d != is_decoder)
                .map(|(_, _, e)| e.clone());
            sibs.push((now, is_decoder, ev.clone()));
            if sibs.len() > 16 {
                sibs.remove(0);
            }
            self.bound_state();
            if let Some(other) = partner
                && self.first_time(principal, "decode_and_run", &format!("pipe:{}", p.ppid))
            {
                let (dec, run) = if is_decoder {
                    (ev, &other)
                } else {
                    (&other, ev)
                };
                hits.push(multi_hit(
                    "decode_and_run",
                    format!(
                        "piped a decoded payload into a shell: {} | {}",
                        shorten(&super::evidence::summary(dec), 100),
                        shorten(&super::evidence::summary(run), 80)
                    ),
                    w,
                    vec![other.clone(), ev.clone()],
                ));
            }
        }
        // 4. Running (or interpreting) a file a decoder wrote shortly before.
        let mut candidates = vec![p.exe.to_string()];
        if (in_list(&self.cats.lists.shells, &cmd.name) || is_interpreter(&cmd.name))
            && let Some(s) = cmd.operands().next()
        {
            candidates.push(self.path_of(ev.pid, s));
        }
        let now = ev.time_ns;
        let found = self.behaviour.decoded.get_mut(&principal).and_then(|list| {
            list.retain(|(_, _, t, _)| now - *t < 600_000_000_000);
            list.iter()
                .find(|(path, _, _, _)| candidates.contains(path))
                .cloned()
        });
        if let Some((path, dec, t, dev)) = found
            && self.first_time(principal, "decode_and_run", &format!("file:{path}"))
        {
            hits.push(multi_hit(
                "decode_and_run",
                format!(
                    "ran {path}, which {dec} had decoded {} s earlier: a hidden payload unpacked and started",
                    (now - t) / 1_000_000_000
                ),
                w,
                vec![dev, ev.clone()],
            ));
        }
    }

    /// Files written by a decoder (or a shell redirection a decoder will inherit).
    pub(super) fn escape_open(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        path: &str,
        write: bool,
    ) {
        if !write || path.starts_with("/dev/") || path.starts_with("/proc/") {
            return;
        }
        let name = p.name();
        let decoding = || {
            let argv: Vec<crate::event::RawStr> =
                p.argv.iter().map(|a| a.as_str().into()).collect();
            decoder(&Cmd::new(p, &argv))
        };
        if in_list(&self.cats.lists.shells, name) {
            self.behaviour
                .redirect
                .insert(ev.pid, (path.to_string(), ev.clone()));
            self.bound_state();
        } else if matches!(
            name,
            "base64" | "base32" | "basenc" | "xxd" | "openssl" | "uudecode"
        ) && decoding()
        {
            self.behaviour.decoded.entry(principal).or_default().push((
                path.to_string(),
                name.to_string(),
                ev.time_ns,
                ev.clone(),
            ));
            self.bound_state();
        }
    }

    fn masquerade_exec(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        cmd: &Cmd,
        hits: &mut Vec<Hit>,
    ) {
        let exe: &str = &p.exe;
        if exe.is_empty() || exe.starts_with("/memfd:") {
            return;
        }
        let name = base(exe);
        let a0 = base(cmd.argv0.trim_start_matches('-'));
        let system = under(exe, &SYSTEM_DIRS);
        let mut why: Vec<String> = Vec::new();
        if cmd.argv0.starts_with('[') && cmd.argv0.ends_with(']') {
            why.push(format!("its name {} looks like a kernel thread", cmd.argv0));
        } else if kernel_thread_like(name) || kernel_thread_like(a0) {
            why.push(format!(
                "it is named like a kernel thread ({})",
                if kernel_thread_like(name) { name } else { a0 }
            ));
        } else if !system
            && !under(exe, &SERVICE_SCRIPT_DIRS)
            && (DAEMONS.contains(&name) || (DAEMONS.contains(&a0) && a0 != name))
        {
            why.push(format!(
                "it is named like the system daemon {} but runs from {exe}",
                if DAEMONS.contains(&name) { name } else { a0 }
            ));
        }
        let ext = name
            .rsplit_once('.')
            .map(|(stem, e)| (stem, e.to_ascii_lowercase()));
        if let Some((stem, e)) = &ext {
            let inner = stem.rsplit_once('.').map(|(_, x)| x.to_ascii_lowercase());
            if DOC_EXTS.contains(&e.as_str()) {
                why.push(format!("{name} is named like a document or picture (.{e})"));
            } else if inner.as_deref().is_some_and(|x| DOC_EXTS.contains(&x)) {
                why.push(format!("{name} hides behind a double extension"));
            }
        }
        let hidden = exe
            .split('/')
            .find(|c| c.starts_with('.') && *c != "." && *c != ".." && !USUAL_HIDDEN.contains(c));
        if let Some(h) = hidden
            && !system
        {
            let dir = &exe[..exe.find(&format!("/{h}")).unwrap_or(0) + h.len() + 1];
            let known = self
                .usable_profile(principal)
                .is_some_and(|prof| prof.binaries.keys().any(|b| b.starts_with(dir) && b != exe));
            if !known {
                why.push(format!("it lives in the hidden directory {dir}"));
            }
        }
        if why.is_empty() || self.known_behaviour(principal, exe, "masquerade") {
            return;
        }
        if self.first_time(principal, "masquerade", &ev.pid.to_string()) {
            hits.push(hit(
                "masquerade",
                format!("ran {exe} disguised: {}", why.join("; ")),
                self.cfg.weights.masquerade,
                ev,
            ));
        }
    }

    /// A process whose command name changed after exec (prctl PR_SET_NAME) to that of a
    /// kernel thread or a system daemon.
    pub(super) fn renamed_comm(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        comm: &str,
        hits: &mut Vec<Hit>,
    ) {
        if p.exe.is_empty() || matches!(ev.payload, crate::event::Payload::Exec { .. }) {
            return;
        }
        let name = p.name();
        let short: String = name.chars().take(15).collect();
        let borrowed = kernel_thread_like(comm) || (daemon_comm(comm) && !name.starts_with(comm));
        if comm == short || !borrowed {
            return;
        }
        if self.first_time(principal, "masquerade", &format!("comm:{}", ev.pid)) {
            hits.push(hit(
                "masquerade",
                format!(
                    "{} renamed itself to {comm}: it poses as a kernel thread or a system daemon",
                    p.exe
                ),
                self.cfg.weights.masquerade,
                ev,
            ));
        }
    }
}

/// Programs a person drives that can run a command on request (`:!`, `!`, `\\!`, `.shell`).
fn escape_host(name: &str) -> bool {
    matches!(
        name,
        "vim"
            | "vi"
            | "nvim"
            | "view"
            | "vimdiff"
            | "rvim"
            | "ex"
            | "ed"
            | "emacs"
            | "nano"
            | "less"
            | "more"
            | "most"
            | "man"
            | "gdb"
            | "lldb"
            | "mysql"
            | "mariadb"
            | "psql"
            | "sqlite3"
            | "ftp"
            | "mail"
            | "mailx"
            | "tmux"
            | "screen"
    ) || name.starts_with("vim.")
}

/// A shell meant for typing into: no script and no command, or a command that is itself
/// just a shell (`sh -c /bin/sh`, `sh -c 'exec bash -i'`).
fn interactive_shell(cmd: &Cmd, shells: &[String]) -> bool {
    if let Some(code) = &cmd.code {
        let code = code.trim().trim_start_matches("exec ").trim();
        let mut words = code.split_whitespace();
        return words.next().is_some_and(|w| in_list(shells, base(w)))
            && words.all(|w| w.starts_with('-'));
    }
    // busybox runs applets: only `busybox sh` is a shell.
    let args: Vec<&str> = if cmd.name == "busybox" {
        match cmd.args.first().map(String::as_str) {
            Some("sh" | "ash" | "bash") => cmd.args[1..].iter().map(String::as_str).collect(),
            _ => return false,
        }
    } else {
        cmd.args.iter().map(String::as_str).collect()
    };
    args.iter()
        .all(|a| a.starts_with('-') || a.starts_with('+'))
}
