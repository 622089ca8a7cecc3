//! SMTP/LMTP codec for Postern's smtpd (server side) and smtp/lmtp client.
//!
//! Layer 0, pure and sans-I/O: bytes in, typed values or "need more" out, and
//! `encode()` back to canonical wire text. Nothing here reads a socket, a file, the
//! clock or the environment; every knob arrives in a struct ([`Leniency`],
//! [`DataConfig`], [`ReplyLimits`], the `line_length_limit` given to [`LineReader`]).
//!
//! ```text
//!  bytes ──► LineReader ──► Line ──► parse_command ──► Command | CommandError ──► reply_for
//!        └─► DataReader / BdatReader (after DATA / BDAT) ──► content (LF, unstuffed)
//!  client:  bytes ──► ReplyParser ──► Reply ──► EhloCaps
//! ```
//!
//! # Grammar (as accepted; observed against Postfix 3.7.11 smtpd)
//!
//! ```text
//! line     = *WSP verb [ 1*WSP args ] *( WSP / CR )       ; CRLF or bare LF ends it
//! HELO/EHLO/LHLO name      ; rest of the line, blanks collapsed; empty → 501
//! MAIL FROM: [WSP] path *( 1*WSP param )   ; path = "<" … ">" or, unless
//! RCPT TO:   [WSP] path *( 1*WSP param )   ;   strict_rfc821_envelopes, a bare address
//! MAIL params: SIZE=digits BODY=7BIT|8BITMIME[|BINARYMIME] SMTPUTF8 RET=FULL|HDRS
//!              ENVID=xtext AUTH=xtext
//! RCPT params: NOTIFY=NEVER|SUCCESS,DELAY,FAILURE ORCPT=addr-type;xtext
//! DATA | RSET | STARTTLS   (no arguments)     NOOP | QUIT  (arguments ignored)
//! BDAT digits [LAST]       VRFY path [SMTPUTF8]   ETRN arg   EXPN arg   HELP [arg]
//! AUTH mechanism [initial]  XCLIENT 1*(attr=xtext)  XFORWARD 1*(attr=xtext)
//! ```
//!
//! Addresses are described in [`address`](crate::Mailbox) terms: source routes are
//! dropped, quoted local parts are unquoted, `%` and `!` kept, IP literals checked.
//!
//! # Security
//!
//! * Every buffer is bounded: command lines by `line_length_limit` (over-long lines
//!   are truncated, as Postfix does), replies by [`ReplyLimits`], DATA/BDAT output
//!   by the input given per call, message size by `message_size_limit`.
//! * No input can make the codec panic (fuzzed: `fuzz/fuzz_targets/smtp_*.rs`).
//! * DATA ends only at `CRLF.CRLF` under [`BareNewline::Normalize`] and
//!   [`BareNewline::Reject`], which defeats SMTP smuggling.
//! * The whole command line must be UTF-8 (Postfix with `smtputf8_enable = yes`);
//!   NUL bytes, control characters in addresses and the stranger RFC 822 forms that
//!   Postfix tolerates are rejected (see `address.rs`).
//!
//! # Errors
//!
//! [`CommandError`] variants map to Postfix's exact replies in ONE function,
//! [`reply_for`]; [`DataError::reply`] covers the end-of-data replies.
#![forbid(unsafe_code)]

mod address;
mod command;
mod data;
mod ehlo;
mod error;
mod line;
mod params;
mod reply;
pub mod xtext;

pub use address::{Mailbox, ReversePath};
pub use command::{Command, XAttr, parse_command, xforward_lines};
pub use data::{BareNewline, BdatReader, DataConfig, DataError, DataReader, Feed};
pub use ehlo::EhloCaps;
pub use error::{CommandError, reply_for};
pub use line::{DEFAULT_LINE_LENGTH_LIMIT, Line, LineKind, LineReader};
pub use params::{Body, MailParams, Notify, Orcpt, RcptParams, Ret};
pub use reply::{Reply, ReplyError, ReplyLimits, ReplyParser};

/// Parser strictness knobs (Postfix parameter names where one exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Leniency {
    /// `strict_rfc821_envelopes` (default no): require `<>` around MAIL/RCPT paths.
    pub strict_rfc821_envelopes: bool,
    /// `strict_smtputf8` (default no): reject a non-ASCII sender without `SMTPUTF8`.
    /// (For recipients smtpd must check, as it knows the MAIL parameters.)
    pub strict_smtputf8: bool,
    /// `smtpd_sasl_auth_enable`: when false, `AUTH=` is accepted and ignored, as
    /// Postfix does; when true it is decoded strictly.
    pub sasl_enabled: bool,
    /// Accept `BODY=BINARYMIME` (Postfix does not: `555 5.5.4 Unsupported option`).
    pub allow_binarymime: bool,
}
