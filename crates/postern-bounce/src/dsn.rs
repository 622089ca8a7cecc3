//! Delivery status notifications (RFC 3464), composed as pure data.
//!
//! [`compose`] turns a queued message's recipient results into a complete
//! notification message (header and body, LF line endings) ready to hand to
//! cleanup. The layout is what mail clients and Postfix-aware tools expect:
//!
//! ```text
//! multipart/report; report-type=delivery-status
//! ├── text/plain                 a human-readable explanation, one line per recipient
//! ├── message/delivery-status    Reporting-MTA, X-Postfix-Queue-ID, per-recipient groups
//! └── message/rfc822             the original (failures with RET=FULL), or
//!     text/rfc822-headers        its header only (delays, successes, RET=HDRS,
//!                                postmaster copies)
//! ```
//!
//! The subjects are fixed strings that existing filters match:
//! "Undelivered Mail Returned to Sender", "Delayed Mail (still being
//! retried)", "Successful Mail Delivery Report"; postmaster copies use
//! "Postmaster Copy: Undelivered Mail" and "Postmaster Warning: Delayed Mail".
//!
//! # Configuration
//! The caller maps `bounce_size_limit` (bytes of original content returned;
//! the cut is made at a line boundary), `myhostname` and `mail_name`.
//!
//! # Security
//! Addresses and diagnostics come from remote servers and senders: control
//! characters are replaced so no text can start a new header line or MIME
//! part, and diagnostic texts are bounded. The MIME boundary is lengthened
//! when the returned content happens to contain it.

use postern_mail::{address::quote_address, date::rfc2822, header};

/// Which notice to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// Permanent failure (non-delivery report).
    Failure,
    /// Delay warning: still trying.
    Delay,
    /// Positive delivery report (NOTIFY=SUCCESS).
    Success,
}

