//! Typing access(5) results.
//!
//! The action is the first word of the value, compared without regard to case; the rest
//! of the value (after blanks) is its argument. An all-digit value means OK; `4NN text`
//! and `5NN text` are explicit replies; any other word starts a restriction list.

/// One access(5) table result.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessAction {
    /// `OK`, or an all-numerical value.
    Ok,
    /// `DUNNO`: stop searching this table as if nothing were found.
    Dunno,
    /// `REJECT [text]`: reply `$access_map_reject_code`.
    Reject(Option<String>),
    /// `DEFER [text]`: reply `$access_map_defer_code`.
    Defer(Option<String>),
    /// `DEFER_IF_REJECT [text]`.
    DeferIfReject(Option<String>),
    /// `DEFER_IF_PERMIT [text]`.
    DeferIfPermit(Option<String>),
    /// `4NN text` or `5NN text` (text may be empty, e.g. `550 ` with a trailing blank).
    Reply {
        /// The three-digit code, 400–599.
        code: u16,
        /// Everything after the code and its blanks (may start with an enhanced status code).
        text: String,
    },
    /// `HOLD [text]`.
    Hold(Option<String>),
    /// `DISCARD [text]`.
    Discard(Option<String>),
    /// `REDIRECT user@domain`.
    Redirect(String),
    /// `FILTER transport:destination`.
    Filter(String),
    /// `PREPEND headername: headervalue`.
    Prepend(String),
    /// `WARN [text]`.
    Warn(Option<String>),
    /// `INFO [text]`.
    Info(Option<String>),
    /// `BCC user@domain`.
    Bcc(String),
    /// Anything else: restriction names to evaluate (`permit_mynetworks, reject`…).
    Restrictions(Vec<String>),
    /// An action whose required argument is missing or malformed (Postfix logs a warning
    /// and answers "451 4.3.5 Server configuration error").
    Invalid {
        /// The action word as written.
        action: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Types an access(5) result value. Never fails: malformed actions become
/// [`AccessAction::Invalid`], unknown words a [`AccessAction::Restrictions`] list.
pub fn parse_access_result(value: &str) -> AccessAction {
    let value = value.trim();
    let (word, rest) = match value.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => (&value[..i], value[i..].trim_start()),
        None => (value, ""),
    };
    let text = (!rest.is_empty()).then(|| rest.to_string());
    let required = |make: fn(String) -> AccessAction, reason| match &text {
        Some(t) => make(t.clone()),
        None => AccessAction::Invalid {
            action: word.to_string(),
            reason,
        },
    };
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return AccessAction::Ok;
    }
    if let Some(reply) = reply_code(value) {
        return reply;
    }
    match word.to_ascii_uppercase().as_str() {
        "OK" => AccessAction::Ok,
        "DUNNO" => AccessAction::Dunno,
        "REJECT" => AccessAction::Reject(text),
        "DEFER" => AccessAction::Defer(text),
        "DEFER_IF_REJECT" => AccessAction::DeferIfReject(text),
        "DEFER_IF_PERMIT" => AccessAction::DeferIfPermit(text),
        "HOLD" => AccessAction::Hold(text),
        "DISCARD" => AccessAction::Discard(text),
        "WARN" => AccessAction::Warn(text),
        "INFO" => AccessAction::Info(text),
        "REDIRECT" => required(AccessAction::Redirect, "no REDIRECT destination"),
        "BCC" => required(AccessAction::Bcc, "no BCC recipient"),
        "PREPEND" => match &text {
            Some(t) if is_header(t) => AccessAction::Prepend(t.clone()),
            Some(_) => AccessAction::Invalid {
                action: word.to_string(),
                reason: "bad PREPEND header",
            },
            None => AccessAction::Invalid {
                action: word.to_string(),
                reason: "no PREPEND header",
            },
        },
        "FILTER" => match &text {
            Some(t) if t.contains(':') => AccessAction::Filter(t.clone()),
            _ => AccessAction::Invalid {
                action: word.to_string(),
                reason: "bad FILTER transport:destination",
            },
        },
        _ => AccessAction::Restrictions(
            value
                .split(|c: char| c == ',' || c.is_ascii_whitespace())
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect(),
        ),
    }
}

