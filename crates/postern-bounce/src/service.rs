//! The bounce/defer/trace service: per-message status logs and notices.
//!
//! * `append-bounce` / `append-defer`: one line per recipient result appended
//!   to `bounce/ID` or `defer/ID` and fsynced before the reply, so qmgr may
//!   cross the recipient off.
//! * `flush-bounce`: composes the non-delivery notice for every recipient in
//!   `bounce/ID` that asked for failure notices (DSN NOTIFY), submits it to
//!   cleanup as a new message from the null sender, then removes the log.
//!   A notice about a notice (null sender) goes to `$2bounce_notice_recipient`
//!   from `$double_bounce_sender` when `notify_classes` has `bounce` or
//!   `2bounce` (else it is dropped, as Postfix does); one about a double
//!   bounce is discarded, so notices can never loop. With `bounce` in
//!   `notify_classes`, the postmaster (`$bounce_notice_recipient`) also gets a
//!   copy with the original's header only ("Postmaster Copy: Undelivered Mail").
//! * `warn-delay`: composes the delay notice ("Delayed Mail (still being
//!   retried)") for the recipients still pending in the queue file whose
//!   latest `defer/ID` entry is a deferral and whose DSN NOTIFY includes
//!   DELAY or is unset, submits it to cleanup from the null sender to the
//!   message's sender, and appends the line `delay_warned=TIME` to
//!   `defer/ID` (status-log readers skip lines without a recipient). qmgr
//!   asks only when that line is absent and the bounce service checks again,
//!   so a message is warned about once; the mark goes away with the defer
//!   log. The defer log is kept. No warning about a null-sender message. With
//!   `delay` in `notify_classes`, `$delay_notice_recipient` gets a copy
//!   ("Postmaster Warning: Delayed Mail").
//! * `remove-defer-log`: drops `defer/ID` once the message is gone.
//!
//! # Security
//! Requests come from qmgr only (the socket is private); IDs are validated by
//! `postern-queue` before becoming paths. Log values are sanitized on write.

use crate::dsn::{self, DsnInput, DsnRecipient, NoticeKind};
use postern_config::{Config, p};
use postern_ipc::proto::{
    Action, BounceOp, BounceReply, BounceRequest, CleanupReply, CleanupRequest, CleanupStatus,
    Recipient, cleanup_flags, notify,
};
use postern_qfile::statuslog::{LogEntry, encode_entry, parse_log};
use postern_queue::Queue;
use postern_server::client;
use std::time::{SystemTime, UNIX_EPOCH};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Handles one request.
pub fn handle(cfg: &Config, req: &BounceRequest) -> BounceReply {
    let q = Queue::new(cfg.str(p::QUEUE_DIRECTORY));
    let res = match req.op {
        BounceOp::AppendBounce => append(&q, "bounce", req),
        BounceOp::AppendDefer => append(&q, "defer", req),
        BounceOp::FlushBounce => flush(cfg, &q, req),
        BounceOp::WarnDelay => warn_delay(cfg, &q, req),
        BounceOp::RemoveDeferLog => q
            .remove_log("defer", &req.queue_id)
            .map_err(|e| e.to_string()),
        other => Err(format!(
            "operation {other:?} is not supported by this version"
        )),
    };
    match res {
        Ok(()) => BounceReply {
            ok: true,
            reason: String::new(),
        },
        Err(e) => {
            postern_log::warning(format!("{}: {e}", req.queue_id));
            BounceReply {
                ok: false,
                reason: e,
            }
        }
    }
}

