//! The executable of an exec: the path as executed, canonicalised through the kernel's exe
//! link, with what links in root-owned program directories say remembered for a while.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Names, absolute, basename, live};

/// The executable of an exec: the path as executed (made absolute), or the kernel's exe link
/// when it names the same program (canonical directory) or the path was a descriptor (memfd).
/// The link is read after the fact and may already show a later exec; then it is ignored.
pub(super) fn exec_path(given: String, filename: &str, link: Option<String>) -> String {
    match link {
        Some(l)
            if basename(&l) == basename(&given)
                || l.starts_with("/memfd:")
                || filename.starts_with("/dev/fd/")
                || filename.starts_with("/proc/") =>
        {
            l
        }
        _ => given,
    }
}

/// Directories only root can change on a normal system: what an exec path below them resolves
/// to stays the same until root changes it. (`/usr/local` is left out: on Debian it may be
/// writable by the `staff` group.)
const ROOT_DIRS: [&str; 8] = [
    "/usr/bin/",
    "/usr/sbin/",
    "/bin/",
    "/sbin/",
    "/usr/libexec/",
    "/usr/lib/",
    "/lib/",
    "/lib64/",
];

fn root_owned(path: &str) -> bool {
    ROOT_DIRS.iter().any(|d| path.starts_with(d)) && !path.contains("/../")
}

/// Most entries kept; past it the cache starts over.
const CAP: usize = 1024;
/// How long an entry is trusted (a package upgrade may move a program).
const TTL_NS: i64 = 60_000_000_000;

/// What exec paths in root-owned program directories resolved to, per cgroup (a container has
/// its own /bin): /bin/ls is /usr/bin/ls on a merged-/usr system. Reading /proc/PID/exe was a
/// tenth of the agent's CPU per exec in an exec storm, nearly always to learn the same thing.
/// Paths elsewhere (a user's own programs, memfds, /proc/self/fd) are read every time.
#[derive(Default)]
pub(super) struct ExeLinks {
    /// By cgroup, then by path: looked up by `&str`, without building a key.
    map: HashMap<u64, HashMap<Box<str>, Arc<str>>>,
    /// Entries in all cgroups.
    len: usize,
    /// When the entries were started (event time, ns).
    since_ns: i64,
}

impl ExeLinks {
    /// The executable of an exec of `filename` (as the event gives it) at `time_ns`, by a
    /// process in `cgroup` whose working directory is `cwd`; `read_link` reads its exe link
    /// (None when it cannot be read, or /proc is not to be read).
    pub(super) fn resolve(
        &mut self,
        names: &mut Names,
        filename: &str,
        cwd: Option<&str>,
        cgroup: u64,
        time_ns: i64,
        read_link: impl FnOnce() -> Option<String>,
    ) -> Arc<str> {
        let given = absolute(filename, cwd);
        if time_ns.saturating_sub(self.since_ns) >= TTL_NS || self.len >= CAP {
            self.map.clear();
            self.len = 0;
            self.since_ns = time_ns;
        }
        let cacheable = root_owned(&given);
        if cacheable && let Some(exe) = self.map.get(&cgroup).and_then(|m| m.get(given.as_str())) {
            return exe.clone();
        }
        let link = read_link();
        // Only a link that was read and names a root-owned file is remembered: an unreadable
        // link (the process already gone) says nothing about the next exec of the same path.
        let remember = cacheable && link.as_deref().is_some_and(root_owned);
        let exe = names.get(&exec_path(given.clone(), filename, link));
        if remember {
            let old = self
                .map
                .entry(cgroup)
                .or_default()
                .insert(given.into(), exe.clone());
            self.len += usize::from(old.is_none());
        }
        exe
    }
}

/// The exe link of `pid`, when /proc is to be read.
pub(super) fn link_of(pid: u32, live_proc: bool) -> Option<String> {
    live_proc.then(|| live::exe(pid)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_paths_prefer_the_event_over_a_later_exe_link() {
        let path = |f: &str, cwd, link: Option<&str>| {
            exec_path(absolute(f, cwd), f, link.map(str::to_string))
        };
        assert_eq!(path("/bin/sh", None, Some("/usr/bin/dash")), "/bin/sh");
        assert_eq!(path("/bin/ls", None, Some("/usr/bin/ls")), "/usr/bin/ls");
        assert_eq!(
            path("/proc/self/fd/3", None, Some("/memfd:x (deleted)")),
            "/memfd:x (deleted)"
        );
        assert_eq!(path("./a", Some("/w"), None), "/w/a");
    }

    #[test]
    fn links_in_root_owned_directories_are_read_once_per_cgroup_and_minute() {
        let mut links = ExeLinks::default();
        let mut names = Names::default();
        /// (exec path, cgroup, time, the link if read, expected executable, link read?)
        type Exec = (
            &'static str,
            u64,
            i64,
            Option<&'static str>,
            &'static str,
            bool,
        );
        let execs: [Exec; 11] = [
            ("/bin/ls", 1, 0, Some("/usr/bin/ls"), "/usr/bin/ls", true),
            // The same path later: remembered, even if the process is gone by now.
            ("/bin/ls", 1, 5, None, "/usr/bin/ls", false),
            // Another cgroup (a container's own /bin) reads its own.
            ("/bin/ls", 2, 6, Some("/bin/ls"), "/bin/ls", true),
            // A minute on, the link is read again.
            (
                "/bin/ls",
                1,
                TTL_NS + 1,
                Some("/usr/bin/ls"),
                "/usr/bin/ls",
                true,
            ),
            // Programs of users are read every time.
            ("./tool", 1, 7, Some("/home/u/tool"), "/home/u/tool", true),
            ("./tool", 1, 8, Some("/home/u/tool"), "/home/u/tool", true),
            // An unreadable link is not remembered.
            ("/usr/bin/id", 1, 9, None, "/usr/bin/id", true),
            (
                "/usr/bin/id",
                1,
                10,
                Some("/usr/bin/id"),
                "/usr/bin/id",
                true,
            ),
            ("/usr/bin/id", 1, 13, None, "/usr/bin/id", false),
            // A root-owned path whose link leads out of the root-owned directories.
            ("/bin/x", 1, 11, Some("/tmp/x"), "/tmp/x", true),
            ("/bin/x", 1, 12, Some("/tmp/x"), "/tmp/x", true),
        ];
        for (file, cgroup, t, link, want, read) in execs {
            let mut was_read = false;
            let exe = links.resolve(&mut names, file, Some("/home/u"), cgroup, t, || {
                was_read = true;
                link.map(str::to_string)
            });
            assert_eq!((&*exe, was_read), (want, read), "{file} in {cgroup} at {t}");
        }
    }
}
