//! `cargo xtask bench`: Sentinel's overhead and capacity measured side by side with auditd and
//! bpftrace on the same bounded workloads, written to docs/benchmarks.md.

mod audit;
mod observe;
mod report;
mod server;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};

use crate::setup;
use audit::AuditGuard;
use observe::{Ctx, Observed, Observer, Session, Target};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A short run: one round, smaller workloads, fewer capacity steps (about 2 minutes).
    #[arg(long)]
    quick: bool,
    /// Rounds per workload and observer (default 4; 1 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Only these workloads (open, exec, connect, devel; default all).
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Only these observers (floor, floor-pid, floor-tp-exit, floor-raw-exit, sentinel,
    /// sentinel-stash, auditd, bpftrace; default all). "none", the baseline every ratio needs,
    /// always runs.
    #[arg(long, value_delimiter = ',')]
    observers: Vec<String>,
    /// Skip the capacity steps.
    #[arg(long)]
    no_capacity: bool,
    /// Skip the live-process memory step.
    #[arg(long)]
    no_procs: bool,
    /// Print the tables only; leave docs/benchmarks.md as it is.
    #[arg(long)]
    no_write: bool,
    /// Keep the observers' raw outputs (in the temporary directory it prints) for inspection.
    #[arg(long)]
    keep: bool,
    /// Remove the audit rules other tools left loaded for the run (they slow every syscall and
    /// flatter every ratio) and restore them after, on every exit path.
    #[arg(long)]
    clear_audit_rules: bool,
    #[command(flatten)]
    server: server::ServerArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Open,
    /// The open storm on paths too long for in-kernel repeat counting: every open is a record.
    OpenEach,
    Exec,
    Connect,
    Devel,
}

impl Workload {
    const ALL: [Workload; 5] = [
        Workload::Open,
        Workload::OpenEach,
        Workload::Exec,
        Workload::Connect,
        Workload::Devel,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::Open => "open",
            Workload::OpenEach => "open-each",
            Workload::Exec => "exec",
            Workload::Connect => "connect",
            Workload::Devel => "devel",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Workload::Open => "open storm (open+close, 4 files)",
            Workload::OpenEach => "open storm, every open sent (4 paths of 150 bytes)",
            Workload::Exec => "exec storm (fork+exec /bin/true)",
            Workload::Connect => "connect storm (TCP to a loopback listener)",
            Workload::Devel => "busy developer (gcc -c + 16 files churned)",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Workload::Open | Workload::OpenEach => "opens/s",
            Workload::Exec => "execs/s",
            Workload::Connect => "connects/s",
            Workload::Devel => "loops/s",
        }
    }

    /// (count, time cap in seconds) for a full or quick run.
    fn bounds(self, quick: bool) -> (u64, f64) {
        match (self, quick) {
            (Workload::Open | Workload::OpenEach, false) => (600_000, 4.0),
            (Workload::Open | Workload::OpenEach, true) => (200_000, 2.0),
            (Workload::Exec, false) => (3_000, 4.0),
            (Workload::Exec, true) => (800, 2.0),
            (Workload::Connect, false) => (30_000, 4.0),
            (Workload::Connect, true) => (8_000, 2.0),
            (Workload::Devel, false) => (40, 6.0),
            (Workload::Devel, true) => (10, 3.0),
        }
    }

    fn args(self, dir: &Path, quick: bool) -> Vec<String> {
        let (n, secs) = self.bounds(quick);
        let d = dir.display().to_string();
        let (n, secs) = (n.to_string(), secs.to_string());
        match self {
            Workload::Open => {
                let mut a = vec!["open-storm".into(), format!("{d}/f0"), n, secs, "0".into()];
                a.extend((1..4).map(|i| format!("{d}/f{i}")));
                a
            }
            Workload::OpenEach => {
                let p = |i| long_path(dir, i).display().to_string();
                let mut a = vec!["open-storm".into(), p(0), n, secs, "0".into()];
                a.extend((1..4).map(p));
                a
            }
            Workload::Exec => vec!["exec-storm".into(), n, secs],
            Workload::Connect => vec!["connect-storm".into(), "0".into(), n, secs],
            Workload::Devel => vec!["devel".into(), format!("{d}/devel"), n, secs],
        }
    }
}

