//! Generalization: the same behaviour through another program, another file or another
//! user's habits. A detection looks at the act (a file describing the host read by any
//! program, a persistence place written by this principal), not at one tool's command line;
//! and what one user does by habit never covers another. Streams are scripted with the
//! builder of precision_tests.rs.

use super::behaviour_tests::Sim;
use super::model::Level;
use super::precision_tests::{ALICE, DAY, Script, T0, dev_day, factors, learned, run};

const BOB: u32 = 1001;
/// An hour after the learned day started: bob's part of the learning.
const HOUR: i64 = 3_600_000_000_000;

/// Bob's learned habit: his login shell appends to his ~/.bashrc and installs his crontab.
fn bob_edits_his_rc() -> Script {
    let mut s = Script::new(T0 + HOUR, Some(BOB));
    s.login(BOB);
    s.open(1101, "/home/bob/.bashrc", true);
    s.spawn(
        1101,
        1400,
        "/usr/bin/crontab",
        &["crontab", "cron.txt"],
        (BOB, BOB),
    );
    s.exit(1400);
    s
}

fn learned_day() -> Script {
    let mut day = dev_day();
    day.evs.extend(bob_edits_his_rc().evs);
    day
}

#[test]
fn another_users_habit_does_not_cover_a_persistence_write() {
    // Bob's bash wrote a persistence place while learning: alice's bash writing a systemd
    // drop-in is still a finding (the program alone says nothing about the person).
    let store = learned(learned_day());
    let mut s = Script::new(T0 + DAY, Some(ALICE));
    s.login(ALICE);
    s.open(
        1101,
        "/etc/systemd/system/cron.service.d/override.conf",
        true,
    );
    let a = run(store, &s);
    let f = factors(&a, "persistence");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert!(
        f[0].reason.contains("cron.service.d/override.conf"),
        "{}",
        f[0].reason
    );
}

#[test]
fn a_users_own_rc_and_crontab_habit_is_not_persistence() {
    let store = learned(learned_day());
    let mut s = Script::new(T0 + DAY + HOUR, Some(BOB));
    s.login(BOB);
    s.open(1101, "/home/bob/.bashrc", true);
    s.spawn(
        1101,
        2400,
        "/usr/bin/crontab",
        &["crontab", "cron.txt"],
        (BOB, BOB),
    );
    // This time the tool's write into the spool is placed too: the same habit.
    s.open(2400, "/var/spool/cron/crontabs/tmp.X1", true);
    let a = run(store, &s);
    assert!(factors(&a, "persistence").is_empty(), "{a:#?}");

    // The same acts by alice, who never did them, are findings.
    let store = learned(learned_day());
    let mut s = Script::new(T0 + DAY, Some(ALICE));
    s.login(ALICE);
    s.open(1101, "/home/alice/.bashrc", true);
    s.spawn(
        1101,
        2400,
        "/usr/bin/crontab",
        &["crontab", "cron.txt"],
        (ALICE, ALICE),
    );
    let a = run(store, &s);
    let f = factors(&a, "persistence");
    assert_eq!(f.len(), 2, "{a:#?}");
}

