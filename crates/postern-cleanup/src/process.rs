//! The message transformation cleanup applies before queueing (pure).
//!
//! * removes `Return-Path:` (local adds it at delivery), `Content-Length:`,
//!   `Bcc:` and `Resent-Bcc:` (after recipients were extracted from them);
//! * extracts recipients from `To:`/`Cc:`/`Bcc:` (or their `Resent-` forms
//!   when the message has any `Resent-` header) for `sendmail -t`;
//! * rewrites envelope and header addresses ([`crate::envelope`],
//!   [`crate::hdr_addr`]): qualification, canonical maps, masquerading,
//!   virtual aliases, automatic BCC;
//! * applies header and body checks ([`crate::checks`], [`crate::mime`]);
//! * normalises the message first ([`crate::normalise`]: CRs, a leading
//!   `From ` line, NUL in the header, `Name :`, `header_size_limit` per header);
//! * adds the missing `Message-Id:`, `Date:` and `From:` headers (their
//!   `Resent-` forms when the message has a `Resent-` header), in that order,
//!   and `undisclosed_recipients_header` (empty by default) when there is no
//!   `To:`/`Cc:`, to a local submission, to mail from an SMTP client that
//!   matches `local_header_rewrite_clients`, or to all mail with
//!   `always_add_missing_headers = yes` (Postfix 2.6+); and a `Received:`
//!   header; dates in Postfix's format (`Sun,  6 Dec 2026 00:26:53 +0000 (UTC)`);
//! * a message that ends inside its header gets no empty line;
//! * counts `Received:`/`Delivered-To:` hops against `hopcount_limit`;
//! * enforces `message_size_limit`.

use crate::added::{Missing, add_missing, received};
use crate::checks::{self, Edit, LogCtx, Verdict};
use crate::envelope::{Envelope, Mode};
use crate::maps::Trail;
use crate::tables::{Tables, classes};
use crate::{addr, hdr_addr, mime};
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
    /// `message_size_limit` (0 = none).
    pub message_size_limit: u64,
    /// `header_size_limit`.
    pub header_size_limit: u64,
    /// `header_address_token_limit`.
    pub header_address_token_limit: usize,
    /// `hopcount_limit`.
    pub hopcount_limit: u64,
    /// `duplicate_filter_limit`.
    pub duplicate_filter_limit: usize,
    /// `always_add_missing_headers`: add missing headers to mail from every client, not
    /// only to local submissions and clients of `local_header_rewrite_clients`.
    pub always_add_missing_headers: bool,
    /// `undisclosed_recipients_header`: the header added when a message has no
    /// `To:`/`Cc:` (or `Resent-` form); empty (the default) adds nothing.
    pub undisclosed_recipients_header: String,
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

/// A message ready to be written: the queue file, what the content checks
/// decided, and the log lines of its processing.
#[derive(Debug)]
pub struct Built {
    /// The queue file.
    pub qf: QueueFile,
    /// Content-check decisions (hold, discard, filter, …).
    pub verdict: Verdict,
}

/// Builds the queue file for an accepted request. `queue_id` is the ID the
/// file will have. Log lines and a failure (reject, defer) go to `trail`;
/// when `trail.fail` is set the result must not be queued.
pub fn build(
    req: &CleanupRequest,
    s: &Settings,
    t: &Tables,
    queue_id: &str,
    now: &Now,
    trail: &mut Trail,
) -> Result<Built, Refusal> {
    let local = is_local_submission(req);
    let internal = req.flags & cleanup_flags::BOUNCE != 0;
    let map_ok = req.flags & cleanup_flags::NO_ADDRESS_MAPPINGS == 0;
    let mode = Mode {
        map_ok,
        bcc_ok: map_ok && !internal,
    };
    let filter_ok = req.flags & cleanup_flags::NO_HEADER_BODY_CHECKS == 0 && !internal;
    let mut env = Envelope::new(t, mode, &s.myorigin, queue_id, s.duplicate_filter_limit);
    let sender = env.sender(&req.sender, trail);
    for r in &req.recipients {
        env.recipient(&r.address, &r.original, &r.orcpt, r.notify, trail);
    }
    let mut lctx = log_ctx(req, queue_id, local);
    lctx.sender = Some(sender.clone());
    lctx.recip = env.last_recipient.clone();
    let mut verdict = Verdict::default();
    if !filter_ok {
        verdict.done = true;
    }
    let content = rewrite_message(
        req,
        s,
        t,
        &env,
        &sender,
        queue_id,
        now,
        local,
        &lctx,
        &mut verdict,
        trail,
    )?;
    if req.flags & cleanup_flags::EXTRACT_RCPTS != 0 {
        for a in extract_recipients(&req.content) {
            env.recipient(&a, &a, "", 0, trail);
        }
    }
    env.always_bcc(trail);
    for b in verdict.bcc.clone() {
        env.bcc(&b, trail);
    }
    let mut recipients = std::mem::take(&mut env.recipients);
    if let Some(to) = &verdict.redirect {
        let ctx = addr::Context {
            origin: &s.myorigin,
            domain: &t.mydomain,
        };
        let original = recipients
            .first()
            .map(|r| r.original.clone())
            .unwrap_or_default();
        recipients = vec![RecipientRecord {
            address: addr::rewrite(&t.rules, &ctx, to),
            original,
            ..Default::default()
        }];
    }
    if recipients.is_empty() && trail.fail.is_none() {
        return Err(Refusal {
            status: CleanupStatus::NoRecipients,
            reason: "5.1.3 No recipients specified".into(),
        });
    }
    let mut attrs: Vec<(String, String)> = req
        .attrs
        .iter()
        .filter(|(n, _)| {
            n != "flags" && !n.is_empty() && n != "cleanup_reject" && n != "tls_received"
        })
        .cloned()
        .collect();
    if let Some(f) = &verdict.filter {
        attrs.retain(|(n, _)| n != "filter");
        attrs.push(("filter".into(), f.clone()));
    }
    Ok(Built {
        qf: QueueFile {
            arrival: req.arrival,
            fullname: req.fullname.clone(),
            sender,
            attrs,
            recipients,
            content,
            content_offset: 0,
        },
        verdict,
    })
}

