//! SMTP replies: the value type, its encoder, and an incremental parser for the
//! client side.
//!
//! ```text
//! reply      = *( code "-" text CRLF ) code [ SP text ] CRLF     ; same code on every line
//! code       = %x32-35 DIGIT DIGIT
//! text       = [ enhanced SP ] *( %x09 / %x20-7E / UTF8 )
//! enhanced   = class "." 1*3DIGIT "." 1*3DIGIT                     ; class == code's first digit
//! ```
//!
//! # Security
//!
//! [`ReplyParser`] bounds each line ([`ReplyLimits::max_line`], default 2048) and the
//! number of lines ([`ReplyLimits::max_lines`], default 100); it never holds more
//! than one line of unparsed bytes.

use memchr::memchr;

/// A complete SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Three-digit code, 200..=599.
    pub code: u16,
    /// RFC 3463 enhanced status code (class, subject, detail).
    pub enhanced: Option<(u8, u16, u16)>,
    /// Text lines, enhanced code removed. At least one (possibly empty).
    pub lines: Vec<String>,
}

impl Reply {
    /// One-line reply.
    pub fn new(code: u16, enhanced: Option<(u8, u16, u16)>, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced,
            lines: vec![text.into()],
        }
    }

    /// Wire form: `250-…` continuation lines, then `250 …`, each ending CRLF. The
    /// enhanced code, if any, is repeated on every line, as Postfix does.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let last = self.lines.len().saturating_sub(1);
        let empty = [String::new()];
        let lines = if self.lines.is_empty() {
            &empty[..]
        } else {
            &self.lines[..]
        };
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.push_str(&format!("{}{}", self.code, sep));
            if let Some((c, s, d)) = self.enhanced {
                out.push_str(&format!("{c}.{s}.{d}"));
                if !line.is_empty() {
                    out.push(' ');
                }
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        out
    }

    /// Positive completion (2xx).
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// Transient failure (4xx).
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
}

/// Bounds for [`ReplyParser`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Maximum bytes per line, terminator excluded.
    pub max_line: usize,
    /// Maximum lines per reply.
    pub max_lines: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            max_line: 2048,
            max_lines: 100,
        }
    }
}

/// A malformed reply. The connection should be treated as broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line longer than [`ReplyLimits::max_line`].
    #[error("reply line too long")]
    LineTooLong,
    /// More than [`ReplyLimits::max_lines`] lines.
    #[error("too many reply lines")]
    TooManyLines,
    /// Not `DDD`, `DDD-…` or `DDD …`, a code outside 2xx..5xx, or not UTF-8.
    #[error("malformed reply line")]
    Malformed,
    /// A continuation line with a different code.
    #[error("reply code changed within a multi-line reply")]
    CodeMismatch,
}

/// Incremental reply parser: bytes in, a complete [`Reply`] or "need more" out.
#[derive(Debug, Clone, Default)]
pub struct ReplyParser {
    limits: ReplyLimits,
    buf: Vec<u8>,
    code: Option<u16>,
    enhanced: Option<(u8, u16, u16)>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// A parser with the given bounds.
    pub fn new(limits: ReplyLimits) -> ReplyParser {
        ReplyParser {
            limits,
            ..ReplyParser::default()
        }
    }

    /// Consume bytes from `input` until one reply is complete or `input` is used up.
    /// Returns bytes consumed and the reply, if complete (`None`: need more).
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, Option<Reply>), ReplyError> {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            let Some(i) = memchr(b'\n', rest) else {
                self.push(rest)?;
                return Ok((input.len(), None));
            };
            self.push(&rest[..i])?;
            pos += i + 1;
            let mut line = std::mem::take(&mut self.buf);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(reply) = self.line(&line)? {
                return Ok((pos, Some(reply)));
            }
        }
        Ok((pos, None))
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), ReplyError> {
        // +1 leaves room for the CR of CRLF.
        if self.buf.len() + bytes.len() > self.limits.max_line + 1 {
            return Err(ReplyError::LineTooLong);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn line(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let line = std::str::from_utf8(line).map_err(|_| ReplyError::Malformed)?;
        if line.len() > self.limits.max_line {
            return Err(ReplyError::LineTooLong);
        }
        let (code, last, text) = split_reply_line(line).ok_or(ReplyError::Malformed)?;
        if self.code.is_some_and(|c| c != code) {
            return Err(ReplyError::CodeMismatch);
        }
        if self.lines.len() >= self.limits.max_lines {
            return Err(ReplyError::TooManyLines);
        }
        // The first line decides whether the reply carries an enhanced code; later
        // lines lose a leading code only if it does (so that re-encoding is exact).
        let text = if self.code.is_none() {
            let (enhanced, text) = split_enhanced(code, text);
            self.enhanced = enhanced;
            text
        } else if self.enhanced.is_some() {
            split_enhanced(code, text).1
        } else {
            text
        };
        self.code = Some(code);
        self.lines.push(text.to_owned());
        if !last {
            return Ok(None);
        }
        let reply = Reply {
            code,
            enhanced: self.enhanced,
            lines: std::mem::take(&mut self.lines),
        };
        self.code = None;
        self.enhanced = None;
        Ok(Some(reply))
    }
}

/// `(code, is_last, text)`.
fn split_reply_line(line: &str) -> Option<(u16, bool, &str)> {
    let b = line.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&b[0]) {
        return None;
    }
    let code = line[..3].parse().ok()?;
    match b.get(3) {
        None => Some((code, true, "")),
        Some(b' ') => Some((code, true, &line[4..])),
        Some(b'-') => Some((code, false, &line[4..])),
        Some(_) => None,
    }
}

