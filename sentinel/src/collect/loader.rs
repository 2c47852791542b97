//! Loading the embedded kernel object, configuring it through globals and maps, and attaching
//! each hook. One hook failing is reported and the others keep running.

use std::collections::BTreeSet;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, ProgramArray, RingBuf},
    programs::{RawTracePoint, TracePoint},
};
use sentinel_common::{
    EnvName, Kind, LoadConfig, PREFIX_LEN, Prefix, RepeatKey, RepeatVal, Settings, SyscallSpec,
    names,
};

use super::{CollectError, btf, tracefs};
use crate::syscalls;

/// The kernel object built by sentinel/build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sentinel"));

/// What the loader is asked to do.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub kinds: BTreeSet<Kind>,
    pub ignore_prefixes: Vec<String>,
    pub ring_buffer_bytes: u32,
    /// Force a wake-up when this many bytes wait (0: timer only).
    pub wakeup_bytes: u32,
    /// Process whose own activity is never reported.
    pub agent_tgid: u32,
    /// Always stash syscall arguments at entry, even where they could be read at exit.
    pub stash_args: bool,
    /// Environment variables an exec record keeps (names; empty: none, envp is not read).
    pub exec_env: Vec<String>,
    /// The bench's floor: the same hooks with programs that do (almost) nothing.
    pub floor: Option<Floor>,
}

/// Programs that stand in for Sentinel's on the same hooks, to measure what attaching alone
/// costs (`cargo xtask bench`, observers `floor` and `floor-pid`). Nothing is captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Floor {
    /// Programs that only return.
    Return,
    /// Programs that only do the agent's own-pid filter every real program starts with.
    Pid,
    /// Per-syscall hooks replaced by one `raw_syscalls/sys_exit` tracepoint for every syscall,
    /// filtering by number (the single-hook layout's floor).
    TpSysExit,
    /// Per-syscall hooks replaced by the raw `sys_exit` tracepoint, filtering by number.
    RawSysExit,
}

/// The program each hook runs: Sentinel's, or the floor's stand-in.
struct Programs {
    floor: Option<Floor>,
}

impl Programs {
    fn tp(&self, real: &'static str) -> &'static str {
        match self.floor {
            None => real,
            Some(Floor::Pid) => "floor_tp_pid",
            Some(_) => "floor_tp_return",
        }
    }

    fn raw(&self, real: &'static str) -> &'static str {
        match self.floor {
            None => real,
            Some(Floor::Pid) => "floor_raw_pid",
            Some(_) => "floor_raw_return",
        }
    }
}

/// How the generic syscall hooks get their arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgsSource {
    /// One exit hook per syscall reads them from the task's saved registers.
    Registers,
    /// An enter hook stashes them per thread for the exit hook (two hooks per syscall).
    #[default]
    Stash,
}

/// Which hooks are live and which failed, with the reason.
#[derive(Clone, Debug, Default)]
pub struct AttachReport {
    pub attached: Vec<String>,
    pub failed: Vec<(String, String)>,
    /// Captured syscalls this kernel does not have (no tracepoint: built without them, e.g.
    /// the module syscalls without CONFIG_MODULES); not failures.
    pub unavailable: Vec<String>,
    /// Header fields that will be unset because BTF lacks their offsets.
    pub missing_fields: Vec<&'static str>,
    pub mounted_tracefs: bool,
    pub syscall_args: ArgsSource,
    /// Why the registers could not be used, when they were wanted.
    pub syscall_args_note: Option<String>,
}

pub struct Loaded {
    pub ebpf: Ebpf,
    pub ring: RingBuf<MapData>,
    pub lost: PerCpuArray<MapData, u64>,
    pub repeats: PerCpuHashMap<MapData, RepeatKey, RepeatVal>,
    pub report: AttachReport,
}

pub fn load(opts: &LoadOptions) -> Result<Loaded, CollectError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(CollectError::NotRoot);
    }
    let kernel_btf = btf::load(std::path::Path::new(btf::VMLINUX))?;
    let (offsets, missing_fields) = btf::resolve(&kernel_btf)?;
    let regs = if opts.stash_args {
        None
    } else {
        btf::resolve_regs(&kernel_btf)?
    };
    drop(kernel_btf);
    let mounted_tracefs = tracefs::ensure()?;
    raise_memlock();

    let cfg = LoadConfig {
        agent_tgid: opts.agent_tgid,
        // A directory opened again by its absolute path may get another descriptor each time,
        // and the process table must know which (relative opens under it are placed by it).
        uncounted_open_flags: (libc::O_DIRECTORY | libc::O_PATH) as u32,
        offsets,
        regs: regs.unwrap_or_default(),
    };
    let mut ebpf = EbpfLoader::new()
        .override_global("LOAD_CONFIG", &cfg, true)
        .map_max_entries(names::EVENTS, opts.ring_buffer_bytes)
        .load(OBJECT)
        .map_err(|e| CollectError::Load(Box::new(e)))?;

    configure_maps(&mut ebpf, opts)?;
    let mut report = AttachReport {
        missing_fields,
        mounted_tracefs,
        syscall_args: if regs.is_some() {
            ArgsSource::Registers
        } else {
            ArgsSource::Stash
        },
        syscall_args_note: (regs.is_none() && !opts.stash_args).then(|| {
            "this architecture's syscall ABI does not keep the argument registers until exit"
                .to_string()
        }),
        ..Default::default()
    };
    attach_all(&mut ebpf, opts, &mut report)?;
    // Exits are attached before entries, so exits of syscalls already under way counted as
    // unpaired while attaching; start the count from here.
    if let Ok(mut lost) = map_mut::<PerCpuArray<_, u64>>(&mut ebpf, names::LOST) {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| CollectError::Ring(e))?;
        let zeros =
            aya::maps::PerCpuValues::try_from(vec![0u64; cpus]).map_err(CollectError::Ring)?;
        let _ = lost.set(sentinel_common::MAX_KINDS - 1, zeros, 0);
    }
    if report.attached.is_empty() {
        return Err(CollectError::NothingAttached(report.failed.clone()));
    }

    let ring = take::<RingBuf<MapData>>(&mut ebpf, names::EVENTS)?;
    let lost = take::<PerCpuArray<MapData, u64>>(&mut ebpf, names::LOST)?;
    let repeats = take::<PerCpuHashMap<MapData, RepeatKey, RepeatVal>>(&mut ebpf, names::REPEATS)?;
    Ok(Loaded {
        ebpf,
        ring,
        lost,
        repeats,
        report,
    })
}

fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<T, CollectError> {
    let map = ebpf.take_map(name).ok_or(CollectError::MissingMap(name))?;
    T::try_from(map).map_err(|e| CollectError::Map(name, e))
}

fn map_mut<'a, T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<T, CollectError> {
    let map = ebpf.map_mut(name).ok_or(CollectError::MissingMap(name))?;
    T::try_from(map).map_err(|e| CollectError::Map(name, e))
}

fn configure_maps(ebpf: &mut Ebpf, opts: &LoadOptions) -> Result<(), CollectError> {
    {
        let mut specs: Array<_, SyscallSpec> = map_mut(ebpf, names::SYSCALL_SPECS)?;
        for c in syscalls::generic() {
            specs
                .set(c.nr, c.spec, 0)
                .map_err(|e| CollectError::Map(names::SYSCALL_SPECS, e))?;
        }
    }
    {
        let mut enabled: Array<_, u32> = map_mut(ebpf, names::KIND_ENABLED)?;
        for k in &opts.kinds {
            enabled
                .set(*k as u32, 1, 0)
                .map_err(|e| CollectError::Map(names::KIND_ENABLED, e))?;
        }
    }
    {
        let mut prefixes: Array<_, Prefix> = map_mut(ebpf, names::IGNORE_PREFIXES)?;
        for (i, p) in opts.ignore_prefixes.iter().enumerate() {
            let mut entry = Prefix {
                len: p.len().min(PREFIX_LEN) as u32,
                ..Default::default()
            };
            entry.bytes[..entry.len as usize].copy_from_slice(&p.as_bytes()[..entry.len as usize]);
            prefixes
                .set(i as u32, entry, 0)
                .map_err(|e| CollectError::Map(names::IGNORE_PREFIXES, e))?;
        }
    }
    let mut env_prefilter = [0u64; 4];
    let env_names = {
        let mut map: HashMap<_, EnvName, u8> = map_mut(ebpf, names::ENV_NAMES)?;
        let mut n = 0u32;
        for name in &opts.exec_env {
            // Names were validated with the configuration; one that does not fit is skipped.
            let (Some(key), Some(bit)) = (
                EnvName::new(name.as_bytes()),
                EnvName::prefilter_bit_of(name.as_bytes()),
            ) else {
                continue;
            };
            map.insert(key, 1, 0)
                .map_err(|e| CollectError::Map(names::ENV_NAMES, e))?;
            env_prefilter[(bit / 64) as usize] |= 1 << (bit % 64);
            n += 1;
        }
        n
    };
    let mut settings: Array<_, Settings> = map_mut(ebpf, names::SETTINGS)?;
    settings
        .set(
            0,
            Settings {
                ignore_prefix_count: opts.ignore_prefixes.len() as u32,
                wakeup_bytes: opts.wakeup_bytes,
                exec_env_names: env_names,
                _pad: 0,
                env_prefilter,
            },
            0,
        )
        .map_err(|e| CollectError::Map(names::SETTINGS, e))?;
    Ok(())
}

