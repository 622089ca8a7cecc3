//! The `key whitespace value` line of a postmap(1) source file (and of `texthash:`).
//!
//! A key may contain whitespace when it is (partly) enclosed in double quotes or when the
//! whitespace is escaped with a backslash (`key\ with\ space`); a backslash escapes the
//! next character inside and outside quotes. The quotes and backslashes stay part of the
//! key, exactly as Postfix stores them (`"a b"@example` is looked up with its quotes), so
//! only the split point between key and value depends on them.
//!
//! # Security
//! The input is configuration text; the parser does no I/O, allocates at most two copies of
//! the line and never panics (fuzzed by `fuzz/fuzz_targets/postmap_line.rs`).

/// Why a source line is not a `key whitespace value` entry. Display is Postfix's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// No whitespace-separated value.
    #[error("expected format: key whitespace value")]
    NoValue,
    /// A `"` without its closing partner; the field is the whole line.
    #[error("unbalanced '\"' in '{0}'")]
    Unbalanced(String),
}

/// Splits one logical line (already trimmed, continuations joined) into key and value.
///
/// # Errors
/// [`EntryError::Unbalanced`] for an unterminated quote, [`EntryError::NoValue`] when there
/// is no value after the key.
pub fn parse_entry(line: &str) -> Result<(&str, &str), EntryError> {
    let line = line.trim();
    let mut quoted = false;
    let mut escaped = false;
    let mut split = None;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if !quoted && c.is_whitespace() {
            split = Some(i);
            break;
        }
    }
    if quoted {
        return Err(EntryError::Unbalanced(line.to_string()));
    }
    let Some(at) = split else {
        return Err(EntryError::NoValue);
    };
    let (key, value) = (&line[..at], line[at..].trim());
    if key.is_empty() || value.is_empty() {
        return Err(EntryError::NoValue);
    }
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_quoted_keys() {
        assert_eq!(parse_entry("a b c"), Ok(("a", "b c")));
        assert_eq!(parse_entry("a\t  b  "), Ok(("a", "b")));
        assert_eq!(parse_entry("\"a b\" v1"), Ok(("\"a b\"", "v1")));
        assert_eq!(parse_entry("\"c\\\"d\" v2"), Ok(("\"c\\\"d\"", "v2")));
        assert_eq!(parse_entry("\"x\"y v4"), Ok(("\"x\"y", "v4")));
        assert_eq!(parse_entry("\"\" v5"), Ok(("\"\"", "v5")));
        assert_eq!(parse_entry("\"e\\\\f\"\tv6"), Ok(("\"e\\\\f\"", "v6")));
        assert_eq!(parse_entry("k\\ w\\ s v7"), Ok(("k\\ w\\ s", "v7")));
        assert_eq!(parse_entry("k\\tt v8"), Ok(("k\\tt", "v8")));
        assert_eq!(parse_entry("k\\\" v9"), Ok(("k\\\"", "v9")));
    }

    #[test]
    fn errors_have_postfix_text() {
        assert_eq!(parse_entry("\"q\""), Err(EntryError::NoValue));
        assert_eq!(parse_entry("alone"), Err(EntryError::NoValue));
        let e = parse_entry("\"unterminated v3").unwrap_err();
        assert_eq!(e.to_string(), "unbalanced '\"' in '\"unterminated v3'");
        assert_eq!(
            EntryError::NoValue.to_string(),
            "expected format: key whitespace value"
        );
    }
}
