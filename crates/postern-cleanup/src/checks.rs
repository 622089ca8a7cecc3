//! Content inspection: `header_checks`, `mime_header_checks`,
//! `nested_header_checks` and `body_checks` (header_checks(5), as Postfix's
//! cleanup applies them).
//!
//! Each logical header (continuation lines joined by their newlines) or body
//! line is looked up in the table list for its class; the result is an action:
//!
//! | action | effect |
//! |---|---|
//! | `REJECT [text]` | refuse the message, `5.7.1 text` (a `4.x.x` text defers it) |
//! | `DISCARD [text]` | accept and drop it |
//! | `HOLD [text]` | queue it on hold |
//! | `REDIRECT user@domain` | deliver to that address only |
//! | `FILTER transport:nexthop` | route it through a content filter |
//! | `BCC user@domain` | add a recipient |
//! | `PREPEND text` | insert a header (or body line) before this one |
//! | `REPLACE text` | replace this header (or line) |
//! | `IGNORE`, `STRIP [text]` | delete this header or line |
//! | `WARN`, `INFO [text]` | log only |
//! | `PASS [text]` | stop inspecting this message |
//! | `DUNNO`, `OK` | nothing |
//!
//! REJECT, DISCARD, REDIRECT and PASS end all further inspection of the
//! message. Every action but IGNORE/DUNNO/OK logs one line in Postfix's form:
//! `ID: reject: header Subject: x from host[addr]; from=<s> to=<r> proto=ESMTP
//! helo=<h>: 5.7.1 text`.
//!
//! # Security
//! Header and body text come from the network and are only used as lookup
//! keys; the action parser ([`parse_action`]) is fuzzed.
//!
//! # Configuration
//! `header_checks`, `mime_header_checks`, `nested_header_checks`,
//! `body_checks`, `body_checks_size_limit`.

use crate::maps::{MapList, Trail};
use postern_ipc::proto::CleanupStatus;

/// A header_checks(5) action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `REJECT [text]`.
    Reject(String),
    /// `WARN [text]`.
    Warn(String),
    /// `INFO [text]`.
    Info(String),
    /// `FILTER transport:destination`.
    Filter(String),
    /// `PASS [text]`.
    Pass(String),
    /// `DISCARD [text]`.
    Discard(String),
    /// `HOLD [text]`.
    Hold(String),
    /// `PREPEND text`.
    Prepend(String),
    /// `REPLACE text`.
    Replace(String),
    /// `REDIRECT user@domain`.
    Redirect(String),
    /// `BCC user@domain`.
    Bcc(String),
    /// `STRIP [text]`.
    Strip(String),
    /// `IGNORE`.
    Ignore,
    /// `DUNNO` or `OK`.
    Dunno,
    /// Anything else (logged as unknown, otherwise ignored).
    Unknown(String),
}

/// Parses a table result into an action: the command word (any case), then
/// white space, then the optional text.
pub fn parse_action(value: &str) -> Action {
    let value = value.trim_start();
    let cut = value.find([' ', '\t']).unwrap_or(value.len());
    let (cmd, rest) = value.split_at(cut);
    let text = rest.trim_start_matches([' ', '\t']).to_string();
    match cmd.to_ascii_uppercase().as_str() {
        "REJECT" => Action::Reject(text),
        "WARN" => Action::Warn(text),
        "INFO" => Action::Info(text),
        "FILTER" => Action::Filter(text),
        "PASS" => Action::Pass(text),
        "DISCARD" => Action::Discard(text),
        "HOLD" => Action::Hold(text),
        "PREPEND" => Action::Prepend(text),
        "REPLACE" => Action::Replace(text),
        "REDIRECT" => Action::Redirect(text),
        "BCC" => Action::Bcc(text),
        "STRIP" => Action::Strip(text),
        "IGNORE" => Action::Ignore,
        "DUNNO" | "OK" => Action::Dunno,
        _ => Action::Unknown(value.to_string()),
    }
}

/// Fuzz entry point for [`parse_action`] and [`is_header`].
pub fn fuzz(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let _ = parse_action(&s);
    let _ = is_header(&s);
}

/// Whether `text` looks like a header (`Name: value`), for PREPEND/REPLACE.
pub fn is_header(text: &str) -> bool {
    postern_mail::header::header_name_len(text.as_bytes()).is_some()
}

/// The table list a header is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A non-MIME header of the message itself: `header_checks`.
    Primary,
    /// A MIME header anywhere, or a header of a multipart part: `mime_header_checks`.
    Mime,
    /// A non-MIME header of an attached message: `nested_header_checks`.
    Nested,
}

