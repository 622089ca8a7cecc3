//! Rewriting the addresses inside an address header (`From:`, `To:`, …)
//! while keeping everything else byte for byte: display names, comments,
//! groups, folding.
//!
//! The value is tokenized as RFC 5322 (atoms, quoted strings, domain literals,
//! nested comments, specials). Each list element's address is the text between
//! `<` and `>` (after an obsolete route `@a,@b:`), or, without angle brackets,
//! the element's tokens outside comments. Only the byte span of an address is
//! replaced, and only when the rewrite changed it or it had a source route
//! (which is dropped, as Postfix does: `<@a,@b:u@c>` → `<u@c>`).
//!
//! # Security
//! Linear scan, comment nesting counted (not recursed), no panics on any
//! input (header values come from the network).

/// Which kind of token (spans are byte ranges into the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    Quoted,
    Special(char),
}

#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
}

fn tokenize(v: &str) -> Vec<Tok> {
    let b: Vec<(usize, char)> = v.char_indices().collect();
    let end_of = |i: usize| b.get(i).map_or(v.len(), |&(p, _)| p);
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&(pos, c)) = b.get(i) {
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                let mut depth = 0usize;
                while let Some(&(_, c)) = b.get(i) {
                    i += 1;
                    match c {
                        '\\' => i += 1,
                        '(' => depth += 1,
                        ')' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            '"' | '[' => {
                let close = if c == '"' { '"' } else { ']' };
                i += 1;
                while let Some(&(_, d)) = b.get(i) {
                    i += 1;
                    if d == '\\' {
                        i += 1;
                    } else if d == close {
                        break;
                    }
                }
                let kind = if c == '"' { Kind::Quoted } else { Kind::Word };
                out.push(Tok {
                    kind,
                    start: pos,
                    end: end_of(i.min(b.len())),
                });
            }
            '<' | '>' | ':' | ';' | '@' | ',' | '.' | ')' | ']' | '\\' => {
                out.push(Tok {
                    kind: Kind::Special(c),
                    start: pos,
                    end: pos + c.len_utf8(),
                });
                i += 1;
            }
            _ => {
                let start = pos;
                while let Some(&(_, d)) = b.get(i) {
                    if d.is_whitespace() || "()<>[]:;@\\,.\"".contains(d) {
                        break;
                    }
                    i += 1;
                }
                out.push(Tok {
                    kind: Kind::Word,
                    start,
                    end: end_of(i),
                });
            }
        }
    }
    out
}

/// The internal form of the address in `toks` (quoted strings unquoted).
fn internal(v: &str, toks: &[Tok]) -> String {
    let mut out = String::new();
    for t in toks {
        let text = v.get(t.start..t.end).unwrap_or("");
        match t.kind {
            Kind::Word => out.push_str(text),
            Kind::Quoted => {
                let inner = text.strip_prefix('"').unwrap_or(text);
                let inner = inner.strip_suffix('"').unwrap_or(inner);
                let mut esc = false;
                for c in inner.chars() {
                    if esc || c != '\\' {
                        if c != '\r' && c != '\n' {
                            out.push(c);
                        }
                        esc = false;
                    } else {
                        esc = true;
                    }
                }
            }
            Kind::Special(c @ ('.' | '@')) => out.push(c),
            Kind::Special(_) => {}
        }
    }
    out
}

/// The address spans of a header value: for each address the token range
/// of the address and the first token to replace (before an obsolete source
/// route `@a,@b:`, which a rewrite drops, as Postfix's trivial-rewrite does).
fn addresses(toks: &[Tok]) -> Vec<(std::ops::Range<usize>, usize)> {
    let mut out = Vec::new();
    let mut plain_start: Option<usize> = None;
    let mut plain_end = 0;
    let mut angle: Option<(std::ops::Range<usize>, usize)> = None;
    let mut in_angle: Option<usize> = None;
    let mut angle_open = 0;
    let finish = |out: &mut Vec<_>,
                  angle: &mut Option<(std::ops::Range<usize>, usize)>,
                  ps: &mut Option<usize>,
                  pe: usize| {
        match (angle.take(), ps.take()) {
            (Some((r, open)), _) if !r.is_empty() => out.push((r, open)),
            (Some(_), _) => {}
            (None, Some(s)) => out.push((s..pe, s)),
            (None, None) => {}
        }
    };
    for (i, t) in toks.iter().enumerate() {
        if let Some(start) = in_angle {
            match t.kind {
                Kind::Special('>') => {
                    angle = Some((start..i, angle_open));
                    in_angle = None;
                }
                // A source route only when the address starts with `@` (`@a,@b:`), as
                // Postfix's trivial-rewrite strips it; any other `:` stays in the address.
                Kind::Special(':')
                    if toks
                        .get(start)
                        .is_some_and(|t| matches!(t.kind, Kind::Special('@'))) =>
                {
                    in_angle = Some(i + 1)
                }
                _ => {}
            }
            continue;
        }
        match t.kind {
            Kind::Special(',' | ';') => {
                finish(&mut out, &mut angle, &mut plain_start, plain_end);
            }
            Kind::Special(':') => {
                plain_start = None;
                angle = None;
            }
            Kind::Special('<') => {
                in_angle = Some(i + 1);
                angle_open = i + 1;
            }
            _ => {
                if plain_start.is_none() {
                    plain_start = Some(i);
                }
                plain_end = i + 1;
            }
        }
    }
    if let Some(start) = in_angle {
        angle = Some((start..toks.len(), angle_open));
    }
    finish(&mut out, &mut angle, &mut plain_start, plain_end);
    out
}

