//! `sentinel-workload`: performs one kind of activity on request, so that end-to-end tests and
//! benchmarks can cause exactly the kernel events they then look for. Prints facts the caller
//! needs (child pids; for storms `count` and `elapsed_ns`) on stdout, one `key=value` per
//! line. Exit code 0 when every step ran (a step expected to fail, like a refused connect,
//! counts as ran).

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
                // open-storm PATH COUNT [MAX_SECS] [RATE] [PATH...]: open+close COUNT times,
                // cycling over the paths, stopping early after MAX_SECS; RATE (opens per
                // second, 0 = unlimited) paces it for capacity steps.
                let mut paths = vec![cstr(a(1))];
                paths.extend(args.iter().skip(5).map(|p| cstr(p)));
                let n: u64 = a(2).parse().unwrap_or(100_000);
                let mut bound = Bound::new(a(3), a(4));
                let mut done = 0u64;
                while done < n && bound.go(done) {
                    let fd = libc::open(
                        paths[(done % paths.len() as u64) as usize].as_ptr(),
                        libc::O_RDONLY | libc::O_CLOEXEC,
                    );
                    if fd >= 0 {
                        libc::close(fd);
                    }
                    done += 1;
                }
                bound.report(done);
            }
            "dir-storm" => {
                // dir-storm DIR COUNT: opens DIR with O_DIRECTORY COUNT times, keeping the
                // previous one open each time so the descriptors differ (a walker's pattern).
                let p = cstr(a(1));
                let n: u64 = a(2).parse().unwrap_or(100);
                let mut prev = -1;
                for _ in 0..n {
                    let fd = libc::open(
                        p.as_ptr(),
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    );
                    if prev >= 0 {
                        libc::close(prev);
                    }
                    prev = fd;
                }
                if prev >= 0 {
                    libc::close(prev);
                }
            }
            "exec-storm" => {
                // exec-storm COUNT [MAX_SECS]: fork + exec /bin/true
                let n: u64 = a(1).parse().unwrap_or(1000);
                let mut bound = Bound::new(a(2), "");
                let t = cstr("/bin/true");
                let argv = [t.as_ptr(), std::ptr::null()];
                let mut done = 0u64;
                while done < n && bound.go(done) {
                    let pid = libc::fork();
                    if pid == 0 {
                        libc::execv(t.as_ptr(), argv.as_ptr());
                        libc::_exit(127);
                    }
                    let mut st = 0;
                    libc::waitpid(pid, &mut st, 0);
                    done += 1;
                }
                bound.report(done);
            }
            "devel" => {
                // devel DIR COUNT [MAX_SECS]: a busy developer: compile a small C file with
                // gcc, then churn files (create, write, rename, unlink). Reports the opens and
                // execs made by this process and its direct children, which observers must see.
                let n: u64 = a(2).parse().unwrap_or(20);
                let mut bound = Bound::new(a(3), "");
                let (opens, execs, done) = devel(a(1), n, &mut bound);
                say("opens", opens);
                say("execs", execs);
                bound.report(done);
            }
            "connect" | "connect-storm" => {
                // connect PORT | connect-storm PORT COUNT [MAX_SECS]; PORT 0: connect to a
                // listener of our own on 127.0.0.1 that accepts and closes.
                let mut port: u16 = a(1).parse().unwrap_or(1);
                let single = a(0) == "connect";
                let n: u64 = if single {
                    1
                } else {
                    a(2).parse().unwrap_or(1000)
                };
                let mut bound = Bound::new(if single { "" } else { a(3) }, "");
                if port == 0 {
                    port = listen_loopback();
                }
                let mut done = 0u64;
                while done < n && bound.go(done) {
                    let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                    let sa = loopback(port);
                    let r = libc::connect(
                        s,
                        &sa as *const _ as *const libc::sockaddr,
                        size_of::<libc::sockaddr_in>() as u32,
                    );
                    if single {
                        say("ret", if r < 0 { -errno() } else { r });
                    }
                    // Reset instead of TIME_WAIT, so that storms do not exhaust local ports.
                    let lg = libc::linger {
                        l_onoff: 1,
                        l_linger: 0,
                    };
                    libc::setsockopt(
                        s,
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        &lg as *const _ as *const libc::c_void,
                        size_of::<libc::linger>() as u32,
                    );
                    libc::close(s);
                    done += 1;
                }
                if !single {
                    bound.report(done);
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
            "utime" => {
                // utime PATH: set atime to 1e9 s + 5 ns and leave mtime alone; then the file
                // by fd with NULL times (now); then a missing file (ENOENT).
                let c = cstr(a(1));
                let times = [
                    libc::timespec {
                        tv_sec: 1_000_000_000,
                        tv_nsec: 5,
                    },
                    libc::timespec {
                        tv_sec: 0,
                        tv_nsec: libc::UTIME_OMIT,
                    },
                ];
                let r = libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0);
                say("set", if r < 0 { -errno() } else { r });
                let fd = libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                say("fd", fd);
                let r = libc::syscall(
                    libc::SYS_utimensat,
                    fd,
                    std::ptr::null::<libc::c_char>(),
                    std::ptr::null::<libc::timespec>(),
                    0,
                );
                say("now", if r < 0 { -errno() } else { r as i32 });
                let missing = cstr(&format!("{}.missing", a(1)));
                let r = libc::utimensat(libc::AT_FDCWD, missing.as_ptr(), times.as_ptr(), 0);
                say("missing", if r < 0 { -errno() } else { r });
            }
            "xattr" => {
                // xattr PATH: give PATH cap_net_raw+ep, set and remove a user attribute by
                // fd, then remove an attribute that is not there (ENODATA).
                let c = cstr(a(1));
                // vfs_cap_data revision 2, effective, permitted = cap_net_raw (13).
                let caps: [u32; 5] = [0x0200_0001, 1 << 13, 0, 0, 0];
                let name = cstr("security.capability");
                let r = libc::setxattr(c.as_ptr(), name.as_ptr(), caps.as_ptr().cast(), 20, 0);
                say("setcap", if r < 0 { -errno() } else { r });
                let fd = libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                say("fd", fd);
                let user = cstr("user.sentinel");
                let r = libc::fsetxattr(fd, user.as_ptr(), b"v".as_ptr().cast(), 1, 0);
                say("fset", if r < 0 { -errno() } else { r });
                let r = libc::fremovexattr(fd, user.as_ptr());
                say("fremove", if r < 0 { -errno() } else { r });
                let r = libc::removexattr(c.as_ptr(), user.as_ptr());
                say("missing", if r < 0 { -errno() } else { r });
            }
            "link" => {
                // link DIR: DIR/target, a symlink and a hard link to it, and a hard link over
                // an existing name (EEXIST).
                let dir = a(1);
                let target = cstr(&format!("{dir}/target"));
                let fd = libc::open(
                    target.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o600,
                );
                libc::close(fd);
                let sym = cstr(&format!("{dir}/sym"));
                let hard = cstr(&format!("{dir}/hard"));
                say("symlink", libc::symlink(target.as_ptr(), sym.as_ptr()));
                say(
                    "link",
                    libc::linkat(
                        libc::AT_FDCWD,
                        target.as_ptr(),
                        libc::AT_FDCWD,
                        hard.as_ptr(),
                        0,
                    ),
                );
                let r = libc::linkat(
                    libc::AT_FDCWD,
                    target.as_ptr(),
                    libc::AT_FDCWD,
                    hard.as_ptr(),
                    0,
                );
                say("again", if r < 0 { -errno() } else { r });
            }
            "truncate" => {
                // truncate PATH: truncate to 10 bytes by path, then to 3 by fd; prints
                // `held=1` and keeps the fd open until stdin closes (so that the agent can
                // read the fd's path while the process is there).
                let c = cstr(a(1));
                let r = libc::truncate(c.as_ptr(), 10);
                say("path", if r < 0 { -errno() } else { r });
                let fd = libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                say("fd", fd);
                let r = libc::ftruncate(fd, 3);
                say("fd_ret", if r < 0 { -errno() } else { r });
                let r = libc::truncate(c.as_ptr(), -1);
                say("negative", if r < 0 { -errno() } else { r });
                say("held", 1);
                let mut sink = [0u8; 64];
                while libc::read(0, sink.as_mut_ptr().cast(), sink.len()) > 0 {}
            }
            "process-vm" => {
                // Read and write a forked child's memory; then a pid that cannot exist (ESRCH).
                let child = libc::fork();
                if child == 0 {
                    libc::pause();
                    libc::_exit(0);
                }
                say("child", child);
                let mut word = 0u64;
                let local = libc::iovec {
                    iov_base: (&mut word as *mut u64).cast(),
                    iov_len: 8,
                };
                // The child is a copy of us: the same address holds the same variable there.
                let remote = local;
                let r = libc::process_vm_readv(child, &local, 1, &remote, 1, 0);
                say("read", if r < 0 { -errno() as isize } else { r });
                let r = libc::process_vm_writev(child, &local, 1, &remote, 1, 0);
                say("write", if r < 0 { -errno() as isize } else { r });
                let r = libc::process_vm_readv(i32::MAX, &local, 1, &remote, 1, 0);
                say("gone", if r < 0 { -errno() as isize } else { r });
                libc::kill(child, libc::SIGKILL);
                let mut st = 0;
                libc::waitpid(child, &mut st, 0);
            }
            "prctl" => {
                // prctl NAME: rename this thread; other options must not be reported.
                let name = cstr(a(1));
                let r = libc::prctl(libc::PR_SET_DUMPABLE, 1);
                say("dumpable", r);
                let r = libc::prctl(libc::PR_SET_NAME, name.as_ptr());
                say("ret", if r < 0 { -errno() } else { r });
                let mut buf = [0u8; 16];
                let r = libc::prctl(libc::PR_GET_NAME, buf.as_mut_ptr());
                say("get", r);
            }
            "sockets" => {
                // A packet socket and a raw ICMP socket (reported), a TCP and a raw netlink
                // socket (dropped in the kernel), and a raw socket with a bad protocol.
                let packet = libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    (libc::ETH_P_ALL as u16).to_be() as i32,
                );
                say("packet", if packet < 0 { -errno() } else { packet });
                let icmp = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
                say("icmp", if icmp < 0 { -errno() } else { icmp });
                let tcp = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                say("tcp", if tcp < 0 { -errno() } else { tcp });
                let nl = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, 0);
                say("netlink", if nl < 0 { -errno() } else { nl });
                let bad = libc::socket(libc::AF_INET, libc::SOCK_RAW, 300);
                say("bad", if bad < 0 { -errno() } else { bad });
            }
            "bind-listen" => {
                // Bind a TCP socket to 127.0.0.1:0 and listen with a backlog of 7; binding
                // it again fails (EINVAL).
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                say("fd", fd);
                let sa = libc::sockaddr_in {
                    sin_family: libc::AF_INET as u16,
                    sin_port: 0,
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
                    },
                    sin_zero: [0; 8],
                };
                let len = size_of::<libc::sockaddr_in>() as u32;
                let r = libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), len);
                say("bind", if r < 0 { -errno() } else { r });
                let r = libc::listen(fd, 7);
                say("listen", if r < 0 { -errno() } else { r });
                let r = libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), len);
                say("again", if r < 0 { -errno() } else { r });
            }
            "delete-module" => {
                let r = libc::syscall(
                    libc::SYS_delete_module,
                    cstr(a(1)).as_ptr(),
                    libc::O_NONBLOCK,
                );
                say("ret", if r < 0 { -errno() } else { r as i32 });
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
            "hold" => {
                // hold COUNT SECS: COUNT live processes at once (forked children that sleep),
                // `ready=1` once all exist, then after SECS they are killed and reaped.
                let n: usize = a(1).parse().unwrap_or(1000);
                let secs: u32 = a(2).parse().unwrap_or(5);
                let mut kids = Vec::with_capacity(n);
                for _ in 0..n {
                    let pid = libc::fork();
                    if pid == 0 {
                        // The parent kills us; the alarm is a backstop if it dies first.
                        libc::alarm(secs + 60);
                        loop {
                            libc::pause();
                        }
                    }
                    if pid < 0 {
                        break;
                    }
                    kids.push(pid);
                }
                say("count", kids.len());
                say("ready", 1);
                libc::sleep(secs);
                for pid in &kids {
                    libc::kill(*pid, libc::SIGKILL);
                }
                for pid in &kids {
                    let mut st = 0;
                    libc::waitpid(*pid, &mut st, 0);
                }
            }
            other => {
                eprintln!("sentinel-workload: unknown action {other:?}");
                std::process::exit(2);
            }
        }
    }
}