fn append(q: &Queue, log: &str, req: &BounceRequest) -> Result<(), String> {
    let mut text = String::new();
    for r in &req.results {
        text.push_str(&encode_entry(&LogEntry {
            recipient: r.recipient.address.clone(),
            original: r.recipient.original.clone(),
            offset: r.recipient.offset,
            notify: r.recipient.notify,
            orcpt: r.recipient.orcpt.clone(),
            status: r.dsn.clone(),
            action: match r.action {
                Action::Bounce => "failed",
                Action::Defer => "delayed",
                Action::Sent => "delivered",
            }
            .into(),
            relay: r.relay.clone(),
            time: now_secs(),
            reason: r.text.clone(),
        }));
    }
    q.append_log(log, &req.queue_id, text.as_bytes())
        .map_err(|e| e.to_string())
}

fn qualify(addr: &str, cfg: &Config) -> String {
    if addr.contains('@') {
        addr.to_string()
    } else {
        format!("{addr}@{}", cfg.str(p::MYORIGIN))
    }
}

fn flush(cfg: &Config, q: &Queue, req: &BounceRequest) -> Result<(), String> {
    let Some(log) = q
        .read_log("bounce", &req.queue_id)
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    let qf = q
        .read(
            &req.queue_name,
            &req.queue_id,
            client::content_frame_limit(cfg),
        )
        .map_err(|e| e.to_string())?;
    let wanted: Vec<LogEntry> = parse_log(&log)
        .into_iter()
        .filter(|e| e.notify == 0 || e.notify & notify::FAILURE != 0)
        .collect();
    let double = qualify(&cfg.str(p::DOUBLE_BOUNCE_SENDER), cfg);
    if wanted.is_empty() {
        postern_log::info(format!(
            "{}: no failure notice requested (DSN NOTIFY)",
            req.queue_id
        ));
    } else if qf.sender.eq_ignore_ascii_case(&double)
        || qf
            .sender
            .eq_ignore_ascii_case(&cfg.str(p::DOUBLE_BOUNCE_SENDER))
    {
        postern_log::warning(format!(
            "{}: undeliverable postmaster notification discarded",
            req.queue_id
        ));
    } else if qf.sender.is_empty() {
        // A notice that bounced: to the postmaster only when notify_classes has bounce or
        // 2bounce (Postfix discards it otherwise).
        let classes = notify_classes(cfg);
        if classes.iter().any(|c| c == "bounce" || c == "2bounce") {
            let to = qualify(&cfg.str(p::_2BOUNCE_NOTICE_RECIPIENT), cfg);
            let notice = Notice {
                to: &to,
                from: &double,
                kind: NoticeKind::Failure,
                postmaster: false,
            };
            let id = submit(cfg, &qf, &req.queue_id, &wanted, &notice)?;
            postern_log::info(format!(
                "{}: postmaster non-delivery notification: {id}",
                req.queue_id
            ));
        }
    } else {
        let notice = Notice {
            to: &qf.sender,
            from: "",
            kind: NoticeKind::Failure,
            postmaster: false,
        };
        let id = submit(cfg, &qf, &req.queue_id, &wanted, &notice)?;
        postern_log::info(format!(
            "{}: sender non-delivery notification: {id}",
            req.queue_id
        ));
        if notify_classes(cfg).iter().any(|c| c == "bounce") {
            postmaster_copy(cfg, &qf, &req.queue_id, &wanted, NoticeKind::Failure);
        }
    }
    q.remove_log("bounce", &req.queue_id)
        .map_err(|e| e.to_string())
}

/// The postmaster's copy of a sender notice (`notify_classes` bounce or delay), from the
/// double-bounce sender to `bounce_notice_recipient` or `delay_notice_recipient`, with the
/// original's header only. Not critical: a failure is a warning, the sender notice stands.
fn postmaster_copy(
    cfg: &Config,
    qf: &postern_qfile::QueueFile,
    queue_id: &str,
    entries: &[LogEntry],
    kind: NoticeKind,
) {
    let (param, what) = match kind {
        NoticeKind::Delay => (p::DELAY_NOTICE_RECIPIENT, "postmaster delay notification"),
        _ => (
            p::BOUNCE_NOTICE_RECIPIENT,
            "postmaster non-delivery notification",
        ),
    };
    let to = qualify(&cfg.str(param), cfg);
    let from = qualify(&cfg.str(p::DOUBLE_BOUNCE_SENDER), cfg);
    let notice = Notice {
        to: &to,
        from: &from,
        kind,
        postmaster: true,
    };
    match submit(cfg, qf, queue_id, entries, &notice) {
        Ok(id) => postern_log::info(format!("{queue_id}: {what}: {id}")),
        Err(e) => postern_log::warning(format!(
            "{queue_id}: postmaster notice failed while bouncing to {}: {e}",
            qf.sender
        )),
    }
}

