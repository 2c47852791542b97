//! `sentinel generate man|completions DIR` (hidden; used by `cargo xtask package`): man pages
//! (clap_mangen) and bash, zsh and fish completions (clap_complete) written from the binary's
//! own command line, so what is installed always matches the binary it came with. The command
//! line is handed in by cli.rs (no import back to it).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap_complete::Shell;

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: Generate,
}

#[derive(Debug, clap::Subcommand)]
pub enum Generate {
    /// Man pages: sentinel.1 and one page per subcommand (sentinel-run.1, ...).
    Man {
        /// Directory to write into (created when missing).
        dir: PathBuf,
    },
    /// Shell completions: sentinel.bash, _sentinel (zsh) and sentinel.fish.
    Completions {
        /// Directory to write into (created when missing).
        dir: PathBuf,
    },
}

/// Writes what was asked for `cmd` (the whole command line); prints each file written.
pub fn run(cmd: clap::Command, args: GenerateArgs) -> anyhow::Result<i32> {
    let written = match &args.what {
        Generate::Man { dir } => man(cmd, dir)?,
        Generate::Completions { dir } => completions(cmd, dir)?,
    };
    for p in written {
        println!("{}", p.display());
    }
    Ok(crate::exit::OK)
}

/// One man page per visible command, in section 1.
pub fn man(cmd: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    list(dir, "1")
}

/// Completion scripts for bash, zsh and fish.
pub fn completions(cmd: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = without_hidden(cmd);
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            clap_complete::generate_to(shell, &mut cmd, "sentinel", dir)
                .with_context(|| format!("writing {shell} completions into {}", dir.display()))
        })
        .collect()
}

/// `cmd` without its hidden subcommands (at every level): clap_complete leaves them out of
/// bash's script but lists them in zsh's and fish's, and clap has no way to remove a
/// subcommand, so the command is rebuilt from its visible parts.
fn without_hidden(cmd: clap::Command) -> clap::Command {
    let visible: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .map(without_hidden)
        .collect();
    let mut out = clap::Command::new(cmd.get_name().to_string())
        .args(cmd.get_arguments().cloned())
        .subcommands(visible);
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        out = out.version(version.to_string());
    }
    out
}

/// The files in `dir` with extension `ext`, sorted.
fn list(dir: &Path, ext: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    Ok(v)
}
