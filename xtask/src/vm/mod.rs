//! `cargo xtask vm-test --kernel debian-6.1|host`: the live probe suite on another kernel. The
//! test binaries and the agent are built on the host; a qemu/KVM guest boots the chosen kernel
//! with a busybox initramfs, mounts the host's root read-only over 9p and runs them; results
//! come back as marker lines on the serial console. `--kernel host` runs the same steps here.

mod assets;

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::setup;

/// The test targets (tests/Cargo.toml) that make up the live probe suite.
pub const PROBE_TESTS: &[&str] = &["probes"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KernelChoice {
    /// Debian 12's 6.1 kernel (the newest linux-image-6.1.0-N-amd64 of the apt sources).
    #[value(name = "debian-6.1")]
    Debian61,
    /// The running kernel, no VM (as root).
    Host,
}

#[derive(clap::Args, Debug)]
pub struct VmArgs {
    #[arg(long, value_enum, default_value = "debian-6.1")]
    pub kernel: KernelChoice,
    /// Seconds the guest may run, boot included, before it counts as hung.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Only the probe suite: leave out the agent's own short run (its status record) that
    /// comes first, which loads the kernel programs once more.
    #[arg(long)]
    pub probes_only: bool,
    /// Arguments for the test binaries (e.g. a test name filter).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub test_args: Vec<String>,
}

/// Guest memory and processors: modest, the machine is shared.
const GUEST_MEM_MIB: u32 = 2048;
const GUEST_CPUS: u32 = 2;

/// One thing run in the kernel under test.
struct Step {
    name: String,
    argv: Vec<String>,
}

pub fn run(root: &Path, args: VmArgs) -> anyhow::Result<()> {
    setup::toolchain()?;
    let steps = build_steps(root, &args.test_args, !args.probes_only)?;
    let started = Instant::now();
    let outcome = match args.kernel {
        KernelChoice::Host => run_host(&steps)?,
        KernelChoice::Debian61 => {
            let kernel = assets::debian_61(root)?;
            run_guest(root, &kernel, &steps, Duration::from_secs(args.timeout))?
        }
    };
    outcome.report(args.kernel, started.elapsed())
}

/// Builds the agent and the probe test binaries; the steps run the agent briefly (its status
/// record: which hooks attached) and then each test binary.
fn build_steps(root: &Path, test_args: &[String], agent: bool) -> anyhow::Result<Vec<Step>> {
    setup::run(crate::cargo().args(["build", "-p", "sentinel"]))?;
    let agent_bin = root.join("target/debug/sentinel");
    let mut c = crate::cargo();
    c.args([
        "test",
        "-p",
        "sentinel-e2e",
        "--no-run",
        "--message-format=json",
    ]);
    for t in PROBE_TESTS {
        c.args(["--test", t]);
    }
    eprintln!("xtask: {c:?}");
    let out = c
        .stderr(Stdio::inherit())
        .output()
        .context("building the probe tests")?;
    anyhow::ensure!(out.status.success(), "building the probe tests failed");
    let mut tests = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let name = v["target"]["name"].as_str().unwrap_or_default();
        if let Some(exe) = v["executable"].as_str()
            && PROBE_TESTS.contains(&name)
        {
            tests.push((name.to_string(), exe.to_string()));
        }
    }
    anyhow::ensure!(
        tests.len() == PROBE_TESTS.len(),
        "cargo built {tests:?}, expected the test targets {PROBE_TESTS:?}"
    );
    // Its log at info level says why a fallback was taken (e.g. the syscall arguments).
    let status = format!(
        "RUST_LOG=sentinel=info {} run --json --no-detect --duration 3s > /tmp/agent.json; \
         rc=$?; grep -m1 '\"status\"' /tmp/agent.json; tail -n1 /tmp/agent.json; exit $rc",
        agent_bin.display()
    );
    let mut steps = Vec::new();
    if agent {
        steps.push(Step {
            name: "agent".into(),
            argv: vec!["/bin/sh".into(), "-c".into(), status],
        });
    }
    for (name, exe) in tests {
        let mut argv = vec![exe];
        argv.extend(test_args.iter().cloned());
        steps.push(Step { name, argv });
    }
    Ok(steps)
}

/// What came back from one kernel.
#[derive(Default)]
struct Outcome {
    release: String,
    btf: bool,
    boot: Option<Duration>,
    /// (step, exit code, output lines).
    steps: Vec<(String, i32, Vec<String>)>,
}

