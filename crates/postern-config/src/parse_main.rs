//! main.cf syntax: logical lines and `name = value` entries.
//!
//! Rules (postconf(5)): a line whose first non-blank character is `#` is a comment; blank and
//! comment lines are ignored everywhere (they do not end a logical line); a line starting with
//! whitespace continues the previous logical line and is joined to it with one space; every
//! other line starts a logical line `name = value`, with whitespace around `=` and trailing
//! whitespace removed. Names consist of ASCII letters, digits, `_`, `-`, `.` and `/`.
//!
//! # Errors
//!
//! Every problem is reported with the 1-based number of the first physical line of its logical
//! line: a line without `=`, an empty or invalid name, a continuation before any parameter, or a
//! logical line longer than [`MAX_LOGICAL_LINE`]. Parsing continues after an error so that all
//! problems are reported at once.
//!
//! # Security
//!
//! Pure function over text; bounded line length; no panics on any input.

use crate::{MainCf, MainEntry, ParseError};

/// Longest accepted logical line, in bytes.
pub const MAX_LOGICAL_LINE: usize = 1 << 20;

/// One logical line: the number of its first physical line and its joined text.
#[derive(Debug)]
pub(crate) struct Logical {
    pub line: usize,
    pub text: String,
    /// Set once the line exceeded [`MAX_LOGICAL_LINE`] (reported once, then dropped).
    pub too_long: bool,
}

/// Splits text into logical lines (shared by main.cf and master.cf parsing). A continuation
/// before the first logical line yields an error.
pub(crate) fn logical_lines(text: &str) -> (Vec<Logical>, Vec<ParseError>) {
    let mut lines: Vec<Logical> = Vec::new();
    let mut errors = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let number = idx + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let continues = raw.starts_with(|c: char| c.is_whitespace());
        match lines.last_mut() {
            Some(last) if continues => {
                if last.too_long {
                    continue;
                }
                if last.text.len() + trimmed.len() < MAX_LOGICAL_LINE {
                    last.text.push(' ');
                    last.text.push_str(trimmed);
                } else {
                    errors.push(err(last.line, "logical line too long"));
                    last.too_long = true;
                    last.text.clear();
                }
            }
            None if continues => errors.push(err(number, "continuation line before any parameter")),
            _ if trimmed.len() >= MAX_LOGICAL_LINE => {
                errors.push(err(number, "logical line too long"));
                lines.push(Logical {
                    line: number,
                    text: String::new(),
                    too_long: true,
                });
            }
            _ => lines.push(Logical {
                line: number,
                text: trimmed.to_string(),
                too_long: false,
            }),
        }
    }
    // A line that was too long has already been reported.
    lines.retain(|l| !l.too_long);
    (lines, errors)
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// Whether `name` is a syntactically valid main.cf parameter name.
pub fn valid_param_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'/'))
}

/// Splits `name = value`; the error message says what is wrong.
pub fn split_name_value(text: &str) -> Result<(&str, &str), String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!(
            "missing '=' after parameter name: {:?}",
            truncate(text)
        ));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err("empty parameter name".to_string());
    }
    if !valid_param_name(name) {
        return Err(format!("invalid parameter name: {:?}", truncate(name)));
    }
    Ok((name, value.trim()))
}

/// At most 60 characters of `s`, for error messages.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(60) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// See [`crate::parse_main_cf`].
pub(crate) fn parse(text: &str) -> Result<MainCf, Vec<ParseError>> {
    let (lines, mut errors) = logical_lines(text);
    let mut entries = Vec::with_capacity(lines.len());
    for l in lines {
        match split_name_value(&l.text) {
            Ok((name, value)) => entries.push(MainEntry {
                name: name.to_string(),
                value: value.to_string(),
                line: l.line,
            }),
            Err(message) => errors.push(err(l.line, message)),
        }
    }
    if errors.is_empty() {
        Ok(MainCf { entries })
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<(String, String, usize)> {
        parse(text)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| (e.name, e.value, e.line))
            .collect()
    }
    fn s(n: &str, v: &str, l: usize) -> (String, String, usize) {
        (n.to_string(), v.to_string(), l)
    }

    #[test]
    fn basic_and_comments() {
        let t = "# comment\n\n  # indented comment\nmyhostname = mx.example  \nempty =\nx=y=z\r\n";
        assert_eq!(
            entries(t),
            [
                s("myhostname", "mx.example", 4),
                s("empty", "", 5),
                s("x", "y=z", 6)
            ]
        );
    }

    #[test]
    fn hash_inside_value_is_kept() {
        assert_eq!(
            entries("a = b # not a comment"),
            [s("a", "b # not a comment", 1)]
        );
    }

    #[test]
    fn continuation() {
        let t = "mydestination = a,\n\tb,\n# comment inside\n\n    c\nnext = 1\n";
        assert_eq!(
            entries(t),
            [s("mydestination", "a, b, c", 1), s("next", "1", 6)]
        );
        assert_eq!(entries("a =\n  b"), [s("a", "b", 1)]);
    }

    #[test]
    fn duplicates_are_kept_in_order() {
        assert_eq!(entries("a = 1\na = 2"), [s("a", "1", 1), s("a", "2", 2)]);
    }

    #[test]
    fn errors_name_lines() {
        let e = parse("  a = b\nok = 1\nno equals here\n= v\nbad name = x\n").unwrap_err();
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 3, 4, 5]);
        assert!(e[0].message.contains("continuation"));
        assert!(e[1].message.contains("missing '='"));
        assert!(e[2].message.contains("empty parameter name"));
        assert!(e[3].message.contains("invalid parameter name"));
        assert_eq!(
            e[1].to_string(),
            "line 3: missing '=' after parameter name: \"no equals here\""
        );
    }

    #[test]
    fn too_long_is_an_error_not_a_panic() {
        let mut t = String::from("a = b\n");
        let chunk = format!(" {}\n", "x".repeat(1000));
        for _ in 0..1100 {
            t.push_str(&chunk);
        }
        let e = parse(&t).unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].message.contains("too long"));
    }
}
