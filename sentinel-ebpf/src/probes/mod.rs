//! Entry points, one file per hook family.

mod exec;
mod sched;
mod syscall;
