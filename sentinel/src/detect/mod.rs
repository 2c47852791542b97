//! Detections, factors, scoring and levels.

pub mod model;
