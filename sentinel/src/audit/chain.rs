//! Live process chains from /proc (best effort: a process may be gone or its pid reused) and
//! the parent/child pairs that make a chain suspicious, matched on exact names.

use crate::model::ChainLink;

const MAX_DEPTH: usize = 16;

/// Parses the fields of /proc/<pid>/stat that follow the `(comm)`; comm may hold spaces and
/// parentheses, so the split is at the last ')'.
pub fn parse_stat(text: &str) -> Option<(String, Vec<&str>)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    Some((comm, rest))
}

/// (ppid, comm, uid) of a live process.
fn proc_info(pid: u32) -> Option<(u32, String, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (comm, rest) = parse_stat(&stat)?;
    // rest[0] is the state, rest[1] the ppid.
    let ppid = rest.get(1)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(u32::MAX);
    Some((ppid, comm, uid))
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
    fn stat_with_parens_in_comm() {
        let (comm, rest) = parse_stat("42 (a (b) c) S 1 42 42 0").unwrap();
        assert_eq!(comm, "a (b) c");
        assert_eq!(rest[0], "S");
        assert_eq!(rest[1], "1");
        assert!(parse_stat("garbage").is_none());
    }
}
