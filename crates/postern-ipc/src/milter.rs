//! The milter round inside a `cleanup/1` exchange (smtpd ⇄ cleanup).
//!
//! When smtpd sends a request with [`crate::proto::cleanup_flags::MILTER`], cleanup
//! builds the queue file as usual (its header fix-ups, rewriting and `Received:`
//! header included) but, before it writes the file, sends smtpd a
//! [`MilterInspect`] on the same connection: the queue ID and the message as it
//! would be queued. smtpd runs its milters' content stage over it (its milter
//! connections live in smtpd, as the SMTP events before them did) and answers
//! with a [`MilterOutcome`]: the verdict, the headers and body after every
//! milter's edits and the envelope edits. cleanup applies the outcome, then
//! writes (or refuses, discards, holds) and sends its ordinary
//! [`crate::proto::CleanupReply`]. Postfix runs this stage in cleanup on the
//! message as cleanup writes it; the milters here see the same text.
//!
//! # Security
//! Both sides decode strictly (protocol names checked, every edit well formed);
//! the content is bounded by the caller's frame limit.

use crate::attrs::{AttrList, FrameError};

/// cleanup → smtpd: the message as it will be queued.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MilterInspect {
    /// The queue ID the file will have (the `i` macro).
    pub queue_id: String,
    /// The header fields as cleanup built them: (name, value after the colon,
    /// folded lines joined with `\n`).
    pub headers: Vec<(String, String)>,
    /// The body, LF line endings.
    pub body: Vec<u8>,
    /// How many leading headers the milters must not see (cleanup's own
    /// `Received:` header, as Postfix hides it).
    pub hidden: u32,
}

impl MilterInspect {
    /// Protocol name.
    pub const PROTO: &'static str = "milter-inspect/1";

    /// Encodes into an attribute list.
    pub fn to_attrs(&self) -> AttrList {
        let mut a = AttrList::new();
        a.push("proto", Self::PROTO)
            .push("queue_id", &self.queue_id);
        push_headers(&mut a, &self.headers);
        a.push("body", &self.body)
            .push_num("hidden", u64::from(self.hidden));
        a
    }

    /// Decodes and validates.
    pub fn from_attrs(a: &AttrList) -> Result<Self, FrameError> {
        a.expect_proto(Self::PROTO)?;
        Ok(MilterInspect {
            queue_id: a.require_text("queue_id")?,
            headers: headers(a)?,
            body: a.require("body")?.to_vec(),
            hidden: u32::try_from(a.num_or("hidden", 0)?)
                .map_err(|_| FrameError::BadValue("hidden"))?,
        })
    }
}

/// smtpd → cleanup: what the milters decided and changed. Field meanings follow
/// `postern_milter::Outcome`; the verdict is a word, reply lines are text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MilterOutcome {
    /// `continue`, `accept`, `reject`, `tempfail`, `discard` or `quarantine`.
    pub verdict: String,
    /// Reply code (reject/tempfail), else 0.
    pub code: u16,
    /// Enhanced status code (`5.7.1`), may be empty.
    pub enhanced: String,
    /// Reply text lines (reject/tempfail) or the quarantine reason (one line).
    pub text: Vec<String>,
    /// The headers after the milters' edits: (name, value after the colon).
    pub headers: Vec<(String, String)>,
    /// The body after the milters' edits.
    pub body: Vec<u8>,
    /// Every applied modification, in order: a kind word and its fields
    /// (`add_header NAME VALUE`, `insert_header INDEX NAME VALUE`, `change_header
    /// INDEX NAME VALUE`, `replace_body`, `add_rcpt RCPT [ARGS]`, `del_rcpt RCPT`,
    /// `change_from SENDER [ARGS]`, `quarantine REASON`).
    pub edits: Vec<Vec<String>>,
}

impl MilterOutcome {
    /// Protocol name.
    pub const PROTO: &'static str = "milter-outcome/1";

