//! Precision for real: a throw-away user learns a developer's day (a C program built under
//! /tmp with make and run, routine discovery commands) from the live kernel stream; afterwards
//! the same kind of work raises nothing, while a file fetched over TCP by python3 and run is
//! reported with its downloader. Runs as root; fails when it cannot.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sentinel::config::Config;
use sentinel::detect::model::{Anomaly, Level};
use sentinel::detect::{Engine, EngineOptions};
use sentinel::event::{Event, Payload};
use sentinel::store::Store;
use sentinel_e2e::*;

const USER: &str = "sntl-prec";

struct User {
    uid: u32,
    gid: u32,
    home: String,
}

struct World {
    user: User,
    anomalies: Mutex<Vec<Anomaly>>,
    /// Id of the last event the engine has processed.
    seen: Mutex<u64>,
    _db: tempfile::TempDir,
}

fn sh(script: &str) {
    let st = Command::new("sh")
        .args(["-c", script])
        .status()
        .expect("sh");
    assert!(st.success(), "setup failed: {script}");
}

fn remove_user() {
    let _ = Command::new("userdel")
        .args(["-r", "-f", USER])
        .stderr(Stdio::null())
        .status();
}

extern "C" fn cleanup() {
    remove_user();
    let _ = Command::new("sh")
        .args(["-c", &format!("rm -rf /tmp/{USER}-*")])
        .status();
}

