//! The server under load: a real `sentinel serve` child on a fixed loopback port (so that it
//! can be restarted where the agents expect it), on a SQLite file or a throw-away PostgreSQL
//! cluster of its own, and what it costs: CPU time and peak RSS from /proc, database bytes.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use sentinel::server::postgres::testing::Cluster;

/// Which store the server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn parse(s: &str) -> anyhow::Result<Backend> {
        match s {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => bail!("unknown backend {s:?} (sqlite, postgres)"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The database a run writes to.
pub struct Database {
    pub backend: Backend,
    /// The SQLite file (its -wal and -shm files count too).
    file: PathBuf,
    /// The PostgreSQL cluster and database URL.
    pg: Option<(Cluster, String)>,
}

impl Database {
    pub async fn create(backend: Backend, dir: &Path) -> anyhow::Result<Database> {
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                // Durable, like a real site: every commit is flushed (the tests' clusters
                // are not).
                let c = tokio::task::spawn_blocking(Cluster::start_durable)
                    .await?
                    .map_err(anyhow::Error::msg)?;
                let url = c.create_database().await.map_err(anyhow::Error::msg)?;
                Some((c, url))
            }
        };
        Ok(Database {
            backend,
            file: dir.join("server.db"),
            pg,
        })
    }

    /// The `--db FILE` or `--database URL` arguments of the `sentinel` commands.
    pub fn args(&self) -> Vec<String> {
        match &self.pg {
            Some((_, url)) => vec!["--database".into(), url.clone()],
            None => vec!["--db".into(), self.file.display().to_string()],
        }
    }

    /// The server configuration naming this database (to read it back at the end).
    pub fn config(&self) -> sentinel::server::ServerConfig {
        sentinel::server::ServerConfig {
            db: self.file.clone(),
            database: self.pg.as_ref().map(|(_, u)| u.clone()),
            ..Default::default()
        }
    }

    /// Bytes on disk: the SQLite file with its journal files, or `pg_database_size`.
    pub async fn bytes(&self) -> anyhow::Result<u64> {
        match &self.pg {
            None => Ok(["", "-wal", "-shm"]
                .iter()
                .filter_map(|s| std::fs::metadata(format!("{}{s}", self.file.display())).ok())
                .map(|m| m.len())
                .sum()),
            Some((_, url)) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .context("connecting to measure the database")?;
                let task = tokio::spawn(conn);
                let row = client
                    .query_one("SELECT pg_database_size(current_database())", &[])
                    .await?;
                drop(client);
                let _ = task.await;
                Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
            }
        }
    }

    /// CPU seconds the PostgreSQL server has used so far (0 on SQLite, which runs inside
    /// the server process).
    pub fn cpu_secs(&self) -> f64 {
        self.pg
            .as_ref()
            .map(|(c, _)| c.pids().iter().map(|p| cpu_secs(*p, true)).sum())
            .unwrap_or(0.0)
    }

    /// Restarts PostgreSQL (fast shutdown: sessions end, commits stay).
    pub async fn restart(&self) -> anyhow::Result<()> {
        let Some((c, _)) = &self.pg else {
            bail!("a database restart needs PostgreSQL");
        };
        // The cluster is not Send across the blocking call: restart here, briefly blocking.
        tokio::task::block_in_place(|| c.restart()).map_err(anyhow::Error::msg)
    }
}

/// utime + stime of a process (and of its reaped children when `children`), in seconds.
pub fn cpu_secs(pid: u32, children: bool) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
        return 0.0;
    };
    // Fields after the command: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let ticks = if children {
        f.iter().sum::<u64>()
    } else {
        f.iter().take(2).sum::<u64>()
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// Peak resident memory of a process (VmHWM), KiB.
pub fn rss_peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs a `sentinel` command to completion with `stdin`, returning its stdout.
pub fn sentinel_cmd(
    bin: &Path,
    config: &Path,
    args: &[String],
    stdin: &str,
) -> anyhow::Result<String> {
    let mut c = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", bin.display()))?;
    if let Some(mut i) = c.stdin.take() {
        i.write_all(stdin.as_bytes())?;
    }
    let out = c.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "sentinel {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A running `sentinel serve`; killed when dropped.
pub struct Served {
    bin: PathBuf,
    config: PathBuf,
    args: Vec<String>,
    pub port: u16,
    child: Child,
    /// CPU seconds and peak RSS of the processes already stopped (restarts).
    cpu_before: f64,
    rss_before: u64,
}

impl Served {
    pub fn start(bin: &Path, config: &Path, db: &Database) -> anyhow::Result<Served> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut args = vec![
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(db.args());
        let child = spawn(bin, config, &args)?;
        Ok(Served {
            bin: bin.to_path_buf(),
            config: config.to_path_buf(),
            args,
            port,
            child,
            cpu_before: 0.0,
            rss_before: 0,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGTERM (the service manager's stop), then the same command again on the same port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let (cpu, rss) = self.stop_child()?;
        self.cpu_before += cpu;
        self.rss_before = self.rss_before.max(rss);
        self.child = spawn(&self.bin, &self.config, &self.args)?;
        Ok(())
    }

    /// Stops the server: (CPU seconds, peak RSS KiB) over every process it ran as.
    pub fn stop(mut self) -> anyhow::Result<(f64, u64)> {
        let (cpu, rss) = self.stop_child()?;
        Ok((self.cpu_before + cpu, self.rss_before.max(rss)))
    }

    /// CPU seconds so far, all processes.
    pub fn cpu_secs(&self) -> f64 {
        self.cpu_before + cpu_secs(self.child.id(), false)
    }

    fn stop_child(&mut self) -> anyhow::Result<(f64, u64)> {
        let pid = self.child.id();
        // Read before the process is reaped; a zombie's /proc entry keeps the totals but
        // VmHWM goes with the address space.
        let rss = rss_peak_kib(pid);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        // Until reaped, an exited process is a zombie whose /proc stat still holds its CPU
        // time: read it then, and only then reap.
        let mut cpu = cpu_secs(pid, false);
        loop {
            match state(pid) {
                Some('Z') | Some('X') | None => break,
                _ => cpu = cpu_secs(pid, false),
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("sentinel serve did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        cpu = cpu.max(cpu_secs(pid, false));
        let _ = self.child.wait();
        Ok((cpu, rss))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The state letter of a process (R, S, Z...), None when it is gone.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.get(stat.rfind(')')? + 2..)?.chars().next()
}

/// Starts `sentinel serve` and waits (bounded) until it says it listens.
fn spawn(bin: &Path, config: &Path, args: &[String]) -> anyhow::Result<Child> {
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let err = child.stderr.take().context("piped stderr")?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name("serve.log"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            // The server's warnings (stale agents after a restart...) go to serve.log.
            let _ = writeln!(log, "{l}");
            let _ = tx.send(l);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut seen = String::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains("dashboard on ") => {
                // Drop the receiver: later lines are printed by the reader thread.
                drop(rx);
                return Ok(child);
            }
            Ok(l) => seen.push_str(&format!("{l}\n")),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("sentinel serve did not start:\n{seen}");
            }
        }
    }
}
