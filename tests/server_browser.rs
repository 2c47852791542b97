//! The dashboard in a real headless Chromium (tests/browser/dashboard.mjs via playwright-core):
//! sign in, enable 2FA with a generated code, sign in again with it, watch an agent's anomaly
//! appear live, acknowledge it as operator, fail to as viewer, and find a pushed incident
//! first on the home page with its steps. Needs tests/setup/server.sh.

use sentinel::server::store::Role;
use sentinel_e2e::dash;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        here.join("node_modules/playwright-core").is_dir(),
        "playwright-core missing: run tests/setup/server.sh"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "chromium missing: run tests/setup/server.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let h = dash::start(dir.path()).await;
    dash::add_user(&h, "alice", Role::Admin, "alice-password-1").await;
    dash::add_user(&h, "olga", Role::Operator, "olga-password-1").await;
    dash::add_user(&h, "vera", Role::Viewer, "vera-password-1").await;
    let agent = dash::add_user(&h, "agent", Role::Operator, "agent-password-1").await;
    // One ingest key per host the page test pushes for (keys are bound to one host).
    let keys = serde_json::json!({
        "<b>web-7</b>": dash::ingest_key(&h, agent, "<b>web-7</b>").await,
        "db-1": dash::ingest_key(&h, agent, "db-1").await,
    });
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = tokio::process::Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(&here)
        .env("BASE", h.url())
        .env("SHOTS", &shots)
        .env("ADMIN_USER", "alice")
        .env("ADMIN_PASS", "alice-password-1")
        .env("OPERATOR_USER", "olga")
        .env("OPERATOR_PASS", "olga-password-1")
        .env("VIEWER_USER", "vera")
        .env("VIEWER_PASS", "vera-password-1")
        .env("INGEST_KEYS", keys.to_string())
        .output()
        .await
        .expect("node runs");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    println!("screenshots in {}", shots.display());
    assert!(out.status.success(), "browser test failed");
    // The server's own record agrees with what the browser saw.
    let audit = h.store().list_audit(&Default::default()).await.unwrap();
    for action in ["2fa_enabled", "login", "acknowledge", "logout"] {
        assert!(
            audit.iter().any(|e| e.action == action),
            "audit has {action}"
        );
    }
    h.shutdown().await;
}