fn attr<'a>(req: &'a CleanupRequest, n: &str) -> Option<&'a str> {
    req.attrs
        .iter()
        .find(|(k, _)| k == n)
        .map(|(_, v)| v.as_str())
}

fn log_ctx(req: &CleanupRequest, queue_id: &str, local: bool) -> LogCtx {
    let nonempty = |n: &str| attr(req, n).filter(|v| !v.is_empty()).map(String::from);
    let origin = match (local, attr(req, "client_address")) {
        (false, Some(a)) if !a.is_empty() => {
            format!("{}[{a}]", attr(req, "client_name").unwrap_or("unknown"))
        }
        _ => "local".to_string(),
    };
    LogCtx {
        qid: queue_id.to_string(),
        origin,
        sender: None,
        recip: None,
        proto: nonempty("protocol"),
        helo: nonempty("helo_name"),
    }
}

/// Whether headers are handled in the local context: a local submission, or an SMTP client
/// that matches `local_header_rewrite_clients` (from the `client_address` and
/// `sasl_username` attributes smtpd passes).
fn local_header_context(req: &CleanupRequest, t: &Tables) -> bool {
    if attr(req, "rewrite_context") != Some("remote") {
        return true;
    }
    let ip = attr(req, "client_address").and_then(|a| a.parse().ok());
    let sasl = attr(req, "sasl_username").is_some_and(|u| !u.is_empty());
    t.local_header_client(ip, sasl)
}

/// The header rewriting context: `(origin, domain)`, or `None` for no header
/// address rewriting (remote clients without `remote_header_rewrite_domain`).
fn header_context(req: &CleanupRequest, s: &Settings, t: &Tables) -> Option<(String, String)> {
    if local_header_context(req, t) {
        return Some((s.myorigin.clone(), t.mydomain.clone()));
    }
    (!t.remote_domain.is_empty()).then(|| (t.remote_domain.clone(), t.remote_domain.clone()))
}

const SENDER_HEADERS: [&str; 10] = [
    "Disposition-Notification-To",
    "Errors-To",
    "From",
    "Mail-Followup-To",
    "Reply-To",
    "Resent-From",
    "Resent-Sender",
    "Return-Path",
    "Return-Receipt-To",
    "Sender",
];

const RECIPIENT_HEADERS: [&str; 8] = [
    "Apparently-To",
    "Bcc",
    "Cc",
    "Resent-Bcc",
    "Resent-Cc",
    "Resent-Reply-To",
    "Resent-To",
    "To",
];

