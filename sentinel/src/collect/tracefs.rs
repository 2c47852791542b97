//! Making sure tracefs is mounted: tracepoints are attached through it, and a fresh machine
//! may not have it.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted and mounting it at {path} failed: {source}. Mount it by hand \
         (mount -t tracefs nodev {path}) or run Sentinel as root with CAP_SYS_ADMIN"
    )]
    Mount {
        path: &'static str,
        source: std::io::Error,
    },
}

const TRACEFS: &str = "/sys/kernel/tracing";
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// True when a tracefs is reachable where aya looks for it.
pub fn mounted() -> bool {
    [TRACEFS, DEBUGFS_TRACING]
        .iter()
        .any(|p| Path::new(p).join("events").is_dir())
}

/// Whether the kernel has the syscall tracepoint `syscalls/<name>` (a syscall the kernel was
/// built without, like init_module without CONFIG_MODULES, has none).
pub fn has_syscall_tracepoint(name: &str) -> bool {
    [TRACEFS, DEBUGFS_TRACING]
        .iter()
        .any(|p| Path::new(p).join("events/syscalls").join(name).is_dir())
}

/// Mounts tracefs at /sys/kernel/tracing when no tracefs is reachable. Returns whether it
/// mounted one.
pub fn ensure() -> Result<bool, TracefsError> {
    if mounted() {
        return Ok(false);
    }
    let src = c"nodev";
    let target = c"/sys/kernel/tracing";
    let fstype = c"tracefs";
    // SAFETY: valid NUL-terminated strings; no data argument.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(TracefsError::Mount {
            path: TRACEFS,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(true)
}
