//! master.cf syntax: one service per logical line.
//!
//! Fields (master(5)): `service type private unpriv chroot wakeup maxproc command [args…]`.
//! Logical lines and comments follow the main.cf rules (leading whitespace continues a line).
//! Columns 3–7 accept `-` for the built-in default: private `y` (inet services are never
//! private), unpriv `y`, chroot `n`, wakeup none, maxproc `$default_process_limit`.
//! The wakeup column is a number of seconds, optionally followed by `?` (wake only after first
//! use); `0` means none. In the command field, `-o name=value` (or `-oname=value`, or
//! `-o { name = value with spaces }`) is moved into the service's overrides, up to the first
//! argument that does not start with `-` (the program's own arguments, such as a pipe
//! command's `argv=/usr/sbin/sendmail -oi …`, are never taken as overrides); a `{ … }` group is
//! one argument. Other arguments are kept verbatim, braces included, for the program to parse.
//!
//! # Errors
//!
//! Every bad line yields one error naming its line: too few fields, unknown type, bad flag,
//! wakeup or maxproc column, a malformed `-o`, or an unbalanced `{`. A later service with the
//! same name and type replaces the earlier one (in the earlier one's position).
//!
//! # Security
//!
//! Pure; line length bounded by the logical-line splitter; never panics.

use crate::parse_main::{logical_lines, split_name_value};
use crate::{MasterCf, ParseError, Service, ServiceType, Wakeup};

/// Splits a command field into words; `{ … }` (with nesting) is one word, braces kept.
fn words(text: &str) -> Result<Vec<&str>, String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if b[i] == b'{' {
            let mut depth = 0usize;
            while i < b.len() {
                match b[i] {
                    b'{' => depth += 1,
                    b'}' => depth -= 1,
                    _ => {}
                }
                i += 1;
                if depth == 0 {
                    break;
                }
            }
            if depth != 0 {
                return Err("missing '}'".to_string());
            }
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
        }
        out.push(&text[start..i]);
    }
    Ok(out)
}

/// Strips one level of `{ … }` and surrounding whitespace, if present.
pub(crate) fn unbrace(word: &str) -> &str {
    match word.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
        Some(inner) => inner.trim(),
        None => word,
    }
}

fn service_type(s: &str) -> Result<ServiceType, String> {
    Ok(match s {
        "inet" => ServiceType::Inet,
        "unix" => ServiceType::Unix,
        "unix-dgram" => ServiceType::UnixDgram,
        "fifo" => ServiceType::Fifo,
        "pass" => ServiceType::Pass,
        _ => return Err(format!("unknown service type: {s:?}")),
    })
}

/// The master.cf spelling of a service type.
pub fn type_name(t: ServiceType) -> &'static str {
    match t {
        ServiceType::Inet => "inet",
        ServiceType::Unix => "unix",
        ServiceType::UnixDgram => "unix-dgram",
        ServiceType::Fifo => "fifo",
        ServiceType::Pass => "pass",
    }
}

fn flag(column: &str, s: &str, default: bool) -> Result<bool, String> {
    match s {
        "-" => Ok(default),
        "y" | "yes" => Ok(true),
        "n" | "no" => Ok(false),
        _ => Err(format!("bad {column} field (want y, n or -): {s:?}")),
    }
}

fn wakeup(s: &str) -> Result<Option<Wakeup>, String> {
    if s == "-" {
        return Ok(None);
    }
    let (num, conditional) = match s.strip_suffix('?') {
        Some(n) => (n, true),
        None => (s, false),
    };
    let seconds: u32 = parse_decimal(num).ok_or_else(|| format!("bad wakeup field: {s:?}"))?;
    Ok((seconds > 0).then_some(Wakeup {
        seconds,
        conditional,
    }))
}

fn maxproc(s: &str) -> Result<Option<u32>, String> {
    if s == "-" {
        return Ok(None);
    }
    parse_decimal(s)
        .map(Some)
        .ok_or_else(|| format!("bad maxproc field: {s:?}"))
}

/// Digits only (no sign, no spaces), within range.
fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses one `-o` argument (`name=value` or `{ name = value }`).
fn override_arg(arg: &str) -> Result<(String, String), String> {
    let (name, value) =
        split_name_value(unbrace(arg)).map_err(|e| format!("bad -o argument: {e}"))?;
    Ok((name.to_string(), value.to_string()))
}

