//! The host's audit state around a bench run: the auditd the bench uses (the running daemon,
//! or a private one it starts and stops), the backlog limit, and the audit rules other tools
//! left loaded. Those rules make every syscall build an audit context, which slows the
//! no-observer baseline and flatters every ratio: the report says so, and with
//! `--clear-audit-rules` they are removed for the run. Whatever the bench changed is put back
//! on every way out: success, error, panic, SIGINT and SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::observe;

/// What the bench changed on the host, to put back. Shared with the signal thread.
#[derive(Clone, Debug, Default)]
struct Restore {
    /// The private auditd the bench started.
    own_pid: Option<u32>,
    backlog_limit: u64,
    /// Other tools' rules the bench removed (`auditctl -l` lines).
    cleared: Vec<String>,
}

/// The restore of the run in progress, taken by whoever gets there first (the guard's stop,
/// its drop, or the signal thread).
static PENDING: Mutex<Option<Restore>> = Mutex::new(None);

impl Restore {
    fn apply(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        // The bench's own rule, if a failed or interrupted run left it.
        let _ = observe::auditctl(&["-d"]);
        let limit = self.backlog_limit.to_string();
        if let Err(e) = auditctl_args(&["-b", &limit]) {
            problems.push(format!("backlog limit {limit}: {e:#}"));
        }
        for rule in &self.cleared {
            let args: Vec<&str> = rule.split_whitespace().collect();
            if let Err(e) = auditctl_args(&args) {
                problems.push(format!("rule {rule:?}: {e:#}"));
            }
        }
        if let Some(pid) = self.own_pid {
            stop_process(pid)?;
        }
        if !problems.is_empty() {
            bail!(
                "could not restore the host's audit state: {}",
                problems.join("; ")
            );
        }
        Ok(())
    }
}

fn auditctl_args(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("auditctl")
        .args(args)
        .output()
        .context("running auditctl")?;
    if !out.status.success() {
        bail!(
            "auditctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// SIGTERM to `pid` (a child of ours), then waits for it to exit, reaping it.
fn stop_process(pid: u32) -> anyhow::Result<()> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: kill and waitpid take plain integers; the pid is our own child, so it cannot
    // have been reused by another process before we reap it here.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // SAFETY: as above; a null status pointer is allowed.
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        if r == pid || r < 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            bail!("auditd (pid {pid}) ignored SIGTERM for 10 s; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// On SIGINT or SIGTERM: put the host back, then exit as the signal would have.
fn install_signal_thread() -> anyhow::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        let signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM]);
        match signals {
            Ok(mut signals) => {
                std::thread::spawn(move || {
                    if let Some(sig) = signals.forever().next() {
                        let pending = PENDING.lock().map(|mut p| p.take()).unwrap_or(None);
                        if let Some(r) = pending {
                            eprintln!("bench: signal {sig}: restoring the host's audit state");
                            if let Err(e) = r.apply() {
                                eprintln!("bench: {e:#}");
                            }
                        }
                        std::process::exit(128 + sig);
                    }
                });
            }
            Err(e) => result = Err(anyhow::Error::new(e).context("installing signal handlers")),
        }
    });
    result
}

