//! File provenance: who wrote each file that may later be executed. Every successful open for
//! writing (and the destination of a rename or hard link) records the writer: its executable,
//! lineage, principal and uid, the time, and what kind of writer it was (package manager,
//! compiler or linker, downloader, archive extractor, other). A rename carries the record to
//! the new name, a link copies it, a delete forgets it. An execution from a writable place is
//! then weighed by where the file came from (`Engine::exec_from_writable`): built by this
//! user's known build lineage is ordinary, downloaded and run is not.
//!
//! Memory is bounded: at most `detect.provenance_cap` files (least recently written or run go
//! first, counted in `Stats::provenance_evicted`) and 4096 processes' last destination.

use std::num::NonZeroUsize;

use lru::LruCache;

use super::engine::{Engine, Hit};
use super::rules::{destination, hit, is_write};
use crate::event::{Event, Payload};
use crate::proc::{ProcKey, Process};
use crate::profile::Calibration;
use crate::profile::baseline::KIND_LINEAGE;

/// What kind of program wrote a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WriterKind {
    PackageManager,
    Compiler,
    Downloader,
    Extractor,
    Other,
}

/// Who wrote a file, and when.
#[derive(Clone, Debug)]
pub(super) struct Origin {
    /// The writer's executable ("[comm]" when unknown).
    pub exe: String,
    pub lineage: String,
    pub principal: u32,
    pub uid: u32,
    pub time_ns: i64,
    pub kind: WriterKind,
    /// The last inet address:port the writer had connected to, if any.
    pub remote: Option<String>,
}

/// Processes whose last destination is remembered.
const REMOTES: usize = 4096;
/// Files remembered per process for a later connect.
const WRITTEN_PER_PROCESS: usize = 8;

pub(super) struct Provenance {
    files: LruCache<String, Origin>,
    remotes: LruCache<ProcKey, String>,
    /// The last files each process opened for writing: a program that opens its output
    /// first and connects after (`open(out).write(urlopen(..).read())`) is a downloader too.
    written: LruCache<ProcKey, Vec<String>>,
    /// Records pushed out by the cap before their file was run (or deleted).
    pub evicted: u64,
}

