//! The milter wire format (pure): packet framing, MTA commands and milter
//! responses, both directions (the MTA side uses `Command::encode` and
//! [`Response::decode`]; tests and fakes use the other two).
//!
//! A packet is a 4-byte big-endian length, then that many bytes: one command
//! byte and its data. Strings are NUL-terminated; numbers are big-endian u32
//! (u16 for the client port).
//!
//! # Security
//! Every length comes from the peer, so [`frame`] checks it before anything is
//! allocated: 0 (no command byte) and more than [`MAX_PACKET`] are errors, a
//! short buffer is "need more". Decoders check that every number and string lies
//! inside the packet and that nothing is left over; they never panic (fuzzed:
//! `milter_packet`).

pub mod command;
pub mod response;

pub use command::{Command, Family};
pub use response::Response;

/// Largest packet accepted from a milter (64 MiB).
pub const MAX_PACKET: usize = 64 << 20;
/// Largest body chunk sent in one SMFIC_BODY (Postfix's MILTER_CHUNK_SIZE).
pub const CHUNK: usize = 65535;

/// SMFIF_* action flags (what the milter may do).
pub mod action {
    /// Add headers.
    pub const ADDHDRS: u32 = 1 << 0;
    /// Replace the body.
    pub const CHGBODY: u32 = 1 << 1;
    /// Add recipients.
    pub const ADDRCPT: u32 = 1 << 2;
    /// Delete recipients.
    pub const DELRCPT: u32 = 1 << 3;
    /// Change or delete headers.
    pub const CHGHDRS: u32 = 1 << 4;
    /// Quarantine.
    pub const QUARANTINE: u32 = 1 << 5;
    /// Change the sender.
    pub const CHGFROM: u32 = 1 << 6;
    /// Add recipients with ESMTP args.
    pub const ADDRCPT_PAR: u32 = 1 << 7;
    /// Send macro lists.
    pub const SETSYMLIST: u32 = 1 << 8;
    /// Everything this client supports (Postfix's set).
    pub const ALL: u32 = ADDHDRS
        | CHGBODY
        | ADDRCPT
        | DELRCPT
        | CHGHDRS
        | QUARANTINE
        | CHGFROM
        | ADDRCPT_PAR
        | SETSYMLIST;
}

/// SMFIP_* protocol flags (events not sent, replies not expected).
pub mod proto {
    /// No SMFIC_CONNECT.
    pub const NOCONNECT: u32 = 1 << 0;
    /// No SMFIC_HELO.
    pub const NOHELO: u32 = 1 << 1;
    /// No SMFIC_MAIL.
    pub const NOMAIL: u32 = 1 << 2;
    /// No SMFIC_RCPT.
    pub const NORCPT: u32 = 1 << 3;
    /// No SMFIC_BODY.
    pub const NOBODY: u32 = 1 << 4;
    /// No SMFIC_HEADER.
    pub const NOHDRS: u32 = 1 << 5;
    /// No SMFIC_EOH.
    pub const NOEOH: u32 = 1 << 6;
    /// No reply to SMFIC_HEADER.
    pub const NR_HDR: u32 = 1 << 7;
    /// No SMFIC_UNKNOWN.
    pub const NOUNKNOWN: u32 = 1 << 8;
    /// No SMFIC_DATA.
    pub const NODATA: u32 = 1 << 9;
    /// The MTA understands SMFIR_SKIP.
    pub const SKIP: u32 = 1 << 10;
    /// The milter wants rejected RCPTs too.
    pub const RCPT_REJ: u32 = 1 << 11;
    /// No reply to SMFIC_CONNECT.
    pub const NR_CONN: u32 = 1 << 12;
    /// No reply to SMFIC_HELO.
    pub const NR_HELO: u32 = 1 << 13;
    /// No reply to SMFIC_MAIL.
    pub const NR_MAIL: u32 = 1 << 14;
    /// No reply to SMFIC_RCPT.
    pub const NR_RCPT: u32 = 1 << 15;
    /// No reply to SMFIC_DATA.
    pub const NR_DATA: u32 = 1 << 16;
    /// No reply to SMFIC_UNKNOWN.
    pub const NR_UNKN: u32 = 1 << 17;
    /// No reply to SMFIC_EOH.
    pub const NR_EOH: u32 = 1 << 18;
    /// No reply to SMFIC_BODY.
    pub const NR_BODY: u32 = 1 << 19;
    /// Header values keep their leading space.
    pub const HDR_LEADSPC: u32 = 1 << 20;
    /// Events that can be switched off.
    pub const NOSEND_MASK: u32 =
        NOCONNECT | NOHELO | NOMAIL | NORCPT | NOBODY | NOHDRS | NOEOH | NOUNKNOWN | NODATA;
    /// Replies that can be switched off.
    pub const NOREPLY_MASK: u32 =
        NR_CONN | NR_HELO | NR_MAIL | NR_RCPT | NR_DATA | NR_UNKN | NR_HDR | NR_EOH | NR_BODY;

