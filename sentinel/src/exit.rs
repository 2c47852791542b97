//! Exit codes shared by every command (C-Sentinel compatible for snapshots): a leaf, so that
//! commands in any room can return them without reaching up to the command line.

pub const OK: i32 = 0;
pub const WARNINGS: i32 = 1;
pub const CRITICAL: i32 = 2;
pub const ERROR: i32 = 3;
