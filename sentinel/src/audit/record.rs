//! One auditd log line as a `Record` (type, time, serial, decoded fields), and `AuditEvent`:
//! the records of one serial grouped together, with accessors for the facts the summary uses.

use std::collections::HashMap;

use serde::Serialize;

/// Fields auditd writes hex-encoded (unquoted) when the value holds spaces, quotes or control
/// bytes. Quoted values are always literal.
const ENCODED_FIELDS: &[&str] = &[
    "name",
    "comm",
    "exe",
    "cwd",
    "proctitle",
    "cmd",
    "acct",
    "path",
    "data",
    "key",
    "old-exe",
    "new-exe",
    "ocomm",
    "watch",
    "dir",
    "file",
    "vm",
];

/// The enriched (ENRICHED log_format) part of a line starts after this group separator.
const ENRICHED_SEPARATOR: char = '\u{1d}';

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("not an audit record (no type=)")]
    NoType,
    #[error("missing or malformed msg=audit(time:serial)")]
    NoStamp,
    #[error("unterminated quoted value (truncated line?)")]
    Unterminated,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// Record type name, e.g. "SYSCALL", "USER_AUTH".
    #[serde(rename = "type")]
    pub rtype: String,
    /// Epoch milliseconds.
    pub time_ms: i64,
    pub serial: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Decoded fields in line order; the inner `msg='...'` of user-space records is flattened in,
    /// and enriched (upper-case) fields follow.
    pub fields: Vec<(String, String)>,
}

impl Record {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A numeric field (decimal).
    pub fn num(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(|v| v.parse().ok())
    }
}

/// Parses one log line. Never panics; anything unexpected is a `ParseError`.
pub fn parse_line(line: &str) -> Result<Record, ParseError> {
    let line = line.trim_end_matches(['\n', '\r']);
    let (main, enriched) = match line.split_once(ENRICHED_SEPARATOR) {
        Some((m, e)) => (m, Some(e)),
        None => (line, None),
    };
    let mut rest = main.trim_start();
    let mut node = None;
    if let Some(r) = rest.strip_prefix("node=") {
        let (n, tail) = r.split_once(' ').ok_or(ParseError::NoType)?;
        node = Some(n.to_string());
        rest = tail.trim_start();
    }
    let rest = rest.strip_prefix("type=").ok_or(ParseError::NoType)?;
    let (rtype, rest) = rest.split_once(' ').ok_or(ParseError::NoStamp)?;
    if rtype.is_empty() {
        return Err(ParseError::NoType);
    }
    let rest = rest
        .trim_start()
        .strip_prefix("msg=audit(")
        .ok_or(ParseError::NoStamp)?;
    let (stamp, body) = rest.split_once("):").ok_or(ParseError::NoStamp)?;
    let (time_ms, serial) = parse_stamp(stamp).ok_or(ParseError::NoStamp)?;
    let mut fields = Vec::new();
    parse_fields(body, rtype, &mut fields)?;
    if let Some(e) = enriched {
        parse_fields(e, rtype, &mut fields)?;
    }
    Ok(Record {
        rtype: rtype.to_string(),
        time_ms,
        serial,
        node,
        fields,
    })
}

fn parse_stamp(s: &str) -> Option<(i64, u64)> {
    let (t, serial) = s.split_once(':')?;
    let (sec, frac) = t.split_once('.').unwrap_or((t, "0"));
    let sec: i64 = sec.parse().ok()?;
    let frac3: String = frac.chars().chain(std::iter::repeat('0')).take(3).collect();
    let ms: i64 = frac3.parse().ok()?;
    Some((
        sec.checked_mul(1000)?.checked_add(ms)?,
        serial.parse().ok()?,
    ))
}

fn parse_fields(
    body: &str,
    rtype: &str,
    out: &mut Vec<(String, String)>,
) -> Result<(), ParseError> {
    let mut s = body.trim_start();
    while !s.is_empty() {
        let word = s.split(' ').next().unwrap_or("");
        if !word.contains('=') {
            // Bare words carry meaning in some records (SELinux AVC: "avc: denied { read }"):
            // kept as keys with an empty value.
            out.push((word.to_string(), String::new()));
            s = s[word.len()..].trim_start();
            continue;
        }
        let Some(eq) = s.find('=') else {
            break;
        };
        let key = &s[..eq];
        let after = &s[eq + 1..];
        let (value, rest) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = &after[1..];
                let end = inner.find(q).ok_or(ParseError::Unterminated)?;
                (Value::Quoted(&inner[..end]), &inner[end + 1..])
            }
            _ => {
                let end = after.find(' ').unwrap_or(after.len());
                (Value::Bare(&after[..end]), &after[end..])
            }
        };
        match value {
            // The user-space records carry their payload as msg='k=v ...': flatten it in.
            Value::Quoted(inner) if key == "msg" && after.starts_with('\'') => {
                parse_fields(inner, rtype, out)?;
            }
            Value::Quoted(v) => out.push((key.to_string(), v.to_string())),
            Value::Bare(v) => out.push((key.to_string(), decode_bare(key, v, rtype))),
        }
        s = rest.trim_start();
    }
    Ok(())
}