/// One recipient's status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DsnRecipient {
    /// The address delivery was attempted to.
    pub final_recipient: String,
    /// The address as first received, "" if unknown.
    pub original_recipient: String,
    /// DSN ORCPT as `type;address`, "" if none.
    pub orcpt: String,
    /// Enhanced status code, e.g. `5.1.1`.
    pub status: String,
    /// Why (a remote SMTP reply when `remote_mta` is set).
    pub diagnostic: String,
    /// The remote server that gave the diagnostic, "" if none.
    pub remote_mta: String,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded`.
    pub action: String,
}

/// Everything a notice needs.
#[derive(Debug, Clone)]
pub struct DsnInput<'a> {
    /// Which notice.
    pub kind: NoticeKind,
    /// Queue ID of the original message.
    pub queue_id: &'a str,
    /// Arrival time of the original message (Unix seconds).
    pub arrival_secs: i64,
    /// Now (Unix seconds), for the `Date:` header.
    pub now_secs: i64,
    /// Local UTC offset for both dates.
    pub utc_offset_secs: i32,
    /// Envelope sender of the original ("" = null sender).
    pub sender: &'a str,
    /// DSN ENVID of the original, "" if none.
    pub envid: &'a str,
    /// Return the full original (RET=FULL) rather than its header.
    pub ret_full: bool,
    /// `$myhostname`.
    pub myhostname: &'a str,
    /// Product name shown in the text part (`Postern`).
    pub mail_name: &'a str,
    /// Message-ID of the notice, without `<>`.
    pub message_id: &'a str,
    /// MIME boundary to use (lengthened if the content contains it).
    pub boundary: &'a str,
    /// Recipient statuses.
    pub recipients: Vec<DsnRecipient>,
    /// Queued content of the original, LF line endings.
    pub original: &'a [u8],
    /// `bounce_size_limit`.
    pub bounce_size_limit: usize,
    /// Compose the postmaster's copy (header only, postmaster subject).
    pub postmaster_copy: bool,
}

/// Longest diagnostic text kept (keeps every line well under 998 octets).
const MAX_DIAGNOSTIC: usize = 900;

/// Replaces control characters (CR, LF, NUL…) so the text stays on one line.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '\t' {
                ' '
            } else if c.is_control() {
                '?'
            } else {
                c
            }
        })
        .collect()
}

fn clean_bounded(s: &str, max: usize) -> String {
    let mut c = clean(s);
    if c.len() > max {
        let mut cut = max;
        while !c.is_char_boundary(cut) {
            cut -= 1;
        }
        c.truncate(cut);
    }
    c
}

fn subject(kind: NoticeKind, postmaster: bool) -> &'static str {
    match (kind, postmaster) {
        (NoticeKind::Failure, false) => "Undelivered Mail Returned to Sender",
        (NoticeKind::Failure, true) => "Postmaster Copy: Undelivered Mail",
        (NoticeKind::Delay, false) => "Delayed Mail (still being retried)",
        (NoticeKind::Delay, true) => "Postmaster Warning: Delayed Mail",
        (NoticeKind::Success, _) => "Successful Mail Delivery Report",
    }
}

fn display_sender(sender: &str) -> String {
    if sender.is_empty() {
        "MAILER-DAEMON".to_string()
    } else {
        clean(&quote_address(sender))
    }
}

/// The part of the original that is returned: all of it or its header, cut
/// at the last line boundary within `limit`, always ending with a newline
/// (or empty).
fn returned_content(input: &DsnInput<'_>, full: bool) -> Vec<u8> {
    let src = if full {
        input.original
    } else {
        header::split(input.original).0
    };
    let mut out = if src.len() <= input.bounce_size_limit {
        src.to_vec()
    } else {
        let head = &src[..input.bounce_size_limit];
        match head.iter().rposition(|&b| b == b'\n') {
            Some(i) => head[..=i].to_vec(),
            None => Vec::new(),
        }
    };
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

/// A boundary that no line of `content` starts with (after `--`).
fn safe_boundary(wanted: &str, content: &[u8]) -> String {
    let clean_wanted: String = clean(wanted)
        .chars()
        .filter(|c| *c != '"' && *c != ' ')
        .collect();
    let base = if clean_wanted.is_empty() {
        "postern.dsn".to_string()
    } else {
        clean_wanted
    };
    let clashes = |b: &str| {
        let marker = format!("--{b}");
        content
            .split(|&c| c == b'\n')
            .any(|line| line.starts_with(marker.as_bytes()))
    };
    let mut candidate = base.clone();
    let mut n = 0u32;
    while clashes(&candidate) && n < 10_000 {
        n += 1;
        candidate = format!("{base}.{n}");
    }
    candidate
}

fn top_header(input: &DsnInput<'_>, boundary: &str, eight_bit: bool, out: &mut String) {
    let host = clean(input.myhostname);
    let to = if input.postmaster_copy {
        format!("postmaster@{host}")
    } else {
        display_sender(input.sender)
    };
    out.push_str(&format!(
        "From: MAILER-DAEMON@{host} (Mail Delivery System)\n"
    ));
    out.push_str(&format!(
        "Subject: {}\n",
        subject(input.kind, input.postmaster_copy)
    ));
    out.push_str(&format!("To: {to}\n"));
    out.push_str("Auto-Submitted: auto-replied\n");
    out.push_str("MIME-Version: 1.0\n");
    out.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\"\n"
    ));
    out.push_str(&format!(
        "Content-Transfer-Encoding: {}\n",
        if eight_bit { "8bit" } else { "7bit" }
    ));
    out.push_str(&format!(
        "Date: {}\n",
        rfc2822(input.now_secs, input.utc_offset_secs)
    ));
    out.push_str(&format!("Message-Id: <{}>\n\n", clean(input.message_id)));
    out.push_str("This is a MIME-encapsulated message.\n\n");
}

fn explanation(input: &DsnInput<'_>, full: bool) -> String {
    let mut t = format!(
        "This report comes from the {} mail system at host {}.\n\n",
        clean(input.mail_name),
        clean(input.myhostname)
    );
    if input.postmaster_copy {
        t.push_str("This is the postmaster's copy of a notice sent to the sender,\n");
        t.push_str(&format!(
            "{}. Only the message header is attached.\n\n",
            display_sender(input.sender)
        ));
    }
    t.push_str(match input.kind {
        NoticeKind::Failure => {
            "Your message could not be delivered to the recipients listed below,\n\
             and the mail system has stopped trying. Each line gives an address\n\
             and the reason it failed.\n"
        }
        NoticeKind::Delay => {
            "Your message has not been delivered yet to the recipients listed\n\
             below. The mail system keeps trying, and will tell you if it finally\n\
             gives up. You do not need to send the message again.\n"
        }
        NoticeKind::Success => {
            "Your message was delivered, or passed on to the next mail system, for\n\
             the recipients listed below. You asked for this report when you sent\n\
             the message.\n"
        }
    });
    t.push('\n');
    for r in &input.recipients {
        let addr = clean(&quote_address(&r.final_recipient));
        t.push_str(&format!(
            "<{addr}>: {}\n",
            clean_bounded(&r.diagnostic, MAX_DIAGNOSTIC)
        ));
    }
    t.push('\n');
    t.push_str(if full {
        "The original message is attached below.\n"
    } else {
        "The header of the original message is attached below.\n"
    });
    t
}

fn per_message_fields(input: &DsnInput<'_>, out: &mut String) {
    if !input.envid.is_empty() {
        out.push_str(&format!("Original-Envelope-Id: {}\n", clean(input.envid)));
    }
    out.push_str(&format!(
        "Reporting-MTA: dns; {}\n",
        clean(input.myhostname)
    ));
    out.push_str(&format!("X-Postfix-Queue-ID: {}\n", clean(input.queue_id)));
    out.push_str(&format!(
        "X-Postfix-Sender: rfc822; {}\n",
        display_sender(input.sender)
    ));
    out.push_str(&format!(
        "Arrival-Date: {}\n",
        rfc2822(input.arrival_secs, input.utc_offset_secs)
    ));
}

fn recipient_fields(r: &DsnRecipient, out: &mut String) {
    out.push('\n');
    out.push_str(&format!(
        "Final-Recipient: rfc822; {}\n",
        clean(&quote_address(&r.final_recipient))
    ));
    if !r.orcpt.is_empty() {
        out.push_str(&format!("Original-Recipient: {}\n", clean(&r.orcpt)));
    } else if !r.original_recipient.is_empty() && r.original_recipient != r.final_recipient {
        out.push_str(&format!(
            "Original-Recipient: rfc822; {}\n",
            clean(&quote_address(&r.original_recipient))
        ));
    }
    out.push_str(&format!("Action: {}\n", clean(&r.action)));
    out.push_str(&format!("Status: {}\n", clean(&r.status)));
    let diag = clean_bounded(&r.diagnostic, MAX_DIAGNOSTIC);
    if r.remote_mta.is_empty() {
        out.push_str(&format!("Diagnostic-Code: X-Postfix; {diag}\n"));
    } else {
        out.push_str(&format!("Remote-MTA: dns; {}\n", clean(&r.remote_mta)));
        out.push_str(&format!("Diagnostic-Code: smtp; {diag}\n"));
    }
}

/// Composes the notification described by `input` (see the module docs).
pub fn compose(input: &DsnInput<'_>) -> Vec<u8> {
    let full = input.kind == NoticeKind::Failure && input.ret_full && !input.postmaster_copy;
    let returned = returned_content(input, full);
    let boundary = safe_boundary(input.boundary, &returned);

    let mut body = String::new();
    body.push_str(&format!("--{boundary}\n"));
    body.push_str("Content-Description: Notification\nContent-Type: text/plain; charset=utf-8\n\n");
    body.push_str(&explanation(input, full));
    body.push('\n');

    body.push_str(&format!("--{boundary}\n"));
    body.push_str(
        "Content-Description: Delivery report\nContent-Type: message/delivery-status\n\n",
    );
    per_message_fields(input, &mut body);
    for r in &input.recipients {
        recipient_fields(r, &mut body);
    }
    body.push('\n');

    body.push_str(&format!("--{boundary}\n"));
    if full {
        body.push_str("Content-Description: Undelivered Message\nContent-Type: message/rfc822\n");
    } else {
        let what = if input.kind == NoticeKind::Failure {
            "Undelivered Message Headers"
        } else {
            "Message Headers"
        };
        body.push_str(&format!(
            "Content-Description: {what}\nContent-Type: text/rfc822-headers\n"
        ));
    }
    let part_8bit = !returned.is_ascii();
    body.push_str(&format!(
        "Content-Transfer-Encoding: {}\n\n",
        if part_8bit { "8bit" } else { "7bit" }
    ));

    let mut head = String::new();
    top_header(input, &boundary, part_8bit || !body.is_ascii(), &mut head);
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes.extend_from_slice(&returned);
    bytes.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &[u8] =
        b"Received: from x\nFrom: Alice <alice@example.org>\nTo: bob@localhost\n\
Subject: hello\nMessage-ID: <m1@example.org>\n\nline one\nFrom here on\n--b.DSN\nline four\n";

    fn input(kind: NoticeKind) -> DsnInput<'static> {
        DsnInput {
            kind,
            queue_id: "4F2A1B2C4D",
            arrival_secs: 1_795_387_000,
            now_secs: 1_795_387_248,
            utc_offset_secs: 0,
            sender: "alice@example.org",
            envid: "",
            ret_full: true,
            myhostname: "mx.example.net",
            mail_name: "Postern",
            message_id: "20261122224048.4F2A1B2C4D@mx.example.net",
            boundary: "b.DSN",
            recipients: vec![
                DsnRecipient {
                    final_recipient: "bob@localhost".into(),
                    original_recipient: "bob@localhost".into(),
                    status: "5.1.1".into(),
                    diagnostic: "unknown user: \"bob\"".into(),
                    action: "failed".into(),
                    ..Default::default()
                },
                DsnRecipient {
                    final_recipient: "carol@remote.example".into(),
                    original_recipient: "c@example.org".into(),
                    orcpt: "rfc822;c@example.org".into(),
                    status: "5.2.2".into(),
                    diagnostic: "host mx.remote.example[192.0.2.7] said: 552 5.2.2 mailbox full"
                        .into(),
                    remote_mta: "mx.remote.example".into(),
                    action: "failed".into(),
                },
            ],
            original: ORIGINAL,
            bounce_size_limit: 50_000,
            postmaster_copy: false,
        }
    }

    /// Splits a multipart body on `--boundary` lines; returns the parts and
    /// whether the closing delimiter was seen.
    fn parts(msg: &[u8], boundary: &str) -> (Vec<String>, bool) {
        let text = String::from_utf8_lossy(msg).into_owned();
        let open = format!("--{boundary}");
        let close = format!("--{boundary}--");
        let mut parts = Vec::new();
        let mut cur: Option<String> = None;
        let mut closed = false;
        for line in text.lines() {
            if line == close {
                parts.extend(cur.take());
                closed = true;
            } else if line == open {
                parts.extend(cur.take());
                cur = Some(String::new());
            } else if let Some(c) = cur.as_mut() {
                c.push_str(line);
                c.push('\n');
            }
        }
        (parts, closed)
    }

    #[test]
    fn failure_structure() {
        let msg = compose(&input(NoticeKind::Failure));
        let h = header::split(&msg).0;
        assert_eq!(
            header::find(h, "subject").unwrap().value(),
            b"Undelivered Mail Returned to Sender"
        );
        assert_eq!(header::find(h, "to").unwrap().value(), b"alice@example.org");
        let ct = header::find(h, "content-type").unwrap().value_string();
        // The original contains a "--b.DSN" line, so the boundary was lengthened.
        assert!(ct.contains("boundary=\"b.DSN.1\""), "{ct}");
        let (p, closed) = parts(&msg, "b.DSN.1");
        assert!(closed);
        assert_eq!(p.len(), 3);
        assert!(
            p[0].contains("text/plain") && p[0].contains("<bob@localhost>: unknown user: \"bob\"")
        );
        assert!(p[1].contains("Content-Type: message/delivery-status"));
        assert!(p[1].contains("X-Postfix-Queue-ID: 4F2A1B2C4D\n"));
        assert!(
            p[1].contains(
                "Final-Recipient: rfc822; bob@localhost\nAction: failed\nStatus: 5.1.1\n"
            )
        );
        assert!(p[1].contains("Original-Recipient: rfc822;c@example.org\n"));
        assert!(p[1].contains("Remote-MTA: dns; mx.remote.example\nDiagnostic-Code: smtp; host"));
        assert!(p[2].contains("Content-Type: message/rfc822") && p[2].contains("line four\n"));
    }

    #[test]
    fn delay_and_success_return_headers_only() {
        for (kind, subj) in [
            (NoticeKind::Delay, "Delayed Mail (still being retried)"),
            (NoticeKind::Success, "Successful Mail Delivery Report"),
        ] {
            let msg = compose(&input(kind));
            let h = header::split(&msg).0;
            assert_eq!(header::find(h, "subject").unwrap().value_string(), subj);
            let (p, _) = parts(&msg, "b.DSN");
            assert_eq!(p.len(), 3);
            assert!(
                p[2].contains("text/rfc822-headers")
                    && p[2].contains("Subject: hello")
                    && !p[2].contains("line one")
            );
        }
    }

    #[test]
    fn postmaster_copy_and_hostile_text() {
        let mut i = input(NoticeKind::Failure);
        i.postmaster_copy = true;
        i.sender = "";
        i.envid = "ENV\nX-Injected: 1";
        i.recipients[0].diagnostic = "bad\r\nX-Evil: yes\n--b.DSN".into();
        let msg = compose(&i);
        let text = String::from_utf8_lossy(&msg);
        assert!(text.contains("Subject: Postmaster Copy: Undelivered Mail\n"));
        assert!(text.contains("To: postmaster@mx.example.net\n"));
        assert!(text.contains("X-Postfix-Sender: rfc822; MAILER-DAEMON\n"));
        assert!(!text.contains("\nX-Evil") && !text.contains("\nX-Injected"));
        assert!(text.contains("text/rfc822-headers"));
    }

    #[test]
    fn size_limit_cuts_at_line_boundary() {
        let mut i = input(NoticeKind::Failure);
        i.bounce_size_limit = 30;
        let msg = compose(&i);
        let (p, _) = parts(&msg, "b.DSN");
        assert!(p[2].ends_with("Received: from x\n\n"), "{:?}", p[2]);
        i.bounce_size_limit = 5;
        let (p, _) = parts(&compose(&i), "b.DSN");
        assert!(p[2].ends_with("7bit\n\n\n"), "{:?}", p[2]);
    }

    #[test]
    fn golden_failure() {
        let mut i = input(NoticeKind::Failure);
        i.envid = "ENV42";
        let got = compose(&i);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/testdata/dsn_failure.ref");
        if std::env::var_os("POSTERN_BLESS").is_some() {
            std::fs::write(path, &got).unwrap();
        }
        let want = std::fs::read(path).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
    }

    #[test]
    fn python_email_parses_it() {
        let Ok(mut child) = std::process::Command::new("python3")
            .arg("-c")
            .arg(concat!(
                "import sys, email\n",
                "m = email.message_from_bytes(sys.stdin.buffer.read())\n",
                "assert m.is_multipart() and m.get_content_type() == 'multipart/report'\n",
                "print(','.join(p.get_content_type() for p in m.get_payload()))\n",
                "r = m.get_payload()[1].get_payload()\n",
                "print(len(r), r[1]['Final-Recipient'], r[2]['Remote-MTA'])\n",
                "print(m.get_payload()[2].get_payload()[0]['Subject'])\n",
            ))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("python3 not found: skipping");
            return;
        };
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&compose(&input(NoticeKind::Failure)))
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "text/plain,message/delivery-status,message/rfc822\n3 rfc822; bob@localhost dns; mx.remote.example\nhello\n"
        );
    }
}
