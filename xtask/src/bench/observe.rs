//! The observers the bench compares (none, the floor, Sentinel, auditd, bpftrace): starting one
//! around a workload, stopping it, and counting from its output what it saw of that workload.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observer {
    None,
    /// Sentinel's hooks with programs that only return: what attaching alone costs.
    Floor,
    /// Sentinel's hooks with programs that only do its own-pid filter.
    FloorPid,
    /// The floor with the per-syscall hooks replaced by one `raw_syscalls/sys_exit`
    /// tracepoint that filters by syscall number.
    FloorTpExit,
    /// The same with the raw `sys_exit` tracepoint.
    FloorRawExit,
    /// Sentinel as shipped: syscall arguments read at exit from the saved registers.
    Sentinel,
    /// Sentinel with `syscall_args = "stash"`: an enter hook per syscall as well (the
    /// portable way, and the only one before registers were used).
    SentinelStash,
    Auditd,
    Bpftrace,
}

impl Observer {
    pub const ALL: [Observer; 9] = [
        Observer::None,
        Observer::Floor,
        Observer::FloorPid,
        Observer::FloorTpExit,
        Observer::FloorRawExit,
        Observer::Sentinel,
        Observer::SentinelStash,
        Observer::Auditd,
        Observer::Bpftrace,
    ];

    /// Also used in file names.
    pub fn name(self) -> &'static str {
        match self {
            Observer::None => "none",
            Observer::Floor => "floor",
            Observer::FloorPid => "floor-pid",
            Observer::FloorTpExit => "floor-tp-exit",
            Observer::FloorRawExit => "floor-raw-exit",
            Observer::Sentinel => "sentinel",
            Observer::SentinelStash => "sentinel-stash",
            Observer::Auditd => "auditd",
            Observer::Bpftrace => "bpftrace",
        }
    }

    /// The `[collect] syscall_args` a Sentinel observer runs with.
    pub fn syscall_args(self) -> Option<&'static str> {
        match self {
            Observer::Sentinel => Some("auto"),
            Observer::SentinelStash => Some("stash"),
            o if o.probe_floor().is_some() => Some("auto"),
            _ => None,
        }
    }

    /// `sentinel run --probe-floor` for the floor observers.
    fn probe_floor(self) -> Option<&'static str> {
        match self {
            Observer::Floor => Some("return"),
            Observer::FloorPid => Some("pid"),
            Observer::FloorTpExit => Some("tp-sys-exit"),
            Observer::FloorRawExit => Some("raw-sys-exit"),
            _ => None,
        }
    }

    /// Whether the observer reports events at all (the floor captures nothing by design).
    pub fn captures(self) -> bool {
        self != Observer::None && self.probe_floor().is_none()
    }
}

/// What events of the workload look like: opens by one of `pids` of files under `dir`, execs
/// whose parent is one of `pids`, connects by one of `pids`.
pub struct Target<'a> {
    pub pids: &'a [u32],
    pub dir: &'a str,
}

/// Events of the workload an observer reported, per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub open: u64,
    pub exec: u64,
    pub connect: u64,
    /// Sentinel only: events of any kind from the workload or its children.
    pub tree: u64,
}

/// What an observer reported about one run.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub seen: Seen,
    /// Events the observer says it lost (None: it has no such counter).
    pub lost: Option<u64>,
    /// Observer process CPU (user + system) during the workload and its drain, seconds.
    pub cpu_s: Option<f64>,
    /// Peak resident set of the observer process, KiB.
    pub rss_kib: Option<u64>,
    /// Every event it emitted during the window, from all processes.
    pub events: Option<u64>,
    /// Sentinel only: run time of its kernel programs during the window (all processes), ns.
    pub kernel_ns: Option<u64>,
}

pub const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Total run time (ns) of the BPF programs a process holds open, from /proc/PID/fdinfo.
fn prog_run_ns(pid: u32) -> u64 {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return 0;
    };
    rd.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|s| parse_prog_run_ns(&s))
        .sum()
}

/// `run_time_ns` of a BPF program's fdinfo (None for other descriptors).
pub fn parse_prog_run_ns(fdinfo: &str) -> Option<u64> {
    if !fdinfo.contains("prog_type:") {
        return None;
    }
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("run_time_ns:"))
        .and_then(|v| v.trim().parse().ok())
}

