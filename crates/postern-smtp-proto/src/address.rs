//! Envelope addresses in MAIL FROM / RCPT TO / VRFY.
//!
//! ```text
//! path        = "<" [ WSP ] [ a-d-l ":" ] mailbox [ WSP ] ">"   ; source route dropped
//! a-d-l       = "@" domain *( "," "@" domain )
//! mailbox     = local-part [ "@" domain ]                          ; no domain: "Postmaster"
//! local-part  = 1*( atext / "." / UTF8-non-ascii ) / quoted-string ; ".u", "u..v" allowed
//! domain      = label *( "." label ) [ "." ] / "[" IPv4 "]" / "[IPv6:" IPv6 "]"
//! label       = ( ALPHA / DIGIT / "_" / UTF8-non-ascii ) ... , no leading/trailing "-"
//! ```
//!
//! The internal form is unquoted: `"a b"@x` becomes local part `a b`. `%` and `!` are
//! kept as they are (relay control belongs to a later layer), and `"user@other"@dom`
//! keeps its inner `@` inside the local part, where [`Mailbox::domain`] cannot confuse
//! it with the real domain.
//!
//! # Differences from Postfix (deliberate, stricter)
//!
//! Postfix parses envelope addresses with its RFC 822 tokenizer and accepts, for
//! example, `<<a@b>>`, `a@b>`, `<u(comment)@d>`, `<u @d>`, `<a\b@c>`,
//! `<@d>`, `<@a:@b:u@d>` and control bytes. These are rejected here as bad address
//! syntax: none comes from a real MTA, and several are relay-test tricks. Two forms
//! Postfix accepts are accepted as Postfix does: more than one unquoted `@` (the domain
//! follows the last one: `a@b@c` is `"a@b"@c`) and an empty quoted local part (`""@d`,
//! internal form `@d`); relay control sees the real domain in both.

use core::net::{Ipv4Addr, Ipv6Addr};

/// A mailbox in internal (unquoted) form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    local: String,
    domain: Option<String>,
}

/// MAIL FROM's argument: a mailbox or the null sender `<>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReversePath {
    /// `<>`.
    Null,
    /// A real sender.
    Mailbox(Mailbox),
}

impl Mailbox {
    /// Build from parts, validating them as the parser would (an empty local part only
    /// with a domain: `""@domain`).
    pub fn new(local: &str, domain: Option<&str>) -> Option<Mailbox> {
        let local_ok = valid_local(local) || (local.is_empty() && domain.is_some());
        if !local_ok || domain.is_some_and(|d| !valid_domain(d)) {
            return None;
        }
        Some(Mailbox {
            local: local.to_owned(),
            domain: domain.map(str::to_owned),
        })
    }

    /// Local part, unquoted.
    pub fn local_part(&self) -> &str {
        &self.local
    }

    /// Domain (an address literal keeps its brackets), if any.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// Internal form `local@domain` (or `local`), as Postfix logs it.
    pub fn internal(&self) -> String {
        match &self.domain {
            Some(d) => format!("{}@{}", self.local, d),
            None => self.local.clone(),
        }
    }

    /// True if the address has non-ASCII characters (needs SMTPUTF8).
    pub fn is_utf8(&self) -> bool {
        !self.local.is_ascii() || self.domain.as_deref().is_some_and(|d| !d.is_ascii())
    }

    /// Wire form inside angle brackets, quoting the local part where needed.
    pub fn to_smtp(&self) -> String {
        let mut s = String::from("<");
        if !self.local.is_empty() && self.local.bytes().all(is_unquoted_byte) {
            s.push_str(&self.local);
        } else {
            s.push('"');
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    s.push('\\');
                }
                s.push(c);
            }
            s.push('"');
        }
        if let Some(d) = &self.domain {
            s.push('@');
            s.push_str(d);
        }
        s.push('>');
        s
    }
}

impl ReversePath {
    /// Wire form: `<>` or the mailbox's.
    pub fn to_smtp(&self) -> String {
        match self {
            ReversePath::Null => "<>".to_owned(),
            ReversePath::Mailbox(m) => m.to_smtp(),
        }
    }
}

/// Result of splitting the address token off a MAIL/RCPT argument.
pub(crate) struct Split<'a> {
    pub path: &'a str,
    pub rest: &'a str,
    pub bracketed: bool,
}

