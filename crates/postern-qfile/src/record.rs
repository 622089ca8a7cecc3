//! Encoding and decoding of queue files.

use thiserror::Error;

/// File magic.
pub const MAGIC: &[u8; 8] = b"POSTERNQ";
/// Current format version.
pub const VERSION: u8 = 1;

/// Record type codes.
pub mod rec {
    /// Arrival time.
    pub const TIME: u8 = b'T';
    /// Sender full name.
    pub const FULLNAME: u8 = b'F';
    /// Envelope sender.
    pub const SENDER: u8 = b'S';
    /// Named attribute.
    pub const ATTR: u8 = b'A';
    /// Recipient to deliver.
    pub const RCPT: u8 = b'R';
    /// Recipient done.
    pub const DONE: u8 = b'D';
    /// Message content.
    pub const CONTENT: u8 = b'M';
    /// End marker.
    pub const END: u8 = b'E';
}

/// Why a queue file could not be decoded.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum QfileError {
    /// Not a Postern queue file.
    #[error("bad magic (not a Postern queue file)")]
    BadMagic,
    /// A version this build does not read.
    #[error("unsupported queue file version {0}")]
    BadVersion(u8),
    /// The file ends inside a record or lacks the end record.
    #[error("truncated queue file")]
    Truncated,
    /// A record length exceeds the caller's limit.
    #[error("record length {len} at offset {offset} exceeds limit {limit}")]
    TooLong { offset: u64, len: u64, limit: u64 },
    /// An unknown record type.
    #[error("unknown record type 0x{kind:02x} at offset {offset}")]
    UnknownRecord { offset: u64, kind: u8 },
    /// A record whose payload does not parse.
    #[error("malformed {what} record at offset {offset}")]
    Malformed { offset: u64, what: &'static str },
    /// Data after the end record.
    #[error("data after end record")]
    TrailingData,
    /// A required record is missing.
    #[error("missing {0} record")]
    Missing(&'static str),
}

/// One recipient record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientRecord {
    /// Address to deliver to.
    pub address: String,
    /// Original recipient address.
    pub original: String,
    /// DSN ORCPT.
    pub orcpt: String,
    /// DSN NOTIFY bits.
    pub notify: u8,
    /// Offset of the record's type byte in the file (set by [`parse`]).
    pub offset: u64,
    /// Whether the recipient is done (`D` record).
    pub done: bool,
}

/// A decoded (or to-be-encoded) queue file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFile {
    /// Arrival time (seconds, microseconds).
    pub arrival: (u64, u32),
    /// Sender full name.
    pub fullname: String,
    /// Envelope sender ("" = null sender).
    pub sender: String,
    /// Named attributes in file order.
    pub attrs: Vec<(String, String)>,
    /// Recipients in file order.
    pub recipients: Vec<RecipientRecord>,
    /// Message content.
    pub content: Vec<u8>,
    /// Offset of the content bytes in the file (set by [`parse`] and [`encode`]).
    pub content_offset: u64,
}

impl QueueFile {
    /// The first attribute with this name.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Recipients not yet done.
    pub fn pending(&self) -> impl Iterator<Item = &RecipientRecord> {
        self.recipients.iter().filter(|r| !r.done)
    }
}

/// The byte that marks a recipient done, to be written at `RecipientRecord::offset`.
pub fn mark_done_byte() -> u8 {
    rec::DONE
}

