//! `cargo xtask fuzz`: runs the cargo-fuzz targets of fuzz/ (docs/fuzzing.md) for a fixed time
//! each, seeded from fuzz/seeds/<target>, and reports per target how many inputs ran, what new
//! coverage they found and whether anything crashed. New inputs accumulate in fuzz/corpus (not
//! committed); a crash leaves its input in fuzz/artifacts/<target>/ and fails the task.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::setup;

#[derive(clap::Args)]
pub struct FuzzArgs {
    /// How long to fuzz each target, in seconds.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Only this target (see `cargo +nightly fuzz list` in fuzz/).
    #[arg(long)]
    pub target: Option<String>,
}

/// Optimised, but with debug assertions and overflow checks: an arithmetic overflow on hostile
/// input panics in debug builds (and the tests), so the fuzzer must see it too.
const BUILD_FLAGS: [&str; 2] = ["-O", "--debug-assertions"];

/// What one target's run produced, from libFuzzer's output.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    runs: u64,
    new_units: u64,
    cov_start: Option<u64>,
    cov_end: Option<u64>,
    corpus: Option<u64>,
    artifacts: Vec<String>,
}

pub fn run(root: &Path, args: FuzzArgs) -> anyhow::Result<()> {
    setup::cargo_fuzz()?;
    let dir = root.join("fuzz");
    let all = targets(&dir)?;
    let chosen: Vec<String> = match &args.target {
        Some(t) if all.contains(t) => vec![t.clone()],
        Some(t) => bail!("no fuzz target {t}; the targets are: {}", all.join(", ")),
        None => all,
    };
    // One build for all targets, so the time limit is spent fuzzing.
    let mut build = nightly_fuzz(&dir);
    build.arg("build").args(BUILD_FLAGS);
    setup::run(&mut build)?;
    let mut crashed = Vec::new();
    println!("target          seconds        runs  new units  coverage (edges)  corpus  crash");
    for t in &chosen {
        let o = run_one(&dir, t, args.seconds)?;
        let cov = match (o.cov_start, o.cov_end) {
            (Some(a), Some(b)) => format!("{a} -> {b}"),
            _ => "?".into(),
        };
        println!(
            "{t:<15} {:>7} {:>11} {:>10} {cov:>17} {:>7}  {}",
            args.seconds,
            o.runs,
            o.new_units,
            o.corpus.map_or("?".into(), |c| c.to_string()),
            if o.artifacts.is_empty() {
                "none"
            } else {
                "CRASH"
            },
        );
        for a in &o.artifacts {
            println!("  crashing input: {}", dir.join(a).display());
        }
        if !o.artifacts.is_empty() {
            crashed.push(t.clone());
        }
    }
    if !crashed.is_empty() {
        bail!(
            "fuzzing found crashes in {} (inputs above; reproduce with `cargo +nightly fuzz run <target> <input>` in fuzz/)",
            crashed.join(", ")
        );
    }
    Ok(())
}

/// `cargo +nightly fuzz` in fuzz/, without the variables the outer (stable) `cargo run` set:
/// build scripts that track `CARGO_PKG_NAME` and the like (ring's) would otherwise see
/// xtask's values, and every run would rebuild the whole fuzz crate.
fn nightly_fuzz(dir: &Path) -> Command {
    let mut c = Command::new("cargo");
    c.args(["+nightly", "fuzz"]).current_dir(dir);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        let outer = (k.starts_with("CARGO") && k != "CARGO_HOME")
            || k.starts_with("RUSTUP_TOOLCHAIN")
            || k == "RUST_RECURSION_COUNT"
            || k == "LD_LIBRARY_PATH";
        if outer {
            c.env_remove(k.as_ref());
        }
    }
    c
}

