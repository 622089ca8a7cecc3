//! postern-milter — the MTA side of the Sendmail milter protocol (layer 1).
//!
//! smtpd (`smtpd_milters`, `smtpd_milter_maps`) and cleanup (`non_smtpd_milters`)
//! hand every SMTP event and the message content to a chain of mail filters
//! (OpenDKIM, OpenDMARC, spamass-milter, rspamd, ClamAV …) and act on their
//! verdicts, as Postfix's milter8 client does. Protocol version 6 with option
//! negotiation (versions 2, 3, 4 and 6 may be configured with `milter_protocol`).
//!
//! ```text
//!  caller (smtpd / cleanup)          this crate                         milter
//!  ───────────────────────   ───────────────────────────────   ──────────────────
//!  Chain::open(specs)      → milter/negotiate.rs: SMFIC_OPTNEG ⇄ negotiate
//!  connect/helo/mail/…     → milter.rs: SMFIC_MACRO + event   ⇄  reply → Verdict
//!  message(headers, body)  → header/EOH/body/EOM per milter   ⇄  edits + reply
//!                            edit.rs applies each milter's edits before the next
//! ```
//!
//! The wire format (`codec`) and the reply-code parser (`reply`) are pure: bytes
//! in, typed values out, no I/O, every length bounded ([`codec::MAX_PACKET`]).
//! The modification applier (`edit`) is pure too. Only `conn` touches sockets
//! (std `UnixStream`/`TcpStream`, blocking, with timeouts): smtpd calls the chain
//! from a blocking task, cleanup is synchronous.
//!
//! # Header and body conventions
//! A header is `(name, value)` where `value` is the text after the colon, exactly
//! as in the message (so `Subject: hi` is `("Subject", " hi")`), folded lines
//! joined with `"\n"` (no CR). The body is the message body after the empty line,
//! lines ending in `"\n"`. Milters see Sendmail's form (one leading space eaten
//! unless they negotiate `SMFIP_HDR_LEADSPC`; body lines end in CRLF); what comes
//! back is converted to ours.
//!
//! The MTA's own Received: header is not shown to milters (as Postfix):
//! [`Chain::message_hidden`] takes the number of such leading headers; header
//! changes then count occurrences without them, inserts count them
//! ([`apply_hidden`]).
//!
//! # Errors
//! A milter that cannot be reached, fails negotiation, times out, closes, sends
//! garbage, an oversized (> 64 MiB), empty or truncated packet, an unknown reply,
//! a modification outside end-of-message or a malformed reply code is handled as
//! Postfix does: one `warning:` line naming the milter and the fault, then that
//! milter's `default_action` (accept: it drops out; reject/tempfail/shutdown/
//! quarantine: the verdict for this and every later event of the session).
//! Modifications of a milter that fails at end-of-message are discarded whole.
//!
//! Deliberate differences from Postfix, all on the side of refusing: a reply
//! text must also keep one code on every line and stay within 100 lines of 1000
//! bytes; an edit request that would corrupt the message (a header value whose
//! continuation lines do not start with white space, control characters in an
//! address) is a misbehaving milter; a quarantine lasts until the transaction
//! ends (Postfix keeps it for the rest of the session).
//!
//! # Security
//! Milters are trusted as far as the administrator configured them, but their
//! bytes are not: every packet is length-checked before allocation, every string
//! must be NUL-terminated inside its packet, reply text must be a well-formed SMTP
//! reply (no NUL, no bare CR/LF, consistent multi-line continuation), so a milter
//! cannot inject lines into the SMTP session or the log. No `unsafe`.
//!
//! # Configuration
//! `smtpd_milters`, `non_smtpd_milters` ([`parse_milters`], including the
//! `{ name, key=value … }` per-milter form), `milter_connect_timeout`,
//! `milter_command_timeout`, `milter_content_timeout`, `milter_default_action`,
//! `milter_protocol` (the defaults passed to [`parse_milters`]), the
//! `milter_*_macros` lists and `milter_macro_defaults` ([`MacroConfig`]).
#![forbid(unsafe_code)]

mod chain;
pub mod codec;
pub mod config;
mod conn;
pub mod edit;
#[doc(hidden)]
pub mod fuzz;
mod macros;
mod milter;
pub mod reply;
mod spec;

