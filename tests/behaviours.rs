//! Attacker behaviours for real (ATT&CK's Linux tactics: defense evasion, persistence,
//! privilege escalation, credential access, discovery, collection), each played by a
//! throw-away user after a benign baseline was learned, and the behaviour-family anomaly
//! checked at medium or more. Users differ from scenarios.rs's so both files can run at once.
//! Runs as root; fails when it cannot.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sentinel::model::{Anomaly, Level};
use sentinel_e2e::world::{World, remove_at_exit, sh};

const DEV: &str = "sntl-bdev";
const ATK: &str = "sntl-batk";
/// Root-owned helper programs of these scenarios.
const TOOLS: &str = "/usr/local/lib/sentinel-behaviours";

fn world() -> &'static World {
    static W: OnceLock<&'static World> = OnceLock::new();
    W.get_or_init(|| {
        World::start(DEV, ATK, |_, _| {
            remove_at_exit(TOOLS);
            sh(&format!(
                "mkdir -p {TOOLS} && cp /usr/bin/sleep {TOOLS}/auditd && chmod 755 {TOOLS}/auditd \
                 && mkdir -p /home/{DEV}/docs && echo secret > /home/{DEV}/docs/plan.txt \
                 && chown -R {DEV}: /home/{DEV}/docs"
            ));
        })
    })
}

/// The atk user's anomaly with `detection` and every part in its reason, at medium or more.
fn expect(detection: &str, parts: &[&str]) -> Anomaly {
    let w = world();
    let a = w.expect(w.atk.uid, detection, parts);
    assert!(
        a.level >= Level::Medium,
        "{detection} only {:?}: {a:#?}",
        a.level
    );
    a
}

/// A scratch directory of this test (unique per test and run), removed at the end.
struct Scratch(String);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = format!("/tmp/sntl-b-{}-{name}", std::process::id());
        sh(&format!("rm -rf {d} && mkdir -p {d} && chmod 777 {d}"));
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A root process that stays until killed (a target for signals and memory reads).
fn background(program: &str, args: &[&str]) -> std::process::Child {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn background process")
}

#[test]
fn history_turned_off_and_erased() {
    let w = world();
    w.atk.run(&["bash", "-c", "unset HISTFILE; true"]);
    expect("history_tampering", &["unset HISTFILE"]);
    w.atk.run(&["sh", "-c", ": > $HOME/.bash_history"]);
    expect(
        "history_tampering",
        &[&format!(
            "emptied the history file /home/{ATK}/.bash_history"
        )],
    );
}

#[test]
fn file_times_forged() {
    let w = world();
    let f = format!("{TOOLS}/planted-{}", std::process::id());
    sh(&format!("touch {f}"));
    w.atk.run_root(&["touch", "-r", "/usr/bin/ls", &f]);
    expect(
        "timestomp",
        &[&format!("set the times of {f} to a chosen value")],
    );
}

#[test]
fn set_uid_bit_and_capability() {
    let w = world();
    let d = Scratch::new("suid");
    sh(&format!(
        "cp /usr/bin/true {}/t && cp /usr/bin/true {}/c",
        d.0, d.0
    ));
    w.atk.run_root(&["chmod", "4755", &format!("{}/t", d.0)]);
    expect("setuid_bit", &[&format!("{}/t", d.0)]);
    w.atk
        .run_root(&["setcap", "cap_net_raw+ep", &format!("{}/c", d.0)]);
    expect("file_capability", &["cap_net_raw", &format!("{}/c", d.0)]);
}

#[test]
fn library_forced_into_programs() {
    let w = world();
    w.atk
        .run(&["env", "LD_PRELOAD=/dev/shm/sntl-hook.so", "true"]);
    expect("loader_hijack", &["LD_PRELOAD=/dev/shm/sntl-hook.so"]);
}

#[test]
fn authentication_configuration_written() {
    let w = world();
    let f = format!("/etc/security/sntl-behaviours-{}.conf", std::process::id());
    w.atk
        .run_root(&["sh", "-c", &format!("echo '# test' > {f}")]);
    let _ = std::fs::remove_file(&f);
    expect("auth_config", &[&format!("{f} with")]);
}

#[test]
fn watchers_stopped_and_killed() {
    let w = world();
    // A unit that is not there: systemctl fails, the attempt is the behaviour.
    w.atk.run_root(&["systemctl", "stop", "falco.service"]);
    expect(
        "watcher_silenced",
        &["stopped or disabled the watcher falco.service"],
    );
    let mut daemon = background(&format!("{TOOLS}/auditd"), &["300"]);
    let pid = daemon.id().to_string();
    // The engine must know the daemon before it is killed.
    world().settle();
    w.atk.run_root(&["kill", "-9", &pid]);
    let _ = daemon.kill();
    let _ = daemon.wait();
    expect(
        "watcher_silenced",
        &[&format!(
            "sent signal 9 to the watcher {TOOLS}/auditd (pid {pid})"
        )],
    );
}

#[test]
fn shell_escapes_from_programs() {
    let w = world();
    w.atk.run(&[
        "find",
        "/etc/hostname",
        "-maxdepth",
        "0",
        "-exec",
        "/bin/sh",
        ";",
        "-quit",
    ]);
    expect(
        "unusual_child",
        &["interactive shell /bin/sh started by /usr/bin/find"],
    );
    w.atk.run(&[
        "/usr/bin/python3",
        "-c",
        "import os; os.execv('/bin/sh', ['sh'])",
    ]);
    expect("unusual_child", &["started by /usr/bin/python3"]);
}