/// bpftrace equivalent of Sentinel's exec, open and connect capture, one line per event.
const BPFTRACE_PROGRAM: &str = r#"
BEGIN { printf("ready\n"); }
tracepoint:syscalls:sys_enter_execve {
  printf("exec %d %d %s\n", pid, curtask->real_parent->tgid, str(args->filename));
}
tracepoint:syscalls:sys_enter_openat { @path[tid] = args->filename; }
tracepoint:syscalls:sys_exit_openat /@path[tid]/ {
  printf("open %d %d %d %s\n", pid, curtask->real_parent->tgid, args->ret, str(@path[tid]));
  delete(@path[tid]);
}
tracepoint:syscalls:sys_enter_connect {
  printf("connect %d %d %d\n", pid, curtask->real_parent->tgid, args->fd);
}
END { clear(@path); }
"#;

pub const AUDIT_KEY: &str = "sentinel-bench";
const AUDIT_RULE: [&str; 8] = [
    "always,exit",
    "-F",
    "arch=b64",
    "-S",
    "execve,openat,connect",
    "-k",
    AUDIT_KEY,
    "",
];

/// Paths and binaries the sessions need.
pub struct Ctx {
    pub sentinel: PathBuf,
    pub work: PathBuf,
    pub audit_log: PathBuf,
}

/// A started observer.
pub enum Session {
    None,
    Sentinel {
        child: Child,
        out: PathBuf,
        from: u64,
        cpu0: f64,
        /// Run time of its kernel programs at the mark, and the bpf_stats setting to restore.
        prog_ns0: u64,
        stats_was: Option<String>,
    },
    Auditd {
        log: PathBuf,
        from: u64,
        lost0: u64,
        pid: u32,
        cpu0: f64,
    },
    Bpftrace {
        child: Child,
        out: PathBuf,
        from: u64,
        cpu0: f64,
    },
}

