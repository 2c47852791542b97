//! The audit baseline: exponential moving averages of hourly rates (so windows of any length
//! compare), updated only by an explicit `--learn`, never silently by every run, so an ongoing
//! attack does not teach itself in. Stored in `store::Store` as kind "audit".

use serde::{Deserialize, Serialize};

use super::summary::AuditSummary;

pub const STORE_KIND: &str = "audit";
pub const STORE_KEY: &str = "summary";
const ALPHA: f64 = 0.2;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditBaseline {
    pub version: u32,
    pub samples: u32,
    pub auth_failures_per_hour: f64,
    pub sudo_per_hour: f64,
    pub su_per_hour: f64,
    pub tmp_exec_per_hour: f64,
    pub watched_hits_per_hour: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BaselineAnomaly {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub description: String,
    /// Per hour in this window.
    pub current: f64,
    pub baseline_avg: f64,
    pub deviation_pct: f64,
}

fn rates(s: &AuditSummary, hours: f64) -> [f64; 5] {
    let watched: u64 = s.file_integrity.watched.iter().map(|w| w.count).sum();
    [
        s.authentication.failures as f64 / hours,
        s.privilege_escalation.sudo_count as f64 / hours,
        s.privilege_escalation.su_count as f64 / hours,
        (s.process_activity.tmp_executions + s.process_activity.devshm_executions) as f64 / hours,
        watched as f64 / hours,
    ]
}

impl AuditBaseline {
    /// Folds one summary (over `hours`) into the averages.
    pub fn learn(&mut self, s: &AuditSummary, hours: f64) {
        let r = rates(s, hours.max(1.0 / 3600.0));
        let fields = [
            &mut self.auth_failures_per_hour,
            &mut self.sudo_per_hour,
            &mut self.su_per_hour,
            &mut self.tmp_exec_per_hour,
            &mut self.watched_hits_per_hour,
        ];
        for (f, v) in fields.into_iter().zip(r) {
            *f = if self.samples == 0 {
                v
            } else {
                ALPHA * v + (1.0 - ALPHA) * *f
            };
        }
        self.version = 1;
        self.samples = self.samples.saturating_add(1);
    }
}

/// Percent above the average; 100% when the average is ~0 and something happened.
pub fn deviation_pct(current: f64, avg: f64) -> f64 {
    if avg < 0.1 {
        if current > 0.0 { 100.0 } else { 0.0 }
    } else {
        ((current - avg) / avg * 100.0 * 10.0).round() / 10.0
    }
}

#[derive(Default)]
pub struct Deviations {
    /// (baseline average per hour, deviation %)
    pub auth: Option<(f64, f64)>,
    pub sudo: Option<(f64, f64)>,
    pub su: Option<(f64, f64)>,
    pub anomalies: Vec<BaselineAnomaly>,
}

impl Deviations {
    pub fn compute(
        s: &AuditSummary,
        b: Option<&AuditBaseline>,
        hours: f64,
        min_samples: u32,
    ) -> Deviations {
        let Some(b) = b.filter(|b| b.samples > 0) else {
            return Deviations::default();
        };
        let r = rates(s, hours);
        let pair = |cur: f64, avg: f64| (round2(avg), deviation_pct(cur, avg));
        let mut d = Deviations {
            auth: Some(pair(r[0], b.auth_failures_per_hour)),
            sudo: Some(pair(r[1], b.sudo_per_hour)),
            su: Some(pair(r[2], b.su_per_hour)),
            anomalies: Vec::new(),
        };
        if b.samples < min_samples {
            return d;
        }
        // (kind, what, current, avg, threshold %): above the threshold is an anomaly.
        let checks = [
            (
                "auth_failure_spike",
                "authentication failures",
                r[0],
                b.auth_failures_per_hour,
                100.0,
            ),
            ("sudo_spike", "sudo commands", r[1], b.sudo_per_hour, 100.0),
            ("su_spike", "su sessions", r[2], b.su_per_hour, 100.0),
            (
                "tmp_exec_spike",
                "executions from /tmp or /dev/shm",
                r[3],
                b.tmp_exec_per_hour,
                50.0,
            ),
            (
                "watched_access_spike",
                "watched-file accesses",
                r[4],
                b.watched_hits_per_hour,
                100.0,
            ),
        ];
        for (kind, what, cur, avg, limit) in checks {
            let dev = deviation_pct(cur, avg);
            // The first event after a quiet baseline is exactly 100%: it counts (C-Sentinel's
            // strict ">" missed it).
            if cur > 0.0 && dev >= limit {
                d.anomalies.push(BaselineAnomaly {
                    kind,
                    description: format!(
                        "{what}: {:.2}/h against a baseline of {:.2}/h ({dev:+.0}%)",
                        cur, avg
                    ),
                    current: round2(cur),
                    baseline_avg: round2(avg),
                    deviation_pct: dev,
                });
            }
        }
        d
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_and_deviation() {
        let mut b = AuditBaseline::default();
        let mut s = AuditSummary::default();
        s.privilege_escalation.sudo_count = 2;
        b.learn(&s, 1.0);
        assert_eq!(b.sudo_per_hour, 2.0);
        s.privilege_escalation.sudo_count = 7;
        b.learn(&s, 1.0);
        assert!((b.sudo_per_hour - 3.0).abs() < 1e-9);
        assert_eq!(b.samples, 2);
        assert_eq!(deviation_pct(9.0, 3.0), 200.0);
        assert_eq!(deviation_pct(1.0, 0.0), 100.0);
        assert_eq!(deviation_pct(0.0, 0.0), 0.0);
    }

    #[test]
    fn anomalies_need_enough_samples() {
        let mut b = AuditBaseline::default();
        let quiet = AuditSummary::default();
        b.learn(&quiet, 1.0);
        let mut busy = AuditSummary::default();
        busy.privilege_escalation.sudo_count = 5;
        let d = Deviations::compute(&busy, Some(&b), 1.0, 3);
        assert_eq!(d.sudo, Some((0.0, 100.0)));
        assert!(d.anomalies.is_empty(), "one sample is not enough");
        b.learn(&quiet, 1.0);
        b.learn(&quiet, 1.0);
        let d = Deviations::compute(&busy, Some(&b), 1.0, 3);
        assert_eq!(d.anomalies.len(), 1);
        assert_eq!(d.anomalies[0].kind, "sudo_spike");
    }
}
