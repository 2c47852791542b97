//! Detections, factors, scoring and levels: the engine that turns events (with the process
//! table and learned baselines) into explainable anomalies, and the `learn` and `baseline`
//! commands that manage what was learned.

mod analyzer;
mod audit_join;
mod behaviour;
mod blind;
mod bursts;
pub mod config;
pub mod engine;
mod escape;
mod evidence;
pub mod exceptions;
pub mod feedback;
mod files;
mod habits;
mod health;
mod kinds;
mod persist;
mod privs;
mod provenance;
mod recon;
mod reload;
mod repeats;
pub mod replay;
mod rules;
mod tamper;
mod window;

/// The finding types live in a leaf module (`crate::model`) that every room may use; this
/// path stays for code written against it.
pub use crate::model;
pub use config::{DetectConfig, Weights};
pub use engine::{DetectError, Engine, EngineOptions, ExceptionCount, Stats};
pub use evidence::summary;
pub use health::EngineHealth;

#[cfg(test)]
mod baseline_tests;
#[cfg(test)]
mod precision_tests;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sessions;
#[cfg(test)]
mod tests_window;

#[cfg(test)]
mod behaviour_tests;
#[cfg(test)]
mod escape_tests;
#[cfg(test)]
mod kinds_tests;
#[cfg(test)]
mod variants_tests;
