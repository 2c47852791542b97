//! The detections: each looks at one event (with the process table, the window state and
//! the learned baselines) and returns factors with a plain reason. docs/anomalies.md lists
//! them with their ids and default weights.

use super::engine::{Engine, Hit};
use crate::event::{Event, Family, Payload};
use crate::model::Factor;
use crate::proc::{Process, absolute};
use crate::profile::Fact;
use crate::profile::categories::lists_program;

/// An owned `Fact` (facts are computed before the window borrows them).
pub(super) enum OwnedFact {
    Binary(String),
    Category { write: bool, name: String },
    Destination(String),
    Transition(String),
    WritableExec(String),
    Discovery(String),
}

impl OwnedFact {
    pub fn as_fact(&self) -> Fact<'_> {
        match self {
            OwnedFact::Binary(b) => Fact::Binary(b),
            OwnedFact::Category { write, name } => Fact::Category {
                write: *write,
                name,
            },
            OwnedFact::Destination(d) => Fact::Destination(d),
            OwnedFact::Transition(t) => Fact::Transition(t),
            OwnedFact::WritableExec(e) => Fact::WritableExec(e),
            OwnedFact::Discovery(d) => Fact::Discovery(d),
        }
    }
}

const O_ACCMODE: u64 = 3;
const O_CREAT: u64 = 0o100;
pub(super) const O_TRUNC: u64 = 0o1000;

pub(super) fn is_write(flags: u64) -> bool {
    flags & O_ACCMODE != 0 || flags & (O_CREAT | O_TRUNC) != 0
}

/// "addr:port" of an outbound inet connect, for any address.
pub(super) fn destination(ev: &Event) -> Option<(String, bool)> {
    match &ev.payload {
        Payload::Connect {
            family: Family::Inet | Family::Inet6,
            addr: Some(a),
            port: Some(p),
            ..
        } if ev.ok() || ev.ret == -(libc::EINPROGRESS as i64) => {
            let local = a.is_loopback() || a.is_unspecified();
            let d = match a {
                std::net::IpAddr::V6(v6) => format!("[{v6}]:{p}"),
                std::net::IpAddr::V4(v4) => format!("{v4}:{p}"),
            };
            Some((d, local))
        }
        _ => None,
    }
}

/// Is this exec of a program living only in memory (memfd, fd path)?
fn memfd_exec(filename: &str, exe: &str, before: Option<&Process>) -> Option<String> {
    if let Some(name) = exe.strip_prefix("/memfd:") {
        return Some(name.trim_end_matches(" (deleted)").to_string());
    }
    let fd_path = filename.starts_with("/dev/fd/")
        || filename.starts_with("/proc/self/fd/")
        || (filename.starts_with("/proc/") && filename.contains("/fd/"));
    if fd_path {
        let name = before
            .and_then(|b| b.memfds.last().cloned())
            .unwrap_or_else(|| "unknown".into());
        return Some(name);
    }
    None
}

impl Engine {
    fn ancestors_in(&self, pid: u32, list: &[String]) -> Option<&Process> {
        self.procs
            .ancestry(pid)
            .skip(1)
            .find(|p| lists_program(list, &p.exe, &p.comm))
    }

    /// The process or an ancestor is a package manager (installs legitimately touch
    /// accounts, units and logs). Base-name entries count only in system directories.
    /// Remembered for the table's version and the lists in force: each answer walks the chain
    /// and matches every name, and an exec may be asked it by more than one detection (most
    /// events, since the detections ask it last, not at all).
    pub(super) fn under_package_manager(&self, pid: u32) -> bool {
        let asked = (
            self.procs.version(),
            pid,
            std::sync::Arc::as_ptr(&self.cats) as usize,
        );
        if let Some((key, answer)) = self.pkg_memo.get()
            && key == asked
        {
            return answer;
        }
        let l = &self.cats.lists.package_managers;
        let answer = self
            .procs
            .ancestry(pid)
            .any(|p| self.cats.exempt(l, &p.exe, &p.comm));
        self.pkg_memo.set(Some((asked, answer)));
        answer
    }