/// `4NN text` / `5NN text`: three digits, the first 4 or 5, then a blank.
fn reply_code(value: &str) -> Option<AccessAction> {
    let b = value.as_bytes();
    let ok = b.len() >= 4
        && matches!(b[0], b'4' | b'5')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && (b[3] == b' ' || b[3] == b'\t');
    if !ok {
        return None;
    }
    let code = u16::from(b[0] - b'0') * 100 + u16::from(b[1] - b'0') * 10 + u16::from(b[2] - b'0');
    Some(AccessAction::Reply {
        code,
        text: value[4..].trim_start().to_string(),
    })
}

/// `name: value` with a non-empty name of printable non-blank, non-colon characters.
fn is_header(text: &str) -> bool {
    match text.split_once(':') {
        Some((name, _)) => {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::AccessAction::*;
    use super::*;

    fn s(t: &str) -> Option<String> {
        Some(t.to_string())
    }

    #[test]
    fn actions() {
        assert_eq!(parse_access_result("OK"), Ok);
        assert_eq!(parse_access_result("ok whatever"), Ok);
        assert_eq!(parse_access_result("12345"), Ok);
        assert_eq!(parse_access_result("550"), Ok);
        assert_eq!(parse_access_result("REJECT"), Reject(None));
        assert_eq!(
            parse_access_result("reject  go away "),
            Reject(s("go away"))
        );
        assert_eq!(
            parse_access_result("DEFER try later"),
            Defer(s("try later"))
        );
        assert_eq!(parse_access_result("DEFER_IF_REJECT"), DeferIfReject(None));
        assert_eq!(
            parse_access_result("DEFER_IF_PERMIT x"),
            DeferIfPermit(s("x"))
        );
        assert_eq!(
            parse_access_result("550 5.7.1 no"),
            Reply {
                code: 550,
                text: "5.7.1 no".into()
            }
        );
        assert_eq!(
            parse_access_result("421\tbye"),
            Reply {
                code: 421,
                text: "bye".into()
            }
        );
        assert_eq!(parse_access_result("DUNNO"), Dunno);
        assert_eq!(parse_access_result("HOLD"), Hold(None));
        assert_eq!(parse_access_result("DISCARD spam"), Discard(s("spam")));
        assert_eq!(parse_access_result("REDIRECT a@b"), Redirect("a@b".into()));
        assert_eq!(
            parse_access_result("FILTER smtp:[127.0.0.1]:10025"),
            Filter("smtp:[127.0.0.1]:10025".into())
        );
        assert_eq!(
            parse_access_result("PREPEND X-Test: yes"),
            Prepend("X-Test: yes".into())
        );
        assert_eq!(parse_access_result("WARN hmm"), Warn(s("hmm")));
        assert_eq!(parse_access_result("INFO"), Info(None));
        assert_eq!(parse_access_result("BCC audit@x"), Bcc("audit@x".into()));
    }

    #[test]
    fn restrictions_and_invalid() {
        let r = parse_access_result("permit_mynetworks, reject_unauth_destination reject");
        assert_eq!(
            r,
            Restrictions(vec![
                "permit_mynetworks".into(),
                "reject_unauth_destination".into(),
                "reject".into()
            ])
        );
        assert_eq!(
            parse_access_result("250 ok"),
            Restrictions(vec!["250".into(), "ok".into()])
        );
        assert_eq!(parse_access_result(""), Restrictions(vec![]));
        assert!(matches!(parse_access_result("REDIRECT"), Invalid { .. }));
        assert!(matches!(
            parse_access_result("FILTER nocolon"),
            Invalid { .. }
        ));
        assert!(matches!(
            parse_access_result("PREPEND no colon"),
            Invalid { .. }
        ));
        assert!(matches!(parse_access_result("BCC"), Invalid { .. }));
        for junk in ["\u{0}", "4", "45", "4\u{e9}9 x", "\u{e9}", "5xx text"] {
            std::hint::black_box(parse_access_result(junk));
        }
    }
}
