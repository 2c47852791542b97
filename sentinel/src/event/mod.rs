//! Owned, decoded kernel events: the `Event` type every stage right of `collect` works with,
//! its JSON form (docs/events.md, through serde), and the decoder from raw ring-buffer records.

mod decode;
pub mod handoff;
mod kinds;
mod payload;
mod raw;

pub use decode::{DecodeError, decode};
pub use payload::*;
pub use raw::RawStr;

use std::borrow::Cow;

use sentinel_common::Kind;
use serde::{Deserialize, Serialize};

/// One decoded kernel event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number assigned by the collector; anomalies cite events by it.
    pub id: u64,
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub time_ns: i64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    /// Login uid; absent when the process never went through a login.
    pub auid: Option<u32>,
    pub session: Option<u32>,
    pub cgroup_id: u64,
    pub comm: RawStr,
    /// Syscall name (absent for fork/exit).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub syscall: Option<Cow<'static, str>>,
    /// Syscall result: >= 0 success, < 0 is -errno.
    pub ret: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub errno: Option<Cow<'static, str>>,
    /// Some string was cut at its capture limit.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub truncated: bool,
    /// On a repeat report only: the number of opens it stands for, each identical (same
    /// process image, path, flags and outcome) to the first, which was sent as its own record
    /// and whose fields this one copies. Counted in the kernel instead of sent one by one.
    /// 0 (absent) on every other record.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub repeats: u64,
    /// The kernel counts the repeats of this open from now on (not part of the record).
    #[serde(skip)]
    pub repeat_head: bool,
    #[serde(flatten)]
    pub payload: Payload,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Event {
    pub fn kind(&self) -> Kind {
        self.payload.kind()
    }

    pub fn ok(&self) -> bool {
        self.ret >= 0
    }

    /// The acting principal: the login uid when set, else the uid.
    pub fn principal_uid(&self) -> u32 {
        self.auid.unwrap_or(self.uid)
    }
}

/// Converts CLOCK_MONOTONIC kernel timestamps to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    offset_ns: i64,
}

impl Clock {
    pub fn new() -> Clock {
        let mono = now(libc::CLOCK_MONOTONIC);
        let real = now(libc::CLOCK_REALTIME);
        Clock {
            offset_ns: real - mono,
        }
    }

    /// A clock that maps kernel time straight through (tests).
    pub fn identity() -> Clock {
        Clock { offset_ns: 0 }
    }

    pub fn wall_ns(&self, ktime_ns: u64) -> i64 {
        self.offset_ns.saturating_add(ktime_ns as i64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

fn now(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; the clocks used always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_kinds;
#[cfg(test)]
mod tests_proc_net;
