//! The SMFIR_REPLYCODE text parser (pure): `ddd x.y.z text`, possibly multi-line.
//!
//! A milter may answer any event with its own SMTP reply. The text is checked
//! before anything of it reaches the SMTP client or the log:
//!
//! - no NUL, valid UTF-8, no control characters other than TAB;
//! - lines separated by CRLF, the last without a terminator, at most
//!   [`MAX_LINES`] lines of at most [`MAX_LINE`] bytes;
//! - every line starts with the same 3-digit code, `4xx` or `5xx`, followed by
//!   `-` (not the last line) or a space (the last line), then text;
//! - when the first line's text starts with a digit it must be an enhanced status
//!   code `c.d.d` with `c` the reply's class; later lines repeating it have it
//!   stripped.
//!
//! Sendmail treats the text as a format string, so milters double `%`: `%%`
//! becomes `%`, a single `%` is dropped (as Postfix does).
//!
//! Anything else is a [`ReplyError`]: the milter is misbehaving (Postfix's
//! "malformed reply"), and the caller applies its default action.
//!
//! # Security
//! This is the code Postfix's 2026 memory-safety fixes were about; here it works
//! on a bounded slice and indexes nothing unchecked. It is fuzzed (`milter_reply`).

use std::fmt;

/// Most lines in one reply.
pub const MAX_LINES: usize = 100;
/// Longest line (code and separator included), RFC 5321's 512 doubled for text.
pub const MAX_LINE: usize = 1000;

/// A validated SMTP reply from a milter (or a default reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The 3-digit code (4xx or 5xx).
    pub code: u16,
    /// The enhanced status code (`5.7.1`), when the reply has one.
    pub enhanced: Option<String>,
    /// The text of each line, without code, separator and enhanced code.
    pub lines: Vec<String>,
}

/// Why a reply text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// Empty text.
    #[error("empty reply")]
    Empty,
    /// NUL, invalid UTF-8, or a control character.
    #[error("bad character in reply")]
    BadChar,
    /// More than [`MAX_LINES`] lines or a line longer than [`MAX_LINE`].
    #[error("reply too long")]
    TooLong,
    /// A line that does not start with a 4xx/5xx code.
    #[error("line {0}: bad reply code")]
    BadCode(usize),
    /// A line whose code differs from the first line's.
    #[error("line {0}: reply code differs from the first line")]
    CodeMismatch(usize),
    /// `-` on the last line, a space on another, or a bare CR/LF.
    #[error("line {0}: bad continuation")]
    BadContinuation(usize),
    /// An enhanced status code that is malformed or of another class.
    #[error("bad enhanced status code")]
    BadEnhanced,
}

impl Reply {
    /// A reply from a code, an enhanced code and one line of text.
    pub fn new(code: u16, enhanced: &str, text: &str) -> Reply {
        Reply {
            code,
            enhanced: (!enhanced.is_empty()).then(|| enhanced.to_string()),
            lines: vec![text.to_string()],
        }
    }

    /// The reply as SMTP lines without CRLF: `550-5.7.1 a`, `550 5.7.1 b`.
    pub fn smtp_lines(&self) -> Vec<String> {
        let n = self.lines.len().max(1);
        (0..n)
            .map(|i| {
                let sep = if i + 1 == n { ' ' } else { '-' };
                let text = self.lines.get(i).map(String::as_str).unwrap_or("");
                match &self.enhanced {
                    Some(e) => format!("{}{sep}{e} {text}", self.code),
                    None => format!("{}{sep}{text}", self.code),
                }
            })
            .collect()
    }

    /// True for a 4xx reply.
    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }
}

impl fmt::Display for Reply {
    /// One line for logs: the lines joined with a space, as Postfix logs them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.smtp_lines().join(" "))
    }
}

/// Parses a SMFIR_REPLYCODE payload (one trailing NUL allowed).
pub fn parse(data: &[u8]) -> Result<Reply, ReplyError> {
    let data = data.strip_suffix(b"\0").unwrap_or(data);
    if data.is_empty() {
        return Err(ReplyError::Empty);
    }
    let text = std::str::from_utf8(data).map_err(|_| ReplyError::BadChar)?;
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
    {
        return Err(ReplyError::BadChar);
    }
    let raw: Vec<&str> = text.split("\r\n").collect();
    if raw.len() > MAX_LINES {
        return Err(ReplyError::TooLong);
    }
    let mut code = None;
    let mut lines = Vec::with_capacity(raw.len());
    for (i, line) in raw.iter().enumerate() {
        let no = i + 1;
        if line.len() > MAX_LINE {
            return Err(ReplyError::TooLong);
        }
        if line.contains(['\r', '\n']) {
            return Err(ReplyError::BadContinuation(no));
        }
        let (c, rest) = split_code(line, no, i + 1 == raw.len())?;
        if *code.get_or_insert(c) != c {
            return Err(ReplyError::CodeMismatch(no));
        }
        lines.push(rest);
    }
    let code = code.ok_or(ReplyError::Empty)?;
    let enhanced = take_enhanced(code, &mut lines)?;
    let lines = lines.into_iter().map(unpercent).collect();
    Ok(Reply {
        code,
        enhanced,
        lines,
    })
}