/// The rules loaded on the host (`auditctl -l`), without the bench's own.
pub fn host_rules() -> anyhow::Result<Vec<String>> {
    let out = Command::new("auditctl")
        .arg("-l")
        .output()
        .context("running auditctl -l")?;
    if !out.status.success() {
        bail!(
            "auditctl -l: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(parse_rules(&String::from_utf8_lossy(&out.stdout)))
}

pub fn parse_rules(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "No rules")
        .filter(|l| !l.contains(&format!("key={}", observe::AUDIT_KEY)))
        .map(str::to_string)
        .collect()
}

/// Rules checked on syscalls (`-a` lists and `-w` watches), the ones that cost every syscall.
pub fn syscall_rules(rules: &[String]) -> usize {
    rules
        .iter()
        .filter(|r| r.starts_with("-a ") || r.starts_with("-w "))
        .count()
}

/// auditd for the bench: the running daemon, or one started with a private log (stopped
/// again at the end); the backlog limit raised as production configurations do; other
/// tools' rules recorded, and removed with `--clear-audit-rules`; all of it put back.
pub struct AuditGuard {
    pub log: PathBuf,
    /// What the report says about the host's audit state.
    pub description: String,
}

impl AuditGuard {
    pub fn start(work: &Path, clear_rules: bool) -> anyhow::Result<AuditGuard> {
        install_signal_thread()?;
        let st = observe::audit_status()?;
        let rules = host_rules()?;
        let mut restore = Restore {
            backlog_limit: st.backlog_limit,
            ..Restore::default()
        };
        // Registered before anything changes, so an interrupted start is undone too.
        *PENDING
            .lock()
            .map_err(|_| anyhow::anyhow!("restore lock poisoned"))? = Some(restore.clone());
        let guard_for_errors = Undo;
        let (log, daemon) = if st.pid != 0 {
            let conf = std::fs::read_to_string("/etc/audit/auditd.conf").unwrap_or_default();
            let log = conf_value(&conf, "log_file").unwrap_or("/var/log/audit/audit.log");
            (
                PathBuf::from(log),
                format!("the running auditd (pid {})", st.pid),
            )
        } else {
            let log = start_private(work, &mut restore)?;
            (
                log,
                "a private auditd the bench started and stopped".to_string(),
            )
        };
        let costly = syscall_rules(&rules);
        let rules_said = if costly == 0 {
            "no other syscall rules loaded".to_string()
        } else if clear_rules {
            auditctl_args(&["-D"])?;
            restore.cleared = rules.clone();
            set_pending(&restore)?;
            format!(
                "{costly} syscall rule(s) of other tools were loaded; cleared for the run and \
                 restored after (`--clear-audit-rules`)"
            )
        } else {
            eprintln!(
                "bench: WARNING: {costly} audit syscall rule(s) of other tools are loaded \
                 (`auditctl -l`): every syscall builds an audit context, which slows the \
                 no-observer baseline and flatters every ratio. Rerun with --clear-audit-rules."
            );
            format!(
                "**{costly} syscall rule(s) of other tools were loaded and not cleared**: every \
                 syscall built an audit context, slowing the baseline and flattering every \
                 ratio (rerun with `--clear-audit-rules`)"
            )
        };
        auditctl_args(&["-b", "8192"])?;
        std::mem::forget(guard_for_errors);
        Ok(AuditGuard {
            log,
            description: format!(
                "Audit during the run: {daemon}, backlog limit 8192 (was {}), {rules_said}.",
                st.backlog_limit
            ),
        })
    }

    /// Puts back what the bench changed (once; a second call does nothing).
    pub fn stop(self) -> anyhow::Result<()> {
        take_pending().map_or(Ok(()), |r| r.apply())
    }
}

impl Drop for AuditGuard {
    /// A panic between start and stop still restores the host.
    fn drop(&mut self) {
        restore_pending();
    }
}

/// Restores the host if `AuditGuard::start` fails half-way.
struct Undo;

impl Drop for Undo {
    fn drop(&mut self) {
        restore_pending();
    }
}

fn set_pending(r: &Restore) -> anyhow::Result<()> {
    *PENDING
        .lock()
        .map_err(|_| anyhow::anyhow!("restore lock poisoned"))? = Some(r.clone());
    Ok(())
}

/// Puts the host back if nobody has yet (for drops, where an error can only be told).
fn restore_pending() {
    if let Some(r) = take_pending()
        && let Err(e) = r.apply()
    {
        eprintln!("bench: {e:#}");
    }
}

fn take_pending() -> Option<Restore> {
    PENDING.lock().map(|mut p| p.take()).unwrap_or(None)
}

/// Starts auditd with a private configuration and log under `work`; returns the log path.
fn start_private(work: &Path, restore: &mut Restore) -> anyhow::Result<PathBuf> {
    let dir = work.join("audit");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("audit.log");
    let base = std::fs::read_to_string("/etc/audit/auditd.conf").unwrap_or_default();
    std::fs::write(dir.join("auditd.conf"), private_conf(&base, &log))?;
    let child = Command::new("auditd")
        .args(["-n", "-c"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("auditd.err"))?)
        .spawn()
        .context("starting auditd")?;
    restore.own_pid = Some(child.id());
    set_pending(restore)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while observe::audit_status()?.pid == 0 {
        if Instant::now() > deadline {
            let err = std::fs::read_to_string(work.join("auditd.err")).unwrap_or_default();
            bail!("auditd did not start: {}", err.trim());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(log)
}

pub fn conf_value<'a>(conf: &'a str, key: &str) -> Option<&'a str> {
    conf.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
}

/// The system auditd.conf with the log moved to `log` and never rotated (the bench counts
/// records in it).
pub fn private_conf(base: &str, log: &Path) -> String {
    let overrides = [
        ("log_file", log.display().to_string()),
        ("max_log_file_action", "IGNORE".to_string()),
        ("space_left_action", "IGNORE".to_string()),
        ("admin_space_left_action", "IGNORE".to_string()),
        ("disk_full_action", "IGNORE".to_string()),
    ];
    let mut out: Vec<String> = base
        .lines()
        .filter(|l| {
            l.split_once('=')
                .is_none_or(|(k, _)| !overrides.iter().any(|(o, _)| *o == k.trim()))
        })
        .map(str::to_string)
        .collect();
    out.extend(overrides.iter().map(|(k, v)| format!("{k} = {v}")));
    out.join("\n") + "\n"
}

/// For the tests: hold an audit guard until a signal arrives (see `bench::tests`).
#[cfg(test)]
pub fn hold_for_test(work: &Path) -> anyhow::Result<()> {
    let guard = AuditGuard::start(work, true)?;
    println!("ready: {}", guard.description);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}
