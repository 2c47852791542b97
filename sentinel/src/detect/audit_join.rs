//! Live audit records joined to what the kernel events built: the process chain of the pid
//! a record names, and the login session; records suspicious on their own become anomalies
//! with the same scoring.

use super::engine::{Engine, fnv};
use crate::model::{Anomaly, ChainLink};

impl Engine {
    /// The process chain, oldest ancestor first, of whoever held `pid` at `time_ns`, even if
    /// it has exited since: what anomalies show.
    pub(super) fn chain_links_at(&self, pid: u32, time_ns: i64) -> Vec<ChainLink> {
        Self::links(self.procs.chain_at(pid, time_ns))
    }

    fn links(chain: Vec<&crate::proc::Process>) -> Vec<ChainLink> {
        chain
            .iter()
            .map(|p| ChainLink {
                pid: p.pid,
                exe: p.exe_or_comm(),
                argv: p.argv.to_vec(),
                uid: p.uid,
            })
            .collect()
    }

    /// Joins a live audit record to what the kernel events built: the process chain of the
    /// pid the record names, and the login session. An audit record that is suspicious on its
    /// own (a failed login, a sudo, a watched file) becomes an anomaly with the same scoring;
    /// each (principal, detection, reason) fires once per window.
    pub fn observe_audit(&mut self, fact: &crate::audit::LiveFact) -> Vec<Anomaly> {
        let Some(principal) = fact.auid.or(fact.uid) else {
            return Vec::new();
        };
        let mut factors = Vec::new();
        if let Some(f) = fact.factor.clone()
            && self.first_time(principal, "audit", &f.reason)
        {
            factors.push(f);
        }
        if fact.kind == "auth_failure"
            && let Some(f) = self.audit_auth_failure(fact, principal)
        {
            factors.push(f);
        }
        if factors.is_empty() {
            return Vec::new();
        }
        let chain = fact
            .pid
            .map(|pid| self.chain_links_at(pid, fact.time_ns))
            .unwrap_or_default();
        let exe = chain.last().map(|l| l.exe.clone()).unwrap_or_default();
        let (score, level) = Anomaly::score_of(&factors);
        let uid_s = principal.to_string();
        self.counter += 1;
        vec![Anomaly {
            id: format!(
                "{}-{}-{}",
                self.host,
                fact.time_ns / 1_000_000,
                self.counter
            ),
            host: self.host.clone(),
            time_ns: fact.time_ns,
            principal: self.principal(principal, fact.session),
            chain,
            score,
            level,
            fingerprint: fnv(&[
                factors[factors.len() - 1].detection.as_str(),
                uid_s.as_str(),
                exe.as_str(),
            ]),
            factors,
            evidence: vec![fact.evidence.clone()],
            explanation: None,
        }]
    }
}
