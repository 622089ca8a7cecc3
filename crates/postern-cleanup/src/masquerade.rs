//! Address masquerading (`masquerade_domains`): `user@host.sub.example.com`
//! becomes `user@example.com` when `example.com` is in the list.
//!
//! The list is searched in order; the first entry that the address's domain
//! equals or is a subdomain of decides: an exact match leaves the address
//! alone, a parent-domain match replaces the domain, and a `!domain` entry
//! (an exception) leaves it alone. Local parts in `masquerade_exceptions` (a
//! list of names or `type:table` lookups) are never masqueraded. Which
//! addresses are masqueraded is `masquerade_classes` (see [`crate::tables::classes`]).
//!
//! # Security
//! Pure string work; the exception tables see only the local part.
//!
//! # Configuration
//! `masquerade_domains`, `masquerade_exceptions`, `masquerade_classes`.

use crate::maps::Trail;
use postern_table::BoxMap;

/// One `masquerade_exceptions` entry.
#[derive(Debug)]
pub enum Exception {
    /// A user name (case-insensitive).
    Name(String),
    /// A table looked up with the local part.
    Table(BoxMap),
}

/// The masquerading settings.
#[derive(Debug, Default)]
pub struct Masquerade {
    /// `masquerade_domains`, in order, `!` prefixes kept.
    pub domains: Vec<String>,
    /// `masquerade_exceptions`.
    pub exceptions: Vec<Exception>,
}

impl Masquerade {
    /// Builds the settings; a table that cannot be opened goes to `errors`.
    pub fn new(domains: Vec<String>, exceptions: &[String], errors: &mut Vec<String>) -> Self {
        let mut ex = Vec::new();
        for e in exceptions {
            if e.contains(':') && !e.starts_with('!') {
                match postern_table::open(e, &Default::default()) {
                    Ok(m) => ex.push(Exception::Table(m)),
                    Err(err) => errors.push(format!("masquerade_exceptions: {e}: {err}")),
                }
            } else {
                ex.push(Exception::Name(e.to_ascii_lowercase()));
            }
        }
        Masquerade {
            domains,
            exceptions: ex,
        }
    }

    /// Whether any domain is configured.
    pub fn is_active(&self) -> bool {
        !self.domains.is_empty()
    }

    /// Masquerades one internal-form address.
    pub fn apply(&self, addr: &str, qid: &str, trail: &mut Trail) -> String {
        let Some(at) = addr.rfind('@') else {
            return addr.to_string();
        };
        let (user, domain) = (&addr[..at], addr[at + 1..].to_ascii_lowercase());
        for e in &self.exceptions {
            let hit = match e {
                Exception::Name(n) => n.eq_ignore_ascii_case(user),
                Exception::Table(m) => match m.lookup(user) {
                    Ok(v) => v.is_some(),
                    Err(err) => {
                        trail.table_error(format!(
                            "{qid}: masquerade_exceptions map lookup problem ({err})"
                        ));
                        false
                    }
                },
            };
            if hit {
                return addr.to_string();
            }
        }
        for entry in &self.domains {
            let mut masq = entry.as_str();
            let mut truncate = true;
            while let Some(rest) = masq.strip_prefix('!') {
                truncate = !truncate;
                masq = rest;
            }
            let masq = masq.to_ascii_lowercase();
            if masq.is_empty() {
                continue;
            }
            if masq == domain {
                break;
            }
            if domain.len() > masq.len()
                && domain.ends_with(&masq)
                && domain.as_bytes()[domain.len() - masq.len() - 1] == b'.'
            {
                if truncate {
                    return format!("{user}@{masq}");
                }
                break;
            }
        }
        addr.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(domains: &str, ex: &[&str]) -> Masquerade {
        let mut errs = Vec::new();
        let d = domains.split_whitespace().map(String::from).collect();
        let e: Vec<String> = ex.iter().map(|s| s.to_string()).collect();
        let m = Masquerade::new(d, &e, &mut errs);
        assert!(errs.is_empty());
        m
    }

    fn ap(m: &Masquerade, a: &str) -> String {
        m.apply(a, "Q", &mut Trail::default())
    }

    #[test]
    fn parent_domains_and_exceptions() {
        let x = m("!sub.example.com example.com", &["root"]);
        assert_eq!(ap(&x, "joe@host.example.com"), "joe@example.com");
        assert_eq!(ap(&x, "joe@Host.Example.COM"), "joe@example.com");
        assert_eq!(ap(&x, "joe@example.com"), "joe@example.com");
        assert_eq!(
            ap(&x, "joe@host.sub.example.com"),
            "joe@host.sub.example.com"
        );
        assert_eq!(ap(&x, "joe@notexample.com"), "joe@notexample.com");
        assert_eq!(ap(&x, "root@host.example.com"), "root@host.example.com");
        assert_eq!(ap(&x, "joe"), "joe");
        let t = m("example.com", &["inline:{ admin=x }"]);
        assert_eq!(ap(&t, "admin@a.example.com"), "admin@a.example.com");
        assert_eq!(ap(&t, "other@a.example.com"), "other@example.com");
    }
}
