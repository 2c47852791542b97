//! The TLS options of a connection string, and TLS to a real throw-away cluster.

use super::*;
use crate::server::postgres::{PgStore, testing::Cluster};

#[test]
fn the_tls_options_come_off_both_forms_of_connection_string() {
    assert_eq!(
        split(
            "postgres://u:p@h:5432/db?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem"
        ),
        Split {
            rest: "postgres://u:p@h:5432/db?application_name=x".into(),
            sslmode: Some("verify-full".into()),
            sslrootcert: Some("/etc/ca.pem".into()),
        }
    );
    assert_eq!(
        split("postgresql://u@h/db?sslmode=require").rest,
        "postgresql://u@h/db"
    );
    assert_eq!(
        split("host=h user=u sslmode=verify-ca sslrootcert='/etc/my ca\\'s.pem' dbname='a b'"),
        Split {
            rest: "host=h user=u dbname='a b'".into(),
            sslmode: Some("verify-ca".into()),
            sslrootcert: Some("/etc/my ca's.pem".into()),
        }
    );
    assert_eq!(split("host=/run/postgresql").sslmode, None);
    // The password stays hidden in messages whatever TLS options follow it.
    let shown = crate::server::postgres::redact(
        "postgres://u:secret@h/db?sslmode=verify-full&sslrootcert=%2Fca.pem",
    );
    assert!(!shown.contains("secret"), "{shown}");
}

#[test]
fn tls_is_asked_for_only_by_the_verifying_modes_and_bad_options_are_refused() {
    for plain in [
        "postgres://u@h/db",
        "postgres://u@h/db?sslmode=prefer",
        "host=h sslmode=disable",
    ] {
        let t = target(plain).unwrap();
        assert!(t.tls.is_none(), "{plain}");
    }
    assert_eq!(
        target("host=h sslmode=disable")
            .unwrap()
            .config
            .get_ssl_mode(),
        SslMode::Disable
    );
    let err = |u: &str| target(u).err().unwrap_or_default();
    assert!(err("postgres://u@h/db?sslmode=maybe").contains("sslmode \"maybe\""));
    assert!(err("postgres://u@h/db?sslrootcert=%2Fx.pem").contains("sslmode does not ask"));
    let missing = err("postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fnonexistent%2Fca.pem");
    assert!(
        missing.contains("reading sslrootcert /nonexistent/ca.pem"),
        "{missing}"
    );
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let url = format!("host=h sslmode=require sslrootcert={}", empty.display());
    assert!(
        err(&url).contains("holds no PEM certificate"),
        "{}",
        err(&url)
    );
}

/// A CA and a server certificate for 127.0.0.1 and localhost signed by it (PEM).
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn pki(ca_name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    Pki {
        ca: ca.pem(),
        cert: leaf.pem(),
        key: key.serialize_pem(),
    }
}

/// Whether the store's connections are encrypted, as the server sees it.
async fn encrypted(s: &PgStore) -> bool {
    let c = s.pool.get().await.unwrap();
    c.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_speaks_verified_tls_when_asked_and_refuses_an_unknown_issuer() {
    let cluster = Cluster::start().unwrap();
    let db = cluster.create_database().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (server, other) = (pki("sentinel test CA"), pki("another CA"));
    let (ca, wrong_ca) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
    std::fs::write(&ca, &server.ca).unwrap();
    std::fs::write(&wrong_ca, &other.ca).unwrap();

    // Before the server has TLS, asking for it fails clearly rather than falling back.
    let ask =
        |root: &std::path::Path| format!("{db}?sslmode=verify-full&sslrootcert={}", root.display());
    let e = PgStore::open(&ask(&ca))
        .await
        .err()
        .expect("no TLS on the server yet");
    assert!(e.to_string().contains("server does not support TLS"), "{e}");

    cluster.enable_tls(&server.cert, &server.key).await.unwrap();
    let s = PgStore::open(&ask(&ca)).await.unwrap();
    assert!(
        encrypted(&s).await,
        "verify-full with the right CA is encrypted"
    );
    let s = PgStore::open(&format!(
        "{db}?sslmode=require&sslrootcert={}",
        ca.display()
    ))
    .await
    .unwrap();
    assert!(encrypted(&s).await, "require is encrypted (and verified)");

    let e = PgStore::open(&ask(&wrong_ca))
        .await
        .err()
        .expect("another CA's chain is refused");
    let msg = e.to_string();
    assert!(
        msg.contains("certificate") || msg.contains("UnknownIssuer"),
        "{msg}"
    );

    let s = PgStore::open(&format!("{db}?sslmode=disable"))
        .await
        .unwrap();
    assert!(!encrypted(&s).await, "sslmode=disable stays plain");
    let s = PgStore::open(&db).await.unwrap();
    assert!(!encrypted(&s).await, "no sslmode: plain, as before");
}
