//! The SMTP side of SASL (RFC 4954): the AUTH command, the EHLO keywords, the
//! `client=` log fields and the protocol name, as Postfix 3.7's
//! `smtpd_sasl_proto.c`/`smtpd_sasl_glue.c` do it.
//!
//! Replies (checked against Postfix 3.7.11 with Dovecot 2.3.19 SASL), in the
//! order Postfix checks:
//!
//! | case | reply |
//! |---|---|
//! | past `smtpd_client_auth_rate_limit` | `450 4.7.1 Error: too many AUTH commands from ADDR` |
//! | `smtpd_helo_required`, no HELO | `503 5.5.1 Error: send HELO/EHLO first` |
//! | SASL off (or `sendmail -bs`, or AUTH discarded) | `503 5.5.1 Error: authentication not enabled` |
//! | inside a MAIL transaction | `503 5.5.1 Error: MAIL transaction in progress` |
//! | `smtpd_tls_auth_only` without TLS | `504 5.5.4 Encryption required for requested authentication mechanism` |
//! | already authenticated | `503 5.5.1 Error: already authenticated` |
//! | response longer than `smtpd_sasl_response_limit` | `500 5.5.6 SASL response limit exceeded` |
//! | `*` | `501 5.7.0 Authentication aborted` |
//! | failure | `535 5.7.8 Error: authentication failed: REASON` (`(reason unavailable)` when none) |
//! | backend unavailable | `454 4.7.0 Temporary authentication failure: REASON` |
//! | success | `235 2.7.0 Authentication successful` |
//!
//! Each refusal counts as an error (`smtpd_soft_error_limit` delays,
//! `smtpd_hard_error_limit` ends the session), which is what slows a password
//! guesser down, together with the anvil rate limit.
//!
//! # Security
//! Client responses are bounded by `smtpd_sasl_response_limit`; the log gets
//! the mechanism and login name, never a response or password.
//!
//! # Configuration
//! See [`super`]; plus `smtpd_client_auth_rate_limit`, `smtpd_helo_required`,
//! `smtpd_discard_ehlo_keywords`.

use super::{ClientInfo, Sasl, Step};
use crate::conn::ReadError;
use crate::session::{Flow, Session, reply};
use postern_smtp_proto::{LineKind, LineReader, Reply};
use std::sync::Arc;

fn enabled(sess: &Session<'_>) -> Option<Arc<Sasl>> {
    if sess.standalone || sess.s.discard_ehlo.iter().any(|k| k == "auth") {
        return None;
    }
    sess.s.sasl.clone()
}

/// The `AUTH …` lines of the EHLO reply (none when AUTH is not offered).
pub(crate) async fn ehlo_keywords(sess: &Session<'_>) -> Vec<String> {
    let Some(sasl) = enabled(sess) else {
        return Vec::new();
    };
    let tls = sess.tls_active();
    if sess.tls_required_for_auth() {
        return Vec::new();
    }
    if let (Some(list), Some(addr)) = (&sasl.exceptions, sess.facts.client_addr)
        && list.matches(addr).unwrap_or(false)
    {
        return Vec::new();
    }
    let mechs = sasl.mechanisms(tls).await;
    if mechs.is_empty() {
        return Vec::new();
    }
    let list = mechs.join(" ");
    let mut out = vec![format!("AUTH {list}")];
    if sasl.broken_clients {
        out.push(format!("AUTH={list}"));
    }
    out
}

/// `sasl_method=…, sasl_username=…, sasl_sender=…` for the `client=` line.
pub(crate) fn log_fields(sess: &Session<'_>, auth_param: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(m) = &sess.facts.sasl_method {
        s.push_str(&format!(", sasl_method={m}"));
    }
    if let Some(u) = &sess.facts.sasl_username {
        s.push_str(&format!(", sasl_username={u}"));
    }
    if let Some(a) = auth_param {
        s.push_str(&format!(", sasl_sender={}", super::dovecot::printable(a)));
    }
    s
}

/// Attributes for cleanup: Postfix's `sasl_method`, `sasl_username`,
/// `sasl_sender` (kept in the queue file), and `sasl_auth_header` (the login,
/// only with `smtpd_sasl_authenticated_header = yes`) for the Received header.
pub(crate) fn cleanup_attrs(sess: &Session<'_>, auth_param: Option<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(m) = &sess.facts.sasl_method {
        out.push(("sasl_method".to_string(), m.clone()));
    }
    if let Some(u) = &sess.facts.sasl_username {
        out.push(("sasl_username".to_string(), u.clone()));
        if sess.s.sasl.as_ref().is_some_and(|s| s.authenticated_header) {
            out.push(("sasl_auth_header".to_string(), u.clone()));
        }
    }
    if let Some(a) = auth_param {
        out.push(("sasl_sender".to_string(), super::dovecot::printable(a)));
    }
    out
}

/// RFC 3848: an authenticated ESMTP session's protocol name ends in `A`
/// (`ESMTPA`, `ESMTPSA`).
pub(crate) fn authenticated(sess: &Session<'_>) -> bool {
    sess.esmtp && sess.facts.sasl_method.is_some()
}

async fn refuse(sess: &mut Session<'_>, r: Reply) -> Flow {
    sess.counters.count("auth", false);
    sess.error(r).await
}