/// Split `<path> params…` or `bare-path params…`. `None`: unbalanced brackets or
/// junk glued to `>`.
pub(crate) fn split_path(arg: &str) -> Option<Split<'_>> {
    let b = arg.as_bytes();
    let bracketed = b.first() == Some(&b'<');
    let end = scan_token(b, bracketed)?;
    let (path, rest) = if bracketed {
        if b.get(end) != Some(&b'>') {
            return None;
        }
        (&arg[1..end], &arg[end + 1..])
    } else {
        (&arg[..end], &arg[end..])
    };
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    if !bracketed && path.contains('>') {
        return None;
    }
    Some(Split {
        path,
        rest,
        bracketed,
    })
}

/// Index of the closing `>` (bracketed) or of the first blank (bare), skipping
/// quoted strings.
fn scan_token(b: &[u8], bracketed: bool) -> Option<usize> {
    let mut i = usize::from(bracketed);
    let mut quoted = false;
    while i < b.len() {
        match (quoted, b[i]) {
            (true, b'\\') => i += 1,
            (_, b'"') => quoted = !quoted,
            (false, b'>') if bracketed => return Some(i),
            (false, b'<') => return None,
            (false, b' ' | b'\t') if !bracketed => return Some(i),
            _ => {}
        }
        i += 1;
    }
    if bracketed || quoted {
        None
    } else {
        Some(b.len())
    }
}

/// Parse the inside of a path. `Ok(None)` is the null path.
pub(crate) fn parse_path(path: &str) -> Result<Option<Mailbox>, ()> {
    let path = path.trim_matches([' ', '\t']);
    if path.is_empty() {
        return Ok(None);
    }
    let mailbox = strip_source_route(path)?;
    let (local, domain, quoted) = split_mailbox(mailbox)?;
    // `""@domain` (an empty quoted local part) is an address Postfix accepts.
    if domain.is_some_and(|d| !valid_domain(d)) || (local.is_empty() && !quoted) {
        return Err(());
    }
    Ok(Some(Mailbox {
        local,
        domain: domain.map(str::to_owned),
    }))
}

fn strip_source_route(path: &str) -> Result<&str, ()> {
    if !path.starts_with('@') {
        return Ok(path);
    }
    let colon = path.find(':').ok_or(())?;
    for hop in path[..colon].split(',') {
        let d = hop.strip_prefix('@').ok_or(())?;
        if !valid_domain(d) {
            return Err(());
        }
    }
    Ok(&path[colon + 1..])
}

/// Split into unquoted local part, domain text, and whether the local part was quoted.
/// Unquoted, the domain follows the last `@` (as Postfix: `user@host@other` is local
/// part `user@host` in domain `other`, the same address as `"user@host"@other`).
fn split_mailbox(s: &str) -> Result<(String, Option<&str>, bool), ()> {
    let (local, rest, quoted) = if let Some(q) = s.strip_prefix('"') {
        let (local, used) = unquote(q)?;
        (local, &q[used..], true)
    } else {
        let end = s.rfind('@').unwrap_or(s.len());
        let local = &s[..end];
        let atoms = local.split('@');
        if local.starts_with('@') || atoms.clone().any(str::is_empty) && local.contains('@') {
            return Err(());
        }
        if !atoms.flat_map(str::bytes).all(is_unquoted_byte) {
            return Err(());
        }
        (local.to_owned(), &s[end..], false)
    };
    match rest.strip_prefix('@') {
        Some(d) => Ok((local, Some(d), quoted)),
        None if rest.is_empty() => Ok((local, None, quoted)),
        None => Err(()),
    }
}

/// Decode a quoted string body (after the opening quote). Returns the text and the
/// number of bytes used, closing quote included.
fn unquote(q: &str) -> Result<(String, usize), ()> {
    let mut out = String::new();
    let mut chars = q.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => out.push(chars.next().ok_or(())?.1),
            c => out.push(c),
        }
        if out.chars().next_back().is_some_and(char::is_control) {
            return Err(());
        }
    }
    Err(())
}

fn valid_local(local: &str) -> bool {
    !local.is_empty() && !local.chars().any(char::is_control)
}

/// atext, `.`, or a UTF-8 byte: may appear in an unquoted local part.
fn is_unquoted_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80 || b"!#$%&'*+-/=?^_`{|}~.".contains(&b)
}

/// Domain or address literal, as accepted in envelopes.
pub(crate) fn valid_domain(d: &str) -> bool {
    if let Some(lit) = d.strip_prefix('[') {
        return lit.strip_suffix(']').is_some_and(valid_literal);
    }
    valid_hostname(d)
}

