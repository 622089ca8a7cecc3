//! smtpd's DNS: the [`postern_dns::Resolver`] behind the policy's [`Dns`] seam,
//! and the client-name lookup at connect (Postfix's `smtpd_peer` logic).
//!
//! * [`Dns`] answers are in presentation form: A/AAAA addresses as text,
//!   MX exchanges and PTR names as absolute names with a trailing dot (sorted by
//!   MX preference; a null MX is the single name `.`), TXT records with their
//!   character-strings concatenated. A PTR query takes either an address or an
//!   `in-addr.arpa`/`ip6.arpa` name.
//! * Loopback names and addresses come from `/etc/hosts` (see `postern_dns`).
//! * With `smtpd_peername_lookup = no` the client is `unknown` without lookups.

use crate::policy::{Dns, DnsAnswer, DnsFuture, RrType};
use crate::session::Session;
use postern_config::{Config, p};
use postern_dns::{Lookup, NameStatus, Resolver};
use std::net::IpAddr;

/// The policy's view of a [`Resolver`].
#[derive(Debug, Clone)]
pub struct PolicyDns(pub Resolver);

impl Dns for PolicyDns {
    fn lookup<'a>(&'a self, name: &'a str, rr: RrType) -> DnsFuture<'a> {
        Box::pin(async move {
            let r = &self.0;
            let found: Lookup<Vec<String>> = match rr {
                RrType::A => r.a(name).await.map(texts),
                RrType::Aaaa => r.aaaa(name).await.map(texts),
                RrType::Mx => r
                    .mx(name)
                    .await
                    .map(|v| v.into_iter().map(|(_, h)| absolute(h)).collect()),
                RrType::Ptr => match name.parse::<IpAddr>() {
                    Ok(ip) => r.ptr(ip).await,
                    Err(_) => r
                        .query(name, postern_dns::RecordType::PTR)
                        .await
                        .map(|v| v.iter().map(ToString::to_string).collect()),
                }
                .map(|v| v.into_iter().map(absolute).collect()),
                RrType::Txt => r.txt(name).await,
            };
            match found {
                Lookup::Found(v) => DnsAnswer::Found(v),
                Lookup::NotFound => DnsAnswer::NotFound,
                Lookup::TempFail(_) => DnsAnswer::TempFail,
            }
        })
    }
}

fn texts(v: Vec<IpAddr>) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

fn absolute(mut name: String) -> String {
    if !name.ends_with('.') {
        name.push('.');
    }
    name
}

/// The resolver from `dns_servers` / `/etc/resolv.conf`, or `None` (with a
/// warning) when the configuration is unusable: the DNS-based restrictions then
/// act as DUNNO and clients are named by address only.
pub fn from_config(cfg: &Config) -> Option<Resolver> {
    match Resolver::from_config(cfg) {
        Ok(r) => Some(r),
        Err(e) => {
            postern_log::warning(format!("DNS lookups disabled: {e}"));
            None
        }
    }
}

/// Looks up the client's names (PTR, then forward confirmation) and records
/// them in the session: `client_name` is the verified name or `unknown`,
/// `reverse_client_name` the PTR name or `unknown`. Logs Postfix's warning for
/// a name that does not resolve back to the address.
pub async fn name_client(sess: &mut Session<'_>, resolver: Option<&Resolver>) {
    let Some(ip) = sess.facts.client_addr else {
        return;
    };
    if !sess.cfg.bool(p::SMTPD_PEERNAME_LOOKUP) {
        sess.facts.client_name = "unknown".into();
        sess.facts.reverse_client_name = "unknown".into();
        sess.refresh_client_label();
        return;
    }
    let Some(resolver) = resolver else {
        return;
    };
    let c = resolver.client_name(ip).await;
    if let Some(w) = &c.warning
        && c.name_status != NameStatus::NotFound
    {
        postern_log::warning(w.clone());
    }
    sess.facts.client_name = c.name;
    sess.facts.reverse_client_name = c.reverse_name;
    sess.refresh_client_label();
}
