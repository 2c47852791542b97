//! End-to-end: the Debian package (`cargo xtask package`, docs/install.md). Built, checked by
//! lintian, installed on this machine with dpkg, its units verified by systemd-analyze, the
//! installed binary run, then removed and purged: nothing is left that was not there before
//! but what policy allows, and a guard purges it again if the test fails half-way. Without
//! systemd as init the units are never started; with it, a policy-rc.d forbids starting them
//! for the test's duration. And the agent's capability set, measured: the unit's set is enough
//! and each of its capabilities is needed.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sentinel_e2e::*;

/// Longest dpkg may be kept waiting by another dpkg or apt (the machine is shared).
const DPKG_LOCK_WAIT: Duration = Duration::from_secs(300);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Fails with a clear reason when a tool the test needs is missing.
fn need(tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    assert!(
        found,
        "{tool} is missing: tests/setup/package.sh installs it (cargo xtask test runs it)"
    );
}

fn sh(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("starting {shown}: {e}"))
}

fn ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = sh(cmd);
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The package, built once per test process by `cargo xtask package` from the current sources
/// (cheap when `cargo xtask test` has just built it).
fn package() -> PathBuf {
    static DEB: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DEB.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut c = Command::new(cargo);
        c.args(["xtask", "package"]).current_dir(workspace());
        // `cargo xtask test` packages its dev build (see xtask/src/package.rs); by hand, the
        // release build is packaged.
        if let Ok(profile) = std::env::var("SENTINEL_PACKAGE_PROFILE") {
            c.args(["--profile", &profile]);
        }
        // The test's own cargo variables would make that build differ from a hand-run one.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR" {
                c.env_remove(&*k);
            }
        }
        let out = c
            .output()
            .map_err(|e| format!("running cargo xtask package: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let deb = stdout
            .lines()
            .last()
            .map(PathBuf::from)
            .ok_or("cargo xtask package printed no path")?;
        if deb.extension().is_some_and(|e| e == "deb") && deb.is_file() {
            Ok(deb)
        } else {
            Err(format!(
                "cargo xtask package printed {stdout:?}, not a .deb"
            ))
        }
    })
    .clone()
    .unwrap_or_else(|e| panic!("building the package failed:\n{e}"))
}

/// The package's paths (files, links and directories), absolute, from `dpkg-deb -c`.
fn contents(deb: &Path) -> Vec<String> {
    ok(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| {
            let p = p.trim_start_matches('.').trim_end_matches('/');
            if p.is_empty() {
                "/".into()
            } else {
                p.to_string()
            }
        })
        .collect()
}

fn field(deb: &Path, name: &str) -> String {
    ok(Command::new("dpkg-deb").args(["-f"]).arg(deb).arg(name))
        .trim()
        .to_string()
}

fn workspace_version() -> String {
    let text = std::fs::read_to_string(workspace().join("Cargo.toml")).expect("Cargo.toml");
    let mut in_pkg = false;
    for l in text.lines() {
        if l.starts_with('[') {
            in_pkg = l.trim() == "[workspace.package]";
        } else if in_pkg && let Some(v) = l.strip_prefix("version = ") {
            return v.trim().trim_matches('"').to_string();
        }
    }
    panic!("no [workspace.package] version in Cargo.toml");
}

