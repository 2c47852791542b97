//! The detection evaluation: the attack corpus and the benign workloads of tests/corpus played
//! against the real agent. Throw-away users learn their habits while `sentinel learn` runs,
//! then `sentinel run` watches every benign workload (again) and every attack scenario, each
//! in its own audit session and empty network namespace; the agent's anomalies are attributed
//! to scenarios by `principal.session`. `cargo xtask eval` and tests/corpus_eval.rs use it.

pub mod agent;
pub mod host;
pub mod launch;
pub mod report;
pub mod spec;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sentinel::model::Anomaly;

use host::{LIB_DIR, NetNs, PREFIX, User};
use spec::{As, Kind, Scenario};

/// What to evaluate and with what.
pub struct Options {
    /// tests/corpus.
    pub corpus: PathBuf,
    /// The agent binary under test.
    pub sentinel: PathBuf,
    /// Only scenarios whose id contains this (or one of its `|`-separated parts).
    pub filter: Option<String>,
    /// Where each script's output is kept.
    pub log_dir: PathBuf,
    /// Longest a script may run before it is killed (and reported).
    pub script_limit: Duration,
    /// Print progress on stderr.
    pub verbose: bool,
}

impl Options {
    /// The repository's corpus, the given agent, logs in `log_dir`.
    pub fn new(sentinel: PathBuf, log_dir: PathBuf) -> Options {
        Options {
            corpus: Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"),
            sentinel,
            filter: None,
            log_dir,
            script_limit: Duration::from_secs(30),
            verbose: true,
        }
    }
}

/// One run of one script.
#[derive(Clone, Debug, Default)]
pub struct Ran {
    pub session: Option<u32>,
    /// None: killed at the time limit.
    pub exit: Option<i32>,
    pub elapsed: Duration,
    /// Broken preconditions, changes left behind, failures: the scenario proves nothing.
    pub problems: Vec<String>,
}

/// A scenario, how it ran under the agent, and what the agent said about its session.
pub struct Outcome {
    pub scenario: Scenario,
    pub user: String,
    pub ran: Ran,
    pub anomalies: Vec<Anomaly>,
}

pub struct Evaluation {
    pub outcomes: Vec<Outcome>,
    pub commit: String,
    pub date: String,
    pub elapsed: Duration,
    pub learn_said: String,
    pub agent_summary: serde_json::Value,
    pub agent_exit: i32,
}

fn say(opts: &Options, msg: impl std::fmt::Display) {
    if opts.verbose {
        eprintln!("eval: {msg}");
    }
}

/// Everything the evaluation created, removed when it ends (also on error).
struct Cleanup {
    users: Vec<String>,
    victim_proc: Option<std::process::Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = self.victim_proc.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for u in &self.users {
            host::remove_user(u);
        }
        let _ = std::fs::remove_dir_all(LIB_DIR);
    }
}

/// The user name of a scenario: attack scenarios are numbered in the whole corpus (stable
/// whatever the filter), benign workloads keep their name.
fn user_name(s: &Scenario, index: usize) -> String {
    let mut n = match s.kind {
        Kind::Attack => format!("{PREFIX}a{index:03}"),
        Kind::Benign => format!("{PREFIX}{}", s.name),
    };
    n.truncate(32);
    n
}

/// A script to run: a corpus scenario or a learning-time habit.
struct Script<'a> {
    name: String,
    rel: PathBuf,
    as_: As,
    needs_remote: bool,
    setup: &'a [String],
    teardown: &'a [String],
    guard: bool,
}

fn script_of(s: &Scenario) -> Script<'_> {
    Script {
        name: s.name.clone(),
        rel: s.rel.clone(),
        as_: s.as_,
        needs_remote: s.needs_remote,
        setup: &s.setup,
        teardown: &s.teardown,
        guard: true,
    }
}

struct Ctx<'a> {
    opts: &'a Options,
    victim: &'a User,
    victim_pid: u32,
    seq: std::cell::Cell<u32>,
}

