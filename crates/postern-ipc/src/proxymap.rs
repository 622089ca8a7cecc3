//! The `proxymap/1` protocol: table lookups through the proxymap service.
//!
//! A client (a `proxy:TYPE:NAME` table in `postern-table`) keeps one connection to
//! `$queue_directory/private/proxymap` and sends one [`ProxyRequest`] frame per lookup;
//! the service answers each with one [`ProxyReply`]. The table is named without the
//! `proxy:` prefix; the service opens it once per (table, flags) and refuses tables not
//! listed (as `proxy:TYPE:NAME`) in `proxy_read_maps`.
//!
//! # Security
//! The service trusts nothing in a request: the table name is only compared against the
//! approved list, the key is only looked up. Frames are bounded by the caller's limit.

use crate::{AttrList, FrameError};

/// Largest proxymap frame either side accepts (keys and values are short).
pub const PROXY_FRAME_LIMIT: u64 = 1024 * 1024;

/// Lookup flag: fold the key to lower case (fixed-string tables).
pub const FLAG_FOLD_CASE: u32 = 1;

/// What a client asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyOp {
    /// Look a key up.
    Lookup,
}

impl ProxyOp {
    fn as_str(self) -> &'static str {
        match self {
            ProxyOp::Lookup => "lookup",
        }
    }
}

/// One lookup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRequest {
    /// The operation.
    pub op: ProxyOp,
    /// The table, `TYPE:NAME` (no `proxy:` prefix).
    pub table: String,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// The key.
    pub key: String,
}

impl ProxyRequest {
    /// Protocol name.
    pub const PROTO: &'static str = "proxymap/1";

    /// Encodes the request.
    pub fn to_attrs(&self) -> AttrList {
        let mut a = AttrList::new();
        a.push("proto", Self::PROTO)
            .push("op", self.op.as_str())
            .push("table", &self.table)
            .push_num("flags", u64::from(self.flags))
            .push("key", &self.key);
        a
    }

    /// Decodes a request.
    ///
    /// # Errors
    /// A wrong protocol, an unknown op, or a missing or malformed attribute.
    pub fn from_attrs(a: &AttrList) -> Result<Self, FrameError> {
        a.expect_proto(Self::PROTO)?;
        let op = match a.require("op")? {
            b"lookup" => ProxyOp::Lookup,
            _ => return Err(FrameError::BadValue("op")),
        };
        let flags =
            u32::try_from(a.num_or("flags", 0)?).map_err(|_| FrameError::BadValue("flags"))?;
        Ok(ProxyRequest {
            op,
            table: a.require_text("table")?,
            flags,
            key: a.require_text("key")?,
        })
    }
}

/// The outcome of a request (Postfix's PROXY_STAT_* values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyStatus {
    /// Found; the reply carries the value.
    Ok,
    /// Not found.
    NoKey,
    /// The table could not answer now: the caller defers.
    Retry,
    /// A malformed request.
    Bad,
    /// The table is not in `proxy_read_maps`.
    Deny,
}

impl ProxyStatus {
    fn code(self) -> u64 {
        match self {
            ProxyStatus::Ok => 0,
            ProxyStatus::NoKey => 1,
            ProxyStatus::Retry => 2,
            ProxyStatus::Bad => 3,
            ProxyStatus::Deny => 4,
        }
    }

    fn from_code(c: u64) -> Option<Self> {
        Some(match c {
            0 => ProxyStatus::Ok,
            1 => ProxyStatus::NoKey,
            2 => ProxyStatus::Retry,
            3 => ProxyStatus::Bad,
            4 => ProxyStatus::Deny,
            _ => return None,
        })
    }
}

/// The service's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyReply {
    /// Outcome.
    pub status: ProxyStatus,
    /// The value (status `Ok`) or a reason (`Retry`, `Bad`, `Deny`).
    pub value: String,
}

impl ProxyReply {
    /// Protocol name.
    pub const PROTO: &'static str = "proxymap-reply/1";

    /// Encodes the reply.
    pub fn to_attrs(&self) -> AttrList {
        let mut a = AttrList::new();
        a.push("proto", Self::PROTO)
            .push_num("status", self.status.code())
            .push("value", &self.value);
        a
    }

    /// Decodes a reply.
    ///
    /// # Errors
    /// A wrong protocol or a missing or malformed attribute.
    pub fn from_attrs(a: &AttrList) -> Result<Self, FrameError> {
        a.expect_proto(Self::PROTO)?;
        let status = ProxyStatus::from_code(a.require_num("status")?)
            .ok_or(FrameError::BadValue("status"))?;
        Ok(ProxyReply {
            status,
            value: a.require_text("value")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let req = ProxyRequest {
            op: ProxyOp::Lookup,
            table: "hash:/etc/x".into(),
            flags: FLAG_FOLD_CASE,
            key: "Key".into(),
        };
        let back = AttrList::decode(&req.to_attrs().encode()).unwrap();
        assert_eq!(ProxyRequest::from_attrs(&back).unwrap(), req);
        for status in [
            ProxyStatus::Ok,
            ProxyStatus::NoKey,
            ProxyStatus::Retry,
            ProxyStatus::Bad,
            ProxyStatus::Deny,
        ] {
            let rep = ProxyReply {
                status,
                value: "v".into(),
            };
            let back = AttrList::decode(&rep.to_attrs().encode()).unwrap();
            assert_eq!(ProxyReply::from_attrs(&back).unwrap(), rep);
        }
    }

    #[test]
    fn refuses_other_protocols_and_ops() {
        let mut a = AttrList::new();
        a.push("proto", "cleanup/1");
        assert!(ProxyRequest::from_attrs(&a).is_err());
        let mut a = AttrList::new();
        a.push("proto", ProxyRequest::PROTO)
            .push("op", "update")
            .push("table", "hash:x")
            .push("key", "k");
        assert_eq!(
            ProxyRequest::from_attrs(&a),
            Err(FrameError::BadValue("op"))
        );
    }
}
