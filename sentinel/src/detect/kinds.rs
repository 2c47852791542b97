//! The behaviour detections fed by dedicated kernel events: the exec environment (history off,
//! preloaded libraries), explicit file times, capability xattrs, links and truncation of
//! history and logs, cross-process memory calls, module loads, thread renames, raw sockets and
//! user namespaces made by ordinary users.

use super::behaviour::{SYSTEM_DIRS, base, under};
use super::engine::{Engine, Hit};
use super::rules::hit;
use super::tamper::foreign_library;
use crate::event::{Event, FileTime, ModuleOp, Payload, RawStr};
use crate::proc::Process;

/// Programs that copy or unpack files and keep their original times as their job.
const TIME_KEEPERS: [&str; 30] = [
    "tar",
    "bsdtar",
    "cp",
    "rsync",
    "scp",
    "sftp-server",
    "mv",
    "install",
    "unzip",
    "7z",
    "7za",
    "7zz",
    "cpio",
    "pax",
    "ar",
    "dpkg",
    "rpm",
    "git",
    "cargo",
    "rustc",
    "pip",
    "pip3",
    "gzip",
    "gunzip",
    "bzip2",
    "xz",
    "zstd",
    "wget",
    "curl",
    "npm",
];

/// Programs that open raw sockets for their own protocol (ICMP, DHCP, ARP), not to listen in.
const RAW_SOCKET_TOOLS: [&str; 12] = [
    "ping",
    "ping4",
    "ping6",
    "arping",
    "traceroute",
    "traceroute6",
    "tracepath",
    "mtr",
    "mtr-packet",
    "dhclient",
    "dhcpcd",
    "clockdiff",
];

impl Engine {
    pub(super) fn kernel_kinds(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        hits: &mut Vec<Hit>,
    ) {
        match &ev.payload {
            Payload::Exec { env, .. } if ev.ok() && !env.is_empty() => {
                self.exec_env(ev, principal, p, env, hits)
            }
            Payload::Utime {
                path,
                dirfd,
                atime,
                mtime,
                ..
            } if ev.ok() => {
                let explicit = |t: &FileTime| matches!(t, FileTime::At { .. });
                if explicit(atime) || explicit(mtime) {
                    self.utime(ev, principal, p, path, *dirfd, hits);
                }
            }
            Payload::Xattr {
                path,
                fd,
                name,
                remove: false,
                caps,
                caps_effective,
                ..
            } if ev.ok() && name.as_bytes() == b"security.capability" => {
                if self.under_package_manager(ev.pid)
                    || !self.first_time(principal, "file_capability", &ev.pid.to_string())
                {
                    return;
                }
                let file = self.file_of(ev.pid, path, *fd);
                let list = if caps.is_empty() {
                    "(none named)".to_string()
                } else {
                    caps.join(",")
                };
                hits.push(hit(
                    "file_capability",
                    format!(
                        "granted capabilities {list}{} to {file} with {}: the program gets root powers without set-uid",
                        if *caps_effective { " (effective at exec)" } else { "" },
                        p.exe_or_comm()
                    ),
                    self.cfg.weights.file_capability,
                    ev,
                ));
            }
            Payload::Link {
                target,
                link,
                symbolic: true,
            } if ev.ok() && target.as_bytes() == b"/dev/null" => {
                let l = self.path_of(ev.pid, &link.lossy());
                if super::tamper::is_history_file(&l)
                    && self.first_time(principal, "history_tampering", &ev.pid.to_string())
                {
                    hits.push(hit(
                        "history_tampering",
                        format!(
                            "replaced the history file {l} with a link to /dev/null ({}): nothing typed is kept",
                            p.exe_or_comm()
                        ),
                        self.cfg.weights.history_tampering,
                        ev,
                    ));
                }
            }
            Payload::Truncate { path, fd, .. } if ev.ok() => {
                let file = self.file_of(ev.pid, path, *fd);
                self.truncated(ev, principal, p, &file, hits);
            }
            Payload::ProcessVm { target_pid, write }
                if ev.ok() && *target_pid > 0 && *target_pid as u32 != ev.pid =>
            {
                let how = if *write {
                    "wrote into the memory of (process_vm_writev)"
                } else {
                    "read the memory of (process_vm_readv)"
                };
                self.memory_hit(ev, principal, p, *target_pid as u32, how, hits);
            }
            Payload::Module {
                op, name, fd_path, ..
            } => self.module(ev, principal, p, *op, name, fd_path.as_ref(), hits),
            Payload::Prctl { name, .. } if ev.ok() => {
                let n = name.lossy().into_owned();
                self.renamed_comm(ev, principal, p, &n, hits);
            }
            Payload::Socket {
                family_name,
                type_name,
                protocol_name,
                ..
            } if ev.ok() => self.raw_socket(
                ev,
                principal,
                p,
                family_name,
                type_name,
                protocol_name,
                hits,
            ),
            Payload::Unshare { namespaces, .. }
                if ev.ok() && namespaces.iter().any(|n| n == "user") =>
            {
                self.user_namespace(ev, principal, p, namespaces, hits)
            }
            _ => {}
        }
    }

