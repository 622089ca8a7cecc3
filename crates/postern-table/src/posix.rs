//! Translating POSIX regular expressions (as Postfix's `regexp:` tables use them, with the
//! GNU extensions glibc accepts) into the syntax of the `regex` crate.
//!
//! The `regex` crate differs from POSIX in ways that matter for table files:
//! * inside `[...]` a backslash is an ordinary character in POSIX, an escape in `regex`;
//! * `\<` and `\>` (GNU word boundaries) are `\b{start}`/`\b{end}`;
//! * a `{` that does not start an interval, or a `*` with nothing to repeat, is a literal;
//! * basic REs (the `x` flag toggled off) use `\(`, `\)`, `\{`, `\}`, `\|`, `\+`, `\?`.
//!
//! What is not translated: back-references (`\1`, rejected), collating elements of more than
//! one character (rejected), and POSIX leftmost-longest submatch rules: `regex` picks the
//! leftmost-first alternative, so `$n` can differ for patterns such as `(a|ab)(c|bcd)`.

/// Translates `pattern` (ERE when `extended`, else BRE) to `regex` syntax.
pub(crate) fn translate(pattern: &str, extended: bool) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    // Whether the previous item can take a repetition operator.
    let mut atom = false;
    // Whether the output ends with a `*`, `+` or `?` operator: POSIX stacks a second one on
    // it (`x+?` is `(x+)?`, greedy), where `regex` would read a lazy quantifier.
    let mut last_rep = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        let stacked = std::mem::take(&mut last_rep);
        let op = c == '*' || (extended && (c == '+' || c == '?'));
        if op
            && atom
            && stacked
            && let Some(prev) = out.pop()
        {
            out.push(if prev == c && c != '*' { c } else { '*' });
            last_rep = true;
            continue;
        }
        match c {
            '\\' => {
                let Some(&next) = chars.get(i) else {
                    return Err("trailing backslash (\\)".to_string());
                };
                i += 1;
                atom = escape(next, extended, &chars, &mut i, &mut out, atom)?;
            }
            '[' => {
                i = bracket(&chars, i, &mut out)?;
                atom = true;
            }
            '*' if !atom => {
                out.push_str("\\*");
                atom = true;
            }
            '*' => {
                out.push('*');
                last_rep = true;
            }
            '{' if extended && atom && interval_end(&chars, i, false).is_some() => {
                let end = interval_end(&chars, i, false).unwrap_or(i);
                out.extend(&chars[i - 1..end]);
                i = end;
            }
            '+' | '?' if extended && atom => {
                out.push(c);
                last_rep = true;
            }
            '+' | '?' if extended => out.push_str(&regex::escape(&c.to_string())),
            '(' | '|' if extended => {
                out.push(c);
                atom = false;
            }
            ')' if extended => {
                out.push(c);
                atom = true;
            }
            '^' if extended || start_of_bre(&out) => {
                out.push('^');
                atom = false;
            }
            '$' if extended || end_of_bre(&chars, i) => {
                out.push('$');
                atom = false;
            }
            '.' => {
                out.push('.');
                atom = true;
            }
            _ => {
                push_literal(c, &mut out);
                atom = true;
            }
        }
    }
    Ok(out)
}

/// Handles `\c`; returns whether the result is a repeatable atom.
fn escape(
    c: char,
    extended: bool,
    chars: &[char],
    i: &mut usize,
    out: &mut String,
    atom: bool,
) -> Result<bool, String> {
    if !extended {
        match c {
            '(' | '|' => {
                out.push(c);
                return Ok(false);
            }
            ')' => {
                out.push(')');
                return Ok(true);
            }
            '{' if atom => {
                let end = interval_end(chars, *i, true).ok_or("invalid \\{ interval")?;
                out.push('{');
                out.extend(chars[*i..end - 2].iter());
                out.push('}');
                *i = end;
                return Ok(true);
            }
            '+' | '?' if atom => {
                out.push(c);
                return Ok(true);
            }
            _ => {}
        }
    }
    let (text, is_atom) = match c {
        '<' => ("\\b{start}", false),
        '>' => ("\\b{end}", false),
        'b' => ("\\b", false),
        'B' => ("\\B", false),
        '`' => ("\\A", false),
        '\'' => ("\\z", false),
        'w' => ("\\w", true),
        'W' => ("\\W", true),
        's' => ("\\s", true),
        'S' => ("\\S", true),
        '1'..='9' => return Err("back-references are not supported".to_string()),
        c if c.is_ascii_alphanumeric() => return Err(format!("unsupported escape \\{c}")),
        c => {
            push_literal(c, out);
            return Ok(true);
        }
    };
    out.push_str(text);
    Ok(is_atom)
}

/// If `chars[start..]` is `m}`, `m,}` or `m,n}` (BRE: ending in `\}`), the index after it.
fn interval_end(chars: &[char], start: usize, bre: bool) -> Option<usize> {
    let mut i = start;
    let digits = |i: &mut usize| {
        let from = *i;
        while chars.get(*i).is_some_and(char::is_ascii_digit) {
            *i += 1;
        }
        *i > from
    };
    if !digits(&mut i) {
        return None;
    }
    if chars.get(i) == Some(&',') {
        i += 1;
        digits(&mut i);
    }
    if bre {
        (chars.get(i) == Some(&'\\') && chars.get(i + 1) == Some(&'}')).then_some(i + 2)
    } else {
        (chars.get(i) == Some(&'}')).then_some(i + 1)
    }
}

