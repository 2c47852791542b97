//! `RawStr`: kernel bytes that may not be UTF-8, kept exactly, with a lossless text form.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Bytes from the kernel that may not be UTF-8 (paths, argv, comm). Kept exactly; shown with
/// invalid bytes as `\xNN` and a literal backslash as `\\`, so the text form is lossless.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawStr(pub Vec<u8>);

impl RawStr {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The escaped text form (see the type's doc).
    pub fn escaped(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c == '\\' {
                    out.push_str("\\\\");
                } else {
                    out.push(c);
                }
            }
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
        out
    }

    /// Inverse of [`RawStr::escaped`]. Unknown escapes are kept literally.
    pub fn unescape(s: &str) -> RawStr {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' && i + 1 < b.len() {
                if b[i + 1] == b'\\' {
                    out.push(b'\\');
                    i += 2;
                    continue;
                }
                if b[i + 1] == b'x' && i + 4 <= b.len() {
                    let hex = |c: u8| (c as char).to_digit(16);
                    if let (Some(h), Some(l)) = (hex(b[i + 2]), hex(b[i + 3])) {
                        out.push((h * 16 + l) as u8);
                        i += 4;
                        continue;
                    }
                }
            }
            out.push(b[i]);
            i += 1;
        }
        RawStr(out)
    }

    /// Lossy UTF-8 view, for matching against configured patterns.
    pub fn lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

impl From<&str> for RawStr {
    fn from(s: &str) -> Self {
        RawStr(s.as_bytes().to_vec())
    }
}

impl From<&[u8]> for RawStr {
    fn from(s: &[u8]) -> Self {
        RawStr(s.to_vec())
    }
}

impl fmt::Display for RawStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.escaped())
    }
}

impl fmt::Debug for RawStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.escaped())
    }
}

impl Serialize for RawStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Nearly every path and argument is UTF-8 without a backslash: no copy then.
        match std::str::from_utf8(&self.0) {
            Ok(text) if !text.contains('\\') => s.serialize_str(text),
            _ => s.serialize_str(&self.escaped()),
        }
    }
}

impl<'de> Deserialize<'de> for RawStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(RawStr::unescape(&s))
    }
}
