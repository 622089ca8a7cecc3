//! The TLS and SASL steps of a session (a child of [`super`]): STARTTLS
//! with the level's checks after the handshake (`Server certificate not
//! trusted` / `not verified`, the TLS summary log line), and AUTH
//! PLAIN/LOGIN.
//!
//! Security: replies buffered before the handshake are discarded; the
//! password is sent only base64-encoded on the wire and never logged.
//!
//! Parameters: none directly (the session's [`Settings`]).

use super::{Conn, EhloCaps, Outcome, Peer, ReplyParser, SessionEnd, Settings, Wire};
use crate::policy::Level;
use crate::result;

/// STARTTLS per `s.tls`, then EHLO again; returns the capabilities to use
/// and whether the session is now encrypted.
pub(super) fn starttls<C: Conn>(
    w: &mut Wire<'_, C>,
    peer: &Peer,
    s: &Settings,
    caps: EhloCaps,
    hs_stage: &str,
) -> Result<(EhloCaps, bool), SessionEnd> {
    let t = &s.timeouts;
    if s.tls == Level::None {
        return Ok((caps, false));
    }
    let cfg = match &s.tls_config {
        Some(cfg) if caps.starttls => cfg.clone(),
        _ if !s.tls.mandatory() => return Ok((caps, false)),
        _ => {
            w.quit(t.quit);
            let why = if caps.starttls {
                "TLS is required, but our TLS engine is unavailable".to_string()
            } else {
                format!(
                    "TLS is required, but was not offered by host {}",
                    peer.name()
                )
            };
            let dsn = if caps.starttls { "4.7.5" } else { "4.7.4" };
            if !caps.starttls {
                tls_report(s, peer, Some("starttls-not-supported"), "");
            }
            return Err(SessionEnd::NextHost(Outcome::defer(dsn, why)));
        }
    };
    let r = match w
        .send(b"STARTTLS\r\n", t.helo)
        .and_then(|()| w.reply(t.helo))
    {
        Ok(r) => r,
        Err(e) => {
            return Err(SessionEnd::NextHost(result::from_io(
                peer,
                &e,
                "receiving the STARTTLS response",
            )));
        }
    };
    if r.code / 100 != 2 {
        if !s.tls.mandatory() {
            // Postfix continues in plaintext when STARTTLS is refused.
            return Ok((caps, false));
        }
        let mut o = result::from_reply(peer, &r, "STARTTLS");
        o.action = postern_ipc::proto::Action::Defer;
        if o.dsn.starts_with('5') {
            o.dsn.replace_range(..1, "4");
        }
        o.text = format!(
            "TLS is required, but host {} refused to start TLS: {}",
            peer.name(),
            result::reply_line(&r)
        );
        w.quit(t.quit);
        return Err(SessionEnd::NextHost(o));
    }
    // Anything the peer sent before the handshake is not to be trusted.
    w.buf.clear();
    w.parser = ReplyParser::new(s.reply_limits);
    let server = s.tls_sni.as_deref().unwrap_or(&peer.host);
    let info = match w.conn.starttls(&cfg, server, t.helo) {
        Ok(info) => info,
        Err(why) => {
            let o = Outcome::defer("4.7.5", "Cannot start TLS: handshake failure");
            tls_report(s, peer, Some("validation-failure"), &why);
            postern_log::info(format!("SSL_connect error to {}: {why}", peer.relay()));
            // Under `may` Postfix retries in plaintext, unless it would
            // have authenticated (SASL over TLS only).
            return Err(if s.tls == Level::May && s.sasl.is_none() {
                SessionEnd::TlsFailed(o)
            } else {
                SessionEnd::NextHost(o)
            });
        }
    };
    let what = info.split_once('|').map_or(info.as_str(), |(_, w)| w);
    let verdict = s
        .tls_verifier
        .as_ref()
        .and_then(|v| v.verdict())
        .unwrap_or_default();
    let relay = peer.relay();
    if let (true, Some(why)) = (
        s.tls.must_trust() || s.tls.must_match(),
        &verdict.untrusted_why,
    ) && (s.tls.must_trust() || !verdict.matched)
    {
        postern_log::info(why.replace("%s", &relay));
    }
    if s.tls_loglevel >= 1 {
        postern_log::info(format!(
            "{} TLS connection established to {relay}: {what}",
            verdict.label()
        ));
    }
    if let Some(domain) = &s.tls_sts_testing
        && !verdict.matched
    {
        postern_log::info(format!(
            "MTA-STS policy (testing) of {domain}: server certificate of {relay} not verified"
        ));
    }
    let fail = if s.tls.must_trust() && !verdict.trusted {
        Some("Server certificate not trusted")
    } else if s.tls.must_match() && !verdict.matched {
        Some("Server certificate not verified")
    } else {
        None
    };
    let testing_fail = s.tls_sts_testing.is_some() && !verdict.matched;
    tls_report(
        s,
        peer,
        match fail {
            Some(_) if s.tls.must_trust() && !verdict.trusted => Some("certificate-not-trusted"),
            Some(_) => Some("certificate-host-mismatch"),
            None if testing_fail => Some("certificate-host-mismatch"),
            None => None,
        },
        fail.unwrap_or(""),
    );
    if let Some(text) = fail {
        w.quit(t.quit);
        return Err(SessionEnd::NextHost(Outcome::defer("4.7.5", text)));
    }
    let hello = if s.lmtp { "LHLO" } else { "EHLO" };
    let r = match w
        .send(format!("{hello} {}\r\n", s.helo_name).as_bytes(), t.helo)
        .and_then(|()| w.reply(t.helo))
    {
        Ok(r) => r,
        Err(e) => return Err(SessionEnd::NextHost(result::from_io(peer, &e, hs_stage))),
    };
    if !r.is_positive() {
        w.quit(t.quit);
        return Err(SessionEnd::NextHost(result::from_reply(peer, &r, hello)));
    }
    Ok((EhloCaps::from_reply(&r).unwrap_or_default(), true))
}

