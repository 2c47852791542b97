//! The engine as the pipeline's analysis stage, with live audit records as its side records.

use super::engine::Engine;
use crate::audit::LiveFact;
use crate::event::Event;
use crate::model::Anomaly;
use crate::pipeline::{Analyzer, SideRecord};

impl SideRecord for LiveFact {
    fn time_ns(&self) -> i64 {
        self.time_ns
    }
}

impl Analyzer for Engine {
    type Side = LiveFact;

    fn observe(&mut self, ev: &Event) -> Vec<Anomaly> {
        Engine::observe(self, ev)
    }

    fn place(&mut self, ev: &mut Event) {
        Engine::place(self, ev)
    }

    fn tick(&mut self, now_ns: i64) -> Vec<Anomaly> {
        Engine::tick(self, now_ns)
    }

    fn finish(&mut self) -> Vec<Anomaly> {
        Engine::finish(self)
    }

    fn blind(&mut self, lost: u64, now_ns: i64) -> Vec<Anomaly> {
        Engine::blind(self, lost, now_ns)
    }

    fn observe_side(&mut self, fact: &LiveFact) -> Vec<Anomaly> {
        Engine::observe_audit(self, fact)
    }
}
