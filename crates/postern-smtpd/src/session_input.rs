//! What smtpd notes about a command line before parsing it: the verb name for
//! logs and counters, the first argument as sent (VRFY echoes it), and Postfix's
//! "improper command pipelining" mark (`reject_unauth_pipelining`).
//!
//! # Security
//! Reads only the bytes already received; the logged excerpt of pending input is
//! bounded (100 bytes) and made printable.
//!
//! # Configuration
//! None.

use crate::session::Session;

impl Session<'_> {
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
            let next: String = self
                .conn
                .pending()
                .iter()
                .take(100)
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '?'
                    }
                })
                .collect();
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
