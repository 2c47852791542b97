//! The scenario world shared by scenarios.rs and behaviours.rs: throw-away users, a benign
//! baseline learned from the live kernel stream and vouched for, an engine analysing the
//! users' events in the background, and `expect` to wait for an anomaly.

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sentinel::config::Config;
use sentinel::detect::{Engine, EngineOptions};
use sentinel::event::{Event, Payload};
use sentinel::model::Anomaly;
use sentinel::store::Store;

use crate::{events_after, require_root, start_live, wait_for};

pub struct User {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// Runs a shell script as root (test setup); panics when it fails.
pub fn sh(script: &str) {
    let st = Command::new("sh")
        .args(["-c", script])
        .status()
        .expect("sh");
    assert!(st.success(), "setup failed: {script}");
}

pub fn remove_user(name: &str) {
    let _ = Command::new("userdel")
        .args(["-r", "-f", name])
        .stderr(Stdio::null())
        .status();
}

/// Users and directories removed when the test binary exits.
static CLEANUP: Mutex<Vec<(bool, String)>> = Mutex::new(Vec::new());

extern "C" fn cleanup() {
    let items = CLEANUP.lock().map(|v| v.clone()).unwrap_or_default();
    for (user, what) in items {
        if user {
            remove_user(&what);
        } else {
            let _ = std::fs::remove_dir_all(&what);
        }
    }
}

/// Removes `dir` when the test binary exits.
pub fn remove_at_exit(dir: &str) {
    if let Ok(mut v) = CLEANUP.lock() {
        v.push((false, dir.to_string()));
    }
}

impl User {
    pub fn create(name: &'static str) -> User {
        remove_user(name);
        sh(&format!("useradd -m -s /bin/bash {name}"));
        if let Ok(mut v) = CLEANUP.lock() {
            v.push((true, name.to_string()));
        }
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").args([flag, name]).output().expect("id");
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .expect("numeric id")
        };
        let u = User {
            name,
            uid: id("-u"),
            gid: id("-g"),
            home: format!("/home/{name}"),
        };
        sh(&format!(
            "mkdir -p {h}/proj {h}/.ssh && chown -R {name}: {h}",
            h = u.home
        ));
        u
    }

