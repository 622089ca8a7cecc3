//! Whole-configuration checks, host-dependent defaults and master.cf formatting.
//!
//! * [`check_texts`]: every problem of a main.cf/master.cf pair, one line each
//!   (`PATH: line N: message`), for `postern check` and `postconf`.
//! * [`apply_host_defaults`]: `myhostname`/`mydomain` defaults from the host name, the way
//!   Postfix derives them (the caller reads the host name; this stays pure).
//! * [`format_service`]: one service in the column layout of `postconf -M`.
//!
//! # Errors
//!
//! Nothing here fails: problems are returned as text lines.

use crate::master::type_name;
use crate::{Config, ParseError, Service, ServiceType, p, parse_main_cf, parse_master_cf};

/// Postfix's fallback domain for a host name without a dot.
const DEFAULT_DOMAIN: &str = "localdomain";

/// Sets the `myhostname` and `mydomain` defaults from the system host name.
///
/// Postfix's rules (observed with `postconf -d` on a host named `vm`: `myhostname =
/// vm.localdomain`, `mydomain = localdomain`): a host name with a dot is used as is; one
/// without gets `.$mydomain` appended when main.cf sets mydomain, else `.localdomain`. `mydomain` is the *effective* myhostname (main.cf may
/// set it) minus its first label, or `localdomain` when that leaves nothing. Values set in
/// main.cf still win, as for every default.
pub fn apply_host_defaults(cfg: &mut Config, hostname: &str) {
    let host = hostname.trim().trim_end_matches('.');
    let host = if host.is_empty() { "localhost" } else { host };
    // A short host name gets main.cf's mydomain when set (Postfix: `vm` + `mydomain =
    // example.org` gives `vm.example.org`), else `localdomain`.
    let fqdn = if host.contains('.') {
        host.to_string()
    } else if cfg.is_set(p::MYDOMAIN) && !cfg.str(p::MYDOMAIN).is_empty() {
        format!("{host}.{}", cfg.str(p::MYDOMAIN))
    } else {
        format!("{host}.{DEFAULT_DOMAIN}")
    };
    cfg.set_default(p::MYHOSTNAME.name(), &fqdn);
    let effective = cfg.str(p::MYHOSTNAME);
    let domain = match effective.split_once('.') {
        Some((_, rest)) if !rest.is_empty() => rest.to_string(),
        _ => DEFAULT_DOMAIN.to_string(),
    };
    cfg.set_default(p::MYDOMAIN.name(), &domain);
}

/// Every problem in a main.cf/master.cf pair, one `PATH: line N: message` line each: syntax
/// errors of either file and values of known boolean, integer, size or time parameters that do
/// not convert (in main.cf, and in master.cf `-o` overrides). Unknown master.cf command names
/// are not problems.
pub fn check_texts(
    main_cf: &str,
    master_cf: &str,
    main_path: &str,
    master_path: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let fmt = |path: &str, e: &ParseError| format!("{path}: {e}");
    let cfg = match parse_main_cf(main_cf) {
        Ok(main) => {
            let cfg = Config::new(main);
            for e in cfg.value_errors() {
                match e.line {
                    Some(line) => out.push(format!("{main_path}: line {line}: {e}")),
                    None => out.push(format!("{main_path}: {e}")),
                }
            }
            if let Some(msg) = maillog_prefix_problem(&cfg) {
                out.push(format!("{main_path}: {msg}"));
            }
            Some(cfg)
        }
        Err(errors) => {
            out.extend(errors.iter().map(|e| fmt(main_path, e)));
            None
        }
    };
    match parse_master_cf(master_cf) {
        Ok(master) => {
            let base = cfg.unwrap_or_default();
            let known = base.value_errors();
            for svc in &master.services {
                let scfg = base.with_overrides(&svc.overrides);
                for e in scfg.value_errors() {
                    if !known.contains(&e) {
                        out.push(format!("{master_path}: line {}: {e}", svc.line));
                    }
                }
            }
        }
        Err(errors) => out.extend(errors.iter().map(|e| fmt(master_path, e))),
    }
    out
}

/// Postfix's postlogd refuses a `maillog_file` outside `maillog_file_prefixes` (so a
/// configuration edit cannot make the logger append to an arbitrary file as its owner).
/// A prefix matches as a string prefix, as in Postfix.
fn maillog_prefix_problem(cfg: &Config) -> Option<String> {
    let file = cfg.str(p::MAILLOG_FILE);
    if file.is_empty() {
        return None;
    }
    let prefixes = cfg.str(p::MAILLOG_FILE_PREFIXES);
    if crate::split_list(&prefixes)
        .iter()
        .any(|p| file.starts_with(p.as_str()))
    {
        return None;
    }
    Some(format!(
        "maillog_file value '{file}' does not match any prefix in maillog_file_prefixes ({prefixes})"
    ))
}