/// Bounds a storm in time (MAX_SECS, default unbounded) and paces it (RATE per second, 0 or
/// empty = as fast as possible), then reports `count` and `elapsed_ns`.
struct Bound {
    start: std::time::Instant,
    max: Option<std::time::Duration>,
    rate: f64,
}

impl Bound {
    fn new(max_secs: &str, rate: &str) -> Bound {
        Bound {
            start: std::time::Instant::now(),
            max: max_secs
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0)
                .map(std::time::Duration::from_secs_f64),
            rate: rate.parse::<f64>().ok().filter(|r| *r > 0.0).unwrap_or(0.0),
        }
    }

    /// Whether to do operation number `done` (0-based); sleeps first when ahead of the rate.
    fn go(&mut self, done: u64) -> bool {
        // Checking the clock every operation would cost more than a cached open.
        if !done.is_multiple_of(64) {
            return true;
        }
        let el = self.start.elapsed();
        if self.max.is_some_and(|m| el >= m) {
            return false;
        }
        if self.rate > 0.0 {
            let due = std::time::Duration::from_secs_f64(done as f64 / self.rate);
            if due > el {
                std::thread::sleep(due - el);
            }
        }
        true
    }

    /// Prints `count`, `elapsed_ns` and `cpu_ns`: the CPU time (user + system) of this
    /// process and its waited-for children, which on a busy host measures the cost of each
    /// operation better than the wall clock.
    fn report(&self, done: u64) {
        say("count", done);
        say("elapsed_ns", self.start.elapsed().as_nanos());
        say(
            "cpu_ns",
            cpu_ns(libc::RUSAGE_SELF) + cpu_ns(libc::RUSAGE_CHILDREN),
        );
    }
}

