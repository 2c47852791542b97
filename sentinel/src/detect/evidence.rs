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
    };
    let res = if ev.ok() {
        String::new()
    } else {
        format!(
            " = {}",
            ev.errno.clone().unwrap_or_else(|| ev.ret.to_string())
        )
    };
    format!("{who} {}{res}", what.trim_end())
}
