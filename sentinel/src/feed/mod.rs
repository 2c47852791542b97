//! Where anomalies go after detection: the push client to a Sentinel server (push.rs).

pub mod push;