fn put_len(out: &mut Vec<u8>, mut len: u64) {
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_rec(out: &mut Vec<u8>, kind: u8, payload: &[u8]) -> u64 {
    let off = out.len() as u64;
    out.push(kind);
    put_len(out, payload.len() as u64);
    out.extend_from_slice(payload);
    off
}

fn rcpt_payload(r: &RecipientRecord) -> Vec<u8> {
    let mut p = Vec::with_capacity(r.address.len() * 2 + r.orcpt.len() + 8);
    p.extend_from_slice(r.notify.to_string().as_bytes());
    for f in [&r.orcpt, &r.original, &r.address] {
        p.push(0);
        p.extend_from_slice(f.as_bytes());
    }
    p
}

/// Encodes a queue file. Sets `content_offset` and each recipient's `offset`.
/// Values containing NUL are the caller's bug and are encoded as given.
pub fn encode(q: &mut QueueFile) -> Vec<u8> {
    let mut out = Vec::with_capacity(q.content.len() + 512);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    put_rec(
        &mut out,
        rec::TIME,
        format!("{}.{:06}", q.arrival.0, q.arrival.1).as_bytes(),
    );
    if !q.fullname.is_empty() {
        put_rec(&mut out, rec::FULLNAME, q.fullname.as_bytes());
    }
    put_rec(&mut out, rec::SENDER, q.sender.as_bytes());
    for (n, v) in &q.attrs {
        put_rec(&mut out, rec::ATTR, format!("{n}={v}").as_bytes());
    }
    for r in q.recipients.iter_mut() {
        let kind = if r.done { rec::DONE } else { rec::RCPT };
        r.offset = put_rec(&mut out, kind, &rcpt_payload(r));
    }
    out.push(rec::CONTENT);
    put_len(&mut out, q.content.len() as u64);
    q.content_offset = out.len() as u64;
    out.extend_from_slice(&q.content);
    put_rec(&mut out, rec::END, b"");
    out
}

/// One raw record: (offset, type, payload).
type RawRecord<'a> = (u64, u8, &'a [u8]);

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    limit: u64,
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<Option<RawRecord<'a>>, QfileError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let offset = self.pos as u64;
        let kind = self.buf[self.pos];
        self.pos += 1;
        let mut len: u64 = 0;
        for shift in 0..8 {
            let b = *self.buf.get(self.pos).ok_or(QfileError::Truncated)?;
            self.pos += 1;
            len |= u64::from(b & 0x7f) << (7 * shift);
            if b & 0x80 == 0 {
                break;
            }
            if shift == 7 {
                return Err(QfileError::Malformed {
                    offset,
                    what: "length",
                });
            }
        }
        if len > self.limit {
            return Err(QfileError::TooLong {
                offset,
                len,
                limit: self.limit,
            });
        }
        let len = len as usize;
        if self.buf.len() - self.pos < len {
            return Err(QfileError::Truncated);
        }
        let payload = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(Some((offset, kind, payload)))
    }
}

fn text(p: &[u8], offset: u64, what: &'static str) -> Result<String, QfileError> {
    String::from_utf8(p.to_vec()).map_err(|_| QfileError::Malformed { offset, what })
}

fn parse_time(p: &[u8], offset: u64) -> Result<(u64, u32), QfileError> {
    let bad = QfileError::Malformed {
        offset,
        what: "time",
    };
    let s = std::str::from_utf8(p).map_err(|_| bad.clone())?;
    let (a, b) = s.split_once('.').unwrap_or((s, "0"));
    let secs = a.parse().map_err(|_| bad.clone())?;
    let usecs: u32 = b.parse().map_err(|_| bad.clone())?;
    if usecs >= 1_000_000 {
        return Err(bad);
    }
    Ok((secs, usecs))
}

fn parse_rcpt(p: &[u8], offset: u64, done: bool) -> Result<RecipientRecord, QfileError> {
    let bad = || QfileError::Malformed {
        offset,
        what: "recipient",
    };
    let s = std::str::from_utf8(p).map_err(|_| bad())?;
    let mut it = s.splitn(4, '\0');
    let notify = it.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
    let orcpt = it.next().ok_or_else(bad)?.to_string();
    let original = it.next().ok_or_else(bad)?.to_string();
    let address = it.next().ok_or_else(bad)?.to_string();
    Ok(RecipientRecord {
        address,
        original,
        orcpt,
        notify,
        offset,
        done,
    })
}

