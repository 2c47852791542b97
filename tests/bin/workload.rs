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
