//! Privilege and access behaviours: set-uid/set-gid bits added (`setuid_bit`), file
//! capabilities granted (`file_capability`), another process's memory read
//! (`process_memory_access`) and network traffic captured (`packet_capture`).

use super::behaviour::{Cmd, shorten};
use super::engine::{Engine, Hit};
use super::rules::hit;
use crate::event::Event;
use crate::proc::Process;

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;

/// Programs that capture or intercept network traffic.
const CAPTURE_TOOLS: [&str; 12] = [
    "tcpdump",
    "tshark",
    "dumpcap",
    "tcpflow",
    "ngrep",
    "ettercap",
    "bettercap",
    "arpspoof",
    "dsniff",
    "termshark",
    "netsniff-ng",
    "sniffglue",
];

/// Programs that list processes and may read their environment or maps as their job.
const PROC_READERS: [&str; 10] = [
    "ps", "top", "htop", "btop", "atop", "pgrep", "pkill", "pidof", "lsof", "sentinel",
];

/// Does a chmod mode argument ("u+s", "4755", "g+s,o-w") add set-uid or set-gid?
fn mode_adds_setid(m: &str) -> bool {
    if m.chars().all(|c| c.is_ascii_digit()) && m.len() >= 4 {
        return u32::from_str_radix(m, 8).is_ok_and(|v| v & (S_ISUID | S_ISGID) != 0);
    }
    m.split(',').any(|clause| {
        clause
            .split_once(['+', '='])
            .is_some_and(|(_, perms)| perms.contains('s'))
    })
}

impl Engine {
    pub(super) fn privs_exec(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        cmd: &Cmd,
        hits: &mut Vec<Hit>,
    ) {
        let w = self.cfg.weights.clone();
        match cmd.name.as_str() {
            "chmod" if !self.under_package_manager(ev.pid) => {
                let mut ops = cmd.args.iter().filter(|a| !a.starts_with("--"));
                if let Some(m) = ops.next()
                    && mode_adds_setid(m)
                    && let Some(f) = ops.next()
                    && self.first_time(principal, "setuid_bit", &ev.pid.to_string())
                {
                    let f = self.path_of(ev.pid, f);
                    hits.push(hit(
                        "setuid_bit",
                        format!(
                            "made {f} run with its owner's privileges (chmod {m}): a set-uid/set-gid program is a way back to them"
                        ),
                        w.setuid_bit,
                        ev,
                    ));
                }
            }
            "setcap" if !self.under_package_manager(ev.pid) && !cmd.has("-r") && !cmd.has("-v") => {
                let caps = cmd.operands().next().unwrap_or("");
                let file = cmd.operands().nth(1).unwrap_or("");
                if !caps.is_empty()
                    && self.first_time(principal, "file_capability", &ev.pid.to_string())
                {
                    let f = self.path_of(ev.pid, file);
                    hits.push(hit(
                        "file_capability",
                        format!(
                            "granted capabilities {caps} to {f} (setcap): the program gets root powers without set-uid"
                        ),
                        w.file_capability,
                        ev,
                    ));
                }
            }
            n if CAPTURE_TOOLS.contains(&n) => {
                // Reading a saved capture is not capturing.
                let offline = cmd.has("-r") && !cmd.has("-i");
                let known = self
                    .usable_profile(principal)
                    .is_some_and(|prof| prof.binaries.contains_key(&*p.exe));
                if !offline
                    && !known
                    && self.first_time(principal, "packet_capture", &ev.pid.to_string())
                {
                    hits.push(hit(
                        "packet_capture",
                        format!(
                            "ran {} to capture network traffic: credentials and sessions on the wire",
                            shorten(&cmd.line(), 120)
                        ),
                        w.packet_capture,
                        ev,
                    ));
                }
            }
            "gdb" | "gcore" => {
                let pid = cmd
                    .args
                    .windows(2)
                    .find(|x| x[0] == "-p" || x[0] == "--pid" || x[0] == "attach")
                    .map(|x| x[1].clone())
                    .or_else(|| {
                        cmd.args
                            .iter()
                            .find_map(|a| a.strip_prefix("--pid=").map(String::from))
                    })
                    .or_else(|| {
                        (cmd.name == "gcore")
                            .then(|| cmd.operands().last().map(String::from))
                            .flatten()
                    });
                if let Some(t) = pid.and_then(|s| s.parse::<u32>().ok()) {
                    self.memory_hit(ev, principal, p, t, &format!("{} on", cmd.name), hits);
                }
            }
            _ => {}
        }
    }