/// Parses one logical line into a service.
fn service(line: usize, text: &str) -> Result<Service, String> {
    let fields = words(text)?;
    if fields.len() < 8 {
        return Err(format!(
            "expected at least 8 fields, found {}",
            fields.len()
        ));
    }
    let kind = service_type(fields[1])?;
    let private = flag("private", fields[2], true)? && kind != ServiceType::Inet;
    let mut svc = Service {
        name: fields[0].to_string(),
        kind,
        private,
        unpriv: flag("unpriv", fields[3], true)?,
        chroot: flag("chroot", fields[4], false)?,
        wakeup: wakeup(fields[5])?,
        maxproc: maxproc(fields[6])?,
        command: fields[7].to_string(),
        args: Vec::new(),
        overrides: Vec::new(),
        line,
    };
    let mut rest = fields[8..].iter();
    while let Some(&arg) = rest.next() {
        if !arg.starts_with('-') {
            // Options end at the first non-option, as for Postfix's daemons:
            // a pipe command's own `-oi` or `-o` stays in its argv.
            svc.args.push(arg.to_string());
            svc.args.extend(rest.by_ref().map(|a| a.to_string()));
            break;
        }
        if arg == "-o" {
            let value = rest.next().ok_or("-o without name=value")?;
            svc.overrides.push(override_arg(value)?);
        } else if let Some(attached) = arg.strip_prefix("-o") {
            svc.overrides.push(override_arg(attached)?);
        } else {
            svc.args.push(arg.to_string());
        }
    }
    Ok(svc)
}

/// See [`crate::parse_master_cf`].
pub(crate) fn parse(text: &str) -> Result<MasterCf, Vec<ParseError>> {
    let (lines, mut errors) = logical_lines(text);
    let mut services: Vec<Service> = Vec::new();
    for l in lines {
        match service(l.line, &l.text) {
            Ok(svc) => match services
                .iter_mut()
                .find(|s| s.name == svc.name && s.kind == svc.kind)
            {
                Some(old) => *old = svc,
                None => services.push(svc),
            },
            Err(message) => errors.push(ParseError {
                line: l.line,
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(MasterCf { services })
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Service {
        let m = parse(text).unwrap();
        assert_eq!(m.services.len(), 1);
        m.services.into_iter().next().unwrap()
    }

    #[test]
    fn defaults_and_flags() {
        let s = one("cleanup   unix  n       -       n       -       0       cleanup\n");
        assert_eq!((s.name.as_str(), s.kind), ("cleanup", ServiceType::Unix));
        assert_eq!((s.private, s.unpriv, s.chroot), (false, true, false));
        assert_eq!((s.wakeup, s.maxproc), (None, Some(0)));
        assert_eq!(s.command, "cleanup");
        let s = one("x unix - n y 60 1 pickup");
        assert_eq!((s.private, s.unpriv, s.chroot), (true, false, true));
        assert_eq!(
            s.wakeup,
            Some(Wakeup {
                seconds: 60,
                conditional: false
            })
        );
        let s = one("x fifo - - - 1000? - pickup");
        assert_eq!(
            s.wakeup,
            Some(Wakeup {
                seconds: 1000,
                conditional: true
            })
        );
        assert_eq!(s.maxproc, None);
    }

    #[test]
    fn inet_is_never_private() {
        assert!(!one("127.0.0.1:2525 inet y - n - - smtpd").private);
        assert!(!one("smtp inet - - n - - smtpd").private);
    }

    #[test]
    fn overrides_and_args() {
        let t = "submission inet n - n - - smtpd\n  -o syslog_name=postfix/submission\n  \
                 -o { smtpd_client_restrictions = permit_sasl_authenticated, reject }\n  \
                 -osmtpd_tls_security_level=encrypt -v\n";
        let s = one(t);
        assert_eq!(
            s.overrides,
            [
                ("syslog_name".to_string(), "postfix/submission".to_string()),
                (
                    "smtpd_client_restrictions".to_string(),
                    "permit_sasl_authenticated, reject".to_string()
                ),
                (
                    "smtpd_tls_security_level".to_string(),
                    "encrypt".to_string()
                ),
            ]
        );
        assert_eq!(s.args, ["-v"]);
        let s = one("p unix - n n - - pipe flags=R user=u argv=/bin/x { a b } ${recipient}");
        assert_eq!(
            s.args,
            [
                "flags=R",
                "user=u",
                "argv=/bin/x",
                "{ a b }",
                "${recipient}"
            ]
        );
        let s = one("f unix - n n - - pipe user=u argv=/usr/sbin/sendmail -oi -o x -f ${sender}");
        assert!(s.overrides.is_empty());
        assert_eq!(s.args[2..], ["-oi", "-o", "x", "-f", "${sender}"]);
    }

    #[test]
    fn duplicates_replace() {
        let m =
            parse("a unix - - n - - x\nb unix - - n - - y\na unix - - n - - z\na inet - - n - - w")
                .unwrap();
        let v: Vec<(&str, &str, usize)> = m
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.command.as_str(), s.line))
            .collect();
        assert_eq!(v, [("a", "z", 3), ("b", "y", 2), ("a", "w", 4)]);
    }

    #[test]
    fn errors_name_lines() {
        let t = "  x\nshort unix - -\nbad tcp - - n - - x\nf unix q - n - - x\nw unix - - n 1x - x\n\
                 m unix - - n - many x\no unix - - n - - x -o\np unix - - n - - x -o novalue\n\
                 b unix - - n - - x { open\n";
        let e = parse(t).unwrap_err();
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(e[2].message.contains("unknown service type"), "{}", e[2]);
        assert!(e[4].message.contains("wakeup"));
        assert!(e[5].message.contains("maxproc"));
    }
}
