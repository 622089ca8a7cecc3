//! smtpd's access policy: Postfix's restriction lists (`smtpd_*_restrictions`)
//! evaluated in Postfix's order, with `smtpd_delay_reject`.
//!
//! INTERFACE CONTRACT (the session in `crate::session` codes against it):
//! [`Policy::from_config`] once per process; per command the session builds a
//! [`Facts`] and calls [`Policy::check`] for a [`Stage`]; the [`Verdict`] says
//! whether to go on, and may carry a reply and message actions.

use postern_smtp_proto::Reply;
use std::net::IpAddr;

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
    /// SASL login name when authenticated.
    pub sasl_username: Option<String>,
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

/// The compiled restriction lists, tables and lists of one smtpd process.
#[derive(Debug)]
pub struct Policy {
    _private: (),
}

impl Policy {
    /// Compiles the restriction lists from the configuration and opens their tables.
    pub fn from_config(_cfg: &postern_config::Config) -> Result<Policy, PolicyError> {
        Ok(Policy { _private: () })
    }

    /// Evaluates the lists for `stage`.
    pub async fn check(&self, _stage: Stage, _facts: &Facts) -> Verdict {
        Verdict::default()
    }
}
