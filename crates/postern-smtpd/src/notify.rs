//! The session transcript and the postmaster's error notice (Postfix's
//! `smtpd_chat_notify`).
//!
//! Every command line read and every reply line sent is kept (`In:  ` /
//! `Out: `) while `notify_classes` names at least one class smtpd reports.
//! Each error reply is classified (`policy`: a restriction refused the
//! client; `protocol`: a client protocol error; `resource`: a temporary
//! resource problem; `software`: a configuration or internal error; `bounce`:
//! mail refused as undeliverable, e.g. an unknown user or a message too big).
//! When a class that `notify_classes` names was hit, the transcript is mailed
//! to `$error_notice_recipient` at the end of the session, or earlier when the
//! transcript grows past `smtpd_history_flush_threshold` between transactions
//! (and the transcript then starts afresh), as Postfix does.
//!
//! # Security
//! The transcript is client data: every character that is not printable
//! ASCII is shown as `?`, every transcript line starts with a space (so no
//! client text can become a header or a dot line), lines are wrapped at 78
//! columns, and the transcript is bounded ([`MAX_LINES`] lines of at most
//! [`MAX_LINE`] characters). The notice goes to cleanup with the double-bounce
//! sender (as Postfix: a notice that cannot be delivered is discarded, never
//! bounced, so there are no bounce wars) and without header/body checks or
//! milters. A notice that cannot be sent is logged as a warning and never
//! affects the client's session; stand-alone sessions send none.
//!
//! # Configuration
//! `notify_classes`, `error_notice_recipient`, `smtpd_history_flush_threshold`,
//! `double_bounce_sender`, `myorigin`, `mail_name`.

use postern_config::{Config, p};
use postern_ipc::proto::{CleanupReply, CleanupRequest, CleanupStatus, Recipient, cleanup_flags};
use postern_smtp_proto::Reply;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Transcript lines kept at most (the rest are counted, not kept).
pub const MAX_LINES: usize = 2000;
/// Characters kept of one transcript line.
pub const MAX_LINE: usize = 2048;

/// An error class of `notify_classes` that an SMTP session can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Mail refused as undeliverable (unknown user, too big, too many hops).
    Bounce,
    /// A restriction refused the client (UCE policy).
    Policy,
    /// A client protocol error.
    Protocol,
    /// A temporary resource problem.
    Resource,
    /// A software or configuration error.
    Software,
}

impl Class {
    fn bit(self) -> u8 {
        match self {
            Class::Bounce => 1,
            Class::Policy => 2,
            Class::Protocol => 4,
            Class::Resource => 8,
            Class::Software => 16,
        }
    }
}

/// The classes a `notify_classes` value names (unknown words, and the classes
/// smtpd does not report such as `delay`, are ignored here).
pub fn mask_of(words: &[String]) -> u8 {
    words
        .iter()
        .filter_map(|w| match w.to_ascii_lowercase().as_str() {
            "bounce" => Some(Class::Bounce),
            "policy" => Some(Class::Policy),
            "protocol" => Some(Class::Protocol),
            "resource" => Some(Class::Resource),
            "software" => Some(Class::Software),
            _ => None,
        })
        .fold(0, |m, c| m | c.bit())
}

/// The class of an error reply smtpd sent on its own (not a restriction's).
pub fn classify(r: &Reply) -> Option<Class> {
    if r.code < 400 {
        return None;
    }
    let (_, subject, detail) = r.enhanced.unwrap_or((0, 0, 0));
    let text = r.lines.first().map(String::as_str).unwrap_or("");
    Some(match (r.code, subject, detail) {
        (_, 3, 5) => Class::Software,
        (_, 3, 0) if text.contains("internal error") => Class::Software,
        (_, 3, _) if r.code < 500 => Class::Resource,
        (_, 3, 4) | (_, 4, 6) | (554, 4, 0) => Class::Bounce,
        (421, 7, 0) if text.contains("too many errors") => Class::Protocol,
        (_, 4, _) => return None, // timeouts, lost connections: no class
        (_, 7, _) | (_, 5, 3) => Class::Policy,
        (500..=504, _, _) | (_, 5, _) => Class::Protocol,
        _ => Class::Policy,
    })
}

