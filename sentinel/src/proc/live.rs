//! Reading processes from the running system's /proc (procfs crate): the seed of the table,
//! late lookups, container ids and the stdio-on-socket check behind reverse-shell detection.

use std::collections::HashSet;

use super::Process;

fn boot_ns() -> i64 {
    procfs::boot_time_secs().map(|s| s as i64).unwrap_or(0) * 1_000_000_000
}

fn start_ns(boot: i64, ticks: u64) -> i64 {
    let tps = procfs::ticks_per_second().max(1);
    boot + (ticks as i64).saturating_mul(1_000_000_000 / tps as i64)
}

/// "pts/N" or "ttyN" from a stat tty_nr, None when there is no terminal.
fn tty_name(tty_nr: i32) -> Option<String> {
    if tty_nr == 0 {
        return None;
    }
    let major = ((tty_nr >> 8) & 0xfff) as u32;
    let minor = ((tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00)) as u32;
    Some(match major {
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 => format!("tty{minor}"),
        _ => format!("{major}:{minor}"),
    })
}

/// The short container id from a process's cgroup path (docker, podman, containerd, CRI-O).
pub fn container_id(cgroup_text: &str) -> Option<String> {
    for line in cgroup_text.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        for seg in path.split('/') {
            let seg = seg.trim_end_matches(".scope");
            let id = seg.rsplit(['-', ':']).next().unwrap_or(seg);
            if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(id[..12].to_string());
            }
        }
    }
    None
}

fn read_proc(p: &procfs::process::Process, boot: i64) -> Option<Process> {
    let stat = p.stat().ok()?;
    let status = p.status().ok();
    let pid = stat.pid as u32;
    let (uid, euid) = status.map(|s| (s.ruid, s.euid)).unwrap_or((0, 0));
    let unset = |v: u32| (v != u32::MAX).then_some(v);
    let session = std::fs::read_to_string(format!("/proc/{pid}/sessionid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .and_then(unset);
    let container = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|t| container_id(&t));
    Some(Process {
        pid,
        start_ns: start_ns(boot, stat.starttime),
        ppid: stat.ppid.max(0) as u32,
        parent: None,
        exe: p
            .exe()
            .map(|e| e.to_string_lossy().into())
            .unwrap_or_default(),
        argv: p.cmdline().unwrap_or_default().into(),
        cwd: p.cwd().ok().map(|c| c.to_string_lossy().into()),
        comm: stat.comm.as_str().into(),
        uid,
        euid,
        auid: p.loginuid().ok().and_then(unset),
        session,
        tty: tty_name(stat.tty_nr).map(Into::into),
        cgroup_id: 0,
        container: container.map(Into::into),
        exited_ns: None,
        euid_before_exec: euid,
        inet_connected: false,
        memfds: Vec::new(),
        dir_fds: Vec::new(),
    })
}

pub(super) fn read_all() -> Vec<Process> {
    let boot = boot_ns();
    let Ok(iter) = procfs::process::all_processes() else {
        tracing::warn!("cannot list /proc; the process table starts empty");
        return Vec::new();
    };
    iter.filter_map(Result::ok)
        .filter_map(|p| read_proc(&p, boot))
        .collect()
}

pub(super) fn read_one(pid: u32) -> Option<Process> {
    let p = procfs::process::Process::new(pid as i32).ok()?;
    read_proc(&p, boot_ns())
}

pub(super) fn exe(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

pub(super) fn cwd(pid: u32) -> Option<std::sync::Arc<str>> {
    std::fs::read_link(format!("/proc/{pid}/cwd"))
        .ok()
        .map(|p| p.to_string_lossy().into())
}

/// The inodes of the inet sockets (TCP/UDP, v4 and v6) in `p`'s network namespace (a shell
/// in a container or another namespace has its sockets there, not in the agent's own /proc/net).
fn inet_socket_inodes(p: &procfs::process::Process) -> HashSet<u64> {
    let tcp = [p.tcp(), p.tcp6()].into_iter().flatten().flatten();
    let udp = [p.udp(), p.udp6()].into_iter().flatten().flatten();
    tcp.map(|e| e.inode).chain(udp.map(|e| e.inode)).collect()
}

/// Which of fds 0, 1, 2 of `pid` are inet sockets (a shell talking to the network directly
/// is the mark of a reverse shell). None when the process cannot be read.
pub fn stdio_inet_sockets(pid: u32) -> Option<Vec<u32>> {
    let p = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?;
    let mut sock = Vec::new();
    let mut readable = false;
    for fd in 0..3u32 {
        let Ok(info) = p.fd_from_fd(fd as i32) else {
            continue;
        };
        readable = true;
        if let procfs::process::FDTarget::Socket(inode) = info.target {
            sock.push((fd, inode));
        }
    }
    if !readable {
        return None;
    }
    if sock.is_empty() {
        return Some(Vec::new());
    }
    let inet = inet_socket_inodes(&p);
    Some(
        sock.into_iter()
            .filter(|(_, i)| inet.contains(i))
            .map(|(fd, _)| fd)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process may name itself anything (its executable's name, or prctl): parentheses and
    /// spaces in comm must not confuse the stat reader (procfs splits at the last ')'; the
    /// proc_text fuzzer found that it panics on framings only a non-kernel writer produces).
    #[test]
    fn a_hostile_comm_is_read_back_as_it_is() {
        let d = tempfile::tempdir().unwrap();
        let exe = d.path().join(") S 1 (x");
        // A link, not a copy: the kernel names the process after the path it was asked to run,
        // and a file just written can be busy for exec while another test thread forks.
        std::os::unix::fs::symlink("/bin/sleep", &exe).unwrap();
        let mut child = std::process::Command::new(&exe).arg("30").spawn().unwrap();
        let got = read_one(child.id());
        let _ = child.kill();
        let _ = child.wait();
        let p = got.expect("the process is read");
        assert_eq!(&*p.comm, ") S 1 (x");
        assert_eq!(p.ppid, std::process::id());
    }

    #[test]
    fn container_ids_from_cgroup_paths() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            container_id(&format!("0::/system.slice/docker-{id}.scope\n")).as_deref(),
            Some("0123456789ab")
        );
        assert_eq!(
            container_id(&format!("12:pids:/docker/{id}\n")).as_deref(),
            Some("0123456789ab")
        );
        assert_eq!(
            container_id("0::/user.slice/user-1000.slice/session-3.scope\n"),
            None
        );
    }

    #[test]
    fn tty_names() {
        assert_eq!(tty_name(0), None);
        assert_eq!(tty_name((136 << 8) | 3).as_deref(), Some("pts/3"));
        assert_eq!(tty_name((4 << 8) | 1).as_deref(), Some("tty1"));
    }

    #[test]
    fn reads_this_process_and_a_socket_on_stdio() {
        let me = read_one(std::process::id()).unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(!me.exe.is_empty());
        assert!(me.start_ns > 0);
        // A child whose stdin is a connected TCP socket shows up as such.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let fd: std::os::fd::OwnedFd = s.into();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .stdin(std::process::Stdio::from(fd))
            .spawn()
            .unwrap();
        let found = stdio_inet_sockets(child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(found, Some(vec![0]));
    }
}
