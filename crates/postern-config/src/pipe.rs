//! The command attributes of a pipe(8) service in master.cf, and its `$macro` templates.
//!
//! ```text
//! uucp  unix  -  n  n  -  -  pipe
//!   flags=Fqhu user=uucp argv=uux -r -n -z -a$sender - $nexthop!rmail ($recipient)
//! ```
//!
//! [`parse_attrs`] reads the arguments after the program name: `flags=`, `user=name[:group]`,
//! `directory=`, `chroot=`, `eol=` (C-style escapes), `null_sender=`, `size=`, and `argv=`,
//! which must come last and takes every remaining argument. Names are case-insensitive, as in
//! Postfix; an argument in `{ … }` loses its braces and the white space inside them (so `{}`
//! is an empty argument). Macro names are checked separately, by [`Template::parse`] (Postfix
//! defers mail for an unknown macro rather than refusing to start). [`Template::parse`] splits one argv element into literal text and
//! macros (`$name`, `${name}`, `$(name)`, `$$` for a `$`); only pipe's own macro names
//! ([`MACROS`]) are accepted.
//!
//! # Errors
//! Every problem is a [`PipeAttrError`] whose text is Postfix's (`unknown flag: x`,
//! `missing user= command-line attribute`, `unknown macro name: "x"`…).
//!
//! # Security
//! Pure; master.cf is trusted configuration, but nothing here panics or allocates more than
//! linear in its input. Macro values are substituted once, never re-expanded, so an address
//! containing `$` stays literal.

/// The macro names of pipe(8), and whether each depends on the recipient (an argument that
/// uses one expands once per recipient).
pub const MACROS: &[(&str, bool)] = &[
    ("client_address", false),
    ("client_helo", false),
    ("client_hostname", false),
    ("client_port", false),
    ("client_protocol", false),
    ("domain", true),
    ("envid", false),
    ("extension", true),
    ("mailbox", true),
    ("nexthop", false),
    ("original_recipient", true),
    ("queue_id", false),
    ("recipient", true),
    ("sasl_method", false),
    ("sasl_sender", false),
    ("sasl_username", false),
    ("sender", false),
    ("size", false),
    ("user", true),
];

/// Message copy flags (`flags=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipeFlags {
    /// `B`: a blank line after the message.
    pub blank_line: bool,
    /// `D`: `Delivered-To: recipient` (and loop detection).
    pub delivered_to: bool,
    /// `F`: a `From sender time` envelope line.
    pub from_line: bool,
    /// `O`: `X-Original-To: original recipient`.
    pub original_to: bool,
    /// `R`: `Return-Path: <sender>`.
    pub return_path: bool,
    /// `X`: the command does final delivery ("delivered" rather than "relayed").
    pub final_delivery: bool,
    /// `.`: lines starting with `.` get another `.`.
    pub dot_stuff: bool,
    /// `>`: lines starting with `From ` get a `>`.
    pub quote_from: bool,
    /// `h`: fold the recipient domain, `$domain` and `$nexthop` to lower case.
    pub fold_host: bool,
    /// `q`: quote the local part of `$sender`, `$recipient`, `$original_recipient`.
    pub quote_local: bool,
    /// `u`: fold the recipient local part to lower case.
    pub fold_user: bool,
}

impl PipeFlags {
    fn set(&mut self, c: char) -> Result<(), PipeAttrError> {
        let f = match c {
            'B' => &mut self.blank_line,
            'D' => &mut self.delivered_to,
            'F' => &mut self.from_line,
            'O' => &mut self.original_to,
            'R' => &mut self.return_path,
            'X' => &mut self.final_delivery,
            '.' => &mut self.dot_stuff,
            '>' => &mut self.quote_from,
            'h' => &mut self.fold_host,
            'q' => &mut self.quote_local,
            'u' => &mut self.fold_user,
            _ => return Err(PipeAttrError::UnknownFlag(c)),
        };
        *f = true;
        Ok(())
    }
}

/// The parsed attributes of one pipe service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeAttrs {
    /// `flags=`.
    pub flags: PipeFlags,
    /// `user=` account name.
    pub user: String,
    /// `user=name:group` group name, when given.
    pub group: Option<String>,
    /// `directory=`: working directory of the command.
    pub directory: Option<String>,
    /// `chroot=`: root directory of the command.
    pub chroot: Option<String>,
    /// `eol=`, unescaped (default `\n`).
    pub eol: Vec<u8>,
    /// `null_sender=` (default `MAILER-DAEMON`).
    pub null_sender: String,
    /// `size=` in bytes, 0 = no limit.
    pub size_limit: u64,
    /// `argv=` and what follows, braces removed; never empty.
    pub argv: Vec<String>,
}