fn start_of_bre(out: &str) -> bool {
    out.is_empty() || out.ends_with('(') || out.ends_with('|')
}

fn end_of_bre(chars: &[char], i: usize) -> bool {
    i == chars.len() || (chars.get(i) == Some(&'\\') && matches!(chars.get(i + 1), Some(')' | '|')))
}

fn push_literal(c: char, out: &mut String) {
    if c.is_alphanumeric() || c == ' ' || c == '_' {
        out.push(c);
    } else {
        out.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
    }
}

/// Copies the POSIX bracket expression starting after `[` at `start`; returns the index
/// after its closing `]`.
fn bracket(chars: &[char], start: usize, out: &mut String) -> Result<usize, String> {
    let unbalanced = || "brackets ([ ]) not balanced".to_string();
    let mut i = start;
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    loop {
        let &c = chars.get(i).ok_or_else(unbalanced)?;
        if c == ']' && !first {
            out.push(']');
            return Ok(i + 1);
        }
        first = false;
        if c == '[' && matches!(chars.get(i + 1), Some(':' | '=' | '.')) {
            i = bracket_special(chars, i, out)?;
            continue;
        }
        push_class_char(c, out);
        i += 1;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&n| n != ']') {
            out.push('-');
            let &hi = chars.get(i + 1).ok_or_else(unbalanced)?;
            push_class_char(hi, out);
            i += 2;
        }
    }
}

/// `[:class:]`, `[=c=]` or `[.c.]` inside a bracket expression.
fn bracket_special(chars: &[char], i: usize, out: &mut String) -> Result<usize, String> {
    let kind = chars[i + 1];
    let body_start = i + 2;
    let mut j = body_start;
    while j + 1 < chars.len() && !(chars[j] == kind && chars[j + 1] == ']') {
        j += 1;
    }
    if j + 1 >= chars.len() {
        return Err("brackets ([ ]) not balanced".to_string());
    }
    let body: String = chars[body_start..j].iter().collect();
    match kind {
        ':' => {
            const CLASSES: &[&str] = &[
                "alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
                "space", "upper", "xdigit",
            ];
            if !CLASSES.contains(&body.as_str()) {
                return Err(format!("invalid character class [:{body}:]"));
            }
            out.push_str(&format!("[:{body}:]"));
        }
        _ => {
            let mut it = body.chars();
            match (it.next(), it.next()) {
                (Some(c), None) => push_class_char(c, out),
                _ => return Err(format!("invalid collation element [{kind}{body}{kind}]")),
            }
        }
    }
    Ok(j + 2)
}

fn push_class_char(c: char, out: &mut String) {
    if c.is_alphanumeric() || c == ' ' || c == '_' {
        out.push(c);
    } else {
        out.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
    }
}

#[cfg(test)]
mod tests {
    use super::translate;

    fn m(pattern: &str, extended: bool, text: &str) -> bool {
        let t = translate(pattern, extended).unwrap();
        regex::Regex::new(&t).unwrap().is_match(text)
    }

    #[test]
    fn ere_basics() {
        assert!(m("^a+b$", true, "aab"));
        assert!(m("[\\.]x", true, "\\x"));
        assert!(m("[\\.]x", true, ".x"));
        assert!(m("\\<word\\>", true, "a word here"));
        assert!(!m("\\<word\\>", true, "swordfish"));
        assert!(m("a{2}", true, "aa"));
        assert!(m("a{x", true, "a{x"));
        assert!(m("*a", true, "*a"));
        assert!(m("[]a]", true, "]"));
        assert!(m("[^]a]", true, "b"));
        assert!(m("[[:digit:]-]+$", true, "12-3"));
        assert!(m("[a-c&~]", true, "&"));
        assert!(m("x#y", true, "x#y"));
        assert!(m("\\/", true, "/"));
        // Stacked operators are POSIX's, not lazy quantifiers.
        assert_eq!(translate("x+?", true).unwrap(), "x*");
        assert_eq!(translate("x??", true).unwrap(), "x?");
        assert_eq!(translate("x++", true).unwrap(), "x+");
        assert_eq!(translate("x?+*", true).unwrap(), "x*");
    }

    #[test]
    fn bre_basics() {
        assert!(m("\\(ab\\)\\{2\\}", false, "abab"));
        assert!(m("a+b", false, "a+b"));
        assert!(!m("a+b", false, "aab"));
        assert!(m("a\\+b", false, "aab"));
        assert!(m("x^y$", false, "x^y"));
        assert!(m("(a)", false, "(a)"));
    }

    #[test]
    fn rejected() {
        assert!(translate("(a)\\1", true).is_err());
        assert!(translate("\\d", true).is_err());
        assert!(translate("[a", true).is_err());
        assert!(translate("[[:nope:]]", true).is_err());
        assert!(translate("a\\", true).is_err());
    }
}
