//! Command-phase line splitter.
//!
//! [`LineReader`] cuts a byte stream into command lines. It is sans-I/O: the caller
//! hands it whatever bytes arrived, and it reports how many it consumed and, at most,
//! one line. It stops after each line so that the caller can switch to the DATA or
//! BDAT reader for the bytes that follow (pipelining).
//!
//! # Rules (observed against Postfix 3.7.11 smtpd)
//!
//! * A line ends with `CRLF` or with a bare `LF`; the terminator is removed and the
//!   line reports whether it was bare ([`Line::bare_lf`]) so that smtpd can apply
//!   `smtpd_forbid_bare_newline = reject`.
//! * A line whose content exceeds `line_length_limit` (Postfix default 2048) is
//!   truncated: [`LineKind::TooLong`] is returned once with the first
//!   `line_length_limit` bytes, and everything up to the next `LF` is discarded.
//!   Postfix then processes the truncated prefix as a command (a 5000-byte `XXX…`
//!   line gets exactly one `500 5.5.2 Error: command not recognized`), so smtpd may
//!   hand the prefix to [`crate::parse_command`].
//!
//! # Security
//!
//! The reader never holds more than `line_length_limit + 1` bytes, whatever the peer
//! sends.

use memchr::memchr;

/// Postfix's default `line_length_limit`.
pub const DEFAULT_LINE_LENGTH_LIMIT: usize = 2048;

/// Whether a line arrived whole or was cut at the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// The whole line, terminator removed.
    Complete,
    /// The first `line_length_limit` bytes of an over-long line; the rest of that line
    /// is discarded by the reader.
    TooLong,
}

/// One command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Line content without `CRLF`/`LF`.
    pub bytes: Vec<u8>,
    /// Complete or truncated.
    pub kind: LineKind,
    /// The line ended with `LF` not preceded by `CR` (always false for `TooLong`).
    pub bare_lf: bool,
}

/// Incremental command-line splitter with a hard length bound.
#[derive(Debug, Clone)]
pub struct LineReader {
    limit: usize,
    buf: Vec<u8>,
    discarding: bool,
}

impl LineReader {
    /// A reader that truncates lines longer than `line_length_limit` bytes (minimum 1).
    pub fn new(line_length_limit: usize) -> Self {
        let limit = line_length_limit.max(1);
        LineReader {
            limit,
            buf: Vec::new(),
            discarding: false,
        }
    }

    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes of an incomplete line held so far (never more than `limit + 1`).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Consume bytes from `input` until one line is complete or `input` is exhausted.
    ///
    /// Returns the number of bytes consumed and the line, if one was completed. Bytes
    /// after the returned line are left for the caller.
    pub fn read_line(&mut self, input: &[u8]) -> (usize, Option<Line>) {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            let lf = memchr(b'\n', rest);
            if self.discarding {
                match lf {
                    Some(i) => {
                        pos += i + 1;
                        self.discarding = false;
                        continue;
                    }
                    None => return (input.len(), None),
                }
            }
            let take = lf.unwrap_or(rest.len());
            // Room for `limit` content bytes plus one CR that may precede the LF.
            let room = self.limit + 1 - self.buf.len();
            if take > room || (take == room && !ends_in_cr(&self.buf, &rest[..take])) {
                return (pos + self.overflow(rest, lf), Some(self.truncated()));
            }
            self.buf.extend_from_slice(&rest[..take]);
            match lf {
                Some(i) => return (pos + i + 1, Some(self.complete())),
                None => return (input.len(), None),
            }
        }
        (pos, None)
    }

    /// The line in `rest` is too long: consume through its LF if present, else all.
    fn overflow(&mut self, rest: &[u8], lf: Option<usize>) -> usize {
        let room = self.limit.saturating_sub(self.buf.len());
        let keep = room.min(rest.len());
        self.buf.extend_from_slice(&rest[..keep]);
        match lf {
            Some(i) => i + 1,
            None => {
                self.discarding = true;
                rest.len()
            }
        }
    }

    fn truncated(&mut self) -> Line {
        let mut bytes = std::mem::take(&mut self.buf);
        bytes.truncate(self.limit);
        Line {
            bytes,
            kind: LineKind::TooLong,
            bare_lf: false,
        }
    }

    fn complete(&mut self) -> Line {
        let mut bytes = std::mem::take(&mut self.buf);
        let bare_lf = bytes.last() != Some(&b'\r');
        if !bare_lf {
            bytes.pop();
        }
        if bytes.len() > self.limit {
            bytes.truncate(self.limit);
            return Line {
                bytes,
                kind: LineKind::TooLong,
                bare_lf: false,
            };
        }
        Line {
            bytes,
            kind: LineKind::Complete,
            bare_lf,
        }
    }
}