/// A problem with a pipe service's attributes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipeAttrError {
    /// A character of `flags=` that pipe(8) does not know.
    #[error("unknown flag: {0}")]
    UnknownFlag(char),
    /// An argument that is no attribute.
    #[error("unknown attribute name: {0}")]
    UnknownAttribute(String),
    /// No `user=`.
    #[error("missing user= command-line attribute")]
    MissingUser,
    /// No `argv=`, or an empty command.
    #[error("missing argv= command-line attribute")]
    MissingArgv,
    /// `size=` is not a byte count.
    #[error("bad size= value: {0}")]
    BadSize(String),
    /// A `$name` that is not a pipe macro.
    #[error("unknown macro name: \"{0}\"")]
    UnknownMacro(String),
    /// `$` followed by nothing usable, or an unclosed `${`.
    #[error("bad macro reference: \"{0}\"")]
    BadMacro(String),
}

/// Removes one level of `{ … }` and the white space inside it.
fn unbrace(arg: &str) -> &str {
    crate::master::unbrace(arg)
}

/// `eol=` escapes: `\a \b \f \n \r \t \v`, `\ddd` (one to three octal digits), `\\`;
/// a backslash before another character stands for that character.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = b.get(i) else { break };
        i += 1;
        out.push(match e {
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 11,
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match b.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = (v << 3) | u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                (v & 0xff) as u8
            }
            other => other,
        });
    }
    out
}

fn strip_name<'a>(arg: &'a str, name: &str) -> Option<&'a str> {
    let head = arg.get(..name.len())?;
    head.eq_ignore_ascii_case(name).then(|| &arg[name.len()..])
}

/// Parses the service arguments after the program name (see the module docs).
pub fn parse_attrs(args: &[String]) -> Result<PipeAttrs, PipeAttrError> {
    let mut a = PipeAttrs {
        flags: PipeFlags::default(),
        user: String::new(),
        group: None,
        directory: None,
        chroot: None,
        eol: b"\n".to_vec(),
        null_sender: "MAILER-DAEMON".into(),
        size_limit: 0,
        argv: Vec::new(),
    };
    let mut have_user = false;
    for (i, raw) in args.iter().enumerate() {
        let arg = unbrace(raw);
        if let Some(v) = strip_name(arg, "flags=") {
            v.chars().try_for_each(|c| a.flags.set(c))?;
        } else if let Some(v) = strip_name(arg, "user=") {
            let (u, g) = v.split_once(':').unwrap_or((v, ""));
            a.user = u.to_string();
            a.group = (!g.is_empty()).then(|| g.to_string());
            have_user = true;
        } else if let Some(v) = strip_name(arg, "directory=") {
            a.directory = Some(v.to_string());
        } else if let Some(v) = strip_name(arg, "chroot=") {
            a.chroot = Some(v.to_string());
        } else if let Some(v) = strip_name(arg, "eol=") {
            a.eol = unescape(v);
        } else if let Some(v) = strip_name(arg, "null_sender=") {
            a.null_sender = v.to_string();
        } else if let Some(v) = strip_name(arg, "size=") {
            a.size_limit = v
                .parse()
                .map_err(|_| PipeAttrError::BadSize(v.to_string()))?;
        } else if let Some(v) = strip_name(arg, "argv=") {
            a.argv.push(v.to_string());
            a.argv
                .extend(args[i + 1..].iter().map(|s| unbrace(s).to_string()));
            break;
        } else {
            return Err(PipeAttrError::UnknownAttribute(arg.to_string()));
        }
    }
    if !have_user {
        return Err(PipeAttrError::MissingUser);
    }
    if a.argv.first().is_none_or(|c| c.is_empty()) {
        return Err(PipeAttrError::MissingArgv);
    }
    Ok(a)
}

/// One piece of a command argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text copied as is.
    Literal(String),
    /// A macro, by name (one of [`MACROS`]).
    Macro(&'static str),
}

/// One command argument, split into literals and macros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The pieces in order.
    pub segments: Vec<Segment>,
}

fn macro_name(name: &str) -> Result<&'static str, PipeAttrError> {
    MACROS
        .iter()
        .find(|(m, _)| *m == name)
        .map(|(m, _)| *m)
        .ok_or_else(|| PipeAttrError::UnknownMacro(name.to_string()))
}

