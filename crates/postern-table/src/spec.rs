//! Parsing table specs: `type:name`, `type:{ … }`, and the brace-aware token lists inside
//! `inline:{…}`, `unionmap:{…}` and `regexp:{ {rule}, … }`.

use crate::TableError;

/// Splits `type:name`. The type is lower-case letters, digits, `_` and `-`.
pub(crate) fn split_type(spec: &str) -> Result<(&str, &str), TableError> {
    let expecting = || {
        TableError::bad_spec(
            spec,
            format!("open dictionary: expecting \"type:name\" form instead of \"{spec}\""),
        )
    };
    let (kind, name) = spec.split_once(':').ok_or_else(expecting)?;
    let kind_ok = !kind.is_empty()
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !kind_ok || name.is_empty() {
        return Err(expecting());
    }
    Ok((kind, name))
}

/// If `name` is `{…}`, returns the text between the braces with surrounding whitespace
/// removed; `Ok(None)` when it does not start with `{`.
pub(crate) fn braced(spec: &str, name: &str) -> Result<Option<String>, TableError> {
    if !name.starts_with('{') {
        return Ok(None);
    }
    match matching_brace(name, 0) {
        Some(end) if end == name.len() - 1 => Ok(Some(name[1..end].trim().to_string())),
        Some(_) => Err(TableError::spec(spec, "text after closing '}'")),
        None => Err(TableError::spec(spec, "missing closing '}'")),
    }
}

/// Index of the `}` that closes the `{` at `open`.
fn matching_brace(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits a list on commas and whitespace, keeping `{…}` groups (anywhere in a token)
/// together. Unbalanced braces are an error.
pub(crate) fn tokens<'a>(spec: &str, text: &'a str) -> Result<Vec<&'a str>, TableError> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        let sep = depth == 0 && (c == ',' || c.is_ascii_whitespace());
        if sep {
            if let Some(s) = start.take() {
                out.push(&text[s..i]);
            }
            continue;
        }
        start.get_or_insert(i);
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Err(TableError::spec(spec, "unbalanced '}'")),
            '}' => depth -= 1,
            _ => {}
        }
    }
    if depth != 0 {
        return Err(TableError::spec(spec, "missing closing '}'"));
    }
    out.extend(start.map(|s| &text[s..]));
    Ok(out)
}

/// For a token that is a whole `{…}` group, the text inside with whitespace trimmed.
pub(crate) fn unbrace(token: &str) -> Option<&str> {
    let inner = token.strip_prefix('{')?.strip_suffix('}')?;
    (matching_brace(token, 0) == Some(token.len() - 1)).then(|| inner.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split() {
        assert_eq!(split_type("hash:/etc/x").unwrap(), ("hash", "/etc/x"));
        assert_eq!(split_type("inline:{a=b}").unwrap(), ("inline", "{a=b}"));
        assert!(split_type("static:").is_err());
        assert!(split_type("/etc/x").is_err());
        assert!(split_type(":x").is_err());
    }

    #[test]
    fn braces() {
        assert_eq!(braced("s", "{ a b }").unwrap().as_deref(), Some("a b"));
        assert_eq!(braced("s", "plain").unwrap(), None);
        assert!(braced("s", "{a}b").is_err());
        assert!(braced("s", "{a").is_err());
    }

    #[test]
    fn token_lists() {
        let got = tokens("s", " a=b, { k = v w },inline:{x=1, y=2}\tz ").unwrap();
        assert_eq!(got, vec!["a=b", "{ k = v w }", "inline:{x=1, y=2}", "z"]);
        assert!(tokens("s", "a}").is_err());
        assert!(tokens("s", "{a").is_err());
        assert_eq!(unbrace("{ x }"), Some("x"));
        assert_eq!(unbrace("{a}{b}"), None);
    }
}