    /// Encodes into an attribute list.
    pub fn to_attrs(&self) -> AttrList {
        let mut a = AttrList::new();
        a.push("proto", Self::PROTO)
            .push("verdict", &self.verdict)
            .push_num("code", u64::from(self.code))
            .push("enhanced", &self.enhanced);
        for t in &self.text {
            a.push("text", t);
        }
        push_headers(&mut a, &self.headers);
        a.push("body", &self.body);
        for e in &self.edits {
            let mut l = AttrList::new();
            for f in e {
                l.push("f", f);
            }
            a.push("edit", l.encode());
        }
        a
    }

    /// Decodes and validates.
    pub fn from_attrs(a: &AttrList) -> Result<Self, FrameError> {
        a.expect_proto(Self::PROTO)?;
        let text = |v: &[u8], n: &'static str| {
            String::from_utf8(v.to_vec()).map_err(|_| FrameError::BadValue(n))
        };
        let verdict = a.require_text("verdict")?;
        if !matches!(
            verdict.as_str(),
            "continue" | "accept" | "reject" | "tempfail" | "discard" | "quarantine"
        ) {
            return Err(FrameError::BadValue("verdict"));
        }
        let code = u16::try_from(a.num_or("code", 0)?).map_err(|_| FrameError::BadValue("code"))?;
        let headers = headers(a)?;
        let mut edits = Vec::new();
        for e in a.all("edit") {
            let l = AttrList::decode(e)?;
            let fields = l
                .all("f")
                .map(|f| text(f, "edit"))
                .collect::<Result<Vec<_>, _>>()?;
            if fields.is_empty() {
                return Err(FrameError::BadValue("edit"));
            }
            edits.push(fields);
        }
        Ok(MilterOutcome {
            verdict,
            code,
            enhanced: a.text("enhanced"),
            text: a
                .all("text")
                .map(|t| text(t, "text"))
                .collect::<Result<_, _>>()?,
            headers,
            body: a.get("body").unwrap_or_default().to_vec(),
            edits,
        })
    }
}

fn push_headers(a: &mut AttrList, headers: &[(String, String)]) {
    for (n, v) in headers {
        let mut h = AttrList::new();
        h.push("name", n).push("value", v);
        a.push("header", h.encode());
    }
}

fn headers(a: &AttrList) -> Result<Vec<(String, String)>, FrameError> {
    a.all("header")
        .map(|h| {
            let l = AttrList::decode(h)?;
            Ok((l.require_text("name")?, l.require_text("value")?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let i = MilterInspect {
            queue_id: "4ABC".into(),
            headers: vec![("Subject".into(), " x".into())],
            body: b"body\n".to_vec(),
            hidden: 1,
        };
        assert_eq!(MilterInspect::from_attrs(&i.to_attrs()), Ok(i));
        let o = MilterOutcome {
            verdict: "reject".into(),
            code: 550,
            enhanced: "5.7.1".into(),
            text: vec!["no".into(), "never".into()],
            headers: vec![("Subject".into(), " x\n\ty".into())],
            body: b"b\0\xff\n".to_vec(),
            edits: vec![
                vec!["add_rcpt".into(), "<a@b>".into(), "NOTIFY=NEVER".into()],
                vec!["replace_body".into()],
            ],
        };
        assert_eq!(MilterOutcome::from_attrs(&o.to_attrs()), Ok(o));
    }

    #[test]
    fn refuses_bad_input() {
        let mut a = AttrList::new();
        a.push("proto", MilterOutcome::PROTO)
            .push("verdict", "maybe");
        assert!(MilterOutcome::from_attrs(&a).is_err());
        let mut a = AttrList::new();
        a.push("proto", MilterOutcome::PROTO)
            .push("verdict", "continue")
            .push("edit", b"");
        assert!(MilterOutcome::from_attrs(&a).is_err());
        let mut a = AttrList::new();
        a.push("proto", "cleanup/1");
        assert!(MilterInspect::from_attrs(&a).is_err());
    }
}
