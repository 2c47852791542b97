//! Reconfiguring a running engine (`sentinel run` on SIGHUP): weights, thresholds, categories
//! and exceptions change at once; the process table, the baselines, provenance and the open
//! window stay. Settings that size structures built at start keep their value until the next
//! start, and are named so the operator knows.

use super::config::DetectConfig;
use super::engine::{DetectError, Engine};
use crate::profile::Categories;

impl Engine {
    /// Applies `cfg` (already validated); on error nothing changed. Returns the settings that
    /// differ but only take effect at the next start.
    pub fn reconfigure(&mut self, cfg: &DetectConfig) -> Result<Vec<&'static str>, DetectError> {
        let cats = match &cfg.categories_file {
            Some(p) => Categories::load(p)?,
            None => Categories::defaults(),
        };
        let exceptions =
            super::exceptions::Exceptions::new(&cfg.exceptions).map_err(DetectError::Config)?;
        let mut next = cfg.clone();
        let mut at_restart = Vec::new();
        let old = &self.cfg;
        macro_rules! keep {
            ($($field:ident),*) => {$(
                if next.$field != old.$field {
                    at_restart.push(stringify!($field));
                    next.$field = old.$field.clone();
                }
            )*};
        }
        // The window in progress, the exited-process cache, the provenance LRU and the brute
        // force counters were built with these.
        keep!(
            window_secs,
            exited_process_cap,
            provenance_cap,
            brute_force_threshold,
            brute_force_window_secs
        );
        self.cats = std::sync::Arc::new(cats);
        self.exceptions = exceptions;
        self.cfg = next;
        // Verdicts given with `sentinel feedback` since the start count from now on too.
        self.reload_feedback();
        Ok(at_restart)
    }
}

#[cfg(test)]
mod tests {
    use super::super::replay::replay;
    use super::super::tests::{config, engine_with, events, factor, learned};
    use super::*;

    #[test]
    fn a_new_weight_scores_the_next_anomaly_and_the_process_table_stays() {
        let mut e = engine_with(&config(), learned(), false);
        let evs = events("credential_access");
        // The fixture reads /etc/shadow in its last two events.
        let (head, tail) = evs.split_at(evs.len() - 2);
        let first = replay(&mut e, head);
        assert!(
            !first
                .iter()
                .flat_map(|a| &a.factors)
                .any(|f| f.detection == "credential_access"),
            "{first:#?}"
        );
        let known = e.processes().live_count();
        assert!(known > 0);
        let mut cfg = DetectConfig::default();
        cfg.weights.credential_access = 7;
        cfg.window_secs = 60;
        let later = e.reconfigure(&cfg).unwrap();
        assert_eq!(later, ["window_secs"], "kept until the next start");
        assert_eq!(e.cfg.window_secs, DetectConfig::default().window_secs);
        assert_eq!(e.processes().live_count(), known, "the process table stays");
        // A bad categories file changes nothing.
        let mut bad = cfg.clone();
        bad.categories_file = Some("/nonexistent/sentinel-categories.toml".into());
        bad.weights.credential_access = 9;
        assert!(e.reconfigure(&bad).is_err());
        assert_eq!(e.cfg.weights.credential_access, 7);
        let a = replay(&mut e, tail);
        assert_eq!(factor(&a, "credential_access").1.weight, 7, "{a:#?}");
    }
}