pub use chain::Chain;
pub use edit::{apply, apply_hidden};
pub use macros::MacroValues;
pub use macros::{MacroConfig, Macros, Stage};
pub use reply::Reply;
pub use spec::{DefaultAction, MilterSpec, parse_duration, parse_milters, parse_protocol};

/// A configuration error found by [`parse_milters`] or [`MacroConfig::from_values`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint is not `inet:host:port`, `unix:path` or `local:path`.
    #[error("Milter service needs transport:endpoint instead of \"{0}\"")]
    BadEndpoint(String),
    /// An unknown transport name (`tcp:…`).
    #[error("invalid transport name: {transport} in Milter service: {name}")]
    BadTransport {
        /// The transport as written.
        transport: String,
        /// The whole milter name.
        name: String,
    },
    /// A `{ … }` group that is unbalanced or empty.
    #[error("milter {0}: malformed {{ … }} group")]
    BadGroup(String),
    /// `key=value` inside a group with an unknown key.
    #[error("milter {name}: unknown attribute name: {key}")]
    UnknownKey {
        /// The milter.
        name: String,
        /// The unknown key.
        key: String,
    },
    /// A per-milter (or default) value that does not parse.
    #[error("milter {name}: bad {key} value: {value}")]
    BadValue {
        /// The milter (or parameter) it belongs to.
        name: String,
        /// Which setting.
        key: String,
        /// The text.
        value: String,
    },
}

/// What the chain decided for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on (also: no milter, or every milter accepted earlier).
    Continue,
    /// Every milter accepted: no more events are needed for this message
    /// (the caller may still send them; they return `Accept`/`Continue`).
    Accept,
    /// Permanent rejection (5xx) with the reply to give.
    Reject(Reply),
    /// Temporary rejection (4xx) with the reply to give; code 421 means the
    /// session must end (SMFIR_SHUTDOWN or `default_action = shutdown`).
    Tempfail(Reply),
    /// Accept and silently discard the message.
    Discard,
    /// Put the message on hold (Postfix's `quarantine` = HOLD) with this reason.
    Quarantine(String),
}

impl Verdict {
    /// True for a verdict that ends the event with a refusal (reject or tempfail).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Verdict::Reject(_) | Verdict::Tempfail(_))
    }
}

/// One change requested at end-of-message. Header values are already in this
/// crate's convention (text after the colon, see the crate docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modification {
    /// Append a header after the last one (SMFIR_ADDHEADER).
    AddHeader {
        /// Header name.
        name: String,
        /// Header value.
        value: String,
    },
    /// Insert a header at `index` among all headers, 0 = top (SMFIR_INSHEADER);
    /// an index past the end appends.
    InsertHeader {
        /// Position, 0-based, as the milter sent it.
        index: u32,
        /// Header name.
        name: String,
        /// Header value.
        value: String,
    },
    /// Replace the `index`th (1-based; 0 is taken as 1) header named `name`
    /// (case-insensitive); an empty value deletes it. A missing one is appended
    /// (non-empty value) or nothing happens (delete).
    ChangeHeader {
        /// Occurrence, 1-based.
        index: u32,
        /// Header name.
        name: String,
        /// New value; `""` deletes.
        value: String,
    },
    /// Replace the whole body (lines ending in `"\n"`).
    ReplaceBody(Vec<u8>),
    /// Add a recipient (SMFIR_ADDRCPT / SMFIR_ADDRCPT_PAR).
    AddRcpt {
        /// The address as the milter sent it (usually `<a@b>`).
        rcpt: String,
        /// ESMTP arguments, if any.
        args: Option<String>,
    },
    /// Delete a recipient (SMFIR_DELRCPT).
    DelRcpt {
        /// The address as the milter sent it.
        rcpt: String,
    },
    /// Replace the envelope sender (SMFIR_CHGFROM).
    ChangeFrom {
        /// The address as the milter sent it.
        sender: String,
        /// ESMTP arguments, if any.
        args: Option<String>,
    },
    /// Quarantine (hold) the message with this reason (SMFIR_QUARANTINE).
    Quarantine {
        /// The milter's reason text.
        reason: String,
    },
}

/// The message after the chain's content stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The final verdict of the chain for this message.
    pub verdict: Verdict,
    /// The headers after every milter's header edits.
    pub headers: Vec<(String, String)>,
    /// The body after every milter's body replacement.
    pub body: Vec<u8>,
    /// Every modification that was applied, in order (for logging and for the
    /// envelope edits the caller applies: recipients, sender).
    pub modifications: Vec<Modification>,
}