impl Session {
    pub fn start(obs: Observer, ctx: &Ctx, tag: &str) -> anyhow::Result<Session> {
        Ok(match obs {
            Observer::None => Session::None,
            Observer::Sentinel
            | Observer::SentinelStash
            | Observer::Floor
            | Observer::FloorPid
            | Observer::FloorTpExit
            | Observer::FloorRawExit => {
                let out = ctx.work.join(format!("{tag}.{}.jsonl", obs.name()));
                let cfg = ctx.work.join(format!("{}.toml", obs.name()));
                std::fs::write(
                    &cfg,
                    format!(
                        "[collect]\nsyscall_args = {:?}\n",
                        obs.syscall_args().unwrap_or("auto")
                    ),
                )?;
                let mut cmd = Command::new(&ctx.sentinel);
                // Detection on (the full pipeline), raw events on to count completeness.
                cmd.args(["run", "--json", "--events", "--duration", "15m", "--config"])
                    .arg(&cfg);
                if let Some(f) = obs.probe_floor() {
                    // Nothing reaches user space: no pipeline to run.
                    cmd.args(["--no-detect", "--probe-floor", f]);
                }
                let child = cmd
                    .stdout(std::fs::File::create(&out)?)
                    .stderr(std::fs::File::create(out.with_extension("err"))?)
                    .spawn()
                    .with_context(|| format!("starting {}", ctx.sentinel.display()))?;
                let mut child = child;
                if let Err(e) = wait_for_line(&out, "\"type\":\"status\"", Duration::from_secs(120))
                {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e.context("sentinel did not report its hooks"));
                }
                // The kernel keeps per-program run times only while bpf_stats is on; it costs
                // two clock reads per program run, so it is on only around Sentinel's runs.
                let stats_was = std::fs::read_to_string(BPF_STATS).ok();
                if stats_was.as_deref().map(str::trim) == Some("0") {
                    let _ = std::fs::write(BPF_STATS, "1");
                }
                Session::Sentinel {
                    child,
                    out,
                    from: 0,
                    cpu0: 0.0,
                    prog_ns0: 0,
                    stats_was,
                }
            }
            Observer::Bpftrace => {
                let out = ctx.work.join(format!("{tag}.bpftrace.txt"));
                let child = Command::new("bpftrace")
                    .arg("-o")
                    .arg(&out)
                    .args(["-e", BPFTRACE_PROGRAM])
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(out.with_extension("err"))?)
                    .spawn()
                    .context("starting bpftrace")?;
                let mut child = child;
                if let Err(e) = wait_for_line(&out, "ready", Duration::from_secs(120)) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e.context("bpftrace did not start"));
                }
                Session::Bpftrace {
                    child,
                    out,
                    from: 0,
                    cpu0: 0.0,
                }
            }
            Observer::Auditd => {
                let st = audit_status()?;
                if st.pid == 0 {
                    bail!("auditd is not running");
                }
                auditctl(&["-a"])?;
                Session::Auditd {
                    log: ctx.audit_log.clone(),
                    from: 0,
                    lost0: st.lost,
                    pid: st.pid,
                    cpu0: 0.0,
                }
            }
        })
    }

    /// Marks the start of the workload: output so far is not counted, nor CPU so far.
    pub fn mark(&mut self) {
        match self {
            Session::None => {}
            Session::Sentinel {
                child,
                out,
                from,
                cpu0,
                prog_ns0,
                ..
            } => {
                *from = file_len(out);
                *cpu0 = proc_cpu(child.id()).unwrap_or(0.0);
                *prog_ns0 = prog_run_ns(child.id());
            }
            Session::Bpftrace {
                child,
                out,
                from,
                cpu0,
            } => {
                *from = file_len(out);
                *cpu0 = proc_cpu(child.id()).unwrap_or(0.0);
            }
            Session::Auditd {
                log,
                from,
                pid,
                cpu0,
                ..
            } => {
                *from = file_len(log);
                *cpu0 = proc_cpu(*pid).unwrap_or(0.0);
            }
        }
    }

    /// Lets the observer catch up, stops it and counts what it saw of `target`.
    pub fn finish(self, target: &Target) -> anyhow::Result<Observed> {
        match self {
            Session::None => Ok(Observed::default()),
            Session::Sentinel {
                mut child,
                out,
                from,
                cpu0,
                prog_ns0,
                stats_was,
            } => {
                settle(&out);
                let (cpu, rss) = sample(child.id(), cpu0);
                let kernel_ns = prog_run_ns(child.id()).saturating_sub(prog_ns0);
                if let Some(was) = stats_was {
                    let _ = std::fs::write(BPF_STATS, was.trim());
                }
                stop(&mut child, "TERM")?;
                let (seen, events, summary) = scan_sentinel(&out, from, target)?;
                let summary = summary.context("sentinel printed no summary")?;
                Ok(Observed {
                    seen,
                    lost: Some(sentinel_lost(&summary)),
                    cpu_s: cpu,
                    rss_kib: rss,
                    events: Some(events),
                    kernel_ns: Some(kernel_ns),
                })
            }
            Session::Bpftrace {
                mut child,
                out,
                from,
                cpu0,
            } => {
                settle(&out);
                let (cpu, rss) = sample(child.id(), cpu0);
                stop(&mut child, "INT")?;
                let (seen, events) = scan_bpftrace(&out, from, target)?;
                let mut err = String::new();
                std::fs::File::open(out.with_extension("err"))?.read_to_string(&mut err)?;
                Ok(Observed {
                    seen,
                    lost: Some(bpftrace_lost(&err)),
                    cpu_s: cpu,
                    rss_kib: rss,
                    events: Some(events),
                    kernel_ns: None,
                })
            }
            Session::Auditd {
                log,
                from,
                lost0,
                pid,
                cpu0,
            } => {
                settle(&log);
                let (cpu, rss) = sample(pid, cpu0);
                let rule_removed = auditctl(&["-d"]);
                let st = audit_status()?;
                rule_removed?;
                let (seen, events) = scan_audit(&log, from, target)?;
                Ok(Observed {
                    seen,
                    lost: Some(st.lost.saturating_sub(lost0)),
                    cpu_s: cpu,
                    rss_kib: rss,
                    events: Some(events),
                    kernel_ns: None,
                })
            }
        }
    }
}