enum Value<'a> {
    Quoted(&'a str),
    Bare(&'a str),
}

fn decode_bare(key: &str, v: &str, rtype: &str) -> String {
    let encoded = ENCODED_FIELDS.contains(&key)
        || (rtype == "EXECVE" && is_execve_arg(key))
        || key.starts_with("new-")
        || key.starts_with("old-");
    if encoded && let Some(text) = decode_hex(v) {
        // proctitle and keys separate their parts with NUL / \x01.
        return text.replace(['\0', '\u{1}'], " ").trim_end().to_string();
    }
    v.to_string()
}

fn is_execve_arg(key: &str) -> bool {
    key.strip_prefix('a')
        .map(|n| {
            let n = n.split('[').next().unwrap_or(n);
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        })
        .unwrap_or(false)
}

/// Decodes an auditd hex string; `None` when it is not even-length hex.
pub fn decode_hex(v: &str) -> Option<String> {
    if v.is_empty() || !v.len().is_multiple_of(2) || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(v.as_bytes())
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// All records of one audit event (one serial at one time stamp).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEvent {
    pub time_ms: i64,
    pub serial: u64,
    pub records: Vec<Record>,
}

impl AuditEvent {
    /// Evidence id in the shared factor model.
    pub fn evidence_id(&self) -> String {
        format!("audit:{}", self.serial)
    }

    pub fn has(&self, rtype: &str) -> bool {
        self.records.iter().any(|r| r.rtype == rtype)
    }

    pub fn record(&self, rtype: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.rtype == rtype)
    }

    /// The main record: SYSCALL when present, else the first.
    pub fn primary(&self) -> Option<&Record> {
        self.record("SYSCALL").or(self.records.first())
    }

    pub fn primary_type(&self) -> &str {
        self.primary().map(|r| r.rtype.as_str()).unwrap_or("")
    }

    /// A field from the primary record, falling back to any record.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.primary()
            .and_then(|r| r.get(key))
            .or_else(|| self.records.iter().find_map(|r| r.get(key)))
    }

    pub fn num(&self, key: &str) -> Option<i64> {
        self.field(key).and_then(|v| v.parse().ok())
    }

    /// The audit key; `None` for "(null)".
    pub fn key(&self) -> Option<&str> {
        self.record("SYSCALL")
            .and_then(|r| r.get("key"))
            .filter(|k| *k != "(null)" && !k.is_empty())
    }

    pub fn is_execve(&self) -> bool {
        self.has("EXECVE")
            || self.record("SYSCALL").is_some_and(|r| {
                r.get("SYSCALL") == Some("execve")
                    || (r.get("syscall") == Some("59") && r.get("arch") == Some("c000003e"))
            })
    }

    /// Path names of the PATH records, made absolute with the CWD record where relative.
    pub fn paths(&self) -> Vec<String> {
        let cwd = self.record("CWD").and_then(|r| r.get("cwd"));
        self.records
            .iter()
            .filter(|r| r.rtype == "PATH")
            .filter(|r| r.get("nametype") != Some("PARENT"))
            .filter_map(|r| r.get("name"))
            .filter(|n| *n != "(null)")
            .map(|n| match (n.starts_with('/'), cwd) {
                (false, Some(c)) => format!("{}/{}", c.trim_end_matches('/'), n),
                _ => n.to_string(),
            })
            .collect()
    }

    /// EXECVE arguments in order.
    pub fn argv(&self) -> Vec<String> {
        let Some(r) = self.record("EXECVE") else {
            return Vec::new();
        };
        let argc = r.num("argc").unwrap_or(0).clamp(0, 4096) as usize;
        (0..argc)
            .map_while(|i| r.get(&format!("a{i}")).map(str::to_string))
            .collect()
    }

    /// The acting user's name: enriched UID/AUID names, else the numeric uid resolved later.
    pub fn uid(&self) -> Option<u32> {
        self.num("uid").and_then(|v| u32::try_from(v).ok())
    }

    pub fn auid(&self) -> Option<u32> {
        self.num("auid")
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v != u32::MAX)
    }

    /// "res=success|failed" (also "success=yes|no" on SYSCALL).
    pub fn failed(&self) -> bool {
        matches!(self.field("res"), Some("failed" | "fail" | "0"))
            || self.field("success") == Some("no")
    }
}

/// Groups records into events by (time, serial), tolerating interleaving. Events come out
/// in the order their first record was seen.
#[derive(Default)]
pub struct Grouper {
    index: HashMap<(i64, u64), usize>,
    events: Vec<AuditEvent>,
}

impl Grouper {
    pub fn push(&mut self, r: Record) {
        let k = (r.time_ms, r.serial);
        match self.index.get(&k) {
            Some(&i) => self.events[i].records.push(r),
            None => {
                self.index.insert(k, self.events.len());
                self.events.push(AuditEvent {
                    time_ms: r.time_ms,
                    serial: r.serial,
                    records: vec![r],
                });
            }
        }
    }

