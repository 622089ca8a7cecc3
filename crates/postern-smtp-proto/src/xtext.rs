//! RFC 3461 xtext, used by ENVID, ORCPT, AUTH= and XCLIENT/XFORWARD values.
//!
//! ```text
//! xtext   = *( xchar / hexchar )
//! xchar   = any ASCII CHAR between "!" (33) and "~" (126) inclusive, except "+" and "="
//! hexchar = "+" 2HEXDIG
//! ```
//!
//! Decoding deviates from the RFC in two observed Postfix leniencies: lower-case hex
//! digits (`+4a`) and a literal `=` are accepted. Everything else is strict: a `+` not
//! followed by two hex digits, a space, a control byte or an 8-bit byte is an error.

/// Decode xtext. Returns `None` on malformed input or when the decoded text is not
/// UTF-8.
pub fn decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'+' => {
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'!'..=b'~' => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// Encode as xtext: `+`, `=`, and bytes outside `!`..`~` become `+HH`.
pub fn encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input.as_bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push('+');
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        }
    }
    out
}

const HEX: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'A', 'B', 'C', 'D', 'E', 'F',
];

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// True when every char is printable ASCII (space included): Postfix's rule for a
/// decoded ENVID (`ENVID=+0A` is rejected, `ENVID=+41` accepted).
pub fn is_printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| (b' '..=b'~').contains(&b))
}

/// True when the text has no control characters (C0, DEL); UTF-8 is allowed.
pub fn has_no_controls(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_table() {
        assert_eq!(decode("a+2Bb").as_deref(), Some("a+b"));
        assert_eq!(decode("+41").as_deref(), Some("A"));
        assert_eq!(decode("+4a").as_deref(), Some("J"));
        assert_eq!(decode("a=b").as_deref(), Some("a=b"));
        assert_eq!(decode("").as_deref(), Some(""));
        assert_eq!(decode("a+zz"), None);
        assert_eq!(decode("a+2"), None);
        assert_eq!(decode("a b"), None);
        assert_eq!(decode("ü"), None);
        assert_eq!(decode("+C3+BC").as_deref(), Some("ü"));
        assert_eq!(decode("+FF"), None);
    }

    #[test]
    fn encode_round_trip() {
        for s in ["", "a+b=c", "x y", "ü@d", "<>", "\u{1}"] {
            assert_eq!(decode(&encode(s)).as_deref(), Some(s));
        }
        assert_eq!(encode("a+b"), "a+2Bb");
    }
}