impl Ctx<'_> {
    fn env(&self, script: &Script, user: &User, tmp: &Path, fix: &Path) -> Vec<(String, String)> {
        let root = script.as_ == As::Root;
        let home = if root {
            "/root".to_string()
        } else {
            user.home.display().to_string()
        };
        let me = if root { "root" } else { user.name.as_str() };
        let path = if root {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        } else {
            "/usr/local/bin:/usr/bin:/bin"
        };
        [
            ("HOME", home),
            ("USER", me.into()),
            ("LOGNAME", me.into()),
            ("SHELL", "/bin/bash".into()),
            ("PATH", path.into()),
            ("LANG", "C.UTF-8".into()),
            ("TERM", "xterm".into()),
            ("SNTL_ID", script.name.clone()),
            ("SNTL_USER", user.name.clone()),
            ("SNTL_UID", user.uid.to_string()),
            ("SNTL_TMP", tmp.display().to_string()),
            ("SNTL_FIX", fix.display().to_string()),
            ("SNTL_REMOTE", host::REMOTE_ADDR.into()),
            ("SNTL_METADATA", host::METADATA_ADDR.into()),
            ("SNTL_VICTIM", self.victim.name.clone()),
            ("SNTL_VICTIM_HOME", self.victim.home.display().to_string()),
            ("SNTL_VICTIM_PID", self.victim_pid.to_string()),
            ("SNTL_CORPUS", format!("{LIB_DIR}/corpus")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Runs one script as `user` in a fresh session and namespace, with its setup and
    /// teardown around it; everything it created is removed afterwards.
    fn run(&self, script: &Script, user: &User, phase: &str) -> anyhow::Result<Ran> {
        let opts = self.opts;
        let n = self.seq.get();
        self.seq.set(n + 1);
        let guard = script.guard.then(host::Guard::take);
        let mut ran = Ran::default();
        let ns = NetNs::create(&format!("{PREFIX}n{n}"))?;
        let tmp = PathBuf::from(format!("/tmp/{PREFIX}{}", script.name));
        let fix = PathBuf::from(format!("{LIB_DIR}/fix/{}", script.name));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        std::fs::create_dir_all(&fix)?;
        if script.as_ == As::User {
            std::os::unix::fs::chown(&tmp, Some(user.uid), Some(user.gid))?;
        }
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let env = self.env(script, user, &tmp, &fix);
        let log = opts.log_dir.join(format!("{}.{phase}.log", script.name));
        let root_sh = |line: &str, what: &str| -> Option<String> {
            let st = std::process::Command::new("/bin/bash")
                .args(["-c", line])
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .env(
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                )
                .stdin(std::process::Stdio::null())
                .output();
            match st {
                Ok(o) if o.status.success() => None,
                Ok(o) => Some(format!(
                    "{what} `{line}` failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => Some(format!("{what} `{line}`: {e}")),
            }
        };
        for line in script.setup {
            if let Some(p) = root_sh(line, "setup") {
                ran.problems.push(p);
            }
        }
        let mut remote = None;
        if script.needs_remote && ran.problems.is_empty() {
            match self.start_remote(
                &ns,
                &fix,
                &opts
                    .log_dir
                    .join(format!("{}.{phase}.remote.log", script.name)),
            ) {
                Ok(r) => remote = Some(r),
                Err(e) => ran.problems.push(format!("stand-in remote: {e:#}")),
            }
        }
        if ran.problems.is_empty() {
            let cwd = if script.as_ == As::Root {
                PathBuf::from("/root")
            } else {
                user.home.clone()
            };
            let program = PathBuf::from("/bin/bash");
            let launch = launch::Launch {
                program: &program,
                args: vec![format!("{LIB_DIR}/corpus/{}", script.rel.display())],
                env: env.clone(),
                cwd: &cwd,
                login_uid: Some(user.uid),
                drop_to: (script.as_ == As::User)
                    .then(|| (user.uid, user.gid, user.groups.clone())),
                netns: Some(&ns.file),
                log: &log,
            };
            let start = Instant::now();
            // Errors from here on are the scenario's problems: teardown and the guard below
            // must run whatever happened.
            match launch::spawn(&launch) {
                Err(e) => ran.problems.push(format!("cannot start: {e:#}")),
                Ok(mut child) => {
                    let session = launch::session_of(child.id());
                    match launch::wait(&mut child, opts.script_limit) {
                        Ok(code) => ran.exit = code,
                        Err(e) => ran.problems.push(format!("waiting: {e:#}")),
                    }
                    ran.elapsed = start.elapsed();
                    match session {
                        Ok(s) => {
                            ran.session = Some(s);
                            launch::kill_session(s);
                        }
                        Err(e) => ran.problems.push(format!("no session: {e:#}")),
                    }
                    match ran.exit {
                        Some(0) => {}
                        Some(c) => ran.problems.push(format!("exited {c}: {}", tail(&log, 6))),
                        None => ran.problems.push(format!(
                            "killed after {:?}: {}",
                            opts.script_limit,
                            tail(&log, 6)
                        )),
                    }
                }
            }
        }
        for line in script.teardown {
            if let Some(p) = root_sh(line, "teardown") {
                ran.problems.push(p);
            }
        }
        if let Some(mut r) = remote {
            let _ = r.kill();
            let _ = r.wait();
        }
        drop(ns);
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_dir_all(&fix);
        if let Some(g) = guard {
            ran.problems.extend(g.restore());
        }
        Ok(ran)
    }

    /// The stand-in for the far side (C2 server, payload host, exfiltration sink, cloud
    /// metadata) inside the scenario's namespace, run by root outside the scenario's session.
    fn start_remote(
        &self,
        ns: &NetNs,
        fix: &Path,
        log: &Path,
    ) -> anyhow::Result<std::process::Child> {
        let program = PathBuf::from("/usr/bin/python3");
        let ready = fix.join("remote.ready");
        let launch = launch::Launch {
            program: &program,
            args: vec![
                format!("{LIB_DIR}/corpus/lib/remote.py"),
                host::REMOTE_ADDR.into(),
                host::METADATA_ADDR.into(),
                ready.display().to_string(),
            ],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: Path::new("/"),
            login_uid: None,
            drop_to: None,
            netns: Some(&ns.file),
            log,
        };
        let mut child = launch::spawn(&launch)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            if let Some(st) = child.try_wait()? {
                bail!("exited {st}: {}", tail(log, 6));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("not listening after 30 s: {}", tail(log, 6));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(child)
    }
}

/// The last `n` lines of a log, on one line.
fn tail(p: &Path, n: usize) -> String {
    let t = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn git_commit(dir: &Path) -> String {
    let out = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = out(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = out(&[
        "status",
        "--porcelain",
        "--",
        "sentinel",
        "sentinel-common",
        "sentinel-ebpf",
    ])
    .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{head} (with uncommitted changes to the agent)")
    } else {
        head
    }
}

fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Copies the corpus where every throw-away user can read it (root-owned, not writable).
fn install_corpus(from: &Path) -> anyhow::Result<()> {
    let to = Path::new(LIB_DIR).join("corpus");
    std::fs::create_dir_all(LIB_DIR)?;
    host::sh(&format!(
        "cp -r {} {} && chown -R root:root {LIB_DIR} && chmod -R u=rwX,go=rX {LIB_DIR}",
        from.display(),
        to.display()
    ))
}

/// Runs the whole evaluation. Root only; the host is left as it was found.
pub fn evaluate(opts: &Options) -> anyhow::Result<Evaluation> {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the evaluation loads eBPF programs and creates users: run it as root");
    }
    let started = Instant::now();
    let all = spec::load(&opts.corpus).context("reading the corpus")?;
    let chosen: Vec<(usize, Scenario)> = all
        .into_iter()
        .enumerate()
        .filter(|(_, s)| {
            opts.filter
                .as_ref()
                .is_none_or(|f| f.split('|').any(|f| s.id.contains(f)))
        })
        .collect();
    if chosen.is_empty() {
        bail!("no scenario matches the filter");
    }
    host::remove_leftovers();
    std::fs::create_dir_all(&opts.log_dir)?;
    let mut cleanup = Cleanup {
        users: Vec::new(),
        victim_proc: None,
    };
    install_corpus(&opts.corpus)?;
    say(opts, format!("{} scenarios; creating users", chosen.len()));
    cleanup.users.push(host::VICTIM.into());
    let victim = User::create(host::VICTIM)?;
    host::victim_fixtures(&victim)?;
    let mut users = Vec::new();
    for (i, s) in &chosen {
        let name = user_name(s, *i);
        cleanup.users.push(name.clone());
        users.push(User::create(&name)?);
    }
    // The victim's long-running process, holding a secret in memory and its environment.
    let vlog = opts.log_dir.join("victim.log");
    let program = PathBuf::from("/usr/bin/python3");
    let victim_child = launch::spawn(&launch::Launch {
        program: &program,
        args: vec![
            "-c".into(),
            "import time\nsecret = 'vault-token-' + 'fake0123456789'\ntime.sleep(3600)\n".into(),
        ],
        env: vec![("DB_PASSWORD".into(), "victim-fake-password".into())],
        cwd: &victim.home,
        login_uid: Some(victim.uid),
        drop_to: Some((victim.uid, victim.gid, victim.groups.clone())),
        netns: None,
        log: &vlog,
    })?;
    let victim_pid = victim_child.id();
    cleanup.victim_proc = Some(victim_child);

    let work = tempfile::Builder::new()
        .prefix("corpus-eval-agent")
        .tempdir()?;
    let workspace = opts
        .corpus
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    let ignore = agent::build_noise(workspace);
    say(opts, format!("agent ignores opens under {ignore:?}"));
    let cfg = agent::config_in(work.path(), &ignore)?;
    let ctx = Ctx {
        opts,
        victim: &victim,
        victim_pid,
        seq: std::cell::Cell::new(0),
    };
    let script = script_of;

    // Learning: each benign workload once, each attack user's ordinary habits.
    say(opts, "learning: starting sentinel learn");
    let learner = agent::Learner::start(&opts.sentinel, &cfg)?;
    let no_lines: &[String] = &[];
    for ((_, s), u) in chosen.iter().zip(&users) {
        if s.kind == Kind::Benign {
            say(opts, format!("learning: {}", s.id));
            let r = ctx.run(&script(s), u, "learn")?;
            if !r.problems.is_empty() {
                say(opts, format!("  {}: {}", s.id, r.problems.join("; ")));
            }
            continue;
        }
        let mut habits = vec![("user", As::User)];
        if s.as_ == As::Root {
            habits.push(("admin", As::Root));
        }
        for (h, as_) in habits {
            let hs = Script {
                name: format!("habit-{h}-{}", s.name),
                rel: PathBuf::from(format!("habits/{h}.sh")),
                as_,
                needs_remote: false,
                setup: no_lines,
                teardown: no_lines,
                guard: false,
            };
            let r = ctx.run(&hs, u, "learn")?;
            if !r.problems.is_empty() {
                say(
                    opts,
                    format!("  habit {h} of {}: {}", u.name, r.problems.join("; ")),
                );
            }
        }
    }
    let learn_said = learner.finish()?;
    say(opts, format!("learned: {learn_said}"));

    // Detection: benign workloads again, then every attack scenario.
    let mut watcher = agent::Watcher::start(&opts.sentinel, &cfg)?;
    watcher.sync()?;
    let mut runs = Vec::new();
    let order = chosen
        .iter()
        .zip(&users)
        .filter(|((_, s), _)| s.kind == Kind::Benign)
        .chain(
            chosen
                .iter()
                .zip(&users)
                .filter(|((_, s), _)| s.kind == Kind::Attack),
        );
    for ((_, s), u) in order {
        let r = ctx.run(&script(s), u, "run")?;
        watcher.sync()?;
        say(
            opts,
            format!(
                "ran {} (session {}, {:.1} s){}",
                s.id,
                r.session.map(|s| s.to_string()).unwrap_or("?".into()),
                r.elapsed.as_secs_f64(),
                if r.problems.is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.problems.join("; "))
                }
            ),
        );
        runs.push((s.clone(), u.clone(), r));
    }
    let said = watcher.stop()?;
    drop(cleanup);

    let outcomes = runs
        .into_iter()
        .map(|(s, u, r)| {
            let anomalies = said
                .anomalies
                .iter()
                .filter(|a| {
                    a.principal.uid == u.uid
                        && (a.principal.session.is_none() || a.principal.session == r.session)
                })
                .cloned()
                .collect();
            Outcome {
                scenario: s,
                user: u.name,
                ran: r,
                anomalies,
            }
        })
        .collect();
    Ok(Evaluation {
        outcomes,
        commit: git_commit(&opts.corpus),
        date: now_utc(),
        elapsed: started.elapsed(),
        learn_said,
        agent_summary: said.summary,
        agent_exit: said.exit_code,
    })
}
