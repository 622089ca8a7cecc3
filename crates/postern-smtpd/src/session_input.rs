//! What smtpd notes about a command line before parsing it: the verb name for
//! logs and counters, the first argument as sent (VRFY echoes it), Postfix's
//! "improper command pipelining" mark (`reject_unauth_pipelining`), and what makes a
//! line non-SMTP (a header-like first word; `smtpd_forbidden_commands` is matched by
//! the session).
//!
//! # Security
//! Reads only the bytes already received; the logged excerpt of pending input is
//! bounded (100 bytes) and made printable.
//!
//! # Configuration
//! None.

use crate::session::Session;

impl Session<'_> {
    /// Postfix's junk-command rule (HELO, EHLO, RSET, NOOP, VRFY, ETRN): past
    /// `smtpd_junk_command_limit` of them each one also counts as an error.
    pub(crate) fn count_junk(&mut self, verb: &[u8]) {
        let junk = ["HELO", "EHLO", "RSET", "NOOP", "VRFY", "ETRN"];
        if junk.iter().any(|j| verb.eq_ignore_ascii_case(j.as_bytes())) {
            if self.junk > self.s.junk_command_limit {
                self.errors += 1;
            }
            self.junk = self.junk.saturating_add(1);
        }
    }

    /// Postfix's non-SMTP commands: a verb it does not know that looks like a header
    /// name (`Subject:`) or matches `smtpd_forbidden_commands` (by default CONNECT,
    /// GET, POST and anything not starting with a letter).
    pub(crate) fn non_smtp(&self, verb: &[u8]) -> bool {
        if verb.is_empty()
            || KNOWN_VERBS
                .iter()
                .any(|k| verb.eq_ignore_ascii_case(k.as_bytes()))
        {
            return false;
        }
        if is_header_name(verb) {
            return true;
        }
        let text = String::from_utf8_lossy(verb);
        // A lookup failure answers "no": the command is then refused as unknown.
        self.s.forbidden_commands.matches(&text).unwrap_or(false)
    }

    /// Postfix's "improper command pipelining" mark, kept for the rest of the
    /// session: input is already waiting behind a command after which the client
    /// must wait for our reply (anything before EHLO; EHLO, HELO, DATA, QUIT,
    /// STARTTLS, AUTH after it).
    pub(crate) fn note_pipelining(&mut self, line: &[u8]) {
        if self.facts.improper_pipelining || self.conn.pending().is_empty() {
            return;
        }
        let verb = verb_name(line);
        let verb_text: String = line
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .map(|b| b.to_ascii_uppercase() as char)
            .collect();
        let must_wait = !self.esmtp
            || matches!(
                verb_text.as_str(),
                "EHLO" | "HELO" | "DATA" | "QUIT" | "STARTTLS" | "AUTH"
            );
        if must_wait && verb != "BDAT" {
            self.facts.improper_pipelining = true;
            let next = printable(self.conn.pending(), 100);
            postern_log::info(format!(
                "improper command pipelining after {} from {}: {next}",
                if verb_text.is_empty() {
                    "UNKNOWN"
                } else {
                    &verb_text
                },
                self.client
            ));
        }
    }
}

pub(crate) fn verb_name(line: &[u8]) -> &'static str {
    let verb: String = line
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .map(|b| b.to_ascii_uppercase() as char)
        .collect();
    match verb.as_str() {
        "HELO" => "HELO",
        "EHLO" => "EHLO",
        "MAIL" => "MAIL",
        "RCPT" => "RCPT",
        "DATA" => "DATA",
        "BDAT" => "BDAT",
        "VRFY" => "VRFY",
        "ETRN" => "ETRN",
        "AUTH" => "AUTH",
        _ => "UNKNOWN",
    }
}

/// The first argument of a command line as sent (Postfix's `argv[1]`), without CRLF.
pub(crate) fn raw_argument(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\r', '\n']);
    let rest = text.split_once(' ').map_or("", |(_, r)| r).trim();
    match rest.rsplit_once(' ') {
        Some((a, kw)) if kw.eq_ignore_ascii_case("SMTPUTF8") => a.trim_end().to_string(),
        _ => rest.to_string(),
    }
}

/// The verbs Postfix's smtpd implements; any other is unknown (500) or, when it looks
/// like a header or is forbidden, non-SMTP (221, the session ends).
pub(crate) const KNOWN_VERBS: &[&str] = &[
    "HELO", "EHLO", "XCLIENT", "XFORWARD", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP",
    "VRFY", "ETRN", "QUIT", "STARTTLS",
];

/// The first word of a command line (Postfix's `argv[0]`): leading blanks skipped.
pub(crate) fn first_word(line: &[u8]) -> &[u8] {
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = line.iter().position(|b| !blank(b)).unwrap_or(line.len());
    let rest = &line[start..];
    let end = rest.iter().position(blank).unwrap_or(rest.len());
    &rest[..end]
}

/// Postfix's `is_header()`: printable non-blank bytes other than `:`, then `:`.
pub(crate) fn is_header_name(word: &[u8]) -> bool {
    match word.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => word[..colon].iter().all(|&b| b.is_ascii_graphic()),
        _ => false,
    }
}

/// At most `max` bytes made printable (`?` for the others), for logs.
pub(crate) fn printable(bytes: &[u8], max: usize) -> String {
    bytes
        .iter()
        .take(max)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}