/// Rewrites every address of a header value with `f` (internal form in and
/// out). Returns the new value, or `None` when no address changed.
pub fn rewrite_value(value: &str, f: &mut dyn FnMut(&str) -> String) -> Option<String> {
    let toks = tokenize(value);
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for (r, open) in addresses(&toks) {
        let Some(span) = toks.get(r.clone()) else {
            continue;
        };
        let (Some(first), Some(last)) = (toks.get(open.min(r.start)), span.last()) else {
            continue;
        };
        let old = internal(value, span);
        if old.is_empty() {
            continue;
        }
        let new = f(&old);
        if new != old || open < r.start {
            let ext = if new.is_empty() {
                String::new()
            } else {
                postern_mail::address::quote_address(&new)
            };
            edits.push((first.start, last.end, ext));
        }
    }
    if edits.is_empty() {
        return None;
    }
    let mut out = value.to_string();
    for (s, e, text) in edits.into_iter().rev() {
        if out.is_char_boundary(s) && out.is_char_boundary(e) && s <= e {
            out.replace_range(s..e, &text);
        }
    }
    Some(out)
}

/// `header_address_token_limit`: the value cut after its first `limit`
/// tokens (comments and white space are not tokens), or `None` when it has
/// no more than `limit`.
pub fn truncate_tokens(value: &str, limit: usize) -> Option<&str> {
    let toks = tokenize(value);
    if toks.len() <= limit {
        return None;
    }
    let end = limit
        .checked_sub(1)
        .and_then(|i| toks.get(i))
        .map_or(0, |t| t.end);
    value.get(..end)
}

/// Postfix's layout of a rewritten address header `name: value`: the list
/// elements one after another, separated by a space after each comma; an
/// element that would make the line 70 bytes or longer (the TAB of a
/// continuation line not counted) starts a new line, indented by a TAB.
/// Line breaks inside an element become one space.
pub fn fold(name: &str, value: &str) -> String {
    let mut elems = Vec::new();
    let mut start = 0;
    for t in tokenize(value) {
        if t.kind == Kind::Special(',') {
            elems.push(value.get(start..t.end).unwrap_or(""));
            start = t.end;
        }
    }
    elems.push(value.get(start..).unwrap_or(""));
    let mut out = format!("{name}:");
    let mut line_len: Option<usize> = None;
    for e in elems {
        let e = unfold(e);
        if e.is_empty() {
            continue;
        }
        match line_len {
            Some(len) if len + 1 + e.len() >= 70 => {
                out.push_str("\n\t");
                line_len = Some(e.len());
            }
            Some(len) => {
                out.push(' ');
                line_len = Some(len + 1 + e.len());
            }
            None => {
                out.push(' ');
                line_len = Some(out.len() + e.len());
            }
        }
        out.push_str(&e);
    }
    out
}

/// `e` trimmed, each line break with the white space around it made one space.
fn unfold(e: &str) -> String {
    let mut out = String::with_capacity(e.len());
    for (i, line) in e.trim().split('\n').enumerate() {
        if i > 0 {
            out.truncate(out.trim_end().len());
            out.push(' ');
        }
        out.push_str(if i > 0 { line.trim_start() } else { line });
    }
    out
}