/// The class of a refusal by a restriction (or by cleanup's content checks).
pub fn restriction_class(r: &Reply) -> Class {
    match r.enhanced {
        Some((_, 3, 5)) => Class::Software,
        Some((4, 3, _)) => Class::Resource,
        Some((_, 1, 1)) | Some((_, 3, 4)) => Class::Bounce,
        _ => Class::Policy,
    }
}

/// What smtpd was configured to report.
#[derive(Debug, Clone, Default)]
pub struct NotifySettings {
    /// The classes of `notify_classes` smtpd reports (0 = none, no transcript).
    pub mask: u8,
    /// `$error_notice_recipient`.
    pub recipient: String,
    /// `$double_bounce_sender@$myorigin`.
    pub sender: String,
    /// `smtpd_history_flush_threshold`.
    pub threshold: usize,
    /// `$mail_name`.
    pub mail_name: String,
}

impl NotifySettings {
    /// Reads the settings.
    pub fn from_config(cfg: &Config) -> NotifySettings {
        let qualify = |a: String| {
            if a.contains('@') {
                a
            } else {
                format!("{a}@{}", cfg.str(p::MYORIGIN))
            }
        };
        NotifySettings {
            mask: mask_of(&cfg.list(p::NOTIFY_CLASSES)),
            recipient: cfg.str(p::ERROR_NOTICE_RECIPIENT),
            sender: qualify(cfg.str(p::DOUBLE_BOUNCE_SENDER)),
            threshold: cfg.int(p::SMTPD_HISTORY_FLUSH_THRESHOLD).max(0) as usize,
            mail_name: cfg.str(p::MAIL_NAME),
        }
    }
}

/// The session's chat history and the classes of the errors it hit.
#[derive(Debug, Default)]
pub struct Transcript {
    enabled: bool,
    lines: Vec<String>,
    dropped: usize,
    hit: u8,
    /// The encoded reply a restriction refusal already classified.
    classified: Option<String>,
    /// Why the session ended early (`lost connection`, `timeout`, …).
    reason: Option<String>,
}

impl Transcript {
    /// A transcript that records only when `enabled` (some class to report).
    pub fn new(enabled: bool) -> Transcript {
        Transcript {
            enabled,
            ..Default::default()
        }
    }

    fn push(&mut self, prefix: &str, text: &str) {
        if self.lines.len() >= MAX_LINES {
            self.dropped += 1;
            return;
        }
        let mut line = format!("{prefix}{text}");
        if line.len() > MAX_LINE {
            let mut end = MAX_LINE;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
        }
        self.lines.push(line);
    }

    /// Records a line the client sent.
    pub fn input(&mut self, line: &[u8]) {
        if self.enabled {
            let text = String::from_utf8_lossy(line);
            self.push("In:  ", text.trim_end_matches(['\r', '\n']));
        }
    }

    /// Records a reply (one `Out:` line per reply line) and classifies it.
    pub fn output(&mut self, r: &Reply) {
        if !self.enabled {
            return;
        }
        let encoded = r.encode();
        for l in encoded.split("\r\n").filter(|l| !l.is_empty()) {
            self.push("Out: ", l);
        }
        if self.classified.take().as_deref() != Some(encoded.as_str())
            && let Some(c) = classify(r)
        {
            self.hit |= c.bit();
        }
    }

    /// Records raw reply text (SASL challenges): never an error.
    pub fn output_raw(&mut self, text: &str) {
        if self.enabled {
            for l in text.split("\r\n").filter(|l| !l.is_empty()) {
                self.push("Out: ", l);
            }
        }
    }

    /// A restriction refused the client with `r` (sent next).
    pub fn restriction(&mut self, r: &Reply) {
        if self.enabled {
            self.hit |= restriction_class(r).bit();
            self.classified = Some(r.encode());
        }
    }

    /// Why the session ended early.
    pub fn abort(&mut self, reason: &str) {
        self.reason = Some(reason.to_string());
    }

    /// Whether a class in `mask` was hit.
    pub fn due(&self, mask: u8) -> bool {
        self.hit & mask != 0
    }

    /// Number of lines kept.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Empties the transcript (after a notice, or at the flush threshold).
    pub fn reset(&mut self) {
        self.lines.clear();
        self.dropped = 0;
        self.hit = 0;
        self.classified = None;
    }
}

