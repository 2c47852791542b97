//! Developer tasks: `cargo xtask setup | build-ebpf | run | test | package | bench | eval | fuzz | vm-test`. Every task installs
//! what it needs first (idempotently), so the README's two commands work on a new machine.

mod bench;
mod fuzz;
mod package;
mod setup;
mod vm;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use setup::run;

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the prerequisites: rust-src for nightly, LLVM 22 (apt), bpf-linker 0.13,
    /// cargo-fuzz, and the PostgreSQL server the store tests start clusters of (apt).
    Setup,
    /// Build the kernel programs (through the agent's build script) and print the object path.
    BuildEbpf {
        #[arg(long)]
        release: bool,
    },
    /// Build Sentinel (release) and run `sentinel run` with the given arguments, as root.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up everything, then run the whole test suite (unit, end-to-end, lint) and a short
    /// fuzzing pass (10 s per target).
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the Debian package (release binary, hardened systemd units, conffile, man pages,
    /// completions) into target/package/ and print its path (docs/install.md).
    Package(package::PackageArgs),
    /// Measure overhead and capacity next to auditd and bpftrace (as root); writes
    /// docs/benchmarks.md.
    Bench(bench::BenchArgs),
    /// Play the attack corpus and benign workloads (tests/corpus) against the agent, as root;
    /// prints detected/missed per scenario, recall per tactic and benign false positives.
    Eval {
        /// Only scenarios whose id (e.g. persistence/cron-d) contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Write the coverage document, e.g. docs/detection-coverage.md.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run every fuzz target (fuzz/, on nightly) for a while each, seeded from fuzz/seeds;
    /// reports runs, new coverage and crashes, and fails on a crash.
    Fuzz(fuzz::FuzzArgs),
    /// Run the live probe suite on another kernel: `--kernel debian-6.1` boots Debian 12's
    /// kernel under qemu/KVM (fetched once into .vm/); `--kernel host` runs it here.
    VmTest(vm::VmArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = workspace_root()?;
    std::env::set_current_dir(&root).context("cd to the workspace root")?;
    match cli.task {
        Task::Setup => {
            setup::toolchain()?;
            setup::postgres()
        }
        Task::BuildEbpf { release } => {
            setup::toolchain()?;
            let profile = if release { "release" } else { "debug" };
            let mut c = cargo();
            c.args(["build", "-p", "sentinel"]);
            if release {
                c.arg("--release");
            }
            run(&mut c)?;
            let obj = newest_object(&root.join("target").join(profile))?;
            println!("{}", obj.display());
            Ok(())
        }
        Task::Run { args } => {
            setup::toolchain()?;
            run(cargo().args(["build", "--release", "-p", "sentinel"]))?;
            let bin = root.join("target/release/sentinel");
            let mut c = Command::new(&bin);
            c.arg("run").args(&args);
            let code = c
                .status()
                .with_context(|| format!("running {}", bin.display()))?
                .code()
                .unwrap_or(3);
            std::process::exit(code);
        }
        Task::Test { args } => {
            setup::toolchain()?;
            setup::test_services(&root)?;
            run(cargo().args(["fmt", "--all", "--", "--check"]))?;
            run(cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
            // The end-to-end tests run the agent binary itself.
            run(cargo().args(["build", "-p", "sentinel"]))?;
            // And the package test installs the package, built here from that same dev binary
            // (the test's own `cargo xtask package --profile dev` then finds it up to date);
            // `cargo xtask package` alone packages the release build.
            let profile = package::Profile::Dev;
            package::run_package(&root, package::PackageArgs { out: None, profile })?;
            // Every failing suite is reported, not just the first.
            run(cargo()
                .args(["test", "--no-fail-fast"])
                .args(&args)
                .env(package::Profile::TEST_ENV, profile.name()))?;
            eprintln!("xtask: fuzzing every target for {FUZZ_SECONDS} s each (bounded CI pass)");
            fuzz::run(
                &root,
                fuzz::FuzzArgs {
                    seconds: FUZZ_SECONDS,
                    target: None,
                },
            )?;
            // Last, so that its verdict never hides the others': the probe suite once more on
            // the oldest kernel supported (Debian 12's 6.1) in a guest (docs/kernels.md).
            vm::run(
                &root,
                vm::VmArgs {
                    kernel: vm::KernelChoice::Debian61,
                    timeout: VM_TIMEOUT_SECONDS,
                    probes_only: true,
                    test_args: Vec::new(),
                },
            )
        }
        Task::Package(args) => package::run_package(&root, args).map(|_| ()),
        Task::Bench(args) => bench::run(&root, args),
        Task::Fuzz(args) => fuzz::run(&root, args),
        Task::VmTest(args) => vm::run(&root, args),
        Task::Eval { filter, out } => {
            setup::toolchain()?;
            run(Command::new("bash").arg(root.join("tests/setup/corpus.sh")))?;
            // The agent as the end-to-end tests build it, and the evaluation's runner.
            run(cargo().args(["build", "-p", "sentinel"]))?;
            run(cargo().args(["build", "-p", "sentinel-e2e", "--bin", "sentinel-eval"]))?;
            let mut c = Command::new(root.join("target/debug/sentinel-eval"));
            c.arg("--sentinel").arg(root.join("target/debug/sentinel"));
            if let Some(f) = filter {
                c.arg("--filter").arg(f);
            }
            if let Some(o) = out {
                c.arg("--out").arg(o);
            }
            run(&mut c)
        }
    }
}

/// Bound of the guest run in `cargo xtask test`: boot and probe suite take about a minute
/// under qemu's emulator (docs/kernels.md), less with hardware KVM.
const VM_TIMEOUT_SECONDS: u64 = 300;

/// Seconds per fuzz target in `cargo xtask test` (`cargo xtask fuzz` runs longer).
const FUZZ_SECONDS: u64 = 10;

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn workspace_root() -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    dir.parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}

/// The embedded object as built most recently: target/<profile>/build/sentinel-*/out/sentinel.
fn newest_object(profile_dir: &Path) -> anyhow::Result<PathBuf> {
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for e in std::fs::read_dir(profile_dir.join("build")).context("no build directory")? {
        let p = e?.path().join("out/sentinel");
        if let Ok(m) = p.metadata().and_then(|m| m.modified())
            && best.as_ref().is_none_or(|(t, _)| m > *t)
        {
            best = Some((m, p));
        }
    }
    best.map(|(_, p)| p).context("no built kernel object found")
}