/// Whether a header name is one of the MIME headers (they are always checked
/// with `mime_header_checks`).
pub fn is_mime_header(name: &str) -> bool {
    [
        "Content-Description",
        "Content-Disposition",
        "Content-ID",
        "Content-Transfer-Encoding",
        "Content-Type",
        "MIME-Version",
    ]
    .iter()
    .any(|n| n.eq_ignore_ascii_case(name))
}

/// The four table lists.
#[derive(Debug, Default)]
pub struct Checks {
    /// `header_checks`.
    pub header: MapList,
    /// `mime_header_checks`.
    pub mime: MapList,
    /// `nested_header_checks`.
    pub nested: MapList,
    /// `body_checks`.
    pub body: MapList,
    /// `body_checks_size_limit`.
    pub body_limit: usize,
}

/// Who and what a log line names.
#[derive(Debug, Clone, Default)]
pub struct LogCtx {
    /// The queue ID.
    pub qid: String,
    /// `host[addr]`, or `local`.
    pub origin: String,
    /// The envelope sender, when known.
    pub sender: Option<String>,
    /// The last envelope recipient, when known.
    pub recip: Option<String>,
    /// Protocol (`ESMTP`), when known.
    pub proto: Option<String>,
    /// HELO name, when known.
    pub helo: Option<String>,
}

/// What the checks decided for the whole message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Put the message on hold.
    pub hold: bool,
    /// Accept and drop the message.
    pub discard: bool,
    /// Content filter (`transport:nexthop`).
    pub filter: Option<String>,
    /// Deliver to this address only.
    pub redirect: Option<String>,
    /// Extra recipients.
    pub bcc: Vec<String>,
    /// Inspection ended (REJECT, DISCARD, REDIRECT, PASS, or a failure).
    pub done: bool,
}

/// What to do with the inspected header or line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Keep it.
    Keep,
    /// Delete it.
    Drop,
    /// Replace it with this text.
    Replace(String),
}

/// The result for one header or line: text to insert before it, and its fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Inserted before (PREPEND).
    pub prepend: Option<String>,
    /// The header or line itself.
    pub edit: Edit,
}

const KEEP: Outcome = Outcome {
    prepend: None,
    edit: Edit::Keep,
};

