//! Per-recipient `$name` expansion of `forward_path`, `luser_relay`,
//! `mailbox_command` and `command_execution_directory` (Postfix's
//! `local_expand`).
//!
//! Grammar: `$$` is a `$`; `$name`, `${name}` and `$(name)` insert a value;
//! `${name?text}` inserts `text` (itself expanded) when `name` has a non-empty
//! value, `${name:text}` when it has none, and `${name?{a}:{b}}` chooses.
//! Names are `user`, `home`, `shell`, `domain`, `local`, `mailbox`,
//! `recipient`, `extension`, `recipient_delimiter` (see [`Vars`]); any other
//! name has no value.
//!
//! A plain reference to a name without value marks the result
//! [`Expanded::undefined`] (so `forward_path` skips that entry); bad syntax
//! marks it [`Expanded::error`]. A plain reference to `extension` sets
//! [`Expanded::extension_used`].
//!
//! # Security
//! Values come from the recipient address (network input). With a filter,
//! every character of an inserted value that is not in the filter becomes
//! `_`, so an address cannot smuggle shell or path syntax into a command or
//! file name. Pure code: nesting is bounded by [`MAX_DEPTH`], output by
//! [`MAX_OUTPUT`], and nothing panics.

/// Deepest nesting of `${name?…}` texts.
pub const MAX_DEPTH: usize = 16;
/// Longest expansion result.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// The values a pattern can refer to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    /// Local part without extension.
    pub user: String,
    /// Home directory (None: unknown).
    pub home: Option<String>,
    /// Login shell.
    pub shell: Option<String>,
    /// Recipient domain.
    pub domain: Option<String>,
    /// Local part with extension.
    pub local: String,
    /// Full recipient address.
    pub recipient: String,
    /// Address extension.
    pub extension: Option<String>,
    /// The delimiter that separated the extension (or the first configured one).
    pub recipient_delimiter: Option<String>,
}

impl Vars {
    fn get(&self, name: &str) -> Option<&str> {
        let v = match name {
            "user" => Some(&self.user),
            "home" => self.home.as_ref(),
            "shell" => self.shell.as_ref(),
            "domain" => self.domain.as_ref(),
            "local" | "mailbox" => Some(&self.local),
            "recipient" => Some(&self.recipient),
            "extension" => self.extension.as_ref(),
            "recipient_delimiter" => self.recipient_delimiter.as_ref(),
            _ => None,
        };
        v.map(String::as_str)
    }
}

/// The result of [`expand`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    /// The expanded text.
    pub text: String,
    /// A plain reference named something without a value.
    pub undefined: bool,
    /// Bad syntax (an unclosed bracket, an empty name).
    pub error: bool,
    /// `$extension` was inserted.
    pub extension_used: bool,
}

/// Expands `pattern`; inserted values are censored with `filter` when given.
pub fn expand(pattern: &str, vars: &Vars, filter: Option<&str>) -> Expanded {
    let mut out = Expanded::default();
    let mut text = String::new();
    walk(pattern, vars, filter, 0, &mut text, &mut out);
    if text.len() > MAX_OUTPUT {
        let mut cut = MAX_OUTPUT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        out.error = true;
    }
    out.text = text;
    out
}