    /// Is the process named by an exemption list (full path, or base name in a system
    /// directory: docs/categories.md)?
    pub(super) fn exempt(&self, list: &[String], p: &Process) -> bool {
        self.cats.exempt(list, &p.exe, &p.comm)
    }

    pub(super) fn path_of(&self, pid: u32, path: &str) -> String {
        let cwd = self.procs.get(pid).and_then(|p| p.cwd.clone());
        absolute(path, cwd.as_deref())
    }

    /// The facts this event adds to the fingerprints.
    pub(super) fn facts(
        &self,
        ev: &Event,
        principal: u32,
        before: Option<&Process>,
    ) -> Vec<OwnedFact> {
        let mut out = Vec::new();
        let Some(p) = self.procs.get(ev.pid) else {
            return out;
        };
        match &ev.payload {
            Payload::Exec { filename, argv, .. } if ev.ok() => {
                out.push(OwnedFact::Binary(p.exe.to_string()));
                let args: Vec<String> = argv
                    .iter()
                    .skip(1)
                    .map(|a| a.lossy().into_owned())
                    .collect();
                for d in self.cats.discovery_entries(p.name(), &args) {
                    out.push(OwnedFact::Discovery(d));
                }
                let writable = in_dirs(&self.cats.lists.writable_exec_dirs, &p.exe);
                if writable || memfd_exec(&filename.lossy(), &p.exe, before).is_some() {
                    out.push(OwnedFact::WritableExec(p.exe.to_string()));
                }
                if let Some(b) = before
                    && b.euid != p.euid
                {
                    out.push(OwnedFact::Transition(format!(
                        "{}->{} {}",
                        b.euid,
                        p.euid,
                        p.name()
                    )));
                }
            }
            Payload::Open { path, flags, .. } if ev.ok() => {
                let path = self.path_of(ev.pid, &path.lossy());
                if let Some(c) = self.category_of(&path, principal, p) {
                    out.push(OwnedFact::Category {
                        write: is_write(*flags),
                        name: c.to_string(),
                    });
                }
            }
            Payload::Rename { new_path, .. } if ev.ok() => {
                // Moving a file into place writes the destination (docs/categories.md).
                let path = self.path_of(ev.pid, &new_path.lossy());
                if let Some(c) = self.category_of(&path, principal, p) {
                    out.push(OwnedFact::Category {
                        write: true,
                        name: c.to_string(),
                    });
                }
            }
            Payload::Connect { .. } => {
                if let Some((d, false)) = destination(ev) {
                    out.push(OwnedFact::Destination(d));
                }
            }
            Payload::SetUid { euid: Some(e), .. } if ev.ok() => {
                if let Some(b) = before
                    && b.euid != *e
                {
                    out.push(OwnedFact::Transition(format!(
                        "{}->{e} {}",
                        b.euid,
                        p.name()
                    )));
                }
            }
            _ => {}
        }
        out
    }

