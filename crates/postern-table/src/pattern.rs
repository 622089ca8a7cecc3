//! `regexp:` and `pcre:` tables (regexp_table(5), pcre_table(5)).
//!
//! A rule is `[!]/pattern/flags result`; `if [!]/pattern/flags` … `endif` blocks nest; the
//! delimiter may be any non-alphanumeric, non-blank character. Patterns are tried in order
//! against the whole key; the first that applies wins. `$1`…, `${1}`, `$(1)` in a result
//! are replaced by captured text (empty when the group did not take part), `$$` by `$`.
//! Rules that Postfix skips with a warning are skipped here with the same warning: unknown
//! flags, a bad pattern, `$n` out of range or in a negated rule, bad `$` syntax.
//!
//! `regexp:` patterns are POSIX (see [`crate::posix`] for what differs from glibc).
//! Flags: `i` (case-insensitive, default on), `x` (extended syntax, default on), `m`
//! (multi-line, default off). `pcre:` patterns use PCRE2 itself. Flags: `i` (default on),
//! `m`, `s` (dotall, default on), `x`, `A` (anchored), `U` (ungreedy); `E` (dollar-endonly)
//! and `X` are accepted and ignored (the pcre2 crate exposes no switch for `E`; Postfix
//! built with PCRE2 ignores `X` too).

use crate::cidr::{Keyword, keyword, negation, rhs, source_lines};
use crate::program::Program;
use crate::source::{Line, Warnings};
use crate::{MAX_RESULT_BYTES, Map, MapFlags, OpenOptions, TableError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Posix,
    Pcre,
}

#[derive(Debug)]
pub(crate) enum Matcher {
    Posix(regex::Regex),
    Pcre(pcre2::bytes::Regex),
}

#[derive(Debug)]
enum Part {
    Text(String),
    Group(usize),
}

/// One pattern test: `re` matches and, in regexp's `/pat1/!/pat2/` form, `unless` does
/// not. `$n` refer to the groups of `re`.
#[derive(Debug)]
pub(crate) struct Pat {
    re: Matcher,
    unless: Option<Matcher>,
}

#[derive(Debug)]
pub(crate) struct PatternMap {
    spec: String,
    program: Program<Pat, Vec<Part>>,
    warnings: Vec<TableError>,
}

impl PatternMap {
    pub(crate) fn open(
        spec: &str,
        name: &str,
        opts: &OpenOptions,
        dialect: Dialect,
    ) -> Result<Self, TableError> {
        let kind = match dialect {
            Dialect::Posix => "regexp",
            Dialect::Pcre => "pcre",
        };
        let (file, lines) = source_lines(kind, spec, name)?;
        Self::from_lines(spec, &file, lines, opts, dialect)
    }

    /// The table from its logical lines; `file` names it in warnings.
    pub(crate) fn from_lines(
        spec: &str,
        file: &str,
        lines: Vec<Line>,
        opts: &OpenOptions,
        dialect: Dialect,
    ) -> Result<Self, TableError> {
        let mut w = Warnings::new(file, opts.strict);
        let mut program = Program::new();
        for line in lines {
            parse_line(&line, dialect, opts, &mut program, &mut w)?;
        }
        let program = program.finish(&mut w)?;
        Ok(PatternMap {
            spec: spec.to_string(),
            program,
            warnings: w.list,
        })
    }

    fn query_error(&self, message: String) -> TableError {
        TableError::Lookup {
            table: self.spec.clone(),
            message,
        }
    }
}