    /// An ordinary user making itself root in a new user namespace (`unshare -r`), where
    /// mounts and capabilities open kernel attack surface: how many local exploits begin.
    /// Sandboxes and rootless containers do it as their job.
    fn user_namespace(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        namespaces: &[String],
        hits: &mut Vec<Hit>,
    ) {
        const SANDBOXES: [&str; 16] = [
            "chrome",
            "chromium",
            "firefox",
            "firefox-esr",
            "bwrap",
            "flatpak",
            "podman",
            "buildah",
            "crun",
            "runc",
            "rootlesskit",
            "slirp4netns",
            "steam",
            "code",
            "electron",
            "snap",
        ];
        let known = self
            .usable_profile(principal)
            .is_some_and(|prof| prof.binaries.contains_key(&*p.exe));
        if ev.uid == 0
            || ev.auid.is_none()
            || known
            || SANDBOXES.iter().any(|s| p.name().starts_with(s))
            || !self.first_time(
                principal,
                "privilege_escalation",
                &format!("userns:{}", ev.pid),
            )
        {
            return;
        }
        hits.push(hit(
            "privilege_escalation",
            format!(
                "{} made itself root in new namespaces ({}): the kernel surface many local exploits start from",
                p.exe_or_comm(),
                namespaces.join(", ")
            ),
            self.cfg.weights.privilege_escalation / 2,
            ev,
        ));
    }

    /// A path for an fd-based call: the path given, else what /proc says the fd is.
    fn file_of(&self, pid: u32, path: &RawStr, fd: Option<i32>) -> String {
        if !path.is_empty() {
            return self.path_of(pid, &path.lossy());
        }
        let live = fd
            .filter(|_| self.live)
            .and_then(|fd| std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok())
            .map(|l| l.to_string_lossy().into_owned());
        live.unwrap_or_else(|| match fd {
            Some(fd) => format!("(fd {fd})"),
            None => "(unknown file)".into(),
        })
    }

    fn exec_env(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        env: &[(RawStr, RawStr)],
        hits: &mut Vec<Hit>,
    ) {
        for (k, v) in env {
            let (k, v) = (k.lossy(), v.lossy());
            let history = match k.as_ref() {
                "HISTFILE" if v.is_empty() || v == "/dev/null" => Some(true),
                "HISTSIZE" | "HISTFILESIZE" if v.trim() == "0" => Some(true),
                // A pattern that ignores every command line keeps nothing (`*`, `*:...`).
                "HISTIGNORE" if v.split(':').any(|p| p.trim() == "*") => Some(true),
                // Commands typed with a leading space are not kept: weaker, half weight.
                "HISTCONTROL" if v.contains("ignorespace") || v.contains("ignoreboth") => {
                    Some(false)
                }
                _ => None,
            };
            if let Some(strong) = history {
                let det = "history_tampering";
                let key = format!("env:{k}={v}");
                if self.known_behaviour(principal, "", &key) {
                    continue;
                }
                self.note_behaviour(ev, principal, &key);
                if self.first_time(principal, det, &key) {
                    let w = self.cfg.weights.history_tampering;
                    hits.push(hit(
                        det,
                        format!(
                            "disabled shell history: {k}={v} in the environment of {}",
                            p.exe_or_comm()
                        ),
                        if strong { w } else { w / 2 },
                        ev,
                    ));
                }
            }
            if (k == "LD_PRELOAD" || k == "LD_AUDIT")
                && let Some(lib) = foreign_library(&v)
            {
                let what = format!("{k}={lib}");
                let line = p.argv.join(" ");
                self.preload_hit(ev, principal, &what, &line, hits);
            }
        }
    }