    pub(super) fn detect(
        &mut self,
        ev: &Event,
        principal: u32,
        before: Option<&Process>,
    ) -> Vec<Hit> {
        let mut hits = Vec::new();
        self.behaviours(ev, principal, before, &mut hits);
        let has_detections = matches!(
            ev.payload,
            Payload::Exec { .. }
                | Payload::Open { .. }
                | Payload::Unlink { .. }
                | Payload::Rename { .. }
                | Payload::Link { .. }
                | Payload::Connect { .. }
                | Payload::SetUid { .. }
                | Payload::Ptrace { .. }
                | Payload::Bpf { .. }
        );
        if !has_detections {
            self.on_auth_lifecycle(ev, principal, &mut hits);
            self.off_hours(ev, principal, &mut hits);
            return hits;
        }
        let Some(p) = self.procs.get(ev.pid).cloned() else {
            return hits;
        };
        match &ev.payload {
            Payload::Exec { filename, argv, .. } if ev.ok() => self.on_exec(
                ev,
                principal,
                &p,
                &filename.lossy(),
                argv,
                before,
                &mut hits,
            ),
            Payload::Open { path, flags, .. } if ev.ok() => {
                let path = self.path_of(ev.pid, &path.lossy());
                self.on_open(ev, principal, &p, &path, *flags, &mut hits)
            }
            Payload::Unlink { path, .. } if ev.ok() => {
                let path = self.path_of(ev.pid, &path.lossy());
                self.on_log_change(
                    ev,
                    principal,
                    &p,
                    &path,
                    format!("deleted {path}"),
                    &mut hits,
                )
            }
            Payload::Rename {
                old_path, new_path, ..
            } if ev.ok() => {
                let old = self.path_of(ev.pid, &old_path.lossy());
                let new = self.path_of(ev.pid, &new_path.lossy());
                let what = format!("renamed {old} to {new}");
                self.on_log_change(ev, principal, &p, &old, what, &mut hits);
                // Moving a file into place is a write of the destination.
                self.on_open(ev, principal, &p, &new, 1, &mut hits);
            }
            // A new name for a file in a watched place is a write of that place.
            Payload::Link { link, .. } if ev.ok() => {
                let new = self.path_of(ev.pid, &link.lossy());
                self.on_open(ev, principal, &p, &new, 1, &mut hits);
            }
            Payload::Connect { .. } => self.on_connect(ev, principal, &p, &mut hits),
            Payload::SetUid { ruid, euid, .. } if ev.ok() => {
                let to_root = *euid == Some(0) || *ruid == Some(0);
                let was = before.map(|b| b.euid).unwrap_or(ev.euid);
                if to_root && was != 0 && !self.exempt(&self.cats.lists.setuid_helpers, &p) {
                    let w = self.cfg.weights.privilege_escalation;
                    hits.push(hit(
                        "privilege_escalation",
                        format!(
                            "{} became root (uid {was} -> 0) through setuid without a set-uid helper",
                            p.exe_or_comm()
                        ),
                        w,
                        ev,
                    ));
                }
            }
            Payload::Ptrace {
                request_name,
                target_pid,
                ..
            } if ev.ok() => self.on_ptrace(ev, principal, &p, request_name, *target_pid, &mut hits),
            Payload::Bpf { cmd_name, .. }
                if ev.ok()
                    && cmd_name == "BPF_PROG_LOAD"
                    && ev.pid != self.own_pid
                    && !self.exempt(&self.cats.lists.system_bpf, &p)
                    && self.first_time(principal, "bpf_load", &ev.pid.to_string()) =>
            {
                hits.push(hit(
                    "bpf_load",
                    format!(
                        "{} loaded a BPF program (BPF_PROG_LOAD): not a known system BPF user",
                        p.exe_or_comm()
                    ),
                    self.cfg.weights.bpf_load,
                    ev,
                ));
            }
            _ => {}
        }
        self.off_hours(ev, principal, &mut hits);
        hits
    }

