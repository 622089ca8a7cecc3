//! The hand-off to cleanup: the request (envelope, client attributes, access-table
//! actions) and cleanup's answer as Postfix's reply (`250 2.0.0 Ok: queued as ID`, for
//! BDAT `Ok: N bytes queued as ID`; cleanup's refusals with their own status codes).
//!
//! # Security
//! `250` is sent only after cleanup answered that the queue file is durable; any
//! failure to talk to cleanup is `451 4.3.0 Error: queue file write error`.
//!
//! # Configuration
//! `receive_override_options`, `ipc_timeout`, `smtpd_tls_received_header`, `content_filter`
//! (after-queue filter `transport:nexthop` recorded for every message of this service).

use crate::policy::MessageAction;
use crate::session::{Session, reply};
use crate::txn::Txn;
use postern_config::p;
use postern_ipc::proto::{CleanupReply, CleanupRequest, CleanupStatus, Recipient, cleanup_flags};
use postern_smtp_proto::{MailParams, Reply, Ret};
use std::time::{SystemTime, UNIX_EPOCH};

/// Hands the message to cleanup (or postdrop in stand-alone mode); the reply to send.
pub(crate) async fn queue(
    sess: &mut Session<'_>,
    txn: Txn,
    mut content: Vec<u8>,
    bdat: Option<usize>,
) -> Reply {
    let mut flags =
        cleanup_flags::from_receive_override_options(&sess.cfg.str(p::RECEIVE_OVERRIDE_OPTIONS));
    flags |= crate::session::milter::flags(sess);
    let mut rcpts = txn.rcpts;
    let mut attrs: Vec<(String, String)> = vec![
        ("rewrite_context".into(), "remote".into()),
        ("client_name".into(), sess.facts.client_name.clone()),
        (
            "client_address".into(),
            sess.facts
                .client_addr
                .map(|a| a.to_string())
                .unwrap_or_default(),
        ),
        (
            "helo_name".into(),
            sess.facts.helo.clone().unwrap_or_default(),
        ),
        ("protocol".into(), protocol(sess, &txn.params)),
    ];
    if let Some(t) = sess.tls_info().filter(|_| sess.s.tls.received_header) {
        // cleanup puts these lines into its Received header (Postfix's
        // smtpd_tls_received_header clause).
        attrs.push(("tls_received".into(), t.received_lines().join("\n")));
    }
    let sasl_sender = txn.params.auth.clone();
    attrs.extend(crate::sasl::smtp::cleanup_attrs(
        sess,
        sasl_sender.as_deref(),
    ));
    for (k, v) in std::mem::take(&mut sess.forwarded) {
        attrs.retain(|(n, _)| *n != k);
        attrs.push((k, v));
    }
    if let Some(e) = &txn.params.envid {
        attrs.push(("envid".into(), e.clone()));
    }
    if let Some(r) = txn.params.ret {
        attrs.push((
            "ret".into(),
            if r == Ret::Full { "FULL" } else { "HDRS" }.into(),
        ));
    }
    // content_filter is this service's (`-o content_filter=` per master.cf service), sent
    // with the request as Postfix's smtpd sends it; not in stand-alone mode (pickup adds
    // its own). An access-table FILTER action below replaces it.
    let content_filter = sess.cfg.str(p::CONTENT_FILTER);
    if !content_filter.is_empty() && sess.s.postdrop_config.is_none() {
        attrs.push(("filter".into(), content_filter));
    }
    let mut prepend = Vec::new();
    for a in &txn.actions {
        match a {
            MessageAction::Hold(_) => flags |= cleanup_flags::HOLD,
            MessageAction::Discard(why) => {
                postern_log::info(format!(
                    "NOQUEUE: discard: END-OF-MESSAGE from {}: {why}",
                    sess.client
                ));
                flags |= cleanup_flags::DISCARD;
            }
            MessageAction::Prepend(h) => prepend.push(h.clone()),
            MessageAction::Redirect(to) => rcpts = vec![Recipient::new(to.clone())],
            MessageAction::Bcc(to) => rcpts.push(Recipient::new(to.clone())),
            MessageAction::Filter(f) => {
                attrs.retain(|(n, _)| n != "filter");
                attrs.push(("filter".into(), f.clone()));
            }
        }
    }
    if !prepend.is_empty() {
        let mut c = prepend.join("\n").into_bytes();
        c.push(b'\n');
        c.extend_from_slice(&content);
        content = c;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let req = CleanupRequest {
        flags,
        sender: txn.sender.clone(),
        fullname: String::new(),
        arrival: (now.as_secs(), now.subsec_micros()),
        recipients: rcpts,
        attrs,
        content,
    };
    if let Some(dir) = sess.s.postdrop_config.clone() {
        return crate::standalone::postdrop(sess, &dir, req).await;
    }
    let answer = if req.flags & cleanup_flags::MILTER != 0 {
        // The milters' content stage runs inside the cleanup exchange (see milter.rs).
        match crate::session::milter::queue(sess, req.to_attrs()).await {
            Ok(q) => {
                if let Some(r) = q
                    .verdict
                    .as_ref()
                    .and_then(|v| crate::session::milter::refusal(sess, v))
                {
                    return r;
                }
                Ok(q.reply)
            }
            Err(e) => Err(e),
        }
    } else {
        postern_server::client::request_async(
            sess.cfg,
            "public",
            "cleanup",
            &req.to_attrs(),
            1 << 16,
            sess.s.ipc_timeout,
        )
        .await
        .map_err(|e| e.to_string())
        .and_then(|a| CleanupReply::from_attrs(&a).map_err(|e| e.to_string()))
    };
    match answer {
        Ok(r) if r.status == CleanupStatus::Ok => {
            postern_log::info(format!(
                "{}: client={}{}",
                r.queue_id,
                sess.client,
                crate::sasl::smtp::log_fields(sess, sasl_sender.as_deref())
            ));
            match bdat {
                Some(n) => reply(
                    250,
                    (2, 0, 0),
                    format!("Ok: {n} bytes queued as {}", r.queue_id),
                ),
                None => reply(250, (2, 0, 0), format!("Ok: queued as {}", r.queue_id)),
            }
        }
        Ok(r) => {
            let (code, enh, text) = match r.status {
                CleanupStatus::TooBig => (
                    552,
                    (5, 3, 4),
                    "Message size exceeds fixed limit".to_string(),
                ),
                CleanupStatus::Hops => (554, (5, 4, 0), "Error: too many hops".to_string()),
                // cleanup's reason carries its own status (header/body checks).
                CleanupStatus::Reject => split_dsn(&r.reason, 5)
                    .map(|(enh, text)| (550, enh, text))
                    .unwrap_or((550, (5, 7, 1), r.reason.clone())),
                CleanupStatus::Defer if split_dsn(&r.reason, 4).is_some() => {
                    split_dsn(&r.reason, 4)
                        .map(|(enh, text)| (451, enh, text))
                        .unwrap_or((451, (4, 3, 0), r.reason.clone()))
                }
                CleanupStatus::NoRecipients => {
                    (554, (5, 5, 1), "Error: no valid recipients".to_string())
                }
                _ => (451, (4, 3, 0), "Error: queue file write error".to_string()),
            };
            let rep = reply(code, enh, text);
            sess.log_reject("END-OF-MESSAGE", &rep);
            rep
        }
        Err(e) => {
            postern_log::warning(format!("cleanup service: {e}"));
            reply(451, (4, 3, 0), "Error: queue file write error")
        }
    }
}

/// A leading enhanced status code of class `class` in a cleanup reason
/// (`5.7.1 text`): the code and the rest of the text.
fn split_dsn(reason: &str, class: u8) -> Option<((u8, u16, u16), String)> {
    let (code, text) = reason.split_once(' ').unwrap_or((reason, ""));
    let mut it = code.split('.');
    let c: u8 = it.next()?.parse().ok()?;
    let s: u16 = it.next()?.parse().ok()?;
    let d: u16 = it.next()?.parse().ok()?;
    (c == class && it.next().is_none() && s < 1000 && d < 1000)
        .then(|| ((c, s, d), text.to_string()))
}

pub(super) fn protocol(sess: &Session<'_>, params: &MailParams) -> String {
    let mut p: String = match (params.smtputf8, sess.esmtp) {
        (true, _) => "UTF8SMTP".into(),
        (false, true) => "ESMTP".into(),
        (false, false) => "SMTP".into(),
    };
    // RFC 3848: "S" for TLS, ESMTP only.
    if sess.esmtp && sess.tls_active() {
        p.push('S');
    }
    if crate::sasl::smtp::authenticated(sess) {
        p.push('A');
    }
    p
}
