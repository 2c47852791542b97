//! `[[output]]` entries: which records go where (a JSON-lines file with rotation, or syslog
//! in RFC 5424 over the local socket, UDP or TCP), checked at load like every other section.
//! Keys of one kind are refused on the other, so a misplaced key is an error, not ignored.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::Level;

/// The record types of the JSON feed (docs/events.md), as outputs choose them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    Event,
    Anomaly,
    Incident,
    Status,
    Summary,
}

impl RecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Event => "event",
            RecordType::Anomaly => "anomaly",
            RecordType::Incident => "incident",
            RecordType::Status => "status",
            RecordType::Summary => "summary",
        }
    }
}

/// Where an output writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// JSON lines in a file, the same bytes `sentinel run --json` writes, rotated by size and
    /// age.
    File,
    /// RFC 5424 syslog messages over the local socket, UDP or TCP (octet counting).
    Syslog,
}

impl OutputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::File => "file",
            OutputKind::Syslog => "syslog",
        }
    }
}

/// When a file output asks the kernel to put its writes on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Never: the kernel writes back when it likes (fastest; a crash of the host may lose
    /// the last seconds).
    Never,
    /// After every record (safest, slowest).
    Record,
    /// At most every `fsync_interval_secs`, when something was written.
    Interval,
}

/// How syslog messages travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// The local syslog socket (a unix datagram socket, /dev/log by default).
    Unix,
    /// UDP (RFC 5426), one message per datagram.
    Udp,
    /// TCP with octet counting (RFC 6587 section 3.4.1).
    Tcp,
}

/// What a syslog message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFormat {
    /// The JSON record (as `sentinel run --json` writes it) is the MSG; no structured data.
    Json,
    /// Key fields as RFC 5424 structured data (`[sentinel@32473 type="anomaly" ...]`) and a
    /// one-line summary as the MSG.
    Structured,
}

/// Syslog facilities (RFC 5424 section 6.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Facility {
    Kern,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    pub fn code(self) -> u8 {
        match self {
            Facility::Kern => 0,
            Facility::User => 1,
            Facility::Mail => 2,
            Facility::Daemon => 3,
            Facility::Auth => 4,
            Facility::Syslog => 5,
            Facility::Lpr => 6,
            Facility::News => 7,
            Facility::Uucp => 8,
            Facility::Cron => 9,
            Facility::Authpriv => 10,
            Facility::Ftp => 11,
            Facility::Local0 => 16,
            Facility::Local1 => 17,
            Facility::Local2 => 18,
            Facility::Local3 => 19,
            Facility::Local4 => 20,
            Facility::Local5 => 21,
            Facility::Local6 => 22,
            Facility::Local7 => 23,
        }
    }
}

/// One `[[output]]` entry. Keys of the other kind are refused.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// "file" (JSON lines) or "syslog" (RFC 5424).
    pub kind: OutputKind,
    /// Name in logs and counters (letters, digits, '-', '_', '.'; default: the kind and the
    /// entry's place, "file-0").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Record types sent: "event", "anomaly", "incident", "status", "summary" (default:
    /// anomalies and incidents).
    #[serde(default = "default_records")]
    pub records: Vec<RecordType>,
    /// Anomalies and incidents below this level are not sent: "low", "medium", "high" or
    /// "critical" (default "low": all). Other record types have no level.
    #[serde(default = "default_min_level")]
    pub min_level: Level,
    /// Records waiting for this output at most; when it is full (a slow disk, a syslog
    /// server away), new records are dropped and counted, the agent never waits (default
    /// 4096).
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// file: the file (absolute; its directory must exist and be writable by root only).
    /// Created with mode 0600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// file: rotate before the file would grow past this many bytes; 0 never (default
    /// 104857600, 100 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 104857600))]
    pub max_bytes: Option<u64>,
    /// file: rotate a file this many seconds after it was started; 0 never (default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 86400))]
    pub max_age_secs: Option<u64>,
    /// file: rotated files kept (`PATH.1` the newest, up to `PATH.N`); older ones are
    /// deleted (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 5))]
    pub keep: Option<u32>,
    /// file: "never", "record" (fsync after every record) or "interval" (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "interval"))]
    pub fsync: Option<FsyncPolicy>,
    /// file: with `fsync = "interval"`, at most this many seconds between fsyncs (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 5))]
    pub fsync_interval_secs: Option<u64>,
    /// syslog: "unix" (the local socket, default), "udp" or "tcp".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// syslog: the socket path for "unix" (default /dev/log), HOST:PORT for "udp" and "tcp".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "/dev/log"))]
    pub address: Option<String>,
    /// syslog: the facility, "kern" to "local7" (default "local0").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "local0"))]
    pub facility: Option<Facility>,
    /// syslog: APP-NAME of each message (default "sentinel"; 1-48 printable ASCII).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "sentinel"))]
    pub app_name: Option<String>,
    /// syslog: "json" (the JSON record as the message, default) or "structured" (key
    /// fields as structured data, a one-line summary as the message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<SyslogFormat>,
    /// syslog: the SD-ID of the structured data (default "sentinel@32473"; use your
    /// organisation's enterprise number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "sentinel@32473"))]
    pub sd_id: Option<String>,
}

