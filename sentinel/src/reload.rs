//! `sentinel run` on SIGHUP: the configuration file is read again and what can change while
//! running changes (detection weights, thresholds, categories and exceptions, the outputs,
//! whose files are reopened, and the log level) without detaching the probes or losing the
//! process table. A file that does not
//! load, or a detection setting the engine refuses, keeps the running configuration, and the
//! log says why.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::detect::{DetectConfig, Engine};
use crate::pipeline::Control;
use crate::signals::Signals;

/// What `sentinel run` needs to answer signals: the handlers (installed first thing) and the
/// file to read again (`--config`, else the default path).
pub struct Reload {
    pub path: Option<PathBuf>,
    pub signals: Signals,
}

/// How long a reload waits for the analysis stage to take the new settings.
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The way to the running engine: changes run on its own thread between two batches.
pub type EngineControl = std::sync::mpsc::Sender<Control<Engine>>;

/// Reads `path` again and applies it; logs the outcome. Returns whether it was applied.
pub async fn reload(
    path: Option<&Path>,
    engine: Option<&EngineControl>,
    outputs: Option<&crate::output::Outputs>,
) -> bool {
    let shown = path
        .unwrap_or(Path::new(crate::config::DEFAULT_PATH))
        .display();
    let fresh = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                target: "sentinel::reload",
                "configuration not reloaded, the running one stays: {e}"
            );
            return false;
        }
    };
    // Outputs that cannot start (a file in an unsafe place) refuse the whole file, before
    // anything changed.
    if outputs.is_some()
        && let Err(e) = crate::output::Outputs::preflight(&fresh.output)
    {
        tracing::error!(
            target: "sentinel::reload",
            "configuration not reloaded, the running one stays: {e}"
        );
        return false;
    }
    if let Some(tx) = engine {
        match reconfigure(tx, fresh.detect.clone()).await {
            Ok(later) if !later.is_empty() => tracing::warn!(
                target: "sentinel::reload",
                "detect.{} changed in {shown}: takes effect at the next start",
                later.join(", detect.")
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(
                    target: "sentinel::reload",
                    "configuration not reloaded, the running one stays: {e}"
                );
                return false;
            }
        }
    }
    if let Some(o) = outputs
        && let Err(e) = o.replace(&fresh.output)
    {
        // Checked above: only a thread that cannot start gets here.
        tracing::error!(target: "sentinel::reload", "outputs not reloaded: {e}");
    }
    if let Err(e) = crate::logging::apply(&fresh.log) {
        // Validated at load: only a subscriber that is not ours gets here.
        tracing::warn!(target: "sentinel::reload", "{e}");
    }
    tracing::info!(
        target: "sentinel::reload",
        "configuration reloaded from {shown}: detection settings, outputs (files reopened) and log level"
    );
    true
}

async fn reconfigure(tx: &EngineControl, cfg: DetectConfig) -> Result<Vec<&'static str>, String> {
    let (done, answer) = tokio::sync::oneshot::channel();
    let change: Control<Engine> = Box::new(move |engine: &mut Engine| {
        let _ = done.send(engine.reconfigure(&cfg).map_err(|e| e.to_string()));
    });
    tx.send(change)
        .map_err(|_| "the analysis stage has ended".to_string())?;
    match tokio::time::timeout(APPLY_TIMEOUT, answer).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err("the analysis stage has ended".into()),
        Err(_) => Err(format!(
            "the analysis stage did not take the new settings within {}s",
            APPLY_TIMEOUT.as_secs()
        )),
    }
}
