//! The message on standard input → queue-file content.
//!
//! Reading is bounded (see [`raw_cap`]); the transformation is pure
//! ([`normalize`]): a mailbox-format `From ` line at the start is dropped
//! (as Postfix's sendmail does), CR is stripped before LF, a line with a
//! single `.` ends the message unless `-i`/`-oi` was given, and a final line
//! without LF gets one. Nothing else is changed: header fixing and size policy beyond the
//! limit are cleanup's.

use std::io::Read;

/// Why the message could not be read.
#[derive(Debug)]
pub enum InputError {
    /// Larger than `message_size_limit`.
    TooBig,
    /// Reading stdin failed.
    Io(std::io::Error),
}

/// How many raw bytes may be read for a size limit (`0` = unlimited): CRLF
/// input can be twice the content, plus slack for the terminating dot line.
pub fn raw_cap(limit: u64) -> u64 {
    if limit == 0 {
        u64::MAX
    } else {
        limit.saturating_mul(2).saturating_add(1 << 20)
    }
}

/// Reads the whole message from `r` and normalises it.
pub fn read_message(r: &mut impl Read, dot_ends: bool, limit: u64) -> Result<Vec<u8>, InputError> {
    let cap = raw_cap(limit);
    let mut raw = Vec::new();
    r.take(cap.saturating_add(1))
        .read_to_end(&mut raw)
        .map_err(InputError::Io)?;
    if raw.len() as u64 > cap {
        return Err(InputError::TooBig);
    }
    let content = normalize(&raw, dot_ends);
    if limit != 0 && content.len() as u64 > limit {
        return Err(InputError::TooBig);
    }
    Ok(content)
}

/// Leading `From ` line dropped, CRLF → LF, optional dot termination, final LF.
pub fn normalize(raw: &[u8], dot_ends: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 1);
    for (n, line) in raw.split_inclusive(|&b| b == b'\n').enumerate() {
        if n == 0 && line.starts_with(b"From ") {
            continue;
        }
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if dot_ends && body == b"." {
            return out; // also a "." at the end of input without LF
        }
        out.extend_from_slice(body);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_and_final_newline() {
        assert_eq!(normalize(b"a\r\nb\r\n", true), b"a\nb\n");
        assert_eq!(normalize(b"a\nb", true), b"a\nb\n");
        assert_eq!(normalize(b"a\rb\n", true), b"a\rb\n");
        assert_eq!(normalize(b"", true), b"");
    }

    #[test]
    fn leading_mailbox_from_line_is_dropped() {
        assert_eq!(
            normalize(
                b"From a@b Sat Dec  5 10:00:00 2026\nSubject: x\n\nFrom c\n",
                true
            ),
            b"Subject: x\n\nFrom c\n"
        );
        assert_eq!(normalize(b"From: a@b\n", true), b"From: a@b\n");
    }

    #[test]
    fn dot_termination() {
        assert_eq!(normalize(b"a\n.\nafter\n", true), b"a\n");
        assert_eq!(normalize(b"a\r\n.\r\nafter\n", true), b"a\n");
        assert_eq!(normalize(b"a\n.", true), b"a\n");
        assert_eq!(normalize(b"a\n..\nb\n", true), b"a\n..\nb\n");
        assert_eq!(normalize(b"a\n. \n", true), b"a\n. \n");
        assert_eq!(normalize(b"a\n.\nafter\n", false), b"a\n.\nafter\n");
    }

    #[test]
    fn headerless_message_is_fine() {
        assert_eq!(normalize(b"just a body\n", true), b"just a body\n");
    }

    #[test]
    fn size_limit() {
        let msg = [b'a'; 100];
        assert!(matches!(
            read_message(&mut &msg[..], true, 50),
            Err(InputError::TooBig)
        ));
        assert_eq!(read_message(&mut &msg[..], true, 101).unwrap().len(), 101);
        assert_eq!(read_message(&mut &msg[..], true, 0).unwrap().len(), 101);
        // CRLF input counts after conversion.
        let crlf = b"ab\r\n".repeat(10);
        assert_eq!(read_message(&mut &crlf[..], true, 30).unwrap().len(), 30);
        let huge = vec![b'\n'; 3 * 1024 * 1024];
        assert!(matches!(
            read_message(&mut &huge[..], false, 10),
            Err(InputError::TooBig)
        ));
    }
}
