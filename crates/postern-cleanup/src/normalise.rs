//! Message normalisation before the header is processed (pure), as Postfix's
//! cleanup does it, so that what is delivered matches Postfix byte for byte.
//!
//! * A CR before LF is dropped and every other (bare) CR becomes a space.
//! * A mailbox-format `From ` line at the very start of the message becomes
//!   the header `X-Mailbox-Line: From …` (Postfix's sendmail drops it before
//!   cleanup sees it; over SMTP it arrives here), so that the real header
//!   lines after it stay header lines; it takes no continuation lines.
//! * Where the header ends at a line that is not a header line, an empty line
//!   is inserted before it, so that the result reads the same to
//!   [`postern_mail::header`].
//! * In the header: a line is cut at its first NUL byte; white space between
//!   a header name and its colon is removed (`Subject :` → `Subject:`).
//! * `header_size_limit` applies to each header separately: a header is cut
//!   before the first (continuation) line that would make it longer than the
//!   limit, and its remaining continuation lines are dropped; the headers
//!   after it are kept. A message is never refused for a big header block.
//!
//! The body is left alone apart from the CR handling; NUL bytes in the body
//! are kept, as Postfix keeps them.
//!
//! # Security
//! No I/O, no panics on any input, one linear pass; the output is never longer
//! than the input plus the `X-Mailbox-Line: ` prefix and one empty line.
//!
//! # Configuration
//! `header_size_limit` (passed in).

use postern_mail::header::header_name_len;

const MAILBOX_LINE: &[u8] = b"X-Mailbox-Line: ";

/// Normalises `content` (see the module doc); `header_limit` is
/// `header_size_limit` in bytes.
pub fn content(content: &[u8], header_limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + MAILBOX_LINE.len());
    let mut in_header = true;
    // Length of the current header so far (lines joined by LF), and whether
    // its remaining continuation lines are being dropped.
    let mut cur: Option<(usize, bool)> = None;
    let mut line_buf = Vec::new();
    for (n, raw) in content.split_inclusive(|&b| b == b'\n').enumerate() {
        let has_lf = raw.ends_with(b"\n");
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        line_buf.clear();
        line_buf.extend(line.iter().map(|&b| if b == b'\r' { b' ' } else { b }));
        let line = &mut line_buf;
        let mailbox_line = n == 0 && line.starts_with(b"From ");
        if mailbox_line {
            line.splice(0..0, MAILBOX_LINE.iter().copied());
        }
        if in_header {
            let cont = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
            if line.is_empty() && has_lf {
                in_header = false;
            } else if let (true, Some((len, dropping))) = (cont, cur.as_mut()) {
                cut_at_nul(line);
                if *dropping || *len + 1 + line.len() > header_limit {
                    *dropping = true;
                    continue;
                }
                *len += 1 + line.len();
            } else if let Some((name_len, colon_end)) = header_name_len(line) {
                line.drain(name_len..colon_end - 1);
                cut_at_nul(line);
                line.truncate(header_limit.max(name_len + 1));
                // X-Mailbox-Line takes no continuation lines (as Postfix).
                cur = (!mailbox_line).then_some((line.len(), false));
            } else {
                // The header ends at a line that is not a header: make the
                // separating empty line explicit, so that the result parses alike.
                in_header = false;
                out.push(b'\n');
            }
        }
        out.extend_from_slice(line);
        if has_lf {
            out.push(b'\n');
        }
    }
    out
}

fn cut_at_nul(line: &mut Vec<u8>) {
    if let Some(nul) = line.iter().position(|&b| b == 0) {
        line.truncate(nul);
    }
}

/// Fuzz entry point.
pub fn fuzz(data: &[u8]) {
    let out = content(data, 64);
    assert!(out.len() <= data.len() + MAILBOX_LINE.len() + 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(c: &[u8]) -> Vec<u8> {
        content(c, 102_400)
    }

    #[test]
    fn carriage_returns() {
        assert_eq!(
            n(b"Subject: a\rb\r\n\r\nx\ry\r\nz\n"),
            b"Subject: a b\n\nx y\nz\n"
        );
    }

    #[test]
    fn mailbox_from_line_becomes_a_header() {
        assert_eq!(
            n(b"From a@b Sat Dec  5 10:00:00 2026\nSubject: x\n\nFrom me\n"),
            b"X-Mailbox-Line: From a@b Sat Dec  5 10:00:00 2026\nSubject: x\n\nFrom me\n"
        );
        // Only the first line; the header ends before a line that is not one.
        assert_eq!(n(b"Subject: x\nFrom a b\n"), b"Subject: x\n\nFrom a b\n");
        // It takes no continuation line.
        assert_eq!(
            n(b"From a\n cont\nSubject: x\n"),
            b"X-Mailbox-Line: From a\n\n cont\nSubject: x\n"
        );
    }

    #[test]
    fn header_names_nul_and_body() {
        assert_eq!(
            n(b"Subject : a\nX-T\t: b\nX-N: ab\0cd\n\nab\0cd\n"),
            b"Subject: a\nX-T: b\nX-N: ab\n\nab\0cd\n"
        );
        assert_eq!(n(b"text\0x\nSubject : a\n"), b"\ntext\0x\nSubject : a\n");
        assert_eq!(n(b""), b"");
        assert_eq!(n(b"Subject: x"), b"Subject: x");
    }

    #[test]
    fn header_limit_is_per_header() {
        let c = b"A: 12345\n 678\n 9\n 0\nB: 1\n\nbody\n";
        // "A: 12345" (8) + "\n 678" (5) = 13 fits 14; "\n 9" would make 16.
        assert_eq!(content(c, 14), b"A: 12345\n 678\nB: 1\n\nbody\n");
        let many: Vec<u8> = (0..100)
            .flat_map(|i| format!("X-{i}: v\n").into_bytes())
            .collect();
        assert_eq!(content(&many, 20), many);
        // One line longer than the limit is cut at the limit.
        assert_eq!(content(b"S: 0123456789\n\n", 8), b"S: 01234\n\n");
    }

    #[test]
    fn fuzz_smoke() {
        for s in [
            &b"\0"[..],
            b"\r",
            b"From \r\n",
            b" x\n",
            b":\n",
            b"a:\0\n \0\n",
            b"a :\r\n\t\r",
        ] {
            fuzz(s);
        }
    }

    #[test]
    fn fuzz_exhaustive_short() {
        let alpha = [b'F', b' ', b':', b'\n', b'\r', b'\0', b'\t', b'a'];
        let mut buf = Vec::new();
        for n in 0..6u32 {
            for mut k in 0..alpha.len().pow(n) {
                buf.clear();
                for _ in 0..n {
                    buf.push(alpha[k % alpha.len()]);
                    k /= alpha.len();
                }
                fuzz(&buf);
                let out = content(&buf, 3);
                // Normalising twice changes nothing more (but the From_ prefix
                // and an inserted empty line, which cannot come twice).
                assert_eq!(content(&out, 3).len(), out.len(), "{buf:?}");
            }
        }
    }
}
