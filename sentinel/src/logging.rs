//! Diagnostics through `tracing` to stderr, so stdout stays for the feed and JSON output:
//! readable lines or JSON lines (`--log-format`), without timestamps under systemd (journald
//! stamps every line itself), at the level of `[log] level` unless RUST_LOG is set. The level
//! can change while running (`sentinel run` on SIGHUP).

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use tracing_subscriber::{EnvFilter, Layer as _, Registry, layer::SubscriberExt as _, reload};

/// How each diagnostic line is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per message.
    #[default]
    Text,
    /// One JSON object per line (`timestamp` left out under systemd, like the text's).
    Json,
}

/// `[log]` in the configuration file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Diagnostics at or above this level go to stderr: "error", "warn", "info", "debug" or
    /// "trace", or a filter such as "warn,sentinel::detect=debug". RUST_LOG, when set, wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "warn".into(),
        }
    }
}

impl LogConfig {
    pub fn validate(&self) -> Result<(), String> {
        filter(&self.level).map(|_| ())
    }
}

fn filter(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::builder()
        .parse(level)
        .map_err(|e| format!("log.level {level:?}: {e}"))
}

/// The live filter, when `init` installed ours and RUST_LOG did not fix the level.
static LEVEL: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// systemd connects stderr to the journal and says so in JOURNAL_STREAM ("dev:inode").
fn under_journald() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| is_stream(&v, m.dev(), m.ino()))
}

/// Whether JOURNAL_STREAM's "dev:inode" is stderr's: a child started from a unit with its
/// stderr redirected elsewhere inherits the variable too, and then it does not count.
fn is_stream(var: &str, dev: u64, ino: u64) -> bool {
    var.split_once(':')
        .is_some_and(|(d, i)| d.parse() == Ok(dev) && i.parse() == Ok(ino))
}

/// Installs the subscriber; the level comes from RUST_LOG, else "warn" until `apply`.
pub fn init(format: LogFormat) {
    let journald = under_journald();
    let ansi = !journald && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let from_env = EnvFilter::try_from_default_env().ok();
    let env_set = from_env.is_some();
    let (level, handle) =
        reload::Layer::new(from_env.unwrap_or_else(|| EnvFilter::new(LogConfig::default().level)));
    let text = (format == LogFormat::Text).then(|| {
        let l = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi);
        if journald {
            l.without_time().boxed()
        } else {
            l.boxed()
        }
    });
    let json = (format == LogFormat::Json).then(|| {
        let l = tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_ansi(false);
        if journald {
            l.without_time().boxed()
        } else {
            l.boxed()
        }
    });
    let subscriber = tracing_subscriber::registry()
        .with(level)
        .with(text)
        .with(json);
    if tracing::subscriber::set_global_default(subscriber).is_ok() && !env_set {
        let _ = LEVEL.set(handle);
    }
}

/// Sets the level from `[log]` (at start and on reload); RUST_LOG, when set, stays in force.
pub fn apply(cfg: &LogConfig) -> Result<(), String> {
    let f = filter(&cfg.level)?;
    if let Some(h) = LEVEL.get() {
        h.reload(f)
            .map_err(|e| format!("changing the log level: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_is_recognised_only_when_stderr_is_its_stream() {
        assert!(is_stream("8:1234", 8, 1234));
        assert!(!is_stream("8:1234", 8, 1235), "stderr redirected elsewhere");
        assert!(!is_stream("8", 8, 1234));
        assert!(!is_stream("", 0, 0));
    }

    #[test]
    fn levels_and_filters_are_checked() {
        assert!(LogConfig::default().validate().is_ok());
        for ok in ["info", "warn,sentinel::detect=debug", "trace"] {
            let c = LogConfig { level: ok.into() };
            assert!(c.validate().is_ok(), "{ok}");
        }
        let e = LogConfig {
            level: "sentinel=loud".into(),
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("log.level"), "{e}");
    }
}
