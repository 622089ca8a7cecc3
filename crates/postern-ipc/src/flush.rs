//! The fast flush protocol (`flush/1`): Postfix's `flush(8)` requests.
//!
//! | op          | fields            | who asks                                   |
//! |-------------|-------------------|--------------------------------------------|
//! | `add`       | site, queue_id    | qmgr, for each site a message was deferred to |
//! | `send_site` | site              | `postqueue -s site`, smtpd's `ETRN site`   |
//! | `send_file` | queue_id          | `postqueue -i queue_id`                    |
//! | `refresh`   | —                 | master's wake-up (a bare `W` trigger)       |
//! | `purge`     | —                 | refresh every log now                      |
//!
//! The reply carries one status with Postfix's meanings (`FLUSH_STAT_*`):
//! ok, fail (the service could not do it), bad (invalid parameter), deny
//! (the site is not in `fast_flush_domains`).
//!
//! # Security
//! Strict decoding: the protocol name, a known op, the fields the op needs,
//! each bounded by [`MAX_SITE`] / [`MAX_QUEUE_ID`]. The service still
//! validates the queue ID and maps the site to a harmless file name itself.

use crate::attrs::{AttrList, FrameError};

/// Longest site name accepted (a domain or `[address]`).
pub const MAX_SITE: usize = 255;
/// Longest queue ID accepted.
pub const MAX_QUEUE_ID: usize = 64;

/// A flush service request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOp {
    /// Remember that `queue_id` is queued for `site`.
    Add,
    /// Deliver the mail listed for `site` now.
    SendSite,
    /// Deliver the message `queue_id` now.
    SendFile,
    /// Refresh logs not read for `fast_flush_refresh_time`; purge empty ones.
    Refresh,
    /// Refresh every log.
    Purge,
}

impl FlushOp {
    /// The wire word (Postfix's request names, with `refresh` spelled out).
    pub fn as_str(self) -> &'static str {
        match self {
            FlushOp::Add => "add",
            FlushOp::SendSite => "send_site",
            FlushOp::SendFile => "send_file",
            FlushOp::Refresh => "refresh",
            FlushOp::Purge => "purge",
        }
    }

    fn parse(s: &str) -> Option<FlushOp> {
        Some(match s {
            "add" => FlushOp::Add,
            "send_site" => FlushOp::SendSite,
            "send_file" => FlushOp::SendFile,
            "refresh" => FlushOp::Refresh,
            "purge" => FlushOp::Purge,
            _ => return None,
        })
    }
}

/// A request (`flush/1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushRequest {
    /// What to do.
    pub op: FlushOp,
    /// Destination (add, send_site); empty otherwise.
    pub site: String,
    /// Queue ID (add, send_file); empty otherwise.
    pub queue_id: String,
}

impl FlushRequest {
    /// Protocol name.
    pub const PROTO: &'static str = "flush/1";

    /// Encodes into an attribute list.
    pub fn to_attrs(&self) -> AttrList {
        let mut a = AttrList::new();
        a.push("proto", Self::PROTO).push("op", self.op.as_str());
        if !self.site.is_empty() {
            a.push("site", &self.site);
        }
        if !self.queue_id.is_empty() {
            a.push("queue_id", &self.queue_id);
        }
        a
    }

    /// Decodes and validates (the op's fields present, lengths bounded).
    pub fn from_attrs(a: &AttrList) -> Result<Self, FrameError> {
        a.expect_proto(Self::PROTO)?;
        let op = FlushOp::parse(&a.text("op")).ok_or(FrameError::BadValue("op"))?;
        let (need_site, need_id) = match op {
            FlushOp::Add => (true, true),
            FlushOp::SendSite => (true, false),
            FlushOp::SendFile => (false, true),
            FlushOp::Refresh | FlushOp::Purge => (false, false),
        };
        let site = if need_site {
            a.require_text("site")?
        } else {
            String::new()
        };
        let queue_id = if need_id {
            a.require_text("queue_id")?
        } else {
            String::new()
        };
        if site.len() > MAX_SITE || (need_site && site.is_empty()) {
            return Err(FrameError::BadValue("site"));
        }
        if queue_id.len() > MAX_QUEUE_ID || (need_id && queue_id.is_empty()) {
            return Err(FrameError::BadValue("queue_id"));
        }
        Ok(FlushRequest { op, site, queue_id })
    }
}