impl Outcome {
    fn report(&self, kernel: KernelChoice, total: Duration) -> anyhow::Result<()> {
        eprintln!("\nxtask vm-test: kernel {} ({kernel:?})", self.release);
        if let Some(b) = self.boot {
            eprintln!("  booted in {:.1} s, BTF {}", b.as_secs_f64(), self.btf);
        }
        let mut failed = Vec::new();
        for (name, rc, lines) in &self.steps {
            let summary = lines
                .iter()
                .filter(|l| l.starts_with("test result:"))
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            eprintln!("  {name}: exit {rc} {summary}");
            if name == "agent" {
                for l in lines.iter().filter(|l| l.contains("\"status\"")) {
                    eprintln!("  agent status: {}", status_summary(l));
                }
            }
            if *rc != 0 {
                failed.push(name.clone());
            }
        }
        eprintln!("  total {:.0} s", total.as_secs_f64());
        if !self.btf {
            bail!("kernel {} has no /sys/kernel/btf/vmlinux", self.release);
        }
        if !failed.is_empty() {
            bail!("on kernel {}: {} failed", self.release, failed.join(", "));
        }
        Ok(())
    }
}

/// The status record in a line: attached hooks counted, failures and gaps named.
fn status_summary(line: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
        return line.to_string();
    };
    let n = |k: &str| v[k].as_array().map_or(0, Vec::len);
    // Failed hooks grouped by reason (one refused program fails many hooks).
    let mut failed: Vec<(String, Vec<String>)> = Vec::new();
    for f in v["failed"].as_array().into_iter().flatten() {
        let hook = f[0].as_str().unwrap_or_default().to_string();
        let why: String = f[1]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        match failed.iter_mut().find(|(w, _)| *w == why) {
            Some((_, hooks)) => hooks.push(hook),
            None => failed.push((why, vec![hook])),
        }
    }
    let failed: Vec<String> = failed
        .iter()
        .map(|(why, hooks)| format!("\n    {} hooks ({} ...): {why}", hooks.len(), hooks[0]))
        .collect();
    format!(
        "{} hooks attached, unavailable {}, missing_fields {}, syscall_args {}, failed {}{}",
        n("attached"),
        v.get("unavailable").unwrap_or(&serde_json::Value::Null),
        v.get("missing_fields").unwrap_or(&serde_json::Value::Null),
        v["syscall_args"],
        n("failed"),
        failed.concat()
    )
}

/// The same steps on the running kernel.
fn run_host(steps: &[Step]) -> anyhow::Result<Outcome> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .context("reading the kernel release")?;
    let mut o = Outcome {
        release: release.trim().to_string(),
        btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
        ..Outcome::default()
    };
    for s in steps {
        eprintln!("xtask: {} on the host", s.name);
        let out = Command::new(&s.argv[0])
            .args(&s.argv[1..])
            .current_dir(std::env::temp_dir())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", s.argv[0]))?;
        let text = String::from_utf8_lossy(&out.stdout);
        eprint!("{text}");
        let lines = text.lines().map(str::to_string).collect();
        o.steps
            .push((s.name.clone(), out.status.code().unwrap_or(-1), lines));
    }
    Ok(o)
}

