//! Loading and attaching the kernel programs, draining the ring buffer, decoding records and
//! counting what was lost. The only room that touches aya.

use serde::{Deserialize, Serialize};

/// `[collect]` in the config file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CollectConfig {
    /// Event kinds to capture (names as in docs/events.md); empty means all.
    pub kinds: Vec<String>,
    /// Open events whose path starts with one of these are dropped in the kernel.
    pub ignore_prefixes: Vec<String>,
    /// Ring buffer size in bytes (a power of two, at least one page).
    pub ring_buffer_bytes: u32,
    /// How often user space drains the ring buffer, in milliseconds.
    pub drain_interval_ms: u64,
    /// Capacity of the channel from the collector to the next stage.
    pub channel_capacity: usize,
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            kinds: Vec::new(),
            ignore_prefixes: Vec::new(),
            ring_buffer_bytes: 16 << 20,
            drain_interval_ms: 10,
            channel_capacity: 65536,
        }
    }
}

impl CollectConfig {
    pub fn validate(&self) -> Result<(), String> {
        for k in &self.kinds {
            if sentinel_common::Kind::from_name(k).is_none() {
                return Err(format!("collect.kinds: unknown event kind {k:?}"));
            }
        }
        if !self.ring_buffer_bytes.is_power_of_two() || self.ring_buffer_bytes < 4096 {
            return Err(format!(
                "collect.ring_buffer_bytes must be a power of two >= 4096, got {}",
                self.ring_buffer_bytes
            ));
        }
        if self.ignore_prefixes.len() > sentinel_common::MAX_IGNORE_PREFIXES as usize {
            return Err(format!(
                "collect.ignore_prefixes: at most {} entries",
                sentinel_common::MAX_IGNORE_PREFIXES
            ));
        }
        if let Some(p) = self
            .ignore_prefixes
            .iter()
            .find(|p| p.is_empty() || p.len() > sentinel_common::PREFIX_LEN)
        {
            return Err(format!("collect.ignore_prefixes: {p:?} must be 1-64 bytes"));
        }
        if self.drain_interval_ms == 0 || self.channel_capacity == 0 {
            return Err(
                "collect.drain_interval_ms and collect.channel_capacity must be > 0".into(),
            );
        }
        Ok(())
    }
}