fn default_records() -> Vec<RecordType> {
    vec![RecordType::Anomaly, RecordType::Incident]
}

fn default_min_level() -> Level {
    Level::Low
}

fn default_queue() -> usize {
    DEFAULT_QUEUE
}

pub const DEFAULT_QUEUE: usize = 4096;
pub const DEFAULT_MAX_BYTES: u64 = 100 * 1024 * 1024;
pub const DEFAULT_MAX_AGE_SECS: u64 = 86_400;
pub const DEFAULT_KEEP: u32 = 5;
pub const DEFAULT_FSYNC_INTERVAL_SECS: u64 = 5;
pub const DEFAULT_SOCKET: &str = "/dev/log";
pub const DEFAULT_APP_NAME: &str = "sentinel";
/// 32473 is the enterprise number RFC 5612 sets aside for examples and documentation.
pub const DEFAULT_SD_ID: &str = "sentinel@32473";

/// The keys only file outputs take, and only syslog outputs take.
const FILE_KEYS: &[&str] = &[
    "path",
    "max_bytes",
    "max_age_secs",
    "keep",
    "fsync",
    "fsync_interval_secs",
];
const SYSLOG_KEYS: &[&str] = &[
    "transport",
    "address",
    "facility",
    "app_name",
    "format",
    "sd_id",
];

