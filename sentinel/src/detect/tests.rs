//! Each detection played from a recorded stream (tests/data/detect, written by
//! make_fixtures.py) against a baseline learned from baseline.jsonl.

use std::path::{Path, PathBuf};

use super::engine::{Engine, EngineOptions};
use super::replay::{read_events, replay};
use super::testing::TestConfig;
use crate::event::Event;
use crate::model::{Anomaly, Level};
use crate::proc::users::UserDb;
use crate::profile::Calibration;
use crate::store::Store;

pub(super) fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/detect")
        .join(name)
}

pub(super) fn events(name: &str) -> Vec<Event> {
    read_events(&data(&format!("{name}.jsonl"))).unwrap()
}

pub(super) fn config() -> TestConfig {
    TestConfig::default()
}

pub(super) fn engine_with(cfg: &TestConfig, store: Store, learn_all: bool) -> Engine {
    Engine::with_options(
        &cfg.detect,
        cfg.host_name(),
        store,
        EngineOptions {
            live: false,
            users: Some(UserDb::load(&data("passwd"))),
            learn_all,
        },
    )
    .unwrap()
}

/// A store holding the vouched baseline of the recorded working days.
pub(super) fn learned() -> Store {
    let mut e = engine_with(&config(), Store::memory().unwrap(), true);
    let a = replay(&mut e, &events("baseline"));
    assert!(a.is_empty(), "the baseline itself is benign: {a:#?}");
    assert!(e.vouch().unwrap() > 0);
    e.into_store()
}

pub(super) fn play(name: &str) -> Vec<Anomaly> {
    let mut e = engine_with(&config(), learned(), false);
    replay(&mut e, &events(name))
}

/// The factor of `detection` across the anomalies, asserting it exists.
pub(super) fn factor<'a>(
    anoms: &'a [Anomaly],
    detection: &str,
) -> (&'a Anomaly, &'a crate::model::Factor) {
    anoms
        .iter()
        .find_map(|a| {
            a.factors
                .iter()
                .find(|f| f.detection == detection)
                .map(|f| (a, f))
        })
        .unwrap_or_else(|| panic!("no {detection} factor in {anoms:#?}"))
}

pub(super) fn assert_reason(anoms: &[Anomaly], detection: &str, parts: &[&str]) -> Anomaly {
    factor(anoms, detection);
    let (a, f) = anoms
        .iter()
        .find_map(|a| {
            a.factors
                .iter()
                .find(|f| f.detection == detection && parts.iter().all(|p| f.reason.contains(p)))
                .map(|f| (a, f))
        })
        .unwrap_or_else(|| {
            let reasons: Vec<&str> = anoms
                .iter()
                .flat_map(|a| &a.factors)
                .filter(|f| f.detection == detection)
                .map(|f| f.reason.as_str())
                .collect();
            panic!("no {detection} factor with {parts:?} among {reasons:#?}")
        });
    assert!(!f.evidence.is_empty());
    for id in &f.evidence {
        assert!(
            a.evidence.iter().any(|e| &e.id == id),
            "evidence {id} missing"
        );
    }
    let (score, level) = Anomaly::score_of(&a.factors);
    assert_eq!((a.score, a.level), (score, level));
    a.clone()
}

#[test]
fn benign_developer_work_raises_nothing_above_low() {
    let a = play("benign");
    assert!(a.iter().all(|x| x.level == Level::Low), "{a:#?}");
}

#[test]
fn credential_file_access_by_an_unusual_process() {
    let a = play("credential_access");
    let x = assert_reason(
        &a,
        "credential_access",
        &["read /etc/shadow: never seen for this user in 2 days of baseline"],
    );
    assert_eq!(x.principal.uid, 1000);
    assert_eq!(x.principal.user.as_deref(), Some("alice"));
    let chain: Vec<&str> = x.chain.iter().map(|l| l.exe.as_str()).collect();
    assert_eq!(
        chain,
        [
            "[sshd]",
            "/usr/sbin/sshd",
            "/bin/bash",
            "/usr/bin/sudo",
            "/bin/bash",
            "/usr/bin/python3"
        ]
    );
    assert!(x.level >= Level::Medium);
}