impl User {
    fn create() -> User {
        remove_user();
        sh(&format!("useradd -m -s /bin/bash {USER}"));
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").args([flag, USER]).output().expect("id");
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .expect("numeric id")
        };
        User {
            uid: id("-u"),
            gid: id("-g"),
            home: format!("/home/{USER}"),
        }
    }

    /// Runs `script` with sh as this user, its login uid set as a login would.
    fn run(&self, script: &str) {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg("exec setpriv --reuid=$SNTL_UID --regid=$SNTL_GID --clear-groups -- sh -c \"$1\"")
            .arg("sh")
            .arg(script)
            .env_clear()
            .env("SNTL_UID", self.uid.to_string())
            .env("SNTL_GID", self.gid.to_string())
            .env("HOME", &self.home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .current_dir(&self.home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let uid = self.uid.to_string();
        // SAFETY: the closure only makes raw open/write/close calls (async-signal-safe) on
        // data prepared before the fork.
        unsafe {
            c.pre_exec(move || {
                let fd = libc::open(c"/proc/self/loginuid".as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, uid.as_ptr().cast(), uid.len());
                libc::close(fd);
                if n != uid.len() as isize {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let st = c.status().expect("spawn as user");
        assert!(st.success(), "as {USER}: {script} failed: {st}");
    }
}

/// A C project built with make under /tmp and its program run twice.
fn build_and_run(u: &User, dir: &str) {
    u.run(&format!(
        "mkdir -p {dir} && cd {dir} && printf 'int main(void){{return 0;}}\\n' > main.c \
         && printf 'all:\\n\\tcc -o main main.c\\n' > Makefile && make -s && {dir}/main && {dir}/main"
    ));
}

/// Routine look-arounds of this developer.
const DISCOVERY: &str = "id; uname -a; ps aux; cat /etc/os-release; hostname";

fn is_marker(e: &Event, tag: &str) -> bool {
    matches!(&e.payload, Payload::Exec { argv, .. }
        if argv.iter().any(|a| a.as_bytes() == tag.as_bytes()))
}

/// Runs a marker and waits until the engine has processed its exec.
fn settle(w: &World) {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tag = format!(
        "sentinel-prec-settle-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let st = Command::new("/bin/true").arg(&tag).status().expect("true");
    assert!(st.success());
    let ev = wait_for("settle marker exec", |e| is_marker(e, &tag));
    let deadline = Instant::now() + Duration::from_secs(180);
    while *w.seen.lock().expect("lock") < ev.id {
        assert!(
            Instant::now() < deadline,
            "engine did not catch up in 180 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Process lifecycle events of everyone (chains), everything else of the test user only.
fn relevant(ev: &Event, uid: u32) -> bool {
    matches!(
        ev.payload,
        Payload::Fork { .. } | Payload::Exec { .. } | Payload::Exit { .. }
    ) || ev.auid == Some(uid)
}

fn world() -> &'static World {
    static W: OnceLock<&'static World> = OnceLock::new();
    W.get_or_init(|| {
        require_root();
        start_live();
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(cleanup) };
        let user = User::create();
        let db = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&db.path().join("sentinel.db")).expect("store");
        let mut engine = Engine::with_options(
            &Config::default(),
            store,
            EngineOptions {
                live: true,
                users: None,
                learn_all: true,
            },
        )
        .expect("engine");
        let w: &'static World = Box::leak(Box::new(World {
            user,
            anomalies: Mutex::new(Vec::new()),
            seen: Mutex::new(0),
            _db: db,
        }));
        let (learned_tx, learned_rx) = std::sync::mpsc::channel::<u64>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let mut learn_until: Option<u64> = None;
            let mut learning = true;
            loop {
                let last = *w.seen.lock().expect("lock");
                let evs = events_after(last);
                for ev in &evs {
                    *w.seen.lock().expect("lock") = ev.id;
                    if !relevant(ev, w.user.uid) {
                        continue;
                    }
                    let out = engine.observe(ev);
                    w.anomalies.lock().expect("lock").extend(out);
                }
                if learn_until.is_none() {
                    learn_until = learned_rx.try_recv().ok();
                }
                let last = *w.seen.lock().expect("lock");
                if learning && learn_until.is_some_and(|u| last >= u) {
                    engine.finish();
                    engine.vouch().expect("vouch");
                    engine.set_learn_all(false);
                    w.anomalies.lock().expect("lock").clear();
                    learning = false;
                    let _ = done_tx.send(());
                }
                if evs.is_empty() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        let pid = std::process::id();
        for round in 0..2 {
            build_and_run(&w.user, &format!("/tmp/{USER}-{pid}-learn{round}"));
            w.user.run(DISCOVERY);
        }
        let tag = format!("sentinel-prec-learned-{pid}");
        Command::new("/bin/true").arg(&tag).status().expect("true");
        let ev = wait_for("end of learning marker", |e| is_marker(e, &tag));
        learned_tx.send(ev.id).expect("engine thread");
        done_rx
            .recv_timeout(Duration::from_secs(300))
            .expect("learning did not finish");
        w
    })
}

/// The user's factors of `detection` (after the engine caught up), as "reason (weight)".
fn user_factors(w: &World, detection: &str) -> Vec<(String, u8, Level)> {
    settle(w);
    w.anomalies
        .lock()
        .expect("lock")
        .iter()
        .filter(|a| a.principal.uid == w.user.uid)
        .flat_map(|a| {
            a.factors
                .iter()
                .filter(|f| f.detection == detection)
                .map(|f| (f.reason.clone(), f.weight, a.level))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_program_built_by_the_learned_build_lineage_runs_without_a_finding() {
    let w = world();
    let dir = format!("/tmp/{USER}-{}-fresh", std::process::id());
    build_and_run(&w.user, &dir);
    settle(w);
    // The runs happened and were analysed: their execs are in the stream.
    let exe = format!("{dir}/main");
    let runs = collected(|e| {
        e.auid == Some(w.user.uid)
            && matches!(&e.payload, Payload::Exec { filename, .. }
                if filename.as_bytes() == exe.as_bytes() && e.ok())
    });
    assert!(runs.len() >= 2, "the built program did not run twice");
    let found: Vec<_> = user_factors(w, "exec_from_writable")
        .into_iter()
        .filter(|(r, _, _)| r.contains(&dir))
        .collect();
    assert!(found.is_empty(), "{found:#?}");
    let loud: Vec<Anomaly> = w
        .anomalies
        .lock()
        .expect("lock")
        .iter()
        .filter(|a| {
            a.principal.uid == w.user.uid
                && a.level >= Level::Medium
                && a.factors.iter().any(|f| f.reason.contains(&dir))
        })
        .cloned()
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
}

#[test]
fn discovery_commands_of_the_baseline_make_no_burst() {
    let w = world();
    w.user.run(DISCOVERY);
    settle(w);
    let ran = collected(|e| {
        e.auid == Some(w.user.uid)
            && matches!(&e.payload, Payload::Exec { filename, .. }
                if filename.as_bytes().ends_with(b"/hostname"))
    });
    assert!(ran.len() >= 3, "discovery commands not seen: {}", ran.len());
    let found = user_factors(w, "discovery_burst");
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn a_downloaded_file_that_is_run_names_its_downloader() {
    let w = world();
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = l.local_addr().expect("addr").port();
    let payload = std::fs::read("/usr/bin/true").expect("read /usr/bin/true");
    let server = std::thread::spawn(move || {
        l.set_nonblocking(false).expect("blocking");
        if let Ok((mut c, _)) = l.accept() {
            let _ = c.write_all(&payload);
        }
    });
    let dir = format!("/tmp/{USER}-{}-dl", std::process::id());
    let script = format!(
        "import socket, os; s = socket.create_connection(('127.0.0.1', {port})); \
         data = s.makefile('rb').read(); open('{dir}/fetched', 'wb').write(data); \
         os.chmod('{dir}/fetched', 0o755)"
    );
    w.user.run(&format!(
        "mkdir -p {dir} && /usr/bin/python3 -c \"{script}\" && {dir}/fetched"
    ));
    server.join().expect("server");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = user_factors(w, "exec_from_writable");
        if let Some((r, weight, level)) = found.iter().find(|(r, _, _)| r.contains(&dir)) {
            assert!(
                r.contains(&format!("executed {dir}/fetched from /tmp/"))
                    && r.contains("downloaded by /usr/bin/python3")
                    && r.contains(&format!("(connected to 127.0.0.1:{port})")),
                "{r}"
            );
            assert_eq!(*weight, 60, "{r}");
            assert!(*level >= Level::High, "{r}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no exec_from_writable for {dir}/fetched; the user's: {found:#?}"
        );
    }
}
