//! Behavioural profiles: fingerprints of what each principal, lineage and executable does
//! in rolling windows, the learned baselines they feed, and the data files (categories)
//! that name what matters.

pub mod baseline;
pub mod categories;
mod commands;
pub mod fingerprint;

pub use baseline::{Baselines, Calibration, CalibrationRule, Profile};
pub use categories::Categories;
pub use fingerprint::{Fact, Fingerprint, PrincipalWindow, Window};
