//! The headers cleanup adds, as Postfix's cleanup writes them: `Received:`,
//! and the missing `Message-Id:`, `Date:`, `From:` (or their `Resent-` forms)
//! and `undisclosed_recipients_header`. Dates in Postfix's format
//! ([`postern_mail::date::mail_date`]).
//!
//! # Security
//! Pure. Values from the client (HELO name, TLS and SASL details, full name)
//! lose their control characters so that they cannot end or add a header.
//!
//! # Configuration
//! `myhostname`, `mail_name`, `undisclosed_recipients_header` (via
//! [`Settings`]).

use crate::process::{Now, Settings};
use postern_ipc::proto::{CleanupRequest, cleanup_flags};
use postern_mail::header;

/// Which headers a message lacks, and the prefix (`Resent-` or none) of the
/// ones to add.
pub(crate) struct Missing {
    pub(crate) prefix: &'static str,
    pub(crate) from: bool,
    pub(crate) date: bool,
    pub(crate) mid: bool,
    pub(crate) dest: bool,
}

/// Adds the missing headers in Postfix's order: Message-Id, Date, From, and
/// `undisclosed_recipients_header` when it is set.
pub(crate) fn add_missing(
    out: &mut Vec<u8>,
    req: &CleanupRequest,
    s: &Settings,
    sender: &str,
    queue_id: &str,
    now: &Now,
    m: &Missing,
) {
    let p = m.prefix;
    if m.mid {
        let stamp = postern_mail::date::civil(now.secs, 0);
        out.extend_from_slice(
            format!(
                "{p}Message-Id: <{:04}{:02}{:02}{:02}{:02}{:02}.{queue_id}@{}>\n",
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
    if m.date {
        let date = postern_mail::date::mail_date(now.secs, now.offset, &now.zone);
        out.extend_from_slice(format!("{p}Date: {date}\n").as_bytes());
    }
    if m.from {
        out.extend_from_slice(format!("{p}{}", from_header(req, sender)).as_bytes());
    }
    let undisclosed = s.undisclosed_recipients_header.trim();
    if m.dest
        && !undisclosed.is_empty()
        && header::header_name_len(undisclosed.as_bytes()).is_some()
    {
        out.extend_from_slice(format!("{undisclosed}\n").as_bytes());
    }
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
    let name = name.trim();
    // header_from_format = standard: the name as a phrase, quoted only when
    // it has characters an unquoted phrase cannot hold.
    let atom = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~ ".contains(c);
    if name.is_empty() {
        format!("From: {addr}\n")
    } else if name.chars().all(atom) {
        format!("From: {name} <{addr}>\n")
    } else {
        format!("From: \"{name}\" <{addr}>\n")
    }
}

pub(crate) fn received(
    req: &CleanupRequest,
    s: &Settings,
    queue_id: &str,
    now: &Now,
    local: bool,
) -> String {
    let date = postern_mail::date::mail_date(now.secs, now.offset, &now.zone);
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
        let mut h = format!("Received: from {helo} ({name} [{bracketed}])\n");
        // smtpd's TLS clause (smtpd_tls_received_header): one comment per
        // line, control characters dropped so it cannot end the header.
        for line in attr("tls_received").unwrap_or("").split('\n') {
            let line: String = line.chars().filter(|c| !c.is_control()).collect();
            if !line.trim().is_empty() {
                h.push_str(&format!("\t{line}\n"));
            }
        }
        // smtpd_sasl_authenticated_header: smtpd sends the login only when it is on.
        if let Some(user) = attr("sasl_auth_header").filter(|u| !u.is_empty()) {
            let user: String = user.chars().filter(|c| !c.is_control()).collect();
            h.push_str(&format!("\t(Authenticated sender: {user})\n"));
        }
        h.push_str(&format!(
            "\tby {} ({}) with {proto} id {queue_id}",
            s.myhostname, s.mail_name
        ));
        if req.recipients.len() == 1 {
            h.push_str(&format!("\n\tfor <{}>", req.recipients[0].address));
        }
        h.push_str(&format!("; {date}\n"));
        return h;
    }
    if local && req.flags & cleanup_flags::BOUNCE == 0 {
        let uid = attr("origin_uid").unwrap_or("unknown");
        format!(
            "Received: by {} ({}, from userid {uid})\n\tid {queue_id}; {date}\n",
            s.myhostname, s.mail_name
        )
    } else {
        format!(
            "Received: by {} ({})\n\tid {queue_id}; {date}\n",
            s.myhostname, s.mail_name
        )
    }
}
