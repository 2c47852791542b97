//! Precision, the baseline side: discovery, mass read, account writes and staging judged
//! against what was learned; exemption lists that do not trust look-alikes; operator
//! exceptions. Streams are scripted with the builder of precision_tests.rs.

use super::exceptions::{Exception, PrincipalRef};
use super::precision_tests::{
    ALICE, DAY, Proc, Script, T0, config, dev_day, engine, factors, learned, run,
};
use super::replay::replay;
use crate::store::Store;

#[test]
fn discovery_commands_of_the_baseline_do_not_make_a_burst() {
    let store = learned(dev_day());
    let mut s = Script::new(T0 + DAY, Some(ALICE));
    s.login(ALICE);
    let cmds: [&[&str]; 5] = [
        &["cat", "/etc/os-release"],
        &["uname", "-a"],
        &["ps", "aux"],
        &["id"],
        &["ss", "-tlnp"],
    ];
    for (i, c) in cmds.iter().enumerate() {
        s.spawn(
            1101,
            2300 + i as u32,
            &format!("/usr/bin/{}", c[0]),
            c,
            (ALICE, ALICE),
        );
    }
    let a = run(store, &s);
    assert!(factors(&a, "discovery_burst").is_empty(), "{a:#?}");

    // Novel ones still count: four never-seen entries make a burst.
    let store = learned(dev_day());
    let mut s = Script::new(T0 + DAY, Some(ALICE));
    s.login(ALICE);
    let cmds: [&[&str]; 6] = [
        &["id"],
        &["whoami"],
        &["hostname"],
        &["cat", "/etc/passwd"],
        &["uname", "-a"],
        &["find", "/", "-perm", "-4000"],
    ];
    for (i, c) in cmds.iter().enumerate() {
        s.spawn(
            1101,
            2300 + i as u32,
            &format!("/usr/bin/{}", c[0]),
            c,
            (ALICE, ALICE),
        );
    }
    let a = run(store, &s);
    let f = factors(&a, "discovery_burst");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert!(
        f[0].reason.starts_with(
            "ran 4 discovery commands within 120 s: whoami, hostname, read /etc/passwd, find -perm*"
        ) && f[0].reason.contains("none of them run by this user in"),
        "{}",
        f[0].reason
    );
}

/// Root working in /root with a login uid of a user reads its own home (the toolchain).
#[test]
fn reading_the_home_of_the_effective_user_is_not_a_mass_read() {
    let mut s = Script::new(T0, Some(ALICE));
    s.login(ALICE);
    s.spawn(1101, 1200, "/usr/bin/sudo", &["sudo", "-i"], (0, 0));
    s.spawn(
        1200,
        1201,
        "/root/.rustup/toolchains/stable/bin/rustc",
        &["rustc"],
        (0, 0),
    );
    for i in 0..30 {
        s.open(
            1201,
            &format!("/root/.rustup/toolchains/stable/lib/f{i}.rlib"),
            false,
        );
    }
    // The same reader in bob's home is another user's home.
    s.spawn(1200, 1202, "/usr/bin/python3", &["python3"], (0, 0));
    for i in 0..30 {
        s.open(1202, &format!("/home/bob/docs/f{i}.txt"), false);
    }
    let mut e = engine(&config(), Store::memory().expect("store"), false);
    let a = replay(&mut e, &s.evs);
    let f = factors(&a, "mass_read");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert!(
        f[0].reason
            .starts_with("/usr/bin/python3 read 20 files in other users' home directories (bob)"),
        "{}",
        f[0].reason
    );
}

/// A backup job that read /home while learning is routine in its lineage, not elsewhere.
#[test]
fn other_home_reads_known_for_the_lineage_are_not_counted() {
    let backup = |t: i64, reader: &str| {
        let mut s = Script::new(t, None);
        s.procs.insert(
            600,
            Proc {
                ppid: 1,
                uid: 0,
                euid: 0,
                comm: "cron".into(),
            },
        );
        s.spawn(600, 1500, "/usr/sbin/cron", &["/usr/sbin/CRON"], (0, 0));
        s.spawn(1500, 1501, "/bin/sh", &["sh", "-c", "backup"], (0, 0));
        s.spawn(1501, 1502, reader, &["x", "/home"], (0, 0));
        for i in 0..30 {
            s.open(1502, &format!("/home/alice/work/f{i}"), false);
        }
        s
    };
    let store = learned(backup(T0, "/usr/bin/tar"));
    let a = run(store, &backup(T0 + DAY, "/usr/bin/tar"));
    assert!(factors(&a, "mass_read").is_empty(), "{a:#?}");
    let store = learned(backup(T0, "/usr/bin/tar"));
    let a = run(store, &backup(T0 + DAY, "/usr/bin/rsync"));
    assert_eq!(factors(&a, "mass_read").len(), 1, "{a:#?}");
}