impl Template {
    /// Parses `$name`, `${name}`, `$(name)` and `$$` in `arg`.
    pub fn parse(arg: &str) -> Result<Template, PipeAttrError> {
        let mut segments = Vec::new();
        let mut lit = String::new();
        let mut rest = arg;
        while let Some(pos) = rest.find('$') {
            lit.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(r) = after.strip_prefix('$') {
                lit.push('$');
                rest = r;
                continue;
            }
            let (name, r) = match after.chars().next() {
                Some(open @ ('{' | '(')) => {
                    let close = if open == '{' { '}' } else { ')' };
                    let end = after
                        .find(close)
                        .ok_or_else(|| PipeAttrError::BadMacro(arg.to_string()))?;
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
                return Err(PipeAttrError::BadMacro(arg.to_string()));
            }
            if !lit.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut lit)));
            }
            segments.push(Segment::Macro(macro_name(name)?));
            rest = r;
        }
        lit.push_str(rest);
        if !lit.is_empty() || segments.is_empty() {
            segments.push(Segment::Literal(lit));
        }
        Ok(Template { segments })
    }

    /// Whether the argument uses a recipient macro (and so expands once per recipient).
    pub fn per_recipient(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Macro(m) if MACROS.iter().any(|(n, r)| n == m && *r)))
    }

    /// The template written back as text (`${name}` forms, `$$` for a literal `$`).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Literal(l) => out.push_str(&l.replace('$', "$$")),
                Segment::Macro(m) => {
                    out.push_str("${");
                    out.push_str(m);
                    out.push('}');
                }
            }
        }
        out
    }

    /// The argument with every macro replaced by `value(name)`.
    pub fn expand(&self, mut value: impl FnMut(&str) -> String) -> String {
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Macro(m) => out.push_str(&value(m)),
            }
        }
        out
    }
}

/// Runs the parsers over arbitrary bytes (fuzz entry point): whitespace-separated words are
/// the service arguments. Properties: no panic; a parsed argv re-parses; expansion of a
/// template written back with `${name}` forms parses to the same template; expansion
/// with fixed values contains every literal.
pub fn fuzz(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let args: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    if let Ok(a) = parse_attrs(&args) {
        for arg in &a.argv {
            let Ok(t) = Template::parse(arg) else {
                continue;
            };
            let again = Template::parse(&t.to_text());
            assert_eq!(
                again.as_ref(),
                Ok(&t),
                "a template re-parses from its own text"
            );
            let out = t.expand(|_| "V".to_string());
            for s in &t.segments {
                if let Segment::Literal(l) = s {
                    assert!(out.contains(l.as_str()));
                }
            }
        }
    }
    for w in &args {
        if let Ok(t) = Template::parse(w) {
            let _ = t.per_recipient();
        }
    }
    let _ = unescape(&text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn attributes() {
        let a = parse_attrs(&args(
            "flags=DRhu. USER=vmail:mail size=100 eol=\\r\\n null_sender= directory=/tmp argv=/bin/x -f $sender",
        ))
        .unwrap();
        assert!(a.flags.delivered_to && a.flags.return_path && a.flags.dot_stuff);
        assert!(!a.flags.from_line && a.flags.fold_user && a.flags.fold_host);
        assert_eq!(
            (a.user.as_str(), a.group.as_deref()),
            ("vmail", Some("mail"))
        );
        assert_eq!((a.size_limit, a.eol.as_slice()), (100, &b"\r\n"[..]));
        assert_eq!(a.null_sender, "");
        assert_eq!(a.directory.as_deref(), Some("/tmp"));
        assert_eq!(a.argv, ["/bin/x", "-f", "$sender"]);
        let braced = vec![
            "user=u".to_string(),
            "argv=/bin/x".into(),
            "{ a b }".into(),
            "{}".into(),
        ];
        assert_eq!(parse_attrs(&braced).unwrap().argv, ["/bin/x", "a b", ""]);
    }

    #[test]
    fn attribute_errors() {
        let e = |s: &str| parse_attrs(&args(s)).unwrap_err().to_string();
        assert_eq!(e("flags=Z user=u argv=/x"), "unknown flag: Z");
        assert_eq!(
            e("user=u bogus=1 argv=/x"),
            "unknown attribute name: bogus=1"
        );
        assert_eq!(e("argv=/x"), "missing user= command-line attribute");
        assert_eq!(e("user=u"), "missing argv= command-line attribute");
        assert_eq!(e("user=u size=x argv=/x"), "bad size= value: x");
        let t = |s: &str| Template::parse(s).unwrap_err().to_string();
        assert_eq!(t("${nope}"), "unknown macro name: \"nope\"");
        assert_eq!(t("${sender"), "bad macro reference: \"${sender\"");
    }

    #[test]
    fn templates() {
        let t = Template::parse("-a$sender$$x${nexthop}!rmail($(recipient))").unwrap();
        assert!(t.per_recipient());
        assert_eq!(
            t.expand(|m| m.to_uppercase()),
            "-aSENDER$xNEXTHOP!rmail(RECIPIENT)"
        );
        assert!(!Template::parse("${size}").unwrap().per_recipient());
        assert_eq!(Template::parse("").unwrap().expand(|_| "x".into()), "");
        assert!(Template::parse("$").is_err());
        assert!(Template::parse("$sender_x").is_err());
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape("a\\r\\n\\101\\\\\\q\\"), b"a\r\nA\\q");
        fuzz(b"user=u argv=/x ${recipient} $$ {");
    }
}