fn is_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Index of the bracket closing the one opened just before `s` (depth 1).
fn closing(s: &str, open: char, close: char) -> Option<usize> {
    let mut depth = 1usize;
    for (i, c) in s.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

fn push_value(v: &str, filter: Option<&str>, text: &mut String) {
    match filter {
        Some(f) => text.extend(v.chars().map(|c| if f.contains(c) { c } else { '_' })),
        None => text.push_str(v),
    }
}

/// `{a}` → `a`; anything else unchanged.
fn unbrace(s: &str) -> &str {
    let t = s.trim();
    t.strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(s)
}

fn walk(
    pat: &str,
    vars: &Vars,
    filter: Option<&str>,
    depth: usize,
    text: &mut String,
    out: &mut Expanded,
) {
    if depth > MAX_DEPTH {
        out.error = true;
        return;
    }
    let mut rest = pat;
    while let Some(i) = rest.find('$') {
        if text.len() > MAX_OUTPUT {
            return;
        }
        text.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(c) = after.chars().next() else {
            text.push('$');
            return;
        };
        match c {
            '$' => {
                text.push('$');
                rest = &after[1..];
            }
            '{' | '(' => {
                let close = if c == '{' { '}' } else { ')' };
                let Some(end) = closing(&after[1..], c, close) else {
                    out.error = true;
                    return;
                };
                bracketed(&after[1..1 + end], vars, filter, depth, text, out);
                rest = &after[1 + end + 1..];
            }
            c if is_name(c) => {
                let end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
                reference(&after[..end], vars, filter, text, out);
                rest = &after[end..];
            }
            _ => {
                text.push('$');
                rest = after;
            }
        }
    }
    text.push_str(rest);
}

fn reference(name: &str, vars: &Vars, filter: Option<&str>, text: &mut String, out: &mut Expanded) {
    match vars.get(name) {
        Some(v) => {
            if name == "extension" {
                out.extension_used = true;
            }
            push_value(v, filter, text);
        }
        None => out.undefined = true,
    }
}

fn bracketed(
    inner: &str,
    vars: &Vars,
    filter: Option<&str>,
    depth: usize,
    text: &mut String,
    out: &mut Expanded,
) {
    let end = inner.find(|c: char| !is_name(c)).unwrap_or(inner.len());
    let (name, tail) = inner.split_at(end);
    if name.is_empty() {
        out.error = true;
        return;
    }
    let Some(op) = tail.chars().next() else {
        return reference(name, vars, filter, text, out);
    };
    let arg = &tail[op.len_utf8()..];
    let has_value = vars.get(name).is_some_and(|v| !v.is_empty());
    match op {
        '?' => {
            // `?{a}:{b}` or `?text`.
            let (a, b) = match split_alternatives(arg) {
                Some((a, b)) => (a, Some(b)),
                None => (arg, None),
            };
            if has_value {
                walk(unbrace(a), vars, filter, depth + 1, text, out);
            } else if let Some(b) = b {
                walk(unbrace(b), vars, filter, depth + 1, text, out);
            }
        }
        ':' => {
            if !has_value {
                walk(unbrace(arg), vars, filter, depth + 1, text, out);
            }
        }
        _ => out.error = true,
    }
}

/// Splits `{a}:{b}` (spaces allowed around the parts).
fn split_alternatives(arg: &str) -> Option<(&str, &str)> {
    let t = arg.trim_start();
    let body = t.strip_prefix('{')?;
    let end = closing(body, '{', '}')?;
    let after = body[end + 1..].trim_start().strip_prefix(':')?;
    let b = after.trim();
    if b.starts_with('{') && b.ends_with('}') {
        Some((&t[..end + 2], b))
    } else {
        None
    }
}

/// Fuzz entry point: expands `data` (lossy UTF-8) against fixed values.
pub fn fuzz(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let vars = Vars {
        user: "u".into(),
        home: Some("/h".into()),
        extension: Some("e;x".into()),
        ..Vars::default()
    };
    let e = expand(&s, &vars, Some("abc"));
    assert!(e.text.len() <= MAX_OUTPUT);
    let _unused = expand(&s, &vars, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            user: "bob".into(),
            home: Some("/home/bob".into()),
            shell: Some("/bin/sh".into()),
            domain: Some("example.org".into()),
            local: "bob+list".into(),
            recipient: "bob+list@example.org".into(),
            extension: Some("list".into()),
            recipient_delimiter: Some("+".into()),
        }
    }

    #[test]
    fn forward_path_default() {
        let p = "$home/.forward${recipient_delimiter}${extension}";
        let e = expand(
            p,
            &vars(),
            Some(
                crate::settings::LocalSettings::default()
                    .forward_expansion_filter
                    .as_str(),
            ),
        );
        assert_eq!(e.text, "/home/bob/.forward+list");
        assert!(e.extension_used && !e.undefined && !e.error);
        let mut v = vars();
        v.extension = None;
        let e = expand(p, &v, None);
        assert!(e.undefined, "{e:?}");
        assert_eq!(
            expand("$home/.forward", &v, None).text,
            "/home/bob/.forward"
        );
    }

    #[test]
    fn conditionals_and_literals() {
        let v = vars();
        assert_eq!(expand("a$$b", &v, None).text, "a$b");
        assert_eq!(expand("${extension?-$extension}", &v, None).text, "-list");
        assert_eq!(expand("${nothing?x}${nothing:y}", &v, None).text, "y");
        assert_eq!(expand("${extension?{A}:{B}}", &v, None).text, "A");
        assert_eq!(expand("${nothing?{A}:{B}}", &v, None).text, "B");
        assert_eq!(expand("$(user)@$domain", &v, None).text, "bob@example.org");
        assert!(expand("${user", &v, None).error);
        assert!(expand("${?x}", &v, None).error);
        assert_eq!(expand("50$", &v, None).text, "50$");
    }

    #[test]
    fn filter_censors_values_only() {
        let mut v = vars();
        v.extension = Some("x;rm -rf /".into());
        let e = expand(
            "|/bin/x $extension;",
            &v,
            Some("abcdefghijklmnopqrstuvwxyz/"),
        );
        assert_eq!(e.text, "|/bin/x x_rm__rf_/;");
    }

    #[test]
    fn fuzz_smoke() {
        for s in [
            "${${${",
            "$(((",
            "${a?{b}:{c}",
            "${user?{${home?{x}}}}",
            "$",
        ] {
            fuzz(s.as_bytes());
        }
    }
}
