//! Detections, factors, scoring and levels: the engine that turns events (with the process
//! table and learned baselines) into explainable anomalies, and the `learn` and `baseline`
//! commands that manage what was learned.

mod behaviour;
mod blind;
mod bursts;
pub mod cli;
pub mod config;
pub mod engine;
mod escape;
mod evidence;
pub mod exceptions;
mod files;
mod kinds;
pub mod model;
mod privs;
mod provenance;
mod recon;
mod repeats;
mod rules;
mod tamper;

pub use config::{DetectConfig, Weights};
pub use engine::{DetectError, Engine, EngineOptions, ExceptionCount, Stats};
pub use evidence::summary;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sessions;

#[cfg(test)]
mod behaviour_tests;
#[cfg(test)]
mod escape_tests;
#[cfg(test)]
mod kinds_tests;