fn printable(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn log_line(ctx: &LogCtx, action: &str, what: &str, content: &str, text: &str) -> String {
    let mut l = format!(
        "{}: {action}: {what} {} from {};",
        ctx.qid,
        printable(content),
        ctx.origin
    );
    if let Some(s) = &ctx.sender {
        l.push_str(&format!(" from=<{s}>"));
    }
    if let Some(r) = &ctx.recip {
        l.push_str(&format!(" to=<{r}>"));
    }
    if let Some(p) = &ctx.proto {
        l.push_str(&format!(" proto={p}"));
    }
    if let Some(h) = &ctx.helo {
        l.push_str(&format!(" helo=<{h}>"));
    }
    if !text.is_empty() {
        l.push_str(&format!(": {text}"));
    }
    l
}

impl Checks {
    /// Checks one logical header (without its final newline).
    pub fn header(
        &self,
        class: Class,
        header: &str,
        ctx: &LogCtx,
        v: &mut Verdict,
        trail: &mut Trail,
    ) -> Outcome {
        let maps = match class {
            Class::Primary => &self.header,
            Class::Mime => &self.mime,
            Class::Nested => &self.nested,
        };
        self.inspect(maps, "header", header, ctx, v, trail)
    }

    /// Checks one body line (without its newline) that starts `offset` bytes
    /// into its body segment.
    pub fn body_line(
        &self,
        line: &str,
        offset: usize,
        ctx: &LogCtx,
        v: &mut Verdict,
        trail: &mut Trail,
    ) -> Outcome {
        if offset >= self.body_limit {
            return KEEP;
        }
        self.inspect(&self.body, "body", line, ctx, v, trail)
    }

    /// Whether the body pass has anything to check (body lines, or headers
    /// inside the body).
    pub fn has_body_work(&self) -> bool {
        !self.body.is_empty() || !self.mime.is_empty() || !self.nested.is_empty()
    }

    fn inspect(
        &self,
        maps: &MapList,
        what: &str,
        text: &str,
        ctx: &LogCtx,
        v: &mut Verdict,
        trail: &mut Trail,
    ) -> Outcome {
        if v.done || maps.is_empty() {
            return KEEP;
        }
        let value = match maps.find_string(text) {
            Ok(Some(value)) => value,
            Ok(None) => return KEEP,
            Err(e) => {
                trail.table_error(format!(
                    "{}: {} map lookup problem ({e})",
                    ctx.qid, maps.title
                ));
                v.done = true;
                return KEEP;
            }
        };
        let log = |trail: &mut Trail, action: &str, t: &str| {
            trail.info(log_line(ctx, action, what, text, t));
        };
        let title = &maps.title;
        match parse_action(&value) {
            Action::Reject(t) => {
                let mut reason = if t.is_empty() {
                    "5.7.1 message content rejected".to_string()
                } else {
                    dsn_prepend("5.7.1", &t)
                };
                if !reason.starts_with(['4', '5']) {
                    trail.warn(format!("bad DSN action in {t} -- need 4.x.x or 5.x.x"));
                    reason.replace_range(0..1, "4");
                }
                log(trail, "reject", &reason);
                let status = if reason.starts_with('4') {
                    CleanupStatus::Defer
                } else {
                    CleanupStatus::Reject
                };
                trail.fail(status, reason);
                v.done = true;
            }
            Action::Warn(t) => log(trail, "warning", &t),
            Action::Info(t) => log(trail, "info", &t),
            Action::Filter(t) => {
                if t.is_empty() {
                    trail.warn(format!("missing FILTER command argument in {title} map"));
                } else if !t.contains(':') {
                    trail.warn(format!(
                        "bad FILTER command {t} in {title} -- need transport:destination"
                    ));
                } else {
                    log(trail, "filter", &t);
                    v.filter = Some(t);
                }
            }
            Action::Pass(t) => {
                log(trail, "pass", &t);
                v.done = true;
            }
            Action::Discard(t) => {
                log(trail, "discard", &t);
                v.discard = true;
                v.done = true;
            }
            Action::Hold(t) => {
                if !v.hold && !v.discard {
                    log(trail, "hold", &t);
                    v.hold = true;
                }
            }
            Action::Prepend(t) => {
                if t.is_empty() {
                    trail.warn(format!("PREPEND action without text in {title} map"));
                } else if what == "header" && !is_header(&t) {
                    trail.warn(format!(
                        "bad PREPEND header text \"{t}\" in {title} map -- need \"headername: headervalue\""
                    ));
                } else {
                    log(trail, "prepend", &t);
                    return Outcome {
                        prepend: Some(t),
                        edit: Edit::Keep,
                    };
                }
            }
            Action::Replace(t) => {
                if t.is_empty() {
                    trail.warn(format!("REPLACE action without text in {title} map"));
                } else if what == "header" && !is_header(&t) {
                    trail.warn(format!(
                        "bad REPLACE header text \"{t}\" in {title} map -- need \"headername: headervalue\""
                    ));
                } else {
                    log(trail, "replace", &t);
                    return Outcome {
                        prepend: None,
                        edit: Edit::Replace(t),
                    };
                }
            }
            Action::Redirect(t) => {
                if !t.contains('@') {
                    trail.warn(format!(
                        "bad REDIRECT target \"{t}\" in {title} map -- need user@domain"
                    ));
                } else {
                    log(trail, "redirect", &t);
                    v.redirect = Some(t);
                    v.done = true;
                }
            }
            Action::Bcc(t) => {
                if !t.contains('@') {
                    trail.warn(format!(
                        "bad BCC address \"{t}\" in {title} map -- need user@domain"
                    ));
                } else {
                    log(trail, "bcc", &t);
                    v.bcc.push(t);
                }
            }
            Action::Strip(t) => {
                log(trail, "strip", &t);
                return Outcome {
                    prepend: None,
                    edit: Edit::Drop,
                };
            }
            Action::Ignore => {
                return Outcome {
                    prepend: None,
                    edit: Edit::Drop,
                };
            }
            Action::Dunno => {}
            Action::Unknown(cmd) => {
                trail.warn(format!("unknown command in {title} map: {cmd}"));
            }
        }
        KEEP
    }
}

/// Postfix's `dsn_prepend`: keeps a leading `X.Y.Z` status in `text`, else
/// puts `default` in front.
pub fn dsn_prepend(default: &str, text: &str) -> String {
    if leading_dsn(text).is_some() {
        text.to_string()
    } else {
        format!("{default} {text}")
    }
}

/// The `X.Y.Z` enhanced status code at the start of `text`, if any.
pub fn leading_dsn(text: &str) -> Option<&str> {
    let word = text.split([' ', '\t']).next()?;
    let mut parts = word.split('.');
    let class = parts.next()?;
    let ok = matches!(class, "2" | "4" | "5")
        && parts
            .by_ref()
            .take(2)
            .filter(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
            .count()
            == 2
        && parts.next().is_none();
    ok.then_some(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse() {
        assert_eq!(parse_action("REJECT"), Action::Reject(String::new()));
        assert_eq!(
            parse_action("reject  go away\tnow"),
            Action::Reject("go away\tnow".into())
        );
        assert_eq!(parse_action("Dunno"), Action::Dunno);
        assert_eq!(parse_action("OK"), Action::Dunno);
        assert_eq!(
            parse_action("PREPEND X-A: b"),
            Action::Prepend("X-A: b".into())
        );
        assert_eq!(parse_action("FROB x"), Action::Unknown("FROB x".into()));
        assert_eq!(parse_action(""), Action::Unknown(String::new()));
    }

    #[test]
    fn dsn_detection() {
        assert_eq!(dsn_prepend("5.7.1", "go away"), "5.7.1 go away");
        assert_eq!(dsn_prepend("5.7.1", "4.7.0 later"), "4.7.0 later");
        assert_eq!(dsn_prepend("5.7.1", "5.1 x"), "5.7.1 5.1 x");
        assert_eq!(leading_dsn("5.7.1"), Some("5.7.1"));
        assert_eq!(leading_dsn("3.7.1 x"), None);
    }

    fn checks(spec: &str) -> Checks {
        let m = || {
            MapList::from_maps(
                "header_checks",
                vec![postern_table::open(spec, &Default::default()).unwrap()],
            )
        };
        Checks {
            header: m(),
            mime: m(),
            nested: m(),
            body: MapList::from_maps(
                "body_checks",
                vec![postern_table::open(spec, &Default::default()).unwrap()],
            ),
            body_limit: 100,
        }
    }

    #[test]
    fn header_actions_and_logs() {
        let c = checks(
            "regexp:{ {/^Subject: bad/ REJECT Go away}, {/^Subject: later/ REJECT 4.7.0 Try later}, {/^X-Drop:/ IGNORE}, {/^X-Hold:/ HOLD held}, {/^X-Pre:/ PREPEND X-Added: yes}, {/^X-Rep:/ REPLACE X-Rep: new}, {/^X-Bad:/ REPLACE no colon}, {/^X-F:/ FILTER smtp:[127.0.0.1]:10025}, {/^X-Bcc:/ BCC copy@example.org}, {/spam/ DISCARD}}",
        );
        let ctx = LogCtx {
            qid: "QID".into(),
            origin: "localhost[127.0.0.1]".into(),
            sender: Some("s@x".into()),
            recip: Some("r@y".into()),
            proto: Some("ESMTP".into()),
            helo: Some("client".into()),
        };
        let (mut v, mut t) = (Verdict::default(), Trail::default());
        assert_eq!(
            c.header(Class::Primary, "X-Drop: 1", &ctx, &mut v, &mut t)
                .edit,
            Edit::Drop
        );
        c.header(Class::Primary, "X-Hold: 1", &ctx, &mut v, &mut t);
        assert!(v.hold);
        let pre = c.header(Class::Primary, "X-Pre: 1", &ctx, &mut v, &mut t);
        assert_eq!(pre.prepend.as_deref(), Some("X-Added: yes"));
        assert_eq!(
            c.header(Class::Mime, "X-Rep: old", &ctx, &mut v, &mut t)
                .edit,
            Edit::Replace("X-Rep: new".into())
        );
        assert_eq!(
            c.header(Class::Primary, "X-Bad: 1", &ctx, &mut v, &mut t)
                .edit,
            Edit::Keep
        );
        c.header(Class::Primary, "X-F: 1", &ctx, &mut v, &mut t);
        assert_eq!(v.filter.as_deref(), Some("smtp:[127.0.0.1]:10025"));
        c.header(Class::Primary, "X-Bcc: 1", &ctx, &mut v, &mut t);
        assert_eq!(v.bcc, ["copy@example.org"]);
        assert!(!t.failed());
        c.header(
            Class::Primary,
            "Subject: bad\n\tstuff",
            &ctx,
            &mut v,
            &mut t,
        );
        assert_eq!(t.fail.as_ref().unwrap().reason, "5.7.1 Go away");
        assert_eq!(t.fail.as_ref().unwrap().status, CleanupStatus::Reject);
        assert!(v.done);
        let line = &t.logs.iter().find(|l| l.1.contains("reject")).unwrap().1;
        assert_eq!(
            line,
            "QID: reject: header Subject: bad??stuff from localhost[127.0.0.1]; from=<s@x> to=<r@y> proto=ESMTP helo=<client>: 5.7.1 Go away"
        );
        // Inspection has ended.
        assert_eq!(
            c.header(Class::Primary, "X-Drop: 1", &ctx, &mut v, &mut t)
                .edit,
            Edit::Keep
        );
        let (mut v, mut t) = (Verdict::default(), Trail::default());
        c.header(Class::Primary, "Subject: later", &ctx, &mut v, &mut t);
        assert_eq!(t.fail.unwrap().status, CleanupStatus::Defer);
        let (mut v, mut t) = (Verdict::default(), Trail::default());
        c.body_line("this is spam", 0, &ctx, &mut v, &mut t);
        assert!(v.discard);
        let (mut v, mut t) = (Verdict::default(), Trail::default());
        c.body_line("this is spam", 100, &ctx, &mut v, &mut t);
        assert!(!v.discard, "beyond body_checks_size_limit");
    }
}