/// The AUTH command.
pub async fn auth(sess: &mut Session<'_>, mechanism: String, initial: Option<String>) -> Flow {
    sess.set_last("AUTH");
    if let Some(r) = rate_limit(sess).await {
        return refuse(sess, r).await;
    }
    if sess.s.helo_required && sess.facts.helo.is_none() {
        return refuse(sess, reply(503, (5, 5, 1), "Error: send HELO/EHLO first")).await;
    }
    let Some(sasl) = enabled(sess) else {
        return refuse(
            sess,
            reply(503, (5, 5, 1), "Error: authentication not enabled"),
        )
        .await;
    };
    if sess.txn.is_some() {
        return refuse(
            sess,
            reply(503, (5, 5, 1), "Error: MAIL transaction in progress"),
        )
        .await;
    }
    let tls = sess.tls_active();
    if sess.tls_required_for_auth() {
        let text = "Encryption required for requested authentication mechanism";
        return refuse(sess, reply(504, (5, 5, 4), text)).await;
    }
    if sess.facts.sasl_username.is_some() {
        return refuse(sess, reply(503, (5, 5, 1), "Error: already authenticated")).await;
    }
    let client = ClientInfo {
        local: String::new(),
        remote: sess
            .facts
            .client_addr
            .map(|a| a.to_string())
            .unwrap_or_default(),
        tls,
    };
    let offered = sasl.mechanisms(tls).await;
    let (mut step, mut conv) = if offered.iter().any(|m| m.eq_ignore_ascii_case(&mechanism)) {
        sasl.start(&mechanism, initial.as_deref(), &client).await
    } else {
        (
            Step::Fail("Invalid authentication mechanism".into(), None),
            None,
        )
    };
    let mut lines = LineReader::new(sasl.response_limit);
    loop {
        match step {
            Step::Challenge(c) => {
                sess.conn.reply_raw(&format!("334 {c}\r\n"));
                let Some(c) = conv.take() else {
                    step = Step::Temp("Authentication backend error".into());
                    continue;
                };
                let line = match sess.conn.read_line(&mut lines).await {
                    Ok(l) => l,
                    Err(e) => return lost(sess, e),
                };
                if line.kind == LineKind::TooLong {
                    sasl.abort(c).await;
                    let shown: String =
                        String::from_utf8_lossy(&line.bytes[..line.bytes.len().min(30)]).into();
                    postern_log::warning(format!(
                        "{}: request longer than {}: {}...",
                        sess.client,
                        sasl.response_limit,
                        super::dovecot::printable(&shown)
                    ));
                    return refuse(sess, reply(500, (5, 5, 6), "SASL response limit exceeded"))
                        .await;
                }
                let text = String::from_utf8_lossy(&line.bytes).into_owned();
                if text == "*" {
                    sasl.abort(c).await;
                    postern_log::warning(format!(
                        "{}: SASL {mechanism} authentication aborted",
                        sess.client
                    ));
                    return refuse(sess, reply(501, (5, 7, 0), "Authentication aborted")).await;
                }
                (step, conv) = sasl.step(c, &text).await;
            }
            Step::Done(user) => {
                sess.facts.sasl_username = Some(user);
                sess.facts.sasl_method = Some(mechanism.to_ascii_uppercase());
                sess.counters.count("auth", true);
                sess.conn
                    .reply(&reply(235, (2, 7, 0), "Authentication successful"));
                return Flow::Continue;
            }
            Step::Fail(reason, user) => {
                let reason = if reason.is_empty() {
                    "(reason unavailable)".to_string()
                } else {
                    reason
                };
                warn_failed(sess, &mechanism, &reason, user.as_deref());
                let text = format!("Error: authentication failed: {reason}");
                return refuse(sess, reply(535, (5, 7, 8), text)).await;
            }
            Step::Temp(reason) => {
                warn_failed(sess, &mechanism, &reason, None);
                let text = format!("Temporary authentication failure: {reason}");
                return refuse(sess, reply(454, (4, 7, 0), text)).await;
            }
        }
    }
}

fn warn_failed(sess: &Session<'_>, mech: &str, reason: &str, user: Option<&str>) {
    let mech: String = mech.chars().take(100).collect();
    let user: String = user.unwrap_or("(unavailable)").chars().take(100).collect();
    postern_log::warning(format!(
        "{}: SASL {mech} authentication failed: {reason}, sasl_username={user}",
        sess.client
    ));
}

fn lost(sess: &mut Session<'_>, e: ReadError) -> Flow {
    match e {
        ReadError::Timeout => {
            postern_log::info(format!("timeout after AUTH from {}", sess.client));
            let text = format!("{} Error: timeout exceeded", sess.s.myhostname);
            sess.conn.reply(&reply(421, (4, 4, 2), text));
        }
        ReadError::Eof => {
            postern_log::info(format!("lost connection after AUTH from {}", sess.client));
        }
        ReadError::Io(e) => {
            postern_log::info(format!("{e} after AUTH from {}", sess.client));
        }
    }
    sess.counters.count("auth", false);
    Flow::Close
}

/// `smtpd_client_auth_rate_limit`: every AUTH command counts, accepted or not.
async fn rate_limit(sess: &mut Session<'_>) -> Option<Reply> {
    let limit = sess.anvil.auth_rate_limit;
    let addr = sess.facts.client_addr?;
    if sess.standalone || limit == 0 || !sess.anvil.applies(Some(addr)) {
        return None;
    }
    let r = sess.anvil.event("auth", addr).await?;
    if r.rate <= limit {
        return None;
    }
    postern_log::warning(format!(
        "AUTH command rate limit exceeded: {} from {} for service {}",
        r.rate,
        sess.client,
        sess.anvil.service()
    ));
    Some(reply(
        450,
        (4, 7, 1),
        format!("Error: too many AUTH commands from {addr}"),
    ))
}
