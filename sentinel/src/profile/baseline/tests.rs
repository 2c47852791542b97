//! Baselines: calibration transitions, rates, and the store round trip.

use super::*;
use crate::profile::fingerprint::Fact;

const MIN: i64 = 60_000_000_000;

fn rule() -> CalibrationRule {
    CalibrationRule {
        calibrating_after_windows: 2,
        calibrated_after_windows: 4,
        calibrated_min_span_ns: 30 * MIN,
    }
}

fn fp(events: u64, bin: &str) -> Fingerprint {
    let mut f = Fingerprint::default();
    for _ in 0..events {
        f.add(Fact::Event { hour: 9 });
    }
    f.add(Fact::Binary(bin));
    f
}

#[test]
fn calibration_moves_through_its_states_by_windows_and_span() {
    let mut p = Profile::new(0);
    let r = rule();
    let w = 5 * MIN;
    p.learn(&fp(10, "/bin/ls"), 0, w, &r);
    assert_eq!(p.state, Calibration::Learning);
    p.learn(&fp(10, "/bin/ls"), w, 2 * w, &r);
    assert_eq!(p.state, Calibration::Calibrating);
    p.learn(&fp(10, "/bin/ls"), 2 * w, 3 * w, &r);
    p.learn(&fp(10, "/bin/ls"), 3 * w, 4 * w, &r);
    // Four windows, but only 20 minutes of span: not yet calibrated.
    assert_eq!(p.state, Calibration::Calibrating);
    p.learn(&fp(10, "/bin/ls"), 7 * w, 8 * w, &r);
    assert_eq!(p.state, Calibration::Calibrated);
    assert_eq!(p.span_words(), "40 minutes");
    assert_eq!(p.binaries["/bin/ls"].windows, 5);
    assert_eq!(p.binaries["/bin/ls"].count, 5);
    assert_eq!(p.hours[9], 5);
    assert!(p.hour_usual(10, 1) && !p.hour_usual(11, 1));
}

#[test]
fn vouching_calibrates_at_once() {
    let mut p = Profile::new(0);
    p.learn(&fp(1, "/bin/ls"), 0, MIN, &rule());
    assert_eq!(p.state, Calibration::Learning);
    p.vouched = true;
    p.recalibrate(&rule());
    assert_eq!(p.state, Calibration::Calibrated);
}

#[test]
fn event_rate_mean_and_spread() {
    let mut r = Rate::default();
    for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
        r.add(x);
    }
    assert!((r.mean - 5.0).abs() < 1e-9);
    assert!((r.stddev() - 2.138).abs() < 1e-3);
}

#[test]
fn store_round_trip_survives_reopen() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("b.db");
    let f = fp(3, "/usr/bin/vim");
    {
        let mut b = Baselines::load(Store::open(&path).unwrap()).unwrap();
        b.learn(
            &[
                (KIND_PRINCIPAL, "1000".into(), &f),
                (KIND_EXE, "/usr/bin/vim".into(), &f),
            ],
            0,
            5 * MIN,
            &rule(),
        )
        .unwrap();
        b.reject(1000, 6 * MIN).unwrap();
    }
    let b = Baselines::load(Store::open(&path).unwrap()).unwrap();
    assert_eq!(b.len(), 2);
    let p = b.principal(1000).unwrap();
    assert_eq!(p.windows, 1);
    assert_eq!(p.rejected_windows, 1);
    assert_eq!(p.binaries["/usr/bin/vim"].count, 1);
    assert_eq!(p.rate.mean, 3.0);
    assert!(b.exe("/usr/bin/vim").is_some());
}

#[test]
fn corrupt_records_are_skipped_not_fatal() {
    let s = Store::memory().unwrap();
    s.put_baseline(KIND_PRINCIPAL, "7", &serde_json::json!({"nonsense": true}))
        .unwrap();
    let b = Baselines::load(s).unwrap();
    assert!(b.is_empty());
}
