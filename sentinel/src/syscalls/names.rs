//! Small name tables that make events readable: errno, ptrace requests, bpf commands,
//! namespace flags, capabilities, socket families, types and protocols.

/// The errno's symbolic name (`E<number>` for the rare ones).
pub fn errno_name(errno: i64) -> std::borrow::Cow<'static, str> {
    let n = match errno as i32 {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ETXTBSY => "ETXTBSY",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::EALREADY => "EALREADY",
        libc::EISCONN => "EISCONN",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENODATA => "ENODATA",
        libc::ENODEV => "ENODEV",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        _ => return format!("E{errno}").into(),
    };
    n.into()
}

pub fn ptrace_request_name(req: i64) -> &'static str {
    match req {
        0 => "PTRACE_TRACEME",
        1 => "PTRACE_PEEKTEXT",
        2 => "PTRACE_PEEKDATA",
        3 => "PTRACE_PEEKUSER",
        4 => "PTRACE_POKETEXT",
        5 => "PTRACE_POKEDATA",
        6 => "PTRACE_POKEUSER",
        7 => "PTRACE_CONT",
        8 => "PTRACE_KILL",
        9 => "PTRACE_SINGLESTEP",
        12 => "PTRACE_GETREGS",
        13 => "PTRACE_SETREGS",
        16 => "PTRACE_ATTACH",
        17 => "PTRACE_DETACH",
        24 => "PTRACE_SYSCALL",
        0x4200 => "PTRACE_SETOPTIONS",
        0x4206 => "PTRACE_SEIZE",
        0x4207 => "PTRACE_INTERRUPT",
        _ => "PTRACE_OTHER",
    }
}

pub fn bpf_cmd_name(cmd: u32) -> &'static str {
    const NAMES: [&str; 37] = [
        "BPF_MAP_CREATE",
        "BPF_MAP_LOOKUP_ELEM",
        "BPF_MAP_UPDATE_ELEM",
        "BPF_MAP_DELETE_ELEM",
        "BPF_MAP_GET_NEXT_KEY",
        "BPF_PROG_LOAD",
        "BPF_OBJ_PIN",
        "BPF_OBJ_GET",
        "BPF_PROG_ATTACH",
        "BPF_PROG_DETACH",
        "BPF_PROG_TEST_RUN",
        "BPF_PROG_GET_NEXT_ID",
        "BPF_MAP_GET_NEXT_ID",
        "BPF_PROG_GET_FD_BY_ID",
        "BPF_MAP_GET_FD_BY_ID",
        "BPF_OBJ_GET_INFO_BY_FD",
        "BPF_PROG_QUERY",
        "BPF_RAW_TRACEPOINT_OPEN",
        "BPF_BTF_LOAD",
        "BPF_BTF_GET_FD_BY_ID",
        "BPF_TASK_FD_QUERY",
        "BPF_MAP_LOOKUP_AND_DELETE_ELEM",
        "BPF_MAP_FREEZE",
        "BPF_BTF_GET_NEXT_ID",
        "BPF_MAP_LOOKUP_BATCH",
        "BPF_MAP_LOOKUP_AND_DELETE_BATCH",
        "BPF_MAP_UPDATE_BATCH",
        "BPF_MAP_DELETE_BATCH",
        "BPF_LINK_CREATE",
        "BPF_LINK_UPDATE",
        "BPF_LINK_GET_FD_BY_ID",
        "BPF_LINK_GET_NEXT_ID",
        "BPF_ENABLE_STATS",
        "BPF_ITER_CREATE",
        "BPF_LINK_DETACH",
        "BPF_PROG_BIND_MAP",
        "BPF_TOKEN_CREATE",
    ];
    NAMES.get(cmd as usize).copied().unwrap_or("BPF_UNKNOWN")
}

