//! The habit and network detections: discovery bursts judged against the user's baseline,
//! connections (reverse shells, first-ever destinations), ptrace into other processes, and
//! activity outside the learned hours.

use super::engine::{Engine, Hit};
use super::rules::{destination, hit, multi_hit};
use crate::event::Event;
use crate::proc::Process;
use crate::profile::categories::lists_program;

impl Engine {
    pub(super) fn on_discovery(
        &mut self,
        ev: &Event,
        principal: u32,
        entry: String,
        hits: &mut Vec<Hit>,
    ) {
        // Judged against the baseline: a discovery command this principal (or this lineage)
        // already ran while learning is routine and does not count toward a burst. Without
        // a usable baseline every discovery command counts.
        let known = self
            .usable_profile(principal)
            .is_some_and(|p| p.discovery.contains_key(&entry))
            || self
                .lineage_profile(principal, ev.pid)
                .is_some_and(|p| p.discovery.contains_key(&entry));
        if known {
            return;
        }
        let baseline = self.usable_profile(principal).map(|p| p.span_words());
        let span = self.cfg.discovery_window_secs as i64 * 1_000_000_000;
        // Counted across the user's sessions (one person, several shells), reported once per
        // login session: each session that takes part in the burst is a story of its own.
        let session = ev.session;
        let q = self.discovery.entry(principal).or_default();
        q.push_back((ev.time_ns, entry, ev.clone()));
        while q.front().is_some_and(|(t, _, _)| *t < ev.time_ns - span) || q.len() > 64 {
            q.pop_front();
        }
        let mut distinct: Vec<&str> = Vec::new();
        for (_, e, _) in q.iter() {
            if !distinct.contains(&e.as_str()) {
                distinct.push(e);
            }
        }
        if distinct.len() < self.cfg.discovery_threshold as usize {
            return;
        }
        let list = distinct.join(", ");
        let n = distinct.len();
        let extra: Vec<Event> = q.iter().map(|(_, _, e)| e.clone()).collect();
        let key = session.map(|s| s.to_string()).unwrap_or_default();
        if !self.first_time(principal, "discovery_burst", &key) {
            return;
        }
        let novel = match baseline {
            Some(b) => format!(" (none of them run by this user in {b} of baseline)"),
            None => String::new(),
        };
        hits.push(multi_hit(
            "discovery_burst",
            format!(
                "ran {n} discovery commands within {} s: {list}{novel}",
                self.cfg.discovery_window_secs
            ),
            self.cfg.weights.discovery_burst,
            extra,
        ));
    }

    pub(super) fn on_connect(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        hits: &mut Vec<Hit>,
    ) {
        let Some((dest, local)) = destination(ev) else {
            return;
        };
        if lists_program(&self.cats.lists.shells, &p.exe, &p.comm)
            && self.first_time(principal, "reverse_shell", &format!("connect:{}", ev.pid))
        {
            hits.push(hit(
                "reverse_shell",
                format!(
                    "shell {} connected to {dest} itself (reverse shell)",
                    p.exe_or_comm()
                ),
                self.cfg.weights.reverse_shell,
                ev,
            ));
        }
        if local {
            return;
        }
        let novel = self
            .usable_profile(principal)
            .filter(|prof| !prof.destinations.contains_key(&dest))
            .map(|prof| {
                (
                    prof.span_words(),
                    Engine::novelty_weight(self.cfg.weights.new_destination, prof),
                )
            });
        if let Some((span, weight)) = novel
            && self.first_time(principal, "new_destination", &dest)
        {
            hits.push(hit(
                "new_destination",
                format!(
                    "connected to {dest} with {}: a destination never seen for this user in {span} of baseline",
                    p.exe_or_comm()
                ),
                weight,
                ev,
            ));
        }
    }

    pub(super) fn on_ptrace(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        request: &str,
        target: i32,
        hits: &mut Vec<Hit>,
    ) {
        const INTRUSIVE: [&str; 6] = [
            "PTRACE_ATTACH",
            "PTRACE_SEIZE",
            "PTRACE_POKETEXT",
            "PTRACE_POKEDATA",
            "PTRACE_POKEUSER",
            "PTRACE_SETREGS",
        ];
        if !INTRUSIVE.contains(&request) || target <= 0 || target as u32 == ev.pid {
            return;
        }
        let known_debugger = self.exempt(&self.cats.lists.debuggers, p)
            && self
                .usable_profile(principal)
                .is_some_and(|prof| prof.binaries.contains_key(&*p.exe));
        if known_debugger || !self.first_time(principal, "ptrace", &format!("{}:{target}", ev.pid))
        {
            return;
        }
        let t = self.procs.get(target as u32);
        let tdesc = t
            .map(|t| format!("{} (pid {target}, uid {})", t.exe_or_comm(), t.uid))
            .unwrap_or_else(|| format!("pid {target}"));
        hits.push(hit(
            "ptrace",
            format!("{} used {request} on {tdesc}", p.exe_or_comm()),
            self.cfg.weights.ptrace,
            ev,
        ));
    }

    pub(super) fn off_hours(&mut self, ev: &Event, principal: u32, hits: &mut Vec<Hit>) {
        let hour = crate::timefmt::local_hour(ev.time_ns);
        let slack = self.cfg.off_hours_slack;
        let Some(prof) = self
            .baselines
            .principal(principal)
            .filter(|p| p.state == crate::profile::Calibration::Calibrated)
        else {
            return;
        };
        if prof.hour_usual(hour, slack) {
            return;
        }
        let r = format!(
            "active at {hour:02}:00 local time: this user was never active between {:02}:00 and {:02}:59 in {} of baseline",
            (hour as i32 - slack as i32).rem_euclid(24),
            (hour as i32 + slack as i32).rem_euclid(24),
            prof.span_words()
        );
        if self.first_time(principal, "off_hours", &hour.to_string()) {
            hits.push(hit("off_hours", r, self.cfg.weights.off_hours, ev));
        }
    }
}