/// Records the session's TLS outcome for TLS-RPT when a policy applies (`None`:
/// success); a failure to write is logged, never fatal.
fn tls_report(s: &Settings, peer: &Peer, failure: Option<&str>, reason: &str) {
    let Some(t) = &s.tls_report else {
        return;
    };
    let mut r = t.record.clone();
    r.success = failure.is_none();
    r.result_type = failure.unwrap_or("").to_string();
    r.receiving_ip = peer.addr.parse().ok();
    r.failure_reason_code = reason.to_string();
    if let Err(e) = postern_auth::report::record_tls(&t.dir, &r) {
        postern_log::warning(format!("TLS-RPT record in {}: {e}", t.dir.display()));
    }
}

/// SASL authentication (AUTH PLAIN/LOGIN) when credentials were found and
/// the server offers AUTH.
pub(super) fn auth<C: Conn>(
    w: &mut Wire<'_, C>,
    peer: &Peer,
    s: &Settings,
    caps: &EhloCaps,
    tls: bool,
) -> Result<(), SessionEnd> {
    let t = &s.timeouts;
    let Some(login) = &s.sasl else {
        return Ok(());
    };
    if caps.auth.is_empty() {
        return Ok(());
    }
    let opts = if tls { &login.tls_opts } else { &login.opts };
    let fail = |w: &mut Wire<'_, C>, o: Outcome| {
        w.quit(t.quit);
        Err(SessionEnd::NextHost(o))
    };
    let mech = match crate::sasl::choose(&caps.auth, &login.filter, opts) {
        Ok(m) => m,
        Err(crate::sasl::NoMech::Filtered) => {
            return fail(
                w,
                Outcome::defer(
                    "4.7.0",
                    format!(
                        "SASL authentication failed: server {} offered no compatible \
                         authentication mechanisms for this type of connection security",
                        peer.name()
                    ),
                ),
            );
        }
        Err(crate::sasl::NoMech::Unusable) => {
            postern_log::warning("SASL authentication failure: No worthy mechs found");
            return fail(
                w,
                Outcome::defer(
                    "4.7.0",
                    format!(
                        "SASL authentication failed; cannot authenticate to server {}: \
                         no mechanism available",
                        peer.name()
                    ),
                ),
            );
        }
    };
    let c = &login.creds;
    let mut steps: Vec<String> = Vec::new();
    let first = if mech == "PLAIN" {
        format!("AUTH PLAIN {}\r\n", crate::sasl::plain_response(c))
    } else {
        steps.push(crate::sasl::b64(c.user.as_bytes()));
        steps.push(crate::sasl::b64(c.pass.as_bytes()));
        "AUTH LOGIN\r\n".to_string()
    };
    let stage = "sending the AUTH command";
    let mut r = match w
        .send(first.as_bytes(), t.helo)
        .and_then(|()| w.reply(t.helo))
    {
        Ok(r) => r,
        Err(e) => return Err(SessionEnd::NextHost(result::from_io(peer, &e, stage))),
    };
    let mut steps = steps.into_iter();
    while r.code == 334 {
        // PLAIN answers an empty challenge with nothing more to say: "*"
        // cancels; LOGIN answers its two prompts.
        let line = steps.next().unwrap_or_else(|| "*".to_string());
        r = match w
            .send(format!("{line}\r\n").as_bytes(), t.helo)
            .and_then(|()| w.reply(t.helo))
        {
            Ok(r) => r,
            Err(e) => return Err(SessionEnd::NextHost(result::from_io(peer, &e, stage))),
        };
    }
    if r.code == 235 {
        return Ok(());
    }
    let mut o = result::from_reply(peer, &r, "AUTH");
    o.action = postern_ipc::proto::Action::Defer;
    if o.dsn.starts_with('5') {
        o.dsn.replace_range(..1, "4");
    } else if !o.dsn.starts_with('4') {
        // Neither 235 nor an error (a server that answers AUTH with 250): still a deferral.
        o.dsn = "4.7.0".into();
    }
    o.text = format!(
        "SASL authentication failed; server {} said: {}",
        peer.name(),
        result::reply_line(&r)
    );
    fail(w, o)
}
