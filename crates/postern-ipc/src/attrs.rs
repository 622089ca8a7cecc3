//! The attribute list and its frame encoding.

use thiserror::Error;

/// Why a frame or attribute list could not be decoded.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame length exceeds the caller's limit.
    #[error("frame length {len} exceeds limit {limit}")]
    TooLarge { len: u64, limit: u64 },
    /// The payload ended inside an attribute.
    #[error("truncated attribute list")]
    Truncated,
    /// An attribute name is empty or not printable ASCII.
    #[error("bad attribute name")]
    BadName,
    /// A required attribute is missing.
    #[error("missing attribute: {0}")]
    Missing(&'static str),
    /// An attribute has a value that does not parse.
    #[error("bad value for attribute {0}")]
    BadValue(&'static str),
    /// The conversation names a protocol other than the expected one.
    #[error("protocol mismatch: expected {expected}, got {got}")]
    WrongProtocol { expected: &'static str, got: String },
}

/// An ordered list of (name, value) attributes. Names may repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrList {
    items: Vec<(String, Vec<u8>)>,
}

impl AttrList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an attribute. Names longer than 255 bytes are a programming error
    /// and are truncated (callers only use fixed, short names).
    pub fn push(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Self {
        let name: String = name.chars().take(255).collect();
        self.items.push((name, value.as_ref().to_vec()));
        self
    }

    /// Appends a numeric attribute in decimal.
    pub fn push_num(&mut self, name: &str, value: u64) -> &mut Self {
        self.push(name, value.to_string())
    }

    /// The first value with this name.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.items
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value with this name, as UTF-8 (lossy) text; `""` when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    }

    /// The first value with this name, required.
    pub fn require(&self, name: &'static str) -> Result<&[u8], FrameError> {
        self.get(name).ok_or(FrameError::Missing(name))
    }

    /// A required text attribute.
    pub fn require_text(&self, name: &'static str) -> Result<String, FrameError> {
        let v = self.require(name)?;
        String::from_utf8(v.to_vec()).map_err(|_| FrameError::BadValue(name))
    }

    /// A required decimal attribute.
    pub fn require_num(&self, name: &'static str) -> Result<u64, FrameError> {
        let v = self.require(name)?;
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(FrameError::BadValue(name))
    }

    /// An optional decimal attribute (absent → `default`).
    pub fn num_or(&self, name: &'static str, default: u64) -> Result<u64, FrameError> {
        match self.get(name) {
            None => Ok(default),
            Some(_) => self.require_num(name),
        }
    }

    /// All values with this name, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.items
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Iterates over every attribute.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.items.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// Checks that the `proto` attribute names `expected`.
    pub fn expect_proto(&self, expected: &'static str) -> Result<(), FrameError> {
        let got = self.text("proto");
        if got == expected {
            Ok(())
        } else {
            Err(FrameError::WrongProtocol { expected, got })
        }
    }

    /// Encodes the list as a payload (no frame length).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        for (n, v) in &self.items {
            out.push(n.len() as u8);
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(v);
        }
        out
    }

    fn encoded_len(&self) -> usize {
        self.items.iter().map(|(n, v)| 5 + n.len() + v.len()).sum()
    }

    /// Decodes a payload. Never panics.
    pub fn decode(mut buf: &[u8]) -> Result<Self, FrameError> {
        let mut items = Vec::new();
        while !buf.is_empty() {
            let nlen = buf[0] as usize;
            buf = &buf[1..];
            if nlen == 0 {
                return Err(FrameError::BadName);
            }
            if buf.len() < nlen + 4 {
                return Err(FrameError::Truncated);
            }
            let name = &buf[..nlen];
            if !name.iter().all(|b| b.is_ascii_graphic()) {
                return Err(FrameError::BadName);
            }
            let vlen = u32::from_be_bytes([buf[nlen], buf[nlen + 1], buf[nlen + 2], buf[nlen + 3]])
                as usize;
            buf = &buf[nlen + 4..];
            if buf.len() < vlen {
                return Err(FrameError::Truncated);
            }
            let name = String::from_utf8(name.to_vec()).map_err(|_| FrameError::BadName)?;
            items.push((name, buf[..vlen].to_vec()));
            buf = &buf[vlen..];
        }
        Ok(Self { items })
    }
}

/// Encodes a list as a complete frame (length prefix + payload).
pub fn encode_frame(list: &AttrList) -> Vec<u8> {
    let payload = list.encode();
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Decodes a 4-byte frame header and checks it against `limit`.
pub fn decode_frame_len(header: [u8; 4], limit: u64) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as u64;
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    Ok(len as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut a = AttrList::new();
        a.push("proto", "cleanup/1")
            .push("sender", "")
            .push_num("size", 42);
        a.push("rcpt", b"a\0b");
        let enc = a.encode();
        assert_eq!(AttrList::decode(&enc).unwrap(), a);
        let f = encode_frame(&a);
        assert_eq!(
            decode_frame_len([f[0], f[1], f[2], f[3]], 1000).unwrap(),
            enc.len()
        );
    }

    #[test]
    fn garbage_never_panics() {
        for seed in 0u32..2000 {
            let bytes: Vec<u8> = (0..(seed % 37))
                .map(|i| (seed.wrapping_mul(31).wrapping_add(i * 7)) as u8)
                .collect();
            let _outcome_is_irrelevant = AttrList::decode(&bytes).is_ok();
        }
        assert_eq!(AttrList::decode(&[3, b'a']), Err(FrameError::Truncated));
        assert!(decode_frame_len([255, 255, 255, 255], 10).is_err());
    }
}