/// A file in `dir` whose path is longer than the kernel counts repeats for (126 bytes).
fn long_path(dir: &Path, i: usize) -> PathBuf {
    let name = format!("{i}-{}", "p".repeat(150));
    dir.join(name)
}

/// One workload run under one observer.
#[derive(Debug)]
pub struct Run {
    pub workload: Workload,
    pub observer: Observer,
    pub round: usize,
    /// Operations per second the workload achieved.
    pub throughput: f64,
    /// CPU time the workload (and its children) spent per operation, microseconds.
    pub cpu_us_per_op: Option<f64>,
    /// Operations the workload completed.
    pub ops: u64,
    /// Events of the kinds the observers share that the workload caused.
    pub expected: u64,
    pub observed: Observed,
}

impl Run {
    fn captured(&self) -> u64 {
        let s = self.observed.seen;
        match self.workload {
            Workload::Open | Workload::OpenEach => s.open,
            Workload::Exec => s.exec,
            Workload::Connect => s.connect,
            Workload::Devel => s.open + s.exec,
        }
    }

    fn completeness(&self) -> f64 {
        if self.expected == 0 {
            return 1.0;
        }
        self.captured() as f64 / self.expected as f64
    }
}

/// Sentinel's memory while the host runs many live processes (each one a process-table entry).
#[derive(Debug)]
pub struct Procs {
    /// Live processes the workload held at once.
    pub live: u64,
    /// Their fork events Sentinel reported.
    pub forks_seen: u64,
    /// Sentinel's peak resident memory over its whole run (VmHWM), KiB.
    pub rss_kib: Option<u64>,
}

/// One capacity step: a paced open storm under Sentinel.
#[derive(Debug)]
pub struct Step {
    /// Opens per second asked for (0: unlimited).
    pub target: f64,
    /// Storm processes running at once.
    pub producers: usize,
    pub achieved: f64,
    pub expected: u64,
    pub captured: u64,
    pub lost: Option<u64>,
    pub cpu_s: Option<f64>,
    /// Every event Sentinel emitted during the step, from all processes.
    pub events: u64,
    pub secs: f64,
}

impl Step {
    /// Sentinel's CPU as a share of one core over the step.
    fn core_share(&self) -> Option<f64> {
        Some(self.cpu_s? / self.secs)
    }

    /// Sentinel's CPU per event, as a share of one core at 100k events/s.
    fn share_at_100k(&self) -> Option<f64> {
        (self.events > 0).then_some(self.cpu_s? / self.events as f64 * 100e3)
    }

    fn clean(&self) -> bool {
        self.lost == Some(0) && self.captured >= self.expected
    }
}

