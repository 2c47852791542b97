//! A throw-away PostgreSQL cluster for the store tests, the end-to-end suites and the load
//! bench: `initdb` into a private directory, a server on its own port (loopback only) and
//! socket directory, readiness from `pg_isready`, one database per test, and `pg_ctl stop`
//! plus removal at the end. PostgreSQL refuses to run as root: as root the binaries run as
//! the `postgres` user of Debian's package (through `runuser`). Missing binaries are an error
//! that says what to install, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A running cluster; stopped and removed on drop (and, for `shared`, at process exit).
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// The user the server runs as when we are root.
    run_as: Option<String>,
    /// Commits flushed to disk (the load bench) or not (tests: faster, nothing to keep).
    durable: bool,
}

/// Where the server binaries are: `SENTINEL_PG_BINDIR`, else the newest of Debian's
/// /usr/lib/postgresql/<version>/bin, else `pg_config --bindir`.
fn bindir() -> Result<PathBuf, String> {
    if let Ok(d) = std::env::var("SENTINEL_PG_BINDIR") {
        return Ok(PathBuf::from(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, b)) = versions.pop() {
        return Ok(b);
    }
    if let Ok(o) = Command::new("pg_config").arg("--bindir").output()
        && o.status.success()
    {
        let b = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        if b.join("initdb").exists() {
            return Ok(b);
        }
    }
    Err(
        "PostgreSQL server binaries (initdb, pg_ctl, pg_isready) not found: install Debian's \
         `postgresql` package (cargo xtask setup does) or set SENTINEL_PG_BINDIR"
            .into(),
    )
}

/// The uid and gid of `user` (the server's user when we are root).
fn user_ids(user: &str) -> Result<(u32, u32), String> {
    let name = std::ffi::CString::new(user).map_err(|e| e.to_string())?;
    // SAFETY: getpwnam returns a pointer into static storage or null; read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(format!(
            "running as root, and there is no `{user}` user to run PostgreSQL as (PostgreSQL \
             refuses root): install Debian's `postgresql` package, which creates it"
        ));
    }
    // SAFETY: pw is not null (checked above).
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

impl Cluster {
    /// Creates and starts a cluster, waiting (with a deadline) until it accepts connections.
    /// Commits are not flushed to disk (fsync and synchronous_commit off): test data.
    pub fn start() -> Result<Cluster, String> {
        Cluster::start_with(false)
    }

    /// As `start`, with PostgreSQL's default durability (every commit flushed): the load
    /// bench measures what a real site pays.
    pub fn start_durable() -> Result<Cluster, String> {
        Cluster::start_with(true)
    }

