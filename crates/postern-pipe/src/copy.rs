//! The bytes a pipe command reads: optional envelope lines, then the
//! message, as Postfix's `mail_copy()` writes them.
//!
//! In this order, each ending with the `eol=` string:
//! `From SENDER  DATE` (flag `F`; `MAILER-DAEMON` for the null sender),
//! `Return-Path: <SENDER>` (`R`), `X-Original-To: ORIGINAL` (`O`, when
//! `enable_original_recipient` is on and the original recipient is known),
//! `Delivered-To: RECIPIENT` (`D`); then every line of the message with its
//! line ending replaced by `eol=`, a `>` before lines that start with
//! `From ` (`>`), a `.` before lines that start with `.` (`.`); finally an
//! empty line (`B`). Addresses in these lines are in external (quoted) form.
//!
//! # Security
//! Pure; output size is linear in the message size.

use postern_config::pipe::PipeFlags;
use postern_mail::address::quote_address;

/// What goes into the envelope lines.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// Sender after the `null_sender=` replacement ("" stays empty).
    pub sender: &'a str,
    /// Original recipient ("" = unknown).
    pub original: &'a str,
    /// Recipient for `Delivered-To:`.
    pub delivered: &'a str,
    /// `$enable_original_recipient`.
    pub enable_original: bool,
    /// The `From ` line date (ctime form).
    pub from_date: &'a str,
}

/// The command's input for `content` (LF line endings).
pub fn message(flags: PipeFlags, eol: &[u8], env: &Envelope<'_>, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 256);
    let line = |out: &mut Vec<u8>, text: &str| {
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(eol);
    };
    let sender = quote_address(env.sender);
    if flags.from_line {
        let who = if sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            &sender
        };
        line(&mut out, &format!("From {who}  {}", env.from_date));
    }
    if flags.return_path {
        line(&mut out, &format!("Return-Path: <{sender}>"));
    }
    if flags.original_to && env.enable_original && !env.original.is_empty() {
        line(
            &mut out,
            &format!("X-Original-To: {}", quote_address(env.original)),
        );
    }
    if flags.delivered_to {
        line(
            &mut out,
            &format!("Delivered-To: {}", quote_address(env.delivered)),
        );
    }
    let body = content.strip_suffix(b"\n").unwrap_or(content);
    if !content.is_empty() {
        for l in body.split(|&b| b == b'\n') {
            if flags.quote_from && l.starts_with(b"From ") {
                out.push(b'>');
            }
            if flags.dot_stuff && l.starts_with(b".") {
                out.push(b'.');
            }
            out.extend_from_slice(l);
            out.extend_from_slice(eol);
        }
    }
    if flags.blank_line {
        out.extend_from_slice(eol);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(s: &str) -> PipeFlags {
        postern_config::pipe::parse_attrs(&[
            format!("flags={s}"),
            "user=u".into(),
            "argv=/x".into(),
        ])
        .unwrap()
        .flags
    }

    const ENV: Envelope<'static> = Envelope {
        sender: "a b@x.org",
        original: "orig@x.org",
        delivered: "rcpt@x.org",
        enable_original: true,
        from_date: "Thu Jan  1 00:00:00 1970",
    };

    #[test]
    fn every_flag() {
        let m = message(
            flags("BDFOR.>"),
            b"\r\n",
            &ENV,
            b"Subject: s\n\nFrom me\n.dot\nlast",
        );
        assert_eq!(
            String::from_utf8(m).unwrap(),
            "From \"a b\"@x.org  Thu Jan  1 00:00:00 1970\r\nReturn-Path: <\"a b\"@x.org>\r\n\
             X-Original-To: orig@x.org\r\nDelivered-To: rcpt@x.org\r\nSubject: s\r\n\r\n\
             >From me\r\n..dot\r\nlast\r\n\r\n"
        );
    }

    #[test]
    fn unchanged_by_default() {
        let c = b"Subject: s\n\nFrom me\n.dot\n";
        assert_eq!(message(PipeFlags::default(), b"\n", &ENV, c), c);
        let null = Envelope { sender: "", ..ENV };
        assert_eq!(
            message(flags("FR"), b"\n", &null, b""),
            b"From MAILER-DAEMON  Thu Jan  1 00:00:00 1970\nReturn-Path: <>\n"
        );
    }
}