#[test]
fn execution_from_tmp_scores_with_its_context() {
    let a = play("exec_tmp");
    let x = assert_reason(
        &a,
        "exec_from_writable",
        &[
            "executed /tmp/.x/kworker from /tmp/, a world-writable place",
            "downloaded by /usr/bin/curl (connected to 203.0.113.9:80) 0 s ago and run",
        ],
    );
    assert_reason(
        &a,
        "new_binary",
        &["/tmp/.x/kworker was never run by this user"],
    );
    assert_reason(
        &a,
        "masquerade",
        &[
            "named like a kernel thread (kworker)",
            "hidden directory /tmp/.x",
        ],
    );
    // Scoring arithmetic: 40 x 1.5 (exec_from_writable of a downloaded file) + 35
    // (masquerade) + 10 (new_binary) = 105, capped at 100.
    assert_eq!(x.score, 100);
    assert_eq!(x.level, Level::Critical);
    assert_reason(
        &a,
        "new_destination",
        &["203.0.113.9:80", "never seen for this user"],
    );
}

#[test]
fn execution_from_memfd() {
    let a = play("exec_memfd");
    assert_reason(&a, "exec_from_memfd", &["memfd:payload", "/proc/self/fd/3"]);
}

#[test]
fn shell_spawned_by_a_network_service() {
    let a = play("service_shell");
    let x = assert_reason(
        &a,
        "service_shell",
        &["shell /bin/sh spawned by network-facing service /usr/sbin/php-fpm8.2"],
    );
    assert_eq!(x.principal.user.as_deref(), Some("www-data"));
}

#[test]
fn reverse_shells() {
    let a = play("reverse_shell");
    assert_reason(
        &a,
        "reverse_shell",
        &[
            "shell /bin/sh started by /usr/bin/python3",
            "network connection",
        ],
    );
    let a = play("bash_tcp");
    let x = assert_reason(
        &a,
        "reverse_shell",
        &["shell /bin/bash connected to 198.51.100.7:4444"],
    );
    assert!(x.level >= Level::High);
}

#[test]
fn first_ever_destination_but_not_the_usual_one() {
    let a = play("new_destination");
    assert_reason(
        &a,
        "new_destination",
        &[
            "connected to 203.0.113.50:8443 with /usr/bin/curl",
            "2 days of baseline",
        ],
    );
    assert!(
        !a.iter()
            .any(|x| x.factors.iter().any(|f| f.reason.contains("140.82.112.3")))
    );
}

#[test]
fn privilege_escalation_by_setuid_and_by_a_set_uid_binary() {
    let a = play("privilege_escalation");
    assert_reason(
        &a,
        "privilege_escalation",
        &["/home/alice/exploit became root (uid 1000 -> 0)"],
    );
    let a = play("suid_shell");
    assert_reason(
        &a,
        "privilege_escalation",
        &["/home/alice/.cache/rootsh gained root (euid 1000 -> 0) at exec"],
    );
}

#[test]
fn sudo_never_used_before() {
    let a = play("unusual_sudo");
    assert_reason(
        &a,
        "unusual_switch_user",
        &["ran sudo: never used by this user in 2 days"],
    );
    assert!(!a.iter().any(|x| {
        x.factors
            .iter()
            .any(|f| f.detection == "privilege_escalation")
    }));
}

#[test]
fn ptrace_of_another_process() {
    let a = play("ptrace");
    assert_reason(
        &a,
        "ptrace",
        &["/usr/bin/python3 used PTRACE_ATTACH on", "pid 500"],
    );
}

#[test]
fn mass_reading_of_other_users_files() {
    let a = play("mass_read");
    assert_reason(
        &a,
        "mass_read",
        &["/usr/bin/tar read 20 files in other users' home directories (bob)"],
    );
    assert_eq!(
        a.iter()
            .flat_map(|x| &x.factors)
            .filter(|f| f.detection == "mass_read")
            .count(),
        1
    );
}

#[test]
fn persistence_writes() {
    let a = play("persistence");
    assert_reason(
        &a,
        "persistence",
        &["wrote /home/alice/.ssh/authorized_keys with /bin/bash"],
    );
    assert_reason(&a, "persistence", &["/var/spool/cron/crontabs/tmp.X1"]);
}

