//! TLS to PostgreSQL: libpq's `sslmode` and `sslrootcert` in `[server] database`, spoken with
//! rustls (tokio-postgres-rustls). tokio-postgres itself knows only `disable`, `prefer` and
//! `require`, and reads no certificate file, so the two options are taken off the connection
//! string here and turn into a verifying rustls connector.
//!
//! Sentinel speaks TLS only when asked (`require`, `verify-ca`, `verify-full`) and then always
//! verifies the server's chain and name: `require` is as strict as `verify-full` (libpq's
//! `require` trusts any certificate, which protects against nothing an attacker on the path
//! cannot undo). `disable`, `allow` and `prefer` (libpq's default) connect in plain TCP.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore, pki_types::CertificateDer, pki_types::pem::PemObject};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A connection string made ready for tokio-postgres, and the TLS it asked for.
pub struct Target {
    pub config: tokio_postgres::Config,
    /// `None`: plain TCP (or a Unix socket).
    pub tls: Option<MakeRustlsConnect>,
}

/// The TLS options of a connection string, and the string without them.
#[derive(Debug, PartialEq, Eq)]
pub struct Split {
    pub rest: String,
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
}

/// Parses `url` (a `postgres://` URL or `key=value` words) with its TLS options.
pub fn target(url: &str) -> Result<Target, String> {
    let s = split(url);
    let verify = match s.sslmode.as_deref() {
        None | Some("disable" | "allow" | "prefer") => false,
        Some("require" | "verify-ca" | "verify-full") => true,
        Some(other) => {
            return Err(format!(
                "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, \
                 verify-full"
            ));
        }
    };
    let mut config: tokio_postgres::Config = s.rest.parse().map_err(|e| format!("{e}"))?;
    if !verify {
        if s.sslrootcert.is_some() {
            return Err(
                "sslrootcert is given but sslmode does not ask for TLS (use \
                        sslmode=verify-full)"
                    .into(),
            );
        }
        let plain = s.sslmode.as_deref() == Some("disable");
        config.ssl_mode(if plain {
            SslMode::Disable
        } else {
            SslMode::Prefer
        });
        return Ok(Target { config, tls: None });
    }
    config.ssl_mode(SslMode::Require);
    let roots = roots(s.sslrootcert.as_deref())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Target {
        config,
        tls: Some(MakeRustlsConnect::new(client)),
    })
}

/// The certificates to trust: the PEM file `sslrootcert`, or (absent or `system`) the
/// operating system's store.
fn roots(sslrootcert: Option<&str>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match sslrootcert {
        Some(path) if path != "system" => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(Path::new(path))
                    .and_then(|it| it.collect::<Result<_, _>>())
                    .map_err(|e| format!("reading sslrootcert {path}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("sslrootcert {path} holds no PEM certificate"));
            }
            for c in certs {
                store
                    .add(c)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // One unusable certificate in the system store does not make the others unusable.
                let _ = store.add(c);
            }
            if store.is_empty() {
                return Err(
                    "sslmode asks for TLS, no sslrootcert is given and the system has no CA \
                     certificates: give sslrootcert=/path/to/ca.pem"
                        .into(),
                );
            }
        }
    }
    Ok(store)
}

/// Takes `sslmode` and `sslrootcert` off a connection string, in either of libpq's forms.
pub fn split(url: &str) -> Split {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_url(url)
    } else {
        split_words(url)
    }
}

fn split_url(url: &str) -> Split {
    let mut out = Split {
        rest: url.to_string(),
        sslmode: None,
        sslrootcert: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return out;
    };
    let mut kept = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "sslmode" => out.sslmode = Some(v.into_owned()),
            "sslrootcert" => out.sslrootcert = Some(v.into_owned()),
            _ => {
                kept.append_pair(&k, &v);
                any = true;
            }
        }
    }
    out.rest = if any {
        format!("{base}?{}", kept.finish())
    } else {
        base.to_string()
    };
    out
}

/// `key=value` words; a value may be single-quoted with backslash escapes (as libpq reads it).
fn split_words(s: &str) -> Split {
    let mut out = Split {
        rest: String::new(),
        sslmode: None,
        sslrootcert: None,
    };
    let mut kept: Vec<String> = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        // The word as written (kept as is) and its value unquoted.
        let mut word = String::new();
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            word.push(c);
            key.push(c);
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            word.push('=');
            if chars.next_if_eq(&'\'').is_some() {
                word.push('\'');
                while let Some(c) = chars.next() {
                    word.push(c);
                    match c {
                        '\\' => {
                            if let Some(e) = chars.next() {
                                word.push(e);
                                value.push(e);
                            }
                        }
                        '\'' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    word.push(c);
                    value.push(c);
                }
            }
        }
        match key.as_str() {
            "sslmode" => out.sslmode = Some(value),
            "sslrootcert" => out.sslrootcert = Some(value),
            _ => kept.push(word),
        }
    }
    out.rest = kept.join(" ");
    out
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
