//! Reading the queue for a listing, and the two output formats.
//!
//! [`collect`] reads every message queue (maildrop, incoming, active,
//! deferred, hold, in that order, as Postfix's showq does); within a queue,
//! messages are sorted by arrival time then queue ID, so the output is
//! stable. Files being written (ready bit clear) are skipped, files that
//! vanish are skipped silently, and damaged files produce a warning; a queue
//! directory that cannot be listed fails the whole listing. [`format_text`] and [`format_json`] are pure.

use jiff::tz::TimeZone;
use postern_qfile::statuslog;
use postern_queue::{Queue, ReadError};

/// The queues a listing shows, in order.
pub const LISTED_QUEUES: [&str; 5] = ["maildrop", "incoming", "active", "deferred", "hold"];

/// One pending recipient and why it is delayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rcpt {
    /// Address, internal form.
    pub address: String,
    /// The latest delay reason from the defer log.
    pub reason: Option<String>,
}

/// One message as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Queue name.
    pub queue: String,
    /// Queue ID.
    pub id: String,
    /// Arrival time, Unix seconds.
    pub arrival: u64,
    /// Message size (content bytes).
    pub size: u64,
    /// Envelope sender, internal form ("" = null sender).
    pub sender: String,
    /// Whether the message was forced to expire.
    pub forced_expire: bool,
    /// Recipients still to deliver.
    pub recipients: Vec<Rcpt>,
}

/// Reads one message; `Ok(None)` when it vanished meanwhile.
fn read_one(q: &Queue, queue: &str, id: &str, limit: u64) -> Result<Option<Listed>, ReadError> {
    let qf = match q.read(queue, id, limit) {
        Ok(qf) => qf,
        Err(ReadError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let log = q.read_log("defer", id)?.unwrap_or_default();
    let entries = statuslog::parse_log(&log);
    // The record offset identifies a recipient exactly; the address is the
    // fallback for log lines written without one.
    let reason_for = |offset: u64, addr: &str| {
        let latest = |f: &dyn Fn(&statuslog::LogEntry) -> bool| {
            entries
                .iter()
                .rev()
                .find(|e| f(e))
                .map(|e| e.reason.clone())
        };
        latest(&|e| e.offset != 0 && e.offset == offset)
            .or_else(|| latest(&|e| e.recipient == addr))
    };
    let recipients = qf
        .pending()
        .map(|r| Rcpt {
            address: r.address.clone(),
            reason: reason_for(r.offset, &r.address),
        })
        .collect();
    let forced_expire = matches!(qf.attr("forced_expire"), Some("1" | "yes" | "true"));
    Ok(Some(Listed {
        queue: queue.to_string(),
        id: id.to_string(),
        arrival: qf.arrival.0,
        size: qf.content.len() as u64,
        sender: qf.sender,
        forced_expire,
        recipients,
    }))
}

/// Reads the listed queues. A damaged or vanished file goes to `warn` and is
/// skipped; a queue directory that cannot be read is an error (an incomplete
/// listing must never look like an empty queue).
pub fn collect(
    q: &Queue,
    limit: u64,
    warn: &mut dyn FnMut(String),
) -> Result<Vec<Listed>, ReadError> {
    let mut out = Vec::new();
    for queue in LISTED_QUEUES {
        let entries = q.list(queue)?;
        let mut msgs: Vec<Listed> = entries
            .iter()
            .filter(|e| e.ready)
            .filter_map(|e| match read_one(q, queue, &e.id, limit) {
                Ok(m) => m,
                Err(err) => {
                    warn(err.to_string());
                    None
                }
            })
            .collect();
        msgs.sort_by(|a, b| (a.arrival, &a.id).cmp(&(b.arrival, &b.id)));
        out.extend(msgs);
    }
    Ok(out)
}

/// The external (quoted) form of an address; the null sender is `MAILER-DAEMON`.
fn sender_text(sender: &str) -> String {
    if sender.is_empty() {
        "MAILER-DAEMON".to_string()
    } else {
        postern_mail::address::quote_address(sender)
    }
}

/// `Sun Nov 22 22:40:48` in `tz`.
pub fn arrival_text(secs: u64, tz: &TimeZone) -> String {
    match jiff::Timestamp::from_second(secs.min(i64::MAX as u64) as i64) {
        Ok(ts) => ts
            .to_zoned(tz.clone())
            .strftime("%a %b %e %H:%M:%S")
            .to_string(),
        Err(_) => "(bad arrival time)".to_string(),
    }
}

/// The column where senders and recipients start.
const ADDR_COLUMN: usize = 41;
/// Delay reasons are right-aligned to end at this column (when they fit).
const REASON_END: usize = 76;

/// Recipients grouped by reason, groups in order of first appearance.
fn grouped(rcpts: &[Rcpt]) -> Vec<(Option<&str>, Vec<&str>)> {
    let mut groups: Vec<(Option<&str>, Vec<&str>)> = Vec::new();
    for r in rcpts {
        let reason = r.reason.as_deref();
        match groups.iter_mut().find(|(g, _)| *g == reason) {
            Some((_, list)) => list.push(&r.address),
            None => groups.push((reason, vec![&r.address])),
        }
    }
    groups
}

/// Sendmail-style `mailq` output.
pub fn format_text(msgs: &[Listed], tz: &TimeZone) -> String {
    if msgs.is_empty() {
        return "Mail queue is empty\n".to_string();
    }
    let mut out =
        String::from("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    for m in msgs {
        let status = match m.queue.as_str() {
            "active" => "*",
            "hold" => "!",
            _ => "",
        };
        out.push_str(&format!(
            "{:<11}{:>8} {:<20} {}\n",
            format!("{}{status}", m.id),
            m.size,
            arrival_text(m.arrival, tz),
            sender_text(&m.sender)
        ));
        for (reason, addrs) in grouped(&m.recipients) {
            if let Some(reason) = reason {
                let pad = REASON_END.saturating_sub(reason.chars().count());
                out.push_str(&format!("{:pad$}({reason})\n", ""));
            }
            for a in addrs {
                let a = postern_mail::address::quote_address(a);
                out.push_str(&format!("{:ADDR_COLUMN$}{a}\n", ""));
            }
        }
        out.push('\n');
    }
    let total: u64 = msgs.iter().map(|m| m.size).sum();
    let plural = if msgs.len() == 1 { "" } else { "s" };
    out.push_str(&format!(
        "-- {} Kbytes in {} Request{plural}.\n",
        total / 1024,
        msgs.len()
    ));
    out
}

fn js(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Postfix's `postqueue -j` format: one JSON object per line, with
/// Postfix's field names, order and spacing.
pub fn format_json(m: &Listed) -> String {
    let rcpts: Vec<String> = m
        .recipients
        .iter()
        .map(|r| {
            let addr = js(&postern_mail::address::quote_address(&r.address));
            match &r.reason {
                Some(reason) => {
                    format!("{{\"address\": {addr}, \"delay_reason\": {}}}", js(reason))
                }
                None => format!("{{\"address\": {addr}}}"),
            }
        })
        .collect();
    format!(
        "{{\"queue_name\": {}, \"queue_id\": {}, \"arrival_time\": {}, \"message_size\": {}, \"forced_expire\": {}, \"sender\": {}, \"recipients\": [{}]}}\n",
        js(&m.queue),
        js(&m.id),
        m.arrival,
        m.size,
        m.forced_expire,
        js(&sender_text(&m.sender)),
        rcpts.join(", ")
    )
}