fn cpu_ns(who: i32) -> u128 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let ns = |t: libc::timeval| t.tv_sec as u128 * 1_000_000_000 + t.tv_usec as u128 * 1000;
    ns(ru.ru_utime) + ns(ru.ru_stime)
}

fn loopback(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    }
}

/// Binds 127.0.0.1 on a free port and accepts (and drops) connections on a thread. The
/// backlog is deep (std's is 128): on a busy host the accepting thread falls behind, and a
/// full queue drops SYNs, which stalls a connect for a one-second retransmit.
fn listen_loopback() -> u16 {
    // SAFETY: plain socket calls on a descriptor we own, with correctly sized addresses.
    unsafe {
        let l = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let sa = loopback(0);
        let mut len = size_of::<libc::sockaddr_in>() as u32;
        if l < 0
            || libc::bind(l, &sa as *const _ as *const libc::sockaddr, len) < 0
            || libc::listen(l, 4096) < 0
        {
            eprintln!(
                "sentinel-workload: cannot listen on 127.0.0.1: errno {}",
                errno()
            );
            std::process::exit(1);
        }
        let mut bound = loopback(0);
        libc::getsockname(l, &mut bound as *mut _ as *mut libc::sockaddr, &mut len);
        std::thread::spawn(move || {
            loop {
                let c = libc::accept4(l, std::ptr::null_mut(), std::ptr::null_mut(), 0);
                if c >= 0 {
                    libc::close(c);
                }
            }
        });
        u16::from_be(bound.sin_port)
    }
}

