//! What a guest run needs, fetched once from Debian's archive into the git-ignored `.vm/` folder
//! of the workspace and reused after: the guest kernel (with its modules), a static busybox for
//! the initramfs, and qemu when the machine has none (unpacked privately: installing Debian's
//! qemu-system-x86 could replace packages the machine already has).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::setup::run;

/// The cache folder (git-ignored).
pub fn cache_dir(root: &Path) -> PathBuf {
    root.join(".vm")
}

/// A guest kernel unpacked from its Debian package.
pub struct Kernel {
    /// `uname -r` of the guest, e.g. 6.1.0-57-amd64.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// lib/modules/<release>/kernel of the package.
    pub modules: PathBuf,
}

/// Debian 12's 6.1 kernel: the newest `linux-image-6.1.0-N-amd64` the machine's apt sources
/// offer, unpacked (not installed) under .vm/kernels/. Reused once present.
pub fn debian_61(root: &Path) -> anyhow::Result<Kernel> {
    let dir = cache_dir(root).join("kernels");
    if let Some(k) = unpacked_kernel(&dir, "6.1.0-")? {
        return Ok(k);
    }
    let out = apt_cache(&[
        "search",
        "--names-only",
        r"^linux-image-6\.1\.0-[0-9]+-amd64$",
    ])?;
    let pkg = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .max_by_key(|p| abi_number(p))
        .context(
            "no linux-image-6.1.0-N-amd64 in the apt sources: the 6.1 guest kernel comes from \
             Debian 12 (bookworm) or its security archive; add one of them to the apt sources",
        )?
        .to_string();
    eprintln!("xtask: fetching the guest kernel {pkg} (once, about 70 MB)");
    let deb = download(root, &pkg)?;
    unpack(&[deb], &dir.join(&pkg))?;
    unpacked_kernel(&dir, "6.1.0-")?.with_context(|| format!("{pkg} has no /boot/vmlinuz-*"))
}

/// The ABI number N of linux-image-6.1.0-N-amd64.
fn abi_number(pkg: &str) -> u32 {
    pkg.trim_start_matches("linux-image-6.1.0-")
        .split('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// An unpacked package under `dir` with a vmlinuz whose release starts with `prefix`.
fn unpacked_kernel(dir: &Path, prefix: &str) -> anyhow::Result<Option<Kernel>> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    let mut found = Vec::new();
    for pkg in rd.filter_map(Result::ok) {
        let Ok(boot) = std::fs::read_dir(pkg.path().join("boot")) else {
            continue;
        };
        for f in boot.filter_map(Result::ok) {
            let name = f.file_name().to_string_lossy().into_owned();
            if let Some(release) = name.strip_prefix("vmlinuz-")
                && release.starts_with(prefix)
            {
                let modules = pkg.path().join("lib/modules").join(release).join("kernel");
                found.push(Kernel {
                    release: release.to_string(),
                    vmlinuz: f.path(),
                    modules,
                });
            }
        }
    }
    found.sort_by_key(|k| abi_number(&format!("linux-image-{}", k.release)));
    Ok(found.pop())
}

/// A static busybox (the initramfs's shell, mount, insmod, chroot, poweroff).
pub fn busybox(root: &Path) -> anyhow::Result<PathBuf> {
    let dir = cache_dir(root).join("busybox");
    let bin = dir.join("bin/busybox");
    if bin.exists() {
        return Ok(bin);
    }
    eprintln!("xtask: fetching busybox-static (once)");
    let deb = download(root, "busybox-static")?;
    unpack(&[deb], &dir)?;
    anyhow::ensure!(bin.exists(), "busybox-static has no bin/busybox");
    Ok(bin)
}

/// How to start qemu: the machine's qemu-system-x86_64, or Debian's unpacked under .vm/qemu.
pub struct Qemu {
    pub bin: PathBuf,
    /// Firmware folder (-L) and library path for the unpacked copy.
    pub data: Option<PathBuf>,
    pub libs: Option<std::ffi::OsString>,
}

impl Qemu {
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        if let Some(d) = &self.data {
            c.arg("-L").arg(d);
        }
        if let Some(l) = &self.libs {
            c.env("LD_LIBRARY_PATH", l);
        }
        c
    }
}