fn parse_line(
    line: &Line,
    dialect: Dialect,
    opts: &OpenOptions,
    program: &mut Program<Pat, Vec<Part>>,
    w: &mut Warnings,
) -> Result<(), TableError> {
    let n = line.number;
    match keyword(&line.text) {
        Keyword::Endif(extra) => {
            if !extra.is_empty() {
                w.warn(n, "ignoring extra text after ENDIF")?;
            }
            program.endif(n, w, "ignoring ENDIF without matching IF")
        }
        Keyword::If(rest) => {
            let (negate, rest) = negation(rest);
            let (matcher, extra) = match compile(rest, dialect, false) {
                Ok(parsed) => parsed,
                Err(message) => return w.warn(n, message),
            };
            let extra = extra.trim();
            if !extra.is_empty() {
                w.warn(
                    n,
                    format!("ignoring extra text after IF statement: \"{extra}\""),
                )?;
                w.warn(
                    n,
                    "do not prepend whitespace to statements between IF and ENDIF",
                )?;
            }
            let pat = Pat {
                re: matcher,
                unless: None,
            };
            program.open_if(n, pat, negate, w)
        }
        Keyword::None => {
            let (negate, rest) = negation(&line.text);
            let (matcher, mut result) = match compile(rest, dialect, false) {
                Ok(parsed) => parsed,
                Err(message) => return w.warn(n, message),
            };
            // regexp's `/pat1/!/pat2/`: the `!` follows the first pattern's flags directly.
            let mut unless = None;
            if let Some(second) = result.strip_prefix('!') {
                match compile(second.trim_start(), dialect, true) {
                    Ok((m, after)) => {
                        unless = Some(m);
                        result = after;
                    }
                    Err(message) => return w.warn(n, message),
                }
            }
            let result = result.trim_start();
            if result.is_empty() {
                w.warn(n, "no replacement text: using empty string")?;
            }
            let Some(result) = rhs(result, n, opts, w)? else {
                return Ok(());
            };
            match parse_result(&result, negate, groups(&matcher)) {
                Ok(parts) => program.rule(
                    Pat {
                        re: matcher,
                        unless,
                    },
                    negate,
                    parts,
                ),
                Err(notes) => {
                    for note in notes {
                        match note {
                            Note::Line(m) => w.warn(n, m)?,
                            Note::Raw(m) => w.note(m)?,
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

/// Parses `/pattern/flags…`; returns the compiled pattern and the text after the flags.
/// Flags end at a blank, and for regexp also at the `!` of `/pat1/!/pat2/`.
/// A rule or `if` must start with a punctuation delimiter (else Postfix ignores the line as
/// an unrecognized request); the second pattern of `/pat1/!/pat2/` may use any character.
fn compile(text: &str, dialect: Dialect, second: bool) -> Result<(Matcher, &str), String> {
    let mut chars = text.char_indices();
    let delim = match chars.next() {
        Some((_, d)) if second || (!d.is_alphanumeric() && !d.is_whitespace() && d != '\\') => d,
        Some(_) => return Err("ignoring unrecognized request".to_string()),
        None => return Err("no regexp pattern: skipping this rule".to_string()),
    };
    let start = delim.len_utf8();
    let mut end = None;
    let mut escaped = false;
    for (i, c) in chars {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == delim {
            end = Some(i);
            break;
        }
    }
    let end =
        end.ok_or_else(|| format!("no closing regexp delimiter \"{delim}\": skipping this rule"))?;
    let pattern = &text[start..end];
    let after = &text[end + delim.len_utf8()..];
    let flag_end = after
        .find(|c: char| c.is_ascii_whitespace() || (c == '!' && dialect == Dialect::Posix))
        .unwrap_or(after.len());
    let (flags, rest) = after.split_at(flag_end);
    let matcher = match dialect {
        Dialect::Posix => compile_posix(pattern, flags)?,
        Dialect::Pcre => compile_pcre(pattern, flags)?,
    };
    Ok((matcher, rest))
}

fn unknown_flag(c: char) -> String {
    format!("unknown regexp option \"{c}\": skipping this rule")
}

fn compile_posix(pattern: &str, flags: &str) -> Result<Matcher, String> {
    let (mut icase, mut extended, mut multi) = (true, true, false);
    for c in flags.chars() {
        match c {
            'i' => icase = !icase,
            'x' => extended = !extended,
            'm' => multi = !multi,
            other => return Err(unknown_flag(other)),
        }
    }
    let translated = crate::posix::translate(pattern, extended).map_err(|e| regerror(&e))?;
    regex::RegexBuilder::new(&translated)
        .case_insensitive(icase)
        .multi_line(multi)
        .dot_matches_new_line(!multi)
        .build()
        .map(Matcher::Posix)
        .map_err(|e| regerror(&e.to_string()))
}

/// glibc's regerror() text for a pattern error, as Postfix logs it (no "skipping" suffix).
fn regerror(detail: &str) -> String {
    const TEXTS: &[(&str, &str)] = &[
        ("unclosed group", "Unmatched ( or \\("),
        ("unopened group", "Unmatched ) or \\)"),
        ("not balanced", "Unmatched [, [^, [:, [., or [="),
        ("unclosed character class", "Unmatched [, [^, [:, [., or [="),
        ("trailing backslash", "Trailing backslash"),
        ("character class", "Invalid character class name"),
        (
            "repetition operator missing expression",
            "Invalid preceding regular expression",
        ),
        ("repetition", "Invalid content of \\{\\}"),
        ("decimal", "Invalid content of \\{\\}"),
        ("back-reference", "Invalid back reference"),
        ("collation", "Invalid collation character"),
        ("range", "Invalid range end"),
    ];
    let lower = detail.to_ascii_lowercase();
    TEXTS
        .iter()
        .find(|(key, _)| lower.contains(key))
        .map_or("Invalid regular expression", |(_, text)| text)
        .to_string()
}

fn compile_pcre(pattern: &str, flags: &str) -> Result<Matcher, String> {
    let (mut icase, mut multi, mut dotall, mut ext, mut anchored, mut ungreedy) =
        (true, false, true, false, false, false);
    for c in flags.chars() {
        match c {
            'i' => icase = !icase,
            'm' => multi = !multi,
            's' => dotall = !dotall,
            'x' => ext = !ext,
            'A' => anchored = !anchored,
            'U' => ungreedy = !ungreedy,
            'E' | 'X' => {}
            other => return Err(unknown_flag(other)),
        }
    }
    let mut full = String::with_capacity(pattern.len() + 12);
    if ungreedy {
        full.push_str("(?U)");
    }
    if anchored {
        // The newline ends a `#` comment in extended mode before our closing parenthesis.
        full.push_str("\\A(?:");
        full.push_str(pattern);
        full.push_str(if ext { "\n)" } else { ")" });
    } else {
        full.push_str(pattern);
    }
    pcre2::bytes::RegexBuilder::new()
        .caseless(icase)
        .multi_line(multi)
        .dotall(dotall)
        .extended(ext)
        .utf(true)
        .jit_if_available(true)
        .build(&full)
        .map(Matcher::Pcre)
        .map_err(|e| {
            // Display is "PCRE2: error compiling pattern at offset N: MESSAGE".
            let text = e.to_string();
            let message = text.rsplit_once(": ").map_or(text.as_str(), |(_, m)| m);
            match e.offset() {
                Some(at) => format!("error in regex at offset {at}: {message}"),
                None => format!("error in regex: {message}"),
            }
        })
}

/// Number of capturing groups, not counting the whole match.
fn groups(m: &Matcher) -> usize {
    match m {
        Matcher::Posix(re) => re.captures_len() - 1,
        Matcher::Pcre(re) => re.captures_len() - 1,
    }
}

/// Why a rule's result is refused: the warnings to log, in order.
enum Note {
    /// With the map's `NAME, line N:` prefix.
    Line(String),
    /// Without it (Postfix's `$name` parser).
    Raw(String),
}

fn bad_syntax(first: Note) -> Vec<Note> {
    vec![
        first,
        Note::Line("bad replacement syntax: skipping this rule".to_string()),
    ]
}

/// Splits a result into text and `$n` references, checking them as Postfix does.
fn parse_result(text: &str, negate: bool, groups: usize) -> Result<Vec<Part>, Vec<Note>> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        literal.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, tail) = match after.chars().next() {
            Some('$') => {
                literal.push('$');
                rest = &after[1..];
                continue;
            }
            Some(open @ ('{' | '(')) => {
                let close = if open == '{' { '}' } else { ')' };
                let end = after.find(close).ok_or_else(|| {
                    bad_syntax(Note::Raw(format!("truncated macro reference: \"{text}\"")))
                })?;
                (&after[1..end], &after[end + 1..])
            }
            _ => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if name.is_empty() {
            return Err(bad_syntax(Note::Raw(format!(
                "empty macro name: \"{text}\""
            ))));
        }
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_syntax(Note::Line(format!(
                "non-numeric replacement index \"{name}\""
            ))));
        }
        let index = name.parse::<usize>().unwrap_or(usize::MAX);
        if negate {
            return Err(vec![Note::Line(
                "$number found in negative match replacement text: skipping this rule".to_string(),
            )]);
        }
        if index == 0 || index > groups {
            return Err(vec![Note::Line(format!(
                "out of range replacement index \"{name}\": skipping this rule"
            ))]);
        }
        if !literal.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut literal)));
        }
        parts.push(Part::Group(index));
        rest = tail;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Text(literal));
    }
    Ok(parts)
}