/// Adds (`-a`) or deletes (`-d`) the bench's audit rule.
pub fn auditctl(op: &[&str]) -> anyhow::Result<()> {
    let rule: Vec<&str> = AUDIT_RULE
        .iter()
        .copied()
        .filter(|s| !s.is_empty())
        .collect();
    let out = Command::new("auditctl")
        .args(op)
        .args(&rule)
        .output()
        .context("running auditctl")?;
    if !out.status.success() {
        bail!(
            "auditctl {op:?} {rule:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The fields of `auditctl -s` the bench uses.
#[derive(Debug, Default, PartialEq)]
pub struct AuditStatus {
    pub pid: u32,
    pub lost: u64,
    pub backlog_limit: u64,
}

pub fn audit_status() -> anyhow::Result<AuditStatus> {
    let out = Command::new("auditctl")
        .arg("-s")
        .output()
        .context("running auditctl -s")?;
    Ok(parse_audit_status(&String::from_utf8_lossy(&out.stdout)))
}

pub fn parse_audit_status(s: &str) -> AuditStatus {
    let mut st = AuditStatus::default();
    for l in s.lines() {
        let mut w = l.split_whitespace();
        let (Some(k), Some(v)) = (w.next(), w.next()) else {
            continue;
        };
        match k {
            "pid" => st.pid = v.parse().unwrap_or(0),
            "lost" => st.lost = v.parse().unwrap_or(0),
            "backlog_limit" => st.backlog_limit = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    st
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Waits until the observer's output stops growing (it has drained what the workload caused).
fn settle(p: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = file_len(p);
    let mut still = 0;
    while still < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = file_len(p);
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
}

fn wait_for_line(p: &Path, needle: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::fs::read_to_string(p).is_ok_and(|s| s.contains(needle)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("no {needle:?} in {} after {timeout:?}", p.display())
}

/// Asks a child to stop with a signal, killing it if it has not stopped in 60 s.
fn stop(child: &mut Child, sig: &str) -> anyhow::Result<()> {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .context("running kill")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill()?;
    child.wait()?;
    bail!("observer {} did not stop on SIG{sig}", child.id())
}

/// CPU seconds since `cpu0` and peak RSS (KiB) of a process.
fn sample(pid: u32, cpu0: f64) -> (Option<f64>, Option<u64>) {
    let cpu = proc_cpu(pid).map(|c| c - cpu0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| parse_vm_hwm(&s));
    (cpu, rss)
}

/// utime + stime of a process in seconds, from /proc/PID/stat.
pub fn proc_cpu(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    parse_stat_ticks(&s).map(|t| t as f64 / if hz > 0 { hz as f64 } else { 100.0 })
}

/// utime + stime (clock ticks) from a /proc/PID/stat line. The command name may contain
/// spaces and parentheses, so fields are counted from its closing parenthesis.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')' comes field 3 (state); utime and stime are fields 14 and 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Lines of `p` from byte `from` on (lossy: paths may not be UTF-8).
fn lines_from(p: &Path, from: u64) -> anyhow::Result<impl Iterator<Item = String>> {
    let mut f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    f.seek(SeekFrom::Start(from))?;
    Ok(BufReader::with_capacity(1 << 20, f)
        .split(b'\n')
        .map_while(Result::ok)
        .map(|l| String::from_utf8_lossy(&l).into_owned()))
}

/// The raw text of a top-level JSON field: a number, or a string's contents (still escaped).
/// Sentinel's records are flat at the level the bench reads, so a substring search suffices
/// and keeps a debug-built xtask fast on a million lines.
pub fn json_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let at = line.find(&pat)? + pat.len();
    let v = &line[at..];
    if let Some(s) = v.strip_prefix('"') {
        let mut esc = false;
        for (i, c) in s.char_indices() {
            match c {
                '\\' if !esc => esc = true,
                '"' if !esc => return Some(&s[..i]),
                _ => esc = false,
            }
        }
        None
    } else {
        let end = v.find([',', '}']).unwrap_or(v.len());
        Some(v[..end].trim())
    }
}

/// Counts one reported event of the workload into `seen`.
/// Counts `n` events (a Sentinel repeat report stands for `repeats` opens).
fn tally(seen: &mut Seen, t: &Target, kind: &str, pid: u32, ppid: u32, path: &str, n: u64) {
    match kind {
        "open" if t.pids.contains(&pid) && path.starts_with(t.dir) => seen.open += n,
        "exec" if t.pids.contains(&ppid) => seen.exec += n,
        "connect" if t.pids.contains(&pid) => seen.connect += n,
        _ => {}
    }
}

/// Sentinel JSON lines: the workload's events, all events, and the summary record.
pub fn scan_sentinel(
    p: &Path,
    from: u64,
    t: &Target,
) -> anyhow::Result<(Seen, u64, Option<serde_json::Value>)> {
    let (mut seen, mut events, mut summary) = (Seen::default(), 0, None);
    for l in lines_from(p, from)? {
        if l.starts_with("{\"type\":\"event\"") {
            // A repeat report stands for the `repeats` identical opens the kernel counted
            // instead of sending; every other record for one event.
            let n = json_field(&l, "repeats")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            events += n;
            let num = |k| json_field(&l, k).and_then(|v| v.parse().ok()).unwrap_or(0);
            let kind = json_field(&l, "kind").unwrap_or("");
            let path = json_field(&l, "path").unwrap_or("");
            let (pid, ppid) = (num("pid"), num("ppid"));
            if t.pids.contains(&pid) || t.pids.contains(&ppid) {
                seen.tree += n;
            }
            tally(&mut seen, t, kind, pid, ppid, path, n);
        } else if l.starts_with("{\"type\":\"summary\"") {
            summary = serde_json::from_str(&l).ok();
        }
    }
    Ok((seen, events, summary))
}

/// Kernel losses plus agent and output drops, all kinds, from Sentinel's summary record.
pub fn sentinel_lost(summary: &serde_json::Value) -> u64 {
    let sum = |v: Option<&serde_json::Value>| -> u64 {
        v.and_then(|o| o.as_object())
            .map(|o| o.values().filter_map(|n| n.as_u64()).sum())
            .unwrap_or(0)
    };
    let feed = summary
        .pointer("/pipeline/feed_dropped_events")
        .and_then(|n| n.as_u64())
        .unwrap_or(0);
    // Events the JSON writer could not keep up with never reach the output either.
    sum(summary.get("kernel_lost")) + sum(summary.pointer("/stats/channel_dropped")) + feed
}

/// bpftrace lines `KIND PID PPID ...` (see `BPFTRACE_PROGRAM`).
pub fn scan_bpftrace(p: &Path, from: u64, t: &Target) -> anyhow::Result<(Seen, u64)> {
    let (mut seen, mut events) = (Seen::default(), 0);
    for l in lines_from(p, from)? {
        let mut w = l.splitn(5, ' ');
        let kind = w.next().unwrap_or("");
        if !matches!(kind, "exec" | "open" | "connect") {
            continue;
        }
        events += 1;
        let pid = w.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let ppid = w.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        // open: ret then path; exec: the path is the rest.
        let path = match kind {
            "open" => w.nth(1).unwrap_or(""),
            _ => "",
        };
        tally(&mut seen, t, kind, pid, ppid, path, 1);
    }
    Ok((seen, events))
}

/// Sums bpftrace's "Lost N events" warnings.
pub fn bpftrace_lost(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| {
            let i = l.find("Lost ")?;
            l[i + 5..].split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// auditd log from `from`: events (SYSCALL records with the bench key) joined by serial to
/// their PATH records.
pub fn scan_audit(p: &Path, from: u64, t: &Target) -> anyhow::Result<(Seen, u64)> {
    struct Ev {
        kind: &'static str,
        pid: u32,
        ppid: u32,
        path_hit: bool,
    }
    let mut evs: HashMap<u64, Ev> = HashMap::new();
    let mut path_hits: Vec<u64> = Vec::new();
    for l in lines_from(p, from)? {
        let Some(serial) = audit_serial(&l) else {
            continue;
        };
        if l.starts_with("type=SYSCALL ") {
            if !l.contains(AUDIT_KEY) {
                continue;
            }
            let field = |k: &str| audit_field(&l, k).unwrap_or("");
            let kind = match field("syscall") {
                "59" => "exec",
                "257" => "open",
                "42" => "connect",
                _ => continue,
            };
            evs.insert(
                serial,
                Ev {
                    kind,
                    pid: field("pid").parse().unwrap_or(0),
                    ppid: field("ppid").parse().unwrap_or(0),
                    path_hit: false,
                },
            );
        } else if l.starts_with("type=PATH ")
            && audit_field(&l, "name").is_some_and(|n| n.trim_matches('"').starts_with(t.dir))
        {
            path_hits.push(serial);
        }
    }
    for s in path_hits {
        if let Some(e) = evs.get_mut(&s) {
            e.path_hit = true;
        }
    }
    let mut seen = Seen::default();
    for e in evs.values() {
        let path = if e.path_hit { t.dir } else { "" };
        tally(&mut seen, t, e.kind, e.pid, e.ppid, path, 1);
    }
    Ok((seen, evs.len() as u64))
}

/// The serial of `msg=audit(SECONDS.MILLIS:SERIAL)`.
pub fn audit_serial(l: &str) -> Option<u64> {
    let i = l.find("msg=audit(")? + 10;
    let rest = &l[i..];
    let colon = rest.find(':')?;
    let close = rest.find(')')?;
    rest.get(colon + 1..close)?.parse().ok()
}

/// The value of ` KEY=VALUE` in an audit record (first occurrence).
pub fn audit_field<'a>(l: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!(" {key}=");
    let i = l.find(&pat)? + pat.len();
    let v = &l[i..];
    Some(&v[..v.find([' ', '\u{1d}']).unwrap_or(v.len())])
}