pub fn qemu(root: &Path) -> anyhow::Result<Qemu> {
    if let Ok(out) = Command::new("qemu-system-x86_64").arg("--version").output()
        && out.status.success()
    {
        return Ok(Qemu {
            bin: "qemu-system-x86_64".into(),
            data: None,
            libs: None,
        });
    }
    let dir = cache_dir(root).join("qemu");
    let q = Qemu {
        bin: dir.join("usr/bin/qemu-system-x86_64"),
        data: Some(dir.join("usr/share/qemu")),
        // Debian 12 still ships some libraries (libnl) under /lib.
        libs: Some(std::env::join_paths([
            dir.join("usr/lib/x86_64-linux-gnu"),
            dir.join("lib/x86_64-linux-gnu"),
        ])?),
    };
    if !q.bin.exists() {
        // The packages an install would add (qemu and the libraries the machine lacks),
        // downloaded and unpacked privately.
        let sim = Command::new("apt-get")
            .args([
                "install",
                "-s",
                "--no-install-recommends",
                "qemu-system-x86",
            ])
            .output()
            .context("running apt-get (qemu comes from Debian's archive)")?;
        if !sim.status.success() {
            bail!(
                "apt-get cannot resolve qemu-system-x86: {}",
                String::from_utf8_lossy(&sim.stderr)
            );
        }
        let pkgs: Vec<String> = String::from_utf8_lossy(&sim.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("Inst "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        eprintln!(
            "xtask: fetching qemu and {} libraries it needs (once, unpacked in {})",
            pkgs.len().saturating_sub(1),
            dir.display()
        );
        let debs = pkgs
            .iter()
            .map(|p| download(root, p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        unpack(&debs, &dir)?;
    }
    let ok = q
        .command()
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    anyhow::ensure!(ok, "{} does not start", q.bin.display());
    Ok(q)
}

fn apt_cache(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("apt-cache")
        .args(args)
        .output()
        .context("running apt-cache (the guest kernel comes from Debian's archive)")?;
    anyhow::ensure!(out.status.success(), "apt-cache {args:?} failed");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `apt-get download PKG` into .vm/debs (once), refreshing the package lists if they are stale.
fn download(root: &Path, pkg: &str) -> anyhow::Result<PathBuf> {
    let debs = cache_dir(root).join("debs");
    std::fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
    if let Some(d) = find_deb(&debs, pkg)? {
        return Ok(d);
    }
    let get = || {
        Command::new("apt-get")
            // As root into a folder the sandbox user `_apt` cannot write: say so, or apt warns.
            .args(["download", "-qq", "-o", "APT::Sandbox::User=root", pkg])
            .current_dir(&debs)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !get() {
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        if !get() {
            bail!("apt-get download {pkg} failed");
        }
    }
    find_deb(&debs, pkg)?.with_context(|| format!("apt-get download {pkg} left no .deb"))
}

fn find_deb(debs: &Path, pkg: &str) -> anyhow::Result<Option<PathBuf>> {
    let prefix = format!("{pkg}_");
    Ok(std::fs::read_dir(debs)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        }))
}

/// Unpacks .debs into `dir` (into a temporary sibling first: an interrupted unpack leaves no
/// half folder that a later run would take for complete).
fn unpack(debs: &[PathBuf], dir: &Path) -> anyhow::Result<()> {
    let mut tmp = dir.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    for deb in debs {
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tmp))?;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir).with_context(|| format!("renaming to {}", dir.display()))
}

/// Kernel modules the guest needs, with their dependencies first (read from each module's
/// `depends=` field): virtio PCI and 9p for the shared root; a RAM disk, crc32c and ext4 for
/// /tmp (6.1's tmpfs has no user.* extended attributes, which the xattr probe test sets).
pub fn guest_modules(k: &Kernel) -> anyhow::Result<Vec<PathBuf>> {
    let mut by_name = std::collections::HashMap::new();
    index_modules(&k.modules, &mut by_name)?;
    let mut order = Vec::new();
    for m in [
        "virtio_pci",
        "9pnet_virtio",
        "9p",
        "brd",
        "crc32c_generic",
        "ext4",
    ] {
        visit(m, &by_name, &mut order, 0)?;
    }
    Ok(order)
}

/// insmod parameters by module file name.
fn module_params(file: &str) -> &'static str {
    match file {
        // One RAM disk of 512 MiB (allocated as written) for the guest's /tmp.
        "brd.ko" => "rd_nr=1 rd_size=524288",
        _ => "",
    }
}

fn index_modules(
    dir: &Path,
    out: &mut std::collections::HashMap<String, PathBuf>,
) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            index_modules(&p, out)?;
        } else if let Some(name) = p.file_name().and_then(|n| n.to_str())
            && let Some(stem) = name.strip_suffix(".ko")
        {
            out.insert(stem.replace('-', "_"), p.clone());
        }
    }
    Ok(())
}

fn visit(
    name: &str,
    by_name: &std::collections::HashMap<String, PathBuf>,
    order: &mut Vec<PathBuf>,
    depth: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(depth < 32, "module dependency loop at {name}");
    let path = by_name
        .get(&name.replace('-', "_"))
        .with_context(|| format!("the guest kernel has no module {name} (is it built in?)"))?;
    if order.contains(path) {
        return Ok(());
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let deps = bytes
        .split(|b| *b == 0)
        .find_map(|s| s.strip_prefix(b"depends="))
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .unwrap_or_default();
    for d in deps.split(',').filter(|d| !d.is_empty()) {
        visit(d, by_name, order, depth + 1)?;
    }
    order.push(path.clone());
    Ok(())
}

/// Writes an uncompressed newc initramfs: /init, /bin/busybox and /modules/*.ko (in load
/// order, listed in /modules/order with their parameters).
pub fn initramfs(
    out: &Path,
    busybox: &Path,
    init: &str,
    modules: &[PathBuf],
) -> anyhow::Result<()> {
    let mut entries: Vec<(cpio::NewcBuilder, Cursor<Vec<u8>>)> = Vec::new();
    let dir = |n: &str| {
        (
            cpio::NewcBuilder::new(n).mode(0o040755),
            Cursor::new(vec![]),
        )
    };
    let file = |n: &str, mode: u32, data: Vec<u8>| {
        (
            cpio::NewcBuilder::new(n).mode(0o100000 | mode),
            Cursor::new(data),
        )
    };
    entries.push(dir("bin"));
    entries.push(dir("modules"));
    entries.push(file("init", 0o755, init.as_bytes().to_vec()));
    let bb = std::fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?;
    entries.push(file("bin/busybox", 0o755, bb));
    let mut order = String::new();
    for m in modules {
        let name = m
            .file_name()
            .and_then(|n| n.to_str())
            .context("module without a name")?;
        let data = std::fs::read(m).with_context(|| format!("reading {}", m.display()))?;
        entries.push(file(&format!("modules/{name}"), 0o644, data));
        order.push_str(name);
        order.push(' ');
        order.push_str(module_params(name));
        order.push('\n');
    }
    entries.push(file("modules/order", 0o644, order.into_bytes()));
    let f = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    cpio::write_cpio(entries.into_iter(), std::io::BufWriter::new(f))
        .and_then(|mut w| std::io::Write::flush(&mut w))
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}
