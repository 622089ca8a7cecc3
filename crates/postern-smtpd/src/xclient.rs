//! XCLIENT and XFORWARD (Postfix's extensions for trusted proxies and
//! content filters), for the clients named in `smtpd_authorized_xclient_hosts`
//! and `smtpd_authorized_xforward_hosts`.
//!
//! XCLIENT replaces what smtpd believes about the client (name, address,
//! HELO, protocol, login) and restarts the session with a new greeting.
//! XFORWARD only changes what is recorded for the next message (Received
//! header, logs): the policy still applies to the real client.
//!
//! # Security
//! Anyone else gets `550 5.7.0 Error: insufficient authorization`; both
//! commands are refused inside a transaction.

use crate::session::{Flow, Session, reply};
use postern_smtp_proto::{Reply, XAttr};
use postern_table::NetworkList;
use std::net::IpAddr;

/// Which clients may use the extensions.
pub struct Trusted {
    xclient: Option<NetworkList>,
    xforward: Option<NetworkList>,
}

fn list(cfg: &postern_config::Config, name: &str) -> Option<NetworkList> {
    let v = cfg.get(name);
    if v.trim().is_empty() {
        return None;
    }
    match NetworkList::new(&v, &Default::default()) {
        Ok(l) => Some(l),
        Err(e) => {
            postern_log::warning(format!("{name}: {e}"));
            None
        }
    }
}

impl Trusted {
    /// Reads the two host lists.
    pub fn from_config(cfg: &postern_config::Config) -> Trusted {
        Trusted {
            xclient: list(cfg, "smtpd_authorized_xclient_hosts"),
            xforward: list(cfg, "smtpd_authorized_xforward_hosts"),
        }
    }

    /// Whether `addr` may use XCLIENT.
    pub fn xclient(&self, addr: Option<IpAddr>) -> bool {
        matches!((&self.xclient, addr), (Some(l), Some(a)) if l.matches(a).unwrap_or(false))
    }

    /// Whether `addr` may use XFORWARD.
    pub fn xforward(&self, addr: Option<IpAddr>) -> bool {
        matches!((&self.xforward, addr), (Some(l), Some(a)) if l.matches(a).unwrap_or(false))
    }
}

fn unavailable(v: &str) -> bool {
    v.eq_ignore_ascii_case("[UNAVAILABLE]") || v.eq_ignore_ascii_case("[TEMPUNAVAIL]")
}

/// XCLIENT.
pub async fn xclient(sess: &mut Session<'_>, attrs: Vec<(XAttr, String)>) -> Flow {
    sess.set_last("XCLIENT");
    if !sess.trusted.xclient(sess.real_addr) {
        sess.counters.count("xclient", false);
        return sess
            .error(reply(550, (5, 7, 0), "Error: insufficient authorization"))
            .await;
    }
    if sess.txn.is_some() {
        sess.counters.count("xclient", false);
        return sess
            .error(reply(503, (5, 5, 1), "Error: MAIL transaction in progress"))
            .await;
    }
    for (k, v) in attrs {
        let value = if unavailable(&v) { None } else { Some(v) };
        match k {
            XAttr::Name => sess.facts.client_name = value.unwrap_or_else(|| "unknown".into()),
            XAttr::ReverseName => {
                sess.facts.reverse_client_name = value.unwrap_or_else(|| "unknown".into())
            }
            XAttr::Addr => {
                let parsed = value
                    .as_deref()
                    .map(|a| a.trim_start_matches("IPV6:").trim_start_matches("IPv6:"));
                match parsed.map(|a| a.parse::<IpAddr>()) {
                    Some(Ok(a)) => sess.facts.client_addr = Some(a),
                    None => sess.facts.client_addr = None,
                    Some(Err(_)) => {
                        sess.counters.count("xclient", false);
                        return sess.error(reply(501, (5, 5, 4), "Bad ADDR syntax")).await;
                    }
                }
            }
            XAttr::Helo => sess.facts.helo = value,
            XAttr::Proto => sess.facts.protocol = value.unwrap_or_else(|| "SMTP".into()),
            XAttr::Login => sess.facts.sasl_username = value,
            _ => {}
        }
    }
    sess.refresh_client_label();
    sess.counters.count("xclient", true);
    sess.esmtp = false;
    sess.conn
        .reply(&Reply::new(220, None, sess.s.banner.clone()));
    Flow::Continue
}

/// XFORWARD.
pub async fn xforward(sess: &mut Session<'_>, attrs: Vec<(XAttr, String)>) -> Flow {
    sess.set_last("XFORWARD");
    if !sess.trusted.xforward(sess.real_addr) {
        sess.counters.count("xforward", false);
        return sess
            .error(reply(550, (5, 7, 0), "Error: insufficient authorization"))
            .await;
    }
    if sess.txn.is_some() {
        sess.counters.count("xforward", false);
        return sess
            .error(reply(503, (5, 5, 1), "Error: MAIL transaction in progress"))
            .await;
    }
    for (k, v) in attrs {
        if unavailable(&v) {
            continue;
        }
        let key = match k {
            XAttr::Name => "client_name",
            XAttr::Addr => "client_address",
            XAttr::Helo => "helo_name",
            XAttr::Proto => "protocol",
            XAttr::Ident => "log_ident",
            XAttr::Source => "rewrite_context",
            _ => continue,
        };
        let v = if k == XAttr::Source {
            if v.eq_ignore_ascii_case("LOCAL") {
                "local".into()
            } else {
                "remote".into()
            }
        } else {
            v
        };
        sess.forwarded.retain(|(n, _)| n != key);
        sess.forwarded.push((key.to_string(), v));
    }
    sess.counters.count("xforward", true);
    sess.conn.reply(&reply(250, (2, 0, 0), "Ok"));
    Flow::Continue
}