/// Boots `kernel` under qemu/KVM with the steps in its /init and collects the markers.
fn run_guest(
    root: &Path,
    kernel: &assets::Kernel,
    steps: &[Step],
    timeout: Duration,
) -> anyhow::Result<Outcome> {
    let (accel, cpu) = accelerator();
    let qemu = assets::qemu(root)?;
    let busybox = assets::busybox(root)?;
    let modules = assets::guest_modules(kernel)?;
    let mark = format!("@@sentinel-vm-{}-{}@@", std::process::id(), now_nanos());
    let script = include_str!("init.sh")
        .replace("@MARK@", &mark)
        .replace("@STEPS@", &steps_script(steps));
    let initrd = assets::cache_dir(root).join(format!("initramfs-{}.cpio", std::process::id()));
    assets::initramfs(&initrd, &busybox, &script, &modules)?;
    let _cleanup = RemoveOnDrop(initrd.clone());

    let mut c = qemu.command();
    c.args(["-machine", "q35", "-accel", accel, "-cpu", cpu])
        .args(["-m", &GUEST_MEM_MIB.to_string()])
        .args(["-smp", &GUEST_CPUS.to_string()])
        .args(["-nodefaults", "-no-reboot", "-display", "none"])
        .args(["-serial", "stdio", "-monitor", "none"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args([
            "-append",
            "console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init",
        ])
        .args([
            "-fsdev",
            "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device",
            "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!("xtask: booting {} under qemu ({accel})", kernel.release);
    let started = Instant::now();
    let mut child = c.spawn().context("starting qemu")?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout).split(b'\n') {
            let Ok(l) = l else { break };
            if tx.send(String::from_utf8_lossy(&l).into_owned()).is_err() {
                break;
            }
        }
    });
    let deadline = started + timeout;
    let mut o = Outcome::default();
    let mut current: Option<(String, Vec<String>)> = None;
    let mut done = false;
    let mut failure = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l.trim_end_matches('\r').to_string(),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the guest did not finish within {} s (hung{}); raise --timeout if it was only slow",
                    timeout.as_secs(),
                    current
                        .as_ref()
                        .map(|(n, _)| format!(" in step {n}"))
                        .unwrap_or_default()
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        eprintln!("guest| {line}");
        let Some(rest) = line.split_once(&mark).map(|(_, r)| r.trim()) else {
            if let Some((_, lines)) = current.as_mut() {
                lines.push(line);
            }
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        match words.as_slice() {
            ["booted", release, btf] => {
                o.release = release.to_string();
                o.btf = *btf == "btf=yes";
                o.boot = Some(started.elapsed());
            }
            ["step", name, "start"] => current = Some((name.to_string(), Vec::new())),
            ["step", name, rc] => {
                let rc = rc
                    .strip_prefix("rc=")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(-1);
                let lines = current.take().map(|(_, l)| l).unwrap_or_default();
                o.steps.push((name.to_string(), rc, lines));
            }
            ["done"] => done = true,
            ["fail", ..] => failure = Some(rest.to_string()),
            _ => {}
        }
    }
    let status = child.wait().context("waiting for qemu")?;
    if o.boot.is_none() {
        bail!(
            "kernel {} did not boot (no marker from its /init; qemu {status})",
            kernel.release
        );
    }
    if let Some(f) = failure {
        bail!("guest setup failed: {f}");
    }
    if !done || o.steps.len() != steps.len() {
        bail!(
            "the guest stopped early after {} of {} steps (qemu {status})",
            o.steps.len(),
            steps.len()
        );
    }
    anyhow::ensure!(
        o.release == kernel.release,
        "the guest runs {}, expected {}",
        o.release,
        kernel.release
    );
    Ok(o)
}

/// KVM when the processor's virtualization is there (kvm_intel or kvm_amd), else qemu's
/// emulator. A /dev/kvm without them can be a paravirtual KVM (kvm_pvm on some cloud
/// sandboxes): it runs only guest kernels built for it, and a distribution kernel hangs in its
/// first instructions, so it is not used.
fn accelerator() -> (&'static str, &'static str) {
    let hw = ["kvm_intel", "kvm_amd"]
        .iter()
        .any(|m| Path::new("/sys/module").join(m).exists());
    if hw && Path::new("/dev/kvm").exists() {
        return ("kvm", "host");
    }
    let why = if Path::new("/sys/module/kvm_pvm").exists() {
        "/dev/kvm is PVM (kvm_pvm), which boots only PVM-enabled guest kernels"
    } else {
        "no hardware-virtualization KVM here"
    };
    eprintln!("xtask: {why}; using qemu's emulator (TCG): slower, same kernel");
    ("tcg,thread=multi", "max")
}

/// `step NAME 'arg' ...` lines for /init, each argument single-quoted.
fn steps_script(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| {
            let args: Vec<String> = s.argv.iter().map(|a| shell_quote(a)).collect();
            format!("step {} {}\n", s.name, args.join(" "))
        })
        .collect()
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::status_summary;

    #[test]
    fn failed_hooks_are_grouped_by_reason() {
        let line = r#"{"type":"status","attached":["a","b"],"failed":[["syscalls/x","too large"],["syscalls/y","denied"],["syscalls/z","denied"]],"missing_fields":[],"syscall_args":"stash"}"#;
        let s = status_summary(line);
        assert!(s.starts_with("2 hooks attached"), "{s}");
        assert!(s.contains("failed 3"), "{s}");
        assert!(s.contains("1 hooks (syscalls/x ...): too large"), "{s}");
        assert!(s.contains("2 hooks (syscalls/y ...): denied"), "{s}");
    }
}
