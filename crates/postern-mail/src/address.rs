//! Address helpers: split, strip, quote, and extract from header values.
//!
//! Addresses inside Postern are in *internal form*: the local part unquoted
//! (`john doe@example.com`), as Postfix keeps them. [`quote_address`] turns
//! one into the *external form* used on the wire, in headers and in mbox
//! `From ` lines (`"john doe"@example.com`).
//!
//! # Address extensions
//! [`split_extension`] follows Postfix's `recipient_delimiter` rules: the
//! extension starts at the first occurrence of *any* of the delimiter
//! characters in the local part; nothing is split when the delimiter would be
//! the first character, for `postmaster` and `MAILER-DAEMON`, or — when `-` is
//! a delimiter — for `owner-…` and `…-request` (mailing-list conventions).
//!
//! # Security
//! Pure functions, no panics on any input, linear work; comment nesting is
//! counted, not recursed.

use std::borrow::Cow;

/// Splits at the last `@`: `(local part, Some(domain))`, or `(address, None)`.
pub fn split_domain(addr: &str) -> (&str, Option<&str>) {
    match addr.rfind('@') {
        Some(i) => (&addr[..i], Some(&addr[i + 1..])),
        None => (addr, None),
    }
}

/// Strips one level of enclosing `<` `>` (and surrounding white space).
pub fn strip_angle(addr: &str) -> &str {
    let t = addr.trim();
    t.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(t)
}

/// Splits an address extension off a local part (see the module docs):
/// `("user", Some("ext"))` for `user+ext` with delimiters `+`.
pub fn split_extension<'a>(local: &'a str, delimiters: &str) -> (&'a str, Option<&'a str>) {
    if delimiters.is_empty()
        || local.eq_ignore_ascii_case("postmaster")
        || local.eq_ignore_ascii_case("mailer-daemon")
    {
        return (local, None);
    }
    if delimiters.contains('-') {
        let lower = local.to_ascii_lowercase();
        if lower.starts_with("owner-") || (lower.len() > 8 && lower.ends_with("-request")) {
            return (local, None);
        }
    }
    match local.find(|c| delimiters.contains(c)) {
        Some(i) if i > 0 => {
            let delim_len = local[i..].chars().next().map_or(1, char::len_utf8);
            (&local[..i], Some(&local[i + delim_len..]))
        }
        _ => (local, None),
    }
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// Whether `s` is an RFC 5322 dot-atom (no quoting needed).
pub fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|part| !part.is_empty() && part.chars().all(is_atext))
}

/// Quotes a local part for the external form when it is not a dot-atom:
/// `john doe` → `"john doe"`, with `"` and `\` escaped.
pub fn quote_local_part(local: &str) -> Cow<'_, str> {
    if is_dot_atom(local) {
        return Cow::Borrowed(local);
    }
    let mut out = String::with_capacity(local.len() + 2);
    out.push('"');
    for c in local.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Cow::Owned(out)
}

