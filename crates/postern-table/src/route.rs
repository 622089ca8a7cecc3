//! Address classes as Postfix's trivial-rewrite resolves them: the one place where smtpd
//! (relay control, recipient checks) and qmgr (transport choice) decide whether an
//! address is local, virtual, relayed or foreign, so that nothing smtpd accepted as local
//! is routed elsewhere by qmgr.
//!
//! The loop follows trivial-rewrite's resolver: strip one trailing dot from the domain;
//! while the domain is local (`mydestination`, or an address literal naming one of our
//! own addresses: `inet_interfaces`, `proxy_interfaces`), strip it and look at what is
//! left: an `@` (a quoted `"u@d"` local part, a source route `@a:u@d`), `d!u`
//! (`swap_bangpath`), `u%d` (`allow_percent_hack`) make a new address that is resolved
//! again. An address without a domain gets `@$myorigin` (`append_at_myorigin`) on
//! rewriting, and `@$myhostname` when nothing was stripped. An address whose local part
//! still holds `!`, `%` or `@` (an operator switched off here, a quoted local part with
//! `resolve_dequoted_address = no`, a foreign address) is *routed* (Postfix's
//! `RESOLVE_FLAG_ROUTED`), whatever the local settings: the next hop may honour them, and
//! relay control does not authorize it for an untrusted client.
//!
//! # Security
//! The address comes from the network. It is never a pattern; the loop is bounded by
//! [`crate::MAX_NESTING`] rewrites (deeper nesting resolves as a foreign, routed address).
//!
//! # Configuration
//! `mydestination`, `virtual_alias_domains`, `virtual_mailbox_domains`, `relay_domains`,
//! `parent_domain_matches_subdomains`, `swap_bangpath`, `allow_percent_hack`,
//! `resolve_dequoted_address`, `resolve_null_domain`, `resolve_numeric_domain`,
//! `append_at_myorigin`, `myorigin`, `myhostname`; own addresses are given by the caller.

mod own;
pub use own::Own;

use crate::{DomainList, MAX_NESTING, OpenOptions, parent_matches};
use std::net::{IpAddr, Ipv4Addr};

/// Postfix's address classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    /// `mydestination` or one of our address literals.
    Local,
    /// `virtual_alias_domains`.
    VirtualAlias,
    /// `virtual_mailbox_domains`.
    VirtualMailbox,
    /// `relay_domains`.
    Relay,
    /// Anything else.
    Default,
}

impl AddrClass {
    /// Mail for it is delivered here (Postfix's `RESOLVE_CLASS_FINAL`): local or virtual.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            AddrClass::Local | AddrClass::VirtualAlias | AddrClass::VirtualMailbox
        )
    }
}

/// A resolved address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The class.
    pub class: AddrClass,
    /// The local part after rewriting.
    pub local: String,
    /// The domain after rewriting, lower case, without trailing dot (for a local address:
    /// the last local domain stripped).
    pub domain: String,
    /// Routing operators are left in the local part (`!`, `%`, `@`).
    pub routed: bool,
}

/// A domain list that may have failed to open (then every lookup fails).
#[derive(Debug)]
struct Domains {
    param: &'static str,
    list: Result<DomainList, String>,
}

impl Domains {
    fn new(get: &dyn Fn(&str) -> String, param: &'static str) -> Domains {
        let pm = parent_matches(param, &get("parent_domain_matches_subdomains"));
        let list = DomainList::new(&get(param), pm, &OpenOptions::default())
            .map_err(|e| format!("{param}: {e}"));
        Domains { param, list }
    }

    fn matches(&self, domain: &str) -> Result<bool, String> {
        match &self.list {
            Ok(l) => l
                .matches(domain)
                .map_err(|e| format!("{}: {e}", self.param)),
            Err(e) => Err(e.clone()),
        }
    }
}

/// trivial-rewrite's address resolution (the class part).
#[derive(Debug)]
pub struct ClassResolver {
    mydestination: Domains,
    virtual_alias_domains: Domains,
    virtual_mailbox_domains: Domains,
    relay_domains: Domains,
    own: Vec<IpAddr>,
    myorigin: String,
    myhostname: String,
    append_at_myorigin: bool,
    swap_bangpath: bool,
    percent_hack: bool,
    dequoted: bool,
    null_domain: bool,
    numeric_domain: bool,
}

/// Characters that make a local part need quoting (RFC 5322 specials and blanks).
fn needs_quoting(local: &str) -> bool {
    local
        .chars()
        .any(|c| "()<>@,;:\\\".[]".contains(c) || c.is_whitespace() || c.is_control())
}

