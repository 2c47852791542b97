//! Sockets from /proc/net/{tcp,tcp6,udp,udp6}: listeners (TCP LISTEN, bound UDP) and
//! established connections for IPv4 and IPv6, each tied to its owning process through one
//! inode -> pid map per probe, and listeners on ports outside the known list flagged.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// False when --network was not given (so "nothing listening" and "not probed" differ).
    pub probed: bool,
    pub total_listeners: usize,
    pub total_established: usize,
    pub unusual_ports: usize,
    pub listeners: Vec<Listener>,
    pub connections: Vec<Connection>,
    /// Sockets whose owner could not be found (exited, or not root).
    pub unattributed: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Listener {
    /// tcp, tcp6, udp, udp6
    pub protocol: String,
    pub address: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// Port not in `snapshot.known_ports`.
    pub unusual: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub protocol: String,
    pub local_addr: String,
    pub local_port: u16,
    pub remote_addr: String,
    pub remote_port: u16,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
}

/// One row of a /proc/net table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub local: (IpAddr, u16),
    pub remote: (IpAddr, u16),
    pub state: u8,
    pub inode: u64,
}

const TCP_ESTABLISHED: u8 = 0x01;
const TCP_LISTEN: u8 = 0x0A;
const UDP_UNCONNECTED: u8 = 0x07;

/// Parses "0100007F:1F90" (IPv4) or 32 hex digits ":port" (IPv6). The kernel prints each
/// 32-bit word of the address as a native-endian integer.
pub fn parse_addr(s: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let words: Vec<u32> = (0..a.len() / 8)
        .map(|i| u32::from_str_radix(a.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let ip = match (a.len(), words.as_slice()) {
        (8, [w]) => IpAddr::V4(Ipv4Addr::from(w.to_ne_bytes())),
        (32, [a, b, c, d]) => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].into_iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            let v6 = Ipv6Addr::from(bytes);
            IpAddr::V6(v6)
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Parses a /proc/net/{tcp,udp}[6] table; malformed rows are skipped.
pub fn parse_table(text: &str) -> Vec<Row> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(Row {
                local: parse_addr(f.get(1)?)?,
                remote: parse_addr(f.get(2)?)?,
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// socket inode -> (pid, comm), from every readable /proc/<pid>/fd.
pub fn socket_owners() -> HashMap<u64, (u32, String)> {
    let mut map = HashMap::new();
    for pid in super::process::pids() {
        let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let mut comm = None;
        for e in rd.flatten() {
            let Ok(target) = std::fs::read_link(e.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            let Some(inode) = t
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let comm = comm.get_or_insert_with(|| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_default()
            });
            // The lowest pid (usually the parent that opened it) wins for shared sockets.
            map.entry(inode).or_insert((pid, comm.clone()));
        }
    }
    map
}

fn show(ip: IpAddr) -> String {
    match ip {
        // ::ffff:a.b.c.d dual-stack sockets read better in their IPv4 form.
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(|v4| format!("::ffff:{v4}"))
            .unwrap_or_else(|| v6.to_string()),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

pub fn probe(known_ports: &[u16], errors: &mut Vec<String>) -> Network {
    let owners = socket_owners();
    let mut n = Network {
        probed: true,
        ..Default::default()
    };
    for proto in ["tcp", "tcp6", "udp", "udp6"] {
        let path = format!("/proc/net/{proto}");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // No IPv6 in this kernel is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && proto.ends_with('6') => continue,
            Err(e) => {
                errors.push(format!("{path}: {e}"));
                continue;
            }
        };
        let tcp = proto.starts_with("tcp");
        for row in parse_table(&text) {
            let owner = owners.get(&row.inode);
            if owner.is_none() && row.inode != 0 {
                n.unattributed += 1;
            }
            let (pid, process) = match owner {
                Some((p, c)) => (Some(*p), Some(c.clone())),
                None => (None, None),
            };
            let listening = if tcp {
                row.state == TCP_LISTEN
            } else {
                row.state == UDP_UNCONNECTED && row.local.1 != 0
            };
            if listening {
                n.listeners.push(Listener {
                    protocol: proto.to_string(),
                    address: show(row.local.0),
                    port: row.local.1,
                    pid,
                    process,
                    unusual: !known_ports.contains(&row.local.1),
                });
            } else if row.state == TCP_ESTABLISHED {
                n.connections.push(Connection {
                    protocol: proto.to_string(),
                    local_addr: show(row.local.0),
                    local_port: row.local.1,
                    remote_addr: show(row.remote.0),
                    remote_port: row.remote.1,
                    state: "ESTABLISHED".into(),
                    pid,
                    process,
                });
            }
        }
    }
    n.listeners.sort();
    n.listeners.dedup();
    n.total_listeners = n.listeners.len();
    n.total_established = n.connections.len();
    n.unusual_ports = n.listeners.iter().filter(|l| l.unusual).count();
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6_rows() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: garbage\n";
        let rows = parse_table(t);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].local, ("127.0.0.1".parse().unwrap(), 8080));
        assert_eq!(rows[0].state, TCP_LISTEN);
        assert_eq!(rows[0].inode, 12345);
        let (ip, port) = parse_addr("00000000000000000000000001000000:0016").unwrap();
        assert_eq!((ip, port), ("::1".parse().unwrap(), 22));
        let (ip, _) = parse_addr("0000000000000000FFFF00000100007F:0016").unwrap();
        assert_eq!(show(ip), "::ffff:127.0.0.1");
        assert!(parse_addr("zz:1").is_none());
    }

    #[test]
    fn own_listener_is_found_flagged_and_attributed() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut errs = vec![];
        let n = probe(&[22, 443], &mut errs);
        let me = n
            .listeners
            .iter()
            .find(|x| x.port == port && x.protocol == "tcp")
            .unwrap();
        assert!(me.unusual);
        assert_eq!(me.pid, Some(std::process::id()));
        assert!(n.unusual_ports >= 1);
    }
}
