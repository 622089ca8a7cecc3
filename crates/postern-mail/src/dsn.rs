//! RFC 3463 enhanced status codes at the start of a text, as Postfix's
//! `dsn_valid()` and `dsn_split()` read them.
//!
//! Used where a status code may lead free text: the next hop of the `error`,
//! `retry` and `discard` transports (`error:5.1.1 Mailbox unavailable`) and
//! the output of a `pipe` command (`4.2.2 over quota`).
//!
//! A code is `C.S.D` with class `C` one of `2`, `4`, `5`, a subject of one to
//! three digits and a detail of one to three digits, followed by the end of
//! the text or white space.
//!
//! # Security
//! Pure and linear in the input; never panics.

/// Length of the status code at the very start of `text`, or 0 when there is none.
pub fn valid(text: &str) -> usize {
    let b = text.as_bytes();
    if b.len() < 2 || !matches!(b[0], b'2' | b'4' | b'5') || b[1] != b'.' {
        return 0;
    }
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let n2 = digits(2);
    if !(1..=3).contains(&n2) || b.get(2 + n2) != Some(&b'.') {
        return 0;
    }
    let start3 = 3 + n2;
    let n3 = digits(start3);
    let end = start3 + n3;
    if !(1..=3).contains(&n3) || b.get(end).is_some_and(|c| !c.is_ascii_whitespace()) {
        return 0;
    }
    end
}

/// Splits `text` into a status code and the remaining free text (both trimmed
/// of the white space between them): the code at the start of `text`, else
/// `default`.
pub fn split<'a>(default: &str, text: &'a str) -> (String, &'a str) {
    let t = text.trim_start();
    let n = valid(t);
    if n > 0 {
        (t[..n].to_string(), t[n..].trim_start())
    } else {
        (default.to_string(), t)
    }
}

/// `status` when it belongs to `class` (`'2'`, `'4'` or `'5'`), else
/// `<class>.0.0`: a bounce never carries a 4.x.x code, a deferral never a
/// 5.x.x code (Postfix's `bounce_append`/`defer_append`/`sent` do the same,
/// with an "ignoring dsn code" warning).
pub fn for_class(status: &str, class: char) -> Option<String> {
    if status.starts_with(class) && valid(status) == status.len() {
        None
    } else {
        Some(format!("{class}.0.0"))
    }
}

/// Runs [`split`] and [`valid`] over arbitrary bytes (fuzz entry point).
pub fn fuzz(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let n = valid(&text);
    assert!(n <= text.len());
    let (code, rest) = split("5.0.0", &text);
    assert!(valid(&code) == code.len() && rest.len() <= text.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(valid("5.1.1 Mailbox unavailable"), 5);
        assert_eq!(valid("4.123.456"), 9);
        assert_eq!(valid("2.0.0\tx"), 5);
        for bad in [
            "3.0.0", "5.1.1x", "5..1", "5.1234.1", "5.1.", "5", "", "5.1.1234", "x",
        ] {
            assert_eq!(valid(bad), 0, "{bad}");
        }
    }

    #[test]
    fn splitting() {
        assert_eq!(
            split("5.0.0", "  5.1.1   Mailbox unavailable"),
            ("5.1.1".to_string(), "Mailbox unavailable")
        );
        assert_eq!(
            split("4.0.0", "try later"),
            ("4.0.0".to_string(), "try later")
        );
        assert_eq!(split("5.0.0", "5.7.1"), ("5.7.1".to_string(), ""));
        assert_eq!(for_class("5.1.1", '5'), None);
        assert_eq!(for_class("4.1.1", '5').as_deref(), Some("5.0.0"));
        assert_eq!(for_class("5.1.1", '2').as_deref(), Some("2.0.0"));
        fuzz(b"5.1.1\xff\xfe");
    }
}
