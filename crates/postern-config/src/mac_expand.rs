//! `mac_expand`: THE `$name` expander (Postfix's `mac_expand`), for main.cf values and every
//! other text with `$name` references (local(8)'s `forward_path`, `luser_relay`,
//! `mailbox_command`, `command_execution_directory`).
//!
//! Grammar (postconf(5) "Parameter expansion", Postfix 3.x):
//!
//! * `$$` is a literal `$`; a `$` not followed by a name or bracket stays literal.
//! * `$name`, `${name}`, `$(name)`: the value of `name`. A name without value inserts nothing
//!   and marks the result [`Expansion::undefined`].
//! * `${name?value}` / `${name?{value}}`: `value` (itself expanded) when `name` has a
//!   non-empty value; `${name:value}` / `${name:{value}}`: when it has none or an empty one.
//! * `${name?{a}:{b}}`: `a` when non-empty, else `b` (Postfix 3.0).
//! * `${{x} OP {y} ? {a} : {b}}`: relational test (Postfix 3.0), OP one of `==` `!=` (text),
//!   `<` `<=` `>` `>=` (decimal integers), or the same six with a `level` suffix
//!   (compatibility levels such as `3.6` compared field by field). `: {b}` is optional.
//!
//! [`Options`] chooses, as Postfix's flags do, whether looked-up values are expanded again
//! ([`Options::recurse`], main.cf) or inserted as they are and censored by a character filter
//! ([`Options::filter`], local(8)). The [`Lookup`] callback learns whether a name is only
//! tested (`?`/`:`) or inserted ([`Mode`]), as local(8) needs for `$extension`.
//!
//! Malformed references mark the result [`Expansion::error`]: an unclosed bracket ends the
//! expansion there (what came before it is kept), as Postfix does; an empty name, an unknown
//! operator or text after a closing brace is copied literally.
//!
//! # Security
//!
//! Input may come from the network (local(8) expands recipient parts), so expansion never
//! loops, explodes or panics: a name being expanded that refers back to itself (directly or
//! through other names) is left as its literal reference text, nesting depth is bounded by
//! [`Options::max_depth`], and output is cut at [`Options::max_output`] bytes (marking
//! [`Expansion::truncated`]). With a filter, every character of an inserted value that is not
//! in the filter becomes `_`, so a value cannot smuggle shell or path syntax into a command.
//!
//! # Configuration
//!
//! None: callers pass their options ([`Options::main_cf`], [`Options::local`]).

use std::cmp::Ordering;

/// Default maximum nesting of brackets / recursive references (main.cf).
pub const MAX_DEPTH: usize = 64;
/// Default maximum size of one expanded value, in bytes (main.cf).
pub const MAX_OUTPUT: usize = 1 << 20;

/// Why a name is looked up (Postfix's `MAC_EXP_MODE_TEST` / `MAC_EXP_MODE_USE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only whether it has a non-empty value matters (`${name?…}`, `${name:…}`).
    Test,
    /// Its value is inserted (`$name`, `${name}`, `$(name)`).
    Use,
}

/// Source of values.
pub trait Lookup {
    /// The raw value of `name`, or `None` when it has none.
    fn lookup(&mut self, name: &str, mode: Mode) -> Option<String>;
}

impl<F: FnMut(&str, Mode) -> Option<String>> Lookup for F {
    fn lookup(&mut self, name: &str, mode: Mode) -> Option<String> {
        self(name, mode)
    }
}

/// How to expand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options<'a> {
    /// Expand looked-up values again (main.cf), with cycle detection.
    pub recurse: bool,
    /// Characters an inserted value may keep; any other becomes `_` (values only, never the
    /// pattern text). Ignored with `recurse`.
    pub filter: Option<&'a str>,
    /// Deepest nesting of brackets and recursive values.
    pub max_depth: usize,
    /// Longest result, in bytes.
    pub max_output: usize,
}

impl Options<'static> {
    /// main.cf parameter values: values expanded recursively, no filter.
    pub const fn main_cf() -> Options<'static> {
        Options {
            recurse: true,
            filter: None,
            max_depth: MAX_DEPTH,
            max_output: MAX_OUTPUT,
        }
    }
}

impl<'a> Options<'a> {
    /// local(8) patterns: values inserted as they are, censored by `filter` when given.
    pub const fn local(filter: Option<&'a str>) -> Options<'a> {
        Options {
            recurse: false,
            filter,
            max_depth: 16,
            max_output: 64 * 1024,
        }
    }
}

/// The result of [`mac_expand`] (Postfix's `MAC_PARSE_*` status bits plus the text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The expanded text.
    pub text: String,
    /// A name was inserted that has no value (`MAC_PARSE_UNDEF`).
    pub undefined: bool,
    /// Bad syntax or nesting too deep (`MAC_PARSE_ERROR`).
    pub error: bool,
    /// The result was cut at [`Options::max_output`].
    pub truncated: bool,
}

/// Expands `text`, looking names up with `lookup`.
pub fn mac_expand(text: &str, opts: &Options<'_>, lookup: &mut impl Lookup) -> Expansion {
    let mut ex = Expander {
        lookup,
        opts,
        stack: Vec::new(),
        res: Expansion::default(),
    };
    let mut out = String::new();
    ex.text(text, 0, &mut out);
    let mut res = ex.res;
    res.text = out;
    res
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

/// Whether `c` may appear in a name inside a `$` reference.
pub fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

struct Expander<'a, 'o, L> {
    lookup: &'a mut L,
    opts: &'a Options<'o>,
    /// Names whose values are being expanded (cycle detection).
    stack: Vec<String>,
    res: Expansion,
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

/// The optional `: {b}` after a `{a}`: `Ok(None)` when `rest` is blank, `Err` when malformed.
fn otherwise(rest: &str) -> Result<Option<&str>, ()> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(None);
    }
    match rest.strip_prefix(':').and_then(braced) {
        Some((v, r)) if r.trim().is_empty() => Ok(Some(v)),
        _ => Err(()),
    }
}