/// One developer loop per iteration: write a C file, compile it, churn 16 files.
/// Returns (opens, execs, iterations) of this process and its direct children.
unsafe fn devel(dir: &str, n: u64, bound: &mut Bound) -> (u64, u64, u64) {
    const CHURN: u64 = 16;
    let src = cstr(&format!("{dir}/unit.c"));
    let obj = format!("{dir}/unit.o");
    // An absolute path: execvp would also try (and report) the PATH entries that miss.
    let gcc = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| format!("{d}/gcc"))
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| "/usr/bin/gcc".into());
    let argv_s: Vec<CString> = [
        gcc.as_str(),
        "-O1",
        "-c",
        &format!("{dir}/unit.c"),
        "-o",
        &obj,
    ]
    .iter()
    .map(|s| cstr(s))
    .collect();
    let mut argv: Vec<*const libc::c_char> = argv_s.iter().map(|s| s.as_ptr()).collect();
    argv.push(std::ptr::null());
    let (mut opens, mut execs, mut done) = (0u64, 0u64, 0u64);
    // The pacing check runs every 64 iterations; check the clock every iteration instead.
    while done < n && bound.go(0) {
        unsafe {
            let code = format!(
                "#include <stdio.h>\nstatic int f{done}(int x) {{ return x * {done} + 1; }}\n\
                 int main(void) {{ int s = 0; for (int i = 0; i < 100; i++) s += f{done}(i);\n\
                 printf(\"%d\\n\", s); return 0; }}\n"
            );
            write_file(&src, code.as_bytes());
            opens += 1;
            let pid = libc::fork();
            if pid == 0 {
                libc::execv(argv[0], argv.as_ptr());
                libc::_exit(127);
            }
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
            execs += 1;
            for i in 0..CHURN {
                let a = cstr(&format!("{dir}/churn{i}.tmp"));
                let b = cstr(&format!("{dir}/churn{i}.txt"));
                write_file(&a, b"some notes\n");
                libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), 0);
                libc::unlinkat(libc::AT_FDCWD, b.as_ptr(), 0);
                opens += 1;
            }
        }
        done += 1;
    }
    (opens, execs, done)
}

/// Creates or truncates `path` and writes `data` (one open).
unsafe fn write_file(path: &CString, data: &[u8]) {
    unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_CREAT | libc::O_TRUNC | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644,
        );
        if fd >= 0 {
            libc::write(fd, data.as_ptr() as *const libc::c_void, data.len());
            libc::close(fd);
        }
    }
}
