//! Findings are per login session: the same behaviour in two sessions of one user in one
//! window is two findings, each attributed to its own session.

use crate::event::Event;

fn exec(id: u64, t: i64, pid: u32, session: u32, argv: &[&str]) -> Event {
    let quoted: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    crate::detect::testing::event(
        id,
        t,
        pid,
        1,
        1000,
        session,
        &format!(
            r#""syscall":"execve","kind":"exec","filename":"/usr/bin/{}","argv":[{}],"argv_truncated":false"#,
            argv[0],
            quoted.join(",")
        ),
    )
}

#[test]
fn a_discovery_burst_in_each_of_two_sessions_is_two_findings() {
    let mut e = crate::detect::testing::engine("alice:x:1000:1000::/home/alice:/bin/bash\n");
    let t0 = 1_781_780_400_000_000_000i64;
    let mut found = Vec::new();
    let mut id = 0;
    for session in [11u32, 12] {
        for cmd in [&["id"][..], &["whoami"], &["uname", "-a"], &["hostname"]] {
            id += 1;
            let ev = exec(
                id,
                t0 + id as i64 * 1_000_000,
                100 + id as u32,
                session,
                cmd,
            );
            found.extend(e.observe(&ev));
        }
    }
    let sessions: Vec<Option<u32>> = found
        .iter()
        .filter(|a| a.factors.iter().any(|f| f.detection == "discovery_burst"))
        .map(|a| a.principal.session)
        .collect();
    assert_eq!(sessions, [Some(11), Some(12)], "{found:#?}");
}