/// Rewrites the addresses of one address header, if it is one. A header that
/// changed (or was cut at `header_address_token_limit` tokens) is laid out
/// again as Postfix does ([`hdr_addr::fold`]).
fn rewrite_address_header(
    text: &str,
    t: &Tables,
    env: &Envelope<'_>,
    ctx: &(String, String),
    map_ok: bool,
    token_limit: usize,
    trail: &mut Trail,
) -> Option<String> {
    let (name, value) = text.split_once(':')?;
    let n = name.trim();
    let (sender, class) = if SENDER_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(n)) {
        (true, classes::HDR_FROM)
    } else if RECIPIENT_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(n)) {
        (false, classes::HDR_RCPT)
    } else {
        return None;
    };
    let rctx = addr::Context {
        origin: &ctx.0,
        domain: &ctx.1,
    };
    let (value, cut) = match hdr_addr::truncate_tokens(value, token_limit) {
        Some(v) => (v, true),
        None => (value, false),
    };
    let new = hdr_addr::rewrite_value(value, &mut |a| {
        let a = addr::rewrite(&t.rules, &rctx, a);
        if map_ok {
            env.canonical(&a, class, sender, trail)
        } else {
            a
        }
    });
    let new = match new {
        Some(n) => n,
        None if cut => value.to_string(),
        None => return None,
    };
    Some(hdr_addr::fold(name, &new))
}

#[allow(clippy::too_many_arguments)]
fn rewrite_message(
    req: &CleanupRequest,
    s: &Settings,
    t: &Tables,
    env: &Envelope<'_>,
    sender: &str,
    queue_id: &str,
    now: &Now,
    local: bool,
    lctx: &LogCtx,
    v: &mut Verdict,
    trail: &mut Trail,
) -> Result<Vec<u8>, Refusal> {
    let limit = usize::try_from(s.header_size_limit).unwrap_or(usize::MAX);
    let content = &crate::normalise::content(&req.content, limit);
    let end = header::header_end(content);
    let hctx = header_context(req, s, t);
    let map_ok = req.flags & cleanup_flags::NO_ADDRESS_MAPPINGS == 0;
    let mut out = Vec::with_capacity(content.len() + 512);
    out.extend_from_slice(received(req, s, queue_id, now, local).as_bytes());
    let have = |name: &str| header::has_header(content, name);
    // With any Resent- header the added headers are the Resent- forms (as Postfix).
    let resent = header::fields(content).any(|f| {
        f.name
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"resent-"))
    });
    let prefix = if resent { "Resent-" } else { "" };
    let seen = |n: &str| have(&format!("{prefix}{n}"));
    let missing = Missing {
        prefix,
        from: !seen("From"),
        date: !seen("Date"),
        mid: !seen("Message-Id"),
        dest: !["To", "Cc", "Resent-To", "Resent-Cc"]
            .iter()
            .any(|n| have(n)),
    };
    let mut ctype = None;
    for f in header::fields(content) {
        let raw_text = String::from_utf8_lossy(f.raw);
        let mut text = raw_text.trim_end_matches(['\n', '\r']).to_string();
        let class = if checks::is_mime_header(f.name_str()) {
            checks::Class::Mime
        } else {
            checks::Class::Primary
        };
        let o = t.checks.header(class, &text, lctx, v, trail);
        if let Some(p) = &o.prepend {
            out.extend_from_slice(p.as_bytes());
            out.push(b'\n');
        }
        let mut changed = false;
        match o.edit {
            Edit::Drop => continue,
            Edit::Replace(r) => {
                text = r;
                changed = true;
            }
            Edit::Keep => {}
        }
        let name = text.split(':').next().unwrap_or("").trim().to_string();
        if ["Return-Path", "Bcc", "Resent-Bcc", "Content-Length"]
            .iter()
            .any(|d| name.eq_ignore_ascii_case(d))
        {
            continue;
        }
        if name.eq_ignore_ascii_case("Content-Type") {
            ctype = text.split_once(':').map(|(_, v)| v.to_string());
        }
        if let Some(ctx) = &hctx
            && let Some(new) = rewrite_address_header(
                &text,
                t,
                env,
                ctx,
                map_ok,
                s.header_address_token_limit,
                trail,
            )
        {
            text = new;
            changed = true;
        }
        if changed {
            out.extend_from_slice(text.as_bytes());
            out.push(b'\n');
        } else {
            out.extend_from_slice(f.raw);
            if !f.raw.ends_with(b"\n") {
                out.push(b'\n');
            }
        }
    }
    if local
        || req.flags & cleanup_flags::BOUNCE != 0
        || s.always_add_missing_headers
        || local_header_context(req, t)
    {
        add_missing(&mut out, req, s, sender, queue_id, now, &missing);
    }
    let body = &content[end.body_start.min(content.len())..];
    // A message that ends inside its header gets no empty line (as Postfix).
    if end.body_start > end.header_len || !body.is_empty() {
        out.push(b'\n');
    }
    if v.done || !t.checks.has_body_work() {
        out.extend_from_slice(body);
    } else {
        out.extend(mime::walk_body(
            ctype.as_deref(),
            body,
            &t.checks,
            lctx,
            v,
            trail,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
