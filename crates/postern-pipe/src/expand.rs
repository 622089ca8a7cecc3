//! The command line of one delivery: pipe's `$macros` filled in from the
//! delivery request.
//!
//! An argument without recipient macros becomes one argument. An argument
//! that uses `$recipient`, `$original_recipient`, `$user`, `$extension`,
//! `$mailbox` or `$domain` becomes one argument per recipient, in request
//! order, as programs called like sendmail expect.
//!
//! The flags change the addresses as pipe(8) documents: `q` quotes the local
//! part of `$sender`, `$recipient` and `$original_recipient` (RFC 5322
//! external form); `u` folds recipient local parts to lower case; `h` folds
//! recipient domains, `$domain` and `$nexthop`. `$user`, `$extension`,
//! `$mailbox` and `$domain` see the folding but never the quoting.
//!
//! # Security
//! Values are substituted once and never expanded again, and the command is
//! run without a shell, so an address with `$`, spaces or quotes reaches the
//! program as one literal argument.

use postern_config::pipe::{PipeFlags, Template};
use postern_ipc::proto::Recipient;
use postern_mail::address::{quote_address, split_extension};
use std::collections::HashMap;

/// Values of the macros that do not depend on the recipient.
pub type Fixed = HashMap<&'static str, String>;

/// Splits at the rightmost `@`: (local part, domain).
fn split_at_right(addr: &str) -> (&str, Option<&str>) {
    match addr.rfind('@') {
        Some(i) => (&addr[..i], Some(&addr[i + 1..])),
        None => (addr, None),
    }
}

/// Quoting (`q`) and folding (`u`, `h`) of one recipient address.
pub fn morph(addr: &str, flags: PipeFlags, quote: bool) -> String {
    let quoted = if quote && flags.quote_local {
        quote_address(addr)
    } else {
        addr.to_string()
    };
    let (local, domain) = split_at_right(&quoted);
    let local = if flags.fold_user {
        local.to_lowercase()
    } else {
        local.to_string()
    };
    match domain {
        Some(d) if flags.fold_host => format!("{local}@{}", d.to_lowercase()),
        Some(d) => format!("{local}@{d}"),
        None => local,
    }
}

/// The value of a recipient macro for one recipient.
fn recipient_value(
    name: &str,
    rcpt: &Recipient,
    flags: PipeFlags,
    delimiter: &str,
) -> Option<String> {
    let folded = || morph(&rcpt.address, flags, false);
    Some(match name {
        "recipient" => morph(&rcpt.address, flags, true),
        "original_recipient" => morph(&rcpt.original, flags, true),
        "user" => {
            let f = folded();
            split_extension(split_at_right(&f).0, delimiter)
                .0
                .to_string()
        }
        "extension" => {
            let f = folded();
            let ext = split_extension(split_at_right(&f).0, delimiter).1;
            ext.unwrap_or("").to_string()
        }
        "mailbox" => split_at_right(&folded()).0.to_string(),
        "domain" => split_at_right(&folded()).1.unwrap_or("").to_string(),
        _ => return None,
    })
}

/// The fixed macros: sender (null sender replaced, `q` quoting), next hop
/// (`h` folding), and what the caller put in `rest`.
pub fn fixed(
    sender: &str,
    null_sender: &str,
    nexthop: &str,
    flags: PipeFlags,
    mut rest: Fixed,
) -> Fixed {
    let s = if sender.is_empty() {
        null_sender
    } else {
        sender
    };
    let s = if !s.is_empty() && flags.quote_local {
        quote_address(s)
    } else {
        s.to_string()
    };
    rest.insert("sender", s);
    let hop = if flags.fold_host {
        nexthop.to_lowercase()
    } else {
        nexthop.to_string()
    };
    rest.insert("nexthop", hop);
    rest
}

/// The argument vector for `rcpts`.
pub fn argv(
    templates: &[Template],
    fixed: &Fixed,
    rcpts: &[Recipient],
    flags: PipeFlags,
    delimiter: &str,
) -> Vec<String> {
    let value = |name: &str, rcpt: Option<&Recipient>| {
        rcpt.and_then(|r| recipient_value(name, r, flags, delimiter))
            .or_else(|| fixed.get(name).cloned())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for t in templates {
        if t.per_recipient() {
            out.extend(rcpts.iter().map(|r| t.expand(|m| value(m, Some(r)))));
        } else {
            out.push(t.expand(|m| value(m, None)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(s: &str) -> PipeFlags {
        let a = postern_config::pipe::parse_attrs(&[
            format!("flags={s}"),
            "user=u".into(),
            "argv=/x".into(),
        ])
        .unwrap();
        a.flags
    }

    fn t(args: &[&str]) -> Vec<Template> {
        args.iter().map(|a| Template::parse(a).unwrap()).collect()
    }

    fn rcpt(a: &str, o: &str) -> Recipient {
        Recipient {
            original: o.into(),
            ..Recipient::new(a)
        }
    }

    #[test]
    fn per_recipient_arguments() {
        let f = fixed(
            "a b@Ex.org",
            "MAILER-DAEMON",
            "Hop.Example",
            flags("q"),
            Fixed::new(),
        );
        let rcpts = [
            rcpt("Joe+Ext@EX.com", "alias@ex.com"),
            rcpt("x y@ex.com", ""),
        ];
        let got = argv(
            &t(&[
                "-f",
                "$sender",
                "--",
                "${recipient}",
                "$user/$extension/$mailbox/$domain",
                "$nexthop",
            ]),
            &f,
            &rcpts,
            flags("q"),
            "+",
        );
        assert_eq!(
            got,
            [
                "-f",
                "\"a b\"@Ex.org",
                "--",
                "Joe+Ext@EX.com",
                "\"x y\"@ex.com",
                "Joe/Ext/Joe+Ext/EX.com",
                "x y//x y/ex.com",
                "Hop.Example"
            ]
        );
    }

    #[test]
    fn folding_and_null_sender() {
        let fl = flags("hu");
        let f = fixed("", "", "Hop.Example", fl, Fixed::new());
        let rcpts = [rcpt("Joe+Ext@EX.com", "Orig@EX.com")];
        let got = argv(
            &t(&[
                "{$sender}",
                "$recipient",
                "$original_recipient",
                "$user",
                "$domain",
                "$nexthop",
            ]),
            &f,
            &rcpts,
            fl,
            "+",
        );
        assert_eq!(
            got,
            [
                "{}",
                "joe+ext@ex.com",
                "orig@ex.com",
                "joe",
                "ex.com",
                "hop.example"
            ]
        );
        let f = fixed("", "MAILER-DAEMON", "h", PipeFlags::default(), Fixed::new());
        assert_eq!(f["sender"], "MAILER-DAEMON");
    }
}