#[test]
fn exemption_lists_do_not_trust_look_alikes_outside_system_directories() {
    let c = crate::profile::Categories::defaults();
    let l = &c.lists;
    assert!(c.exempt(&l.system_bpf, "/usr/sbin/bpftool", "bpftool"));
    assert!(!c.exempt(&l.system_bpf, "/tmp/bpftool", "bpftool"));
    assert!(c.exempt(&l.credential_readers, "/usr/bin/sudo", "sudo"));
    assert!(!c.exempt(&l.credential_readers, "/tmp/sudo", "sudo"));
    assert!(!c.exempt(&l.credential_readers, "/usr/bin/../../tmp/sudo", "sudo"));
    assert!(c.exempt(&l.package_managers, "/usr/bin/dpkg", "dpkg"));
    assert!(!c.exempt(&l.package_managers, "/home/x/dpkg", "dpkg"));
    assert!(!c.exempt(&l.log_maintainers, "/dev/shm/logrotate", "logrotate"));
    // Path entries: per-user toolchains are compilers wherever the home is.
    assert!(c.exempt(
        &l.compilers,
        "/home/alice/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld",
        "rust-lld"
    ));
    assert!(c.exempt(&l.compilers, "/root/.cargo/bin/cargo", "cargo"));
    assert!(!c.exempt(&l.compilers, "/tmp/.x/cc", "cc"));

    // In the engine: /tmp/bpftool loading a BPF program is reported.
    let mut s = Script::new(T0, Some(ALICE));
    s.login(ALICE);
    s.spawn(1101, 1200, "/tmp/bpftool", &["bpftool"], (0, 0));
    s.push(
        1200,
        serde_json::json!({"kind": "bpf", "syscall": "bpf", "cmd": 5, "cmd_name": "BPF_PROG_LOAD"}),
    );
    s.spawn(1101, 1201, "/usr/sbin/bpftool", &["bpftool"], (0, 0));
    s.push(
        1201,
        serde_json::json!({"kind": "bpf", "syscall": "bpf", "cmd": 5, "cmd_name": "BPF_PROG_LOAD"}),
    );
    let mut e = engine(&config(), Store::memory().expect("store"), false);
    let a = replay(&mut e, &s.evs);
    let f = factors(&a, "bpf_load");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert!(
        f[0].reason.starts_with("/tmp/bpftool loaded"),
        "{}",
        f[0].reason
    );
}

#[test]
fn exceptions_drop_matching_factors_and_count_them() {
    let mut cfg = config();
    cfg.detect.exceptions = vec![
        Exception {
            detection: "exec_from_writable".into(),
            principal: Some(PrincipalRef::Name("alice".into())),
            path: Some("/tmp/tools/**".into()),
            ..Default::default()
        },
        Exception {
            detection: "bpf_load".into(),
            exe: Some("/opt/never/*".into()),
            ..Default::default()
        },
    ];
    let mut s = Script::new(T0, Some(ALICE));
    s.login(ALICE);
    s.spawn(
        1101,
        1200,
        "/tmp/tools/bin/helper",
        &["helper"],
        (ALICE, ALICE),
    );
    s.spawn(
        1101,
        1201,
        "/tmp/tools/bin/helper",
        &["helper"],
        (ALICE, ALICE),
    );
    s.spawn(1101, 1202, "/tmp/other/helper", &["helper"], (ALICE, ALICE));
    let mut e = engine(&cfg, Store::memory().expect("store"), false);
    let a = replay(&mut e, &s.evs);
    let f = factors(&a, "exec_from_writable");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert!(f[0].reason.contains("/tmp/other/helper"));
    let st = e.stats();
    assert_eq!(st.exceptions.len(), 2);
    assert_eq!(
        st.exceptions[0].exception,
        "exec_from_writable principal=alice path=/tmp/tools/**"
    );
    assert_eq!(st.exceptions[0].suppressed, 2);
    assert_eq!(st.exceptions[1].suppressed, 0);
}

#[test]
fn bad_exceptions_are_clear_errors_at_load() {
    let parse = super::testing::parse_detect;
    let ok = parse(
        "[[detect.exceptions]]\ndetection = \"mass_read\"\nprincipal = \"backup\"\nlineage = \"cron>*>tar\"\n\
         [[detect.exceptions]]\ndetection = \"discovery_burst\"\nprincipal = 1000\n",
    )
    .expect("valid exceptions");
    assert_eq!(ok.exceptions.len(), 2);
    assert_eq!(ok.exceptions[1].principal, Some(PrincipalRef::Uid(1000)));
    let cases = [
        (
            "detection = \"mass_reed\"\nprincipal = 1",
            "unknown detection \"mass_reed\"",
        ),
        (
            "detection = \"mass_read\"\n",
            "needs at least one of principal, exe, path, lineage",
        ),
        (
            "detection = \"mass_read\"\npath = \"/home/[a\"\n",
            "not a valid glob",
        ),
        (
            "detection = \"mass_read\"\nexe = \"tar\"\n",
            "must be a full path",
        ),
        (
            "detection = \"mass_read\"\nuser = \"bob\"\n",
            "unknown field `user`",
        ),
    ];
    for (body, want) in cases {
        let e = parse(&format!("[[detect.exceptions]]\n{body}")).unwrap_err();
        assert!(e.contains(want), "{body}: {e}");
    }
}