impl Provenance {
    pub fn new(cap: usize) -> Provenance {
        let cap = NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN);
        let remotes = NonZeroUsize::new(REMOTES).unwrap_or(NonZeroUsize::MIN);
        Provenance {
            files: LruCache::new(cap),
            remotes: LruCache::new(remotes),
            written: LruCache::new(remotes),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    fn put(&mut self, path: String, o: Origin) {
        if let Some((old, _)) = self.files.push(path.clone(), o)
            && old != path
        {
            self.evicted += 1;
        }
    }

    /// The writer of `path`, if remembered.
    pub fn get(&mut self, path: &str) -> Option<&Origin> {
        self.files.get(path)
    }
}

/// Paths whose writers are not worth remembering (devices, kernel files, unresolved); files
/// in /dev/shm are files like any other.
fn trackable(path: &str) -> bool {
    path.starts_with('/')
        && (!path.starts_with("/dev/") || path.starts_with("/dev/shm/"))
        && !path.starts_with("/proc/")
        && !path.starts_with("/sys/")
}

/// "3 s", "4 min", "2 h", "5 days".
fn ago(ns: i64) -> String {
    let s = ns.max(0) / 1_000_000_000;
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// A path with every generated-looking run of letters and digits replaced by "#": runs that
/// contain a digit, and runs of 6 or more that mix upper and lower case (mktemp's
/// `tmp.AbCdEfGhIj`). `/tmp/ci-4711/run.sh` and `/tmp/ci-4712/run.sh` have the same shape, as
/// do cargo's `deps/app-3f2a1b` files of two builds.
pub(super) fn shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let b = run.as_bytes();
        let mixed = b.len() >= 6
            && b.iter().any(u8::is_ascii_uppercase)
            && b.iter().any(u8::is_ascii_lowercase);
        if mixed || b.iter().any(u8::is_ascii_digit) {
            out.push('#');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in path.chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

impl Engine {
    /// Keeps the provenance records current: writes, renames, links, deletes, and the last
    /// destination of each process.
    pub(super) fn track_provenance(&mut self, ev: &Event, principal: u32) {
        if !ev.ok() && ev.ret != -(libc::EINPROGRESS as i64) {
            return;
        }
        match &ev.payload {
            Payload::Open { path, flags, .. } if is_write(*flags) => {
                let path = self.path_of(ev.pid, &path.lossy());
                if trackable(&path)
                    && let Some(o) = self.writer(ev, principal)
                {
                    if let Some(p) = self.procs.get(ev.pid) {
                        let key = p.key();
                        let list = self.provenance.written.get_or_insert_mut(key, Vec::new);
                        if list.len() >= WRITTEN_PER_PROCESS {
                            list.remove(0);
                        }
                        list.push(path.clone());
                    }
                    self.provenance.put(path, o);
                }
            }
            Payload::Rename {
                old_path, new_path, ..
            } => self.carry_provenance(ev, principal, old_path, new_path, false),
            // A link is a new name for the file (a symlink's target is resolved at exec).
            Payload::Link { target, link, .. } => {
                self.carry_provenance(ev, principal, target, link, true)
            }
            Payload::Unlink { path, .. } => {
                let path = self.path_of(ev.pid, &path.lossy());
                self.provenance.files.pop(&path);
            }
            Payload::Connect { .. } => {
                if let (Some((d, _)), Some(p)) = (destination(ev), self.procs.get(ev.pid)) {
                    let key = p.key();
                    // What it wrote before connecting was filled from the network.
                    let paths = self
                        .provenance
                        .written
                        .peek(&key)
                        .cloned()
                        .unwrap_or_default();
                    for path in paths {
                        if let Some(o) = self.provenance.files.peek_mut(&path)
                            && matches!(o.kind, WriterKind::Other)
                        {
                            o.kind = WriterKind::Downloader;
                            o.remote = Some(d.clone());
                        }
                    }
                    self.provenance.remotes.put(key, d);
                }
            }
            _ => {}
        }
    }

    /// A file's record follows it to its new name: moved by a rename, copied by a link.
    fn carry_provenance(
        &mut self,
        ev: &Event,
        principal: u32,
        old: &crate::event::RawStr,
        new: &crate::event::RawStr,
        copy: bool,
    ) {
        let old = self.path_of(ev.pid, &old.lossy());
        let new = self.path_of(ev.pid, &new.lossy());
        if !trackable(&new) {
            return;
        }
        let carried = if copy {
            self.provenance.files.peek(&old).cloned()
        } else {
            self.provenance.files.pop(&old)
        };
        match carried.or_else(|| self.writer(ev, principal)) {
            Some(o) => self.provenance.put(new, o),
            None => {
                self.provenance.files.pop(&new);
            }
        }
    }

    /// The writer record for the process of `ev`.
    fn writer(&mut self, ev: &Event, principal: u32) -> Option<Origin> {
        let p = self.procs.get(ev.pid)?;
        let lists = &self.cats.lists;
        let remote = self.provenance.remotes.peek(&p.key()).cloned();
        let kind = if self.under_package_manager(ev.pid) {
            WriterKind::PackageManager
        } else if self.cats.exempt(&lists.compilers, &p.exe, &p.comm) {
            WriterKind::Compiler
        } else if p.inet_connected
            || remote.is_some()
            || crate::profile::categories::lists_program(&lists.downloaders, &p.exe, &p.comm)
        {
            WriterKind::Downloader
        } else if self.cats.exempt(&lists.extractors, &p.exe, &p.comm) {
            WriterKind::Extractor
        } else {
            WriterKind::Other
        };
        Some(Origin {
            exe: p.exe_or_comm(),
            lineage: self.lineage(ev.pid),
            principal,
            uid: p.uid,
            time_ns: ev.time_ns,
            kind,
            remote,
        })
    }

    /// Does the principal's baseline already know `exe` (or a path of the same shape) as a
    /// program it runs from a writable place?
    fn known_writable_exec(&self, principal: u32, exe: &str) -> bool {
        let Some(prof) = self.usable_profile(principal) else {
            return false;
        };
        if prof.writable_execs.contains_key(exe) {
            return true;
        }
        let s = shape(exe);
        prof.writable_execs.keys().any(|k| shape(k) == s)
    }

    /// Is `lineage` a lineage this principal's baseline knows (calibrating or calibrated)?
    pub(super) fn known_lineage(&self, principal: u32, lineage: &str) -> bool {
        self.baselines
            .get(KIND_LINEAGE, &format!("{principal}|{lineage}"))
            .is_some_and(|p| p.state >= Calibration::Calibrating)
    }

    /// `exec_from_writable`, weighed by the provenance of the file and the baseline.
    /// A program run from outside the writable places that a downloader (or a writer that
    /// had connected out) wrote within the last hour: a tool fetched and started, wherever it
    /// was put (~/.local/bin, /opt, /usr/local/bin). Package managers' files are not.
    pub(super) fn downloaded_exec(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        hits: &mut Vec<Hit>,
    ) {
        const RECENT_NS: i64 = 3_600 * 1_000_000_000;
        let Some(o) = self.provenance.get(&p.exe).cloned() else {
            return;
        };
        if o.kind != WriterKind::Downloader
            || ev.time_ns - o.time_ns > RECENT_NS
            || self.known_writable_exec(principal, &p.exe)
            || !self.first_time(principal, "downloaded_exec", &p.exe)
        {
            return;
        }
        let from = o
            .remote
            .as_deref()
            .map(|r| format!(" (connected to {r})"))
            .unwrap_or_default();
        hits.push(hit(
            "downloaded_exec",
            format!(
                "ran {}, downloaded by {}{from} {} ago: a tool fetched from elsewhere and started",
                p.exe,
                o.exe,
                ago(ev.time_ns - o.time_ns)
            ),
            self.cfg.weights.downloaded_exec,
            ev,
        ));
    }

    pub(super) fn exec_from_writable(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        dir: &str,
        hits: &mut Vec<Hit>,
    ) {
        let w = self.cfg.weights.exec_from_writable;
        let base = format!("executed {} from {dir}, a world-writable place", p.exe);
        if self.known_writable_exec(principal, &p.exe) {
            return;
        }
        let Some(o) = self.provenance.get(&p.exe).cloned() else {
            hits.push(hit("exec_from_writable", base, w, ev));
            return;
        };
        let when = ago(ev.time_ns - o.time_ns);
        let by_other = if o.principal != principal {
            format!(" for another user ({})", self.users.display(o.principal))
        } else {
            String::new()
        };
        let (weight, why) = match o.kind {
            WriterKind::Downloader => {
                let from = o
                    .remote
                    .as_deref()
                    .map(|r| format!(" (connected to {r})"))
                    .unwrap_or_default();
                (
                    w.saturating_add(w / 2).min(100),
                    format!("downloaded by {}{from} {when} ago and run", o.exe),
                )
            }
            WriterKind::Compiler
                if o.principal == principal && self.known_lineage(principal, &o.lineage) =>
            {
                // Built by this user's known build lineage: ordinary development.
                return;
            }
            WriterKind::Compiler => (
                w / 2,
                format!(
                    "built by {} {when} ago{by_other} in a lineage ({}) not seen in this user's baseline",
                    o.exe, o.lineage
                ),
            ),
            WriterKind::PackageManager => (
                w / 4,
                format!("installed by {} {when} ago{by_other}", o.exe),
            ),
            WriterKind::Extractor => (w, format!("unpacked by {} {when} ago{by_other}", o.exe)),
            WriterKind::Other => (
                w,
                format!("written by {} (uid {}) {when} ago{by_other}", o.exe, o.uid),
            ),
        };
        if weight > 0 {
            hits.push(hit(
                "exec_from_writable",
                format!("{base}: {why}"),
                weight,
                ev,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_downloaded_tool_run_from_home_is_reported() {
        use crate::detect::testing::{engine, event};
        let t = 1_781_780_400_000_000_000i64;
        let mut e = engine("alice:x:1000:1000::/home/alice:/bin/bash\n");
        let mut out = Vec::new();
        for ev in [
            event(
                1,
                t,
                70,
                1,
                1000,
                5,
                r#""syscall":"execve","kind":"exec","filename":"/usr/bin/python3","argv":["python3","-c","fetch"],"argv_truncated":false"#,
            ),
            event(
                2,
                t + 1_000,
                70,
                1,
                1000,
                5,
                r#""syscall":"connect","kind":"connect","fd":3,"family":"inet","addr":"203.0.113.7","port":80"#,
            ),
            event(
                3,
                t + 2_000,
                70,
                1,
                1000,
                5,
                r#""syscall":"openat","kind":"open","dfd":-100,"path":"/home/alice/.local/bin/chisel","flags":577,"mode":420"#,
            ),
            event(
                4,
                t + 3_000,
                71,
                1,
                1000,
                5,
                r#""syscall":"execve","kind":"exec","filename":"/home/alice/.local/bin/chisel","argv":["chisel"],"argv_truncated":false"#,
            ),
        ] {
            out.extend(e.observe(&ev));
        }
        let f = out
            .iter()
            .flat_map(|a| &a.factors)
            .find(|f| f.detection == "downloaded_exec")
            .unwrap_or_else(|| panic!("{out:#?}"));
        assert!(
            f.reason
                .contains("downloaded by /usr/bin/python3 (connected to 203.0.113.7:80)"),
            "{}",
            f.reason
        );
        assert!(f.weight >= 25);
    }

    #[test]
    fn shapes_hide_generated_names_only() {
        assert_eq!(shape("/tmp/ci-4711/run.sh"), shape("/tmp/ci-4712/run.sh"));
        assert_eq!(
            shape("/tmp/p/target/debug/deps/p-3f2a1b9c"),
            "/tmp/p/target/debug/deps/p-#"
        );
        assert_eq!(shape("/tmp/.x/kworker"), "/tmp/.x/kworker");
        assert_eq!(
            shape("/tmp/tmp.AbCdEfGhIj/t"),
            shape("/tmp/tmp.XyZ12aBc9Q/t")
        );
        assert_eq!(shape("/tmp/tmp/run"), "/tmp/tmp/run");
        assert_ne!(shape("/tmp/.x/kworker"), shape("/tmp/.y/kworker"));
    }

    #[test]
    fn the_cap_evicts_and_counts() {
        let mut p = Provenance::new(2);
        let o = Origin {
            exe: "/usr/bin/cc".into(),
            lineage: "make>cc".into(),
            principal: 1000,
            uid: 1000,
            time_ns: 0,
            kind: WriterKind::Compiler,
            remote: None,
        };
        p.put("/tmp/a".into(), o.clone());
        p.put("/tmp/a".into(), o.clone());
        assert_eq!(p.evicted, 0, "rewriting a file is not an eviction");
        p.put("/tmp/b".into(), o.clone());
        p.put("/tmp/c".into(), o);
        assert_eq!(p.evicted, 1);
        assert_eq!(p.len(), 2);
        assert!(p.get("/tmp/a").is_none() && p.get("/tmp/c").is_some());
    }

    #[test]
    fn shared_memory_files_are_tracked_devices_are_not() {
        assert!(trackable("/dev/shm/.x/e") && trackable("/tmp/a"));
        assert!(!trackable("/dev/null") && !trackable("/proc/self/fd/3") && !trackable("rel"));
    }

    #[test]
    fn ages_read_plainly() {
        assert_eq!(ago(3_000_000_000), "3 s");
        assert_eq!(ago(600_000_000_000), "10 min");
        assert_eq!(ago(-5), "0 s");
    }
}
