//! Starting a script the way a login would: a fresh process joins the scenario's network
//! namespace, writes the user's uid to /proc/self/loginuid (the kernel then gives it a new
//! audit session), drops to the user unless it plays root, and executes the script. The
//! session id is read back, so each anomaly can be attributed to the scenario that caused it.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// How a process is started.
pub struct Launch<'a> {
    pub program: &'a Path,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: &'a Path,
    /// Write this login uid (a new audit session), if any.
    pub login_uid: Option<u32>,
    /// Become this (uid, gid, supplementary groups) before exec.
    pub drop_to: Option<(u32, u32, Vec<u32>)>,
    /// Join this network namespace first.
    pub netns: Option<&'a std::fs::File>,
    /// Where stdout and stderr go.
    pub log: &'a Path,
}

/// Raw-syscall helper for pre_exec: errno as an io::Error when `r` is negative.
fn check(r: libc::c_long) -> std::io::Result<()> {
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn spawn(l: &Launch) -> anyhow::Result<Child> {
    use std::os::fd::AsRawFd;
    let log = std::fs::File::create(l.log).with_context(|| format!("{}", l.log.display()))?;
    let mut c = Command::new(l.program);
    c.args(&l.args)
        .env_clear()
        .envs(l.env.iter().map(|(k, v)| (k, v)))
        .current_dir(l.cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let netns = l.netns.map(|f| f.as_raw_fd());
    let login = l.login_uid.map(|u| u.to_string());
    let drop_to = l.drop_to.clone();
    // SAFETY: the closure only makes raw syscalls (async-signal-safe) on data prepared
    // before the fork.
    unsafe {
        c.pre_exec(move || {
            if let Some(fd) = netns {
                check(libc::setns(fd, libc::CLONE_NEWNET) as libc::c_long)?;
            }
            if let Some(uid) = &login {
                let fd = libc::open(c"/proc/self/loginuid".as_ptr(), libc::O_WRONLY);
                check(fd as libc::c_long)?;
                let n = libc::write(fd, uid.as_ptr().cast(), uid.len());
                libc::close(fd);
                if n != uid.len() as isize {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some((uid, gid, groups)) = &drop_to {
                check(libc::setgroups(groups.len(), groups.as_ptr()) as libc::c_long)?;
                check(libc::setgid(*gid) as libc::c_long)?;
                check(libc::setuid(*uid) as libc::c_long)?;
            }
            Ok(())
        });
    }
    c.spawn()
        .with_context(|| format!("starting {}", l.program.display()))
}

/// The audit session of a running (or not yet reaped) process.
pub fn session_of(pid: u32) -> anyhow::Result<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/sessionid"))
        .with_context(|| format!("/proc/{pid}/sessionid"))?;
    s.trim().parse().context("session id")
}

/// Waits for `child` until `limit`; on time-out kills it. Returns its exit code, None when
/// it had to be killed.
pub fn wait(child: &mut Child, limit: Duration) -> anyhow::Result<Option<i32>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st.code().unwrap_or(128 + st_signal(&st))));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn st_signal(st: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.signal().unwrap_or(0)
}

/// Live (not zombie) processes of an audit session.
pub fn session_members(session: u32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let sid = std::fs::read_to_string(format!("/proc/{pid}/sessionid"));
        if sid.ok().and_then(|s| s.trim().parse::<u32>().ok()) != Some(session) {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next());
        if state != Some(Some('Z')) {
            out.push(pid);
        }
    }
    out
}

/// Kills, by pid, what a scenario left running in its session; returns how many.
pub fn kill_session(session: u32) -> usize {
    let mut killed = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = session_members(session);
        if left.is_empty() || Instant::now() > deadline {
            return killed;
        }
        for pid in left {
            // SAFETY: kill on a pid of a session this run created.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