/// Splits `ddd-text` / `ddd text` into the code and the text.
fn split_code(line: &str, no: usize, last: bool) -> Result<(u16, &str), ReplyError> {
    let b = line.as_bytes();
    if b.len() < 4 || !matches!(b[0], b'4' | b'5') || !b[1..3].iter().all(u8::is_ascii_digit) {
        return Err(ReplyError::BadCode(no));
    }
    let want = if last { b' ' } else { b'-' };
    if b[3] != want {
        return Err(ReplyError::BadContinuation(no));
    }
    let code = line[..3].parse().map_err(|_| ReplyError::BadCode(no))?;
    Ok((code, &line[4..]))
}

/// Takes the enhanced code off the first line (and off later lines that
/// repeat it).
fn take_enhanced(code: u16, lines: &mut [&str]) -> Result<Option<String>, ReplyError> {
    let first = lines.first().copied().unwrap_or("");
    if !first.starts_with(|c: char| c.is_ascii_digit()) {
        return Ok(None);
    }
    let end = first.find(' ').unwrap_or(first.len());
    let enh = &first[..end];
    if !valid_enhanced(enh, code) {
        return Err(ReplyError::BadEnhanced);
    }
    for line in lines.iter_mut() {
        if let Some(rest) = line.strip_prefix(enh)
            && (rest.is_empty() || rest.starts_with(' '))
        {
            *line = rest.strip_prefix(' ').unwrap_or(rest);
        }
    }
    Ok(Some(enh.to_string()))
}

/// `c.d.d` with 1-3 digits in the last two parts and `c` the code's class.
fn valid_enhanced(e: &str, code: u16) -> bool {
    let mut parts = e.split('.');
    let (Some(c), Some(s), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let num = |p: &str| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    c.len() == 1 && c.parse::<u16>().ok() == Some(code / 100) && num(s) && num(d)
}

/// `%%` → `%`, a single `%` dropped (Sendmail format-string convention).
fn unpercent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line() {
        let r = parse(b"554 5.7.1 Rejected by policy\0").unwrap();
        assert_eq!(r.code, 554);
        assert_eq!(r.enhanced.as_deref(), Some("5.7.1"));
        assert_eq!(r.lines, ["Rejected by policy"]);
        assert_eq!(r.to_string(), "554 5.7.1 Rejected by policy");
        assert!(!r.is_temporary());
    }

    #[test]
    fn multi_line_and_percent() {
        let r = parse(b"451-4.7.1 first 100%%\r\n451-4.7.1 second\r\n451 4.7.1 last %x").unwrap();
        assert_eq!(r.code, 451);
        assert_eq!(r.lines, ["first 100%", "second", "last x"]);
        assert_eq!(
            r.smtp_lines(),
            [
                "451-4.7.1 first 100%",
                "451-4.7.1 second",
                "451 4.7.1 last x"
            ]
        );
    }

    #[test]
    fn without_enhanced() {
        let r = parse(b"550 go away").unwrap();
        assert_eq!(r.enhanced, None);
        assert_eq!(r.smtp_lines(), ["550 go away"]);
        let r = parse(b"550 ").unwrap();
        assert_eq!(r.lines, [""]);
    }

    #[test]
    fn malformed() {
        let cases: &[(&[u8], ReplyError)] = &[
            (b"", ReplyError::Empty),
            (b"\0", ReplyError::Empty),
            (b"250 ok", ReplyError::BadCode(1)),
            (b"55 x", ReplyError::BadCode(1)),
            (b"550", ReplyError::BadCode(1)),
            (b"5x0 x", ReplyError::BadCode(1)),
            (b"550-x", ReplyError::BadContinuation(1)),
            (b"550 a\r\n550 b", ReplyError::BadContinuation(1)),
            (b"550-a\r\n551 b", ReplyError::CodeMismatch(2)),
            (b"550-a\r\n", ReplyError::BadCode(2)),
            (b"550-a\n550 b", ReplyError::BadContinuation(1)),
            (b"550 a\rb", ReplyError::BadContinuation(1)),
            (b"550 a\0b", ReplyError::BadChar),
            (b"550 a\x1bb", ReplyError::BadChar),
            (b"550 \xff", ReplyError::BadChar),
            (b"550 4.7.1 wrong class", ReplyError::BadEnhanced),
            (b"550 5.7 short", ReplyError::BadEnhanced),
            (b"550 5.7.1234 long", ReplyError::BadEnhanced),
            (b"550 55.7.1 x", ReplyError::BadEnhanced),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse(input).as_ref(),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let long = format!("550 {}", "x".repeat(MAX_LINE));
        assert_eq!(parse(long.as_bytes()), Err(ReplyError::TooLong));
        let many = format!("{}550 x", "550-x\r\n".repeat(MAX_LINES));
        assert_eq!(parse(many.as_bytes()), Err(ReplyError::TooLong));
    }
}
