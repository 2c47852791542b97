//! Sockets from /proc/net/{tcp,tcp6,udp,udp6} (read by the `procfs` crate): listeners (TCP LISTEN, bound UDP) and
//! established connections for IPv4 and IPv6, each tied to its owning process through one
//! inode -> pid map per probe, and listeners on ports outside the known list flagged.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

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

/// One socket of a /proc/net table.
struct Row {
    local: SocketAddr,
    remote: SocketAddr,
    state: u8,
    inode: u64,
}

const TCP_ESTABLISHED: u8 = 0x01;
const TCP_LISTEN: u8 = 0x0A;
const UDP_UNCONNECTED: u8 = 0x07;

/// The rows of /proc/net/`proto` (tcp, tcp6, udp, udp6).
fn table(proto: &str) -> procfs::ProcResult<Vec<Row>> {
    let row = |local, remote, state, inode| Row {
        local,
        remote,
        state,
        inode,
    };
    let tcp = |v: Vec<procfs::net::TcpNetEntry>| -> Vec<Row> {
        let it = v.into_iter();
        it.map(|e| row(e.local_address, e.remote_address, e.state.to_u8(), e.inode))
            .collect()
    };
    let udp = |v: Vec<procfs::net::UdpNetEntry>| -> Vec<Row> {
        let it = v.into_iter();
        it.map(|e| row(e.local_address, e.remote_address, e.state.to_u8(), e.inode))
            .collect()
    };
    Ok(match proto {
        "tcp" => tcp(procfs::net::tcp()?),
        "tcp6" => tcp(procfs::net::tcp6()?),
        "udp" => udp(procfs::net::udp()?),
        _ => udp(procfs::net::udp6()?),
    })
}

/// socket inode -> (pid, comm), from every readable /proc/<pid>/fd.
pub fn socket_owners() -> HashMap<u64, (u32, String)> {
    let mut map = HashMap::new();
    let Ok(all) = procfs::process::all_processes() else {
        return map;
    };
    let mut procs: Vec<procfs::process::Process> = all.flatten().collect();
    // The lowest pid (usually the parent that opened it) wins for shared sockets.
    procs.sort_unstable_by_key(|p| p.pid);
    for p in procs {
        let Ok(fds) = p.fd() else {
            continue;
        };
        let mut comm = None;
        for fd in fds.flatten() {
            let procfs::process::FDTarget::Socket(inode) = fd.target else {
                continue;
            };
            let comm = comm.get_or_insert_with(|| p.stat().map(|st| st.comm).unwrap_or_default());
            map.entry(inode).or_insert((p.pid as u32, comm.clone()));
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
        let rows = match table(proto) {
            Ok(rows) => rows,
            // No IPv6 in this kernel is not an error.
            Err(procfs::ProcError::NotFound(_)) if proto.ends_with('6') => continue,
            Err(e) => {
                errors.push(format!("/proc/net/{proto}: {e}"));
                continue;
            }
        };
        let tcp = proto.starts_with("tcp");
        for row in rows {
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
                row.state == UDP_UNCONNECTED && row.local.port() != 0
            };
            if listening {
                n.listeners.push(Listener {
                    protocol: proto.to_string(),
                    address: show(row.local.ip()),
                    port: row.local.port(),
                    pid,
                    process,
                    unusual: !known_ports.contains(&row.local.port()),
                });
            } else if row.state == TCP_ESTABLISHED {
                n.connections.push(Connection {
                    protocol: proto.to_string(),
                    local_addr: show(row.local.ip()),
                    local_port: row.local.port(),
                    remote_addr: show(row.remote.ip()),
                    remote_port: row.remote.port(),
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
    fn mapped_v4_addresses_read_as_v4() {
        assert_eq!(
            show("::ffff:127.0.0.1".parse().unwrap()),
            "::ffff:127.0.0.1"
        );
        assert_eq!(show("::1".parse().unwrap()), "::1");
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