/// Decodes a queue file. Every record length is bounded by `limit`
/// (callers pass at least `message_size_limit` plus slack).
pub fn parse(buf: &[u8], limit: u64) -> Result<QueueFile, QfileError> {
    if buf.len() < MAGIC.len() + 1 || &buf[..MAGIC.len()] != MAGIC {
        return Err(QfileError::BadMagic);
    }
    let version = buf[MAGIC.len()];
    if version != VERSION {
        return Err(QfileError::BadVersion(version));
    }
    let mut r = Reader {
        buf,
        pos: MAGIC.len() + 1,
        limit,
    };
    let mut q = QueueFile::default();
    let (mut seen_time, mut seen_sender, mut seen_content) = (false, false, false);
    loop {
        let Some((offset, kind, p)) = r.next()? else {
            return Err(QfileError::Truncated);
        };
        match kind {
            rec::TIME => {
                q.arrival = parse_time(p, offset)?;
                seen_time = true;
            }
            rec::FULLNAME => q.fullname = text(p, offset, "full name")?,
            rec::SENDER => {
                q.sender = text(p, offset, "sender")?;
                seen_sender = true;
            }
            rec::ATTR => {
                let s = text(p, offset, "attribute")?;
                let (n, v) = s.split_once('=').ok_or(QfileError::Malformed {
                    offset,
                    what: "attribute",
                })?;
                q.attrs.push((n.to_string(), v.to_string()));
            }
            rec::RCPT | rec::DONE => q.recipients.push(parse_rcpt(p, offset, kind == rec::DONE)?),
            rec::CONTENT => {
                q.content_offset = (r.pos - p.len()) as u64;
                q.content = p.to_vec();
                seen_content = true;
            }
            rec::END => {
                if r.pos != buf.len() {
                    return Err(QfileError::TrailingData);
                }
                break;
            }
            other => {
                return Err(QfileError::UnknownRecord {
                    offset,
                    kind: other,
                });
            }
        }
    }
    for (seen, what) in [
        (seen_time, "time"),
        (seen_sender, "sender"),
        (seen_content, "content"),
    ] {
        if !seen {
            return Err(QfileError::Missing(what));
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> QueueFile {
        QueueFile {
            arrival: (1_700_000_000, 123),
            fullname: "Joe".into(),
            sender: "joe@example.com".into(),
            attrs: vec![("log_ident".into(), "ABC".into())],
            recipients: vec![
                RecipientRecord {
                    address: "a@localhost".into(),
                    original: "a".into(),
                    ..Default::default()
                },
                RecipientRecord {
                    address: "b@localhost".into(),
                    notify: 10,
                    ..Default::default()
                },
            ],
            content: b"Subject: hi\n\nbody\n".to_vec(),
            content_offset: 0,
        }
    }

    #[test]
    fn round_trip_and_cross_off() {
        let mut q = sample();
        let mut bytes = encode(&mut q);
        let back = parse(&bytes, 1 << 20).unwrap();
        assert_eq!(back, q);
        let off = back.recipients[1].offset as usize;
        bytes[off] = mark_done_byte();
        let again = parse(&bytes, 1 << 20).unwrap();
        assert!(again.recipients[1].done && !again.recipients[0].done);
        assert_eq!(&bytes[again.content_offset as usize..][..4], b"Subj");
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = encode(&mut sample());
        for n in 0..bytes.len() {
            assert!(parse(&bytes[..n], 1 << 20).is_err(), "prefix {n} accepted");
        }
    }

    #[test]
    fn limits_and_garbage() {
        let bytes = encode(&mut sample());
        assert!(matches!(parse(&bytes, 4), Err(QfileError::TooLong { .. })));
        let mut bad = bytes.clone();
        bad[8] = 9;
        assert_eq!(parse(&bad, 1 << 20), Err(QfileError::BadVersion(9)));
        assert_eq!(parse(b"garbage!!", 100), Err(QfileError::BadMagic));
    }
}