#[test]
fn log_tampering() {
    let a = play("log_tampering");
    let reasons: Vec<&str> = a
        .iter()
        .flat_map(|x| &x.factors)
        .filter(|f| f.detection == "log_tampering")
        .map(|f| f.reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "deleted /var/log/auth.log with /usr/bin/rm",
            "truncated /var/log/wtmp with /bin/bash",
            "renamed /var/log/syslog to /tmp/s with /usr/bin/mv"
        ]
    );
}

#[test]
fn account_changes() {
    let a = play("account_change");
    assert_reason(
        &a,
        "account_change",
        &["ran useradd -o -u 0 backdoor: changes user accounts"],
    );
    assert_reason(&a, "account_change", &["wrote /etc/passwd with /bin/bash"]);
}

#[test]
fn a_burst_of_discovery_commands() {
    let a = play("discovery");
    assert_reason(
        &a,
        "discovery_burst",
        &["ran 4 discovery commands within 120 s: id, whoami, uname, hostname"],
    );
}

#[test]
fn bpf_and_kernel_modules() {
    let a = play("bpf_module");
    assert_reason(&a, "bpf_load", &["/home/alice/loader loaded a BPF program"]);
    assert_reason(
        &a,
        "kernel_module",
        &["ran insmod /home/alice/rk.ko from a login session"],
    );
}

#[test]
fn activity_far_outside_learned_hours() {
    let a = play("off_hours");
    assert_reason(
        &a,
        "off_hours",
        &["this user was never active between", "2 days of baseline"],
    );
    // Once per principal, hour and window, not per event (root's sshd is off-hours too).
    let mut per_principal: Vec<u32> = a
        .iter()
        .filter(|x| x.factors.iter().any(|f| f.detection == "off_hours"))
        .map(|x| x.principal.uid)
        .collect();
    per_principal.sort();
    assert_eq!(per_principal, [0, 1000], "{a:#?}");
}

/// A principal's first event in a window may be the exit of a process the engine never saw
/// start (it began before the agent, or its other events were lost): the finding it raises
/// must still become an anomaly, not be spent on a process no longer in the table.
#[test]
fn off_hours_raised_by_an_exit_is_reported() {
    let exit: Vec<Event> = events("off_hours")
        .into_iter()
        .filter(|e| matches!(e.payload, crate::event::Payload::Exit { .. }))
        .collect();
    assert_eq!(exit.len(), 1);
    let mut e = engine_with(&config(), learned(), false);
    let a = replay(&mut e, &exit);
    let got = assert_reason(&a, "off_hours", &["this user was never active between"]);
    assert_eq!(got.principal.uid, 1000);
    assert_eq!(got.chain.last().map(|l| l.pid), Some(9002), "{got:#?}");
}

#[test]
fn weights_come_from_configuration() {
    let mut cfg = config();
    cfg.detect.weights.exec_from_writable = 90;
    let mut e = engine_with(&cfg, learned(), false);
    let a = replay(&mut e, &events("exec_tmp"));
    let (x, f) = factor(&a, "exec_from_writable");
    // A downloaded file counts 1.5 times the weight, capped at 100.
    assert_eq!(f.weight, 100);
    assert_eq!(x.score, 100);
    assert_eq!(x.level, Level::Critical);
}

#[test]
fn categories_file_from_configuration_replaces_the_defaults() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("cats.toml");
    let custom = crate::profile::categories::DEFAULT_TOML.replace(
        "paths = [\"/etc/shadow\",",
        "paths = [\"/srv/vault/*.key\", \"/etc/shadow\",",
    );
    std::fs::write(&f, custom).unwrap();
    let mut cfg = config();
    cfg.detect.categories_file = Some(f.clone());
    let mut e = engine_with(&cfg, learned(), false);
    let mut evs = events("credential_access");
    for ev in &mut evs {
        if let crate::event::Payload::Open { path, .. } = &mut ev.payload
            && path.as_bytes() == b"/etc/shadow"
        {
            *path = crate::event::RawStr::from("/srv/vault/db.key");
        }
    }
    let a = replay(&mut e, &evs);
    assert_reason(&a, "credential_access", &["read /srv/vault/db.key"]);

    std::fs::write(&f, "[[category]]\nname = \"x\"\npaths = [\"relative\"]\n").unwrap();
    let err = Engine::with_options(
        &cfg.detect,
        cfg.host_name(),
        Store::memory().unwrap(),
        EngineOptions {
            live: false,
            users: None,
            learn_all: false,
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("cats.toml") && err.contains("must start with"),
        "{err}"
    );
}