/// Names of the CLONE_NEW* bits set in `flags`.
pub fn namespaces(flags: u64) -> Vec<String> {
    const NS: [(u64, &str); 8] = [
        (libc::CLONE_NEWNS as u64, "mnt"),
        (libc::CLONE_NEWUTS as u64, "uts"),
        (libc::CLONE_NEWIPC as u64, "ipc"),
        (libc::CLONE_NEWUSER as u64, "user"),
        (libc::CLONE_NEWPID as u64, "pid"),
        (libc::CLONE_NEWNET as u64, "net"),
        (libc::CLONE_NEWCGROUP as u64, "cgroup"),
        (0x80, "time"),
    ];
    NS.iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// Capability names, indexed by number (linux/capability.h), as getcap and capsh print them.
const CAPS: [&str; 41] = [
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
];

/// Names of the capabilities set in a 64-bit mask (`cap_N` for numbers this table lacks).
pub fn capability_names(mask: u64) -> Vec<String> {
    (0..64u32)
        .filter(|b| mask & (1u64 << b) != 0)
        .map(|b| match CAPS.get(b as usize) {
            Some(n) => n.to_string(),
            None => format!("cap_{b}"),
        })
        .collect()
}

pub fn socket_family_name(family: i32) -> String {
    let n = match family {
        libc::AF_UNIX => "AF_UNIX",
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        libc::AF_NETLINK => "AF_NETLINK",
        libc::AF_PACKET => "AF_PACKET",
        libc::AF_BLUETOOTH => "AF_BLUETOOTH",
        libc::AF_CAN => "AF_CAN",
        libc::AF_VSOCK => "AF_VSOCK",
        libc::AF_XDP => "AF_XDP",
        libc::AF_ALG => "AF_ALG",
        _ => return format!("AF_{family}"),
    };
    n.to_string()
}

/// The type without its SOCK_NONBLOCK / SOCK_CLOEXEC bits.
pub fn socket_type_name(sock_type: i32) -> String {
    let n = match sock_type & 0xf {
        libc::SOCK_STREAM => "SOCK_STREAM",
        libc::SOCK_DGRAM => "SOCK_DGRAM",
        libc::SOCK_RAW => "SOCK_RAW",
        libc::SOCK_RDM => "SOCK_RDM",
        libc::SOCK_SEQPACKET => "SOCK_SEQPACKET",
        // SOCK_PACKET (obsolete packet sockets; libc marks the constant deprecated).
        10 => "SOCK_PACKET",
        t => return format!("SOCK_{t}"),
    };
    n.to_string()
}

/// The protocol argument of socket(): an IP protocol for inet families, an ethertype in
/// network byte order for AF_PACKET.
pub fn socket_protocol_name(family: i32, protocol: i32) -> String {
    if family == libc::AF_PACKET {
        let eth = u16::from_be(protocol as u16) as i32;
        let n = match eth {
            0 => "none",
            libc::ETH_P_ALL => "ETH_P_ALL",
            libc::ETH_P_IP => "ETH_P_IP",
            libc::ETH_P_IPV6 => "ETH_P_IPV6",
            libc::ETH_P_ARP => "ETH_P_ARP",
            _ => return format!("ETH_P_{eth:#06x}"),
        };
        return n.to_string();
    }
    if family != libc::AF_INET && family != libc::AF_INET6 {
        return protocol.to_string();
    }
    let n = match protocol {
        0 => "default",
        libc::IPPROTO_ICMP => "IPPROTO_ICMP",
        libc::IPPROTO_TCP => "IPPROTO_TCP",
        libc::IPPROTO_UDP => "IPPROTO_UDP",
        libc::IPPROTO_ICMPV6 => "IPPROTO_ICMPV6",
        libc::IPPROTO_RAW => "IPPROTO_RAW",
        libc::IPPROTO_SCTP => "IPPROTO_SCTP",
        libc::IPPROTO_GRE => "IPPROTO_GRE",
        _ => return format!("IPPROTO_{protocol}"),
    };
    n.to_string()
}

/// The module name a kernel module file would load as: its base name without `.ko` and a
/// compression suffix, dashes as underscores (as the kernel and modprobe spell it).
pub fn module_name_from_path(path: &str) -> Option<String> {
    let base = path.rsplit('/').next()?;
    let stem = [".ko.zst", ".ko.xz", ".ko.gz", ".ko"]
        .iter()
        .find_map(|s| base.strip_suffix(s))?;
    (!stem.is_empty()).then(|| stem.replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_and_socket_names() {
        assert_eq!(
            capability_names((1 << 7) | (1 << 13) | (1 << 21)),
            ["cap_setuid", "cap_net_raw", "cap_sys_admin"]
        );
        assert_eq!(capability_names(1 << 40), ["cap_checkpoint_restore"]);
        assert_eq!(capability_names(1 << 63), ["cap_63"]);
        assert!(capability_names(0).is_empty());
        assert_eq!(socket_family_name(17), "AF_PACKET");
        assert_eq!(socket_family_name(99), "AF_99");
        assert_eq!(socket_type_name(3 | libc::SOCK_CLOEXEC), "SOCK_RAW");
        assert_eq!(socket_protocol_name(17, 0x0300), "ETH_P_ALL");
        assert_eq!(socket_protocol_name(2, 1), "IPPROTO_ICMP");
        assert_eq!(socket_protocol_name(2, 200), "IPPROTO_200");
        assert_eq!(
            module_name_from_path("/lib/modules/6.18/kernel/net/dummy-x.ko.zst").as_deref(),
            Some("dummy_x")
        );
        assert_eq!(module_name_from_path("/tmp/notamodule"), None);
        assert_eq!(module_name_from_path("/tmp/.ko"), None);
    }
}
