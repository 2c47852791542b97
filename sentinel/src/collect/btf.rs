//! Kernel structure offsets from BTF (/sys/kernel/btf/vmlinux). Rust BPF programs get no CO-RE
//! relocations, so the loader resolves the few fields the probes read and passes them in as a
//! load-time global.

use std::path::Path;

use btf_rs::{Btf, BtfType, Type};
use sentinel_common::{Offsets, RegsLayout};

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "{VMLINUX} is missing: this kernel was built without CONFIG_DEBUG_INFO_BTF, which Sentinel \
         needs (kernel >= 5.8 with BTF)"
    )]
    Missing,
    #[error("cannot parse kernel BTF: {0}")]
    Parse(String),
    #[error("kernel BTF has no struct {0}")]
    NoStruct(&'static str),
}

/// Parses the kernel's BTF (once per load: it is several megabytes).
pub fn load(path: &Path) -> Result<Btf, BtfError> {
    if !path.exists() {
        return Err(BtfError::Missing);
    }
    Btf::from_file(path).map_err(|e| BtfError::Parse(e.to_string()))
}

/// Resolves every offset in `Offsets`. A field BTF does not have is left 0 ("unknown"), and
/// its name is returned so the caller can say which header fields will be unset.
pub fn resolve(btf: &Btf) -> Result<(Offsets, Vec<&'static str>), BtfError> {
    let mut missing = Vec::new();
    let mut get = |st: &'static str, field: &'static str| -> Result<u32, BtfError> {
        match member_offset(btf, st, field)? {
            Some(o) => Ok(o),
            None => {
                missing.push(field);
                Ok(0)
            }
        }
    };
    let o = Offsets {
        task_real_parent: get("task_struct", "real_parent")?,
        task_tgid: get("task_struct", "tgid")?,
        task_pid: get("task_struct", "pid")?,
        task_loginuid: get("task_struct", "loginuid")?,
        task_sessionid: get("task_struct", "sessionid")?,
        task_cred: get("task_struct", "cred")?,
        task_exit_code: get("task_struct", "exit_code")?,
        cred_euid: get("cred", "euid")?,
        task_self_exec_id: get("task_struct", "self_exec_id")?,
        _pad: 0,
    };
    Ok((o, missing))
}

/// The saved argument registers of a syscall, when this architecture keeps them intact until
/// the syscall returns. x86_64 passes arguments in di, si, dx, r10, r8, r9 and overwrites only
/// ax with the result; other architectures (arm64 overwrites x0) use the enter-hook stash.
pub fn resolve_regs(btf: &Btf) -> Result<Option<RegsLayout>, BtfError> {
    if !cfg!(target_arch = "x86_64") {
        return Ok(None);
    }
    let mut layout = RegsLayout::default();
    for (i, reg) in ["di", "si", "dx", "r10", "r8", "r9"].iter().enumerate() {
        match member_offset(btf, "pt_regs", reg)?.and_then(|o| u16::try_from(o).ok()) {
            Some(o) if o > 0 => layout.arg_off[i] = o,
            _ => return Ok(None),
        }
    }
    // The kernel program reads the 64 bytes from r10 to di in one go and picks the arguments
    // at fixed places in them: only this layout qualifies.
    Ok((layout.arg_off == X86_64_ARGS).then_some(layout))
}

/// x86_64's `struct pt_regs` (r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di ..., 8 bytes
/// each): where di, si, dx, r10, r8 and r9 are.
pub const X86_64_ARGS: [u16; 6] = [112, 104, 96, 56, 72, 64];

/// Byte offset of `field` in `struct st`, looking through anonymous structs and unions.
fn member_offset(btf: &Btf, st: &'static str, field: &str) -> Result<Option<u32>, BtfError> {
    let types = btf
        .resolve_types_by_name(st)
        .map_err(|_| BtfError::NoStruct(st))?;
    for t in types {
        if let Type::Struct(s) = t
            && let Some(bits) = find(btf, &s, field, 0)
        {
            return Ok(Some(bits / 8));
        }
    }
    Ok(None)
}

fn find(btf: &Btf, s: &btf_rs::Struct, field: &str, base_bits: u32) -> Option<u32> {
    for m in &s.members {
        let name = btf.resolve_name(m).unwrap_or_default();
        let bits = base_bits + m.bit_offset();
        if name == field {
            return Some(bits);
        }
        if name.is_empty()
            && let Ok(Type::Struct(inner) | Type::Union(inner)) =
                btf.resolve_chained_type(m as &dyn BtfType)
            && let Some(found) = find(btf, &inner, field, bits)
        {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_kernel_has_every_offset() {
        let (o, missing) = resolve(&load(Path::new(VMLINUX)).expect("kernel BTF")).unwrap();
        assert!(missing.is_empty(), "missing: {missing:?}");
        assert!(o.task_tgid > 0 && o.task_pid > 0 && o.task_real_parent > 0);
        // tgid follows pid in task_struct (both pid_t).
        assert_eq!(o.task_tgid, o.task_pid + 4);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn this_kernel_saves_the_syscall_argument_registers() {
        let r = resolve_regs(&load(Path::new(VMLINUX)).expect("kernel BTF"))
            .unwrap()
            .expect("x86_64 pt_regs");
        assert_eq!(r.arg_off, X86_64_ARGS);
    }

    #[test]
    fn missing_btf_is_a_clear_error() {
        let Err(e) = load(Path::new("/nonexistent/vmlinux")) else {
            panic!("no error for a missing BTF file");
        };
        assert!(e.to_string().contains("CONFIG_DEBUG_INFO_BTF"));
    }
}
