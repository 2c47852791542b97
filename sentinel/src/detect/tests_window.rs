//! Windows and learning, played from recorded streams: what is learned, when a window rolls
//! over, how novelty waits for calibration, and what survives a restart.

use super::replay::replay;
use super::tests::{config, engine_with, events, factor, learned};
use crate::event::Event;
use crate::profile::Calibration;
use crate::store::Store;

#[test]
fn a_high_scoring_window_is_never_learned() {
    let mut e = engine_with(&config(), learned(), false);
    let before = e.baselines().principal(1000).unwrap().windows;
    let a = replay(&mut e, &events("exec_tmp"));
    assert!(a.iter().any(|x| x.score >= 50));
    let p = e.baselines().principal(1000).unwrap();
    assert_eq!(p.windows, before, "poisoned window learned");
    assert_eq!(p.rejected_windows, 1);
    assert!(!p.binaries.contains_key("/tmp/.x/kworker"));
    // An ordinary window afterwards is learned as usual.
    replay(&mut e, &events("benign"));
    let p = e.baselines().principal(1000).unwrap();
    assert!(p.windows > before);
    assert!(
        p.binaries
            .contains_key("/home/alice/proj/target/debug/deps/proj-3f2a1b")
    );
}

#[test]
fn windows_roll_over_on_event_time_and_on_tick() {
    let mut cfg = config();
    cfg.detect.window_secs = 60;
    let mut e = engine_with(&cfg, Store::memory().unwrap(), false);
    let evs = events("benign");
    let t0 = evs[0].time_ns;
    let first_minute: Vec<&Event> = evs
        .iter()
        .filter(|x| x.time_ns < t0 + 60_000_000_000)
        .collect();
    for ev in &first_minute {
        e.observe(ev);
    }
    assert_eq!(e.stats().windows_learned, 0);
    let gauges = e.health();
    let health = || {
        let mut h = crate::health::AgentHealth::default();
        crate::health::HealthPart::fill(&*gauges, &mut h);
        h.detect.expect("the engine fills its part")
    };
    assert_eq!(
        health().baselines["principal"].learning,
        0,
        "nothing learned yet"
    );
    // Nothing for a while: the tick closes the window.
    e.tick(t0 + 10 * 60_000_000_000);
    let learned = e.stats().windows_learned;
    assert!(learned >= 1, "{:?}", e.stats());
    // The tick published the learned window and the new profile's state.
    let d = health();
    assert_eq!(d.windows_learned, learned);
    assert!(d.baselines["principal"].learning >= 1, "{d:?}");
    assert_eq!(d.baselines["principal"].calibrated, 0);
    assert!(d.processes > 0, "the replayed processes are in the table");
    assert_eq!(
        d.baselines
            .values()
            .map(|s| s.learning + s.calibrating + s.calibrated)
            .sum::<u64>(),
        e.baselines().len() as u64,
        "every profile counted once"
    );
    let p = e.baselines().principal(1000).unwrap();
    assert_eq!(p.windows, 1);
    assert_eq!(p.state, Calibration::Learning);
    // Events later in time close windows as they pass.
    for ev in evs.iter().skip(first_minute.len()) {
        e.observe(ev);
    }
    assert!(e.baselines().principal(1000).unwrap().windows > 1);
}

#[test]
fn novelty_waits_for_calibration_and_counts_half_while_calibrating() {
    let mut cfg = config();
    cfg.detect.calibrating_after_windows = 2;
    cfg.detect.calibrated_after_windows = 1000;
    // Not vouched: profiles only reach "calibrating" from the recorded days.
    let mut e = engine_with(&cfg, Store::memory().unwrap(), false);
    for ev in events("baseline") {
        e.observe(&ev);
    }
    e.finish();
    assert_eq!(
        e.baselines().principal(1000).unwrap().state,
        Calibration::Calibrating
    );
    let a = replay(&mut e, &events("new_destination"));
    let (_, f) = factor(&a, "new_destination");
    assert_eq!(f.weight, cfg.detect.weights.new_destination / 2);

    let mut fresh = engine_with(&cfg, Store::memory().unwrap(), false);
    let a = replay(&mut fresh, &events("new_destination"));
    assert!(
        a.iter()
            .all(|x| x.factors.iter().all(|f| f.detection != "new_destination"))
    );
}

#[test]
fn baselines_persist_across_a_restart() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("sentinel.db");
    {
        let mut e = engine_with(&config(), Store::open(&db).unwrap(), true);
        replay(&mut e, &events("baseline"));
        e.vouch().unwrap();
    }
    let mut e = engine_with(&config(), Store::open(&db).unwrap(), false);
    assert_eq!(
        e.baselines().principal(1000).unwrap().state,
        Calibration::Calibrated
    );
    let a = replay(&mut e, &events("new_destination"));
    factor(&a, "new_destination");
}
