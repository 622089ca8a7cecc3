//! Rewriting the addresses inside an address header (`From:`, `To:`, …)
//! while keeping everything else byte for byte: display names, comments,
//! groups, folding.
//!
//! The value is tokenized as RFC 5322 (atoms, quoted strings, domain literals,
//! nested comments, specials). Each list element's address is the text between
//! `<` and `>` (after an obsolete route `@a,@b:`), or, without angle brackets,
//! the element's tokens outside comments. Only the byte span of an address is
//! replaced, and only when the rewrite changed it.
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

/// The address spans of a header value: token ranges of each address.
fn addresses(toks: &[Tok]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut plain_start: Option<usize> = None;
    let mut plain_end = 0;
    let mut angle: Option<std::ops::Range<usize>> = None;
    let mut in_angle: Option<usize> = None;
    let finish = |out: &mut Vec<_>,
                  angle: &mut Option<std::ops::Range<usize>>,
                  ps: &mut Option<usize>,
                  pe: usize| {
        match (angle.take(), ps.take()) {
            (Some(r), _) if !r.is_empty() => out.push(r),
            (Some(_), _) => {}
            (None, Some(s)) => out.push(s..pe),
            (None, None) => {}
        }
    };
    for (i, t) in toks.iter().enumerate() {
        if let Some(start) = in_angle {
            match t.kind {
                Kind::Special('>') => {
                    angle = Some(start..i);
                    in_angle = None;
                }
                Kind::Special(':') => in_angle = Some(i + 1),
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
            Kind::Special('<') => in_angle = Some(i + 1),
            _ => {
                if plain_start.is_none() {
                    plain_start = Some(i);
                }
                plain_end = i + 1;
            }
        }
    }
    if let Some(start) = in_angle {
        angle = Some(start..toks.len());
    }
    finish(&mut out, &mut angle, &mut plain_start, plain_end);
    out
}

/// Rewrites every address of a header value with `f` (internal form in and
/// out). Returns the new value, or `None` when no address changed.
pub fn rewrite_value(value: &str, f: &mut dyn FnMut(&str) -> String) -> Option<String> {
    let toks = tokenize(value);
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for r in addresses(&toks) {
        let Some(span) = toks.get(r.clone()) else {
            continue;
        };
        let (Some(first), Some(last)) = (span.first(), span.last()) else {
            continue;
        };
        let old = internal(value, span);
        if old.is_empty() {
            continue;
        }
        let new = f(&old);
        if new != old {
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

/// Fuzz entry point: never panics, and rewriting with the identity changes nothing.
pub fn fuzz(data: &[u8]) {
    let v = String::from_utf8_lossy(data);
    assert!(rewrite_value(&v, &mut |a| a.to_string()).is_none());
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
            Some(" <@r1,@r2:u@new.example>")
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
}
