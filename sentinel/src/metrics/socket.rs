//! The agent's status socket: `sentinel run` answers each connection with its health
//! snapshot (one JSON object, then the connection closes), root only: the socket is mode
//! 0600 in a 0700 directory, and the peer's uid is checked (SO_PEERCRED) besides.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

use crate::health::{AgentHealth, HealthSource};

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("{path}: another agent answers there already")]
    InUse { path: PathBuf },
    #[error("{path}: exists and is not a socket; not touching it")]
    NotASocket { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What `sentinel status` gets.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("no agent is running (nothing answers on {path}); start one with `sentinel run`")]
    NotRunning { path: PathBuf },
    #[error("permission denied on {path}: the status socket is root's; run `sudo sentinel status`")]
    PermissionDenied { path: PathBuf },
    #[error("the agent refused: {0}")]
    Refused(String),
    #[error("no answer from the agent on {path} within {secs} s")]
    Timeout { path: PathBuf, secs: u64 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unreadable answer from the agent: {0}")]
    Parse(serde_json::Error),
}

/// One answer on the socket.
#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    health: Option<AgentHealth>,
}

/// A serving socket; `stop` removes it.
pub struct StatusSocket {
    path: PathBuf,
    ino: u64,
    task: tokio::task::JoinHandle<()>,
}

impl StatusSocket {
    /// Binds `path` and answers with `health` snapshots. A stale socket (nobody answering)
    /// is replaced; one another agent answers on is left alone (`InUse`).
    pub async fn start(
        path: &Path,
        health: Arc<HealthSource>,
    ) -> Result<StatusSocket, SocketError> {
        let io = |source| SocketError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(io)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if !m.file_type().is_socket() => {
                return Err(SocketError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
            Ok(_) => {
                if UnixStream::connect(path).await.is_ok() {
                    return Err(SocketError::InUse {
                        path: path.to_path_buf(),
                    });
                }
                std::fs::remove_file(path).map_err(io)?;
            }
            Err(_) => {}
        }
        let listener = UnixListener::bind(path).map_err(io)?;
        // Before the first accept: a connection made in between is still checked by uid.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        let ino = std::fs::symlink_metadata(path).map_err(io)?.ino();
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let health = health.clone();
                        tokio::spawn(answer(stream, health));
                    }
                    Err(e) => {
                        tracing::warn!(target: "sentinel::metrics", "status socket: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(StatusSocket {
            path: path.to_path_buf(),
            ino,
            task,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops answering and removes the socket, if it is still the one bound here.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The uid allowed to ask: root, or the agent's own user when it does not run as root.
fn allowed_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

async fn answer(mut stream: UnixStream, health: Arc<HealthSource>) {
    let reply = match stream.peer_cred() {
        Ok(c) if c.uid() == 0 || c.uid() == allowed_uid() => Reply {
            error: None,
            health: Some(
                tokio::task::spawn_blocking(move || health.snapshot())
                    .await
                    .unwrap_or_default(),
            ),
        },
        Ok(c) => {
            tracing::warn!(target: "sentinel::metrics", "status socket: refused uid {}", c.uid());
            Reply {
                error: Some(format!("uid {} may not ask; the status is root's", c.uid())),
                health: None,
            }
        }
        Err(e) => Reply {
            error: Some(format!("cannot tell who is asking: {e}")),
            health: None,
        },
    };
    if let Ok(mut body) = serde_json::to_vec(&reply) {
        body.push(b'\n');
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&body)).await;
    }
    let _ = stream.shutdown().await;
}

/// Asks the agent on `path` for its health.
pub async fn ask(path: &Path, timeout: Duration) -> Result<AgentHealth, AskError> {
    let p = || path.to_path_buf();
    let run = async {
        let mut s = UnixStream::connect(path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    AskError::NotRunning { path: p() }
                }
                std::io::ErrorKind::PermissionDenied => AskError::PermissionDenied { path: p() },
                _ => AskError::Io {
                    path: p(),
                    source: e,
                },
            })?;
        let mut body = Vec::new();
        s.read_to_end(&mut body)
            .await
            .map_err(|source| AskError::Io { path: p(), source })?;
        let reply: Reply = serde_json::from_slice(&body).map_err(AskError::Parse)?;
        match (reply.error, reply.health) {
            (Some(e), _) => Err(AskError::Refused(e)),
            (None, Some(h)) => Ok(h),
            (None, None) => Err(AskError::Refused("empty answer".into())),
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| AskError::Timeout {
            path: p(),
            secs: timeout.as_secs(),
        })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Identity;

    fn source() -> Arc<HealthSource> {
        HealthSource::new(Identity {
            host: "test-host".into(),
            config_hash: "h".into(),
        })
    }

    #[tokio::test]
    async fn answers_with_the_snapshot_and_cleans_up() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("run/agent.sock");
        let s = StatusSocket::start(&path, source()).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let h = ask(&path, Duration::from_secs(5)).await.unwrap();
        assert_eq!(h.host, "test-host");
        assert_eq!(h.pid, std::process::id());
        // A second agent does not take the socket of a live one.
        assert!(matches!(
            StatusSocket::start(&path, source()).await,
            Err(SocketError::InUse { .. })
        ));
        s.stop().await;
        assert!(!path.exists(), "removed at stop");
        assert!(matches!(
            ask(&path, Duration::from_secs(5)).await,
            Err(AskError::NotRunning { .. })
        ));
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_plain_file_is_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("agent.sock");
        // A socket nobody answers on (its agent died).
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(matches!(
            ask(&path, Duration::from_secs(5)).await,
            Err(AskError::NotRunning { .. })
        ));
        let s = StatusSocket::start(&path, source()).await.unwrap();
        assert!(ask(&path, Duration::from_secs(5)).await.is_ok());
        s.stop().await;
        std::fs::write(&path, "x").unwrap();
        assert!(matches!(
            StatusSocket::start(&path, source()).await,
            Err(SocketError::NotASocket { .. })
        ));
    }
}
