//! Live audit records from the kernel's read-only multicast group (NETLINK_AUDIT,
//! AUDIT_NLGRP_READLOG; needs CAP_AUDIT_READ), for hosts without auditd. Listening there never
//! takes the audit socket from auditd, so both can run at once.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;

use super::follow::{Assembler, FollowOptions, FollowStats, Follower};

const NETLINK_AUDIT: libc::c_int = 9;
const AUDIT_NLGRP_READLOG: u32 = 1;
/// MAX_AUDIT_MESSAGE_LENGTH in the kernel, plus the netlink header.
const RECV_BYTES: usize = 8970 + 16;
const NLMSG_HDRLEN: usize = 16;

/// Record type numbers (linux/audit.h, libaudit.h) to the names auditd writes.
pub fn type_name(t: u16) -> String {
    let name = match t {
        1006 => "LOGIN",
        1100 => "USER_AUTH",
        1101 => "USER_ACCT",
        1102 => "USER_MGMT",
        1103 => "CRED_ACQ",
        1104 => "CRED_DISP",
        1105 => "USER_START",
        1106 => "USER_END",
        1107 => "USER_AVC",
        1108 => "USER_CHAUTHTOK",
        1109 => "USER_ERR",
        1110 => "CRED_REFR",
        1112 => "USER_LOGIN",
        1113 => "USER_LOGOUT",
        1114 => "ADD_USER",
        1115 => "DEL_USER",
        1116 => "ADD_GROUP",
        1117 => "DEL_GROUP",
        1119 => "CHGRP_ID",
        1123 => "USER_CMD",
        1124 => "USER_TTY",
        1125 => "CHUSER_ID",
        1127 => "SYSTEM_BOOT",
        1128 => "SYSTEM_SHUTDOWN",
        1129 => "SYSTEM_RUNLEVEL",
        1130 => "SERVICE_START",
        1131 => "SERVICE_STOP",
        1132 => "GRP_MGMT",
        1133 => "GRP_CHAUTHTOK",
        1135 => "ACCT_LOCK",
        1136 => "ACCT_UNLOCK",
        1300 => "SYSCALL",
        1302 => "PATH",
        1305 => "CONFIG_CHANGE",
        1306 => "SOCKADDR",
        1307 => "CWD",
        1309 => "EXECVE",
        1320 => "EOE",
        1321 => "BPRM_FCAPS",
        1322 => "CAPSET",
        1323 => "MMAP",
        1327 => "PROCTITLE",
        1330 => "KERN_MODULE",
        1334 => "BPF",
        1400 => "AVC",
        1401 => "SELINUX_ERR",
        1500 => "APPARMOR_AUDIT",
        1501 => "APPARMOR_ALLOWED",
        1502 => "APPARMOR_DENIED",
        1700 => "ANOM_PROMISCUOUS",
        1701 => "ANOM_ABEND",
        1702 => "ANOM_LINK",
        1703 => "ANOM_CREAT",
        2100 => "ANOM_LOGIN_FAILURES",
        2101 => "ANOM_LOGIN_TIME",
        2102 => "ANOM_LOGIN_SESSIONS",
        2103 => "ANOM_LOGIN_ACCT",
        2104 => "ANOM_LOGIN_LOCATION",
        _ => return format!("UNKNOWN[{t}]"),
    };
    name.to_string()
}

/// Splits one datagram into (type, text) messages. Bad lengths end the walk.
pub fn messages(buf: &[u8]) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    let mut off = 0;
    while buf.len() >= off + NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            // Some kernels set nlmsg_len to the payload length only: take the rest.
            let payload = &buf[off + NLMSG_HDRLEN..];
            out.push((ty, text(payload)));
            break;
        }
        out.push((ty, text(&buf[off + NLMSG_HDRLEN..off + len])));
        off += (len + 3) & !3;
    }
    out
}

fn text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim_end().to_string()
}

fn open_socket() -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_AUDIT,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; zeroed is a valid starting value.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = AUDIT_NLGRP_READLOG;
    // SAFETY: addr is a valid sockaddr_nl of the size given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // A receive timeout lets the thread notice a dropped receiver and flush stale events.
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: tv is a valid timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// Follows the kernel's audit multicast group. Fails at once (e.g. without CAP_AUDIT_READ)
/// rather than in the background.
pub fn follow_multicast(opts: FollowOptions) -> std::io::Result<Follower> {
    let fd = open_socket()?;
    let (tx, rx) = mpsc::channel(opts.capacity.max(1));
    let stats = Arc::new(FollowStats::default());
    let mut asm = Assembler::new(tx, stats.clone(), opts.flush_after);
    std::thread::Builder::new()
        .name("audit-multicast".into())
        .spawn(move || run(fd, &mut asm))?;
    Ok(Follower { events: rx, stats })
}

fn run(fd: OwnedFd, asm: &mut Assembler) {
    let mut buf = vec![0u8; RECV_BYTES];
    while !asm.closed() {
        // SAFETY: buf is valid for RECV_BYTES bytes.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => {}
                // The kernel dropped messages for us: count them as lost.
                Some(libc::ENOBUFS) => {
                    asm.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    tracing::error!("audit multicast socket: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        } else {
            for (ty, msg) in messages(&buf[..n as usize]) {
                if !asm.line(&format!("type={} msg={msg}", type_name(ty))) {
                    return;
                }
            }
        }
        if !asm.flush(false) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_datagrams_and_names_types() {
        let payload = b"audit(1.5:9): pid=1 msg='op=x exe=\"/usr/bin/sudo\" res=success'\0";
        let mut d = Vec::new();
        d.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        d.extend_from_slice(&1123u16.to_ne_bytes());
        d.extend_from_slice(&[0u8; 10]);
        d.extend_from_slice(payload);
        let m = messages(&d);
        assert_eq!(m.len(), 1);
        assert_eq!(type_name(m[0].0), "USER_CMD");
        let line = format!("type={} msg={}", type_name(m[0].0), m[0].1);
        let r = crate::audit::record::parse_line(&line).unwrap();
        assert_eq!((r.serial, r.get("exe")), (9, Some("/usr/bin/sudo")));
        assert_eq!(type_name(4242), "UNKNOWN[4242]");
        assert!(messages(&[1, 2, 3]).is_empty());
    }
}