/// Fuzz entry point: never panics, and rewriting with the identity changes
/// nothing but source routes (so a second identity rewrite changes nothing).
pub fn fuzz(data: &[u8]) {
    let v = String::from_utf8_lossy(data);
    if let Some(once) = rewrite_value(&v, &mut |a| a.to_string()) {
        assert!(rewrite_value(&once, &mut |a| a.to_string()).is_none());
    }
    let _ = fold("To", &v);
    let _ = truncate_tokens(&v, 3);
    let _ = rewrite_value(&v, &mut |a| format!("{a}.x"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(v: &str) -> Option<String> {
        rewrite_value(v, &mut |a| {
            a.replace("@old.example", "@new.example")
                .replace("joe@", "Joe.Doe@")
        })
    }

    #[test]
    fn keeps_names_comments_and_groups() {
        assert_eq!(
            up(" \"Joe Q. Public\" <joe@old.example> (work)").as_deref(),
            Some(" \"Joe Q. Public\" <Joe.Doe@new.example> (work)")
        );
        assert_eq!(
            up(" a@old.example (Comment, here), B <b@x.example>,\n\tc@old.example").as_deref(),
            Some(" a@new.example (Comment, here), B <b@x.example>,\n\tc@new.example")
        );
        assert_eq!(
            up(" team: x@old.example, y@y.example;, z@old.example").as_deref(),
            Some(" team: x@new.example, y@y.example;, z@new.example")
        );
        assert_eq!(
            up(" <@r1,@r2:u@old.example>").as_deref(),
            Some(" <u@new.example>")
        );
        assert_eq!(up(" nobody@else.example"), None);
        assert_eq!(up(" undisclosed-recipients:;"), None);
        assert_eq!(up(" <>"), None);
    }

    #[test]
    fn quoting() {
        let out = rewrite_value(" \"a b\"@x.example", &mut |a| {
            assert_eq!(a, "a b@x.example");
            "c d@y.example".into()
        });
        assert_eq!(out.as_deref(), Some(" \"c d\"@y.example"));
    }

    #[test]
    fn garbage_does_not_panic() {
        for v in [
            "<",
            ">",
            "(((",
            "\"",
            "[",
            "@",
            ",,,",
            "<a@b",
            "é@ü (ö",
            "\\",
        ] {
            fuzz(v.as_bytes());
        }
    }

    #[test]
    fn source_routes_are_dropped() {
        assert_eq!(
            rewrite_value(" <@r1.example,@r2.example:u@example.com>", &mut |a| a
                .to_string())
            .as_deref(),
            Some(" <u@example.com>")
        );
        assert_eq!(
            up(" A <@r:joe@old.example>").as_deref(),
            Some(" A <Joe.Doe@new.example>")
        );
        fuzz(b"<@a,@b:c@d>, <:>, <a:b:c>");
    }

    #[test]
    fn postfix_folding_and_token_limit() {
        let v: Vec<String> = (0..8).map(|i| format!("u{i}@example.com")).collect();
        assert_eq!(
            fold("To", &format!(" {}", v.join(",\n  "))),
            "To: u0@example.com, u1@example.com, u2@example.com, u3@example.com,\n\
             \tu4@example.com, u5@example.com, u6@example.com, u7@example.com"
        );
        assert_eq!(fold("Cc", " A\n <a@b>, (c) d@e,"), "Cc: A <a@b>, (c) d@e,");
        assert_eq!(truncate_tokens(" a@b.c, d@e.f", 11), None);
        assert_eq!(truncate_tokens(" a@b.c, d@e.f", 4), Some(" a@b."));
        assert_eq!(truncate_tokens(" (x) a", 0), Some(""));
    }

    #[test]
    fn fuzz_exhaustive_short() {
        let alpha = [b'<', b'>', b'@', b':', b',', b'a', b'"', b' '];
        let mut buf = Vec::new();
        for n in 0..6u32 {
            for mut k in 0..alpha.len().pow(n) {
                buf.clear();
                for _ in 0..n {
                    buf.push(alpha[k % alpha.len()]);
                    k /= alpha.len();
                }
                fuzz(&buf);
            }
        }
    }
}
#[cfg(test)]
mod fuzz_regressions {
    /// Found by the fuzz smoke: a `:` inside angle brackets of an address that does
    /// not start with `@` is not a source route, so an identity rewrite is idempotent.
    #[test]
    fn colon_in_angle_address_without_route() {
        let d = b" \"Joe Qw|;\x03li\" <jw|;\x01t\x05;\x00\x00\x00\x00\x00\x00\x00,rw;:u@\x01w|\"j;\x01t\x00\x00\x00,rw2:t\xf8>";
        let v = String::from_utf8_lossy(d);
        super::fuzz(d);
        if let Some(once) = super::rewrite_value(&v, &mut |a| a.to_string()) {
            assert_eq!(super::rewrite_value(&once, &mut |a| a.to_string()), None);
        }
    }
}
