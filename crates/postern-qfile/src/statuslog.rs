//! The per-message delivery status logs (`bounce/ID`, `defer/ID`, `trace/ID`).
//!
//! The bounce service appends one line per recipient result; qmgr, mailq and
//! the DSN writer read them back. A line is a tab-separated list of
//! `name=value` fields; values never contain tabs or newlines (they are
//! replaced by spaces on encoding). Unknown fields are kept, so the format can
//! grow without a new version; a malformed line is skipped by the reader.
//!
//! ```text
//! recipient=u@example.com<TAB>original=u@example.com<TAB>offset=312<TAB>notify=0<TAB>orcpt=<TAB>status=4.4.1<TAB>action=delayed<TAB>relay=none<TAB>time=1700000000<TAB>reason=connect to ...
//! ```

/// One recipient status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogEntry {
    /// Recipient address.
    pub recipient: String,
    /// Original recipient.
    pub original: String,
    /// Recipient record offset in the queue file.
    pub offset: u64,
    /// DSN NOTIFY bits.
    pub notify: u8,
    /// DSN ORCPT.
    pub orcpt: String,
    /// Enhanced status code.
    pub status: String,
    /// DSN action (`failed`, `delayed`, `delivered`, `relayed`, `expanded`).
    pub action: String,
    /// Relay or `none`.
    pub relay: String,
    /// Unix time of the event.
    pub time: u64,
    /// Reason text.
    pub reason: String,
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '\t' || c == '\n' || c == '\r' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Encodes one entry as a line (with the trailing newline).
pub fn encode_entry(e: &LogEntry) -> String {
    format!(
        "recipient={}\toriginal={}\toffset={}\tnotify={}\torcpt={}\tstatus={}\taction={}\trelay={}\ttime={}\treason={}\n",
        clean(&e.recipient),
        clean(&e.original),
        e.offset,
        e.notify,
        clean(&e.orcpt),
        clean(&e.status),
        clean(&e.action),
        clean(&e.relay),
        e.time,
        clean(&e.reason)
    )
}

/// Parses a whole log; malformed lines are skipped.
pub fn parse_log(bytes: &[u8]) -> Vec<LogEntry> {
    let text = String::from_utf8_lossy(bytes);
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<LogEntry> {
    let mut e = LogEntry::default();
    let mut seen_recipient = false;
    for field in line.split('\t') {
        let (k, v) = field.split_once('=')?;
        match k {
            "recipient" => {
                e.recipient = v.to_string();
                seen_recipient = true;
            }
            "original" => e.original = v.to_string(),
            "offset" => e.offset = v.parse().ok()?,
            "notify" => e.notify = v.parse().ok()?,
            "orcpt" => e.orcpt = v.to_string(),
            "status" => e.status = v.to_string(),
            "action" => e.action = v.to_string(),
            "relay" => e.relay = v.to_string(),
            "time" => e.time = v.parse().ok()?,
            "reason" => e.reason = v.to_string(),
            _ => {}
        }
    }
    seen_recipient.then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_sanitize() {
        let e = LogEntry {
            recipient: "a@b".into(),
            offset: 12,
            status: "5.1.1".into(),
            action: "failed".into(),
            reason: "bad\tthing\nhere".into(),
            ..Default::default()
        };
        let line = encode_entry(&e);
        let back = parse_log(format!("{line}garbage\n{line}").as_bytes());
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].reason, "bad thing here");
        assert_eq!(back[0].offset, 12);
    }
}