fn valid_literal(lit: &str) -> bool {
    match lit.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => lit[5..].parse::<Ipv6Addr>().is_ok(),
        _ => lit.parse::<Ipv4Addr>().is_ok(),
    }
}

/// Hostname labels (one trailing dot allowed), at most 255 bytes.
pub(crate) fn valid_hostname(d: &str) -> bool {
    let d = d.strip_suffix('.').unwrap_or(d);
    !d.is_empty()
        && d.len() <= 255
        && d.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b >= 0x80)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internal(arg: &str) -> Result<String, ()> {
        let s = split_path(arg).ok_or(())?;
        Ok(parse_path(s.path)?
            .map(|m| m.internal())
            .unwrap_or_default())
    }

    /// The "open relay battery" and other tricky forms: input, internal form or error.
    #[test]
    fn tricky_addresses() {
        let ok: &[(&str, &str)] = &[
            ("<a@b>", "a@b"),
            ("a@b", "a@b"),
            ("<user%other@dom>", "user%other@dom"),
            ("<other!user@dom>", "other!user@dom"),
            ("<\"user@other\"@dom>", "user@other@dom"),
            ("<user@[127.0.0.1]>", "user@[127.0.0.1]"),
            ("<u@[IPv6:::1]>", "u@[IPv6:::1]"),
            ("<@a,@b:u@d>", "u@d"),
            ("<@a:u@d>", "u@d"),
            ("<u@d.>", "u@d."),
            ("<\"a b\"@x>", "a b@x"),
            ("\"a b\"@x", "a b@x"),
            ("<\"a\\\"b\"@c>", "a\"b@c"),
            ("<u>", "u"),
            ("<Postmaster>", "Postmaster"),
            ("<.u@d>", ".u@d"),
            ("<u..v@d>", "u..v@d"),
            ("<u@d_e>", "u@d_e"),
            ("< u@d >", "u@d"),
            ("<>", ""),
            ("< >", ""),
            ("<ü@d>", "ü@d"),
            ("<u@bücher.example>", "u@bücher.example"),
            // As Postfix 3.7.11 (oracle): more than one `@`, an empty quoted local part.
            ("<a@b@c>", "a@b@c"),
            ("<user@host@other.example>", "user@host@other.example"),
            ("<\"\"@d>", "@d"),
        ];
        for (arg, want) in ok {
            assert_eq!(internal(arg).as_deref(), Ok(*want), "{arg}");
        }
        let bad = [
            "<u@d",
            "u@d>",
            "<<u@d>>",
            "<a b@c>",
            "<u @d>",
            "<a,b@c>",
            "<a;b@c>",
            "<u@d;x>",
            "<u@[1.2.3.4].x>",
            "<u@[1.2.3>",
            "<u@1.2.3]>",
            "<u@[300.1.1.1]>",
            "<@a,@b>",
            "<u@>",
            "<@d>",
            "<u@d..e>",
            "<u@-d>",
            "<u@d->",
            "<u(c)@d>",
            "<a\\b@c>",
            "<@a:@b:u@d>",
            "<:u@d>",
            "<@a,u@d>",
            "<u@d>x",
            "x<u@d>",
            "<\"a\x01\"@b>",
            "<a\x01@b>",
            "<\"unterminated@d>",
            "<a@@c>",
            "<@a@c>",
        ];
        for arg in bad {
            assert_eq!(internal(arg), Err(()), "{arg:?}");
        }
    }

    #[test]
    fn empty_and_at_local_parts_are_quoted() {
        let m = Mailbox::new("", Some("d")).map(|m| m.to_smtp());
        assert_eq!(m.as_deref(), Some("<\"\"@d>"));
        let m = Mailbox::new("a@b", Some("d")).map(|m| m.to_smtp());
        assert_eq!(m.as_deref(), Some("<\"a@b\"@d>"));
        assert_eq!(Mailbox::new("", None), None);
    }

    #[test]
    fn quoting_round_trip() {
        for (l, d) in [
            ("a b", Some("x")),
            ("u@o", Some("d")),
            ("a\"b\\", None),
            ("plain", Some("[1.2.3.4]")),
        ] {
            let m = Mailbox::new(l, d).unwrap();
            let s = m.to_smtp();
            let split = split_path(&s).unwrap();
            assert_eq!(parse_path(split.path).unwrap().unwrap(), m, "{s}");
        }
    }

    #[test]
    fn utf8_flag() {
        assert!(Mailbox::new("ü", Some("d")).unwrap().is_utf8());
        assert!(!Mailbox::new("u", Some("d")).unwrap().is_utf8());
    }
}