fn targets(dir: &Path) -> anyhow::Result<Vec<String>> {
    let out = nightly_fuzz(dir)
        .arg("list")
        .output()
        .context("running cargo +nightly fuzz list")?;
    if !out.status.success() {
        bail!(
            "cargo fuzz list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if list.is_empty() {
        bail!("no fuzz targets in {}", dir.display());
    }
    Ok(list)
}

fn run_one(dir: &Path, target: &str, seconds: u64) -> anyhow::Result<Outcome> {
    let corpus = dir.join("corpus").join(target);
    let seeds = dir.join("seeds").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let mut c = nightly_fuzz(dir);
    c.arg("run")
        .args(BUILD_FLAGS)
        .arg(target)
        .arg(&corpus)
        .args(seeds.is_dir().then_some(&seeds))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(["-print_final_stats=1", "-timeout=10", "-rss_limit_mb=2048"]);
    eprintln!("xtask: fuzzing {target} for {seconds} s");
    let out = c
        .output()
        .with_context(|| format!("running the fuzz target {target}"))?;
    let log: PathBuf = dir.join("artifacts").join(format!("{target}.log"));
    if let Some(p) = log.parent() {
        std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    }
    let text = String::from_utf8_lossy(&out.stderr);
    std::fs::write(&log, text.as_bytes()).with_context(|| format!("writing {}", log.display()))?;
    let o = parse_output(&text);
    if !out.status.success() && o.artifacts.is_empty() {
        bail!(
            "fuzz target {target} failed ({}) without a crashing input; see {}",
            out.status,
            log.display()
        );
    }
    Ok(o)
}

/// Reads libFuzzer's status lines (`#N INITED cov: ...`, `#N DONE cov: ...`), its final
/// `stat::` lines and the paths of inputs it wrote for crashes, leaks, timeouts and OOMs.
fn parse_output(text: &str) -> Outcome {
    let mut o = Outcome::default();
    // `corp: 25/14Kb` is a count and a size: the count is wanted.
    let field = |line: &str, name: &str| -> Option<u64> {
        let mut it = line.split_whitespace();
        it.find(|w| *w == name)?;
        it.next()?.split('/').next()?.parse().ok()
    };
    for line in text.lines() {
        if line.starts_with('#') {
            if let Some(c) = field(line, "cov:") {
                if line.split_whitespace().nth(1) == Some("INITED") {
                    o.cov_start = Some(c);
                }
                o.cov_end = Some(c);
            }
            if let Some(c) = field(line, "corp:") {
                o.corpus = Some(c);
            }
        } else if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
            o.runs = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("stat::new_units_added:") {
            o.new_units = v.trim().parse().unwrap_or(0);
        } else if let Some((_, path)) = line.split_once("Test unit written to ") {
            o.artifacts.push(path.trim().to_string());
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_statistics_and_crashes() {
        let clean = "INFO: seed corpus: files: 6\n\
            #7\tINITED cov: 812 ft: 1500 corp: 6/9Kb exec/s: 0 rss: 40Mb\n\
            #4096\tpulse  cov: 900 ft: 1700 corp: 20/12Kb lim: 4 exec/s: 2048 rss: 44Mb\n\
            #9000\tDONE   cov: 950 ft: 1800 corp: 25/14Kb lim: 4 exec/s: 900 rss: 45Mb\n\
            Done 9000 runs in 10 second(s)\n\
            stat::number_of_executed_units: 9000\n\
            stat::new_units_added:          19\n";
        let o = parse_output(clean);
        assert_eq!(
            (o.runs, o.new_units, o.cov_start, o.cov_end, o.corpus),
            (9000, 19, Some(812), Some(950), Some(25))
        );
        assert!(o.artifacts.is_empty());
        let crash = "==1== ERROR: libFuzzer: deadly signal\n\
            artifact_prefix='/w/fuzz/artifacts/t/'; Test unit written to /w/fuzz/artifacts/t/crash-ab12\n";
        assert_eq!(
            parse_output(crash).artifacts,
            vec!["/w/fuzz/artifacts/t/crash-ab12".to_string()]
        );
    }
}