#[test]
fn package_holds_the_binary_units_conffile_docs_and_lintian_finds_nothing() {
    need("dpkg-deb");
    need("lintian");
    let deb = package();
    assert_eq!(field(&deb, "Package"), "sentinel");
    assert_eq!(field(&deb, "Version"), workspace_version());
    let depends = field(&deb, "Depends");
    // Computed by dpkg-shlibdeps from the binary, plus the postinst's adduser.
    assert!(depends.contains("libc6 (>= "), "Depends: {depends}");
    assert!(depends.contains("adduser"), "Depends: {depends}");
    let files = contents(&deb);
    for want in [
        "/usr/bin/sentinel",
        "/lib/systemd/system/sentinel.service",
        "/lib/systemd/system/sentinel-server.service",
        "/etc/sentinel/sentinel.toml",
        "/var/lib/sentinel",
        "/usr/share/man/man1/sentinel.1.gz",
        "/usr/share/man/man1/sentinel-run.1.gz",
        "/usr/share/man/man1/sentinel-serve.1.gz",
        "/usr/share/bash-completion/completions/sentinel",
        "/usr/share/zsh/vendor-completions/_sentinel",
        "/usr/share/fish/vendor_completions.d/sentinel.fish",
        "/usr/share/doc/sentinel/copyright",
        "/usr/share/doc/sentinel/changelog.gz",
    ] {
        assert!(
            files.iter().any(|f| f == want),
            "{want} not in the package: {files:?}"
        );
    }
    // One binary: the kernel programs are inside it.
    let bins: Vec<_> = files
        .iter()
        .filter(|f| f.starts_with("/usr/bin/"))
        .collect();
    assert_eq!(bins, ["/usr/bin/sentinel"], "{bins:?}");
    let conffiles = ok(Command::new("dpkg-deb")
        .arg("--info")
        .arg(&deb)
        .arg("conffiles"));
    assert_eq!(conffiles.trim(), "/etc/sentinel/sentinel.toml");

    // Warnings count as failures too: every accepted one is in the overrides file, with why.
    let out = sh(Command::new("lintian")
        .args(["--fail-on", "error,warning", "--display-info"])
        .arg(&deb));
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("lintian:\n{report}");
    assert!(
        out.status.success(),
        "lintian found errors or warnings ({}):\n{report}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the install test changed, undone even when it fails half-way: the package purged, the
/// system user it created deleted, the policy-rc.d it wrote removed.
struct Installed {
    server_state_existed: bool,
    user_existed: bool,
    group_existed: bool,
    policy_rc_d: Option<PathBuf>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        if installed_status().is_some() {
            let _ = dpkg(&["--purge", "sentinel"]);
        }
        if !self.server_state_existed {
            let _ = std::fs::remove_dir_all(SERVER_STATE);
        }
        if !self.user_existed && getent("passwd", "sentinel") {
            let _ = sh(Command::new("userdel").arg("sentinel"));
        }
        if !self.group_existed && getent("group", "sentinel") {
            let _ = sh(Command::new("groupdel").arg("sentinel"));
        }
        if let Some(p) = self.policy_rc_d.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn getent(db: &str, name: &str) -> bool {
    sh(Command::new("getent").args([db, name])).status.success()
}

/// dpkg's status of the package, when it knows it.
fn installed_status() -> Option<String> {
    let out = sh(Command::new("dpkg-query").args(["-W", "-f=${Status}", "sentinel"]));
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !s.is_empty() && !s.ends_with("not-installed")).then_some(s)
}

/// Runs dpkg, waiting while another dpkg or apt holds its lock (other work on this machine).
fn dpkg(args: &[&str]) -> Output {
    let start = Instant::now();
    loop {
        let out = sh(Command::new("dpkg")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"));
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !err.contains("lock") || start.elapsed() > DPKG_LOCK_WAIT {
            return out;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn dpkg_ok(args: &[&str]) {
    let out = dpkg(args);
    assert!(
        out.status.success(),
        "dpkg {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Processes running the installed binary.
fn installed_agents() -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read_link(e.path().join("exe"))
            .is_ok_and(|p| p.to_string_lossy().starts_with("/usr/bin/sentinel"))
        {
            v.push(pid);
        }
    }
    v
}

/// The dashboard's state directory (made by the postinst, for the `sentinel` user).
const SERVER_STATE: &str = "/var/lib/sentinel-server";

/// Paths that purging must have removed (besides the package's own that were not there before).
const SYSTEMD_STATE: [&str; 6] = [
    "/etc/systemd/system/multi-user.target.wants/sentinel.service",
    "/etc/systemd/system/multi-user.target.wants/sentinel-server.service",
    "/etc/systemd/system/sentinel.service",
    "/etc/systemd/system/sentinel-server.service",
    "/var/lib/systemd/deb-systemd-helper-enabled/sentinel.service.dsh-also",
    "/var/lib/systemd/deb-systemd-helper-enabled/sentinel-server.service.dsh-also",
];

#[test]
fn installs_runs_removes_and_purges_cleanly() {
    require_root();
    for t in [
        "dpkg",
        "dpkg-deb",
        "systemd-analyze",
        "man",
        "bash",
        "adduser",
    ] {
        need(t);
    }
    let deb = package();
    assert!(
        installed_status().is_none(),
        "a sentinel package is already installed here ({:?}): this test installs and purges \
         its own, so it will not run over an installation it did not make",
        installed_status()
    );
    let systemd_init = Path::new("/run/systemd/system").is_dir();
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let mut guard = Installed {
        server_state_existed: Path::new(SERVER_STATE).exists(),
        user_existed: getent("passwd", "sentinel"),
        group_existed: getent("group", "sentinel"),
        policy_rc_d: None,
    };
    if systemd_init && !policy.exists() {
        // invoke-rc.d's convention (101: action forbidden): postinst enables, never starts.
        guard.policy_rc_d = Some(policy.to_path_buf());
        std::fs::write(policy, "#!/bin/sh\nexit 101\n").expect("policy-rc.d");
        std::fs::set_permissions(policy, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("policy-rc.d mode");
    }
    let paths = contents(&deb);
    let before: BTreeSet<&str> = paths
        .iter()
        .map(String::as_str)
        .chain(SYSTEMD_STATE)
        .chain(["/etc/sentinel", SERVER_STATE])
        .filter(|p| Path::new(p).symlink_metadata().is_ok())
        .collect();
    let agents_before = installed_agents();
    assert!(
        agents_before.is_empty(),
        "/usr/bin/sentinel runs already: {agents_before:?}"
    );

    dpkg_ok(&["--install", deb.to_str().expect("utf-8 path")]);
    assert_eq!(installed_status().as_deref(), Some("install ok installed"));

    // The installed binary runs and accepts its own configuration.
    let version = ok(Command::new("/usr/bin/sentinel").arg("--version"));
    assert_eq!(version.trim(), format!("sentinel {}", workspace_version()));
    ok(Command::new("/usr/bin/sentinel").args(["config", "check", "/etc/sentinel/sentinel.toml"]));
    let conf = std::fs::read_to_string("/etc/sentinel/sentinel.toml").expect("conffile");
    assert!(
        conf.contains("db = \"/var/lib/sentinel-server/server.db\""),
        "the packaged configuration does not put the dashboard's database in its state directory"
    );
    let conffiles = ok(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "sentinel"]));
    assert!(
        conffiles.contains("/etc/sentinel/sentinel.toml"),
        "{conffiles}"
    );

    // Man pages and completions where man and the shells look.
    let page = ok(Command::new("man").args(["-w", "sentinel-run"]));
    assert_eq!(page.trim(), "/usr/share/man/man1/sentinel-run.1.gz");
    let complete = ok(Command::new("bash").args([
        "-c",
        "source /usr/share/bash-completion/completions/sentinel && complete -p sentinel",
    ]));
    assert!(complete.contains("sentinel"), "{complete}");
    for f in [
        "/usr/share/zsh/vendor-completions/_sentinel",
        "/usr/share/fish/vendor_completions.d/sentinel.fish",
    ] {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(
            text.contains("baseline"),
            "{f} does not complete subcommands"
        );
    }

    // The dashboard's system user.
    let pw = ok(Command::new("getent").args(["passwd", "sentinel"]));
    let fields: Vec<&str> = pw.trim().split(':').collect();
    let uid: u32 = fields[2].parse().expect("uid");
    assert!(uid < 1000, "not a system user: {pw}");
    assert!(
        fields[6].ends_with("nologin") || fields[6] == "/bin/false",
        "{pw}"
    );
    assert!(getent("group", "sentinel"), "no sentinel group");
    // Its state directory, its own and private, there before the server first starts.
    let st = std::fs::metadata(SERVER_STATE).expect("the dashboard's state directory");
    assert!(
        st.is_dir() && st.uid() == uid && st.mode() & 0o777 == 0o700,
        "{st:?}"
    );

    // The first admin, made as docs/install.md says: as the dashboard's user, into its
    // database (the packaged configuration's), owned by it.
    let mut add = Command::new("runuser")
        .args([
            "-u",
            "sentinel",
            "--",
            "/usr/bin/sentinel",
            "user",
            "add",
            "admin",
        ])
        .args(["--role", "admin", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runuser");
    {
        use std::io::Write as _;
        let mut stdin = add.stdin.take().expect("stdin");
        stdin
            .write_all(b"package-test-Pa55phrase-long\n")
            .expect("password");
    }
    let out = add.wait_with_output().expect("user add");
    assert!(
        out.status.success(),
        "user add as `sentinel`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = std::fs::metadata(format!("{SERVER_STATE}/server.db")).expect("server.db");
    assert_eq!(db.uid(), uid, "server.db is not the dashboard user's");

    // Both units as systemd reads them (their binary and man pages installed).
    for unit in ["sentinel.service", "sentinel-server.service"] {
        let out = sh(Command::new("systemd-analyze")
            .args(["verify", &format!("/lib/systemd/system/{unit}")]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.trim().is_empty(),
            "systemd-analyze verify {unit} ({}): {err}",
            out.status
        );
    }
    // Enabled (deb-systemd-helper's symlinks), never started by this test.
    for unit in ["sentinel.service", "sentinel-server.service"] {
        let wants = format!("/etc/systemd/system/multi-user.target.wants/{unit}");
        assert!(
            Path::new(&wants).symlink_metadata().is_ok(),
            "{unit} not enabled"
        );
    }
    assert!(
        installed_agents().is_empty(),
        "installing started /usr/bin/sentinel (systemd as init: {systemd_init})"
    );

    // Remove: the conffile stays (policy), everything else of the package goes.
    dpkg_ok(&["--remove", "sentinel"]);
    assert_eq!(
        installed_status().as_deref(),
        Some("deinstall ok config-files")
    );
    assert!(!Path::new("/usr/bin/sentinel").exists());
    assert!(!Path::new("/lib/systemd/system/sentinel.service").exists());
    assert!(
        Path::new("/etc/sentinel/sentinel.toml").exists(),
        "remove took the conffile"
    );

    // Purge: nothing left that was not there before, but the system user (policy lets it stay;
    // the guard deletes it for this machine's sake).
    dpkg_ok(&["--purge", "sentinel"]);
    assert_eq!(installed_status(), None);
    let left: Vec<&str> = paths
        .iter()
        .map(String::as_str)
        .chain(SYSTEMD_STATE)
        .chain(["/etc/sentinel"])
        .filter(|p| !before.contains(p) && Path::new(p).symlink_metadata().is_ok())
        .collect();
    assert!(left.is_empty(), "purge left {left:?}");
    // The dashboard's database is data: purge keeps it (docs/install.md, "Removing").
    assert!(
        Path::new(&format!("{SERVER_STATE}/server.db")).exists(),
        "purge deleted the dashboard's database"
    );
    assert!(
        getent("passwd", "sentinel"),
        "purge deleted the system user"
    );
    let (user_existed, state_existed) = (guard.user_existed, guard.server_state_existed);
    drop(guard);
    assert!(
        user_existed || !getent("passwd", "sentinel"),
        "the guard did not delete the user the package created"
    );
    assert!(state_existed || !Path::new(SERVER_STATE).exists());
}

/// The agent unit's CapabilityBoundingSet, as written in packaging/deb/sentinel.service.
fn unit_capabilities() -> Vec<String> {
    let unit = std::fs::read_to_string(workspace().join("packaging/deb/sentinel.service"))
        .expect("packaging/deb/sentinel.service");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("sentinel.service sets CapabilityBoundingSet");
    line.split_whitespace().map(str::to_string).collect()
}

/// One measured run of `sentinel run --audit`.
struct Measured {
    /// Exit code (3: it could not start).
    code: Option<i32>,
    /// Hooks reported failed in the status record (None: no status record).
    failed_hooks: Option<usize>,
    /// The agent's refused system calls (EPERM, EACCES), normalised
    /// (`readlink /proc/PID/exe EACCES`).
    failures: BTreeSet<String>,
    stderr: String,
}

/// A failed call in strace's `-y` output, normalised: the call, its first path or bpf
/// command and map/program type, the errno. Pids and fd numbers become PID and N.
fn normalise(line: &str) -> Option<String> {
    let line = line.split_once(' ').map_or(line, |(_, rest)| rest).trim();
    let (call, rest) = line.split_once('(')?;
    let errno = rest.rsplit_once("= -1 ")?.1.split_whitespace().next()?;
    // Only refusals: ENOENT, ESRCH and the like are processes that ended meanwhile.
    if errno != "EPERM" && errno != "EACCES" {
        return None;
    }
    let mut what = Vec::new();
    if call == "bpf" {
        what.push(rest.split(',').next().unwrap_or("").to_string());
        for key in ["map_type=", "prog_type="] {
            if let Some(v) = rest.split(key).nth(1) {
                what.push(v.split([',', '}']).next().unwrap_or("").to_string());
            }
        }
    } else if let Some(path) = rest.split('"').nth(1) {
        what.push(path.to_string());
    }
    let text = format!("{call} {} {errno}", what.join(" "));
    let mut out = String::new();
    let mut digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !digits {
                out.push('N');
            }
            digits = true;
        } else {
            digits = false;
            out.push(c);
        }
    }
    Some(out)
}

/// Runs the agent with exactly `caps` (None: unrestricted) as systemd runs a root service with
/// CapabilityBoundingSet= (setpriv: bounding set, inheritable and ambient cleared), traced by
/// strace for failed calls, while a shell of another user (nobody) lives: its /proc entries are
/// what the process table and the reverse-shell check read.
fn measure(caps: Option<&[String]>, dir: &Path) -> Measured {
    let config = dir.join("sentinel.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"{}\"\n[audit]\nhmac_key_path = \"{}\"\n",
            dir.join("s.db").display(),
            dir.join("hmac.key").display()
        ),
    )
    .expect("config");
    let _ = std::fs::remove_file(dir.join("s.db"));
    let trace = dir.join("strace.out");
    // The other user's shell, alive until its stdin closes (after the agent has stopped).
    let mut shell = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "/bin/sh",
            "-c",
        ])
        .arg("cd /; read line")
        .stdin(Stdio::piped())
        .spawn()
        .expect("start the other user's shell");
    let mut cmd = match caps {
        Some(caps) => {
            let set: Vec<String> = caps
                .iter()
                .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
                .collect();
            let mut c = Command::new("setpriv");
            c.args(["--inh-caps=-all", "--ambient-caps=-all"])
                .arg(format!(
                    "--bounding-set=-all{}",
                    set.iter().map(|s| format!(",{s}")).collect::<String>()
                ))
                .arg("--")
                .arg("strace");
            c
        }
        None => Command::new("strace"),
    };
    cmd.args(["-f", "-qq", "-y", "--seccomp-bpf", "-Z", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=%file,%desc,%network,bpf,perf_event_open,setrlimit,prlimit64,mount,ptrace",
        ])
        .arg(sentinel_bin())
        .arg("--config")
        .arg(&config)
        .args([
            "run",
            "--json",
            "--audit",
            "--duration",
            "4s",
            "--kinds",
            "exec,connect",
        ])
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut agent = cmd.spawn().expect("start the measured agent");
    let stdout = agent.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("\"type\":\"status\""))
    });
    // The shell execs after the agent is watching: its exec is seen, its fds looked at.
    let status = reader.join().expect("reader");
    if status.is_some() {
        let _ = Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "/bin/sh",
                "-c",
                "exec /bin/sh -c 'sleep 2'",
            ])
            .status();
    }
    let out = agent.wait_with_output().expect("wait for the agent");
    drop(shell.stdin.take());
    let _ = shell.wait();
    let failed_hooks = status.map(|s| {
        let v: serde_json::Value = serde_json::from_str(&s).expect("status JSON");
        v["failed"].as_array().map_or(0, Vec::len)
    });
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    Measured {
        code: out.status.code(),
        failed_hooks,
        failures: text.lines().filter_map(normalise).collect(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// aya probes features it does not use: a device map (needs CAP_NET_ADMIN, for XDP) fails
/// without harm.
const HARMLESS: [&str; 1] = ["bpf BPF_MAP_CREATE BPF_MAP_TYPE_DEVMAP EPERM"];

#[test]
fn the_agent_units_capabilities_are_enough_and_each_is_needed() {
    require_root();
    need("strace");
    need("setpriv");
    let caps = unit_capabilities();
    assert!(!caps.is_empty(), "sentinel.service grants no capability");
    let dir = tempfile::tempdir().expect("tempdir");
    let auditd = sentinel::audit::reader::auditd_running();

    let full = measure(None, dir.path());
    assert_eq!(
        full.failed_hooks,
        Some(0),
        "unrestricted run: {}",
        full.stderr
    );
    let new_failures = |m: &Measured| -> Vec<String> {
        m.failures
            .difference(&full.failures)
            .filter(|f| !HARMLESS.contains(&f.as_str()))
            .cloned()
            .collect()
    };

    let unit = measure(Some(&caps), dir.path());
    assert_eq!(
        unit.failed_hooks,
        Some(0),
        "with {caps:?} the agent does not attach every hook: {}",
        unit.stderr
    );
    assert_eq!(unit.code, Some(0), "with {caps:?}: {}", unit.stderr);
    let extra = new_failures(&unit);
    assert!(
        extra.is_empty(),
        "with {caps:?} these calls fail that succeed with all: {extra:?}"
    );

    for cap in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != cap).cloned().collect();
        let m = measure(Some(&fewer), dir.path());
        let extra = new_failures(&m);
        let broken = m.code != Some(0) || m.failed_hooks != Some(0) || !extra.is_empty();
        eprintln!(
            "without {cap}: exit {:?}, failed hooks {:?}, new failures {extra:?}",
            m.code, m.failed_hooks
        );
        if cap == "CAP_AUDIT_READ" && auditd {
            // With auditd running the agent follows its log, not the multicast group.
            eprintln!("CAP_AUDIT_READ: auditd runs, so --audit follows its log here; not measured");
            continue;
        }
        assert!(
            broken,
            "{cap} is in sentinel.service but the agent lost nothing without it: {}",
            m.stderr
        );
    }
}
