//! aliases(5) source lines: `name: value, value, …`, as postalias(1) reads them.
//!
//! A line is split into RFC 822 tokens (atoms, quoted strings, comments, domain literals
//! and the one-character operators of RFC 822 plus `|`, `%` and `!`). The tokens before
//! the first `:` are the name, stored in internal (unquoted) form, so `"a b": x` defines
//! the alias `a b`; the tokens after it are the value, stored in external (quoted) form
//! with Postfix's spacing (one space after a comma, before `<` and between two words, none
//! around other operators): `x ,  y` becomes `x, y` and `:include: /f` becomes
//! `:include:/f`. `|command`, `/file` and `:include:` stay value text for local(8).
//!
//! # Security
//! The input is configuration text. The tokenizer does no I/O, is linear in the line
//! length and never panics on any input (fuzzed by `fuzz/fuzz_targets/alias_line.rs`).

/// Why a line is not an alias entry. Display is Postfix's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AliasError {
    /// No `:`, nothing before or after it, or a `,` in the name.
    #[error("need name:value pair")]
    NeedPair,
    /// An `@` or `%` in the name.
    #[error("name must be local")]
    NotLocal,
}

/// One RFC 822 token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Atom(String),
    Quoted(String),
    /// Stored in external form, parentheses included.
    Comment(String),
    DomLit(String),
    Op(char),
}

impl Tok {
    fn is_word(&self) -> bool {
        !matches!(self, Tok::Op(_))
    }
}

const OPERATORS: &str = "|%!()<>@,;:\\\".[]";

fn is_op(c: char) -> bool {
    c != '\\' && OPERATORS.contains(c)
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Collects characters while `more` holds; a backslash takes the next character
/// literally. Whitespace is stored as a plain space.
fn collect(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    more: impl Fn(char) -> bool,
) -> String {
    let mut out = String::new();
    while let Some(&c) = chars.peek() {
        let c = if c == '\\' {
            chars.next();
            match chars.peek() {
                Some(&n) => n,
                None => break,
            }
        } else if !more(c) {
            break;
        } else {
            c
        };
        out.push(if is_space(c) { ' ' } else { c });
        chars.next();
    }
    out
}

fn comment(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut out = String::from("(");
    let mut level = 1usize;
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '(' => level += 1,
            ')' => {
                level -= 1;
                if level == 0 {
                    break;
                }
            }
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => break,
            },
            _ => {}
        }
    }
    out
}

fn scan(text: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if is_space(c) {
            chars.next();
            continue;
        }
        let tok = match c {
            '(' => {
                chars.next();
                Tok::Comment(comment(&mut chars))
            }
            '[' | '"' => {
                chars.next();
                let close = if c == '[' { ']' } else { '"' };
                let body = collect(&mut chars, |x| x != close);
                chars.next();
                if c == '[' {
                    Tok::DomLit(body)
                } else {
                    Tok::Quoted(body)
                }
            }
            c if is_op(c) => {
                chars.next();
                Tok::Op(c)
            }
            _ => {
                let atom = collect(&mut chars, |x| !is_space(x) && !is_op(x));
                if atom.chars().any(|x| x == ' ' || x.is_control() || is_op(x)) {
                    Tok::Quoted(atom)
                } else {
                    Tok::Atom(atom)
                }
            }
        };
        toks.push(tok);
    }
    toks
}

fn space_after(tok: &Tok, next: Option<&Tok>) -> bool {
    let Some(next) = next else {
        return false;
    };
    matches!(tok, Tok::Op(',')) || matches!(next, Tok::Op('<')) || (tok.is_word() && next.is_word())
}

