//! Blind spots: when the kernel loses events (ring buffer full) or the agent drops them
//! (pipeline behind), the host gets a `blind_spot` anomaly saying how much was lost and when,
//! naming the busiest principal of the window (a flood is how an attacker hides), and every
//! other anomaly of that window carries a zero-weight `blind_spot` factor: lower confidence,
//! with the loss count.

use super::engine::{Engine, fnv};
use crate::model::{Anomaly, Factor, Principal};

/// The principal of host-wide findings: no login uid.
pub const HOST_PRINCIPAL: u32 = u32::MAX;

/// Losses seen in the current window.
#[derive(Default)]
pub(super) struct Losses {
    pub lost: u64,
    pub since_ns: Option<i64>,
}

impl Engine {
    /// Losses reported by the collector since the last call (about once a second).
    pub fn blind(&mut self, lost: u64, now_ns: i64) -> Vec<Anomaly> {
        if lost == 0 {
            return Vec::new();
        }
        self.losses.lost += lost;
        let since = *self.losses.since_ns.get_or_insert(now_ns);
        if !self.first_time(HOST_PRINCIPAL, "blind_spot", "") {
            return Vec::new();
        }
        let busiest = self.window.as_ref().and_then(|w| {
            w.principals
                .iter()
                .max_by_key(|(uid, p)| (p.all.events, std::cmp::Reverse(**uid)))
                .map(|(uid, p)| (*uid, p.all.events))
        });
        let who = busiest
            .map(|(uid, n)| {
                format!(
                    "; the busiest user in this window is {} with {n} events",
                    self.users.display(uid)
                )
            })
            .unwrap_or_default();
        let factor = Factor {
            detection: "blind_spot".into(),
            reason: format!(
                "the agent lost {} events (kernel ring buffer full or analysis behind) since {}: activity in this time may be unseen, as when an attacker floods the host to hide{who}",
                self.losses.lost,
                crate::timefmt::local_clock(since),
            ),
            weight: self.cfg.weights.blind_spot,
            evidence: Vec::new(),
        };
        let factors = vec![factor];
        let (score, level) = Anomaly::score_of(&factors);
        vec![Anomaly {
            id: self.next_id(now_ns),
            host: self.host.clone(),
            time_ns: since,
            principal: Principal {
                uid: HOST_PRINCIPAL,
                user: None,
                session: None,
            },
            chain: Vec::new(),
            score,
            level,
            fingerprint: fnv(&["blind_spot", &self.host]),
            factors,
            evidence: Vec::new(),
            explanation: None,
        }]
    }

    /// The zero-weight factor that marks a finding made while events were being lost.
    pub(super) fn reduced_confidence(&self) -> Option<Factor> {
        (self.losses.lost > 0).then(|| Factor {
            detection: "blind_spot".into(),
            reason: format!(
                "lower confidence: the agent lost {} events in this window, so steps of this activity may be missing",
                self.losses.lost
            ),
            weight: 0,
            evidence: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn losses_raise_one_host_finding_per_window_and_mark_the_others() {
        let mut e = crate::detect::testing::engine("root:x:0:0::/root:/bin/bash\n");
        let t = 1_781_780_400_000_000_000i64;
        assert!(e.blind(0, t).is_empty(), "nothing lost, nothing said");
        assert!(e.reduced_confidence().is_none());
        let a = e.blind(1234, t);
        assert_eq!(a.len(), 1);
        let f = &a[0].factors[0];
        assert_eq!(f.detection, "blind_spot");
        assert!(
            f.reason.starts_with("the agent lost 1234 events"),
            "{}",
            f.reason
        );
        assert!(a[0].level >= crate::model::Level::Medium);
        assert!(e.blind(10, t + 1).is_empty(), "once per window");
        let c = e.reduced_confidence().expect("marked");
        assert_eq!(c.weight, 0);
        assert!(c.reason.contains("lost 1244 events"), "{}", c.reason);
    }
}
