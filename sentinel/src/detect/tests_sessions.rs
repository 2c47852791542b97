//! Findings are per login session: the same behaviour in two sessions of one user in one
//! window is two findings, each attributed to its own session.

use crate::config::Config;
use crate::detect::engine::{Engine, EngineOptions};
use crate::event::Event;
use crate::store::Store;

fn exec(id: u64, t: i64, pid: u32, session: u32, argv: &[&str]) -> Event {
    let argv: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    let line = format!(
        r#"{{"id":{id},"time_ns":{t},"pid":{pid},"tid":{pid},"ppid":1,"uid":1000,"gid":1000,"euid":1000,"auid":1000,"session":{session},"cgroup_id":1,"comm":"x","syscall":"execve","ret":0,"kind":"exec","filename":"/usr/bin/{}","argv":[{}],"argv_truncated":false}}"#,
        argv[0].trim_matches('"'),
        argv.join(",")
    );
    serde_json::from_str(&line).expect("test event")
}

#[test]
fn a_discovery_burst_in_each_of_two_sessions_is_two_findings() {
    let mut e = Engine::with_options(
        &Config::default(),
        Store::memory().expect("store"),
        EngineOptions {
            live: false,
            users: Some(crate::proc::users::UserDb::parse(
                "alice:x:1000:1000::/home/alice:/bin/bash\n",
            )),
            learn_all: false,
        },
    )
    .expect("engine");
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
