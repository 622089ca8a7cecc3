//! QMQP's framing (pure): one netstring `LEN:DATA,` holding the message
//! netstring, the sender netstring and one netstring per recipient.

/// Why a QMQP request could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not a netstring (bad length, missing `:` or `,`).
    Syntax,
    /// The length exceeds the limit.
    TooBig,
    /// Fewer than a message, a sender and one recipient.
    MissingField,
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Message content (RFC 5322, LF line endings as sent by qmail clients).
    pub message: Vec<u8>,
    /// Envelope sender.
    pub sender: Vec<u8>,
    /// Envelope recipients.
    pub recipients: Vec<Vec<u8>>,
}

/// Parses the length prefix `LEN:` at the start of `buf`. `Ok(None)`: need more.
pub fn header(buf: &[u8], limit: usize) -> Result<Option<(usize, usize)>, Error> {
    let Some(colon) = buf.iter().take(21).position(|&b| b == b':') else {
        return if buf.len() > 20 || buf.iter().any(|b| !b.is_ascii_digit()) {
            Err(Error::Syntax)
        } else {
            Ok(None)
        };
    };
    let digits = &buf[..colon];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Error::Syntax);
    }
    let len: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Error::TooBig)?;
    if len > limit {
        return Err(Error::TooBig);
    }
    Ok(Some((colon + 1, len)))
}

/// Splits a netstring at the start of `buf`; returns (payload, rest).
fn split(buf: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let (start, len) = header(buf, buf.len())
        .map_err(|_| Error::Syntax)?
        .ok_or(Error::Syntax)?;
    let end = start.checked_add(len).ok_or(Error::Syntax)?;
    if buf.len() <= end || buf[end] != b',' {
        return Err(Error::Syntax);
    }
    Ok((&buf[start..end], &buf[end + 1..]))
}

/// Decodes the payload of the outer netstring.
pub fn parse(payload: &[u8]) -> Result<Request, Error> {
    let (message, rest) = split(payload).map_err(|_| Error::MissingField)?;
    let (sender, mut rest) = split(rest).map_err(|_| Error::MissingField)?;
    let mut recipients = Vec::new();
    while !rest.is_empty() {
        let (r, more) = split(rest)?;
        recipients.push(r.to_vec());
        rest = more;
    }
    if recipients.is_empty() {
        return Err(Error::MissingField);
    }
    Ok(Request {
        message: message.to_vec(),
        sender: sender.to_vec(),
        recipients,
    })
}

/// Encodes a reply netstring (`K`, `Z` or `D` followed by text).
pub fn reply(kind: char, text: &str) -> Vec<u8> {
    let body = format!("{kind}{text}");
    format!("{}:{body},", body.len()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let inner = b"5:hello,3:a@b,3:c@d,3:e@f,";
        let r = parse(inner).unwrap();
        assert_eq!(r.message, b"hello");
        assert_eq!(r.recipients.len(), 2);
        assert_eq!(header(b"26:xx", 100), Ok(Some((3, 26))));
        assert_eq!(header(b"26", 100), Ok(None));
        assert_eq!(header(b"9999:", 100), Err(Error::TooBig));
        assert_eq!(header(b"x:", 100), Err(Error::Syntax));
        assert_eq!(parse(b"5:hello,3:a@b,"), Err(Error::MissingField));
        assert_eq!(parse(b"5:hello,3:a@b,9:c,"), Err(Error::Syntax));
        assert_eq!(reply('K', "ok"), b"3:Kok,");
        for n in 0..200u32 {
            let junk: Vec<u8> = (0..(n % 23)).map(|i| (n * 7 + i * 13) as u8).collect();
            let _no_panic = parse(&junk).is_ok() || header(&junk, 10).is_ok();
        }
    }
}
