//! Parameter expansion: `$name`, `${name}`, `$(name)`, conditionals and relational tests.
//!
//! Grammar (Postfix's main.cf expansion, see postconf(5) "Parameter expansion"):
//!
//! * `$$` is a literal `$`; a `$` not followed by a name or bracket stays literal.
//! * `$name`, `${name}`, `$(name)`: the expanded value of `name`; unknown names give "".
//! * `${name?value}` / `${name?{value}}`: `value` when `name`'s raw value is non-empty.
//! * `${name:value}` / `${name:{value}}`: `value` when `name`'s raw value is empty or unset.
//! * `${name?{a}:{b}}`: `a` when non-empty, else `b` (Postfix 3.0).
//! * `${{x} OP {y} ? {a} : {b}}`: relational test (Postfix 3.0), OP one of `==` `!=` (text),
//!   `<` `<=` `>` `>=` (decimal integers), or the same six with a `level` suffix
//!   (compatibility levels such as `3.6` compared field by field). `: {b}` is optional.
//!
//! # Security
//!
//! Input comes from configuration files an administrator wrote, but expansion must still never
//! loop or explode: a name being expanded that refers back to itself (directly or through other
//! names) is left as its literal reference text, nesting depth is bounded by [`MAX_DEPTH`], and
//! output is truncated at [`MAX_OUTPUT`] bytes. Malformed references are copied literally;
//! nothing here panics.

use std::cmp::Ordering;

/// Maximum nesting of brackets / recursive references before text is left unexpanded.
pub const MAX_DEPTH: usize = 64;
/// Maximum size of one expanded value, in bytes.
pub const MAX_OUTPUT: usize = 1 << 20;

/// Source of raw (unexpanded) parameter values.
pub(crate) trait Lookup {
    /// The raw value of `name`, or `None` when it has none.
    fn lookup(&self, name: &str) -> Option<String>;
}

/// Expands `text` against `source`.
pub(crate) fn expand<L: Lookup>(source: &L, text: &str) -> String {
    let mut ex = Expander {
        source,
        stack: Vec::new(),
    };
    let mut out = String::new();
    ex.text(text, 0, &mut out);
    out
}

/// Every parameter name referenced with `$name`, `${name…}` or `$(name…)` in `text`
/// (including references nested inside conditional values).
pub fn referenced_names(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        i += 1;
        if i < b.len() && b[i] == b'$' {
            i += 1;
            continue;
        }
        if i < b.len() && (b[i] == b'{' || b[i] == b'(') {
            i += 1;
        }
        let start = i;
        while i < b.len() && is_name_byte(b[i]) {
            i += 1;
        }
        if i > start {
            names.push(text[start..i].to_string());
        }
    }
    names
}

/// Whether `c` may appear in a parameter name inside a `$` reference.
pub(crate) fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

struct Expander<'a, L> {
    source: &'a L,
    /// Names whose values are being expanded (cycle detection).
    stack: Vec<String>,
}

/// Appends `s` to `out` without exceeding [`MAX_OUTPUT`] (cutting at a char boundary).
fn push(out: &mut String, s: &str) {
    let room = MAX_OUTPUT.saturating_sub(out.len());
    if s.len() <= room {
        out.push_str(s);
    } else {
        let mut cut = room;
        while cut > 0 && !s.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&s[..cut]);
    }
}

