//! Detections, factors, scoring and levels: the engine that turns events (with the process
//! table and learned baselines) into explainable anomalies, and the `learn` and `baseline`
//! commands that manage what was learned.

pub mod cli;
pub mod config;
pub mod engine;
mod evidence;
pub mod exceptions;
mod files;
pub mod model;
mod provenance;
mod repeats;
mod rules;

pub use config::{DetectConfig, Weights};
pub use engine::{DetectError, Engine, EngineOptions, ExceptionCount, Stats};
pub use evidence::summary;

#[cfg(test)]
mod precision_tests;
#[cfg(test)]
mod tests;
