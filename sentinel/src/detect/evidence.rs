//! One-line summaries of events, for evidence lists and the terminal.

use super::rules::{destination, is_write};
use crate::event::{Event, Payload};

/// One-line human summary of an event (evidence lists, terminal).
pub fn summary(ev: &Event) -> String {
    let who = format!("{}[{}] uid={}", ev.comm, ev.pid, ev.uid);
    let what = match &ev.payload {
        Payload::Exec { filename, argv, .. } => {
            let args: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
            format!("exec {filename} {}", args.join(" "))
        }
        Payload::Fork { child_pid, .. } => format!("fork child {child_pid}"),
        Payload::Exit { code, signal } => format!("exit code={code:?} signal={signal:?}"),
        Payload::Connect { .. } => match destination(ev) {
            Some((d, _)) => format!("connect {d}"),
            None => "connect".into(),
        },
        Payload::Open { path, flags, .. } => format!(
            "open {path} {}",
            if is_write(*flags) { "write" } else { "read" }
        ),
        Payload::Unlink { path, .. } => format!("unlink {path}"),
        Payload::Rename {
            old_path, new_path, ..
        } => format!("rename {old_path} -> {new_path}"),
        Payload::Chmod { path, mode } => format!("chmod {path} {mode:o}"),
        Payload::Chown { path, owner, group } => format!("chown {path} {owner:?}:{group:?}"),
        Payload::MemfdCreate { name, .. } => format!("memfd_create {name}"),
        Payload::SetUid { ruid, euid, suid } => format!("setuid r={ruid:?} e={euid:?} s={suid:?}"),
        Payload::SetGid { rgid, egid, sgid } => format!("setgid r={rgid:?} e={egid:?} s={sgid:?}"),
        Payload::Capset { target_pid, .. } => format!("capset pid {target_pid}"),
        Payload::Ptrace {
            request_name,
            target_pid,
            ..
        } => format!("ptrace {request_name} pid {target_pid}"),
        Payload::Bpf { cmd_name, .. } => format!("bpf {cmd_name}"),
        Payload::Mount { source, target, .. } => format!("mount {source} on {target}"),
        Payload::Umount { target, .. } => format!("umount {target}"),
        Payload::Unshare { namespaces, .. } => format!("unshare {}", namespaces.join(",")),
        Payload::Setns { namespaces, .. } => format!("setns {}", namespaces.join(",")),
        Payload::Kill {
            target_pid, signal, ..
        } => format!("kill pid {target_pid} signal {signal}"),
        Payload::Prctl { name, .. } => format!("prctl PR_SET_NAME {name}"),
        Payload::Socket {
            family_name,
            type_name,
            protocol_name,
            ..
        } => format!("socket {family_name} {type_name} {protocol_name}"),
        Payload::Bind { fd, .. } => match crate::event::socket_address(&ev.payload) {
            Some(a) => format!("bind {a}"),
            None => format!("bind fd {fd}"),
        },
        Payload::Listen { fd, backlog } => format!("listen fd {fd} backlog {backlog}"),
        Payload::Utime {
            path,
            dirfd,
            atime,
            mtime,
            ..
        } => format!(
            "utime {} atime={} mtime={}",
            crate::event::path_or_fd(path, *dirfd),
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
        } => {
            let op = if *remove { "removexattr" } else { "setxattr" };
            let caps = if caps.is_empty() {
                String::new()
            } else {
                format!(" = {}", caps.join(","))
            };
            format!("{op} {} {name}{caps}", crate::event::path_or_fd(path, *fd))
        }
        Payload::Link {
            target,
            link,
            symbolic,
        } => format!(
            "{} {link} -> {target}",
            if *symbolic { "symlink" } else { "link" }
        ),
        Payload::Truncate { path, fd, length } => format!(
            "truncate {} to {length}",
            crate::event::path_or_fd(path, *fd)
        ),
        Payload::Dup { fd } => format!("dup fd {fd} to {}", ev.ret),
        Payload::Chdir { path, fd } => format!("chdir {}", crate::event::path_or_fd(path, *fd)),
        Payload::ProcessVm { target_pid, write } => format!(
            "process_vm_{} pid {target_pid}",
            if *write { "writev" } else { "readv" }
        ),
        Payload::Module {
            op, name, fd_path, ..
        } => match (op, fd_path) {
            (crate::event::ModuleOp::Unload, _) => format!("delete_module {name}"),
            (_, Some(p)) => format!("load module {p}"),
            _ => format!("load module {name}"),
        },
    };
    let res = if ev.ok() {
        String::new()
    } else {
        format!(
            " = {}",
            ev.errno
                .as_deref()
                .map_or_else(|| ev.ret.to_string(), str::to_string)
        )
    };
    format!("{who} {}{res}", what.trim_end())
}