    /// chmod/fchmodat that sets the set-uid or set-gid bit.
    pub(super) fn setuid_chmod(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        path: &str,
        mode: u32,
        hits: &mut Vec<Hit>,
    ) {
        if mode & (S_ISUID | S_ISGID) == 0 || self.under_package_manager(ev.pid) {
            return;
        }
        // A set-gid directory only makes new files inherit its group.
        if mode & S_ISUID == 0 && self.live && std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            return;
        }
        if !self.first_time(principal, "setuid_bit", &ev.pid.to_string()) {
            return;
        }
        let bits = match (mode & S_ISUID != 0, mode & S_ISGID != 0) {
            (true, true) => "set-uid and set-gid",
            (true, false) => "set-uid",
            _ => "set-gid",
        };
        hits.push(hit(
            "setuid_bit",
            format!(
                "made {path} {bits} (mode {:o}) with {}: it runs with its owner's privileges",
                mode & 0o7777,
                p.exe_or_comm()
            ),
            self.cfg.weights.setuid_bit,
            ev,
        ));
    }

    /// Opens of /proc/PID/{mem,environ,maps} of another process.
    pub(super) fn privs_open(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        path: &str,
        write: bool,
        hits: &mut Vec<Hit>,
    ) {
        let Some(rest) = path.strip_prefix("/proc/") else {
            return;
        };
        let mut parts = rest.split('/');
        let Some(target) = parts.next().and_then(|t| t.parse::<u32>().ok()) else {
            return;
        };
        // /proc/PID/task/TID/mem is the same memory.
        let mut file = parts.next().unwrap_or("");
        if file == "task" {
            file = parts.nth(1).unwrap_or("");
        }
        if target == ev.pid || target == ev.tid || !matches!(file, "mem" | "environ" | "maps") {
            return;
        }
        let tgt = self.procs.get(target);
        // The target's thread group: a thread's own id is not another process.
        if tgt.is_some_and(|t| t.pid == ev.pid) {
            return;
        }
        if file != "mem" {
            // Listing tools read environ and maps as their job; only other users' or
            // privileged processes matter.
            let other = tgt.is_some_and(|t| t.uid != ev.uid || t.euid == 0);
            if !other || PROC_READERS.contains(&p.name()) {
                return;
            }
        }
        let how = match (file, write) {
            ("mem", true) => "wrote into the memory of",
            ("mem", false) => "opened the memory of",
            ("environ", _) => "read the environment (secrets, tokens) of",
            _ => "read the memory map of",
        };
        self.memory_hit(ev, principal, p, target, how, hits);
    }

    pub(super) fn memory_hit(
        &mut self,
        ev: &Event,
        principal: u32,
        p: &Process,
        target: u32,
        how: &str,
        hits: &mut Vec<Hit>,
    ) {
        let known_debugger = self.exempt(&self.cats.lists.debuggers, p)
            && self
                .usable_profile(principal)
                .is_some_and(|prof| prof.binaries.contains_key(&*p.exe));
        if known_debugger || self.known_behaviour(principal, &p.exe, "process_memory_access") {
            return;
        }
        let t = self.procs.get(target);
        let tdesc = t
            .map(|t| format!("{} (pid {target}, uid {})", t.exe_or_comm(), t.uid))
            .unwrap_or_else(|| format!("pid {target}"));
        self.note_behaviour(ev, principal, "process_memory_access");
        if self.first_time(
            principal,
            "process_memory_access",
            &format!("{}:{target}:{how}", ev.pid),
        ) {
            hits.push(hit(
                "process_memory_access",
                format!(
                    "{} {how} {tdesc}: reading another process's memory exposes its secrets",
                    p.exe_or_comm()
                ),
                self.cfg.weights.process_memory_access,
                ev,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn chmod_modes_that_add_set_id_bits() {
        for m in [
            "u+s",
            "4755",
            "g+s",
            "+s",
            "a+rwxs",
            "u=rwxs,go=rx",
            "6755",
            "02755",
        ] {
            assert!(super::mode_adds_setid(m), "{m}");
        }
        for m in ["755", "0755", "u+x", "go-w", "644", "u-s"] {
            assert!(!super::mode_adds_setid(m), "{m}");
        }
    }
}