    fn utime(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        path: &RawStr,
        dirfd: Option<i32>,
        hits: &mut Vec<Hit>,
    ) {
        // Copiers and archivers keep times as their job, and account tools keep them on the
        // backups of the account files they write; only installed copies count (a /tmp/tar is
        // no time keeper).
        let keeper = (TIME_KEEPERS.contains(&p.name()) && under(&p.exe, &SYSTEM_DIRS))
            || self.exempt(&self.cats.lists.account_tools, p);
        if ev.auid.is_none() || keeper || self.under_package_manager(ev.pid) {
            return;
        }
        let mut file = self.file_of(ev.pid, path, if path.is_empty() { dirfd } else { None });
        // futimens on an fd the process has closed since: touch names its files.
        if file.starts_with('(')
            && let Some(op) = p.argv.iter().skip(1).rev().find(|a| !a.starts_with('-'))
        {
            file = self.path_of(ev.pid, op);
        }
        let sensitive = under(&file, &SYSTEM_DIRS) || under(&file, &["/etc/", "/boot/", "/var/"]);
        // Elsewhere only a hand-made change counts (touch, a script), not a build tool's.
        let by_hand = p.name() == "touch" || super::behaviour::is_interpreter(p.name());
        if !sensitive && !by_hand {
            return;
        }
        let how = format!("utimensat by {}", p.exe_or_comm());
        self.timestomp_hit(ev, principal, p, &[file], &how, hits);
    }

    fn truncated(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        file: &str,
        hits: &mut Vec<Hit>,
    ) {
        if super::tamper::is_history_file(file) {
            self.tamper_file(
                ev,
                principal,
                p,
                file,
                super::behaviour::FileOp::Truncate,
                hits,
            );
            return;
        }
        let lists = &self.cats.lists;
        if self.cats.categorize(file, principal, &self.users) == Some("logs")
            && !self.exempt(&lists.log_maintainers, p)
            && !self.under_package_manager(ev.pid)
            && self.first_time(principal, "log_tampering", &format!("{}:{file}", ev.pid))
        {
            hits.push(hit(
                "log_tampering",
                format!("truncated {file} with {} (truncate)", p.exe_or_comm()),
                self.cfg.weights.log_tampering,
                ev,
            ));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn module(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        op: ModuleOp,
        name: &RawStr,
        fd_path: Option<&RawStr>,
        hits: &mut Vec<Hit>,
    ) {
        // Boot and hot-plug loads (udev, systemd-modules-load) are not in a login session.
        if ev.auid.is_none() || self.under_package_manager(ev.pid) {
            return;
        }
        if !self.first_time(principal, "kernel_module", &ev.pid.to_string()) {
            return;
        }
        let what = match (op, fd_path) {
            (ModuleOp::Load, Some(f)) => format!("loaded the kernel module {f}"),
            (ModuleOp::Load, None) => "loaded a kernel module from memory (init_module)".into(),
            (ModuleOp::Unload, _) => format!("unloaded the kernel module {name}"),
        };
        let result = if ev.ok() {
            String::new()
        } else {
            format!(
                " (refused: {})",
                ev.errno
                    .as_deref()
                    .map_or_else(|| ev.ret.to_string(), str::to_string)
            )
        };
        hits.push(hit(
            "kernel_module",
            format!(
                "{what} with {} from a login session{result}: code running inside the kernel",
                p.exe_or_comm()
            ),
            self.cfg.weights.kernel_module,
            ev,
        ));
    }

    #[allow(clippy::too_many_arguments)]
    fn raw_socket(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        family: &str,
        kind: &str,
        protocol: &str,
        hits: &mut Vec<Hit>,
    ) {
        let icmp = protocol.contains("ICMP");
        let capture = family == "AF_PACKET" || (kind == "SOCK_RAW" && !icmp);
        if !capture || ev.auid.is_none() || RAW_SOCKET_TOOLS.contains(&base(&p.exe)) {
            return;
        }
        let known = self
            .usable_profile(principal)
            .is_some_and(|prof| prof.binaries.contains_key(&*p.exe));
        if known || !self.first_time(principal, "packet_capture", &ev.pid.to_string()) {
            return;
        }
        hits.push(hit(
            "packet_capture",
            format!(
                "{} opened a raw packet socket ({family}, {kind}, {protocol}): it can read the traffic on the wire",
                p.exe_or_comm()
            ),
            self.cfg.weights.packet_capture,
            ev,
        ));
    }
}