fn attach_all(
    ebpf: &mut Ebpf,
    opts: &LoadOptions,
    report: &mut AttachReport,
) -> Result<(), CollectError> {
    let wants = |k: Kind| opts.kinds.contains(&k);
    let p = Programs { floor: opts.floor };
    if wants(Kind::Exec) {
        if opts.floor.is_none() {
            // Before the entries that tail-call it.
            exec_env_tail(ebpf, report)?;
        }
        attach_tp(
            ebpf,
            p.tp("proc_enter_execve"),
            &["sys_enter_execve"],
            report,
        )?;
        attach_tp(
            ebpf,
            p.tp("proc_enter_execveat"),
            &["sys_enter_execveat"],
            report,
        )?;
        attach_tp(
            ebpf,
            p.tp("proc_exit_exec"),
            &["sys_exit_execve", "sys_exit_execveat"],
            report,
        )?;
        attach_raw(ebpf, p.raw("proc_sched_exec"), "sched_process_exec", report)?;
    }
    if wants(Kind::Fork) {
        attach_raw(ebpf, p.raw("proc_sched_fork"), "sched_process_fork", report)?;
    }
    if wants(Kind::Exit) {
        attach_raw(ebpf, p.raw("proc_sched_exit"), "sched_process_exit", report)?;
    }
    match opts.floor {
        Some(Floor::TpSysExit) => {
            let prog = "floor_tp_sys_exit";
            load_tp(ebpf, prog)?;
            let name = "raw_syscalls/sys_exit".to_string();
            match tracepoint(ebpf, prog)?.attach("raw_syscalls", "sys_exit") {
                Ok(_) => report.attached.push(name),
                Err(e) => report.failed.push((name, error_chain(&e))),
            }
            return Ok(());
        }
        Some(Floor::RawSysExit) => {
            if report.syscall_args == ArgsSource::Registers {
                attach_raw(ebpf, "floor_raw_sys_exit", "sys_exit", report)?;
            } else {
                report.failed.push((
                    "raw_tracepoint/sys_exit".into(),
                    "needs x86_64's register layout".into(),
                ));
            }
            return Ok(());
        }
        _ => {}
    }
    let mut generic: Vec<&str> = Vec::new();
    for c in syscalls::generic().filter(|c| Kind::from_u32(c.spec.kind).is_some_and(wants)) {
        if tracefs::has_syscall_tracepoint(&format!("sys_exit_{}", c.tracepoint())) {
            generic.push(c.tracepoint());
        } else {
            report.unavailable.push(c.name.to_string());
        }
    }
    if !generic.is_empty() {
        let enters: Vec<String> = generic.iter().map(|n| format!("sys_enter_{n}")).collect();
        let exits: Vec<String> = generic.iter().map(|n| format!("sys_exit_{n}")).collect();
        let enters: Vec<&str> = enters.iter().map(String::as_str).collect();
        let exits: Vec<&str> = exits.iter().map(String::as_str).collect();
        if report.syscall_args == ArgsSource::Registers {
            // Kernels without the helpers it uses (bpf_task_pt_regs, 5.15) refuse it: then
            // fall back to the stash.
            let regs = p.tp("syscall_exit_regs");
            match load_tp(ebpf, regs) {
                Ok(()) => {
                    attach_loaded(ebpf, regs, &exits, report)?;
                    return Ok(());
                }
                Err(e) => {
                    report.syscall_args = ArgsSource::Stash;
                    let why: String = error_chain(&e).chars().take(400).collect();
                    report.syscall_args_note = Some(format!(
                        "reading arguments from saved registers refused: {why}"
                    ));
                }
            }
        }
        // Exits first: an enter without its exit hook would only fill the stash.
        attach_tp(ebpf, p.tp("syscall_exit_emit"), &exits, report)?;
        let live_exits: BTreeSet<String> = report
            .attached
            .iter()
            .filter_map(|a| a.strip_prefix("syscalls/sys_exit_").map(str::to_string))
            .collect();
        let paired: Vec<&str> = enters
            .into_iter()
            .filter(|e| live_exits.contains(&e["sys_enter_".len()..]))
            .collect();
        attach_tp(ebpf, p.tp("syscall_enter_stash"), &paired, report)?;
    }
    Ok(())
}

/// Loads `prog` and attaches it to each `syscalls/<tp>`; a program the kernel refuses (an
/// older verifier can reject what a newer one accepts) and failures to attach are recorded
/// per hook, and the other hooks keep running.
fn attach_tp(
    ebpf: &mut Ebpf,
    prog: &'static str,
    tps: &[&str],
    report: &mut AttachReport,
) -> Result<(), CollectError> {
    if let Err(e) = load_tp(ebpf, prog) {
        let why = refusal(prog, &e);
        for tp in tps {
            report.failed.push((format!("syscalls/{tp}"), why.clone()));
        }
        return Ok(());
    }
    attach_loaded(ebpf, prog, tps, report)
}

