//! The process table: what is known about every process over its life (exe, argv, cwd,
//! identity, tty, container, parent), seeded from /proc and kept current from fork, exec and
//! exit events. Processes are keyed by (pid, start time) so pid reuse never mixes two lives.

mod exe;
mod live;
pub mod users;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::event::{Event, Payload};

pub use live::{container_id, stdio_inet_sockets};

/// A process's identity across pid reuse: (pid, start time in epoch ns).
pub type ProcKey = (u32, i64);

/// Longest ancestor chain walked (guards against loops from inconsistent data).
const MAX_DEPTH: usize = 64;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Process {
    pub pid: u32,
    /// Epoch ns; from /proc at seed time, the fork event's time otherwise.
    pub start_ns: i64,
    pub ppid: u32,
    /// The parent's key, so the chain survives the parent's exit and pid reuse.
    pub parent: Option<ProcKey>,
    /// Executable path; empty when unknown (process older than the table, not seeded).
    /// The text fields are shared (`Arc`): a fork copies its parent, and the detections
    /// take copies of processes, thousands of times a second in an exec storm.
    pub exe: Arc<str>,
    pub argv: Arc<[String]>,
    pub cwd: Option<Arc<str>>,
    pub comm: Arc<str>,
    pub uid: u32,
    pub euid: u32,
    pub auid: Option<u32>,
    pub session: Option<u32>,
    /// Controlling terminal, e.g. "pts/3".
    pub tty: Option<Arc<str>>,
    pub cgroup_id: u64,
    /// Short container id when the process runs in a container.
    pub container: Option<Arc<str>>,
    pub exited_ns: Option<i64>,
    /// Effective uid before the last exec (privilege transitions through set-uid binaries).
    pub euid_before_exec: u32,
    /// This image (or an ancestor image whose fds it inherited) connected to an inet address.
    pub inet_connected: bool,
    /// memfd names created by this process since its last exec.
    pub memfds: Vec<String>,
    /// The last files this process opened read-only, by descriptor (at most `DIR_FDS`,
    /// newest last): `openat(fd, "name")` relative to one of them (tar -C, find, fts walks)
    /// names `<its path>/name`. Kept from the ordered event stream alone (never from
    /// /proc/PID/fd after the fact, which may already name the descriptor's next file). A
    /// descriptor's entry is replaced when an open returns it again; all are forgotten at
    /// exec.
    pub dir_fds: Vec<(i32, String)>,
}

/// Descriptors remembered per process for relative opens.
pub const DIR_FDS: usize = 64;

impl Process {
    pub fn key(&self) -> ProcKey {
        (self.pid, self.start_ns)
    }

    /// The exe's last path component, or comm when the exe is unknown.
    pub fn name(&self) -> &str {
        if self.exe.is_empty() {
            &self.comm
        } else {
            basename(&self.exe)
        }
    }

    /// Executable for display: the path, else "[comm]".
    pub fn exe_or_comm(&self) -> String {
        if self.exe.is_empty() {
            format!("[{}]", self.comm)
        } else {
            self.exe.to_string()
        }
    }

    pub fn principal(&self) -> u32 {
        self.auid.unwrap_or(self.uid)
    }

    /// The path descriptor `fd` names, when the table placed it (`dir_fds`).
    pub fn dir_of(&self, fd: i32) -> Option<&str> {
        self.dir_fds
            .iter()
            .find(|(f, _)| *f == fd)
            .map(|(_, d)| d.as_str())
    }

    /// Descriptor `fd` now names `path` (`None`: something that is not a directory, or
    /// unknown): what it named before is forgotten, and the oldest entry makes room.
    pub fn place_fd(&mut self, fd: i32, path: Option<String>) {
        self.dir_fds.retain(|(f, _)| *f != fd);
        if let Some(path) = path {
            if self.dir_fds.len() >= DIR_FDS {
                self.dir_fds.remove(0);
            }
            self.dir_fds.push((fd, path));
        }
    }
}

