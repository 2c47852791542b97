//! Live process chains from /proc (best effort: a process may be gone or its pid reused) and
//! the parent/child pairs that make a chain suspicious, matched on exact names.

use crate::model::ChainLink;

const MAX_DEPTH: usize = 16;

/// (ppid, comm, uid) of a live process, from its stat and status files (the `procfs` crate).
fn proc_info(pid: u32) -> Option<(u32, String, u32)> {
    let p = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?;
    let stat = p.stat().ok()?;
    let uid = p.status().map(|s| s.ruid).unwrap_or(u32::MAX);
    Some((u32::try_from(stat.ppid).unwrap_or(0), stat.comm, uid))
}

fn exe_of(pid: u32, comm: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| comm.to_string())
}

/// The chain of `pid` and its live ancestors, oldest first (pid 1 included).
pub fn live_chain(pid: u32) -> Vec<ChainLink> {
    let mut links = Vec::new();
    let mut cur = pid;
    while cur > 0 && links.len() < MAX_DEPTH {
        let Some((ppid, comm, uid)) = proc_info(cur) else {
            break;
        };
        links.push(ChainLink {
            pid: cur,
            exe: exe_of(cur, &comm),
            argv: Vec::new(),
            uid,
        });
        if ppid == cur {
            break;
        }
        cur = ppid;
    }
    links.reverse();
    links
}

/// (parents, children, label): a child named in `children` directly under a parent named in
/// `parents` is suspicious. Exact base names, unlike C-Sentinel's substrings ("sh" in "sshd").
const RULES: &[(&[&str], &[&str], &str)] = &[
    (
        &["apache", "apache2", "httpd", "nginx", "lighttpd", "php-fpm"],
        &["sh", "bash", "dash", "zsh"],
        "web server spawned a shell",
    ),
    (
        &["apache", "apache2", "httpd", "nginx"],
        &["python", "python3", "perl", "ruby"],
        "web server spawned a script interpreter",
    ),
    (
        &["cron", "crond"],
        &["curl", "wget", "nc", "ncat", "socat"],
        "cron job fetching from or connecting to the network",
    ),
    (
        &[
            "postgres",
            "mysqld",
            "mariadbd",
            "mysql",
            "redis-server",
            "mongod",
        ],
        &["sh", "bash", "dash"],
        "database spawned a shell",
    ),
    (
        &["postfix", "master", "sendmail", "exim", "exim4"],
        &["sh", "bash", "dash"],
        "mail server spawned a shell",
    ),
];

fn base(exe: &str) -> &str {
    exe.rsplit('/').next().unwrap_or(exe)
}

/// The first suspicious (parent, child) pair of a chain (oldest first), as a label.
pub fn suspicious(chain: &[ChainLink]) -> Option<&'static str> {
    chain.windows(2).find_map(|w| {
        let (p, c) = (base(&w[0].exe), base(&w[1].exe));
        RULES
            .iter()
            .find(|(ps, cs, _)| ps.contains(&p) && cs.contains(&c))
            .map(|(_, _, l)| *l)
    })
}

/// A chain as "exe(pid) > exe(pid)" for text output.
pub fn render(chain: &[ChainLink]) -> String {
    render_tail(chain, usize::MAX)
}

/// The last `n` links of a chain, with "... > " when some were left out.
pub fn render_tail(chain: &[ChainLink], n: usize) -> String {
    let skip = chain.len().saturating_sub(n);
    let shown = chain[skip..]
        .iter()
        .map(|l| format!("{}({})", base(&l.exe), l.pid))
        .collect::<Vec<_>>()
        .join(" > ");
    if skip > 0 {
        format!("... > {shown}")
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(exe: &str) -> ChainLink {
        ChainLink {
            pid: 1,
            exe: exe.into(),
            argv: vec![],
            uid: 0,
        }
    }

    #[test]
    fn own_chain_ends_with_self_and_starts_at_init() {
        let me = std::process::id();
        let c = live_chain(me);
        assert_eq!(c.last().unwrap().pid, me);
        assert!(c.len() >= 2);
        assert_eq!(c[0].pid, 1);
    }

    #[test]
    fn exact_names_no_substring_false_positives() {
        assert_eq!(
            suspicious(&[link("/usr/sbin/nginx"), link("/bin/sh")]),
            Some("web server spawned a shell")
        );
        assert_eq!(
            suspicious(&[link("/usr/sbin/sshd"), link("/bin/bash")]),
            None
        );
        assert_eq!(
            suspicious(&[link("/usr/sbin/anacron"), link("/usr/bin/rsync")]),
            None
        );
    }

    #[test]
    fn live_chain_of_this_process_ends_with_it_and_starts_at_init() {
        let me = std::process::id();
        let chain = live_chain(me);
        assert_eq!(chain.last().map(|l| l.pid), Some(me));
        assert!(chain.len() >= 2, "{chain:?}");
        assert!(chain.iter().all(|l| l.uid != u32::MAX), "{chain:?}");
    }
}
