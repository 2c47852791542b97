//! Syslog in RFC 5424 over the local socket (a unix datagram socket), UDP (RFC 5426) or TCP
//! with octet counting (RFC 6587 3.4.1: `LEN SP MSG`, so a message may hold any byte).
//! The formatter is ours: the syslog crates at hand either frame TCP with a trailing newline
//! only (fasyslog) or not at all (syslog), and stamp messages with the sending time rather
//! than the record's.

use std::io::Write as _;
use std::net::{TcpStream, ToSocketAddrs as _, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use super::Prepared;
use super::config::{
    DEFAULT_APP_NAME, DEFAULT_SD_ID, DEFAULT_SOCKET, Facility, OutputConfig, SyslogFormat,
    Transport,
};
use crate::model::Level;

/// Syslog severities (RFC 5424 6.2.1).
pub const CRIT: u8 = 2;
pub const ERR: u8 = 3;
pub const WARNING: u8 = 4;
pub const NOTICE: u8 = 5;
pub const INFO: u8 = 6;

/// An anomaly's or incident's level as a severity; records without a level are `INFO`.
pub fn severity(level: Option<Level>) -> u8 {
    match level {
        Some(Level::Critical) => CRIT,
        Some(Level::High) => ERR,
        Some(Level::Medium) => WARNING,
        Some(Level::Low) => NOTICE,
        None => INFO,
    }
}

/// The fixed parts of every message of one output.
#[derive(Clone, Debug)]
pub struct Header {
    pub facility: Facility,
    pub host: String,
    pub app_name: String,
    pub procid: u32,
    pub format: SyslogFormat,
    pub sd_id: String,
}

impl Header {
    pub fn from_config(c: &OutputConfig, host: &str) -> Header {
        Header {
            facility: c.facility.unwrap_or(Facility::Local0),
            host: header_field(host, 255),
            app_name: c
                .app_name
                .clone()
                .unwrap_or_else(|| DEFAULT_APP_NAME.into()),
            procid: std::process::id(),
            format: c.syslog_format(),
            sd_id: c.sd_id.clone().unwrap_or_else(|| DEFAULT_SD_ID.into()),
        }
    }
}

/// A header field as RFC 5424 allows it: printable ASCII without spaces, at most `max`
/// bytes; "-" (NILVALUE) when nothing is left.
fn header_field(s: &str, max: usize) -> String {
    let kept: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if kept.is_empty() { "-".into() } else { kept }
}

/// A PARAM-VALUE with '"', '\' and ']' escaped (RFC 5424 6.3.3).
fn escape_param(v: &str, out: &mut Vec<u8>) {
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push(b'\\');
        }
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}