impl OutputConfig {
    /// The name in logs and counters; `index` is the entry's place in the file.
    pub fn name_at(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}-{index}", self.kind.as_str()))
    }

    pub fn wants(&self, ty: RecordType, level: Option<Level>) -> bool {
        self.records.contains(&ty) && level.is_none_or(|l| l >= self.min_level)
    }

    pub fn transport(&self) -> Transport {
        self.transport.unwrap_or(Transport::Unix)
    }

    pub fn syslog_format(&self) -> SyslogFormat {
        self.format.unwrap_or(SyslogFormat::Json)
    }

    /// Which keys are set, by name (for the kind checks).
    fn set_keys(&self) -> Vec<&'static str> {
        let set = [
            ("path", self.path.is_some()),
            ("max_bytes", self.max_bytes.is_some()),
            ("max_age_secs", self.max_age_secs.is_some()),
            ("keep", self.keep.is_some()),
            ("fsync", self.fsync.is_some()),
            ("fsync_interval_secs", self.fsync_interval_secs.is_some()),
            ("transport", self.transport.is_some()),
            ("address", self.address.is_some()),
            ("facility", self.facility.is_some()),
            ("app_name", self.app_name.is_some()),
            ("format", self.format.is_some()),
            ("sd_id", self.sd_id.is_some()),
        ];
        set.iter().filter(|(_, s)| *s).map(|(k, _)| *k).collect()
    }

    /// The entry's first problem; `i` is its place (for `output.I.KEY` in the message).
    fn validate_at(&self, i: usize) -> Result<(), String> {
        let at = |k: &str| format!("output.{i}.{k}");
        if let Some(n) = &self.name
            && (n.is_empty()
                || n.len() > 64
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            return Err(format!(
                "{} must be 1-64 letters, digits, '-', '_' or '.', got {n:?}",
                at("name")
            ));
        }
        if self.records.is_empty() {
            return Err(format!(
                "{} must name at least one record type",
                at("records")
            ));
        }
        if !(1..=1_000_000).contains(&self.queue) {
            return Err(format!(
                "{} must be 1-1000000, got {}",
                at("queue"),
                self.queue
            ));
        }
        let foreign = match self.kind {
            OutputKind::File => SYSLOG_KEYS,
            OutputKind::Syslog => FILE_KEYS,
        };
        if let Some(k) = self.set_keys().into_iter().find(|k| foreign.contains(k)) {
            return Err(format!(
                "{} is not a key of {} outputs",
                at(k),
                self.kind.as_str()
            ));
        }
        match self.kind {
            OutputKind::File => self.validate_file(&at),
            OutputKind::Syslog => self.validate_syslog(&at),
        }
    }

    fn validate_file(&self, at: &dyn Fn(&str) -> String) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Err(format!("{} is required for file outputs", at("path")));
        };
        if !path.is_absolute() || path.file_name().is_none() {
            return Err(format!(
                "{} must be an absolute file path, got {}",
                at("path"),
                path.display()
            ));
        }
        if let Some(b) = self.max_bytes
            && b != 0
            && b < 1024
        {
            return Err(format!(
                "{} must be 0 (never) or at least 1024, got {b}",
                at("max_bytes")
            ));
        }
        if let Some(k) = self.keep
            && !(1..=1000).contains(&k)
        {
            return Err(format!("{} must be 1-1000, got {k}", at("keep")));
        }
        if let Some(s) = self.fsync_interval_secs {
            if self.fsync.unwrap_or(FsyncPolicy::Interval) != FsyncPolicy::Interval {
                return Err(format!(
                    "{} only applies with fsync = \"interval\"",
                    at("fsync_interval_secs")
                ));
            }
            if !(1..=3600).contains(&s) {
                return Err(format!(
                    "{} must be 1-3600, got {s}",
                    at("fsync_interval_secs")
                ));
            }
        }
        Ok(())
    }

    fn validate_syslog(&self, at: &dyn Fn(&str) -> String) -> Result<(), String> {
        match (self.transport(), &self.address) {
            (Transport::Unix, Some(a)) if !a.starts_with('/') => {
                return Err(format!(
                    "{} must be an absolute socket path for transport \"unix\", got {a:?}",
                    at("address")
                ));
            }
            (Transport::Unix, _) => {}
            (t, None) => {
                return Err(format!(
                    "{} (HOST:PORT) is required for transport {:?}",
                    at("address"),
                    format!("{t:?}").to_lowercase()
                ));
            }
            (_, Some(a)) => {
                let port = a.rsplit_once(':').and_then(|(h, p)| {
                    (!h.is_empty()).then_some(())?;
                    p.parse::<u16>().ok().filter(|p| *p != 0)
                });
                if port.is_none() {
                    return Err(format!(
                        "{} must be HOST:PORT (e.g. 127.0.0.1:514 or [::1]:514), got {a:?}",
                        at("address")
                    ));
                }
            }
        }
        if let Some(a) = &self.app_name
            && (a.is_empty() || a.len() > 48 || !a.bytes().all(|b| (33..=126).contains(&b)))
        {
            return Err(format!(
                "{} must be 1-48 printable ASCII characters without spaces, got {a:?}",
                at("app_name")
            ));
        }
        if let Some(id) = &self.sd_id
            && !valid_sd_name(id)
        {
            return Err(format!(
                "{} must be 1-32 printable ASCII characters without '=', ']', '\"' or spaces \
                 (e.g. \"sentinel@32473\"), got {id:?}",
                at("sd_id")
            ));
        }
        if self.sd_id.is_some() && self.syslog_format() != SyslogFormat::Structured {
            return Err(format!(
                "{} only applies with format = \"structured\"",
                at("sd_id")
            ));
        }
        Ok(())
    }
}

/// RFC 5424's SD-NAME: 1-32 PRINTUSASCII except '=', SP, ']' and '"'.
pub fn valid_sd_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| (33..=126).contains(&b) && !b"=]\"".contains(&b))
}

