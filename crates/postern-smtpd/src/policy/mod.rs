//! smtpd's access policy: Postfix's restriction lists (`smtpd_*_restrictions`)
//! evaluated in Postfix's order, with `smtpd_delay_reject`.
//!
//! INTERFACE CONTRACT (the session in `crate::session` codes against it):
//! [`Policy::from_config`] once per process; per command the session builds a
//! [`Facts`] and calls [`Policy::check`] for a [`Stage`]; the [`Verdict`] says
//! whether to go on, and may carry a reply and message actions.
//!
//! # Evaluation
//!
//! Each list is evaluated on its own, left to right: a permit-class result (`permit`,
//! `OK`, `permit_mynetworks`…) ends *that* list and the next list still runs; a
//! reject or defer ends the whole check with its reply. With `smtpd_delay_reject = yes`
//! (the default) the client, HELO and sender lists run at each RCPT (and client and HELO
//! at ETRN) instead of at their own stage. At RCPT, `smtpd_relay_restrictions` runs
//! before `smtpd_recipient_restrictions` (after it when
//! `smtpd_relay_before_recipient_restrictions = no`), then the implicit
//! `reject_unlisted_recipient` (`smtpd_reject_unlisted_recipient`). `defer_if_permit`,
//! `defer_if_reject` and `warn_if_reject` behave as in Postfix (checked against
//! Postfix 3.7: a reject while `defer_if_reject` is pending becomes that defer, or the
//! pending `defer_if_permit` reply when both are pending). The bare recipient
//! `postmaster` skips the RCPT checks, as Postfix does (RFC 5321 section 4.5.1).
//!
//! # Decisions (where Postfix's behaviour needs something we do not have)
//!
//! * DNS: words that need DNS use the [`Dns`] resolver given with [`Policy::set_dns`].
//!   Without one they log `warning: <word>: DNS lookups are not configured` once and
//!   act as `DUNNO`. `reject_unknown_client_hostname` and
//!   `reject_unknown_reverse_client_hostname` need no resolver: they use
//!   [`Facts::client_name`] / [`Facts::reverse_client_name`] (`unknown` = not found).
//! * Own addresses are those of `inet_interfaces` (every interface address for `all`)
//!   and `proxy_interfaces`: an address literal naming one is a local destination, and
//!   `permit_inet_interfaces` permits a client at one. `mynetworks`, when unset, is
//!   computed from `mynetworks_style` and the `inet_interfaces` addresses and netmasks.
//! * Fail closed: a table or domain list that cannot be opened is kept as broken (a
//!   warning at start-up); a lookup in it, or any failed lookup, refuses the command
//!   with Postfix's `451 4.3.0 <addr>: Temporary lookup failure` (recipient tables,
//!   address classes) or `451 4.3.5 Server configuration error`. No table is ever
//!   skipped.
//! * Log lines ([`Verdict::log`]) carry Postfix's full suffix
//!   `; from=<s> to=<r> proto=ESMTP helo=<h>`, like Postfix's own lines.
//! * Restriction words Postfix knows but Postern does not implement
//!   (`reject_unverified_*`, `check_ccert_access`, `check_sasl_access`…) are handled as
//!   Postfix handles a word it does not know: `warning: unknown smtpd restriction: "x"`
//!   and `451 4.3.5 Server configuration error` when evaluation reaches them — never
//!   `DUNNO`. `check_relay_domains` (deprecated in Postfix, still honoured) is
//!   implemented.
//!
//! # Security
//!
//! Every value in [`Facts`] comes from the network: it is only ever a lookup key or
//! reply text, never a pattern. Restriction-class and access-table recursion is bounded
//! ([`MAX_NESTING`]). Policy-service replies are bounded in size.

mod access;
mod addr;
mod compile;
mod dns;
mod eval;
mod relay;
mod sasl;
mod service;
mod spf;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_relay;
#[cfg(test)]
mod tests_sasl;

pub use dns::{Dns, DnsAnswer, DnsFuture, RrType};
pub use spf::{SpfAnswer, SpfCheck, SpfFuture};

use postern_config::p;
use postern_smtp_proto::Reply;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// When a check runs (which restriction lists apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// After the connection is accepted (client restrictions, unless delayed).
    Connect,
    /// HELO/EHLO (helo restrictions, unless delayed).
    Helo,
    /// MAIL FROM (sender restrictions, unless delayed).
    Mail,
    /// RCPT TO (client, helo, sender when delayed; then relay and recipient restrictions).
    Rcpt,
    /// DATA command (data restrictions).
    Data,
    /// End of message (end-of-data restrictions).
    EndOfData,
    /// ETRN (etrn restrictions).
    Etrn,
}