    pub fn finish(self) -> Vec<AuditEvent> {
        self.events
    }
}

/// Records that are a whole event on their own (user-space messages carry no EOE).
pub fn is_standalone(rtype: &str) -> bool {
    rtype.starts_with("USER_")
        || rtype.starts_with("CRED_")
        || rtype.starts_with("DAEMON_")
        || rtype.starts_with("SERVICE_")
        || rtype.starts_with("ACCT_")
        || matches!(
            rtype,
            "ADD_USER"
                | "DEL_USER"
                | "ADD_GROUP"
                | "DEL_GROUP"
                | "GRP_MGMT"
                | "GRP_CHAUTHTOK"
                | "CHGRP_ID"
                | "CHUSER_ID"
                | "LOGIN"
                | "SYSTEM_BOOT"
                | "SYSTEM_SHUTDOWN"
                | "SYSTEM_RUNLEVEL"
                | "ANOM_LOGIN_FAILURES"
                | "ANOM_LOGIN_TIME"
                | "ANOM_LOGIN_SESSIONS"
                | "ANOM_LOGIN_LOCATION"
                | "ROLE_ASSIGN"
                | "ROLE_REMOVE"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_syscall_with_enriched_part() {
        let l = "type=SYSCALL msg=audit(1795722574.357:12): arch=c000003e syscall=257 success=yes a0=ffffff9c items=1 ppid=11486 pid=11494 auid=4294967295 uid=0 comm=\"cat\" exe=\"/usr/bin/cat\" key=\"e2e_watch\"\u{1d}ARCH=x86_64 SYSCALL=openat AUID=\"unset\" UID=\"root\"";
        let r = parse_line(l).unwrap();
        assert_eq!(r.rtype, "SYSCALL");
        assert_eq!(r.time_ms, 1_795_722_574_357);
        assert_eq!(r.serial, 12);
        assert_eq!(
            r.get("a0"),
            Some("ffffff9c"),
            "SYSCALL a0 is a register, not text"
        );
        assert_eq!(r.get("exe"), Some("/usr/bin/cat"));
        assert_eq!(r.get("SYSCALL"), Some("openat"));
        assert_eq!(r.get("UID"), Some("root"));
    }

    #[test]
    fn flattens_user_msg_and_decodes_hex() {
        let l = "node=h1 type=USER_CMD msg=audit(10.5:7): pid=1 uid=1000 auid=1000 ses=2 msg='cwd=\"/home/a\" cmd=6C73202D6C61202F726F6F74 exe=\"/usr/bin/sudo\" terminal=pts/0 res=success'";
        let r = parse_line(l).unwrap();
        assert_eq!(r.node.as_deref(), Some("h1"));
        assert_eq!(r.time_ms, 10_500);
        assert_eq!(r.get("cmd"), Some("ls -la /root"));
        assert_eq!(r.get("res"), Some("success"));
    }

    #[test]
    fn execve_args_and_proctitle_decode() {
        let r = parse_line("type=EXECVE msg=audit(1.0:3): argc=2 a0=\"ls\" a1=2F746D702F6120622F")
            .unwrap();
        assert_eq!(r.get("a1"), Some("/tmp/a b/"));
        let r = parse_line("type=PROCTITLE msg=audit(1.0:3): proctitle=6C73002D6C").unwrap();
        assert_eq!(r.get("proctitle"), Some("ls -l"));
    }

    #[test]
    fn malformed_and_truncated_lines_are_errors_not_panics() {
        assert_eq!(parse_line("garbage"), Err(ParseError::NoType));
        assert_eq!(
            parse_line("type=X msg=audit(abc): a=1"),
            Err(ParseError::NoStamp)
        );
        assert_eq!(
            parse_line("type=PATH msg=audit(1.0:3): name=\"/etc/pas"),
            Err(ParseError::Unterminated)
        );
        assert!(parse_line("").is_err());
        assert!(parse_line("type=").is_err());
        assert!(parse_line("type=X msg=audit(99999999999999999999.0:1): a=1").is_err());
    }

    #[test]
    fn grouper_handles_interleaving() {
        let mut g = Grouper::default();
        for l in [
            "type=SYSCALL msg=audit(1.0:1): syscall=59 exe=\"/tmp/x\"",
            "type=SYSCALL msg=audit(1.0:2): syscall=2 exe=\"/bin/cat\"",
            "type=PATH msg=audit(1.0:1): item=0 name=\"x\"",
            "type=CWD msg=audit(1.0:1): cwd=\"/tmp\"",
        ] {
            g.push(parse_line(l).unwrap());
        }
        let ev = g.finish();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].records.len(), 3);
        assert_eq!(ev[0].paths(), vec!["/tmp/x".to_string()]);
        assert_eq!(ev[0].evidence_id(), "audit:1");
    }
}
