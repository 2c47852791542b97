//! The behaviour-family detections (tamper.rs, privs.rs, escape.rs, recon.rs): one entry
//! point from `Engine::detect`, the state they keep between events, how they read a command
//! line, and how a behaviour the baseline has already seen is recognised.

use std::collections::{HashMap, VecDeque};

use super::engine::{Engine, Hit};
use crate::event::{Event, Payload};
use crate::proc::{ProcKey, Process, basename};
use crate::profile::Fact;

/// Entries any of the per-key maps below may hold before it starts over (bounded memory).
const STATE_CAP: usize = 4096;

/// What the behaviour detections remember between events.
#[derive(Default)]
pub(super) struct BehaviourState {
    /// Per parent pid: recent decoder and stdin-reading shell execs among its children
    /// (time, is_decoder, event): `echo .. | base64 -d | sh`.
    pub pipes: HashMap<u32, Vec<(i64, bool, Event)>>,
    /// Per principal: files a decoder wrote (path, decoder name, time, event).
    pub decoded: HashMap<u32, Vec<(String, String, i64, Event)>>,
    /// Per pid: the last file a shell image opened for writing (a redirection the next
    /// exec in that pid writes to), with the event.
    pub redirect: HashMap<u32, (String, Event)>,
    /// Per principal: recent discovery categories (time, category, event).
    pub recon: HashMap<u32, VecDeque<(i64, String, Event)>>,
    /// Per process: sensitive files read and staging-place writes (`staging`).
    pub copies: HashMap<ProcKey, Copies>,
}

#[derive(Default)]
pub(super) struct Copies {
    pub read: Vec<String>,
    pub wrote: Option<String>,
    pub evidence: Vec<Event>,
}

/// An exec's command line as the detections read it.
pub(super) struct Cmd {
    /// Base name of the executable.
    pub name: String,
    /// argv[0] as given.
    pub argv0: String,
    /// argv[1..].
    pub args: Vec<String>,
    /// Inline code: a shell's `-c` string, `python -c`, `perl -e`, `ruby -e`, `node -e`,
    /// `php -r`.
    pub code: Option<String>,
}

impl Cmd {
    pub fn new(p: &Process, argv: &[crate::event::RawStr]) -> Cmd {
        let args: Vec<String> = argv
            .iter()
            .skip(1)
            .map(|a| a.lossy().into_owned())
            .collect();
        let name = p.name().to_string();
        let code = inline_code(&name, &args);
        Cmd {
            argv0: argv
                .first()
                .map(|a| a.lossy().into_owned())
                .unwrap_or_default(),
            name,
            args,
            code,
        }
    }

    /// The arguments that are not options.
    pub fn operands(&self) -> impl Iterator<Item = &str> {
        self.args
            .iter()
            .map(String::as_str)
            .filter(|a| !a.starts_with('-') && !a.is_empty())
    }

    pub fn has(&self, arg: &str) -> bool {
        self.args.iter().any(|a| a == arg)
    }

    /// The whole command line in one string (for reasons).
    pub fn line(&self) -> String {
        let mut s = self.name.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        shorten(&s, 160)
    }
}

/// Cuts a string for a reason, on a character boundary.
pub(super) fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

pub(super) fn is_interpreter(name: &str) -> bool {
    const PREFIXES: [&str; 7] = ["python", "perl", "ruby", "php", "lua", "tclsh", "pypy"];
    PREFIXES.iter().any(|p| name.starts_with(p))
        || matches!(name, "node" | "nodejs" | "pwsh" | "irb" | "expect")
}

/// The inline program of a shell or interpreter, if it was given one on the command line.
fn inline_code(name: &str, args: &[String]) -> Option<String> {
    let shellish = matches!(
        name,
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "ash" | "busybox" | "fish"
    );
    let flag = |a: &str| -> bool {
        if shellish {
            a.starts_with('-') && !a.starts_with("--") && a.contains('c')
        } else if name.starts_with("python") || name.starts_with("pypy") {
            a == "-c"
        } else if name.starts_with("perl") || name.starts_with("ruby") {
            a.starts_with('-') && !a.starts_with("--") && (a.ends_with('e') || a.ends_with('E'))
        } else if name == "node" || name == "nodejs" {
            a == "-e" || a == "--eval" || a == "-p"
        } else if name.starts_with("php") {
            a == "-r"
        } else if name.starts_with("lua") {
            a == "-e"
        } else {
            false
        }
    };
    let i = args.iter().position(|a| flag(a))?;
    // busybox sh -c: the flag follows the applet name.
    args.get(i + 1).cloned()
}