/// What the session knows when it asks.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Client IP address.
    pub client_addr: Option<IpAddr>,
    /// Verified client host name, or `unknown`.
    pub client_name: String,
    /// Client reverse name (PTR), or `unknown`.
    pub reverse_client_name: String,
    /// HELO/EHLO argument, if given.
    pub helo: Option<String>,
    /// Protocol (`SMTP`, `ESMTP`).
    pub protocol: String,
    /// Envelope sender once MAIL was given (`""` = null sender).
    pub sender: Option<String>,
    /// The recipient being checked (RCPT stage).
    pub recipient: Option<String>,
    /// Number of accepted recipients so far in this transaction.
    pub recipient_count: usize,
    /// SIZE= from MAIL, or the message size at end of data.
    pub size: u64,
    /// ETRN argument.
    pub etrn_domain: Option<String>,
    /// The client sent this command before our previous reply was due while
    /// pipelining was not allowed (for `reject_unauth_pipelining`).
    pub improper_pipelining: bool,
    /// SASL login name when authenticated (or named by XCLIENT LOGIN).
    pub sasl_username: Option<String>,
    /// SASL mechanism of a successful AUTH (`permit_sasl_authenticated` does
    /// not permit `ANONYMOUS`).
    pub sasl_method: Option<String>,
    /// Queue ID (after end of data).
    pub queue_id: Option<String>,
}

/// An action an access table or restriction attached to the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageAction {
    /// Put the message on hold (HOLD).
    Hold(String),
    /// Accept and throw away (DISCARD).
    Discard(String),
    /// Add a header line (PREPEND).
    Prepend(String),
    /// Deliver to this address instead (REDIRECT).
    Redirect(String),
    /// Route through this content filter (FILTER transport:dest).
    Filter(String),
    /// Blind copy (BCC).
    Bcc(String),
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// `Some(reply)`: refuse the command with this reply (4xx or 5xx). `None`: go on.
    pub reject: Option<Reply>,
    /// Actions for the message (kept by the session for the transaction).
    pub actions: Vec<MessageAction>,
    /// Log lines to emit (`warn_if_reject`, WARN, INFO): Postfix-format text
    /// without the `NOQUEUE:`/queue-ID prefix, e.g.
    /// `reject_warning: RCPT from host[addr]: 554 5.7.1 ...`.
    pub log: Vec<String>,
}

/// A configuration problem found at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Deepest nesting of restriction classes and access-table restriction lists.
pub const MAX_NESTING: usize = 32;

/// The compiled restriction lists, tables and lists of one smtpd process.
#[derive(Debug)]
pub struct Policy {
    lists: compile::Lists,
    classes: HashMap<String, compile::List>,
    params: eval::Params,
    addrs: addr::Resolver,
    mynetworks: postern_table::NetworkList,
    /// `smtpd_sender_login_maps`.
    login_maps: Vec<compile::Table>,
    dns: Option<Arc<dyn Dns>>,
    /// The SPF words' checker (`reject_spf_fail` & co.).
    spf: Option<Arc<dyn SpfCheck>>,
    dns_warned: std::sync::atomic::AtomicBool,
}

impl Policy {
    /// Compiles the restriction lists from the configuration and opens their tables.
    ///
    /// # Errors
    ///
    /// Postfix's start-up refusals: no working relay restriction
    /// (`reject_unauth_destination` & co.) in `smtpd_relay_restrictions` or
    /// `smtpd_recipient_restrictions`, a malformed `mynetworks` or an unknown
    /// `mynetworks_style`.
    pub fn from_config(cfg: &postern_config::Config) -> Result<Policy, PolicyError> {
        let (lists, classes) = compile::compile_all(cfg)?;
        let own = addr::own(cfg);
        Ok(Policy {
            lists,
            classes,
            params: eval::Params::from_config(cfg),
            addrs: addr::Resolver::new(cfg, &own),
            mynetworks: addr::mynetworks(cfg, &own)?,
            login_maps: sasl::open_login_maps(&cfg.str(p::SMTPD_SENDER_LOGIN_MAPS)),
            dns: None,
            spf: None,
            dns_warned: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Gives the policy a DNS resolver for the DNS-based restrictions.
    pub fn set_dns(&mut self, dns: Arc<dyn Dns>) {
        self.dns = Some(dns);
    }

    /// Gives the policy the SPF checker of the SPF restriction words.
    pub fn set_spf(&mut self, spf: Arc<dyn SpfCheck>) {
        self.spf = Some(spf);
    }

    /// Evaluates the lists for `stage`.
    pub async fn check(&self, stage: Stage, facts: &Facts) -> Verdict {
        eval::check(self, stage, facts).await
    }

    /// Whether `local_header_rewrite_clients` (its words, `list`) matches the client, as
    /// Postfix's smtpd decides the rewrite context (the XFORWARD `SOURCE` the proxy filter
    /// gets): `permit_inet_interfaces`, `permit_mynetworks`, `permit_sasl_authenticated`,
    /// `static:all`; other elements match nothing (cleanup reads them the same way).
    pub fn local_header_client(&self, list: &[String], facts: &Facts) -> bool {
        let ip = facts.client_addr;
        list.iter().any(|w| match w.to_ascii_lowercase().as_str() {
            "permit_inet_interfaces" => ip.is_some_and(|a| self.addrs.is_inet_interface(a)),
            "permit_mynetworks" => ip.is_some_and(|a| self.mynetworks.matches(a).unwrap_or(false)),
            "permit_sasl_authenticated" => facts.sasl_username.is_some(),
            "static:all" => true,
            _ => false,
        })
    }
}