#[test]
fn the_engine_runs_as_the_pipelines_analysis_stage() {
    use crate::pipeline::{FeedItem, PipelineStats, spawn_analysis};
    let (tx, rx) = crate::event::handoff::channel(1 << 16, 7);
    let (feed_tx, mut feed_rx) = crate::pipeline::feed(1 << 16, 1 << 16);
    let stats = std::sync::Arc::new(PipelineStats::default());
    let engine = engine_with(&config(), learned(), false);
    let h = spawn_analysis(
        engine,
        rx,
        crate::pipeline::Inputs::default(),
        feed_tx,
        false,
        stats.clone(),
    );
    // In chunks of seven, as a drain would hand them over.
    for chunk in events("exec_tmp").chunks(7) {
        let mut chunk = chunk.to_vec();
        tx.send(&mut chunk);
        assert!(chunk.is_empty(), "the channel has room for every event");
    }
    drop(tx);
    let engine = h.join().unwrap();
    let mut found = Vec::new();
    while let Some(item) = feed_rx.try_recv() {
        if let FeedItem::Anomaly(a) = item {
            found.push((*a).clone());
        }
    }
    assert_reason(&found, "exec_from_writable", &["/tmp/.x/kworker"]);
    assert_eq!(engine.stats().events, stats.snapshot().analyzed);
}

#[test]
fn an_event_rate_far_above_the_learned_spread_is_reported_at_window_close() {
    use crate::profile::Profile;
    use crate::profile::baseline::KIND_PRINCIPAL;
    let store = Store::memory().unwrap();
    let evs = events("benign");
    let t0 = evs[0].time_ns;
    let mut p = Profile::new(t0 - 86_400_000_000_000 * 3);
    p.last_ns = t0 - 86_400_000_000_000;
    p.vouched = true;
    p.state = Calibration::Calibrated;
    for x in [
        8.0, 10.0, 12.0, 9.0, 11.0, 10.0, 10.0, 9.0, 11.0, 10.0, 12.0, 8.0,
    ] {
        p.rate.add(x);
        p.windows += 1;
    }
    p.hours = [1; 24];
    store
        .put_baseline(KIND_PRINCIPAL, "1000", &serde_json::to_value(&p).unwrap())
        .unwrap();
    let mut e = engine_with(&config(), store, false);
    let a = replay(&mut e, &evs);
    let x = assert_reason(
        &a,
        "rate_spike",
        &["events in one window: usual for this user is 10 ± 1"],
    );
    assert_eq!(x.principal.uid, 1000);
    assert!(x.chain.is_empty());
}

#[test]
fn an_audit_record_joined_after_its_process_exited_keeps_the_chain() {
    let mut e = engine_with(&config(), learned(), false);
    replay(&mut e, &events("exec_tmp"));
    // curl (pid 1102) read a watched file at .450 and exited at .500; its audit record is
    // joined only now, after the exit event was analysed.
    let t = 1_781_780_400_450_000_000;
    let fact = crate::audit::LiveFact {
        pid: Some(1102),
        ppid: Some(1101),
        uid: Some(1000),
        auid: Some(1000),
        session: Some(911),
        time_ns: t,
        kind: "watched_file_access",
        factor: Some(crate::model::Factor {
            detection: "watched_file_access".into(),
            reason: "access on watch key 'payroll' (/srv/payroll.csv) by /usr/bin/curl".into(),
            weight: 30,
            evidence: vec!["audit:1:2".into()],
        }),
        evidence: crate::model::Evidence {
            id: "audit:1:2".into(),
            time_ns: t,
            summary: "SYSCALL success /usr/bin/curl key=payroll".into(),
            detail: serde_json::Value::Null,
        },
    };
    let a = e.observe_audit(&fact);
    assert_eq!(a.len(), 1, "{a:#?}");
    let exes: Vec<&str> = a[0].chain.iter().map(|l| l.exe.as_str()).collect();
    // pid 500 was only seen as a forking header: known by comm.
    assert_eq!(
        exes,
        ["[sshd]", "/usr/sbin/sshd", "/bin/bash", "/usr/bin/curl"]
    );
    assert_eq!(a[0].principal.uid, 1000);
}