    /// What this client offers for a protocol version (2, 3, 4 or 6); None for others.
    pub fn offered(version: u32) -> Option<u32> {
        let v2 = NOCONNECT | NOHELO | NOMAIL | NORCPT | NOBODY | NOHDRS | NOEOH;
        let v3 = v2 | NOUNKNOWN;
        let v4 = v3 | NODATA;
        Some(match version {
            2 => v2,
            3 => v3,
            4 | 5 => v4,
            6 => v4 | SKIP | RCPT_REJ | NOREPLY_MASK | HDR_LEADSPC,
            _ => return None,
        })
    }
}

/// Why a packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A length of 0: not even a command byte.
    #[error("bad packet length: {0}")]
    BadLength(u32),
    /// A length over [`MAX_PACKET`].
    #[error("unreasonable packet length: {0} > {MAX_PACKET}")]
    TooLong(u32),
    /// A number or string that runs past the end of the packet.
    #[error("packet too short for {0}")]
    Truncated(&'static str),
    /// A command or reply byte this side does not know.
    #[error("unknown {what} code 0x{code:02x}")]
    Unknown {
        /// "reply" or "command".
        what: &'static str,
        /// The byte.
        code: u8,
    },
    /// Data after the last field.
    #[error("reply '{}' was followed by {len} data bytes", *.code as char)]
    Trailing {
        /// The command or reply byte.
        code: u8,
        /// How many bytes were left.
        len: usize,
    },
}

/// One framed packet found in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Bytes of the buffer it used (header included).
    pub consumed: usize,
    /// The command or response byte.
    pub code: u8,
    /// The data after it.
    pub data: &'a [u8],
}

/// Finds the first complete packet in `buf`: `Ok(None)` when more bytes are
/// needed.
pub fn frame(buf: &[u8]) -> Result<Option<Packet<'_>>, CodecError> {
    let Some(head) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = check_len(*head)?;
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    match body.split_first() {
        Some((&code, data)) => Ok(Some(Packet {
            consumed: 4 + len,
            code,
            data,
        })),
        None => Err(CodecError::BadLength(0)),
    }
}

/// Checks a packet header: the length of command byte + data.
pub fn check_len(head: [u8; 4]) -> Result<usize, CodecError> {
    let len = u32::from_be_bytes(head);
    match usize::try_from(len) {
        _ if len == 0 => Err(CodecError::BadLength(len)),
        Ok(n) if n <= MAX_PACKET => Ok(n),
        _ => Err(CodecError::TooLong(len)),
    }
}

/// Appends one packet (length, code, data) to `out`.
pub fn put_packet(out: &mut Vec<u8>, code: u8, data: &[u8]) {
    // Callers never build packets near 4 GiB (body chunks are ≤ CHUNK); saturate
    // rather than wrap if one ever did, so the peer sees a bad length.
    let len = u32::try_from(data.len() + 1).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(code);
    out.extend_from_slice(data);
}

/// A cursor over one packet's data.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    pub(crate) fn u32(&mut self) -> Result<u32, CodecError> {
        let (n, rest) = self
            .data
            .split_first_chunk::<4>()
            .ok_or(CodecError::Truncated("network long"))?;
        self.data = rest;
        Ok(u32::from_be_bytes(*n))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, CodecError> {
        let (n, rest) = self
            .data
            .split_first_chunk::<2>()
            .ok_or(CodecError::Truncated("network short"))?;
        self.data = rest;
        Ok(u16::from_be_bytes(*n))
    }

    pub(crate) fn byte(&mut self) -> Result<u8, CodecError> {
        let (b, rest) = self
            .data
            .split_first()
            .ok_or(CodecError::Truncated("octet"))?;
        self.data = rest;
        Ok(*b)
    }

    /// A NUL-terminated string (bytes converted lossily to UTF-8).
    pub(crate) fn string(&mut self) -> Result<String, CodecError> {
        let end = self
            .data
            .iter()
            .position(|&b| b == 0)
            .ok_or(CodecError::Truncated("string"))?;
        let s = String::from_utf8_lossy(&self.data[..end]).into_owned();
        self.data = &self.data[end + 1..];
        Ok(s)
    }

    /// Every remaining byte.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Errors when bytes are left over.
    pub(crate) fn end(&self, code: u8) -> Result<(), CodecError> {
        match self.data.len() {
            0 => Ok(()),
            len => Err(CodecError::Trailing { code, len }),
        }
    }
}

/// Appends a NUL-terminated string (an embedded NUL would end it early on the
/// other side, so it is cut there).
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    out.extend_from_slice(&b[..end]);
    out.push(0);
}

#[cfg(test)]
mod tests;
