//! The real agent under test: `sentinel learn` for the learning period and `sentinel run
//! --json --events` while the scenarios play, with a private configuration and store.
//! Readiness is the agent's own word (its "learning" line, its `status` record); catching up
//! is a marker exec seen in its output, after which every earlier event has been analysed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sentinel::model::Anomaly;

/// How long the agent may take to start, to catch up, or to stop (a debug build on a busy
/// machine drains, learns and stores thousands of profiles when it stops learning).
const AGENT_WAIT: Duration = Duration::from_secs(600);

/// Writes the agent's configuration into `dir`: the store in `dir` (never the system's), and
/// open events under `ignore` dropped in the kernel.
pub fn config_in(dir: &Path, ignore: &[String]) -> anyhow::Result<PathBuf> {
    let cfg = dir.join("sentinel.toml");
    let list: Vec<String> = ignore.iter().map(|p| format!("{p:?}")).collect();
    std::fs::write(
        &cfg,
        format!(
            // Room for bursts (a backup job's tar of /home) while a debug agent on a busy
            // machine catches up: a lost event while learning is a false positive later.
            "store = {:?}\n\n[collect]\nignore_prefixes = [{}]\nring_buffer_bytes = 67108864\nchannel_capacity = 1048576\n",
            dir.join("agent.db"),
            list.join(", ")
        ),
    )?;
    Ok(cfg)
}

/// Where builds running next to the evaluation open their files (this repository and its
/// sibling checkouts, cargo's and rustup's homes): none of it is a scenario's, and on a
/// shared build machine it is most of what the agent would otherwise have to analyse.
pub fn build_noise(workspace: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let shared = ["/", "/home", "/root", "/tmp", "/usr", "/var"];
    let root = workspace
        .parent()
        .filter(|p| !shared.iter().any(|s| Path::new(s) == *p))
        .unwrap_or(workspace);
    out.push(root.to_path_buf());
    for (var, dflt) in [("CARGO_HOME", ".cargo"), ("RUSTUP_HOME", ".rustup")] {
        match std::env::var_os(var) {
            Some(v) => out.push(PathBuf::from(v)),
            None => out.extend(home.as_ref().map(|h| h.join(dflt))),
        }
    }
    out.into_iter()
        .filter(|p| p.is_absolute() && p.exists())
        .map(|p| format!("{}/", p.display().to_string().trim_end_matches('/')))
        .collect()
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(child.id() as i32, sig) };
}