/// An address literal `[1.2.3.4]` / `[IPv6:::1]`.
pub fn literal_addr(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    match inner.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("ipv6:") => inner[5..].parse().ok().map(IpAddr::V6),
        _ => inner.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// Strips one trailing dot, but not from `..` or an empty domain (Postfix leaves those
/// bogus forms alone so that diagnostics show them).
fn strip_dot(domain: &mut String) {
    if domain.len() > 1 && domain.ends_with('.') && !domain.ends_with("..") {
        domain.pop();
    }
}

impl ClassResolver {
    /// Reads the settings through `get` (a parameter's expanded value) and opens the
    /// domain lists; `own` are this machine's addresses for address literals. A list that
    /// cannot be opened makes every resolution that needs it fail.
    pub fn new(get: &dyn Fn(&str) -> String, own: Vec<IpAddr>) -> ClassResolver {
        let yes = |n: &str, d: bool| match get(n).trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "1" => true,
            "no" | "false" | "0" => false,
            _ => d,
        };
        ClassResolver {
            mydestination: Domains::new(get, "mydestination"),
            virtual_alias_domains: Domains::new(get, "virtual_alias_domains"),
            virtual_mailbox_domains: Domains::new(get, "virtual_mailbox_domains"),
            relay_domains: Domains::new(get, "relay_domains"),
            own,
            myorigin: get("myorigin").to_ascii_lowercase(),
            myhostname: get("myhostname").to_ascii_lowercase(),
            append_at_myorigin: yes("append_at_myorigin", true),
            swap_bangpath: yes("swap_bangpath", true),
            percent_hack: yes("allow_percent_hack", true),
            dequoted: yes("resolve_dequoted_address", true),
            null_domain: yes("resolve_null_domain", false),
            numeric_domain: yes("resolve_numeric_domain", false),
        }
    }

    /// The open errors of the domain lists (for a start-up warning).
    pub fn open_errors(&self) -> Vec<String> {
        [
            &self.mydestination,
            &self.virtual_alias_domains,
            &self.virtual_mailbox_domains,
            &self.relay_domains,
        ]
        .iter()
        .filter_map(|d| d.list.as_ref().err().cloned())
        .collect()
    }

    /// Whether `name` is in `relay_domains` (`check_relay_domains` matches the client's
    /// host name against it).
    pub fn in_relay_domains(&self, name: &str) -> Result<bool, String> {
        self.relay_domains.matches(name)
    }

    /// Whether `ip` is one of the addresses given as our own.
    pub fn is_own(&self, ip: IpAddr) -> bool {
        self.own.contains(&ip)
    }

    /// trivial-rewrite's `resolve_local`: `mydestination`, or a literal of our address.
    pub fn is_local_domain(&self, domain: &str) -> Result<bool, String> {
        let mut d = domain.to_string();
        strip_dot(&mut d);
        if d.is_empty() || d.ends_with('.') {
            return Ok(false);
        }
        if self.mydestination.matches(&d)? {
            return Ok(true);
        }
        let lit = literal_addr(&d).or_else(|| {
            self.numeric_domain
                .then(|| d.parse::<Ipv4Addr>().ok().map(IpAddr::V4))
                .flatten()
        });
        Ok(lit.is_some_and(|ip| self.is_own(ip)))
    }

    /// `rewrite_tree` in the local context: source route, `!`, `%`, `@$myorigin`.
    fn rewrite(&self, addr: &str) -> (String, Option<String>) {
        let mut s = addr;
        if s.starts_with('@')
            && let Some(colon) = s.find(':')
            && colon + 1 < s.len()
        {
            s = &s[colon + 1..];
        }
        let (local, mut domain) = if let Some(at) = s.rfind('@') {
            (s[..at].to_string(), Some(s[at + 1..].to_string()))
        } else if self.swap_bangpath
            && let Some((host, user)) = s.split_once('!')
        {
            (user.to_string(), Some(host.to_string()))
        } else if self.percent_hack
            && let Some((user, host)) = s.rsplit_once('%')
        {
            (user.to_string(), Some(host.to_string()))
        } else if self.append_at_myorigin && !self.myorigin.is_empty() {
            (s.to_string(), Some(self.myorigin.clone()))
        } else {
            (s.to_string(), None)
        };
        if let Some(d) = domain.as_mut() {
            strip_dot(d);
        }
        (local, domain)
    }

    /// Resolves `addr` (internal, unquoted form). `Err` names a list that failed.
    pub fn resolve(&self, addr: &str) -> Result<Resolution, String> {
        let (mut local, mut domain) = match addr.rfind('@') {
            Some(at) => (addr[..at].to_string(), Some(addr[at + 1..].to_string())),
            None => (addr.to_string(), None),
        };
        // resolve_dequoted_address = no: a local part that needs quoting is one opaque
        // quoted string; its `@`, `!` and `%` route nothing.
        let opaque = |l: &str| !self.dequoted && needs_quoting(l);
        let mut saved: Option<String> = None;
        for _ in 0..MAX_NESTING {
            if let Some(d) = domain.as_mut() {
                strip_dot(d);
                if d.is_empty() && self.null_domain {
                    domain = None;
                }
            }
            if let Some(d) = domain.take() {
                if d.is_empty() || !self.is_local_domain(&d)? {
                    return self.remote(local, d);
                }
                saved = Some(d);
            }
            let routes = local.contains('@')
                || (self.swap_bangpath && local.contains('!'))
                || (self.percent_hack && local.contains('%'));
            if routes && !opaque(&local) {
                (local, domain) = self.rewrite(&local);
                continue;
            }
            if local.is_empty() {
                local = "MAILER-DAEMON".to_string();
                continue;
            }
            match saved.take() {
                None => domain = Some(self.myhostname.clone()),
                Some(d) => {
                    return Ok(Resolution {
                        class: AddrClass::Local,
                        routed: local.contains(['!', '%', '@']),
                        local,
                        domain: d.to_ascii_lowercase(),
                    });
                }
            }
        }
        Ok(Resolution {
            class: AddrClass::Default,
            local,
            domain: domain.unwrap_or_default(),
            routed: true,
        })
    }

    fn remote(&self, local: String, domain: String) -> Result<Resolution, String> {
        let domain = domain.to_ascii_lowercase();
        let class = if self.virtual_alias_domains.matches(&domain)? {
            AddrClass::VirtualAlias
        } else if self.virtual_mailbox_domains.matches(&domain)? {
            AddrClass::VirtualMailbox
        } else if self.relay_domains.matches(&domain)? {
            AddrClass::Relay
        } else {
            AddrClass::Default
        };
        Ok(Resolution {
            class,
            routed: local.contains(['!', '%', '@']),
            local,
            domain,
        })
    }
}

#[cfg(test)]
mod tests;