/// One service as `postconf -M` prints it: columns aligned at fixed stops, a field that
/// overflows its column pushes the next one right by a single space. Columns at their default
/// print as `-`; the chroot column and inet's private column are always explicit, as in
/// Postfix's stock master.cf. Overrides print before the other arguments, `{}`-quoted when the
/// value holds whitespace. No trailing newline.
pub fn format_service(svc: &Service) -> String {
    let yn = |b: bool| if b { "y" } else { "n" };
    let private = match (svc.kind, svc.private) {
        (ServiceType::Inet, _) => "n",
        (_, true) => "-",
        (_, false) => "n",
    };
    let wakeup = svc.wakeup.map_or("-".to_string(), |w| {
        format!("{}{}", w.seconds, if w.conditional { "?" } else { "" })
    });
    let maxproc = svc.maxproc.map_or("-".to_string(), |m| m.to_string());
    let mut command = svc.command.clone();
    for (n, v) in &svc.overrides {
        if v.contains(char::is_whitespace) {
            command.push_str(&format!(" -o {{{n}={v}}}"));
        } else {
            command.push_str(&format!(" -o {n}={v}"));
        }
    }
    for a in &svc.args {
        command.push(' ');
        command.push_str(a);
    }
    let fields: [(&str, usize); 8] = [
        (&svc.name, 0),
        (type_name(svc.kind), 11),
        (private, 17),
        (if svc.unpriv { "-" } else { "n" }, 25),
        (yn(svc.chroot), 33),
        (&wakeup, 41),
        (&maxproc, 49),
        (&command, 57),
    ];
    let mut out = String::new();
    for (i, (text, stop)) in fields.iter().enumerate() {
        if i > 0 {
            let width = out.chars().count();
            let pad = if width < *stop { stop - width } else { 1 };
            out.push_str(&" ".repeat(pad));
        }
        out.push_str(text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maillog_file_must_match_a_prefix() {
        let check = |main: &str| check_texts(main, "", "main.cf", "master.cf");
        assert!(check("maillog_file = /var/log/postern.log\n").is_empty());
        assert!(
            check("maillog_file = /srv/x/log\nmaillog_file_prefixes = /var, /srv/x\n").is_empty()
        );
        let p = check("maillog_file = /etc/passwd\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("does not match any prefix"), "{p:?}");
    }

    #[test]
    fn host_defaults() {
        let mut c = Config::new(Default::default());
        apply_host_defaults(&mut c, "vm\n");
        assert_eq!(
            (c.get("myhostname"), c.get("mydomain")),
            ("vm.localdomain".into(), "localdomain".into())
        );
        apply_host_defaults(&mut c, "mx.example.org");
        assert_eq!(
            (c.get("myhostname"), c.get("mydomain")),
            ("mx.example.org".into(), "example.org".into())
        );
        let mut c = Config::new(parse_main_cf("myhostname = a.b.test").unwrap());
        apply_host_defaults(&mut c, "ignored");
        assert_eq!(
            (c.get("myhostname"), c.get("mydomain")),
            ("a.b.test".into(), "b.test".into())
        );
        apply_host_defaults(&mut c, "");
        assert_eq!(c.get("mydomain"), "b.test");
        let mut c = Config::new(parse_main_cf("mydomain = example.org").unwrap());
        apply_host_defaults(&mut c, "vm");
        assert_eq!(
            (c.get("myhostname"), c.get("mydomain")),
            ("vm.example.org".into(), "example.org".into())
        );
    }

    #[test]
    fn check_reports_every_problem() {
        let main =
            "biff = maybe\nmax_use = lots\nmax_idle = 10x\nmax_idle = 5m\nfoo = bar\nbad line\n";
        let got = check_texts(main, "", "m.cf", "x.cf");
        assert_eq!(
            got,
            ["m.cf: line 6: missing '=' after parameter name: \"bad line\""]
        );
        let main = "biff = maybe\nmax_use = lots\nmax_idle = 10x\nmax_idle = 5m\nfoo = bar\nmessage_size_limit = $foo\n";
        let master =
            "a unix - - n - - x -o biff=yes -o soft_bounce=perhaps\nb inet - - n - - y\nbroken\n";
        let got = check_texts(main, master, "m.cf", "x.cf");
        assert_eq!(
            got,
            [
                "m.cf: line 1: bad boolean configuration: biff = maybe",
                "m.cf: line 2: bad numerical configuration: max_use = lots",
                "m.cf: line 6: bad numerical configuration: message_size_limit = bar",
                "x.cf: line 3: expected at least 8 fields, found 1",
            ]
        );
        let got = check_texts(
            main,
            "a unix - - n - - x -o biff=yes -o soft_bounce=perhaps",
            "m",
            "x",
        );
        assert_eq!(
            got.last().unwrap(),
            "x: line 1: bad boolean configuration: soft_bounce = perhaps"
        );
    }

    #[test]
    fn default_config_is_clean() {
        assert!(check_texts("", &crate::default_master_cf("127.0.0.1:2525"), "m", "x").is_empty());
    }

    #[test]
    fn service_format() {
        let m = parse_master_cf(
            "smtp inet n - y - - smtpd\na unix - - n 60? - smtpd -o x=1 -o { y = a b } -v\n\
             verylongservicename unix-dgram - - n - 100 postlogd\n",
        )
        .unwrap();
        let lines: Vec<String> = m.services.iter().map(format_service).collect();
        assert_eq!(
            lines,
            [
                "smtp       inet  n       -       y       -       -       smtpd",
                "a          unix  -       -       n       60?     -       smtpd -o x=1 -o {y=a b} -v",
                "verylongservicename unix-dgram - - n     -       100     postlogd",
            ]
        );
    }
}