    /// A command running as this user, with its login uid set as a login would.
    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_with(args, true)
    }

    /// A command running as root on behalf of this user (like sudo: the login uid stays).
    pub fn root_cmd(&self, args: &[&str]) -> Command {
        self.cmd_with(args, false)
    }

    fn cmd_with(&self, args: &[&str], drop: bool) -> Command {
        use std::os::unix::process::CommandExt;
        let script = if drop {
            "exec setpriv --reuid=$SNTL_UID --regid=$SNTL_GID --clear-groups -- \"$@\""
        } else {
            "exec \"$@\""
        };
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg(script)
            .arg("sh")
            .args(args)
            .env_clear()
            .env("SNTL_UID", self.uid.to_string())
            .env("SNTL_GID", self.gid.to_string())
            .env("HOME", &self.home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .current_dir(&self.home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // The login uid is set before the first exec, as a login does, so that everything
        // the command does is the user's.
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
        c
    }

    pub fn run(&self, args: &[&str]) {
        let _ = self.cmd(args).status().expect("spawn as user");
    }

    pub fn run_root(&self, args: &[&str]) {
        let _ = self.root_cmd(args).status().expect("spawn for user");
    }
}

/// Ordinary developer work: edit, build, git, package queries.
pub fn benign_work(u: &User, round: u32) {
    let p = format!("{}/proj", u.home);
    u.run(&[
        "sh",
        "-c",
        &format!("printf 'int main(void){{return {round};}}\\n' > {p}/main.c"),
    ]);
    u.run(&[
        "sh",
        "-c",
        &format!("printf 'all:\\n\\tcc -o main main.c\\n' > {p}/Makefile"),
    ]);
    u.run(&["make", "-C", &p]);
    u.run(&["git", "-C", &p, "init", "-q"]);
    u.run(&["git", "-C", &p, "add", "."]);
    u.run(&[
        "git",
        "-C",
        &p,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        "x",
    ]);
    u.run(&["git", "-C", &p, "status"]);
    u.run(&["ls", "-la", &p]);
    u.run(&["grep", "-r", "main", &p]);
    u.run(&["sed", "-i", "s/return/return /", &format!("{p}/main.c")]);
    u.run(&["cat", &format!("{p}/main.c")]);
    u.run(&["dpkg", "-l", "bash"]);
    u.run(&["apt-cache", "policy", "bash"]);
}

/// What a scenario engine analyses: every process lifecycle event (the process table needs
/// them all for chains), everything else only of the test users. Other helpers compiling on
/// the same host make far more file events than a debug-build engine handles in time; they
/// belong to other principals and cannot change these users' anomalies.
pub fn relevant(ev: &Event, users: &[u32]) -> bool {
    matches!(
        ev.payload,
        Payload::Fork { .. } | Payload::Exec { .. } | Payload::Exit { .. }
    ) || ev.auid.is_some_and(|a| users.contains(&a))
}

/// Two users with a learned benign baseline and an engine watching them.
pub struct World {
    pub dev: User,
    pub atk: User,
    pub anomalies: Mutex<Vec<Anomaly>>,
    /// Id of the last event the engine has processed.
    pub seen: Mutex<u64>,
    _db: tempfile::TempDir,
}

impl World {
    /// The anomalies above low of `uid` so far (what a quiet user must not have).
    pub fn loud(&self, uid: u32) -> Vec<Anomaly> {
        self.anomalies
            .lock()
            .expect("lock")
            .iter()
            .filter(|a| a.principal.uid == uid && a.level > sentinel::model::Level::Low)
            .cloned()
            .collect()
    }

    /// Creates the users, runs `setup` (root, before anything is learned), learns both
    /// users' benign work, vouches for it, and leaves an engine detecting in the background.
    pub fn start(
        dev: &'static str,
        atk: &'static str,
        setup: impl FnOnce(&User, &User),
    ) -> &'static World {
        World::start_with(dev, atk, setup, |_, _| {})
    }

    /// As `start`, with `habits` (as the users, after their benign work) learned too.
    pub fn start_with(
        dev: &'static str,
        atk: &'static str,
        setup: impl FnOnce(&User, &User),
        habits: impl Fn(&User, &User),
    ) -> &'static World {
        require_root();
        start_live();
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(cleanup) };
        let dev = User::create(dev);
        let atk = User::create(atk);
        setup(&dev, &atk);
        let db = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&db.path().join("sentinel.db")).expect("store");
        let cfg = Config::default();
        let mut engine = Engine::with_options(
            &cfg.detect,
            cfg.host_name(),
            store,
            EngineOptions {
                live: true,
                users: None,
                learn_all: true,
            },
        )
        .expect("engine");
        let w: &'static World = Box::leak(Box::new(World {
            dev,
            atk,
            anomalies: Mutex::new(Vec::new()),
            seen: Mutex::new(0),
            _db: db,
        }));
        // Learning: the benign baseline of both users, then vouch for it.
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
                    if !relevant(ev, &[w.dev.uid, w.atk.uid]) {
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
                    // Close the learning window, vouch for it, and start detecting.
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
        for round in 0..2 {
            benign_work(&w.dev, round);
            benign_work(&w.atk, round);
            habits(&w.dev, &w.atk);
        }
        let tag = format!("sentinel-learned-{}", std::process::id());
        Command::new("/bin/true").arg(&tag).status().expect("true");
        let ev = wait_for("end of learning marker", |e| {
            matches!(&e.payload, Payload::Exec { argv, .. }
                if argv.iter().any(|a| a.as_bytes() == tag.as_bytes()))
        });
        learned_tx.send(ev.id).expect("engine thread");
        done_rx
            .recv_timeout(Duration::from_secs(300))
            .expect("learning did not finish");
        w
    }

    /// Runs a marker process and waits until the engine has processed its exec, so every
    /// event before it has been analysed. Slow is not failure: the engine (a debug build
    /// here) may be behind a busy host, so the wait for it is long.
    pub fn settle(&self) {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let tag = format!(
            "sentinel-settle-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let st = Command::new("/bin/true").arg(&tag).status().expect("true");
        assert!(st.success());
        let ev = wait_for("settle marker exec", |e| {
            matches!(&e.payload, Payload::Exec { argv, .. }
                if argv.iter().any(|a| a.as_bytes() == tag.as_bytes()))
        });
        let deadline = Instant::now() + Duration::from_secs(180);
        while *self.seen.lock().expect("lock") < ev.id {
            assert!(
                Instant::now() < deadline,
                "engine did not catch up in 180 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The anomaly of `uid` with a `detection` factor whose reason contains all `parts`,
    /// once the engine has analysed everything up to now (a few rounds, for behaviours still
    /// under way).
    pub fn expect(&self, uid: u32, detection: &str, parts: &[&str]) -> Anomaly {
        for _ in 0..3 {
            self.settle();
            let all = self.anomalies.lock().expect("lock");
            if let Some(a) = all.iter().find(|a| {
                a.principal.uid == uid
                    && a.factors.iter().any(|f| {
                        f.detection == detection && parts.iter().all(|p| f.reason.contains(p))
                    })
            }) {
                let f = a
                    .factors
                    .iter()
                    .find(|f| f.detection == detection)
                    .expect("factor");
                assert!(!f.evidence.is_empty() && f.weight > 0);
                assert_eq!(Anomaly::score_of(&a.factors), (a.score, a.level));
                return a.clone();
            }
        }
        let mine: Vec<String> = self
            .anomalies
            .lock()
            .expect("lock")
            .iter()
            .filter(|a| a.principal.uid == uid)
            .flat_map(|a| {
                a.factors
                    .iter()
                    .map(|f| format!("{}: {}", f.detection, f.reason))
            })
            .collect();
        panic!("no {detection} anomaly with {parts:?} for uid {uid}; got {mine:#?}");
    }
}
