//! `sentinel-workload`: performs one kind of activity on request, so that end-to-end tests and
//! benchmarks can cause exactly the kernel events they then look for. Prints facts the caller
//! needs (child pids) on stdout, one `key=value` per line. Exit code 0 when every step ran
//! (a step expected to fail, like a refused connect, counts as ran).

use std::ffi::CString;
use std::io::Write;

fn cstr(s: &str) -> CString {
    CString::new(s).expect("argument without NUL")
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn say(k: &str, v: impl std::fmt::Display) {
    println!("{k}={v}");
    let _ = std::io::stdout().flush();
}

fn main() {
    // args_os: tests pass non-UTF-8 arguments on purpose.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    // SAFETY (for the whole match): plain syscalls on valid, NUL-terminated buffers we own.
    unsafe {
        match a(0) {
            "open" => {
                let fd = libc::open(cstr(a(1)).as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                say("ret", if fd < 0 { -errno() } else { fd });
            }
            "open-storm" => {
                // open-storm PATH COUNT
                let p = cstr(a(1));
                let n: u64 = a(2).parse().unwrap_or(100_000);
                for _ in 0..n {
                    let fd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                    if fd >= 0 {
                        libc::close(fd);
                    }
                }
            }
            "exec-storm" => {
                // exec-storm COUNT: fork + exec /bin/true
                let n: u64 = a(1).parse().unwrap_or(1000);
                let t = cstr("/bin/true");
                let argv = [t.as_ptr(), std::ptr::null()];
                for _ in 0..n {
                    let pid = libc::fork();
                    if pid == 0 {
                        libc::execv(t.as_ptr(), argv.as_ptr());
                        libc::_exit(127);
                    }
                    let mut st = 0;
                    libc::waitpid(pid, &mut st, 0);
                }
            }
            "connect" | "connect-storm" => {
                // connect PORT [COUNT]
                let port: u16 = a(1).parse().unwrap_or(1);
                let n: u64 = if a(0) == "connect" {
                    1
                } else {
                    a(2).parse().unwrap_or(1000)
                };
                for _ in 0..n {
                    let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                    let sa = libc::sockaddr_in {
                        sin_family: libc::AF_INET as u16,
                        sin_port: port.to_be(),
                        sin_addr: libc::in_addr {
                            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
                        },
                        sin_zero: [0; 8],
                    };
                    let r = libc::connect(
                        s,
                        &sa as *const _ as *const libc::sockaddr,
                        size_of::<libc::sockaddr_in>() as u32,
                    );
                    if n == 1 {
                        say("ret", if r < 0 { -errno() } else { r });
                    }
                    libc::close(s);
                }
            }
            "setuid-drop" => {
                // Drop to nobody, then try to regain root: the second call fails with EPERM.
                let r1 = libc::setresuid(65534, 65534, 65534);
                say("drop", if r1 < 0 { -errno() } else { r1 });
                let r2 = libc::setuid(0);
                say("regain", if r2 < 0 { -errno() } else { r2 });
            }
            "ptrace" => {
                let child = libc::fork();
                if child == 0 {
                    libc::pause();
                    libc::_exit(0);
                }
                say("child", child);
                let r = libc::ptrace(libc::PTRACE_ATTACH, child, 0, 0);
                say("ret", if r < 0 { -errno() } else { r as i32 });
                let mut st = 0;
                libc::waitpid(child, &mut st, 0);
                libc::ptrace(libc::PTRACE_DETACH, child, 0, 0);
                libc::kill(child, libc::SIGKILL);
                libc::waitpid(child, &mut st, 0);
            }
            "memfd" => {
                let fd = libc::memfd_create(cstr(a(1)).as_ptr(), libc::MFD_CLOEXEC);
                say("ret", if fd < 0 { -errno() } else { fd });
            }
            "unshare" => {
                let r = libc::unshare(libc::CLONE_NEWUTS);
                say("ret", if r < 0 { -errno() } else { r });
            }
            "kill" => {
                let child = libc::fork();
                if child == 0 {
                    libc::pause();
                    libc::_exit(0);
                }
                say("child", child);
                let r = libc::kill(child, libc::SIGTERM);
                say("ret", if r < 0 { -errno() } else { r });
                let mut st = 0;
                libc::waitpid(child, &mut st, 0);
            }
            "fileops" => {
                // fileops DIR: create, chmod, chown, rename, unlink a file in DIR.
                let dir = a(1);
                let f1 = format!("{dir}/victim");
                let f2 = format!("{dir}/renamed");
                let fd = libc::open(
                    cstr(&f1).as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o600,
                );
                libc::close(fd);
                let c1 = cstr(&f1);
                let c2 = cstr(&f2);
                say(
                    "chmod",
                    libc::fchmodat(libc::AT_FDCWD, c1.as_ptr(), 0o640, 0),
                );
                say(
                    "chown",
                    libc::fchownat(libc::AT_FDCWD, c1.as_ptr(), 65534, 65534, 0),
                );
                say(
                    "rename",
                    libc::renameat2(libc::AT_FDCWD, c1.as_ptr(), libc::AT_FDCWD, c2.as_ptr(), 0),
                );
                say("unlink", libc::unlinkat(libc::AT_FDCWD, c2.as_ptr(), 0));
            }
            "thread-exec" => {
                // Exec from a second thread: the kernel moves the thread to the leader's pid.
                let t = std::thread::spawn(|| {
                    let prog = cstr("/bin/true");
                    let arg = cstr("thread-exec-marker");
                    let argv = [prog.as_ptr(), arg.as_ptr(), std::ptr::null()];
                    libc::execv(prog.as_ptr(), argv.as_ptr());
                });
                let _ = t.join();
                libc::_exit(1);
            }
            "exit" => {
                libc::_exit(a(1).parse().unwrap_or(0));
            }
            other => {
                eprintln!("sentinel-workload: unknown action {other:?}");
                std::process::exit(2);
            }
        }
    }
}
