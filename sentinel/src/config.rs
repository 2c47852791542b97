//! The one configuration type (TOML at /etc/sentinel/sentinel.toml), its defaults and
//! validation. Each room owns its section type; this file only assembles them. CLI flags
//! override values at the edge (cli.rs).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DEFAULT_PATH: &str = "/etc/sentinel/sentinel.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Host name reported in anomalies (default: the system's host name).
    pub host: Option<String>,
    /// The agent's SQLite store: baselines of every kind and the anomalies raised here.
    pub store: PathBuf,
    /// What the kernel probes capture and how events reach the agent (docs/events.md).
    pub collect: crate::collect::CollectConfig,
    /// Detection: windows, calibration, thresholds, weights and exceptions
    /// (docs/anomalies.md).
    pub detect: crate::detect::DetectConfig,
    /// Host snapshots, `sentinel --quick` and friends (docs/fingerprint.md).
    pub snapshot: crate::snapshot::SnapshotConfig,
    /// Reading auditd's log (docs/audit.md).
    pub audit: crate::audit::AuditConfig,
    /// The dashboard, `sentinel serve` (docs/server.md).
    pub server: crate::server::ServerConfig,
    /// Explanations in plain words by a language model (docs/llm.md).
    pub llm: crate::explain::LlmConfig,
    /// Where `sentinel run --push` sends data and where its key lives.
    pub push: crate::feed::push::PushSettings,
    /// The agent's own diagnostics (stderr, or the journal under systemd).
    pub log: crate::logging::LogConfig,
    /// Prometheus endpoints of the agent and the server (docs/metrics.md); off by default.
    pub metrics: crate::metrics::MetricsConfig,
    /// The agent's status socket, asked by `sentinel status` (docs/metrics.md).
    pub status: crate::metrics::StatusConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: None,
            store: PathBuf::from(crate::store::DEFAULT_PATH),
            collect: Default::default(),
            detect: Default::default(),
            snapshot: Default::default(),
            audit: Default::default(),
            server: Default::default(),
            llm: Default::default(),
            push: Default::default(),
            log: Default::default(),
            metrics: Default::default(),
            status: Default::default(),
        }
    }
}

impl Config {
    /// Loads `path`; a missing file at the default path means "all defaults".
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default());
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Config::parse(&text, &path)
    }

    /// Parses and validates configuration text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(e) => Err(ConfigError::Invalid(e)),
            None => Ok(()),
        }
    }

    /// Each section's first problem, every section checked (`sentinel config check`).
    pub fn problems(&self) -> Vec<String> {
        [
            self.collect.validate(),
            self.detect.validate(),
            self.snapshot.validate(),
            self.audit.validate(),
            self.server.validate(),
            self.llm.validate(),
            self.log.validate(),
            self.metrics.validate(),
            self.status.validate(),
        ]
        .into_iter()
        .filter_map(Result::err)
        .collect()
    }

    /// SHA-256 (hex) of the configuration as TOML: two agents with equal hashes run with
    /// equal settings (the agent's health carries it).
    pub fn hash(&self) -> String {
        use sha2::Digest as _;
        let text = toml::to_string(self).unwrap_or_default();
        data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(text.as_bytes()))
    }

    pub fn host_name(&self) -> String {
        self.host.clone().unwrap_or_else(system_host_name)
    }
}

pub fn system_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_default_file_is_all_defaults_but_missing_explicit_file_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("nope.toml");
        assert!(matches!(
            Config::load(Some(&p)),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_path() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.toml");
        std::fs::write(&p, "bogus = 1\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("s.toml") && e.contains("bogus"), "{e}");
    }

    #[test]
    fn exec_env_defaults_and_bad_names() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.toml");
        std::fs::write(&p, "").unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert!(c.collect.exec_env.iter().any(|n| n == "LD_PRELOAD"));
        assert_eq!(c.collect.exec_env.len(), 11);
        std::fs::write(&p, "[collect]\nexec_env = [\"MY_VAR\", \"ENV\"]\n").unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.collect.exec_env, ["MY_VAR", "ENV"]);
        std::fs::write(&p, "[collect]\nexec_env = []\n").unwrap();
        assert!(Config::load(Some(&p)).unwrap().collect.exec_env.is_empty());
        for bad in [
            "\"A=B\"",
            "\"\"",
            "\"1ABC\"",
            "\"caf\u{e9}\"",
            &format!("\"{}\"", "A".repeat(31)),
        ] {
            std::fs::write(&p, format!("[collect]\nexec_env = [{bad}]\n")).unwrap();
            let e = Config::load(Some(&p)).unwrap_err().to_string();
            assert!(e.contains("exec_env"), "{bad}: {e}");
        }
        // 30 bytes is the longest name the kernel can match.
        std::fs::write(
            &p,
            format!("[collect]\nexec_env = [\"{}\"]\n", "A".repeat(30)),
        )
        .unwrap();
        assert!(Config::load(Some(&p)).is_ok());
    }

    #[test]
    fn snapshot_and_audit_sections_load_and_validate() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.toml");
        std::fs::write(
            &p,
            "[snapshot]\nknown_ports = [22, 8443]\nconfig_files = [\"/etc/hosts\"]\n\
             interval_secs = 300\n[audit]\nlog_path = \"/x/audit.log\"\nbrute_force_threshold = 4\n",
        )
        .unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.snapshot.known_ports, vec![22, 8443]);
        assert_eq!(c.snapshot.interval_secs, 300);
        assert_eq!(
            c.snapshot.high_fd_threshold, 100,
            "unset keys keep defaults"
        );
        assert_eq!(c.audit.brute_force_threshold, 4);
        assert_eq!(c.audit.window_secs, 3600);
        for bad in [
            "[snapshot]\ninterval_secs = 0\n",
            "[snapshot]\nknown_ports = [0]\n",
            "[snapshot]\nmemory_warn_percent = 99.0\nmemory_crit_percent = 98.0\n",
            "[snapshot]\nbogus = 1\n",
            "[audit]\nbrute_force_threshold = 1\n",
            "[audit]\nwindow_secs = 0\n",
        ] {
            std::fs::write(&p, bad).unwrap();
            assert!(Config::load(Some(&p)).is_err(), "{bad}");
        }
    }
}