/// Client text as Postfix's `printable(…, '?')`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Wraps a line at `width` columns; continuation lines are indented by
/// `indent` (Postfix's `line_wrap`): breaks at white space where it can.
fn wrap(line: &str, width: usize, indent: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    let mut room = width;
    while rest.len() > room {
        let cut = rest[..=room].rfind(' ').filter(|&i| i > 0).unwrap_or(room);
        let (head, tail) = rest.split_at(cut);
        out.push(head.trim_end().to_string());
        rest = tail.trim_start();
        room = width.saturating_sub(indent).max(1);
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(rest.to_string());
    }
    out.into_iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l
            } else {
                format!("{}{l}", " ".repeat(indent))
            }
        })
        .collect()
}

/// The notice's header and body, LF line ends (cleanup's content format).
pub fn compose(n: &NotifySettings, client: &str, t: &Transcript) -> Vec<u8> {
    let mut m = String::new();
    m.push_str("From: Mail Delivery System <MAILER-DAEMON>\n");
    m.push_str(&format!("To: Postmaster <{}>\n", n.recipient));
    m.push_str(&format!(
        "Subject: {} SMTP server: errors from {}\n\n",
        n.mail_name,
        printable(client)
    ));
    m.push_str("Transcript of session follows.\n\n");
    for line in &t.lines {
        for part in wrap(&printable(line), 78, 4) {
            m.push(' ');
            m.push_str(&part);
            m.push('\n');
        }
    }
    if t.dropped > 0 {
        m.push_str(&format!(" ({} more lines not kept)\n", t.dropped));
    }
    m.push('\n');
    if let Some(r) = &t.reason {
        m.push_str(&format!("Session aborted, reason: {r}\n"));
    }
    m.push('\n');
    m.push_str("For other details, see the local mail logfile\n");
    m.into_bytes()
}

/// Mails the transcript to the postmaster when a reported class was hit,
/// then empties it. Failures are logged, never returned.
pub async fn send_if_due(
    cfg: &Config,
    n: &NotifySettings,
    client: &str,
    t: &mut Transcript,
    ipc_timeout: Duration,
) {
    if !t.due(n.mask) {
        t.reset();
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let req = CleanupRequest {
        flags: cleanup_flags::BOUNCE
            | cleanup_flags::NO_HEADER_BODY_CHECKS
            | cleanup_flags::NO_MILTERS,
        sender: n.sender.clone(),
        fullname: String::new(),
        arrival: (now.as_secs(), now.subsec_micros()),
        recipients: vec![Recipient::new(n.recipient.clone())],
        attrs: vec![("rewrite_context".into(), "local".into())],
        content: compose(n, client, t),
    };
    t.reset();
    // As Postfix's post_mail_fopen_nowait: junk mail, not worth waiting for.
    let limit = ipc_timeout.min(Duration::from_secs(30));
    let answer = postern_server::client::request_async(
        cfg,
        "public",
        "cleanup",
        &req.to_attrs(),
        1 << 16,
        limit,
    )
    .await
    .map_err(|e| e.to_string())
    .and_then(|a| CleanupReply::from_attrs(&a).map_err(|e| e.to_string()));
    match answer {
        Ok(r) if r.status == CleanupStatus::Ok => {}
        Ok(r) => postern_log::warning(format!("postmaster notify: {}", r.reason)),
        Err(e) => postern_log::warning(format!("postmaster notify: {e}")),
    }
}

#[cfg(test)]
mod tests;

impl crate::session::Session<'_> {
    /// Starts recording when some class is to be reported (never stand-alone).
    pub(crate) fn start_transcript(&mut self) {
        self.conn.transcript = Transcript::new(self.s.notify.mask != 0 && !self.standalone);
    }

    /// Postfix's `chat_reset`: at the end of the session (`threshold` 0), or
    /// between transactions once the transcript is longer than `threshold`,
    /// mails the notice if it is due and starts afresh.
    pub(crate) async fn chat_reset(&mut self, threshold: usize) {
        if self.conn.transcript.is_empty() || self.conn.transcript.len() <= threshold {
            return;
        }
        let mut t = std::mem::take(&mut self.conn.transcript);
        send_if_due(
            self.cfg,
            &self.s.notify,
            &self.client,
            &mut t,
            self.s.ipc_timeout,
        )
        .await;
        self.conn.transcript = t;
    }
}
