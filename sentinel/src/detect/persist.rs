//! Persistence installed through a tool whose own writes the file events cannot place: a
//! crontab installed with `crontab` (it writes relative to the spool directory it changed
//! into) and jobs queued with `at` / `batch`.

use super::behaviour::{Cmd, shorten};
use super::engine::{Engine, Hit};
use super::rules::hit;
use crate::event::Event;

impl Engine {
    pub(super) fn persist_exec(
        &mut self,
        ev: &Event,
        principal: u32,
        cmd: &Cmd,
        hits: &mut Vec<Hit>,
    ) {
        if ev.auid.is_none() || self.under_package_manager(ev.pid) {
            return;
        }
        let what = match cmd.name.as_str() {
            // crontab FILE, crontab - (stdin), crontab -e: a new table; -l lists, -r removes.
            "crontab"
                if !cmd.args.iter().any(|a| a == "-l" || a == "-r" || a == "-i")
                    && (cmd.operands().next().is_some() || cmd.has("-") || cmd.has("-e")) =>
            {
                "installed a crontab"
            }
            "at" | "batch"
                if !cmd
                    .args
                    .iter()
                    .any(|a| a == "-l" || a == "-d" || a == "-r" || a == "-c") =>
            {
                "queued a job with at"
            }
            _ => return,
        };
        // Judged against the baseline: a principal that installed its crontab (or queued
        // at jobs) this way while learning does so by habit.
        let known = self.usable_profile(principal).is_some()
            && self.lineage_knows_behaviour(principal, ev.pid, "persistence");
        self.note_behaviour(ev, principal, "persistence");
        if !known
            && self.first_time(
                principal,
                "persistence",
                &format!("{}:{}", ev.pid, cmd.name),
            )
        {
            hits.push(hit(
                "persistence",
                format!(
                    "{what} ({}): code that runs again later",
                    shorten(&cmd.line(), 100)
                ),
                self.cfg.weights.persistence,
                ev,
            ));
        }
    }
}