    #[allow(clippy::too_many_arguments)]
    fn on_exec(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        filename: &str,
        argv: &[crate::event::RawStr],
        before: Option<&Process>,
        hits: &mut Vec<Hit>,
    ) {
        let w = self.cfg.weights.clone();
        let cats = std::sync::Arc::clone(&self.cats);
        let lists = &cats.lists;
        let name = p.name().to_string();
        if let Some(m) = memfd_exec(filename, &p.exe, before) {
            hits.push(hit(
                "exec_from_memfd",
                format!("executed a memory-only program (memfd:{m}) via {filename}: there is no file on disk"),
                w.exec_from_memfd,
                ev,
            ));
        } else if let Some(dir) = lists
            .writable_exec_dirs
            .iter()
            .find(|d| p.exe.starts_with(d.as_str()))
        {
            // Weighed by who wrote the file and the baseline (provenance.rs).
            self.exec_from_writable(ev, principal, p, dir, hits);
        } else {
            self.downloaded_exec(ev, principal, p, hits);
        }
        let listed = |l: &[String]| lists_program(l, &p.exe, &p.comm);
        if listed(&lists.shells) {
            if let Some(svc) = self.ancestors_in(ev.pid, &lists.network_services) {
                hits.push(hit(
                    "service_shell",
                    format!(
                        "shell {} spawned by network-facing service {} (pid {})",
                        p.exe,
                        svc.exe_or_comm(),
                        svc.pid
                    ),
                    w.service_shell,
                    ev,
                ));
            }
            let live_fds = if self.live {
                crate::proc::stdio_inet_sockets(ev.pid)
            } else {
                None
            };
            let reason = match live_fds {
                Some(fds) if !fds.is_empty() => Some(format!(
                    "shell {} has its standard {} on a network socket (reverse shell)",
                    p.exe,
                    fds.iter()
                        .map(|f| ["input", "output", "error"][*f as usize % 3])
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Some(_) => None,
                None => before.filter(|b| b.inet_connected).map(|b| {
                    format!(
                        "shell {} started by {} (pid {}) right after it opened a network connection (reverse shell)",
                        p.exe, b.exe_or_comm(), b.pid
                    )
                }),
            };
            if let Some(r) = reason
                && self.first_time(principal, "reverse_shell", &format!("exec:{}", ev.pid))
            {
                hits.push(hit("reverse_shell", r, w.reverse_shell, ev));
            }
        }
        let was = before.map(|b| b.euid).unwrap_or(p.euid);
        if p.euid == 0 && was != 0 && !self.exempt(&lists.setuid_helpers, p) {
            hits.push(hit(
                "privilege_escalation",
                format!(
                    "{} gained root (euid {was} -> 0) at exec: not a known set-uid helper",
                    p.exe
                ),
                w.privilege_escalation,
                ev,
            ));
        }
        if principal != 0
            && listed(&lists.switch_user)
            && let Some(prof) = self.usable_profile(principal)
            && !prof.binaries.contains_key(&*p.exe)
        {
            let weight = Engine::novelty_weight(w.unusual_switch_user, prof);
            let r = format!(
                "ran {name}: never used by this user in {} of baseline",
                prof.span_words()
            );
            hits.push(hit("unusual_switch_user", r, weight, ev));
        }
        let args: Vec<String> = argv
            .iter()
            .skip(1)
            .map(|a| a.lossy().into_owned())
            .collect();
        if listed(&lists.account_tools) && !self.under_package_manager(ev.pid) {
            hits.push(hit(
                "account_change",
                format!("ran {name} {}: changes user accounts", args.join(" ")).replace("  ", " "),
                w.account_change,
                ev,
            ));
        }
        if listed(&lists.module_tools) && ev.auid.is_some() && !self.under_package_manager(ev.pid) {
            hits.push(hit(
                "kernel_module",
                format!(
                    "ran {name} {} from a login session: kernel module activity",
                    args.join(" ")
                ),
                w.kernel_module,
                ev,
            ));
        }
        let cats = std::sync::Arc::clone(&self.cats);
        for entry in cats.discovery_entries(&name, &args) {
            self.on_discovery(ev, principal, entry, hits);
        }
    }
}

fn in_dirs(dirs: &[String], path: &str) -> bool {
    dirs.iter().any(|d| path.starts_with(d.as_str()))
}

/// A factor proven by several events (all of them are evidence).
pub(super) fn multi_hit(detection: &str, reason: String, weight: u8, events: Vec<Event>) -> Hit {
    Hit {
        factor: Factor {
            detection: detection.to_string(),
            reason,
            weight,
            evidence: events.iter().map(|e| e.id.to_string()).collect(),
        },
        extra: events,
    }
}

pub(super) fn hit(detection: &str, reason: String, weight: u8, ev: &Event) -> Hit {
    Hit {
        factor: Factor {
            detection: detection.to_string(),
            reason,
            weight,
            evidence: vec![ev.id.to_string()],
        },
        extra: Vec::new(),
    }
}