impl<L: Lookup> Expander<'_, '_, L> {
    /// Appends `s` without exceeding the output limit (cutting at a char boundary).
    fn push(&mut self, out: &mut String, s: &str) {
        let room = self.opts.max_output.saturating_sub(out.len());
        if s.len() <= room {
            out.push_str(s);
        } else {
            let mut cut = room;
            while cut > 0 && !s.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push_str(&s[..cut]);
            self.res.truncated = true;
        }
    }

    /// Copies a malformed reference literally and notes the error.
    fn bad(&mut self, out: &mut String, whole: &str) {
        self.res.error = true;
        self.push(out, whole);
    }

    /// Expands `text` into `out`.
    fn text(&mut self, text: &str, depth: usize, out: &mut String) {
        if depth > self.opts.max_depth {
            self.bad(out, text);
            return;
        }
        let b = text.as_bytes();
        let mut i = 0;
        let mut lit = 0;
        while i < b.len() {
            if out.len() >= self.opts.max_output {
                self.res.truncated = true;
                return;
            }
            if b[i] != b'$' {
                i += 1;
                continue;
            }
            self.push(out, &text[lit..i]);
            let next = i + 1;
            match b.get(next) {
                Some(b'$') => {
                    self.push(out, "$");
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
                        // A truncated reference ends the expansion (Postfix's mac_parse).
                        self.res.error = true;
                        return;
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
                    self.push(out, "$");
                    i = next;
                }
            }
            lit = i;
        }
        self.push(out, &text[lit..]);
    }

    /// Inserts the value of `name`; `whole` is the reference text, kept on a cycle.
    fn name(&mut self, name: &str, whole: &str, depth: usize, out: &mut String) {
        if self.stack.iter().any(|n| n == name) || depth >= self.opts.max_depth {
            self.bad(out, whole);
            return;
        }
        let Some(value) = self.lookup.lookup(name, Mode::Use) else {
            self.res.undefined = true;
            return;
        };
        if self.opts.recurse {
            self.stack.push(name.to_string());
            self.text(&value, depth + 1, out);
            self.stack.pop();
        } else if let Some(filter) = self.opts.filter {
            let censored: String = value
                .chars()
                .map(|c| if filter.contains(c) { c } else { '_' })
                .collect();
            self.push(out, &censored);
        } else {
            self.push(out, &value);
        }
    }

    /// Handles `${inner}` / `$(inner)`; `whole` is the full reference text.
    fn bracketed(&mut self, whole: &str, inner: &str, depth: usize, out: &mut String) {
        if inner.trim_start().starts_with('{') {
            if !self.relational(inner, depth, out) {
                self.bad(out, whole);
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
            self.bad(out, whole);
            return;
        }
        let Some(op) = rest.chars().next() else {
            self.name(name, whole, depth, out);
            return;
        };
        let arg = &rest[op.len_utf8()..];
        if op != '?' && op != ':' {
            self.bad(out, whole);
            return;
        }
        let set = self
            .lookup
            .lookup(name, Mode::Test)
            .is_some_and(|v| !v.is_empty());
        if op == '?' {
            self.conditional(set, arg, whole, depth, out);
        } else if !set {
            let value = braced(arg)
                .filter(|(_, r)| r.trim().is_empty())
                .map_or(arg, |(v, _)| v);
            self.text(value, depth + 1, out);
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
        let Ok(other) = otherwise(rest) else {
            self.bad(out, whole);
            return;
        };
        if set {
            self.text(then, depth + 1, out);
        } else if let Some(v) = other {
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
        let Ok(other) = otherwise(rest) else {
            return false;
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
        } else if let Some(v) = other {
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
pub fn compare_levels(l: &str, r: &str) -> Option<Ordering> {
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

/// Fuzz entry point: `data` (lossy UTF-8) as a pattern, expanded in main.cf mode against a
/// small self-referencing table and in local mode with a filter. Properties: no panic;
/// output within the limit; a filtered expansion of a pattern without `$` is the pattern;
/// a pattern's `$$`-escaped form expands back to it.
pub fn fuzz(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut table = |name: &str, _: Mode| -> Option<String> {
        match name {
            "a" => Some("$b$b".into()),
            "b" => Some("${a?x}$c".into()),
            "c" => Some("3.6".into()),
            "e" => Some(String::new()),
            "v" => Some(text.chars().take(64).collect()),
            _ => None,
        }
    };
    let small = Options {
        max_output: 4096,
        ..Options::main_cf()
    };
    let r = mac_expand(&text, &small, &mut table);
    assert!(r.text.len() <= small.max_output);
    let filter = "abcdefghijklmnopqrstuvwxyz0123456789/.";
    let r = mac_expand(&text, &Options::local(Some(filter)), &mut table);
    assert!(r.text.len() <= Options::local(None).max_output);
    if !text.contains('$') && text.len() <= 4096 {
        assert_eq!(r.text, text, "text without references is kept");
    }
    if text.len() <= 4096 {
        let escaped = text.replace('$', "$$");
        let back = mac_expand(&escaped, &small, &mut table);
        assert_eq!(back.text, text, "$$ escapes every $");
        assert!(!back.error && !back.undefined);
    }
    let _ = referenced_names(&text);
}

#[cfg(test)]
mod tests;