/// Builds the result from captured groups (`None` for a group that did not take part).
fn expand(parts: &[Part], group: impl Fn(usize) -> Option<String>) -> Option<String> {
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Group(n) => out.push_str(&group(*n).unwrap_or_default()),
        }
        if out.len() > MAX_RESULT_BYTES {
            return None;
        }
    }
    Some(out)
}

impl Map for PatternMap {
    fn lookup(&self, key: &str) -> Result<Option<String>, TableError> {
        let is_match = |m: &Matcher| match m {
            Matcher::Posix(re) => Ok(re.is_match(key)),
            Matcher::Pcre(re) => re
                .is_match(key.as_bytes())
                .map_err(|e| self.query_error(e.to_string())),
        };
        let test = |p: &Pat| {
            let hit = is_match(&p.re)?
                && match &p.unless {
                    Some(m) => !is_match(m)?,
                    None => true,
                };
            Ok(Some(hit))
        };
        let Some((pat, parts)) = self.program.first(test)? else {
            return Ok(None);
        };
        let matcher = &pat.re;
        let needs_groups = parts.iter().any(|p| matches!(p, Part::Group(_)));
        let result = match matcher {
            _ if !needs_groups => expand(parts, |_| None),
            Matcher::Posix(re) => {
                let caps = re.captures(key);
                expand(parts, |n| {
                    caps.as_ref()?.get(n).map(|m| m.as_str().to_string())
                })
            }
            Matcher::Pcre(re) => {
                let caps = re
                    .captures(key.as_bytes())
                    .map_err(|e| self.query_error(e.to_string()))?;
                expand(parts, |n| {
                    caps.as_ref()?
                        .get(n)
                        .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
                })
            }
        };
        result
            .map(Some)
            .ok_or_else(|| self.query_error(format!("result longer than {MAX_RESULT_BYTES} bytes")))
    }
    fn name(&self) -> &str {
        &self.spec
    }
    fn flags(&self) -> MapFlags {
        MapFlags {
            fold_case: false,
            pattern: true,
        }
    }
    fn warnings(&self) -> &[TableError] {
        &self.warnings
    }
}

#[cfg(test)]
mod tests;