/// One RFC 5424 message (without framing):
/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`. The MSG is the JSON record, or
/// with `format = "structured"` the one-line summary after the record's key fields as
/// structured data. MSG is sent without a BOM (RFC 5424's MSG-ANY): SIEMs parse the JSON
/// as it is.
pub fn format(h: &Header, rec: &Prepared) -> Vec<u8> {
    let pri = u16::from(h.facility.code()) * 8 + u16::from(severity(rec.level));
    let mut out = format!(
        "<{pri}>1 {} {} {} {} {} ",
        crate::timefmt::rfc3339_ms(rec.time_ns),
        h.host,
        h.app_name,
        h.procid,
        rec.ty.as_str()
    )
    .into_bytes();
    match h.format {
        SyslogFormat::Json => {
            out.extend_from_slice(b"- ");
            out.extend_from_slice(rec.json.strip_suffix(b"\n").unwrap_or(&rec.json));
        }
        SyslogFormat::Structured => {
            let brief = rec.brief();
            out.push(b'[');
            out.extend_from_slice(h.sd_id.as_bytes());
            for (name, value) in &brief.params {
                out.push(b' ');
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"=\"");
                escape_param(value, &mut out);
                out.push(b'"');
            }
            out.extend_from_slice(b"] ");
            out.extend_from_slice(brief.text.as_bytes());
        }
    }
    out
}

/// RFC 6587 octet counting: the message's length in bytes, a space, the message.
pub fn octet_counted(msg: &[u8]) -> Vec<u8> {
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg);
    out
}

/// How long a TCP connect or write may take before it counts as a failure.
const NET_TIMEOUT: Duration = Duration::from_secs(5);

enum Conn {
    Unix(UnixDatagram),
    Udp(UdpSocket),
    Tcp(TcpStream),
}

/// One syslog destination; connects on first use and again after a failure.
pub struct SyslogSink {
    header: Header,
    transport: Transport,
    address: String,
    conn: Option<Conn>,
}

impl SyslogSink {
    pub fn new(c: &OutputConfig, host: &str) -> SyslogSink {
        SyslogSink {
            header: Header::from_config(c, host),
            transport: c.transport(),
            address: c.address.clone().unwrap_or_else(|| DEFAULT_SOCKET.into()),
            conn: None,
        }
    }

    fn connect(&self) -> std::io::Result<Conn> {
        Ok(match self.transport {
            Transport::Unix => {
                let s = UnixDatagram::unbound()?;
                s.connect(&self.address)?;
                s.set_write_timeout(Some(NET_TIMEOUT))?;
                Conn::Unix(s)
            }
            Transport::Udp => {
                let to = resolve(&self.address)?;
                let any: std::net::SocketAddr = if to.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(any)?;
                s.connect(to)?;
                Conn::Udp(s)
            }
            Transport::Tcp => {
                let s = TcpStream::connect_timeout(&resolve(&self.address)?, NET_TIMEOUT)?;
                s.set_write_timeout(Some(NET_TIMEOUT))?;
                s.set_nodelay(true)?;
                Conn::Tcp(s)
            }
        })
    }

    /// Sends one record. On failure the connection is dropped (the next call connects
    /// again) and the error returned for the caller to count and back off.
    pub fn send(&mut self, rec: &Prepared) -> std::io::Result<()> {
        let msg = format(&self.header, rec);
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let r = match self.conn.as_mut() {
            Some(Conn::Unix(s)) => s.send(&msg).map(drop),
            Some(Conn::Udp(s)) => s.send(&msg).map(drop),
            Some(Conn::Tcp(s)) => s.write_all(&octet_counted(&msg)),
            None => Ok(()),
        };
        if r.is_err() {
            self.conn = None;
        }
        r
    }
}

fn resolve(address: &str) -> std::io::Result<std::net::SocketAddr> {
    address.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{address} resolves to no address"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::config::RecordType;

    fn header(format: SyslogFormat) -> Header {
        Header {
            facility: Facility::Local0,
            host: header_field("web 1.example", 255),
            app_name: "sentinel".into(),
            procid: 42,
            format,
            sd_id: DEFAULT_SD_ID.into(),
        }
    }

    fn anomaly_record() -> Prepared {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/explain/anomaly.json"
        ))
        .unwrap();
        let mut a: crate::model::Anomaly = serde_json::from_str(&text).unwrap();
        a.factors[0].reason = "ran \"x\" from /tmp] \\ now".into();
        Prepared::new(&crate::feed::Record::Anomaly(&a), true)
    }

    #[test]
    fn json_messages_carry_the_record_as_msg_with_the_level_as_severity() {
        let rec = anomaly_record();
        let msg = format(&header(SyslogFormat::Json), &rec);
        let text = String::from_utf8(msg.clone()).unwrap();
        let level = rec.level.unwrap();
        let pri = 16 * 8 + u16::from(severity(Some(level)));
        assert!(text.starts_with(&format!("<{pri}>1 ")), "{level:?}: {text}");
        // A real RFC 5424 parser reads it back field by field.
        let m = syslog_rfc5424::parse_message(&text).unwrap();
        assert_eq!(m.facility, syslog_rfc5424::SyslogFacility::LOG_LOCAL0);
        assert_eq!(m.severity as u8, severity(Some(level)));
        assert_eq!(m.hostname.as_deref(), Some("web1.example"));
        assert_eq!(m.appname.as_deref(), Some("sentinel"));
        assert_eq!(m.msgid.as_deref(), Some("anomaly"));
        assert_eq!(
            m.timestamp.map(|t| t * 1_000_000_000),
            Some(rec.time_ns / 1_000_000_000 * 1_000_000_000)
        );
        assert!(m.sd.is_empty());
        // The message is the record's JSON line, byte for byte, without the newline.
        assert_eq!(m.msg.as_bytes(), &rec.json[..rec.json.len() - 1]);
        let v: serde_json::Value = serde_json::from_str(&m.msg).unwrap();
        assert_eq!(v["type"], "anomaly");
    }

    #[test]
    fn structured_messages_escape_their_params() {
        let rec = anomaly_record();
        let text = String::from_utf8(format(&header(SyslogFormat::Structured), &rec)).unwrap();
        let m = syslog_rfc5424::parse_message(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let sd =
            m.sd.find_sdid(DEFAULT_SD_ID)
                .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(sd.get("type").map(String::as_str), Some("anomaly"));
        assert_eq!(
            sd.get("score").map(String::as_str),
            Some(
                &*rec
                    .brief()
                    .params
                    .iter()
                    .find(|p| p.0 == "score")
                    .unwrap()
                    .1
            )
        );
        let reasons = sd.get("reasons").unwrap();
        assert!(reasons.contains("ran \"x\" from /tmp] \\ now"), "{reasons}");
        assert!(text.contains(r#"ran \"x\" from /tmp\] \\ now"#), "{text}");
        assert!(!m.msg.is_empty() && !m.msg.contains('\n'), "{}", m.msg);
    }

    #[test]
    fn records_without_a_level_are_info_and_header_fields_are_cleaned() {
        let st = crate::feed::Status {
            attached: vec!["a".into()],
            failed: vec![],
            unavailable: vec![],
            missing_fields: vec![],
            mounted_tracefs: false,
            syscall_args: crate::collect::ArgsSource::Registers,
        };
        let rec = Prepared::new(&crate::feed::Record::Status(&st), true);
        assert_eq!(rec.ty, RecordType::Status);
        let mut h = header(SyslogFormat::Json);
        h.host = header_field(" \t", 255);
        h.facility = Facility::Auth;
        let text = String::from_utf8(format(&h, &rec)).unwrap();
        assert!(text.starts_with("<38>1 "), "{text}");
        assert_eq!(text.split(' ').nth(2), Some("-"), "{text}");
        assert_eq!(header_field(&"x".repeat(300), 255).len(), 255);
    }

    #[test]
    fn tcp_frames_are_octet_counted() {
        let framed = octet_counted("<134>1 héllo".as_bytes());
        assert_eq!(framed, "13 <134>1 héllo".as_bytes());
        // Through a real socket: a reader that trusts only the counts gets each message
        // whole, whatever bytes (newlines included) are inside.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cfg: OutputConfig = toml::from_str(&format!(
            "kind = \"syslog\"\ntransport = \"tcp\"\naddress = \"{addr}\"\n"
        ))
        .unwrap();
        let mut sink = SyslogSink::new(&cfg, "h");
        let rec = anomaly_record();
        sink.send(&rec).unwrap();
        sink.send(&rec).unwrap();
        drop(sink);
        let (mut conn, _) = listener.accept().unwrap();
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut conn, &mut all).unwrap();
        let mut rest = &all[..];
        let mut n = 0;
        while !rest.is_empty() {
            let sp = rest.iter().position(|b| *b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
            let msg = &rest[sp + 1..sp + 1 + len];
            assert!(msg.starts_with(b"<"), "{}", String::from_utf8_lossy(msg));
            assert!(msg.ends_with(b"}"), "{}", String::from_utf8_lossy(msg));
            rest = &rest[sp + 1 + len..];
            n += 1;
        }
        assert_eq!(n, 2);
    }

    #[test]
    fn a_missing_server_is_an_error_and_the_next_send_connects_again() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let cfg: OutputConfig = toml::from_str(&format!(
            "kind = \"syslog\"\ntransport = \"tcp\"\naddress = \"{addr}\"\n"
        ))
        .unwrap();
        let mut sink = SyslogSink::new(&cfg, "h");
        let rec = anomaly_record();
        assert!(sink.send(&rec).is_err());
        let listener = std::net::TcpListener::bind(addr).unwrap();
        sink.send(&rec).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        drop(sink);
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut conn, &mut all).unwrap();
        assert!(
            all.starts_with(
                format!(
                    "{} <",
                    all.len() - all.iter().position(|b| *b == b' ').unwrap() - 1
                )
                .as_bytes()
            )
        );
    }

    #[test]
    fn unix_datagrams_reach_the_socket() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let cfg: OutputConfig = toml::from_str(&format!(
            "kind = \"syslog\"\naddress = \"{}\"\n",
            path.display()
        ))
        .unwrap();
        let mut sink = SyslogSink::new(&cfg, "h");
        sink.send(&anomaly_record()).unwrap();
        let mut buf = vec![0u8; 65536];
        let n = server.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        syslog_rfc5424::parse_message(text).unwrap();
    }
}