/// Whether an open with these flags may have returned a directory: a directory can only be
/// opened read-only and without O_CREAT (else EISDIR; O_TMPFILE, which includes O_DIRECTORY's
/// bit, asks for write access too), except with O_PATH, which ignores the access mode.
/// Walkers (tar, find's fts) open directories without O_DIRECTORY, so its absence says nothing.
fn could_be_directory(flags: u64) -> bool {
    let flags = flags as libc::c_int;
    flags & libc::O_PATH != 0
        || (flags & libc::O_ACCMODE == libc::O_RDONLY && flags & libc::O_CREAT == 0)
}

pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Joins a possibly relative path onto a working directory; keeps it as is when unknown.
/// The result is normalised lexically (`//`, `/./` and `/../` folded), so that
/// `/etc/../etc//shadow` is seen as the `/etc/shadow` it opens.
pub fn absolute(path: &str, cwd: Option<&str>) -> String {
    match cwd {
        Some(c) if !path.starts_with('/') && !path.is_empty() => {
            normalize(&format!("{}/{}", c.trim_end_matches('/'), path))
        }
        _ => normalize(path),
    }
}

/// Folds `//`, `/./` and `/../` of an absolute path; other paths are returned as they are.
fn normalize(path: &str) -> String {
    if !path.starts_with('/') || !foldable(path.as_bytes()) {
        return path.to_string();
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = String::with_capacity(path.len());
    for p in &parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Has the path a `//`, `/./`, `/..` or a final `/.` (one pass: nearly every path has none,
/// and this is asked of every path an event names)?
fn foldable(p: &[u8]) -> bool {
    p.iter().enumerate().any(|(i, b)| {
        *b == b'/'
            && match p.get(i + 1) {
                Some(b'/') => true,
                Some(b'.') => matches!(p.get(i + 2), None | Some(b'/' | b'.')),
                _ => false,
            }
    })
}

/// One shared copy of each executable path and command name the table holds: thousands of
/// processes run the same few programs. Bounded: past `NAMES` distinct names it starts over
/// (names still held by processes stay alive through them).
#[derive(Default)]
struct Names(HashSet<Arc<str>>);

const NAMES: usize = 4096;

impl Names {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(n) = self.0.get(s) {
            return n.clone();
        }
        if self.0.len() >= NAMES {
            self.0.clear();
        }
        let n: Arc<str> = s.into();
        self.0.insert(n.clone());
        n
    }
}

pub struct ProcessTable {
    live: HashMap<u32, Process>,
    names: Names,
    exes: exe::ExeLinks,
    /// Boxed: thousands churn a second in an exec storm, and a table of whole processes
    /// moved them on every insert and missed the cache on every probe.
    exited: HashMap<ProcKey, Box<Process>>,
    exited_order: VecDeque<ProcKey>,
    /// Start times of the exited processes kept for each pid, for lookups by (pid, time).
    exited_starts: HashMap<u32, Vec<i64>>,
    exited_cap: usize,
    /// Read /proc for processes the table has not seen (off for recorded streams).
    live_proc: bool,
    /// Counts the calls that may change the table (`version`).
    changes: u64,
}

impl ProcessTable {
    /// `exited_cap` bounds how many exited processes are kept for chains of their children.
    pub fn new(exited_cap: usize, live_proc: bool) -> ProcessTable {
        ProcessTable {
            live: HashMap::new(),
            names: Names::default(),
            exes: exe::ExeLinks::default(),
            exited: HashMap::new(),
            exited_order: VecDeque::new(),
            exited_starts: HashMap::new(),
            exited_cap,
            live_proc,
            changes: 0,
        }
    }

    /// Loads every running process from /proc. Returns how many were read.
    pub fn seed_from_proc(&mut self) -> usize {
        self.changes += 1;
        let procs = live::read_all();
        let n = procs.len();
        for p in procs {
            self.live.insert(p.pid, p);
        }
        self.link_parents();
        n
    }

    fn link_parents(&mut self) {
        let keys: HashMap<u32, ProcKey> = self.live.values().map(|p| (p.pid, p.key())).collect();
        for p in self.live.values_mut() {
            if p.parent.is_none() && p.ppid != 0 && p.ppid != p.pid {
                p.parent = keys.get(&p.ppid).copied();
            }
        }
    }

    /// The absolute path of a file an event names relative to a directory descriptor
    /// (`openat(fd, "name")`, `unlinkat(fd, "name")`) this process opened: tar -C, find and
    /// other tree walkers open every file that way, and the process's cwd says nothing about
    /// where they are. `None` when the event needs no change or the descriptor is unknown.
    pub fn placed_path(&self, ev: &Event) -> Option<String> {
        let (dfd, path) = match &ev.payload {
            Payload::Open { dfd, path, .. } | Payload::Unlink { dfd, path, .. } => (*dfd, path),
            _ => return None,
        };
        if dfd < 0 || path.as_bytes().first() == Some(&b'/') {
            return None;
        }
        let dir = self.live.get(&ev.pid)?.dir_of(dfd)?;
        Some(absolute(&path.lossy(), Some(dir)))
    }

    /// The event with its path placed (`placed_path`) and its descriptor set to the cwd's,
    /// for callers that did not place it in the event itself; `None` when it needs no change.
    pub fn resolve_at(&self, ev: &Event) -> Option<Event> {
        let abs = self.placed_path(ev)?;
        let mut out = ev.clone();
        match &mut out.payload {
            Payload::Open { dfd, path, .. } | Payload::Unlink { dfd, path, .. } => {
                *dfd = libc::AT_FDCWD;
                *path = crate::event::RawStr::from(abs.as_str());
            }
            _ => return None,
        }
        Some(out)
    }

    /// Changes whenever the table may have changed: what was worked out from it before
    /// holds while this stays the same.
    pub fn version(&self) -> u64 {
        self.changes
    }

    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.live.get(&pid)
    }

    pub fn by_key(&self, key: ProcKey) -> Option<&Process> {
        match self.live.get(&key.0) {
            Some(p) if p.start_ns == key.1 => Some(p),
            _ => self.exited.get(&key).map(|p| &**p),
        }
    }

    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    pub fn exited_count(&self) -> usize {
        self.exited.len()
    }

    /// The process that held `pid` at `time_ns`: the live one if it had started by then, else
    /// the latest exited one whose life covers that time. For records that arrive on another
    /// path than the kernel events (audit) and may be joined after the process exited.
    pub fn at(&self, pid: u32, time_ns: i64) -> Option<&Process> {
        // Audit times are whole milliseconds and /proc start times whole clock ticks.
        const SLACK_NS: i64 = 20_000_000;
        if let Some(p) = self.live.get(&pid)
            && p.start_ns <= time_ns + SLACK_NS
        {
            return Some(p);
        }
        self.exited_starts
            .get(&pid)?
            .iter()
            .filter(|s| **s <= time_ns + SLACK_NS)
            .max()
            .and_then(|s| self.exited.get(&(pid, *s)))
            .map(|p| &**p)
            .filter(|p| p.exited_ns.is_none_or(|e| e + SLACK_NS >= time_ns))
    }

    /// The ancestor chain, oldest first, ending with `pid` itself.
    pub fn chain(&self, pid: u32) -> Vec<&Process> {
        self.chain_from(self.live.get(&pid))
    }

    /// The ancestor chain of the process that held `pid` at `time_ns` (see [`Self::at`]).
    pub fn chain_at(&self, pid: u32, time_ns: i64) -> Vec<&Process> {
        self.chain_from(self.at(pid, time_ns))
    }

    fn chain_from<'a>(&'a self, start: Option<&'a Process>) -> Vec<&'a Process> {
        let mut out: Vec<&Process> = self.ancestry_from(start).collect();
        out.reverse();
        out
    }

    /// The process and its ancestors, newest first (the chain backwards, without collecting
    /// it: most questions stop at the first answer).
    pub fn ancestry(&self, pid: u32) -> impl Iterator<Item = &Process> {
        self.ancestry_from(self.live.get(&pid))
    }

    fn ancestry_from<'a>(
        &'a self,
        start: Option<&'a Process>,
    ) -> impl Iterator<Item = &'a Process> {
        let mut cur = start;
        std::iter::from_fn(move || {
            let p = cur?;
            cur = p.parent.and_then(|k| self.by_key(k));
            Some(p)
        })
        .take(MAX_DEPTH)
    }

    /// Makes sure the event's process is in the table (from /proc when allowed, else from
    /// the event header), so every stage after this can rely on `get(ev.pid)`.
    pub fn ensure(&mut self, ev: &Event) {
        self.changes += 1;
        if self.live.contains_key(&ev.pid) {
            return;
        }
        // A /proc entry that started after the event is a later holder of a reused pid.
        let from_proc = if self.live_proc {
            live::read_one(ev.pid).filter(|p| p.start_ns <= ev.time_ns + 2_000_000_000)
        } else {
            None
        };
        // /proc is read later than the event happened: it may already show a later uid or
        // program. The event header is the truth about identity at the event's time.
        let from_proc = from_proc.map(|p| Process {
            uid: ev.uid,
            euid: ev.euid,
            euid_before_exec: ev.euid,
            auid: ev.auid,
            session: ev.session,
            cgroup_id: ev.cgroup_id,
            comm: self.names.get(&ev.comm.lossy()),
            ..p
        });
        let mut p = from_proc.unwrap_or_else(|| Process {
            pid: ev.pid,
            start_ns: ev.time_ns,
            ppid: ev.ppid,
            comm: self.names.get(&ev.comm.lossy()),
            uid: ev.uid,
            euid: ev.euid,
            euid_before_exec: ev.euid,
            auid: ev.auid,
            session: ev.session,
            cgroup_id: ev.cgroup_id,
            ..Process::default()
        });
        if p.parent.is_none() {
            p.parent = self.live.get(&p.ppid).map(Process::key);
        }
        self.live.insert(p.pid, p);
    }

    /// Applies fork, exec and exit (and the bits of other events the table tracks).
    pub fn apply(&mut self, ev: &Event) {
        self.changes += 1;
        self.ensure(ev);
        match &ev.payload {
            Payload::Fork { child_pid, .. } => {
                // A new thread of the same process is not a new process.
                if *child_pid == ev.pid {
                    return;
                }
                if self.live.contains_key(child_pid) {
                    // The old holder of this pid died without us seeing its exit.
                    self.retire(*child_pid, ev.time_ns);
                }
                let Some(parent) = self.live.get(&ev.pid) else {
                    return;
                };
                let child = Process {
                    pid: *child_pid,
                    start_ns: ev.time_ns,
                    ppid: ev.pid,
                    parent: Some(parent.key()),
                    exited_ns: None,
                    memfds: Vec::new(),
                    ..parent.clone()
                };
                self.live.insert(*child_pid, child);
            }
            Payload::Exec { filename, argv, .. } if ev.ok() => {
                let live_proc = self.live_proc;
                if let Some(p) = self.live.get_mut(&ev.pid) {
                    // Exec keeps the working directory, which the table follows from fork and
                    // chdir records; /proc is asked only when it is unknown (read late, it can
                    // be the directory of whoever holds the pid by then, or fail).
                    if p.cwd.is_none() && live_proc {
                        p.cwd = live::cwd(ev.pid);
                    }
                    p.exe = self.exes.resolve(
                        &mut self.names,
                        &filename.lossy(),
                        p.cwd.as_deref(),
                        ev.cgroup_id,
                        ev.time_ns,
                        || exe::link_of(ev.pid, live_proc),
                    );
                    p.argv = argv.iter().map(|a| a.lossy().into_owned()).collect();
                    p.comm = self.names.get(&ev.comm.lossy());
                    p.euid_before_exec = p.euid;
                    p.uid = ev.uid;
                    p.euid = ev.euid;
                    p.auid = ev.auid;
                    p.session = ev.session;
                    p.cgroup_id = ev.cgroup_id;
                    p.memfds.clear();
                    // The old image's descriptors: most were close-on-exec (a PAM config read
                    // by sudo, say), and their numbers are reused by the new image, which opens
                    // its own directories (tar -C, find, rm -r) before it walks relative to them.
                    p.dir_fds.clear();
                }
            }
            Payload::Exit { .. } if ev.tid == ev.pid => self.retire(ev.pid, ev.time_ns),
            Payload::SetUid { ruid, euid, .. } if ev.ok() => {
                // The ids asked for, whether the header was taken before or after the change.
                if let Some(p) = self.live.get_mut(&ev.pid) {
                    p.uid = ruid.unwrap_or(ev.uid);
                    p.euid = euid.unwrap_or(ev.euid);
                }
            }
            Payload::Open { .. } => self.note_descriptor(ev),
            Payload::Chdir { path, fd } if ev.ok() => {
                let live_proc = self.live_proc;
                if let Some(p) = self.live.get_mut(&ev.pid) {
                    let dir: Option<Arc<str>> = match fd {
                        Some(fd) => p.dir_of(*fd).map(Into::into),
                        None => Some(absolute(&path.lossy(), p.cwd.as_deref()))
                            .filter(|d| d.starts_with('/'))
                            .map(Into::into),
                    };
                    // Unknown (fchdir to a descriptor the table never placed, a relative
                    // chdir from an unknown directory): asked from /proc, else unknown.
                    p.cwd = dir.or_else(|| live_proc.then(|| live::cwd(ev.pid)).flatten());
                }
            }
            Payload::Dup { fd } if ev.ret >= 0 => {
                // The copy names what the original names (fts walkers open a directory, then
                // work relative to an F_DUPFD copy of it); an unknown original unknowns the copy.
                if let Some(p) = self.live.get_mut(&ev.pid)
                    && let Ok(new) = i32::try_from(ev.ret)
                    && new != *fd
                {
                    let dir = p.dir_of(*fd).map(str::to_string);
                    p.place_fd(new, dir);
                }
            }
            Payload::MemfdCreate { name, .. } if ev.ok() => {
                if let Some(p) = self.live.get_mut(&ev.pid)
                    && p.memfds.len() < 16
                {
                    p.memfds.push(name.lossy().into_owned());
                }
            }
            Payload::Connect {
                addr: Some(_),
                port: Some(_),
                ..
            } if ev.ok() || ev.ret == -(libc::EINPROGRESS as i64) => {
                if let Some(p) = self.live.get_mut(&ev.pid) {
                    p.inet_connected = true;
                }
            }
            _ => {}
        }
    }

    /// Remembers which file a successful open's descriptor names, for the opens relative to
    /// it that may follow (`placed_path`). Every open the process made must come through here,
    /// in order, including the repeats the engine does not analyse again; a repeat *report*
    /// (`repeats > 0`) is not an open: its `ret` is the descriptor of the first open it copies,
    /// long since closed or reused, and taking it would misplace the next relative opens.
    /// An open for writing (or creating) cannot be a directory: it only forgets what its
    /// descriptor named before, without keeping a path.
    pub fn note_descriptor(&mut self, ev: &Event) {
        self.changes += 1;
        let Payload::Open { path, flags, .. } = &ev.payload else {
            return;
        };
        if ev.ret < 0 || ev.repeats > 0 {
            return;
        }
        let Some(p) = self.live.get_mut(&ev.pid) else {
            return;
        };
        let Ok(fd) = i32::try_from(ev.ret) else {
            return;
        };
        let dir = could_be_directory(*flags).then(|| absolute(&path.lossy(), p.cwd.as_deref()));
        p.place_fd(fd, dir);
    }

    /// Moves a live process to the bounded exited set.
    fn retire(&mut self, pid: u32, now_ns: i64) {
        let Some(mut p) = self.live.remove(&pid) else {
            return;
        };
        p.exited_ns = Some(now_ns);
        p.memfds = Vec::new();
        let key = p.key();
        self.exited.insert(key, Box::new(p));
        self.exited_starts.entry(key.0).or_default().push(key.1);
        self.exited_order.push_back(key);
        while self.exited_order.len() > self.exited_cap {
            if let Some(old) = self.exited_order.pop_front() {
                self.exited.remove(&old);
                if let Some(starts) = self.exited_starts.get_mut(&old.0) {
                    starts.retain(|s| *s != old.1);
                    if starts.is_empty() {
                        self.exited_starts.remove(&old.0);
                    }
                }
            }
        }
    }

    /// Drops live entries whose process is gone (their exit event was lost). Live mode only.
    pub fn prune_dead(&mut self, now_ns: i64) -> usize {
        self.changes += 1;
        if !self.live_proc {
            return 0;
        }
        let dead: Vec<u32> = self
            .live
            .keys()
            .copied()
            .filter(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
            .collect();
        for pid in &dead {
            self.retire(*pid, now_ns);
        }
        dead.len()
    }
}

#[cfg(test)]
mod tests;