#[test]
fn an_account_file_written_by_a_program_that_did_so_while_learning_is_not_reported() {
    let visudo = |t: i64, exe: &str| {
        let mut s = Script::new(t, Some(ALICE));
        s.login(ALICE);
        s.spawn(1101, 1200, exe, &["visudo"], (0, 0));
        s.open(1200, "/etc/sudoers.tmp", true);
        s.rename(1200, "rename", "/etc/sudoers.tmp", "/etc/sudoers");
        s
    };
    let store = learned(visudo(T0, "/usr/sbin/visudo"));
    let a = run(store, &visudo(T0 + DAY, "/usr/sbin/visudo"));
    assert!(factors(&a, "account_change").is_empty(), "{a:#?}");
    let store = learned(visudo(T0, "/usr/sbin/visudo"));
    let a = run(store, &visudo(T0 + DAY, "/usr/bin/python3"));
    let f = factors(&a, "account_change");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert!(
        f[0].reason
            .starts_with("wrote /etc/sudoers with /usr/bin/python3")
    );
}

/// An admin (login uid alice, root through sudo) archiving /home every night: the lineage
/// learned it, so neither mass_read nor staging; another archiver lineage is still reported.
#[test]
fn a_learned_backup_lineage_raises_neither_mass_read_nor_staging() {
    let backup = |t: i64, archiver: &str| {
        let mut s = Script::new(t, Some(ALICE));
        s.login(ALICE);
        s.spawn(1101, 1200, "/usr/bin/sudo", &["sudo", "-i"], (0, 0));
        s.spawn(1200, 1201, "/bin/bash", &["-bash"], (0, 0));
        s.spawn(1201, 1202, archiver, &["x"], (0, 0));
        for i in 0..30 {
            s.open(1202, &format!("/home/bob/work/f{i}"), false);
        }
        s
    };
    let store = learned(backup(T0, "/usr/bin/tar"));
    let a = run(store, &backup(T0 + DAY, "/usr/bin/tar"));
    assert!(factors(&a, "mass_read").is_empty(), "{a:#?}");
    assert!(factors(&a, "staging").is_empty(), "{a:#?}");
    let store = learned(backup(T0, "/usr/bin/tar"));
    let a = run(store, &backup(T0 + DAY, "/usr/bin/zip"));
    assert_eq!(factors(&a, "mass_read").len(), 1, "{a:#?}");
    assert_eq!(factors(&a, "staging").len(), 1, "{a:#?}");
}

/// Alice's root shell deletes `path` under /var/log with `exe` (find's retention clean-up, say).
fn log_deletion(start: i64, exe: &str, path: &str) -> Script {
    let mut s = Script::new(start, Some(ALICE));
    s.login(ALICE);
    s.spawn(1101, 1500, exe, &[crate::proc::basename(exe)], (0, 0));
    s.push(
        1500,
        serde_json::json!({"kind": "unlink", "syscall": "unlinkat", "dfd": -100,
            "path": path, "flags": 0}),
    );
    s.exit(1500);
    s
}

#[test]
fn a_learned_retention_clean_up_of_rotated_archives_is_not_log_tampering() {
    let archive = "/var/log/app/worker.log.5.gz";
    let day = || log_deletion(T0, "/usr/bin/find", archive);
    let learned_day = || {
        let mut d = dev_day();
        d.evs.extend(day().evs);
        d
    };
    // Learned, the same clean-up the next day is routine.
    let a = run(
        learned(learned_day()),
        &log_deletion(T0 + DAY, "/usr/bin/find", archive),
    );
    assert!(factors(&a, "log_tampering").is_empty(), "{a:#?}");
    // A live log deleted by that same lineage is still tampering.
    let a = run(
        learned(learned_day()),
        &log_deletion(T0 + DAY, "/usr/bin/find", "/var/log/auth.log"),
    );
    assert_eq!(factors(&a, "log_tampering").len(), 1, "{a:#?}");
    // Another lineage (python3) deleting the archive never did it while learning.
    let a = run(
        learned(learned_day()),
        &log_deletion(T0 + DAY, "/usr/bin/python3", archive),
    );
    assert_eq!(factors(&a, "log_tampering").len(), 1, "{a:#?}");
    // Without a baseline, it is reported.
    let a = run(
        Store::memory().unwrap(),
        &log_deletion(T0 + DAY, "/usr/bin/find", archive),
    );
    assert_eq!(factors(&a, "log_tampering").len(), 1, "{a:#?}");
}
