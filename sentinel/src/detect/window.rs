//! Window roll-over: at the end of each window, the rate check per principal, then its
//! fingerprints are learned into the baselines, or rejected when the window scored high
//! (poisoning protection).

use super::engine::{Engine, Hit, evidence_of, fnv};
use crate::event::Event;
use crate::model::{Anomaly, Factor};
use crate::profile::baseline::{KIND_EXE, KIND_LINEAGE, KIND_PRINCIPAL};
use crate::profile::{Calibration, Fingerprint, Window};

impl Engine {
    /// Closes the current window: rate checks, then learn or reject per principal.
    pub(super) fn roll(&mut self, now_ns: i64) -> Vec<Anomaly> {
        let Some(w) = self.window.take() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let rule = self.cfg.calibration();
        let mut uids: Vec<u32> = w.principals.keys().copied().collect();
        uids.sort_unstable();
        for uid in uids {
            let Some(pw) = w.principals.get(&uid) else {
                continue;
            };
            let mut max = pw.max_score;
            if let Some(a) = self.rate_spike(uid, &pw.all, &pw.sample, w.start_ns) {
                max = max.max(a.score);
                out.push(a);
            }
            let result = if self.learn_all || max < self.cfg.learn_below_score {
                let mut items: Vec<(&'static str, String, &Fingerprint)> =
                    vec![(KIND_PRINCIPAL, uid.to_string(), &pw.all)];
                for (l, f) in &pw.lineages {
                    items.push((KIND_LINEAGE, format!("{uid}|{l}"), f));
                }
                for (e, f) in &pw.exes {
                    items.push((KIND_EXE, e.clone(), f));
                }
                self.stats.windows_learned += 1;
                self.baselines.learn(&items, w.start_ns, w.end_ns(), &rule)
            } else {
                tracing::info!(
                    "window of uid {uid} scored {max}: not learned (poisoning protection)"
                );
                self.stats.windows_rejected += 1;
                self.baselines.reject(uid, w.end_ns())
            };
            if let Err(e) = result {
                tracing::warn!("cannot save baseline of uid {uid}: {e}");
            }
        }
        self.reload_feedback();
        self.fired.clear();
        self.mass.clear();
        self.losses = Default::default();
        // Discovery queues of users quiet for longer than the burst window say nothing.
        let span = self.cfg.discovery_window_secs as i64 * 1_000_000_000;
        self.discovery
            .retain(|_, q| q.back().is_some_and(|(t, _, _)| *t >= now_ns - span));
        self.procs.prune_dead(now_ns);
        self.stats.anomalies += out.len() as u64;
        self.window = Some(Window::containing(now_ns, self.cfg.window_ns()));
        out
    }

    fn rate_spike(
        &mut self,
        uid: u32,
        fp: &Fingerprint,
        sample: &[Event],
        start_ns: i64,
    ) -> Option<Anomaly> {
        let p = self.baselines.principal(uid)?;
        if p.state != Calibration::Calibrated || p.rate.n < 12 {
            return None;
        }
        let (mean, sd, span) = (p.rate.mean, p.rate.stddev(), p.span_words());
        let n = fp.events as f64;
        if n <= mean + self.cfg.rate_spike_sigmas * sd || n <= 2.0 * mean + 50.0 {
            return None;
        }
        let factor = Factor {
            detection: "rate_spike".into(),
            reason: format!(
                "{} events in one window: usual for this user is {mean:.0} ± {sd:.0} over {span} of baseline",
                fp.events,
            ),
            weight: self.cfg.weights.rate_spike,
            // The window's first events stand for all of them.
            evidence: sample.iter().map(|e| e.id.to_string()).collect(),
        };
        let mut hits = vec![Hit {
            factor,
            extra: Vec::new(),
        }];
        self.apply_exceptions(None, uid, &mut hits);
        let factor = hits.pop()?.factor;
        let (score, level) = Anomaly::score_of(std::slice::from_ref(&factor));
        self.counter += 1;
        Some(Anomaly {
            id: format!("{}-{}-{}", self.host, start_ns / 1_000_000, self.counter),
            host: self.host.clone(),
            time_ns: start_ns,
            principal: self.principal(uid, None),
            chain: Vec::new(),
            score,
            level,
            factors: vec![factor],
            evidence: sample.iter().map(evidence_of).collect(),
            fingerprint: fnv(&["rate_spike", &uid.to_string()]),
            explanation: None,
        })
    }
}
