//! The collector's part of the agent's health: hooks, events per kind, kernel losses, channel
//! drops and ring buffer fill, read from the live counters and the kernel's loss map.

use std::sync::Arc;

use aya::maps::{MapData, PerCpuArray};
use sentinel_common::Kind;

use super::{ArgsSource, AttachReport, Stats};
use crate::health::{AgentHealth, HealthPart, HookFailure};

/// Owns its own handle on the kernel's loss map: it outlives nothing and stops nothing.
pub struct CollectHealth {
    pub(super) stats: Arc<Stats>,
    pub(super) lost: PerCpuArray<MapData, u64>,
    pub(super) report: AttachReport,
    pub(super) ring_bytes: u64,
}

impl HealthPart for CollectHealth {
    fn fill(&self, h: &mut AgentHealth) {
        let r = &self.report;
        h.hooks.attached = r.attached.clone();
        h.hooks.failed = r
            .failed
            .iter()
            .map(|(hook, reason)| HookFailure {
                hook: hook.clone(),
                reason: reason.clone(),
            })
            .collect();
        h.hooks.unavailable = r.unavailable.clone();
        h.hooks.missing_fields = r.missing_fields.iter().map(|s| s.to_string()).collect();
        h.hooks.syscall_args = match r.syscall_args {
            ArgsSource::Registers => "registers",
            ArgsSource::Stash => "stash",
        }
        .into();
        let s = self.stats.snapshot();
        let owned = |m: &super::KindCounts| m.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        h.events.per_kind = owned(&s.received);
        h.events.channel_dropped = owned(&s.channel_dropped);
        h.events.decode_errors = s.decode_errors;
        let read =
            |slot: u32| -> u64 { self.lost.get(&slot, 0).map(|v| v.iter().sum()).unwrap_or(0) };
        h.events.kernel_lost = Kind::ALL
            .iter()
            .map(|k| (k.name().to_string(), read(*k as u32)))
            .filter(|(_, n)| *n > 0)
            .collect();
        h.events.unpaired_exits = read(sentinel_common::MAX_KINDS - 1);
        h.events.ring_buffer_bytes = self.ring_bytes;
        if self.ring_bytes > 0 {
            let share = |n: u64| (n as f64 / self.ring_bytes as f64).min(1.0);
            h.events.ring_buffer_fill = share(
                self.stats
                    .ring_last_bytes
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
            h.events.ring_buffer_peak_fill = share(
                self.stats
                    .ring_peak_bytes
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
        }
    }
}
