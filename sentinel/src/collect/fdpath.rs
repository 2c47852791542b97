//! Paths of the file descriptors some records name instead of a path (ftruncate, fsetxattr,
//! fremovexattr, finit_module) or next to a relative path (openat and unlinkat under a
//! directory fd): the kernel hooks cannot turn an fd into a path, so the drain
//! reads /proc/PID/fd/N as soon as the record arrives (within one drain interval). A process
//! that already exited, or closed the fd, leaves the fd number alone; the fd may also have
//! been reused in between, which is rare for the few milliseconds involved.

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
        // A relative path under a directory fd (openat/unlinkat by find, tar -C, fts walks)
        // means nothing without that directory: it is made absolute here, while the fd is
        // still open, rather than against the working directory later.
        Payload::Open { dfd, path, .. } | Payload::Unlink { dfd, path, .. }
            if *dfd >= 0 && !path.is_empty() && !path.as_bytes().starts_with(b"/") =>
        {
            if let Some(dir) = fd_path(pid, *dfd) {
                let mut full = dir.0;
                if !full.ends_with(b"/") {
                    full.push(b'/');
                }
                full.extend_from_slice(path.as_bytes());
                *path = RawStr(full);
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
    fn relative_paths_under_a_directory_fd_become_absolute() {
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::File::open(dir.path()).unwrap();
        let open = |dfd: i32, path: &str| {
            let mut ev = event(Payload::Open {
                dfd,
                path: RawStr::from(path),
                flags: 0,
                mode: 0,
            });
            resolve(&mut ev);
            match ev.payload {
                Payload::Open { path, .. } => path.lossy().into_owned(),
                _ => unreachable!(),
            }
        };
        let base = dir.path().to_str().unwrap();
        assert_eq!(
            open(d.as_raw_fd(), ".aws/credentials"),
            format!("{base}/.aws/credentials")
        );
        assert_eq!(
            open(d.as_raw_fd(), "/etc/shadow"),
            "/etc/shadow",
            "absolute stays"
        );
        assert_eq!(
            open(-100, "notes.txt"),
            "notes.txt",
            "AT_FDCWD: the cwd's business"
        );
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