/// Marks a defer log whose delay warning was sent.
pub const DELAY_WARNED_MARK: &str = "delay_warned=";

fn warn_delay(cfg: &Config, q: &Queue, req: &BounceRequest) -> Result<(), String> {
    let Some(log) = q
        .read_log("defer", &req.queue_id)
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    if String::from_utf8_lossy(&log)
        .lines()
        .any(|l| l.starts_with(DELAY_WARNED_MARK))
    {
        return Ok(());
    }
    let qf = q
        .read(
            &req.queue_name,
            &req.queue_id,
            client::content_frame_limit(cfg),
        )
        .map_err(|e| e.to_string())?;
    let wanted = delay_entries(&parse_log(&log), &qf);
    if qf.sender.is_empty() {
        // Postfix sends no delay warning about a notice.
    } else if wanted.is_empty() {
        postern_log::info(format!(
            "{}: no delay notice requested (DSN NOTIFY)",
            req.queue_id
        ));
    } else {
        let notice = Notice {
            to: &qf.sender,
            from: "",
            kind: NoticeKind::Delay,
            postmaster: false,
        };
        let id = submit(cfg, &qf, &req.queue_id, &wanted, &notice)?;
        postern_log::info(format!("{}: sender delay notification: {id}", req.queue_id));
        if notify_classes(cfg).iter().any(|c| c == "delay") {
            postmaster_copy(cfg, &qf, &req.queue_id, &wanted, NoticeKind::Delay);
        }
    }
    q.append_log(
        "defer",
        &req.queue_id,
        format!("{DELAY_WARNED_MARK}{}\n", now_secs()).as_bytes(),
    )
    .map_err(|e| e.to_string())
}

/// The latest deferral of each recipient still pending, if it asked for
/// delay notices (NOTIFY=DELAY or no NOTIFY).
fn delay_entries(entries: &[LogEntry], qf: &postern_qfile::QueueFile) -> Vec<LogEntry> {
    let mut out: Vec<LogEntry> = Vec::new();
    for r in qf.pending() {
        let Some(e) = entries.iter().rev().find(|e| e.offset == r.offset) else {
            continue;
        };
        if e.action == "delayed" && (e.notify == 0 || e.notify & notify::DELAY != 0) {
            out.push(e.clone());
        }
    }
    out
}

/// Where one notice goes and what it is.
struct Notice<'a> {
    /// Envelope recipient.
    to: &'a str,
    /// Envelope sender ("" or the double-bounce address).
    from: &'a str,
    /// Failure or delay.
    kind: NoticeKind,
    /// The postmaster's copy: header-only original, postmaster subject.
    postmaster: bool,
}

/// The `notify_classes` words, lower-cased.
fn notify_classes(cfg: &Config) -> Vec<String> {
    cfg.list(p::NOTIFY_CLASSES)
        .into_iter()
        .map(|w| w.to_ascii_lowercase())
        .collect()
}