pub fn run(root: &Path, args: BenchArgs) -> anyhow::Result<()> {
    if args.server.server {
        return server::run(root, &args.server);
    }
    setup::toolchain()?;
    require_root()?;
    install_observers()?;
    setup::run(super::cargo().args(["build", "--release", "-p", "sentinel"]))?;
    setup::run(super::cargo().args([
        "build",
        "--release",
        "-p",
        "sentinel-e2e",
        "--bin",
        "sentinel-workload",
    ]))?;
    let workloads: Vec<Workload> = if args.workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        let mut v = Vec::new();
        for n in &args.workloads {
            match Workload::ALL.iter().find(|w| w.name() == n) {
                Some(w) => v.push(*w),
                None => bail!("unknown workload {n:?} (open, exec, connect, devel)"),
            }
        }
        v
    };
    let mut observers = vec![Observer::None];
    for o in Observer::ALL {
        if o != Observer::None
            && (args.observers.is_empty() || args.observers.iter().any(|n| n == o.name()))
        {
            observers.push(o);
        }
    }
    if let Some(n) = args
        .observers
        .iter()
        .find(|n| !Observer::ALL.iter().any(|o| o.name() == n.as_str()))
    {
        bail!(
            "unknown observer {n:?} (none, floor, floor-pid, floor-tp-exit, floor-raw-exit, sentinel, sentinel-stash, auditd, bpftrace)"
        );
    }
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 4 }).max(1);

    let work = std::env::temp_dir().join(format!("sentinel-bench-{}", std::process::id()));
    std::fs::create_dir_all(work.join("devel"))?;
    for i in 0..4 {
        std::fs::write(work.join(format!("f{i}")), "bench\n")?;
        std::fs::write(long_path(&work, i), "bench\n")?;
    }
    let bpf_stats = std::fs::read_to_string(observe::BPF_STATS).ok();
    let audit = AuditGuard::start(&work, args.clear_audit_rules)?;
    let ctx = Ctx {
        sentinel: root.join("target/release/sentinel"),
        work: work.clone(),
        audit_log: audit.log.clone(),
    };
    let workload_bin = root.join("target/release/sentinel-workload");
    let env = format!("{}\n\n{}", environment(&args, rounds), audit.description);
    let started = Instant::now();

    let result = (|| -> anyhow::Result<(Vec<Run>, Vec<Step>, Option<Procs>)> {
        let mut runs = Vec::new();
        for round in 0..rounds {
            for &w in &workloads {
                // Rotate the order each round so no observer always runs first or last.
                for k in 0..observers.len() {
                    let o = observers[(k + round) % observers.len()];
                    let r = one_run(&ctx, &workload_bin, w, o, round, &args)?;
                    eprintln!(
                        "bench: round {} {:<8} {:<9} {:>9}/s cpu/op {:?} captured {}/{} lost {:?} ({:.0}s in)",
                        round + 1,
                        w.name(),
                        o.name(),
                        report::si(r.throughput),
                        r.cpu_us_per_op,
                        r.captured(),
                        r.expected,
                        r.observed.lost,
                        started.elapsed().as_secs_f64()
                    );
                    runs.push(r);
                }
            }
        }
        let steps = if args.no_capacity {
            Vec::new()
        } else {
            capacity(&ctx, &workload_bin, args.quick)?
        };
        let procs = if args.no_procs {
            None
        } else {
            let n = if args.quick { 2_000 } else { 10_000 };
            Some(live_processes(&ctx, &workload_bin, n)?)
        };
        Ok((runs, steps, procs))
    })();
    let restored = audit.stop();
    // A failed run may have left bpf_stats on (it is switched on around Sentinel's runs).
    if let Some(v) = &bpf_stats {
        let _ = std::fs::write(observe::BPF_STATS, v.trim());
    }
    let (runs, steps, procs) = result?;
    restored?;
    if args.keep {
        eprintln!("bench: raw outputs kept in {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }

    let md = report::markdown(&env, &runs, &steps, procs.as_ref(), &workloads);
    println!("{md}");
    eprintln!("bench: finished in {:.0}s", started.elapsed().as_secs_f64());
    if !args.no_write {
        let path = root.join("docs/benchmarks.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
        std::fs::write(&path, report::splice(&doc, &md))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(())
}

/// Runs the workload to completion under a fresh observer and collects both sides.
fn one_run(
    ctx: &Ctx,
    bin: &Path,
    w: Workload,
    o: Observer,
    round: usize,
    args: &BenchArgs,
) -> anyhow::Result<Run> {
    let tag = format!("r{round}-{}-{}", w.name(), o.name());
    let mut session = Session::start(o, ctx, &tag)?;
    session.mark();
    let (pid, facts) = run_workload(bin, &w.args(&ctx.work, args.quick))?;
    let dir = ctx.work.display().to_string();
    let observed = session.finish(&Target {
        pids: &[pid],
        dir: &dir,
    })?;
    if !args.keep {
        remove_outputs(&ctx.work, &tag);
    }
    let fact = |k: &str| {
        facts
            .get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let elapsed = fact("elapsed_ns") as f64 / 1e9;
    let count = fact("count");
    let expected = match w {
        Workload::Devel => fact("opens") + fact("execs"),
        _ => count,
    };
    Ok(Run {
        workload: w,
        observer: o,
        round,
        throughput: if elapsed > 0.0 {
            count as f64 / elapsed
        } else {
            0.0
        },
        cpu_us_per_op: (count > 0 && facts.contains_key("cpu_ns"))
            .then(|| fact("cpu_ns") as f64 / 1e3 / count as f64),
        ops: count,
        expected,
        observed,
    })
}

/// Steps a paced open storm up under Sentinel, ending with unpaced storms from one and then
/// two processes (one storm alone cannot outrun Sentinel when its probes slow it down).
fn capacity(ctx: &Ctx, bin: &Path, quick: bool) -> anyhow::Result<Vec<Step>> {
    let (rates, secs): (&[(f64, usize)], f64) = if quick {
        (&[(50e3, 1), (100e3, 1), (0.0, 1), (0.0, 2)], 1.5)
    } else {
        (
            &[
                (25e3, 1),
                (50e3, 1),
                (100e3, 1),
                (150e3, 1),
                (200e3, 1),
                (0.0, 1),
                (0.0, 2),
            ],
            3.0,
        )
    };
    let mut steps = Vec::new();
    for &(rate, producers) in rates {
        let tag = format!("cap-{rate}-{producers}");
        let mut s = Session::start(Observer::Sentinel, ctx, &tag)?;
        s.mark();
        let n = if rate > 0.0 {
            (rate * secs) as u64
        } else {
            u64::MAX / 2
        };
        let t0 = Instant::now();
        let children = (0..producers)
            .map(|i| {
                // Paths too long for repeat counting: every open is a record to carry.
                let path = long_path(&ctx.work, i).display().to_string();
                let a = [
                    "open-storm".to_string(),
                    path,
                    n.to_string(),
                    (if rate > 0.0 { secs * 1.5 } else { secs }).to_string(),
                    rate.to_string(),
                ];
                spawn_workload(bin, &a)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let pids: Vec<u32> = children.iter().map(Child::id).collect();
        let mut count = 0;
        let mut elapsed = 0f64;
        for c in children {
            let facts = collect_workload(c)?;
            let fact = |k: &str| facts.get(k).and_then(|v| v.parse::<u64>().ok());
            count += fact("count").unwrap_or(0);
            elapsed = elapsed.max(fact("elapsed_ns").unwrap_or(0) as f64 / 1e9);
        }
        let wall = t0.elapsed().as_secs_f64();
        let dir = ctx.work.display().to_string();
        let obs = s.finish(&Target {
            pids: &pids,
            dir: &dir,
        })?;
        remove_outputs(&ctx.work, &tag);
        let st = Step {
            target: rate,
            producers,
            achieved: count as f64 / elapsed.max(1e-9),
            expected: count,
            captured: obs.seen.open,
            lost: obs.lost,
            cpu_s: obs.cpu_s,
            events: obs.events.unwrap_or(0),
            secs: wall,
        };
        eprintln!(
            "bench: capacity {:>9}/s x{producers} achieved {:>9}/s captured {}/{} lost {:?} cpu {:?}",
            report::si(rate),
            report::si(st.achieved),
            st.captured,
            st.expected,
            st.lost,
            st.core_share()
        );
        steps.push(st);
    }
    Ok(steps)
}

/// Starts Sentinel, then `live` processes that stay alive for a few seconds, and reads
/// Sentinel's peak memory once it has seen them.
fn live_processes(ctx: &Ctx, bin: &Path, live: u64) -> anyhow::Result<Procs> {
    let tag = format!("procs-{live}");
    let mut s = Session::start(Observer::Sentinel, ctx, &tag)?;
    s.mark();
    let mut child = spawn_workload(bin, &["hold".into(), live.to_string(), "6".into()])?;
    let pid = child.id();
    let out = child.stdout.take().context("workload stdout")?;
    let mut facts = BTreeMap::new();
    for line in BufReader::new(out).lines() {
        let line = line?;
        if let Some((k, v)) = line.split_once('=') {
            facts.insert(k.to_string(), v.to_string());
        }
        if line == "ready=1" {
            break;
        }
    }
    let held: u64 = facts.get("count").and_then(|c| c.parse().ok()).unwrap_or(0);
    // The children are alive from here for the rest of the 6 s; Sentinel catches up meanwhile.
    let status = child.wait()?;
    if !status.success() {
        bail!("hold workload failed ({status})");
    }
    let dir = ctx.work.display().to_string();
    let obs = s.finish(&Target {
        pids: &[pid],
        dir: &dir,
    })?;
    remove_outputs(&ctx.work, &tag);
    let p = Procs {
        live: held,
        forks_seen: obs.seen.tree,
        rss_kib: obs.rss_kib,
    };
    eprintln!(
        "bench: {} live processes, {} events of them seen, peak RSS {:?} KiB",
        p.live, p.forks_seen, p.rss_kib
    );
    Ok(p)
}

fn spawn_workload(bin: &Path, args: &[String]) -> anyhow::Result<Child> {
    Command::new(bin)
        .args(args)
        // cargo sets it to the toolchain's library directories, and every exec in the
        // workload would then search them all (about 80 failed opens per /bin/true).
        .env_remove("LD_LIBRARY_PATH")
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// Waits for a workload helper and returns its `key=value` facts.
fn collect_workload(child: Child) -> anyhow::Result<BTreeMap<String, String>> {
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("workload failed ({})", out.status);
    }
    Ok(parse_facts(&String::from_utf8_lossy(&out.stdout)))
}

/// Runs the workload helper to completion: its pid and its `key=value` facts.
fn run_workload(bin: &Path, args: &[String]) -> anyhow::Result<(u32, BTreeMap<String, String>)> {
    let child = spawn_workload(bin, args)?;
    let pid = child.id();
    Ok((
        pid,
        collect_workload(child).with_context(|| format!("{args:?}"))?,
    ))
}

fn parse_facts(s: &str) -> BTreeMap<String, String> {
    s.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn remove_outputs(work: &Path, tag: &str) {
    if let Ok(rd) = std::fs::read_dir(work) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(tag) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn require_root() -> anyhow::Result<()> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    let euid = s
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1));
    if euid != Some("0") {
        bail!("the bench loads eBPF programs and audit rules: run it as root");
    }
    Ok(())
}

fn install_observers() -> anyhow::Result<()> {
    let have = |b: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut missing = Vec::new();
    if !have("auditd") || !have("auditctl") {
        missing.push("auditd");
    }
    if !have("bpftrace") {
        missing.push("bpftrace");
    }
    if !have("gcc") {
        missing.push("gcc");
    }
    if !missing.is_empty() {
        setup::apt_install(&missing)?;
    }
    Ok(())
}

/// Machine, kernel, tools and the commands, for the top of the generated section.
fn environment(args: &BenchArgs, rounds: usize) -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cmd = |c: &str| {
        Command::new("sh")
            .args(["-c", c])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let flags = if args.quick { " --quick" } else { "" };
    format!(
        "Measured {date} on {cpus} CPUs ({model}), {mem:.1} GiB memory, kernel {kernel}; \
         load average at start {load}. {rounds} round(s); {bpftrace}, auditd {auditd}.\n\n\
         Reproduce (as root, from the repository root): `cargo xtask bench{flags}` \
         (full: `cargo xtask bench`, about 12 minutes; short: `cargo xtask bench --quick`, about 3).",
        date = cmd("date -u '+%Y-%m-%d %H:%M UTC'"),
        mem = mem_kib as f64 / (1024.0 * 1024.0),
        kernel = read("/proc/sys/kernel/osrelease").trim(),
        load = read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        bpftrace = cmd("bpftrace --version"),
        auditd = cmd("auditctl -v").trim_start_matches("auditctl version "),
    )
}

#[cfg(test)]
mod tests;