#[test]
fn host_files_read_by_any_program_are_discovery() {
    // No listed discovery command: awk, head, grep and a renamed copy of cat read the files
    // that describe accounts, groups and the network.
    let store = learned(dev_day());
    let mut s = Script::new(T0 + DAY, Some(ALICE));
    s.login(ALICE);
    let cmds: [(&str, &[&str]); 4] = [
        (
            "/usr/bin/awk",
            &["awk", "-F:", "$3>=1000 {print $1}", "/etc/passwd"],
        ),
        (
            "/usr/bin/head",
            &["head", "-n", "20", "/proc/net/route", "/proc/net/arp"],
        ),
        (
            "/usr/bin/grep",
            &["grep", "-E", "^(sudo|wheel)", "/etc/group"],
        ),
        ("/var/tmp/.x/sysinfo", &["sysinfo", "/etc/resolv.conf"]),
    ];
    for (i, (exe, argv)) in cmds.iter().enumerate() {
        s.spawn(1101, 2300 + i as u32, exe, argv, (ALICE, ALICE));
    }
    let a = run(store, &s);
    let f = factors(&a, "discovery_burst");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert!(
        f[0].reason.contains("read /etc/passwd") && f[0].reason.contains("read /proc/net/route"),
        "{}",
        f[0].reason
    );
    // The files learned while learning are routine, whoever reads them now.
    let mut day = dev_day();
    let mut s = Script::new(T0 + HOUR, Some(ALICE));
    s.login(ALICE);
    s.spawn(
        1101,
        1500,
        "/usr/bin/cat",
        &["cat", "/etc/passwd", "/etc/group"],
        (ALICE, ALICE),
    );
    day.evs.extend(s.evs);
    let store = learned(day);
    let mut s = Script::new(T0 + DAY, Some(ALICE));
    s.login(ALICE);
    for (i, f) in ["/etc/passwd", "/etc/group", "/etc/passwd"]
        .iter()
        .enumerate()
    {
        s.spawn(
            1101,
            2300 + i as u32,
            "/usr/bin/cut",
            &["cut", "-d:", "-f1", f],
            (ALICE, ALICE),
        );
    }
    s.spawn(1101, 2310, "/usr/bin/id", &["id"], (ALICE, ALICE));
    let a = run(store, &s);
    assert!(factors(&a, "discovery_burst").is_empty(), "{a:#?}");
}

#[test]
fn commands_that_explore_an_area_count_toward_a_burst() {
    // Not on the discovery list, but each explores an area (`[lists] recon`).
    let store = learned(dev_day());
    let mut s = Script::new(T0 + DAY, Some(ALICE));
    s.login(ALICE);
    let cmds: [&[&str]; 4] = [&["lsblk"], &["lscpu"], &["dpkg", "-l"], &["free", "-m"]];
    for (i, c) in cmds.iter().enumerate() {
        let exe = format!("/usr/bin/{}", c[0]);
        s.spawn(1101, 2300 + i as u32, &exe, c, (ALICE, ALICE));
    }
    let a = run(store, &s);
    let f = factors(&a, "discovery_burst");
    assert_eq!(f.len(), 1, "{a:#?}");
    assert!(
        f[0].reason.contains("lsblk, lscpu, dpkg -l, free"),
        "{}",
        f[0].reason
    );
}

#[test]
fn host_files_on_a_command_line_count_as_discovery_areas() {
    // Four areas through file readers alone: accounts, groups, network, password policy.
    let mut s = Sim::new();
    s.run(&["awk", "-F:", "{print $1}", "/etc/passwd"]);
    s.run(&["grep", "sudo", "/etc/group"]);
    s.run(&["head", "/proc/net/tcp"]);
    s.run(&["sed", "-n", "/MAX_DAYS/p", "/etc/login.defs"]);
    s.expect(
        "recon_breadth",
        &["explored 4 discovery areas"],
        Level::Medium,
    );
}

#[test]
fn a_service_script_named_after_its_daemon_is_no_disguise() {
    let mut s = Sim::new();
    s.run(&["/etc/init.d/cron", "status"]);
    s.none("masquerade");
    let mut s = Sim::new();
    let p = s.run(&["true"]);
    s.exec(p, "/var/tmp/cron", &["cron"]);
    s.expect(
        "masquerade",
        &["named like the system daemon cron"],
        Level::Medium,
    );
}

/// An open that returns `fd`, relative to `dfd` (-100: the cwd).
fn open_at(s: &mut Sim, pid: u32, dfd: i32, path: &str, fd: i64) {
    let mut ev = s.ev(
        pid,
        crate::event::Payload::Open {
            dfd,
            path: crate::event::RawStr::from(path),
            flags: 0o200000, // O_DIRECTORY for the directories; reads all the same
            mode: 0,
        },
    );
    ev.ret = fd;
    s.deliver(ev);
}

#[test]
fn files_opened_relative_to_a_directory_descriptor_are_placed() {
    // tar -C / home: the walk opens "home", then "bob" relative to it, then the key
    // relative to that; the cwd (/root) says nothing about where they are.
    let mut s = Sim::new();
    let p = s.sudo(&["tar", "czf", "/var/tmp/h.tgz", "-C", "/", "home"]);
    open_at(&mut s, p, -100, "/", 3);
    open_at(&mut s, p, 3, "home", 4);
    open_at(&mut s, p, 4, "bob/.ssh", 5);
    open_at(&mut s, p, 5, "id_rsa", 6);
    s.expect(
        "credential_access",
        &["/home/bob/.ssh/id_rsa"],
        Level::Medium,
    );
    // An unknown descriptor leaves the path as it was (no guess from the cwd).
    let mut s = Sim::new();
    let p = s.sudo(&["tar", "czf", "/var/tmp/h.tgz", "-C", "/", "home"]);
    open_at(&mut s, p, 9, "id_rsa", 6);
    s.none("credential_access");
}