/// The external form of an internal-form address (quotes the local part when
/// needed). The empty (null) address stays empty.
pub fn quote_address(addr: &str) -> String {
    if addr.is_empty() {
        return String::new();
    }
    match split_domain(addr) {
        (local, Some(domain)) => format!("{}@{domain}", quote_local_part(local)),
        (local, None) => quote_local_part(local).into_owned(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An atom, quoted string (unquoted) or domain literal.
    Word(String),
    Special(char),
}

/// Reads a delimited run (quoted string or domain literal) starting after its
/// opening character; returns the text (with quoted pairs resolved when
/// `unescape`) and the index after the closing character (or the end).
fn read_delimited(chars: &[char], mut i: usize, close: char, unescape: bool) -> (String, usize) {
    let mut s = String::new();
    while let Some(&c) = chars.get(i) {
        i += 1;
        if c == close {
            return (s, i);
        }
        if c == '\\'
            && let Some(&n) = chars.get(i)
        {
            i += 1;
            if !unescape {
                s.push('\\');
            }
            s.push(n);
            continue;
        }
        if c != '\r' && c != '\n' {
            s.push(c);
        }
    }
    (s, i)
}

/// Skips a (possibly nested) comment starting after its `(`.
fn skip_comment(chars: &[char], mut i: usize) -> usize {
    let mut depth = 1usize;
    while let Some(&c) = chars.get(i) {
        i += 1;
        match c {
            '\\' => i += 1,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    i
}

fn tokenize(value: &str) -> Vec<Tok> {
    let chars: Vec<char> = value.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => i = skip_comment(&chars, i + 1),
            '"' => {
                let (s, next) = read_delimited(&chars, i + 1, '"', true);
                toks.push(Tok::Word(s));
                i = next;
            }
            '[' => {
                let (s, next) = read_delimited(&chars, i + 1, ']', false);
                toks.push(Tok::Word(format!("[{s}]")));
                i = next;
            }
            '<' | '>' | ':' | ';' | '@' | ',' | '.' | ')' | ']' | '\\' => {
                toks.push(Tok::Special(c));
                i += 1;
            }
            _ => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|&c| !c.is_whitespace() && !"()<>[]:;@\\,.\"".contains(c))
                {
                    i += 1;
                }
                toks.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    toks
}

/// Joins the tokens of an addr-spec into the internal form.
fn render(toks: &[Tok]) -> String {
    let mut out = String::new();
    for t in toks {
        match t {
            Tok::Word(w) => out.push_str(w),
            Tok::Special(c @ ('.' | '@')) => out.push(*c),
            Tok::Special(_) => {}
        }
    }
    out
}

#[derive(Default)]
struct ListState {
    plain: Vec<Tok>,
    angle: Vec<Tok>,
    in_angle: bool,
    had_angle: bool,
}

impl ListState {
    fn finish(&mut self, out: &mut Vec<String>) {
        let addr = if self.had_angle {
            render(&self.angle)
        } else {
            render(&self.plain)
        };
        if !addr.is_empty() {
            out.push(addr);
        }
        *self = ListState::default();
    }
}

/// Extracts the addr-specs of an RFC 5322 address list (a `To:`, `Cc:` or
/// `Bcc:` value) in order, in internal form. Understands display names,
/// nested comments, quoted strings, groups (`team: a@b, c@d;`), angle
/// addresses with obsolete source routes (`<@relay:user@host>`), and bare
/// local parts. Empty addresses (`<>`, empty groups) are skipped. Malformed
/// input yields a best effort, never an error: this serves `sendmail -t`,
/// where the submitter is the authority.
pub fn parse_address_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut st = ListState::default();
    for tok in tokenize(value) {
        if st.in_angle {
            match tok {
                Tok::Special('>') => st.in_angle = false,
                // End of an obsolete route: forget "@a,@b".
                Tok::Special(':') => st.angle.clear(),
                t => st.angle.push(t),
            }
            continue;
        }
        match tok {
            Tok::Special(',' | ';') => st.finish(&mut out),
            // A group's display name: drop it, the members follow.
            Tok::Special(':') => st = ListState::default(),
            Tok::Special('<') => {
                st.in_angle = true;
                st.had_angle = true;
                st.angle.clear();
            }
            t => st.plain.push(t),
        }
    }
    st.finish(&mut out);
    out
}

/// Fuzz entry point: every function of this module on `data` (lossy UTF-8).
pub fn fuzz(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    for a in parse_address_list(&s) {
        let _quoted = quote_address(&a);
    }
    let (local, _) = split_domain(strip_angle(&s));
    let _split = split_extension(local, "+-");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_strip() {
        assert_eq!(split_domain("a@b@c"), ("a@b", Some("c")));
        assert_eq!(split_domain("root"), ("root", None));
        assert_eq!(split_domain("@x"), ("", Some("x")));
        assert_eq!(strip_angle(" <a@b> "), "a@b");
        assert_eq!(strip_angle("<<a@b>>"), "<a@b>");
        assert_eq!(strip_angle("<a@b"), "<a@b");
        assert_eq!(strip_angle("<>"), "");
    }

    #[test]
    fn extensions() {
        assert_eq!(split_extension("user+ext", "+"), ("user", Some("ext")));
        assert_eq!(split_extension("user+a+b", "+"), ("user", Some("a+b")));
        assert_eq!(split_extension("user-a+b", "+-"), ("user", Some("a+b")));
        assert_eq!(split_extension("+ext", "+"), ("+ext", None));
        assert_eq!(split_extension("user+", "+"), ("user", Some("")));
        assert_eq!(split_extension("user", "+"), ("user", None));
        assert_eq!(split_extension("user+x", ""), ("user+x", None));
        assert_eq!(split_extension("owner-list", "-"), ("owner-list", None));
        assert_eq!(split_extension("list-request", "-"), ("list-request", None));
        assert_eq!(split_extension("owner-list", "+"), ("owner-list", None));
        assert_eq!(split_extension("a-b", "-"), ("a", Some("b")));
        assert_eq!(split_extension("Postmaster", "+"), ("Postmaster", None));
        assert_eq!(
            split_extension("Postmaster+x", "+"),
            ("Postmaster", Some("x"))
        );
        assert_eq!(
            split_extension("MAILER-DAEMON", "-"),
            ("MAILER-DAEMON", None)
        );
        assert_eq!(split_extension("usér+é", "+"), ("usér", Some("é")));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_local_part("john.doe"), "john.doe");
        assert_eq!(quote_local_part("john doe"), "\"john doe\"");
        assert_eq!(quote_local_part("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote_local_part("a..b"), "\"a..b\"");
        assert_eq!(quote_local_part(".a"), "\".a\"");
        assert_eq!(quote_local_part(""), "\"\"");
        assert_eq!(
            quote_address("john doe@example.com"),
            "\"john doe\"@example.com"
        );
        assert_eq!(quote_address("a@b@c"), "\"a@b\"@c");
        assert_eq!(quote_address(""), "");
        assert_eq!(quote_address("root"), "root");
    }

    fn list(v: &str) -> Vec<String> {
        parse_address_list(v)
    }

    #[test]
    fn simple_lists() {
        assert_eq!(list("a@b"), ["a@b"]);
        assert_eq!(list("a@b, c@d,e@f"), ["a@b", "c@d", "e@f"]);
        assert_eq!(list("root"), ["root"]);
        assert_eq!(list(""), Vec::<String>::new());
        assert_eq!(list(" , ,"), Vec::<String>::new());
    }

    #[test]
    fn display_names_and_comments() {
        assert_eq!(list("John Doe <jd@example.com>"), ["jd@example.com"]);
        assert_eq!(
            list("\"Doe, John\" <jd@example.com>, x@y"),
            ["jd@example.com", "x@y"]
        );
        assert_eq!(list("jd@example.com (John Doe)"), ["jd@example.com"]);
        assert_eq!(
            list("jd(c1)@(c2 (nested) c3)example.com"),
            ["jd@example.com"]
        );
        assert_eq!(list("(a, b <x@y>) real@host"), ["real@host"]);
        assert_eq!(list("\"<fake@x>\" <real@y>"), ["real@y"]);
        assert_eq!(list("=?utf-8?q?J=C3=B6rg?= <j@x>"), ["j@x"]);
        assert_eq!(list("Name (comment \\) still) <a@b>"), ["a@b"]);
    }

    #[test]
    fn quoted_local_parts_become_internal() {
        assert_eq!(list("\"john doe\"@example.com"), ["john doe@example.com"]);
        assert_eq!(list("\"a\\\"b\"@c"), ["a\"b@c"]);
        assert_eq!(list("<\"x y\"@z>"), ["x y@z"]);
        assert_eq!(list("john . doe @ example . com"), ["john.doe@example.com"]);
    }

    #[test]
    fn groups() {
        assert_eq!(list("team: a@b, c@d;"), ["a@b", "c@d"]);
        assert_eq!(list("undisclosed-recipients:;"), Vec::<String>::new());
        assert_eq!(
            list("x@y, g: A <a@b>, c@d; , e@f"),
            ["x@y", "a@b", "c@d", "e@f"]
        );
        assert_eq!(list("\"my group\": a@b"), ["a@b"]);
    }

    #[test]
    fn routes_literals_and_oddities() {
        assert_eq!(list("<@relay1,@relay2:user@host>"), ["user@host"]);
        assert_eq!(list("Name <@r:u@h>, v@w"), ["u@h", "v@w"]);
        assert_eq!(list("user@[192.0.2.1]"), ["user@[192.0.2.1]"]);
        assert_eq!(list("<>"), Vec::<String>::new());
        assert_eq!(list("<a@b"), ["a@b"]);
        assert_eq!(list("\"unterminated"), ["unterminated"]);
        assert_eq!(list("(unterminated comment a@b"), Vec::<String>::new());
        assert_eq!(list("a@b\n\tc@d"), ["a@bc@d"]);
        assert_eq!(list("a@b,\n c@d"), ["a@b", "c@d"]);
        assert_eq!(list("Ünïcödé <ü@例え.jp>"), ["ü@例え.jp"]);
    }

    #[test]
    fn fuzz_smoke() {
        for s in [
            "<<<", ">>>", "(((", ")))", "\"\\", "[\\", ":::;;;", "@@@", "\u{0}", "a\\",
        ] {
            fuzz(s.as_bytes());
        }
        fuzz(&[0xff, b'@', 0xfe]);
    }
}