fn submit(
    cfg: &Config,
    qf: &postern_qfile::QueueFile,
    queue_id: &str,
    entries: &[LogEntry],
    notice: &Notice<'_>,
) -> Result<String, String> {
    let (to, from, kind) = (notice.to, notice.from, notice.kind);
    let z = postern_log::now();
    let now = z.timestamp().as_second();
    let host = cfg.str(p::MYHOSTNAME);
    let message_id = format!(
        "{now}.{}.{queue_id}@{host}",
        z.timestamp().subsec_microsecond()
    );
    let boundary = format!("{queue_id}.{now}/{host}");
    let recipients = entries
        .iter()
        .map(|e| DsnRecipient {
            final_recipient: e.recipient.clone(),
            original_recipient: if e.original != e.recipient {
                e.original.clone()
            } else {
                String::new()
            },
            orcpt: e.orcpt.clone(),
            status: e.status.clone(),
            diagnostic: e.reason.clone(),
            remote_mta: if e.relay == "none" || e.relay == "local" {
                String::new()
            } else {
                e.relay.clone()
            },
            action: e.action.clone(),
        })
        .collect();
    let content = dsn::compose(&DsnInput {
        kind,
        queue_id,
        arrival_secs: qf.arrival.0 as i64,
        now_secs: now,
        utc_offset_secs: z.offset().seconds(),
        sender: &qf.sender,
        envid: qf.attr("envid").unwrap_or(""),
        ret_full: !qf.attr("ret").unwrap_or("").eq_ignore_ascii_case("HDRS"),
        myhostname: &host,
        mail_name: "Postern",
        message_id: &message_id,
        boundary: &boundary,
        recipients,
        original: &qf.content,
        bounce_size_limit: usize::try_from(cfg.size(p::BOUNCE_SIZE_LIMIT)).unwrap_or(usize::MAX),
        postmaster_copy: notice.postmaster,
    });
    let arrival = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let creq = CleanupRequest {
        flags: cleanup_flags::BOUNCE,
        sender: from.to_string(),
        fullname: String::new(),
        arrival: (arrival.as_secs(), arrival.subsec_micros()),
        recipients: vec![Recipient::new(to)],
        attrs: vec![
            ("rewrite_context".into(), "local".into()),
            ("origin_queue_id".into(), queue_id.into()),
        ],
        content,
    };
    let reply = client::request(
        cfg,
        "public",
        "cleanup",
        &creq.to_attrs(),
        1 << 16,
        client::ipc_timeout(cfg),
    )
    .map_err(|e| e.to_string())?;
    let r = CleanupReply::from_attrs(&reply).map_err(|e| e.to_string())?;
    match r.status {
        CleanupStatus::Ok => Ok(r.queue_id),
        _ => Err(format!("cleanup refused the notice: {}", r.reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_qfile::{QueueFile, RecipientRecord};

    fn entry(offset: u64, notify: u8, action: &str, reason: &str) -> LogEntry {
        LogEntry {
            recipient: format!("r{offset}@example.com"),
            offset,
            notify,
            action: action.into(),
            reason: reason.into(),
            ..Default::default()
        }
    }

    #[test]
    fn delay_notice_lists_latest_deferral_of_pending_recipients_that_want_it() {
        let rcpt = |offset, done| RecipientRecord {
            address: format!("r{offset}@example.com"),
            offset,
            done,
            ..Default::default()
        };
        let qf = QueueFile {
            recipients: vec![
                rcpt(10, false),
                rcpt(20, true),
                rcpt(30, false),
                rcpt(40, false),
            ],
            ..Default::default()
        };
        let log = vec![
            entry(10, 0, "delayed", "old"),
            entry(10, 0, "delayed", "new"),
            entry(20, 0, "delayed", "since delivered"),
            entry(30, notify::FAILURE, "delayed", "no DELAY asked"),
            entry(40, notify::DELAY | notify::FAILURE, "delayed", "asked"),
        ];
        let got = delay_entries(&log, &qf);
        let reasons: Vec<&str> = got.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["new", "asked"]);
        let marked = format!("{DELAY_WARNED_MARK}123\n");
        assert!(
            parse_log(marked.as_bytes()).is_empty(),
            "status-log readers skip the mark"
        );
    }
}