impl Engine {
    /// Runs every behaviour-family detection on one event (called once from `detect`).
    pub(super) fn behaviours(
        &mut self,
        ev: &Event,
        principal: u32,
        before: Option<&Process>,
        hits: &mut Vec<Hit>,
    ) {
        if ev.pid == self.own_pid {
            return;
        }
        let handled = matches!(
            ev.payload,
            Payload::Exec { .. }
                | Payload::Open { .. }
                | Payload::Unlink { .. }
                | Payload::Rename { .. }
                | Payload::Chmod { .. }
                | Payload::Kill { .. }
                | Payload::Utime { .. }
                | Payload::Xattr { .. }
                | Payload::Link { .. }
                | Payload::Truncate { .. }
                | Payload::ProcessVm { .. }
                | Payload::Module { .. }
                | Payload::Prctl { .. }
                | Payload::Socket { .. }
                | Payload::Unshare { .. }
        );
        let renamed = self
            .procs
            .get(ev.pid)
            .is_some_and(|p| ev.comm.as_bytes() != p.comm.as_bytes());
        if !handled && !renamed {
            return;
        }
        let Some(p) = self.procs.get(ev.pid).cloned() else {
            return;
        };
        if renamed {
            self.renamed_comm(ev, principal, &p, &ev.comm.lossy(), hits);
        }
        match &ev.payload {
            Payload::Exec { argv, .. } if ev.ok() => {
                let cmd = Cmd::new(&p, argv);
                self.tamper_exec(ev, principal, &p, &cmd, hits);
                self.privs_exec(ev, principal, &p, &cmd, hits);
                self.escape_exec(ev, principal, &p, &cmd, before, hits);
                self.recon_exec(ev, principal, &p, &cmd, hits);
                self.persist_exec(ev, principal, &cmd, hits);
            }
            Payload::Open { path, flags, .. } if ev.ok() => {
                let path = self.path_of(ev.pid, &path.lossy());
                let write = super::rules::is_write(*flags);
                let trunc = flags & super::rules::O_TRUNC != 0;
                self.tamper_file(ev, principal, &p, &path, FileOp::open(write, trunc), hits);
                self.privs_open(ev, principal, &p, &path, write, hits);
                self.escape_open(ev, principal, &p, &path, write);
                self.recon_open(ev, principal, &p, &path, write, hits);
                if !write {
                    self.recon_file(ev, principal, &p, &path, hits);
                }
            }
            Payload::Unlink { path, .. } if ev.ok() => {
                let path = self.path_of(ev.pid, &path.lossy());
                self.tamper_file(ev, principal, &p, &path, FileOp::Delete, hits);
            }
            Payload::Rename {
                old_path, new_path, ..
            } if ev.ok() => {
                let old = self.path_of(ev.pid, &old_path.lossy());
                let new = self.path_of(ev.pid, &new_path.lossy());
                self.tamper_file(ev, principal, &p, &old, FileOp::RenameFrom, hits);
                self.tamper_file(ev, principal, &p, &new, FileOp::RenameTo, hits);
                self.recon_open(ev, principal, &p, &new, true, hits);
            }
            Payload::Chmod { path, mode } if ev.ok() => {
                let path = self.path_of(ev.pid, &path.lossy());
                self.setuid_chmod(ev, principal, &p, &path, *mode, hits);
            }
            Payload::Kill {
                target_pid, signal, ..
            } => self.watcher_kill(ev, principal, &p, *target_pid, *signal, hits),
            _ => {}
        }
        self.kernel_kinds(ev, principal, &p, hits);
    }

    /// Has this principal's baseline (and that of the executable) already seen `det`?
    /// Behaviours are learned like categories, as "write:behaviour:<det>".
    pub(super) fn known_behaviour(&self, principal: u32, exe: &str, det: &str) -> bool {
        let key = format!("write:behaviour:{det}");
        self.usable_profile(principal)
            .is_some_and(|p| p.categories.contains_key(&key))
            && (exe.is_empty()
                || self
                    .baselines
                    .exe(exe)
                    .is_some_and(|x| x.categories.contains_key(&key)))
    }

    /// Records that the principal showed `det` in this window, so a baseline learned from
    /// ordinary windows comes to know it (windows scoring high are never learned).
    pub(super) fn note_behaviour(&mut self, ev: &Event, principal: u32, det: &str) {
        let lineage = self.lineage(ev.pid);
        let exe = self
            .procs
            .get(ev.pid)
            .map(|p| p.exe.clone())
            .unwrap_or_default();
        let name = format!("behaviour:{det}");
        if let Some(w) = self.window.as_mut() {
            w.principal(principal).add(
                &lineage,
                &exe,
                Fact::Category {
                    write: true,
                    name: &name,
                },
            );
        }
    }

    /// The process a new image replaced or was forked from (the starter of an exec).
    pub(super) fn parent_of(&self, p: &Process) -> Option<&Process> {
        p.parent.and_then(|k| self.procs.by_key(k))
    }

    /// Trims the behaviour state when a map grows past its cap.
    pub(super) fn bound_state(&mut self) {
        let s = &mut self.behaviour;
        if s.pipes.len() > STATE_CAP {
            s.pipes.clear();
        }
        if s.decoded.len() > STATE_CAP {
            s.decoded.clear();
        }
        if s.redirect.len() > STATE_CAP {
            s.redirect.clear();
        }
        if s.recon.len() > STATE_CAP {
            s.recon.clear();
        }
        if s.copies.len() > STATE_CAP {
            s.copies.clear();
        }
    }
}

/// What happened to a file, for the file-based detections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FileOp {
    Read,
    Write,
    Truncate,
    Delete,
    RenameFrom,
    RenameTo,
}

impl FileOp {
    fn open(write: bool, trunc: bool) -> FileOp {
        match (write, trunc) {
            (_, true) => FileOp::Truncate,
            (true, false) => FileOp::Write,
            _ => FileOp::Read,
        }
    }

    /// Does the file's content change (written, replaced, created)?
    pub fn writes(self) -> bool {
        matches!(self, FileOp::Write | FileOp::Truncate | FileOp::RenameTo)
    }
}

/// Is `path` below one of `dirs` (each ending in '/')?
pub(super) fn under(path: &str, dirs: &[&str]) -> bool {
    dirs.iter().any(|d| path.starts_with(d))
}

/// System directories of programs and libraries.
pub(super) const SYSTEM_DIRS: [&str; 10] = [
    "/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/lib32/", "/libx32/", "/opt/", "/snap/",
    "/nix/",
];

pub(super) fn base(path: &str) -> &str {
    basename(path)
}
