//! Paths of the file descriptors some records name instead of a path (ftruncate, fsetxattr,
//! fremovexattr, finit_module): the kernel hooks cannot turn an fd into a path, so the drain
//! reads /proc/PID/fd/N as soon as the record arrives (within one drain interval). A process
//! that already exited, or closed the fd, leaves the fd number alone; the fd may also have
//! been reused in between, which is rare for the few milliseconds involved.
//!
//! A path relative to a directory fd (openat/unlinkat by tar -C, find, fts walks) is *not*
//! placed here: a walker reuses its directory fds within microseconds, so by the time the
//! drain read the link it often named the walk's next directory (a tar of /home placed most
//! of its files, other users' keys among them, under the wrong home, differently from run to
//! run). The process table places them from the ordered event stream instead
//! (`ProcessTable::placed_path`).

use std::os::unix::ffi::OsStringExt;

use crate::event::{Event, Payload, RawStr};

/// Fills in the path of the fd a record names, where it can. One readlink, only for the
/// kinds that need it.
pub fn resolve(ev: &mut Event) {
    let pid = ev.pid;
    match &mut ev.payload {
        Payload::Truncate {
            path, fd: Some(fd), ..
        }
        | Payload::Xattr {
            path, fd: Some(fd), ..
        } if path.is_empty() => {
            if let Some(p) = fd_path(pid, *fd) {
                *path = p;
            }
        }
        Payload::Module {
            name,
            fd: Some(fd),
            fd_path: slot @ None,
            ..
        } => {
            if let Some(p) = fd_path(pid, *fd) {
                if name.is_empty()
                    && let Some(n) = crate::syscalls::module_name_from_path(&p.lossy())
                {
                    *name = RawStr::from(n.as_str());
                }
                *slot = Some(p);
            }
        }
        _ => {}
    }
}

fn fd_path(pid: u32, fd: i32) -> Option<RawStr> {
    if fd < 0 {
        return None;
    }
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .ok()
        .map(|p| RawStr(p.into_os_string().into_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn event(payload: Payload) -> Event {
        Event {
            id: 1,
            time_ns: 0,
            pid: std::process::id(),
            tid: std::process::id(),
            ppid: 1,
            uid: 0,
            gid: 0,
            euid: 0,
            auid: None,
            session: None,
            cgroup_id: 1,
            comm: RawStr::from("t"),
            syscall: None,
            ret: 0,
            errno: None,
            truncated: false,
            repeats: 0,
            repeat_head: false,
            payload,
        }
    }

    #[test]
    fn relative_paths_under_a_directory_fd_are_left_to_the_process_table() {
        // The fd is open and names a directory now, but the record may be older than the fd's
        // current file: the drain does not guess from /proc.
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::File::open(dir.path()).unwrap();
        let mut ev = event(Payload::Open {
            dfd: d.as_raw_fd(),
            path: RawStr::from(".ssh/id_rsa"),
            flags: 0,
            mode: 0,
        });
        resolve(&mut ev);
        match ev.payload {
            Payload::Open { path, dfd, .. } => {
                assert_eq!((path.lossy().as_ref(), dfd), (".ssh/id_rsa", d.as_raw_fd()))
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn fds_of_a_live_process_become_paths() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dummy-mod.ko.zst");
        let f = std::fs::File::create(&file).unwrap();
        let fd = f.as_raw_fd();
        let want = RawStr::from(file.to_str().unwrap());

        let mut ev = event(Payload::Truncate {
            path: RawStr::default(),
            fd: Some(fd),
            length: 0,
        });
        resolve(&mut ev);
        assert!(matches!(&ev.payload, Payload::Truncate { path, .. } if *path == want));

        let mut ev = event(Payload::Module {
            op: crate::event::ModuleOp::Load,
            name: RawStr::default(),
            fd: Some(fd),
            fd_path: None,
            params: RawStr::default(),
            size: None,
            flags: 0,
        });
        resolve(&mut ev);
        let Payload::Module { name, fd_path, .. } = &ev.payload else {
            panic!()
        };
        assert_eq!(fd_path.as_ref(), Some(&want));
        assert_eq!(name.as_bytes(), b"dummy_mod");

        // A gone process (no pid reaches i32::MAX: pid_max is at most 2^22) leaves the fd
        // number alone.
        let mut ev = event(Payload::Truncate {
            path: RawStr::default(),
            fd: Some(fd),
            length: 0,
        });
        ev.pid = i32::MAX as u32;
        resolve(&mut ev);
        assert!(
            matches!(&ev.payload, Payload::Truncate { path, fd: Some(_), .. } if path.is_empty())
        );
    }
}
