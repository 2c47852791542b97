//! Sentinel's agent, CLI and server as a library, so that end-to-end tests and benchmarks
//! drive the same code the binary runs. The flow, left to right:
//! collect -> (proc) enrich -> profile -> detect -> feed / explain / server.

pub mod agent;
pub mod analyze;
pub mod audit;
pub mod cli;
pub mod collect;
pub mod config;
pub mod config_cmd;
pub mod detect;
pub mod edge;
pub mod enroll_cmd;
pub mod event;
pub mod exit;
pub mod explain;
pub mod feed;
pub mod feedback_cmd;
pub mod health;
pub mod incident;
pub mod learn;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod proc;
pub mod profile;
pub mod reload;
pub mod server;
pub mod signals;
pub mod snapshot;
pub mod snapshot_cmd;
pub mod status_cmd;
pub mod store;
pub mod syscalls;
pub mod timefmt;
