//! Readable, optionally coloured, one-line renderings of events for a terminal.

use crate::event::{Event, Payload, RawStr};
use crate::model::{Anomaly, Level};
use crate::timefmt::utc_clock_ms as clock_time;

/// Whether to colour: only on a terminal, never with NO_COLOR set (https://no-color.org).
pub fn use_color(is_tty: bool) -> bool {
    is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

struct Paint(bool);

impl Paint {
    fn c(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// `19:41:05.123 exec     pid=812 ppid=700 uid=1000 auid=1000 bash  /usr/bin/ls -la  ok`
pub fn event_line(ev: &Event, color: bool) -> String {
    let p = Paint(color);
    let kind = ev.kind().name();
    let kind_col = match ev.kind() as u32 {
        1..=19 => "36",  // process: cyan
        20..=39 => "35", // network: magenta
        40..=59 => "34", // files: blue
        _ => "33",       // privilege: yellow
    };
    let auid = ev.auid.map(|a| format!(" auid={a}")).unwrap_or_default();
    let euid = if ev.euid != ev.uid {
        format!(" euid={}", ev.euid)
    } else {
        String::new()
    };
    let detail = detail(&ev.payload);
    let result = if ev.ret < 0 {
        p.c("31", ev.errno.as_deref().unwrap_or("error"))
    } else if matches!(ev.payload, Payload::Fork { .. } | Payload::Exit { .. }) {
        String::new()
    } else {
        p.c("32", "ok")
    };
    format!(
        "{} {} pid={} ppid={} uid={}{euid}{auid} {}  {}  {}{}",
        p.c("2", &clock_time(ev.time_ns)),
        p.c(kind_col, &format!("{kind:<12}")),
        ev.pid,
        ev.ppid,
        ev.uid,
        p.c("1", &ev.comm.escaped()),
        detail,
        result,
        if ev.truncated { " (truncated)" } else { "" },
    )
}

fn q(s: &RawStr) -> String {
    let e = s.escaped();
    if e.is_empty() || e.contains(' ') {
        format!("{e:?}")
    } else {
        e
    }
}

/// A path field quoted like the others, or `fd N` when an fd stands for the file.
fn path_or_fd(path: &RawStr, fd: Option<i32>) -> String {
    match fd {
        Some(_) if path.is_empty() => crate::event::path_or_fd(path, fd),
        _ => q(path),
    }
}

fn detail(p: &Payload) -> String {
    match p {
        Payload::Exec {
            filename,
            argv,
            argv_truncated,
            env,
            env_truncated,
        } => {
            let args: Vec<String> = argv.iter().map(q).collect();
            let env: Vec<String> = env
                .iter()
                .map(|(n, v)| format!("{}={}", n.escaped(), q(v)))
                .collect();
            format!(
                "{} [{}]{}{}{}",
                q(filename),
                args.join(" "),
                if *argv_truncated { " ..." } else { "" },
                if env.is_empty() {
                    String::new()
                } else {
                    format!(" env {}", env.join(" "))
                },
                if *env_truncated { " (env cut)" } else { "" }
            )
        }
        Payload::Fork { child_pid, .. } => format!("child={child_pid}"),
        Payload::Exit { code, signal } => match (code, signal) {
            (_, Some(s)) => format!("signal={s}"),
            (Some(c), _) => format!("code={c}"),
            _ => String::new(),
        },
        Payload::Connect {
            family,
            addr,
            port,
            unix_path,
            ..
        } => match (addr, port, unix_path) {
            (Some(a), Some(p), _) => format!("{a}:{p}"),
            (_, _, Some(u)) => format!("unix:{}", q(u)),
            _ => format!("{family:?}"),
        },
        Payload::Open { path, flags, .. } => format!("{} flags={flags:#o}", q(path)),
        Payload::Unlink { path, .. } => q(path),
        Payload::Rename {
            old_path, new_path, ..
        } => format!("{} -> {}", q(old_path), q(new_path)),
        Payload::Chmod { path, mode } => format!("{} mode={mode:o}", q(path)),
        Payload::Chown { path, owner, group } => format!(
            "{} owner={} group={}",
            q(path),
            owner.map_or("-".into(), |o| o.to_string()),
            group.map_or("-".into(), |g| g.to_string())
        ),
        Payload::MemfdCreate { name, .. } => q(name),
        Payload::SetUid { ruid, euid, suid } => {
            format!("ruid={ruid:?} euid={euid:?} suid={suid:?}")
        }
        Payload::SetGid { rgid, egid, sgid } => {
            format!("rgid={rgid:?} egid={egid:?} sgid={sgid:?}")
        }
        Payload::Capset {
            target_pid,
            effective,
            ..
        } => format!("target={target_pid} effective={effective:#x}"),
        Payload::Ptrace {
            request_name,
            target_pid,
            ..
        } => format!("{request_name} target={target_pid}"),
        Payload::Bpf { cmd_name, .. } => cmd_name.clone(),
        Payload::Mount {
            source,
            target,
            fstype,
            ..
        } => format!("{} on {} type {}", q(source), q(target), q(fstype)),
        Payload::Umount { target, .. } => q(target),
        Payload::Unshare { namespaces, .. } => namespaces.join(","),
        Payload::Setns { fd, namespaces, .. } => format!("fd={fd} {}", namespaces.join(",")),
        Payload::Kill {
            target_pid, signal, ..
        } => format!("target={target_pid} signal={signal}"),
        Payload::Prctl { name, .. } => format!("PR_SET_NAME {}", q(name)),
        Payload::Socket {
            family_name,
            type_name,
            protocol_name,
            ..
        } => format!("{family_name} {type_name} {protocol_name}"),
        Payload::Bind { fd, .. } => match crate::event::socket_address(p) {
            Some(a) => format!("fd={fd} {a}"),
            None => format!("fd={fd}"),
        },
        Payload::Listen { fd, backlog } => format!("fd={fd} backlog={backlog}"),
        Payload::Utime {
            path,
            dirfd,
            atime,
            mtime,
            ..
        } => format!(
            "{} atime={} mtime={}",
            path_or_fd(path, *dirfd),
            atime.describe(),
            mtime.describe()
        ),
        Payload::Xattr {
            path,
            fd,
            name,
            remove,
            caps,
            ..
        } => format!(
            "{}{} {}{}",
            if *remove { "remove " } else { "" },
            path_or_fd(path, *fd),
            q(name),
            if caps.is_empty() {
                String::new()
            } else {
                format!(" caps={}", caps.join(","))
            }
        ),
        Payload::Link {
            target,
            link,
            symbolic,
        } => format!(
            "{} {} -> {}",
            if *symbolic { "symbolic" } else { "hard" },
            q(link),
            q(target)
        ),
        Payload::Truncate { path, fd, length } => {
            format!("{} length={length}", path_or_fd(path, *fd))
        }
        Payload::Dup { fd } => format!("fd={fd}"),
        Payload::Chdir { path, fd } => path_or_fd(path, *fd),
        Payload::ProcessVm { target_pid, write } => format!(
            "{} target={target_pid}",
            if *write { "write" } else { "read" }
        ),
        Payload::Module {
            op,
            name,
            fd_path,
            params,
            ..
        } => format!(
            "{op:?} {}{}{}",
            q(name),
            fd_path
                .as_ref()
                .map(|p| format!(" file={}", q(p)))
                .unwrap_or_default(),
            if params.is_empty() {
                String::new()
            } else {
                format!(" params={}", q(params))
            }
        ),
    }
}

/// An anomaly as a block: a headline, one line per factor, the process chain.
///
/// `19:41:05.123 HIGH 62 alice (uid 1000)  bash -> curl -> sh`
/// `    +40 exec_from_tmp: ran /tmp/x: never seen for this user`
pub fn anomaly_lines(a: &Anomaly, color: bool) -> String {
    let p = Paint(color);
    let col = match a.level {
        Level::Low => "2",
        Level::Medium => "33",
        Level::High => "31",
        Level::Critical => "1;31",
    };
    let who = match &a.principal.user {
        Some(u) => format!("{u} (uid {})", a.principal.uid),
        None => format!("uid {}", a.principal.uid),
    };
    let chain: Vec<&str> = a
        .chain
        .iter()
        .map(|l| l.exe.rsplit('/').next().unwrap_or(&l.exe))
        .collect();
    let mut out = format!(
        "{} {} {:>3} {}  {}  [{}]",
        p.c("2", &clock_time(a.time_ns)),
        p.c(col, &format!("{:<8}", a.level.as_str().to_uppercase())),
        a.score,
        p.c("1", &who),
        chain.join(" -> "),
        a.id
    );
    for f in &a.factors {
        out.push_str(&format!(
            "\n    +{:<3} {}: {}",
            f.weight, f.detection, f.reason
        ));
    }
    if let Some(x) = &a.explanation {
        out.push_str(&format!("\n    explanation ({}): {}", x.source, x.summary));
    }
    out
}

/// An incident update: its level, score and story, then one line per step.
pub fn incident_lines(i: &crate::incident::Incident, color: bool) -> String {
    let p = Paint(color);
    let col = match i.level {
        Level::Low => "2",
        Level::Medium => "33",
        Level::High => "31",
        Level::Critical => "1;31",
    };
    let who = match &i.principal.user {
        Some(u) => format!("{u} (uid {})", i.principal.uid),
        None => format!("uid {}", i.principal.uid),
    };
    let mut out = format!(
        "{} {} {:>3} {}  INCIDENT {}, {} steps: {}  [{}]",
        p.c("2", &clock_time(i.last_ns)),
        p.c(col, &format!("{:<8}", i.level.as_str().to_uppercase())),
        i.score,
        p.c("1", &who),
        i.scope,
        i.step_count,
        i.story,
        i.id
    );
    for s in &i.steps {
        out.push_str(&format!(
            "\n    {} {:<20} {:>3} {}",
            clock_time(s.time_ns),
            s.tactic,
            s.score,
            s.summary
        ));
    }
    if let Some(x) = &i.explanation {
        out.push_str(&format!("\n    story ({}): {}", x.source, x.summary));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Family, FileTime, ModuleOp};

    fn ev(payload: Payload, ret: i64) -> Event {
        Event {
            id: 1,
            time_ns: 0,
            pid: 42,
            tid: 42,
            ppid: 1,
            uid: 0,
            gid: 0,
            euid: 0,
            auid: Some(1000),
            session: None,
            cgroup_id: 1,
            comm: RawStr::from("sh"),
            syscall: None,
            ret,
            errno: (ret < 0).then(|| crate::syscalls::errno_name(-ret)),
            truncated: false,
            repeats: 0,
            repeat_head: false,
            payload,
        }
    }

    /// The terminal line and the evidence summary of the new kinds say what happened.
    #[test]
    fn new_kinds_read_as_one_line() {
        let cases = [
            (
                Payload::Xattr {
                    path: "/tmp/py".into(),
                    fd: None,
                    name: "security.capability".into(),
                    remove: false,
                    size: 20,
                    flags: 0,
                    caps: vec!["cap_setuid".into()],
                    caps_effective: true,
                },
                "/tmp/py security.capability caps=cap_setuid",
                "setxattr /tmp/py security.capability = cap_setuid",
            ),
            (
                Payload::Utime {
                    path: RawStr::default(),
                    dirfd: Some(3),
                    atime: FileTime::At { sec: 0, nsec: 0 },
                    mtime: FileTime::Omit,
                    flags: 0,
                },
                "fd 3 atime=1970-01-01T00:00:00Z mtime=omit",
                "utime fd 3 atime=1970-01-01T00:00:00Z mtime=omit",
            ),
            (
                Payload::Bind {
                    fd: 3,
                    family: Family::Inet,
                    addr: Some("0.0.0.0".parse().unwrap()),
                    port: Some(4444),
                    unix_path: None,
                },
                "fd=3 0.0.0.0:4444",
                "bind 0.0.0.0:4444",
            ),
            (
                Payload::Truncate {
                    path: RawStr::default(),
                    fd: Some(5),
                    length: 0,
                },
                "fd 5 length=0",
                "truncate fd 5 to 0",
            ),
            (
                Payload::Module {
                    op: ModuleOp::Unload,
                    name: "rootkit".into(),
                    fd: None,
                    fd_path: None,
                    params: RawStr::default(),
                    size: None,
                    flags: 0,
                },
                "Unload rootkit",
                "delete_module rootkit",
            ),
            (
                Payload::Link {
                    target: "/dev/null".into(),
                    link: "/root/.bash_history".into(),
                    symbolic: true,
                },
                "symbolic /root/.bash_history -> /dev/null",
                "symlink /root/.bash_history -> /dev/null",
            ),
        ];
        for (p, line, summary) in cases {
            let e = ev(p, 0);
            let l = event_line(&e, false);
            assert!(l.contains(line), "{l}");
            assert!(l.contains(e.kind().name()), "{l}");
            let s = crate::detect::summary(&e);
            assert!(s.ends_with(summary), "{s}");
        }
        let e = ev(
            Payload::ProcessVm {
                target_pid: 7,
                write: true,
            },
            -(libc::ESRCH as i64),
        );
        assert!(event_line(&e, false).ends_with("write target=7  ESRCH"));
        assert!(crate::detect::summary(&e).ends_with("process_vm_writev pid 7 = ESRCH"));
    }
}
