//! The message transformation cleanup applies before queueing (pure).
//!
//! * removes `Return-Path:` (local adds it at delivery) and, for local
//!   submissions, `Bcc:` (after recipients were extracted from it);
//! * extracts recipients from `To:`/`Cc:`/`Bcc:` (or their `Resent-` forms
//!   when the message has any `Resent-` header) for `sendmail -t`;
//! * qualifies bare addresses with `@$myorigin` (`append_at_myorigin`);
//! * adds the missing `From:`, `Date:`, `Message-Id:` headers of a local
//!   submission, `To: undisclosed-recipients:;` when there is no destination
//!   header, and a `Received:` header;
//! * counts `Received:`/`Delivered-To:` hops against `hopcount_limit`;
//! * enforces `message_size_limit` and `header_size_limit`.

use postern_ipc::proto::{CleanupRequest, CleanupStatus, cleanup_flags};
use postern_mail::header;
use postern_qfile::{QueueFile, RecipientRecord};

/// The settings cleanup needs, read once from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `$myhostname`.
    pub myhostname: String,
    /// `$myorigin`.
    pub myorigin: String,
    /// `$mail_name`.
    pub mail_name: String,
    /// `append_at_myorigin`.
    pub append_at_myorigin: bool,
    /// `message_size_limit` (0 = none).
    pub message_size_limit: u64,
    /// `header_size_limit`.
    pub header_size_limit: u64,
    /// `hopcount_limit`.
    pub hopcount_limit: u64,
    /// `duplicate_filter_limit`.
    pub duplicate_filter_limit: usize,
}

/// Time facts for header generation.
#[derive(Debug, Clone)]
pub struct Now {
    /// Seconds since the epoch.
    pub secs: i64,
    /// Local UTC offset in seconds.
    pub offset: i32,
    /// Time-zone abbreviation for the Received comment.
    pub zone: String,
}

/// A refusal: status class and `X.Y.Z text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Outcome class.
    pub status: CleanupStatus,
    /// Enhanced status code and text.
    pub reason: String,
}

fn qualify(addr: &str, s: &Settings) -> String {
    if addr.is_empty() || addr.contains('@') || !s.append_at_myorigin {
        addr.to_string()
    } else {
        format!("{addr}@{}", s.myorigin)
    }
}

fn is_local_submission(req: &CleanupRequest) -> bool {
    req.attrs
        .iter()
        .any(|(n, v)| n == "rewrite_context" && v == "local")
}

/// Checks limits that make a message unacceptable.
pub fn check(req: &CleanupRequest, s: &Settings) -> Result<(), Refusal> {
    if s.message_size_limit > 0 && req.content.len() as u64 > s.message_size_limit {
        return Err(Refusal {
            status: CleanupStatus::TooBig,
            reason: "5.3.4 Message size exceeds fixed limit".into(),
        });
    }
    let hops = header::fields(&req.content)
        .filter(|f| f.name_is("Received") || f.name_is("Delivered-To"))
        .count() as u64;
    if hops > s.hopcount_limit {
        return Err(Refusal {
            status: CleanupStatus::Hops,
            reason: "5.4.6 Too many hops".into(),
        });
    }
    Ok(())
}

/// Recipients from the destination headers (`sendmail -t`).
pub fn extract_recipients(content: &[u8]) -> Vec<String> {
    let resent =
        header::fields(content).any(|f| f.name_str().to_ascii_lowercase().starts_with("resent-"));
    let names: &[&str] = if resent {
        &["Resent-To", "Resent-Cc", "Resent-Bcc"]
    } else {
        &["To", "Cc", "Bcc"]
    };
    let mut out = Vec::new();
    for f in header::fields(content) {
        if names.iter().any(|n| f.name_is(n)) {
            out.extend(postern_mail::address::parse_address_list(&f.value_string()));
        }
    }
    out
}