fn quote_into(out: &mut String, text: &str, specials: &str) {
    for c in text.chars() {
        if specials.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Tokens to text: `external` quotes quoted strings and domain literals as RFC 822 wants.
fn render(toks: &[Tok], external: bool) -> String {
    let mut out = String::new();
    for (i, tok) in toks.iter().enumerate() {
        match tok {
            Tok::Atom(s) | Tok::Comment(s) => out.push_str(s),
            Tok::Quoted(s) if external => {
                out.push('"');
                quote_into(&mut out, s, "\"\\\r\n");
                out.push('"');
            }
            Tok::Quoted(s) => out.push_str(s),
            Tok::DomLit(s) => {
                out.push('[');
                if external {
                    quote_into(&mut out, s, "\\\r\n");
                } else {
                    out.push_str(s);
                }
                out.push(']');
            }
            Tok::Op(c) => out.push(*c),
        }
        if space_after(tok, toks.get(i + 1)) {
            out.push(' ');
        }
    }
    out
}

/// Parses one logical aliases(5) line into its name (internal form, not yet case-folded)
/// and its value (external form). `Ok(None)` for a line without any token.
///
/// # Errors
/// [`AliasError::NeedPair`] or [`AliasError::NotLocal`], as postalias(1) warns.
pub fn parse_alias_line(line: &str) -> Result<Option<(String, String)>, AliasError> {
    let toks = scan(line);
    if toks.is_empty() {
        return Ok(None);
    }
    let colon = toks
        .iter()
        .position(|t| *t == Tok::Op(':'))
        .ok_or(AliasError::NeedPair)?;
    let (name, value) = (&toks[..colon], &toks[colon + 1..]);
    if name.is_empty() || value.is_empty() || name.contains(&Tok::Op(',')) {
        return Err(AliasError::NeedPair);
    }
    if name.contains(&Tok::Op('@')) || name.contains(&Tok::Op('%')) {
        return Err(AliasError::NotLocal);
    }
    Ok(Some((render(name, false), render(value, true))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> (String, String) {
        parse_alias_line(line).unwrap().unwrap()
    }

    #[test]
    fn values_are_normalized_like_postalias() {
        // Each pair was checked against Debian's postalias 3.7.
        let cases = [
            ("a: x,y", "a", "x, y"),
            ("b: x ,  y ,z", "b", "x, y, z"),
            (
                "c: \"Joe Q\" <joe@x>, (comment) foo",
                "c",
                "\"Joe Q\" <joe@x>, (comment) foo",
            ),
            ("d:x", "d", "x"),
            ("e : y", "e", "y"),
            (
                "f: |\"/usr/bin/prog -a\", /var/x",
                "f",
                "|\"/usr/bin/prog -a\", /var/x",
            ),
            ("g: x@Example.COM", "g", "x@Example.COM"),
            ("h:   spaced    words   here", "h", "spaced words here"),
            ("i: a,,b", "i", "a, , b"),
            ("j: \"quoted local\"@x", "j", "\"quoted local\"@x"),
            ("k: x y   z", "k", "x y z"),
            ("l: :include: /etc/l", "l", ":include:/etc/l"),
            ("m: x; y", "m", "x;y"),
            ("\"quoted name\": x  , y", "quoted name", "x, y"),
            ("Upper: z", "Upper", "z"),
        ];
        for (line, name, value) in cases {
            assert_eq!(ok(line), (name.to_string(), value.to_string()), "{line}");
        }
    }

    #[test]
    fn errors() {
        assert_eq!(parse_alias_line("bad line"), Err(AliasError::NeedPair));
        assert_eq!(parse_alias_line("empty:"), Err(AliasError::NeedPair));
        assert_eq!(parse_alias_line(": x"), Err(AliasError::NeedPair));
        assert_eq!(parse_alias_line("a, b: x"), Err(AliasError::NeedPair));
        assert_eq!(parse_alias_line("a@b: x"), Err(AliasError::NotLocal));
        assert_eq!(parse_alias_line("   "), Ok(None));
        assert_eq!(AliasError::NeedPair.to_string(), "need name:value pair");
    }

    #[test]
    fn odd_input_does_not_panic() {
        for s in [
            "\\", "a: \\", "a: (((", "a: \"", "a: [", "a: ]", "é: ü", "a:\u{0}b",
        ] {
            let _parsed = parse_alias_line(s);
        }
    }
}