#[test]
fn a_repeat_report_does_not_move_a_descriptor() {
    // tar looks up owner names as it walks: /etc/passwd, first on fd 4 (sent; its repeats are
    // counted in the kernel). The walk then opens "home" on fd 4. The count of the passwd
    // repeats arrives a second later, a copy of the first open, fd 4 included: it is not an
    // open, and fd 4 is still /home (taken, it placed the key at /etc/passwd/bob/.ssh).
    let mut s = Sim::new();
    let p = s.sudo(&["tar", "czf", "/var/tmp/h.tgz", "-C", "/", "home"]);
    open_at(&mut s, p, -100, "/", 3);
    let mut passwd = s.ev(
        p,
        crate::event::Payload::Open {
            dfd: -100,
            path: crate::event::RawStr::from("/etc/passwd"),
            flags: 0o2000000,
            mode: 0,
        },
    );
    passwd.ret = 4;
    s.deliver(passwd.clone());
    open_at(&mut s, p, 3, "home", 4);
    s.t += 2_000_000_000;
    let mut report = passwd;
    report.id = 999;
    report.time_ns = s.t;
    report.repeats = 7;
    s.deliver(report);
    open_at(&mut s, p, 4, "bob/.ssh", 5);
    open_at(&mut s, p, 5, "id_rsa", 6);
    s.expect(
        "credential_access",
        &["/home/bob/.ssh/id_rsa"],
        Level::Medium,
    );
}

#[test]
fn an_open_not_analysed_again_still_places_its_descriptor() {
    // find opens /home twice within a second (the second a repeat the engine does not
    // analyse again) and gets another descriptor the second time: files relative to that
    // one are under /home, not under whatever the descriptor named before.
    let mut s = Sim::new();
    let p = s.sudo(&["find", "/home", "-name", "id_*"]);
    open_at(&mut s, p, -100, "/home", 3);
    open_at(&mut s, p, -100, "/usr/share/doc", 4);
    open_at(&mut s, p, -100, "/home", 4);
    open_at(&mut s, p, 4, "bob/.ssh/id_rsa", 5);
    s.expect(
        "credential_access",
        &["/home/bob/.ssh/id_rsa"],
        Level::Medium,
    );
}

#[test]
fn a_copied_descriptor_places_files_like_its_original() {
    // find's fts opens /home, then walks relative to an F_DUPFD copy of that descriptor.
    let mut s = Sim::new();
    let p = s.sudo(&["find", "/home", "-name", "id_*", "-exec", "cat", "{}", "+"]);
    open_at(&mut s, p, -100, "/home", 4);
    let mut dup = s.ev(p, crate::event::Payload::Dup { fd: 4 });
    dup.ret = 5;
    s.deliver(dup);
    open_at(&mut s, p, 5, "bob/.ssh/id_rsa", 6);
    s.expect(
        "credential_access",
        &["/home/bob/.ssh/id_rsa"],
        Level::Medium,
    );
}

#[test]
fn descriptors_of_the_image_before_exec_do_not_place_files() {
    // A shell reads a PAM file on fd 3 (close-on-exec), then runs rm -r, whose walk deletes
    // names relative to its own fd 3: they are not in /etc/pam.d.
    let mut s = Sim::new();
    let sh = s.run(&["bash"]);
    open_at(
        &mut s,
        sh,
        -100,
        "/etc/pam.d/common-session-noninteractive",
        3,
    );
    s.exec(sh, "/usr/bin/rm", &["rm", "-rf", "build"]);
    let mut ev = s.ev(
        sh,
        crate::event::Payload::Unlink {
            dfd: 3,
            path: crate::event::RawStr::from("notes.csv"),
            flags: 0,
        },
    );
    ev.ret = 0;
    s.deliver(ev);
    s.none("auth_config");
}
