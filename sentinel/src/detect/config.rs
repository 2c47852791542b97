//! `[detect]` in the config file: window length, calibration, thresholds and the weight of
//! every detection (docs/anomalies.md lists the detection ids).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::profile::CalibrationRule;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// Length of a fingerprint window in seconds.
    pub window_secs: u64,
    /// A TOML file replacing the built-in categories and program lists (docs/categories.md).
    pub categories_file: Option<PathBuf>,
    /// A window whose highest anomaly score reaches this is never learned.
    pub learn_below_score: u8,
    pub calibrating_after_windows: u64,
    pub calibrated_after_windows: u64,
    /// Learned windows must also span this many hours before a profile is calibrated.
    pub calibrated_min_hours: u64,
    /// Exited processes kept for the chains of their descendants.
    pub exited_process_cap: usize,
    /// Distinct files in other users' homes one process may read in a window.
    pub mass_read_threshold: u32,
    /// Distinct discovery commands within `discovery_window_secs` that make a burst.
    pub discovery_threshold: u32,
    pub discovery_window_secs: u64,
    /// Hours either side of a learned active hour that still count as usual.
    pub off_hours_slack: u8,
    /// A window's event count this many standard deviations above the mean is a spike.
    pub rate_spike_sigmas: f64,
    /// Failed authentications for one account from one source within
    /// `brute_force_window_secs` that make password guessing.
    pub brute_force_threshold: u32,
    pub brute_force_window_secs: u64,
    /// Files whose writer is remembered for the provenance of later executions (LRU).
    pub provenance_cap: usize,
    /// Discovery categories new to the principal within `recon_window_secs` that make
    /// `recon_breadth` fire.
    pub recon_categories: u32,
    pub recon_window_secs: u64,
    pub weights: Weights,
    /// Operator tuning: factors to drop (`[[detect.exceptions]]`, docs/anomalies.md).
    pub exceptions: Vec<super::exceptions::Exception>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            window_secs: 300,
            categories_file: None,
            learn_below_score: 50,
            calibrating_after_windows: 12,
            calibrated_after_windows: 288,
            calibrated_min_hours: 24,
            exited_process_cap: 8192,
            mass_read_threshold: 20,
            discovery_threshold: 4,
            discovery_window_secs: 120,
            off_hours_slack: 1,
            rate_spike_sigmas: 4.0,
            brute_force_threshold: 5,
            brute_force_window_secs: 60,
            provenance_cap: 16_384,
            recon_categories: 4,
            recon_window_secs: 600,
            weights: Weights::default(),
            exceptions: Vec::new(),
        }
    }
}

impl DetectConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.window_secs < 10 || self.window_secs > 86_400 {
            return Err(format!(
                "detect.window_secs must be 10-86400, got {}",
                self.window_secs
            ));
        }
        if self.calibrating_after_windows > self.calibrated_after_windows {
            return Err(
                "detect.calibrating_after_windows must not exceed calibrated_after_windows".into(),
            );
        }
        if self.mass_read_threshold == 0
            || self.discovery_threshold == 0
            || self.brute_force_threshold == 0
            || self.brute_force_window_secs == 0
            || self.recon_categories == 0
        {
            return Err("detect thresholds must be > 0".into());
        }
        if !(self.rate_spike_sigmas.is_finite() && self.rate_spike_sigmas > 0.0) {
            return Err("detect.rate_spike_sigmas must be > 0".into());
        }
        if self.learn_below_score == 0 {
            return Err("detect.learn_below_score must be > 0 (nothing would be learned)".into());
        }
        if self.provenance_cap == 0 || self.provenance_cap > 10_000_000 {
            return Err(format!(
                "detect.provenance_cap must be 1-10000000, got {}",
                self.provenance_cap
            ));
        }
        super::exceptions::validate(&self.exceptions)?;
        Ok(())
    }

    pub fn window_ns(&self) -> i64 {
        self.window_secs as i64 * 1_000_000_000
    }

    pub fn calibration(&self) -> CalibrationRule {
        CalibrationRule {
            calibrating_after_windows: self.calibrating_after_windows,
            calibrated_after_windows: self.calibrated_after_windows,
            calibrated_min_span_ns: self.calibrated_min_hours as i64 * 3_600_000_000_000,
        }
    }
}