impl Default for LineReader {
    fn default() -> Self {
        LineReader::new(DEFAULT_LINE_LENGTH_LIMIT)
    }
}

/// Whether `buf ++ more` ends in CR.
fn ends_in_cr(buf: &[u8], more: &[u8]) -> bool {
    more.last().or(buf.last()) == Some(&b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_lines(r: &mut LineReader, mut input: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        loop {
            let (n, line) = r.read_line(input);
            input = &input[n..];
            match line {
                Some(l) => out.push(l),
                None => break,
            }
        }
        assert!(input.is_empty());
        out
    }

    #[test]
    fn crlf_and_bare_lf() {
        let mut r = LineReader::default();
        let lines = all_lines(&mut r, b"EHLO x\r\nNOOP\nQUIT\r\n");
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].bytes, b"EHLO x");
        assert!(!lines[0].bare_lf);
        assert_eq!(lines[1].bytes, b"NOOP");
        assert!(lines[1].bare_lf);
        assert_eq!(lines[2].bytes, b"QUIT");
    }

    #[test]
    fn stops_after_each_line() {
        let mut r = LineReader::default();
        let (n, line) = r.read_line(b"DATA\r\nbody\r\n");
        assert_eq!(n, 6);
        assert_eq!(line.unwrap().bytes, b"DATA");
    }

    #[test]
    fn split_across_calls_including_crlf() {
        let mut r = LineReader::default();
        assert_eq!(r.read_line(b"NO"), (2, None));
        assert_eq!(r.read_line(b"OP\r"), (3, None));
        let (n, l) = r.read_line(b"\nX");
        assert_eq!(n, 1);
        assert_eq!(l.unwrap().bytes, b"NOOP");
    }

    #[test]
    fn exactly_at_limit_is_complete() {
        let mut r = LineReader::new(4);
        let lines = all_lines(&mut r, b"abcd\r\nabcd\nabcde\r\nok\r\n");
        assert_eq!(lines[0].kind, LineKind::Complete);
        assert_eq!(lines[1].kind, LineKind::Complete);
        assert_eq!(lines[2].kind, LineKind::TooLong);
        assert_eq!(lines[2].bytes, b"abcd");
        assert_eq!(lines[3].bytes, b"ok");
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn over_long_line_reported_once_and_discarded() {
        let mut r = LineReader::new(8);
        let mut input = vec![b'X'; 5000];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        let mut lines = Vec::new();
        for chunk in input.chunks(7) {
            let mut c = chunk;
            while !c.is_empty() {
                let (n, l) = r.read_line(c);
                c = &c[n..];
                lines.extend(l);
                assert!(r.buffered() <= 9);
            }
        }
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].kind, LineKind::TooLong);
        assert_eq!(lines[0].bytes, b"XXXXXXXX");
        assert_eq!(lines[1].bytes, b"NOOP");
    }

    #[test]
    fn cr_at_limit_boundary_then_non_lf() {
        let mut r = LineReader::new(4);
        let lines = all_lines(&mut r, b"abcd\rx\nok\n");
        assert_eq!(lines[0].kind, LineKind::TooLong);
        assert_eq!(lines[0].bytes, b"abcd");
        assert_eq!(lines[1].bytes, b"ok");
    }
}