/// Split a leading enhanced status code whose class matches the reply code.
pub(crate) fn split_enhanced(code: u16, text: &str) -> (Option<(u8, u16, u16)>, &str) {
    let end = text.find(' ').unwrap_or(text.len());
    let mut parts = text[..end].split('.');
    let parsed = (|| {
        let c: u8 = num(parts.next()?, 1)?.try_into().ok()?;
        let s = num(parts.next()?, 3)?;
        let d = num(parts.next()?, 3)?;
        (parts.next().is_none() && u16::from(c) == code / 100).then_some((c, s, d))
    })();
    match parsed {
        Some(e) => (Some(e), text[end..].strip_prefix(' ').unwrap_or("")),
        None => (None, text),
    }
}

fn num(s: &str, max_digits: usize) -> Option<u16> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Reply>, ReplyError> {
        let mut p = ReplyParser::default();
        let mut out = Vec::new();
        let mut rest = input;
        loop {
            let (n, r) = p.feed(rest)?;
            rest = &rest[n..];
            match r {
                Some(r) => out.push(r),
                None => return Ok(out),
            }
        }
    }

    #[test]
    fn encode_multi_line() {
        let r = Reply {
            code: 250,
            enhanced: None,
            lines: vec!["pfx.test".into(), "PIPELINING".into(), "CHUNKING".into()],
        };
        assert_eq!(
            r.encode(),
            "250-pfx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
        );
        let r = Reply::new(250, Some((2, 1, 0)), "Ok");
        assert_eq!(r.encode(), "250 2.1.0 Ok\r\n");
        assert_eq!(
            Reply::new(221, Some((2, 0, 0)), "").encode(),
            "221 2.0.0\r\n"
        );
    }

    #[test]
    fn parse_round_trip_and_split_input() {
        let r = Reply {
            code: 550,
            enhanced: Some((5, 7, 1)),
            lines: vec!["first".into(), "second".into()],
        };
        let wire = r.encode();
        assert_eq!(parse_all(wire.as_bytes()).unwrap(), vec![r.clone()]);
        let mut p = ReplyParser::default();
        let mut got = None;
        for b in wire.as_bytes() {
            let (n, x) = p.feed(std::slice::from_ref(b)).unwrap();
            assert_eq!(n, 1);
            got = got.or(x);
        }
        assert_eq!(got, Some(r));
    }

    #[test]
    fn parse_variants() {
        let rs = parse_all(b"220 pfx.test ESMTP\r\n250\n354 End data with <CR><LF>.<CR><LF>\r\n")
            .unwrap();
        assert_eq!(rs.len(), 3);
        assert_eq!(rs[0].lines, vec!["pfx.test ESMTP"]);
        assert_eq!(rs[1].lines, vec![""]);
        assert_eq!(rs[2].enhanced, None);
        // Enhanced class must match the code's class.
        let rs = parse_all(b"250 5.1.0 odd\r\n").unwrap();
        assert_eq!(rs[0].enhanced, None);
    }

    /// Fuzz find: a continuation line's leading code was stripped although the first
    /// line had none, so re-encoding changed the reply.
    #[test]
    fn regression_fuzz_enhanced_on_continuation_only() {
        let rs = parse_all(b"555-x\r\n555 5.4.7 5.4.7 4.\r\n").unwrap();
        assert_eq!(rs[0].enhanced, None);
        assert_eq!(rs[0].lines[1], "5.4.7 5.4.7 4.");
        assert_eq!(parse_all(rs[0].encode().as_bytes()).unwrap(), rs);
    }

    #[test]
    fn parse_errors() {
        assert_eq!(parse_all(b"25O ok\r\n"), Err(ReplyError::Malformed));
        assert_eq!(parse_all(b"150 ok\r\n"), Err(ReplyError::Malformed));
        assert_eq!(parse_all(b"250x\r\n"), Err(ReplyError::Malformed));
        assert_eq!(
            parse_all(b"250-a\r\n251 b\r\n"),
            Err(ReplyError::CodeMismatch)
        );
        let long = format!("250 {}\r\n", "x".repeat(3000));
        assert_eq!(parse_all(long.as_bytes()), Err(ReplyError::LineTooLong));
        let many = "250-x\r\n".repeat(101);
        assert_eq!(parse_all(many.as_bytes()), Err(ReplyError::TooManyLines));
    }
}