/// Every entry's first problem, and names used twice.
pub fn validate(outputs: &[OutputConfig]) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for (i, o) in outputs.iter().enumerate() {
        o.validate_at(i)?;
        let name = o.name_at(i);
        if !names.insert(name.clone()) {
            return Err(format!("output.{i}.name {name:?} is used twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The `[[output]]` list of a file, read and checked as the configuration reads it.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Outputs {
        #[serde(default)]
        pub output: Vec<OutputConfig>,
    }

    pub(crate) fn parse(text: &str) -> Result<Outputs, String> {
        let o: Outputs = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(&o.output)?;
        Ok(o)
    }

    #[test]
    fn entries_load_with_defaults_and_choose_records() {
        let c = parse(
            "[[output]]\nkind = \"file\"\npath = \"/var/log/sentinel/a.jsonl\"\n\
             [[output]]\nkind = \"syslog\"\nname = \"siem\"\ntransport = \"tcp\"\n\
             address = \"127.0.0.1:6514\"\nrecords = [\"anomaly\", \"status\"]\n\
             min_level = \"high\"\nfacility = \"auth\"\nformat = \"structured\"\n",
        )
        .unwrap();
        assert_eq!(c.output.len(), 2);
        let (f, s) = (&c.output[0], &c.output[1]);
        assert_eq!(f.name_at(0), "file-0");
        assert_eq!(f.records, [RecordType::Anomaly, RecordType::Incident]);
        assert!(f.wants(RecordType::Anomaly, Some(Level::Low)));
        assert!(!f.wants(RecordType::Event, None));
        assert_eq!(s.name_at(1), "siem");
        assert!(s.wants(RecordType::Status, None));
        assert!(s.wants(RecordType::Anomaly, Some(Level::Critical)));
        assert!(!s.wants(RecordType::Anomaly, Some(Level::Medium)));
        assert!(!s.wants(RecordType::Incident, Some(Level::Critical)));
        assert_eq!(s.facility.unwrap().code(), 4);
    }

    #[test]
    fn bad_entries_are_refused_naming_the_key() {
        for (bad, key) in [
            ("kind = \"file\"\n", "output.0.path"),
            ("kind = \"file\"\npath = \"rel.jsonl\"\n", "output.0.path"),
            (
                "kind = \"file\"\npath = \"/x/a\"\naddress = \"/dev/log\"\n",
                "output.0.address",
            ),
            (
                "kind = \"file\"\npath = \"/x/a\"\nmax_bytes = 10\n",
                "output.0.max_bytes",
            ),
            (
                "kind = \"file\"\npath = \"/x/a\"\nkeep = 0\n",
                "output.0.keep",
            ),
            (
                "kind = \"file\"\npath = \"/x/a\"\nfsync = \"never\"\nfsync_interval_secs = 3\n",
                "output.0.fsync_interval_secs",
            ),
            ("kind = \"syslog\"\npath = \"/x\"\n", "output.0.path"),
            (
                "kind = \"syslog\"\ntransport = \"udp\"\n",
                "output.0.address",
            ),
            (
                "kind = \"syslog\"\ntransport = \"tcp\"\naddress = \"host\"\n",
                "output.0.address",
            ),
            (
                "kind = \"syslog\"\naddress = \"dev/log\"\n",
                "output.0.address",
            ),
            (
                "kind = \"syslog\"\napp_name = \"two words\"\n",
                "output.0.app_name",
            ),
            (
                "kind = \"syslog\"\nformat = \"structured\"\nsd_id = \"a=b\"\n",
                "output.0.sd_id",
            ),
            ("kind = \"syslog\"\nsd_id = \"x@1\"\n", "output.0.sd_id"),
            ("kind = \"syslog\"\nrecords = []\n", "output.0.records"),
            ("kind = \"syslog\"\nqueue = 0\n", "output.0.queue"),
            ("kind = \"syslog\"\nname = \"a b\"\n", "output.0.name"),
        ] {
            let e = parse(&format!("[[output]]\n{bad}")).unwrap_err();
            assert!(e.contains(key), "{bad}: {e}");
        }
        for bad in [
            "kind = \"pipe\"\n",
            "kind = \"file\"\npath = \"/x\"\nbogus = 1\n",
            "kind = \"syslog\"\nrecords = [\"alert\"]\n",
            "kind = \"syslog\"\nfacility = \"local9\"\n",
        ] {
            assert!(parse(&format!("[[output]]\n{bad}")).is_err(), "{bad}");
        }
        let twice = "[[output]]\nkind = \"syslog\"\nname = \"a\"\n\
                     [[output]]\nkind = \"syslog\"\nname = \"a\"\n";
        assert!(parse(twice).unwrap_err().contains("used twice"));
    }
}