#[test]
fn decoded_payloads_run() {
    let w = world();
    // "true" in base64.
    w.atk.run(&["bash", "-c", "echo dHJ1ZQo= | base64 -d | sh"]);
    expect("decode_and_run", &["decoded a hidden payload and ran it"]);
    let d = Scratch::new("decode");
    // "#!/bin/sh\ntrue\n" in base64, written by base64 through the shell's redirection.
    w.atk.run(&[
        "sh",
        "-c",
        &format!(
            "echo IyEvYmluL3NoCnRydWUK | base64 -d > {d}/p; chmod +x {d}/p; {d}/p",
            d = d.0
        ),
    ]);
    expect(
        "decode_and_run",
        &[&format!("ran {}/p, which base64 had decoded", d.0)],
    );
}

#[test]
fn another_process_memory_read() {
    let w = world();
    let mut victim = background("/usr/bin/sleep", &["300"]);
    let pid = victim.id();
    world().settle();
    w.atk.run_root(&[
        "/usr/bin/python3",
        "-c",
        &format!("f = open('/proc/{pid}/mem', 'rb'); f.close()"),
    ]);
    let _ = victim.kill();
    let _ = victim.wait();
    expect(
        "process_memory_access",
        &[&format!(
            "opened the memory of /usr/bin/sleep (pid {pid}, uid 0)"
        )],
    );
}

#[test]
fn traffic_captured() {
    let w = world();
    // A live capture on the loopback interface, ended after two seconds.
    w.atk
        .run_root(&["timeout", "2", "tcpdump", "-i", "lo", "-w", "/dev/null"]);
    expect("packet_capture", &["tcpdump"]);
}

#[test]
fn program_disguised_as_a_kernel_thread() {
    let w = world();
    w.atk
        .run(&["bash", "-c", "exec -a '[kworker/0:1]' /usr/bin/true"]);
    expect("masquerade", &["[kworker/0:1] looks like a kernel thread"]);
}

#[test]
fn broad_discovery() {
    let w = world();
    for c in [
        &["id"][..],
        &["ip", "a"],
        &["ps", "aux"],
        &["cat", "/etc/shells"],
        &["locale"],
    ] {
        w.atk.run(c);
    }
    expect("recon_breadth", &["discovery areas within 600 s"]);
}

#[test]
fn other_users_files_archived() {
    let w = world();
    let d = Scratch::new("stage");
    w.atk.run_root(&[
        "tar",
        "czf",
        &format!("{}/loot.tgz", d.0),
        &format!("/home/{DEV}"),
    ]);
    expect("staging", &[&format!("packed /home/{DEV} with tar")]);
}

#[test]
fn user_timer_planted() {
    let w = world();
    w.atk.run(&[
        "sh",
        "-c",
        "mkdir -p $HOME/.config/systemd/user && printf '[Timer]\\nOnCalendar=hourly\\n' > $HOME/.config/systemd/user/sync.timer",
    ]);
    expect(
        "persistence",
        &[&format!(
            "wrote /home/{ATK}/.config/systemd/user/sync.timer"
        )],
    );
}

#[test]
fn benign_work_after_learning_stays_low() {
    let w = world();
    let p = format!("{}/proj", w.dev.home);
    // Unique per run: another run of this binary (another worktree) must not share it.
    let tgz = format!("/tmp/sntl-bdev-proj-{}.tgz", std::process::id());
    for c in [
        &["tar", "czf", &tgz, "-C", &w.dev.home, "proj"][..],
        &["bash", "-c", &format!("make -C {p} 2>&1 | tail -1")],
        &[
            "find",
            &p,
            "-name",
            "*.c",
            "-exec",
            "sh",
            "-c",
            "wc -l \"$1\"",
            "sh",
            "{}",
            ";",
        ],
        &["base64", "/etc/hostname"],
        &["env", "LANG=C", "ls", &p],
        &["touch", &format!("{p}/main.c")],
    ] {
        w.dev.run(c);
    }
    let _ = std::fs::remove_file(&tgz);
    w.settle();
    let loud = w.loud(w.dev.uid);
    assert!(loud.is_empty(), "{loud:#?}");
}

/// The same behaviours seen only through the kernel's dedicated events (no telling command
/// line): the exec environment, utimensat, prctl, raw sockets.
#[test]
fn behaviours_seen_through_kernel_events() {
    let w = world();
    // HISTFILE exported by the attacker's shell: visible in its children's environment.
    w.atk
        .run(&["sh", "-c", "export HISTFILE=/dev/null; /usr/bin/true"]);
    expect(
        "history_tampering",
        &["HISTFILE=/dev/null in the environment of"],
    );
    w.atk.run(&[
        "sh",
        "-c",
        "export LD_PRELOAD=/dev/shm/sntl-k.so; /usr/bin/true",
    ]);
    expect("loader_hijack", &["LD_PRELOAD=/dev/shm/sntl-k.so"]);
    let f = format!("{TOOLS}/stomped-{}", std::process::id());
    sh(&format!("touch {f}"));
    w.atk.run_root(&[
        "/usr/bin/python3",
        "-c",
        &format!("import os; os.utime('{f}', (1500000000, 1500000000))"),
    ]);
    expect(
        "timestomp",
        &[&format!("set the times of {f}"), "utimensat"],
    );
    w.atk.run(&[
        "/usr/bin/python3",
        "-c",
        "import ctypes; ctypes.CDLL(None).prctl(15, b'systemd-journald', 0, 0, 0)",
    ]);
    expect("masquerade", &["renamed itself to systemd-journal"]);
    w.atk.run_root(&[
        "/usr/bin/python3",
        "-c",
        "import socket; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)); s.close()",
    ]);
    expect("packet_capture", &["opened a raw packet socket (AF_PACKET"]);
    // Module loads (finit_module) are not played: the test kernel has no CONFIG_MODULES, so
    // the module syscalls do not exist there (unit tests cover kernel_module's event route).
}