/// Finds the index of the bracket closing the one at `open` (same kind, nesting counted).
fn matching(s: &str, open: usize) -> Option<usize> {
    let b = s.as_bytes();
    let (o, c) = match b.get(open)? {
        b'{' => (b'{', b'}'),
        b'(' => (b'(', b')'),
        _ => return None,
    };
    let mut depth = 0usize;
    for (i, &ch) in b.iter().enumerate().skip(open) {
        if ch == o {
            depth += 1;
        } else if ch == c {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// Splits `{value}rest` (after optional whitespace) into (trimmed value, rest).
fn braced(s: &str) -> Option<(&str, &str)> {
    let t = s.trim_start();
    if !t.starts_with('{') {
        return None;
    }
    let end = matching(t, 0)?;
    Some((t[1..end].trim(), &t[end + 1..]))
}

impl<L: Lookup> Expander<'_, L> {
    /// Expands `text` into `out`.
    fn text(&mut self, text: &str, depth: usize, out: &mut String) {
        if depth > MAX_DEPTH {
            push(out, text);
            return;
        }
        let b = text.as_bytes();
        let mut i = 0;
        let mut lit = 0;
        while i < b.len() {
            if out.len() >= MAX_OUTPUT {
                return;
            }
            if b[i] != b'$' {
                i += 1;
                continue;
            }
            push(out, &text[lit..i]);
            let next = i + 1;
            match b.get(next) {
                Some(b'$') => {
                    push(out, "$");
                    i = next + 1;
                }
                Some(b'{') | Some(b'(') => match matching(text, next) {
                    Some(close) => {
                        let whole = &text[i..=close];
                        let inner = &text[next + 1..close];
                        self.bracketed(whole, inner, depth, out);
                        i = close + 1;
                    }
                    None => {
                        push(out, "$");
                        i = next;
                    }
                },
                Some(&c) if is_name_byte(c) => {
                    let mut end = next;
                    while end < b.len() && is_name_byte(b[end]) {
                        end += 1;
                    }
                    self.name(&text[next..end], &text[i..end], depth, out);
                    i = end;
                }
                _ => {
                    push(out, "$");
                    i = next;
                }
            }
            lit = i;
        }
        push(out, &text[lit..]);
    }

    /// Expands the value of `name`; `whole` is the reference text, kept on a cycle.
    fn name(&mut self, name: &str, whole: &str, depth: usize, out: &mut String) {
        if self.stack.iter().any(|n| n == name) || depth >= MAX_DEPTH {
            push(out, whole);
            return;
        }
        if let Some(value) = self.source.lookup(name) {
            self.stack.push(name.to_string());
            self.text(&value, depth + 1, out);
            self.stack.pop();
        }
    }

    /// Handles `${inner}` / `$(inner)`; `whole` is the full reference text.
    fn bracketed(&mut self, whole: &str, inner: &str, depth: usize, out: &mut String) {
        if inner.trim_start().starts_with('{') {
            if !self.relational(inner, depth, out) {
                push(out, whole);
            }
            return;
        }
        let b = inner.as_bytes();
        let mut end = 0;
        while end < b.len() && is_name_byte(b[end]) {
            end += 1;
        }
        let (name, rest) = inner.split_at(end);
        if name.is_empty() {
            push(out, whole);
            return;
        }
        let Some(op) = rest.chars().next() else {
            self.name(name, whole, depth, out);
            return;
        };
        let arg = &rest[op.len_utf8()..];
        let set = self.source.lookup(name).is_some_and(|v| !v.is_empty());
        match op {
            '?' => self.conditional(set, arg, whole, depth, out),
            ':' => {
                if !set {
                    let value = braced(arg)
                        .filter(|(_, r)| r.trim().is_empty())
                        .map_or(arg, |(v, _)| v);
                    self.text(value, depth + 1, out);
                }
            }
            _ => push(out, whole),
        }
    }

    /// `${name?value}`, `${name?{value}}` and `${name?{a}:{b}}`.
    fn conditional(&mut self, set: bool, arg: &str, whole: &str, depth: usize, out: &mut String) {
        let Some((then, rest)) = braced(arg) else {
            if set {
                self.text(arg, depth + 1, out);
            }
            return;
        };
        let rest = rest.trim();
        let otherwise = if rest.is_empty() {
            None
        } else {
            match rest.strip_prefix(':').and_then(braced) {
                Some((v, r)) if r.trim().is_empty() => Some(v),
                _ => {
                    push(out, whole);
                    return;
                }
            }
        };
        if set {
            self.text(then, depth + 1, out);
        } else if let Some(v) = otherwise {
            self.text(v, depth + 1, out);
        }
    }

    /// `{x} OP {y} ? {a} : {b}`; returns false when malformed.
    fn relational(&mut self, inner: &str, depth: usize, out: &mut String) -> bool {
        let Some((left, rest)) = braced(inner) else {
            return false;
        };
        let rest = rest.trim_start();
        let op_len = rest
            .find(|c: char| c.is_whitespace() || c == '{')
            .unwrap_or(rest.len());
        let (op, rest) = rest.split_at(op_len);
        let Some((right, rest)) = braced(rest) else {
            return false;
        };
        let Some(rest) = rest.trim_start().strip_prefix('?') else {
            return false;
        };
        let Some((then, rest)) = braced(rest) else {
            return false;
        };
        let rest = rest.trim();
        let otherwise = if rest.is_empty() {
            None
        } else {
            match rest.strip_prefix(':').and_then(braced) {
                Some((v, r)) if r.trim().is_empty() => Some(v),
                _ => return false,
            }
        };
        let mut l = String::new();
        self.text(left, depth + 1, &mut l);
        let mut r = String::new();
        self.text(right, depth + 1, &mut r);
        let Some(truth) = compare(op, l.trim(), r.trim()) else {
            return false;
        };
        if truth {
            self.text(then, depth + 1, out);
        } else if let Some(v) = otherwise {
            self.text(v, depth + 1, out);
        }
        true
    }
}

/// Evaluates a relational operator; `None` for an unknown operator or non-numeric operands.
fn compare(op: &str, l: &str, r: &str) -> Option<bool> {
    let (base, ord) = if let Some(base) = op.strip_suffix("level") {
        (base, compare_levels(l, r)?)
    } else if op == "==" || op == "!=" {
        (
            op,
            if l == r {
                Ordering::Equal
            } else {
                Ordering::Less
            },
        )
    } else {
        (op, l.parse::<i64>().ok()?.cmp(&r.parse::<i64>().ok()?))
    };
    Some(match base {
        "==" => ord == Ordering::Equal,
        "!=" => ord != Ordering::Equal,
        "<" => ord == Ordering::Less,
        "<=" => ord != Ordering::Greater,
        ">" => ord == Ordering::Greater,
        ">=" => ord != Ordering::Less,
        _ => return None,
    })
}

/// Compares compatibility levels like `2`, `3.6`, `3.6.1` (missing fields count as 0).
/// An empty level counts as `0`.
pub(crate) fn compare_levels(l: &str, r: &str) -> Option<Ordering> {
    fn fields(s: &str) -> Option<Vec<u64>> {
        if s.is_empty() {
            return Some(vec![0]);
        }
        s.split('.').map(|f| f.parse::<u64>().ok()).collect()
    }
    let (mut a, mut b) = (fields(l)?, fields(r)?);
    let n = a.len().max(b.len());
    a.resize(n, 0);
    b.resize(n, 0);
    Some(a.cmp(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, &'static str>);
    impl Lookup for Map {
        fn lookup(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }
    fn ex(pairs: &[(&'static str, &'static str)], text: &str) -> String {
        expand(&Map(pairs.iter().copied().collect()), text)
    }

    #[test]
    fn plain_forms() {
        let m = [("a", "A"), ("b", "$a-x")];
        assert_eq!(ex(&m, "$a ${a} $(a) $b"), "A A A A-x");
        assert_eq!(ex(&m, "$$a $unknown."), "$a .");
        assert_eq!(ex(&m, "cost $ 5 $"), "cost $ 5 $");
        assert_eq!(ex(&m, "${a"), "${a");
    }

    #[test]
    fn conditionals() {
        let m = [("set", "x"), ("empty", "")];
        assert_eq!(ex(&m, "${set?yes}|${empty?yes}|${nope?yes}"), "yes||");
        assert_eq!(ex(&m, "${set:no}|${empty:no}|${nope:no}"), "|no|no");
        assert_eq!(ex(&m, "${set?{ a b }}|${empty:{c}}"), "a b|c");
        assert_eq!(ex(&m, "${set?{1}:{2}} ${empty?{1}:{2}}"), "1 2");
        assert_eq!(ex(&m, "${set?$set$set}"), "xx");
        assert_eq!(ex(&m, "${set?a:b}"), "a:b");
    }

    #[test]
    fn relational() {
        let m = [("compatibility_level", "3.6"), ("n", "5")];
        let t = "${{$compatibility_level} <level {2} ? {subnet} : {host}}";
        assert_eq!(ex(&m, t), "host");
        assert_eq!(ex(&[], t), "subnet");
        assert_eq!(ex(&m, "${{$n} == {5} ? {eq}}"), "eq");
        assert_eq!(ex(&m, "${{$n} > {7} ? {gt} : {le}}"), "le");
        assert_eq!(ex(&m, "${{$n} ~ {7} ? {a}}"), "${{$n} ~ {7} ? {a}}");
    }

    #[test]
    fn cycles_and_bombs_terminate() {
        let m = [("a", "x$a"), ("b", "$c"), ("c", "$b")];
        assert_eq!(ex(&m, "$a"), "x$a");
        assert_eq!(ex(&m, "$b"), "$b");
        let bomb = [
            ("a", "$b$b$b$b$b$b$b$b"),
            ("b", "$c$c$c$c$c$c$c$c"),
            ("c", "$d$d$d$d$d$d$d$d"),
            ("d", "$e$e$e$e$e$e$e$e"),
            ("e", "$f$f$f$f$f$f$f$f"),
            ("f", "$g$g$g$g$g$g$g$g"),
            ("g", "0123456789abcdef"),
        ];
        assert_eq!(ex(&bomb, "$a").len(), MAX_OUTPUT);
        let deep = "${a?".repeat(200) + &"}".repeat(200);
        let _ = ex(&[("a", "1")], &deep);
    }

    #[test]
    fn references() {
        assert_eq!(
            referenced_names("$a ${b?$c} $(d) $$e ${{$f} == {1}?{x}}"),
            ["a", "b", "c", "d", "f"]
        );
    }
}