/// The outcome of a request (Postfix's `FLUSH_STAT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushStatus {
    /// Done (for refresh/purge: accepted).
    Ok,
    /// The service failed (e.g. a table lookup of `fast_flush_domains`).
    Fail,
    /// Invalid parameter (a bad queue ID or site).
    Bad,
    /// The site is not eligible (`fast_flush_domains`).
    Deny,
}

impl FlushStatus {
    fn as_str(self) -> &'static str {
        match self {
            FlushStatus::Ok => "ok",
            FlushStatus::Fail => "fail",
            FlushStatus::Bad => "bad",
            FlushStatus::Deny => "deny",
        }
    }

    fn parse(s: &str) -> Option<FlushStatus> {
        Some(match s {
            "ok" => FlushStatus::Ok,
            "fail" => FlushStatus::Fail,
            "bad" => FlushStatus::Bad,
            "deny" => FlushStatus::Deny,
            _ => return None,
        })
    }
}

/// The reply (`flush-reply/1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushReply {
    /// The outcome.
    pub status: FlushStatus,
}

impl FlushReply {
    /// Protocol name.
    pub const PROTO: &'static str = "flush-reply/1";

    /// Encodes into an attribute list.
    pub fn to_attrs(&self) -> AttrList {
        let mut a = AttrList::new();
        a.push("proto", Self::PROTO)
            .push("status", self.status.as_str());
        a
    }

    /// Decodes and validates.
    pub fn from_attrs(a: &AttrList) -> Result<Self, FrameError> {
        a.expect_proto(Self::PROTO)?;
        Ok(FlushReply {
            status: FlushStatus::parse(&a.text("status")).ok_or(FrameError::BadValue("status"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(r: &FlushRequest) -> Result<FlushRequest, FrameError> {
        FlushRequest::from_attrs(&AttrList::decode(&r.to_attrs().encode())?)
    }

    #[test]
    fn round_trips() {
        for r in [
            FlushRequest {
                op: FlushOp::Add,
                site: "example.com".into(),
                queue_id: "4ABCDEF0123".into(),
            },
            FlushRequest {
                op: FlushOp::SendSite,
                site: "[192.0.2.1]".into(),
                queue_id: String::new(),
            },
            FlushRequest {
                op: FlushOp::SendFile,
                site: String::new(),
                queue_id: "4ABCDEF0123".into(),
            },
            FlushRequest {
                op: FlushOp::Refresh,
                site: String::new(),
                queue_id: String::new(),
            },
        ] {
            assert_eq!(round(&r), Ok(r.clone()));
        }
        for status in [
            FlushStatus::Ok,
            FlushStatus::Fail,
            FlushStatus::Bad,
            FlushStatus::Deny,
        ] {
            let r = FlushReply { status };
            assert_eq!(FlushReply::from_attrs(&r.to_attrs()), Ok(r));
        }
    }

    #[test]
    fn missing_or_oversized_fields_refused() {
        let mut a = AttrList::new();
        a.push("proto", FlushRequest::PROTO).push("op", "add");
        a.push("site", "example.com");
        assert_eq!(
            FlushRequest::from_attrs(&a),
            Err(FrameError::Missing("queue_id"))
        );
        let long = FlushRequest {
            op: FlushOp::SendSite,
            site: "x".repeat(MAX_SITE + 1),
            queue_id: String::new(),
        };
        assert_eq!(round(&long), Err(FrameError::BadValue("site")));
        let mut a = AttrList::new();
        a.push("proto", FlushRequest::PROTO).push("op", "explode");
        assert_eq!(
            FlushRequest::from_attrs(&a),
            Err(FrameError::BadValue("op"))
        );
        let mut a = AttrList::new();
        a.push("proto", "bounce/1").push("op", "purge");
        assert!(FlushRequest::from_attrs(&a).is_err());
    }
}