    fn start_with(durable: bool) -> Result<Cluster, String> {
        let bin = bindir()?;
        let run_as = (unsafe { libc::geteuid() } == 0).then(|| "postgres".to_string());
        sweep_orphans(&bin, run_as.as_deref());
        let base = std::env::temp_dir().join(format!(
            "sentinel-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("sock"))
            .map_err(|e| format!("creating {}: {e}", base.display()))?;
        let c = Cluster {
            dir: base,
            bin,
            port: free_port()?,
            run_as,
            durable,
        };
        if let Some(user) = &c.run_as {
            c.chown_to(user)?;
        }
        let data = c.dir.join("data");
        c.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        c.pg_ctl("start")?;
        c.wait_ready(Duration::from_secs(60))?;
        Ok(c)
    }

    /// `pg_ctl start` or `restart` (fast: open sessions are ended, commits kept) with this
    /// cluster's options, waiting for the server to answer.
    fn pg_ctl(&self, action: &str) -> Result<(), String> {
        let mut opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c max_connections=400",
            self.port,
            path_str(&self.dir.join("sock"))?
        );
        if !self.durable {
            opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let (data, log) = (self.dir.join("data"), self.dir.join("server.log"));
        let mut args = vec!["-D", path_str(&data)?, "-l", path_str(&log)?, "-o", &opts];
        if action == "restart" {
            args.extend(["-m", "fast"]);
        }
        args.extend(["-W", action]);
        self.run("pg_ctl", &args)?;
        self.wait_ready(Duration::from_secs(60))
    }

    /// Stops the server (fast shutdown) and starts it again on the same port: the load
    /// bench's database fault.
    pub fn restart(&self) -> Result<(), String> {
        self.pg_ctl("restart")
    }

    /// The server's processes (postmaster and backends), for their CPU time.
    pub fn pids(&self) -> Vec<u32> {
        let Some(master) = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<u32>().ok())
        else {
            return Vec::new();
        };
        let mut out = vec![master];
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            let ppid = std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.get(s.rfind(')')? + 2..)?.to_string();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                });
            if ppid == Some(master) {
                out.push(pid);
            }
        }
        out
    }

    fn chown_to(&self, user: &str) -> Result<(), String> {
        let (uid, gid) = user_ids(user)?;
        for p in [self.dir.clone(), self.dir.join("sock")] {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", p.display()))?;
        }
        Ok(())
    }

    /// Runs one of the server binaries (as the `postgres` user when we are root).
    fn run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.run_as {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(u).arg("--").arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|e| format!("running {}: {e}", exe.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{tool} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                self.log_tail()
            ));
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log"))
            .map(|l| format!("\nserver log:\n{l}"))
            .unwrap_or_default()
    }

    /// Polls `pg_isready` until the server accepts connections or the deadline passes.
    fn wait_ready(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let isready = self.bin.join("pg_isready");
        loop {
            let st = Command::new(&isready)
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "2"])
                .output()
                .map_err(|e| format!("running {}: {e}", isready.display()))?;
            if st.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "PostgreSQL on port {} not ready after {within:?}{}",
                    self.port,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection string of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates an empty database of its own (tests run in parallel) and returns its URL.
    pub async fn create_database(&self) -> Result<String, String> {
        let name = format!(
            "t_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            crate::store::now_ns() % 1_000_000_000
        );
        self.sql(&format!("CREATE DATABASE {name}")).await?;
        Ok(self.url(&name))
    }

    /// As `create_database`, without a runtime (through `createdb`): for synchronous setup.
    pub fn create_database_blocking(&self) -> Result<String, String> {
        let name = format!(
            "t_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            crate::store::now_ns() % 1_000_000_000
        );
        let exe = self.bin.join("createdb");
        let out = Command::new(&exe)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                &name,
            ])
            .output()
            .map_err(|e| format!("running {}: {e}", exe.display()))?;
        if !out.status.success() {
            return Err(format!(
                "createdb {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(self.url(&name))
    }

    /// Turns TLS on with this certificate chain and key (PEM), and returns once a new
    /// connection sees it on.
    pub async fn enable_tls(&self, cert_pem: &str, key_pem: &str) -> Result<(), String> {
        let (cert, key) = (self.dir.join("server.crt"), self.dir.join("server.key"));
        for (p, body) in [(&cert, cert_pem), (&key, key_pem)] {
            std::fs::write(p, body).map_err(|e| format!("writing {}: {e}", p.display()))?;
            // The server reads them as its own user and refuses a key others can read.
            std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .map_err(|e| format!("chmod {}: {e}", p.display()))?;
        }
        if let Some(user) = &self.run_as {
            let (uid, gid) = user_ids(user)?;
            for p in [&cert, &key] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))
                    .map_err(|e| format!("chown {}: {e}", p.display()))?;
            }
        }
        // One statement each: ALTER SYSTEM refuses to run in the implicit transaction of a
        // multi-statement batch.
        for sql in [
            format!("ALTER SYSTEM SET ssl_cert_file = '{}'", path_str(&cert)?),
            format!("ALTER SYSTEM SET ssl_key_file = '{}'", path_str(&key)?),
            "ALTER SYSTEM SET ssl = on".into(),
            "SELECT pg_reload_conf()".into(),
        ] {
            self.sql(&sql).await?;
        }
        // The postmaster applies the reload when it gets to the signal; a new backend then
        // reads the new settings.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (client, conn) =
                tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
                    .await
                    .map_err(|e| {
                        format!("connecting to the test cluster: {}", super::db_msg(&e))
                    })?;
            let task = tokio::spawn(conn);
            let on = client
                .query_one("SHOW ssl", &[])
                .await
                .map(|r| r.get::<_, String>(0) == "on")
                .map_err(|e| super::db_msg(&e))?;
            drop(client);
            let _ = task.await;
            if on {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("the test cluster did not turn TLS on within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `sql` as the superuser on database `postgres`.
    async fn sql(&self, sql: &str) -> Result<(), String> {
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("connecting to the test cluster: {}", super::db_msg(&e)))?;
        let task = tokio::spawn(conn);
        client
            .batch_execute(sql)
            .await
            .map_err(|e| format!("{sql}: {}", super::db_msg(&e)))?;
        drop(client);
        let _ = task.await;
        Ok(())
    }

    /// Stops the server at once and removes its directory.
    pub fn stop(&self) {
        if self.dir.join("data").exists() {
            let _ = self.run(
                "pg_ctl",
                &[
                    "-D",
                    &self.dir.join("data").to_string_lossy(),
                    "-m",
                    "immediate",
                    "-W",
                    "stop",
                ],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops and removes clusters left by test processes that were killed before their exit
/// hook ran (their directory names carry their process id), so a shared machine does not
/// accumulate running servers.
fn sweep_orphans(bin: &Path, run_as: Option<&str>) {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("sentinel-pg-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let orphan = Cluster {
            dir: e.path(),
            bin: bin.to_path_buf(),
            port: 0,
            run_as: run_as.map(str::to_string),
            durable: false,
        };
        drop(orphan); // Drop stops it and removes the directory.
    }
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("non-UTF-8 path {}", p.display()))
}

static NEXT: AtomicU64 = AtomicU64::new(0);
static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();

extern "C" fn stop_shared() {
    if let Some(Ok(c)) = SHARED.get() {
        c.stop();
    }
}

/// The process's one cluster, started on first use and stopped when the process exits.
/// Panics with the reason when PostgreSQL cannot be started (tests must not skip).
pub fn shared() -> &'static Cluster {
    let c = SHARED.get_or_init(|| {
        let c = Cluster::start();
        if c.is_ok() {
            // SAFETY: registers a plain function; it only reads the OnceLock.
            unsafe { libc::atexit(stop_shared) };
        }
        c
    });
    match c {
        Ok(c) => c,
        Err(e) => panic!("cannot start a PostgreSQL test cluster: {e}"),
    }
}

/// As `database`, for synchronous callers.
pub fn database_blocking() -> String {
    match shared().create_database_blocking() {
        Ok(u) => u,
        Err(e) => panic!("{e}"),
    }
}

/// A fresh database in the shared cluster, as a `[server] database` URL.
pub async fn database() -> String {
    let c = shared();
    match c.create_database().await {
        Ok(u) => u,
        Err(e) => panic!("{e}"),
    }
}
