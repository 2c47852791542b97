//! Idempotent installation of build and test prerequisites. Each step checks first and only
//! installs what is missing.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPF_LINKER_VERSION: &str = "0.13";

/// Nightly rust-src, LLVM 22 and bpf-linker: what building the kernel programs needs; and
/// cargo-fuzz for the fuzz targets.
pub fn toolchain() -> anyhow::Result<()> {
    rust_src()?;
    if !Path::new(LLVM_PREFIX).join("bin/llvm-config").exists() {
        apt_install(&["llvm-22-dev"])?;
    }
    bpf_linker()?;
    cargo_fuzz()?;
    Ok(())
}

/// Debian's PostgreSQL server: the server store's tests start throw-away clusters with its
/// binaries (tests/setup/postgres.sh does the same on the test path).
pub fn postgres() -> anyhow::Result<()> {
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().join("bin/initdb").exists());
    if !installed {
        apt_install(&["postgresql"])?;
    }
    Ok(())
}

/// cargo-fuzz (the fuzz targets under fuzz/ run with it on nightly).
pub fn cargo_fuzz() -> anyhow::Result<()> {
    let installed = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz (once)");
    run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}

fn rust_src() -> anyhow::Result<()> {
    let out = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .context("running rustup (the BPF target needs rustup's nightly toolchain)")?;
    let listed = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        eprintln!("xtask: installing the nightly toolchain");
        return run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]));
    }
    if !listed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: adding rust-src to nightly");
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

fn bpf_linker() -> anyhow::Result<()> {
    if let Ok(out) = Command::new("bpf-linker").arg("--version").output() {
        let v = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && v.contains(&format!(" {BPF_LINKER_VERSION}.")) {
            return Ok(());
        }
    }
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (a few minutes, once)"
    );
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--version",
            &format!("~{BPF_LINKER_VERSION}"),
            "--no-default-features",
            "--features",
            "llvm-22",
            "--force",
        ])
        .env("LLVM_PREFIX", LLVM_PREFIX))
}

/// What `cargo xtask package` runs besides cargo: dpkg-deb, dpkg-shlibdeps (dpkg-dev), strip
/// (binutils), gzip and md5sum.
pub fn packaging() -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for (tool, pkg) in [
        ("dpkg-deb", "dpkg"),
        ("dpkg-shlibdeps", "dpkg-dev"),
        ("strip", "binutils"),
        ("gzip", "gzip"),
        ("md5sum", "coreutils"),
    ] {
        if which(tool).is_none() && !missing.contains(&pkg) {
            missing.push(pkg);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(&missing)
}

/// The path of `tool` on PATH.
fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

pub fn apt_install(pkgs: &[&str]) -> anyhow::Result<()> {
    eprintln!("xtask: apt-get install {}", pkgs.join(" "));
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(pkgs)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Runs every tests/setup/*.sh (packages and builds the tests need), in name order.
pub fn test_services(root: &Path) -> anyhow::Result<()> {
    let dir = root.join("tests/setup");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    let mut scripts: Vec<_> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .collect();
    scripts.sort();
    for s in scripts {
        run(Command::new("bash").arg(&s).current_dir(root))?;
    }
    Ok(())
}

/// Runs a command, echoing it, and fails with the command line if it fails.
pub fn run(c: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{c:?}");
    eprintln!("xtask: {shown}");
    let st = c.status().with_context(|| format!("starting {shown}"))?;
    if !st.success() {
        bail!("{shown} failed ({st})");
    }
    Ok(())
}