fn wait_exit(child: &mut Child, what: &str) -> anyhow::Result<i32> {
    let deadline = Instant::now() + AGENT_WAIT;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st.code().unwrap_or(-1));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("{what} did not stop within {AGENT_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lines of a child's pipe, on a channel.
fn lines(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running `sentinel learn`.
pub struct Learner {
    child: Child,
    out: mpsc::Receiver<String>,
}

impl Learner {
    /// Starts learning; returns once the probes are attached.
    pub fn start(bin: &Path, cfg: &Path) -> anyhow::Result<Learner> {
        let mut child = Command::new(bin)
            .args(["learn", "--config"])
            .arg(cfg)
            // Ended early (SIGINT) once the learning workloads are done.
            .args(["--duration", "1h"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let err = lines(child.stderr.take().context("stderr")?);
        let out = lines(child.stdout.take().context("stdout")?);
        let deadline = Instant::now() + AGENT_WAIT;
        let mut said = Vec::new();
        loop {
            match err.recv_timeout(Duration::from_millis(200)) {
                Ok(l) if l.contains("learning for") => break,
                Ok(l) => said.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let code = wait_exit(&mut child, "sentinel learn")?;
                    bail!(
                        "sentinel learn exited ({code}) before learning: {}",
                        said.join("\n")
                    );
                }
                Err(_) if Instant::now() > deadline => {
                    let _ = child.kill();
                    bail!(
                        "sentinel learn not ready within {AGENT_WAIT:?}: {}",
                        said.join("\n")
                    );
                }
                Err(_) => {}
            }
        }
        // Keep draining stderr so the agent never blocks on it.
        std::thread::spawn(move || for _ in err {});
        Ok(Learner { child, out })
    }

    /// Ends the learning period (everything collected so far is learned and vouched for);
    /// returns the agent's summary line.
    pub fn finish(mut self) -> anyhow::Result<String> {
        signal(&self.child, libc::SIGINT);
        let code = wait_exit(&mut self.child, "sentinel learn")?;
        let said: Vec<String> = self.out.try_iter().collect();
        if code != 0 {
            bail!("sentinel learn exited {code}: {}", said.join("\n"));
        }
        Ok(said.join("\n"))
    }
}

/// A running `sentinel run --json --events`.
pub struct Watcher {
    child: Child,
    out: mpsc::Receiver<String>,
    anomalies: Vec<Anomaly>,
    marker: u64,
    pub status: serde_json::Value,
}

/// What the agent said by the time it stopped.
pub struct Said {
    pub anomalies: Vec<Anomaly>,
    pub summary: serde_json::Value,
    pub exit_code: i32,
}

impl Watcher {
    pub fn start(bin: &Path, cfg: &Path) -> anyhow::Result<Watcher> {
        let mut child = Command::new(bin)
            .args(["run", "--json", "--events", "--config"])
            .arg(cfg)
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let out = lines(child.stdout.take().context("stdout")?);
        let first = match out.recv_timeout(AGENT_WAIT) {
            Ok(l) => l,
            Err(e) => {
                let _ = child.kill();
                bail!("sentinel run printed no status record: {e}");
            }
        };
        let status: serde_json::Value =
            serde_json::from_str(&first).with_context(|| format!("first line: {first}"))?;
        if status["type"] != "status" {
            let _ = child.kill();
            bail!("sentinel run's first record is not its status: {first}");
        }
        Ok(Watcher {
            child,
            out,
            anomalies: Vec::new(),
            marker: 0,
            status,
        })
    }

    fn take(&mut self, l: &str) -> anyhow::Result<()> {
        if l.starts_with("{\"type\":\"anomaly\"") {
            let a: Anomaly =
                serde_json::from_str(l).with_context(|| format!("anomaly record: {l}"))?;
            self.anomalies.push(a);
        }
        Ok(())
    }

    /// Returns once the agent has analysed everything that happened before the call: a
    /// marker process runs and its exec must come out of the agent (re-sent if the output
    /// skipped it while busy).
    pub fn sync(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + AGENT_WAIT;
        loop {
            self.marker += 1;
            let tag = format!("sntl-ev-mark-{}-{}", std::process::id(), self.marker);
            let st = Command::new("/bin/true").arg(&tag).status()?;
            anyhow::ensure!(st.success(), "marker process failed");
            let resend = Instant::now() + Duration::from_secs(15);
            while Instant::now() < resend {
                match self.out.recv_timeout(Duration::from_millis(200)) {
                    Ok(l) => {
                        if l.contains(&tag) && l.starts_with("{\"type\":\"event\"") {
                            return Ok(());
                        }
                        self.take(&l)?;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        bail!("sentinel run ended while the scenarios ran")
                    }
                    Err(_) => {}
                }
                if Instant::now() > deadline {
                    bail!("sentinel run did not catch up within {AGENT_WAIT:?}");
                }
            }
        }
    }

    /// Stops the agent (it drains what the kernel queued) and returns what it said.
    pub fn stop(mut self) -> anyhow::Result<Said> {
        signal(&self.child, libc::SIGTERM);
        let mut summary = serde_json::Value::Null;
        let deadline = Instant::now() + AGENT_WAIT;
        loop {
            match self.out.recv_timeout(Duration::from_millis(200)) {
                Ok(l) => {
                    if l.starts_with("{\"type\":\"summary\"") {
                        summary = serde_json::from_str(&l).unwrap_or_default();
                    }
                    self.take(&l)?;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(_) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    bail!("sentinel run did not stop within {AGENT_WAIT:?}");
                }
                Err(_) => {}
            }
        }
        let exit_code = wait_exit(&mut self.child, "sentinel run")?;
        Ok(Said {
            anomalies: std::mem::take(&mut self.anomalies),
            summary,
            exit_code,
        })
    }
}

/// An agent left running by an error is stopped with the run.
fn reap(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        reap(&mut self.child);
    }
}

impl Drop for Learner {
    fn drop(&mut self) {
        reap(&mut self.child);
    }
}
