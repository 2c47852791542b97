//! `sentinel enroll URL --token T`: trades an enrolment token for this host's identity and
//! an ingest key bound to it, writes the key 0600 next to the configuration file and points
//! the configuration at the server (`host`, `[push] url` and `api_key_file`, other settings
//! and comments kept), so `sentinel run` pushes there without more flags. Enrolling again
//! rotates the key: the server revokes the previous one.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::Config;
use crate::feed::fleet::{EnrolAnswer, EnrolRequest};

#[derive(Debug, clap::Args)]
pub struct EnrollArgs {
    /// The server, e.g. https://sentinel.example.org
    pub url: String,
    /// The enrolment token (visible in the process list: prefer --token-file or
    /// SENTINEL_ENROL_TOKEN on shared hosts).
    #[arg(long, env = "SENTINEL_ENROL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the enrolment token.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// The host identity to enrol (default: `host` from the configuration, else the system's
    /// host name).
    #[arg(long)]
    pub host: Option<String>,
    /// Where to write the key (default: push.key next to the configuration file).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// Writes `text` to `path` with mode 0600 (temp file, fsync, rename).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The configuration text with `host`, `[push] url` and `[push] api_key_file` set, the rest
/// (other keys, comments) as it was.
pub fn point_config(text: &str, host: &str, url: &str, key_file: &Path) -> anyhow::Result<String> {
    let mut doc: toml_edit::DocumentMut = text.parse().context("the configuration is not TOML")?;
    doc["host"] = toml_edit::value(host);
    if !doc.contains_table("push") {
        doc["push"] = toml_edit::table();
    }
    let Some(push) = doc["push"].as_table_mut() else {
        bail!("[push] in the configuration is not a table");
    };
    push["url"] = toml_edit::value(url);
    push["api_key_file"] = toml_edit::value(key_file.display().to_string());
    Ok(doc.to_string())
}

pub async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    args: EnrollArgs,
) -> anyhow::Result<i32> {
    let url = args.url.trim_end_matches('/').to_string();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        bail!("{url:?} is not an http(s) URL");
    }
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.trim().to_string(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading {}", f.display()))?
            .trim()
            .to_string(),
        (None, None) => {
            bail!("give the enrolment token: --token, --token-file or SENTINEL_ENROL_TOKEN")
        }
    };
    let host = args.host.clone().unwrap_or_else(|| config.host_name());
    let config_path = config_path.unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_PATH));
    let dir = config_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let key_file = args
        .key_file
        .clone()
        .unwrap_or_else(|| dir.join("push.key"));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let r = client
        .post(format!("{url}/api/enroll"))
        .json(&EnrolRequest {
            token,
            host: host.clone(),
        })
        .send()
        .await
        .with_context(|| format!("reaching {url}"))?;
    let status = r.status();
    if !status.is_success() {
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        let why = body["error"].as_str().unwrap_or("no reason given");
        bail!("enrolment refused by {url} (HTTP {status}): {why}");
    }
    let answer: EnrolAnswer = r.json().await.context("reading the server's answer")?;
    if answer.host != host {
        bail!("the server enrolled {:?}, not {host:?}", answer.host);
    }
    write_private(&key_file, &format!("{}\n", answer.api_key))?;
    let text = match std::fs::read_to_string(&config_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", config_path.display())),
    };
    let updated = point_config(&text, &host, &url, &key_file)?;
    // Checked before it replaces the file: a configuration that no longer loads is refused.
    Config::parse(&updated, &config_path).context("the updated configuration")?;
    write_private(&config_path, &updated)?;
    println!(
        "enrolled {host} at {url} (key {}{}); key in {}, {} points there: `sentinel run` pushes with it",
        answer.key_id,
        if answer.rotated {
            ", the previous key is revoked"
        } else {
            ""
        },
        key_file.display(),
        config_path.display()
    );
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_is_pointed_at_the_server_and_keeps_the_rest() {
        let before = "# site settings\nstore = \"/x/agent.db\"\n\n[push]\n# spool here\nspool_dir = \"/s\"\nurl = \"https://old\"\n";
        let after = point_config(
            before,
            "web-1",
            "https://new",
            Path::new("/etc/sentinel/push.key"),
        )
        .unwrap();
        let c = Config::parse(&after, Path::new("t.toml")).unwrap();
        assert_eq!(c.host.as_deref(), Some("web-1"));
        assert_eq!(c.push.url.as_deref(), Some("https://new"));
        assert_eq!(
            c.push.api_key_file.as_deref(),
            Some(Path::new("/etc/sentinel/push.key"))
        );
        assert_eq!(c.push.spool_dir.as_deref(), Some(Path::new("/s")));
        assert!(
            after.contains("# site settings") && after.contains("# spool here"),
            "{after}"
        );
        let empty = point_config("", "h", "http://u", Path::new("k")).unwrap();
        assert_eq!(
            Config::parse(&empty, Path::new("t"))
                .unwrap()
                .push
                .url
                .as_deref(),
            Some("http://u")
        );
    }

    #[test]
    fn keys_are_written_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/push.key");
        write_private(&p, "snt_x\n").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        write_private(&p, "snt_y\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "snt_y\n");
    }
}