/// Builds the queue file for an accepted request. `queue_id` is the ID the
/// file will have; `uid` the submitting user for the Received header.
pub fn build(
    req: &CleanupRequest,
    s: &Settings,
    queue_id: &str,
    now: &Now,
) -> Result<QueueFile, Refusal> {
    let local = is_local_submission(req);
    let sender = qualify(&req.sender, s);
    let mut rcpts: Vec<(String, String, String, u8)> = req
        .recipients
        .iter()
        .map(|r| {
            (
                qualify(&r.address, s),
                r.original.clone(),
                r.orcpt.clone(),
                r.notify,
            )
        })
        .collect();
    if req.flags & cleanup_flags::EXTRACT_RCPTS != 0 {
        for a in extract_recipients(&req.content) {
            rcpts.push((qualify(&a, s), a, String::new(), 0));
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut recipients = Vec::new();
    for (addr, orig, orcpt, notify) in rcpts {
        if addr.is_empty() || addr.contains('\0') || addr.contains('\n') {
            continue;
        }
        let key = (addr.to_ascii_lowercase(), orcpt.clone());
        if seen.len() < s.duplicate_filter_limit.max(1) && !seen.insert(key) {
            continue;
        }
        let original = if orig.is_empty() {
            addr.clone()
        } else {
            qualify(&orig, s)
        };
        recipients.push(RecipientRecord {
            address: addr,
            original,
            orcpt,
            notify,
            ..Default::default()
        });
    }
    if recipients.is_empty() {
        return Err(Refusal {
            status: CleanupStatus::NoRecipients,
            reason: "5.1.3 No recipients specified".into(),
        });
    }
    let content = rewrite_header(req, s, &sender, queue_id, now, local)?;
    let mut attrs: Vec<(String, String)> = req
        .attrs
        .iter()
        .filter(|(n, _)| n != "flags" && !n.is_empty())
        .cloned()
        .collect();
    attrs.retain(|(n, _)| n != "cleanup_reject");
    Ok(QueueFile {
        arrival: req.arrival,
        fullname: req.fullname.clone(),
        sender,
        attrs,
        recipients,
        content,
        content_offset: 0,
    })
}

fn rewrite_header(
    req: &CleanupRequest,
    s: &Settings,
    sender: &str,
    queue_id: &str,
    now: &Now,
    local: bool,
) -> Result<Vec<u8>, Refusal> {
    let content = &req.content;
    let end = header::header_end(content);
    if end.header_len as u64 > s.header_size_limit {
        return Err(Refusal {
            status: CleanupStatus::Reject,
            reason: "5.3.4 Message header too big".into(),
        });
    }
    let mut out = Vec::with_capacity(content.len() + 512);
    out.extend_from_slice(received(req, s, queue_id, now, local).as_bytes());
    let have = |name: &str| header::has_header(content, name);
    let (has_from, has_date, has_mid) = (have("From"), have("Date"), have("Message-Id"));
    let has_dest = ["To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc"]
        .iter()
        .any(|n| have(n));
    for f in header::fields(content) {
        if f.name_is("Return-Path") || (local && f.name_is("Bcc")) {
            continue;
        }
        out.extend_from_slice(f.raw);
        if !f.raw.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    if local || req.flags & cleanup_flags::BOUNCE != 0 {
        if !has_date {
            out.extend_from_slice(
                format!(
                    "Date: {}\n",
                    postern_mail::date::rfc2822(now.secs, now.offset)
                )
                .as_bytes(),
            );
        }
        if !has_mid {
            let stamp = postern_mail::date::civil(now.secs, 0);
            out.extend_from_slice(
                format!(
                    "Message-Id: <{:04}{:02}{:02}{:02}{:02}{:02}.{queue_id}@{}>\n",
                    stamp.year,
                    stamp.month,
                    stamp.day,
                    stamp.hms.0,
                    stamp.hms.1,
                    stamp.hms.2,
                    s.myhostname
                )
                .as_bytes(),
            );
        }
        if !has_from {
            out.extend_from_slice(from_header(req, sender).as_bytes());
        }
        if !has_dest {
            out.extend_from_slice(b"To: undisclosed-recipients:;\n");
        }
    }
    out.push(b'\n');
    out.extend_from_slice(&content[end.body_start.min(content.len())..]);
    Ok(out)
}

fn from_header(req: &CleanupRequest, sender: &str) -> String {
    let addr = if sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        sender
    };
    let name: String = req
        .fullname
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    if name.trim().is_empty() {
        format!("From: {addr}\n")
    } else {
        format!("From: \"{}\" <{addr}>\n", name.trim())
    }
}

fn received(req: &CleanupRequest, s: &Settings, queue_id: &str, now: &Now, local: bool) -> String {
    let date = postern_mail::date::rfc2822(now.secs, now.offset);
    let attr = |n: &str| {
        req.attrs
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    if let Some(addr) = attr("client_address") {
        // Network mail: who connected, what they called themselves, how.
        let helo = attr("helo_name")
            .filter(|h| !h.is_empty())
            .unwrap_or("unknown");
        let name = attr("client_name").unwrap_or("unknown");
        let proto = attr("protocol").unwrap_or("SMTP");
        let bracketed = if addr.contains(':') {
            format!("IPv6:{addr}")
        } else {
            addr.to_string()
        };
        let mut h = format!(
            "Received: from {helo} ({name} [{bracketed}])\n\tby {} ({}) with {proto} id {queue_id}",
            s.myhostname, s.mail_name
        );
        if req.recipients.len() == 1 {
            h.push_str(&format!("\n\tfor <{}>", req.recipients[0].address));
        }
        h.push_str(&format!("; {date} ({})\n", now.zone));
        return h;
    }
    if local && req.flags & cleanup_flags::BOUNCE == 0 {
        let uid = attr("origin_uid").unwrap_or("unknown");
        format!(
            "Received: by {} ({}, from userid {uid})\n\tid {queue_id}; {date} ({})\n",
            s.myhostname, s.mail_name, now.zone
        )
    } else {
        format!(
            "Received: by {} ({})\n\tid {queue_id}; {date} ({})\n",
            s.myhostname, s.mail_name, now.zone
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_ipc::proto::Recipient;

    fn settings() -> Settings {
        Settings {
            myhostname: "mx.example.org".into(),
            myorigin: "example.org".into(),
            mail_name: "Postfix".into(),
            append_at_myorigin: true,
            message_size_limit: 1000,
            header_size_limit: 102400,
            hopcount_limit: 3,
            duplicate_filter_limit: 1000,
        }
    }

    fn req(content: &str) -> CleanupRequest {
        CleanupRequest {
            sender: "joe".into(),
            recipients: vec![Recipient::new("ann"), Recipient::new("ann@example.org")],
            attrs: vec![
                ("rewrite_context".into(), "local".into()),
                ("origin_uid".into(), "1000".into()),
            ],
            content: content.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn now() -> Now {
        Now {
            secs: 1_795_000_000,
            offset: 0,
            zone: "UTC".into(),
        }
    }

    #[test]
    fn adds_missing_headers_and_qualifies() {
        let q = build(
            &req("Subject: hi\nReturn-Path: <evil>\n\nbody\n"),
            &settings(),
            "ABC123",
            &now(),
        )
        .unwrap();
        assert_eq!(q.sender, "joe@example.org");
        assert_eq!(
            q.recipients.len(),
            1,
            "duplicate after qualification is dropped"
        );
        let text = String::from_utf8(q.content).unwrap();
        assert!(
            text.starts_with(
                "Received: by mx.example.org (Postfix, from userid 1000)\n\tid ABC123; "
            )
        );
        for h in [
            "Date: ",
            "Message-Id: <",
            ".ABC123@mx.example.org>",
            "From: joe@example.org",
            "To: undisclosed-recipients:;",
        ] {
            assert!(text.contains(h), "missing {h} in {text}");
        }
        assert!(!text.contains("Return-Path"));
        assert!(text.ends_with("\n\nbody\n"));
    }

    #[test]
    fn extracts_recipients_and_hides_bcc() {
        let mut r = req("To: A <a@x.org>, b\nBcc: c@y.org\nSubject: s\n\nb\n");
        r.recipients.clear();
        r.flags = cleanup_flags::EXTRACT_RCPTS;
        let q = build(&r, &settings(), "ID", &now()).unwrap();
        let addrs: Vec<_> = q.recipients.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(addrs, ["a@x.org", "b@example.org", "c@y.org"]);
        assert!(!String::from_utf8_lossy(&q.content).contains("Bcc"));
    }

    #[test]
    fn limits() {
        let big = req(&"x".repeat(2000));
        assert_eq!(
            check(&big, &settings()).unwrap_err().status,
            CleanupStatus::TooBig
        );
        let loop_ = req("Received: a\nReceived: b\nDelivered-To: c\nReceived: d\n\nx\n");
        assert_eq!(
            check(&loop_, &settings()).unwrap_err().status,
            CleanupStatus::Hops
        );
        let mut none = req("Subject: x\n\n");
        none.recipients.clear();
        assert_eq!(
            build(&none, &settings(), "ID", &now()).unwrap_err().status,
            CleanupStatus::NoRecipients
        );
    }
}
