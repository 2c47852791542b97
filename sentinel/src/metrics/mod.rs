//! Watching a running Sentinel: the Prometheus exposition (`[metrics]`, docs/metrics.md) of
//! the agent's health, of the process and of whatever else a caller registers (the server
//! registers its counters), and the agent's status socket that `sentinel status` asks
//! (`[status]`, socket.rs). Over `health` only: the server uses it too.

pub mod agent;
pub mod http;
pub mod process;
pub mod socket;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::health::HealthSource;

/// `[metrics]` in the config file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the agent's Prometheus endpoint (`sentinel run`), e.g. "127.0.0.1:9464",
    /// serving GET /metrics. Unset: no endpoint.
    pub listen: Option<String>,
    /// Address of the server's Prometheus endpoint (`sentinel serve`), e.g.
    /// "127.0.0.1:9465". Unset: no endpoint.
    pub server_listen: Option<String>,
    /// Allow addresses that are not loopback. Metrics tell how the host is watched and need no
    /// login: keep them on loopback, or put a firewall or an authenticating proxy in front.
    pub allow_remote: bool,
}

impl MetricsConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (key, v) in [
            ("listen", &self.listen),
            ("server_listen", &self.server_listen),
        ] {
            if let Some(v) = v {
                self.address(key, v)?;
            }
        }
        if let (Some(a), Some(b)) = (&self.listen, &self.server_listen)
            && a == b
            && !a.ends_with(":0")
        {
            return Err(format!(
                "metrics.listen and metrics.server_listen are both {a:?}: the agent and the server need one address each"
            ));
        }
        Ok(())
    }

    /// The agent's endpoint address, checked.
    pub fn agent_addr(&self) -> Result<Option<SocketAddr>, String> {
        self.listen
            .as_deref()
            .map(|v| self.address("listen", v))
            .transpose()
    }

    /// The server's endpoint address, checked.
    pub fn server_addr(&self) -> Result<Option<SocketAddr>, String> {
        self.server_listen
            .as_deref()
            .map(|v| self.address("server_listen", v))
            .transpose()
    }

    fn address(&self, key: &str, v: &str) -> Result<SocketAddr, String> {
        let addr: SocketAddr = v.parse().map_err(|_| {
            format!("metrics.{key}: {v:?} is not an address with a port, e.g. \"127.0.0.1:9464\"")
        })?;
        if !addr.ip().is_loopback() && !self.allow_remote {
            return Err(format!(
                "metrics.{key}: {v} is not a loopback address; metrics need no login, so they \
                 stay on this host unless metrics.allow_remote = true"
            ));
        }
        Ok(addr)
    }
}

/// `[status]` in the config file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StatusConfig {
    /// Answer `sentinel status` on a unix socket while `sentinel run` runs.
    pub enabled: bool,
    /// The socket (mode 0600, root only; its directory is created 0700 if missing).
    pub socket: PathBuf,
}

pub const DEFAULT_SOCKET: &str = "/run/sentinel/agent.sock";

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            enabled: true,
            socket: PathBuf::from(DEFAULT_SOCKET),
        }
    }
}

impl StatusConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.enabled && !self.socket.is_absolute() {
            return Err(format!(
                "status.socket must be an absolute path, got {}",
                self.socket.display()
            ));
        }
        // sun_path holds 108 bytes with its terminating NUL.
        if self.socket.as_os_str().len() > 107 {
            return Err("status.socket: a unix socket path is at most 107 bytes".into());
        }
        Ok(())
    }
}

/// A registry with the process metrics and, for an agent, its health (`health`); callers
/// add their own (the server's counters) before serving it.
pub fn registry(health: Option<Arc<HealthSource>>) -> Registry {
    let mut r = Registry::default();
    if let Some(h) = health {
        r.register_collector(Box::new(agent::AgentCollector(h)));
    }
    r.register_collector(Box::new(process::ProcessCollector));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_unless_allowed() {
        let mut c = MetricsConfig {
            listen: Some("127.0.0.1:9464".into()),
            server_listen: Some("[::1]:9465".into()),
            allow_remote: false,
        };
        assert!(c.validate().is_ok());
        c.listen = Some("0.0.0.0:9464".into());
        let e = c.validate().unwrap_err();
        assert!(e.contains("allow_remote"), "{e}");
        c.allow_remote = true;
        assert!(c.validate().is_ok());
        c.listen = Some("localhost".into());
        assert!(c.validate().unwrap_err().contains("address with a port"));
        c.listen = Some("[::1]:9465".into());
        assert!(c.validate().unwrap_err().contains("one address each"));
        assert!(
            MetricsConfig::default().validate().is_ok(),
            "off by default"
        );
        assert_eq!(MetricsConfig::default().agent_addr(), Ok(None));
    }

    #[test]
    fn status_socket_must_be_absolute_and_fit() {
        assert!(StatusConfig::default().validate().is_ok());
        let rel = StatusConfig {
            socket: "agent.sock".into(),
            ..Default::default()
        };
        assert!(rel.validate().is_err());
        let long = StatusConfig {
            socket: PathBuf::from(format!("/{}", "x".repeat(120))),
            ..Default::default()
        };
        assert!(long.validate().is_err());
    }
}