/// Loads the exec environment program into the exec entries' tail-call slot. Refused, it is
/// reported as a failed hook `tail/proc_exec_env`, and exec records come without the
/// environment.
fn exec_env_tail(ebpf: &mut Ebpf, report: &mut AttachReport) -> Result<(), CollectError> {
    const PROG: &str = "proc_exec_env";
    if let Err(e) = load_tp(ebpf, PROG) {
        report
            .failed
            .push((format!("tail/{PROG}"), refusal(PROG, &e)));
        return Ok(());
    }
    let fd = tracepoint(ebpf, PROG)?
        .fd()
        .map_err(|e| CollectError::Program(PROG, Box::new(e)))?
        .try_clone()
        .map_err(|e| CollectError::Program(PROG, Box::new(e.into())))?;
    let mut tail: ProgramArray<_> = map_mut(ebpf, names::EXEC_TAIL)?;
    tail.set(0, &fd, 0)
        .map_err(|e| CollectError::Map(names::EXEC_TAIL, e))
}

/// Why the kernel refused `prog`, short enough for the status record: the error and the last
/// lines of the verifier log (which say what limit was hit). The whole log goes to the debug
/// log.
fn refusal(prog: &str, e: &CollectError) -> String {
    let full = error_chain(e);
    tracing::warn!("kernel program {prog} refused; its hooks are reported failed");
    tracing::debug!("{full}");
    match full.split_once("Verifier output:") {
        Some((head, log)) => {
            // The last lines that are not the closing statistics ("processed N insns").
            let stats = [
                "verification time",
                "stack depth",
                "processed ",
                "BPF program is",
            ];
            let mut tail: Vec<&str> = log
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !stats.iter().any(|s| l.starts_with(s)))
                .rev()
                .take(2)
                .collect();
            if let Some(limit) = log.lines().find(|l| l.starts_with("processed ")) {
                tail.insert(0, limit.trim());
            }
            tail.reverse();
            format!("{} verifier: {}", head.trim(), tail.join(" | "))
        }
        None => full,
    }
}

fn tracepoint<'a>(
    ebpf: &'a mut Ebpf,
    prog: &'static str,
) -> Result<&'a mut TracePoint, CollectError> {
    ebpf.program_mut(prog)
        .ok_or(CollectError::MissingProgram(prog))?
        .try_into()
        .map_err(|e| CollectError::Program(prog, Box::new(e)))
}

/// Loads `prog` unless it is already loaded (the floor's stand-ins serve several hooks).
fn load_tp(ebpf: &mut Ebpf, prog: &'static str) -> Result<(), CollectError> {
    let p = tracepoint(ebpf, prog)?;
    if p.fd().is_ok() {
        return Ok(());
    }
    p.load()
        .map_err(|e| CollectError::Program(prog, Box::new(e)))
}

fn attach_loaded(
    ebpf: &mut Ebpf,
    prog: &'static str,
    tps: &[&str],
    report: &mut AttachReport,
) -> Result<(), CollectError> {
    let p = tracepoint(ebpf, prog)?;
    for tp in tps {
        let name = format!("syscalls/{tp}");
        match p.attach("syscalls", tp) {
            Ok(_) => report.attached.push(name),
            Err(e) => report.failed.push((name, error_chain(&e))),
        }
    }
    Ok(())
}

fn attach_raw(
    ebpf: &mut Ebpf,
    prog: &'static str,
    tp: &str,
    report: &mut AttachReport,
) -> Result<(), CollectError> {
    let p: &mut RawTracePoint = ebpf
        .program_mut(prog)
        .ok_or(CollectError::MissingProgram(prog))?
        .try_into()
        .map_err(|e| CollectError::Program(prog, Box::new(e)))?;
    if p.fd().is_ok() {
        // Loaded for an earlier hook (the floor's stand-ins serve several).
    } else if let Err(e) = p.load() {
        let why = refusal(prog, &CollectError::Program(prog, Box::new(e)));
        report.failed.push((format!("raw_tracepoint/{tp}"), why));
        return Ok(());
    }
    match p.attach(tp) {
        Ok(_) => report.attached.push(format!("raw_tracepoint/{tp}")),
        Err(e) => report
            .failed
            .push((format!("raw_tracepoint/{tp}"), error_chain(&e))),
    }
    Ok(())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn raise_memlock() {
    // Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; newer ones ignore it.
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: valid pointer to an rlimit.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
    if r != 0 {
        tracing::debug!(
            "could not raise RLIMIT_MEMLOCK: {}",
            std::io::Error::last_os_error()
        );
    }
}