/// Points each detection adds to an anomaly's score (0-100 after summing).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    pub credential_access: u8,
    pub exec_from_writable: u8,
    pub exec_from_memfd: u8,
    pub reverse_shell: u8,
    pub service_shell: u8,
    pub new_destination: u8,
    pub privilege_escalation: u8,
    pub unusual_switch_user: u8,
    pub ptrace: u8,
    pub mass_read: u8,
    pub persistence: u8,
    pub log_tampering: u8,
    pub account_change: u8,
    pub discovery_burst: u8,
    pub bpf_load: u8,
    pub kernel_module: u8,
    pub off_hours: u8,
    /// Context only: added to another detection's anomaly when the program is new.
    pub new_binary: u8,
    pub rate_spike: u8,
    pub brute_force: u8,
    pub blind_spot: u8,
    // Behaviour families (detect/tamper.rs, privs.rs, escape.rs, recon.rs).
    pub history_tampering: u8,
    pub timestomp: u8,
    pub setuid_bit: u8,
    pub file_capability: u8,
    pub loader_hijack: u8,
    pub auth_config: u8,
    pub watcher_silenced: u8,
    pub unusual_child: u8,
    pub decode_and_run: u8,
    pub process_memory_access: u8,
    pub packet_capture: u8,
    pub masquerade: u8,
    pub recon_breadth: u8,
    pub staging: u8,
    pub targeted_discovery: u8,
    pub downloaded_exec: u8,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            credential_access: 45,
            exec_from_writable: 40,
            exec_from_memfd: 55,
            reverse_shell: 70,
            service_shell: 55,
            new_destination: 20,
            privilege_escalation: 60,
            unusual_switch_user: 25,
            ptrace: 40,
            mass_read: 45,
            persistence: 40,
            log_tampering: 50,
            account_change: 45,
            discovery_burst: 35,
            bpf_load: 45,
            kernel_module: 45,
            off_hours: 20,
            new_binary: 10,
            rate_spike: 15,
            brute_force: 45,
            blind_spot: 30,
            history_tampering: 45,
            timestomp: 30,
            setuid_bit: 45,
            file_capability: 45,
            loader_hijack: 50,
            auth_config: 40,
            watcher_silenced: 55,
            unusual_child: 40,
            decode_and_run: 50,
            process_memory_access: 45,
            packet_capture: 30,
            masquerade: 35,
            recon_breadth: 35,
            staging: 35,
            targeted_discovery: 30,
            downloaded_exec: 40,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::parse_detect as parse;

    #[test]
    fn weights_and_thresholds_from_toml() {
        let c =
            parse("[detect]\nwindow_secs = 60\n[detect.weights]\nreverse_shell = 90\n").unwrap();
        assert_eq!(c.window_secs, 60);
        assert_eq!(c.weights.reverse_shell, 90);
        assert_eq!(c.weights.ptrace, 40, "unset weights keep their default");
    }

    #[test]
    fn bad_detect_sections_are_rejected() {
        let e = parse("[detect.weights]\nbogus = 1\n").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = parse("[detect]\nwindow_secs = 1\n").unwrap_err();
        assert!(e.contains("window_secs"), "{e}");
        let e = parse("[detect]\ncalibrating_after_windows = 10\ncalibrated_after_windows = 5\n")
            .unwrap_err();
        assert!(e.contains("calibrating_after_windows"), "{e}");
        let e = parse("[detect.weights]\nptrace = 300\n").unwrap_err();
        assert!(e.contains("ptrace") || e.contains("300"), "{e}");
    }
}
