//! Postfix's access(5) search orders over any [`Map`].
//!
//! The full key is offered to every table. The partial keys (the address without its
//! extension, the domain and its parents, `user@`, shortened network addresses) are offered
//! only to fixed-string tables: a pattern table (`regexp`, `pcre`, `cidr`) sees the whole
//! string once, as access(5) "REGULAR EXPRESSION TABLES" says.
//!
//! Each function returns the first value found together with the key that found it. A value
//! of `DUNNO` is returned like any other: the caller stops the search there, which is what
//! `DUNNO` is for. A table error stops the search and is returned; so is an empty value
//! (Postfix treats it as a configuration error and defers the request).

use crate::{Map, TableError};

/// A value and the key that found it.
pub type Found = Option<(String, String)>;

/// Default `double_bounce_sender`, a local part that is never split at a delimiter.
const DOUBLE_BOUNCE: &str = "double-bounce";

struct Search<'a> {
    map: &'a dyn Map,
    partial_ok: bool,
}

impl Search<'_> {
    fn new(map: &dyn Map) -> Search<'_> {
        Search {
            map,
            partial_ok: !map.flags().pattern,
        }
    }

    /// An empty value is a configuration error, not an answer (Postfix's `maps_find`:
    /// `… returns an empty string result`, the request is deferred): the caller defers.
    fn full(&self, key: &str) -> Result<Found, TableError> {
        match self.map.lookup(key)? {
            Some(v) if v.is_empty() => Err(TableError::Lookup {
                table: self.map.name().to_string(),
                message: format!("lookup of {key} returns an empty string result"),
            }),
            found => Ok(found.map(|v| (v, key.to_string()))),
        }
    }

    fn partial(&self, key: &str) -> Result<Found, TableError> {
        if !self.partial_ok || key.is_empty() {
            return Ok(None);
        }
        self.full(key)
    }

    /// The domain itself as a partial key, then its parents: `b.c`, `c` when
    /// `parent_matches`, else `.b.c`, `.c`.
    fn domain(&self, domain: &str, parent_matches: bool) -> Result<Found, TableError> {
        for key in domain_keys(domain, parent_matches) {
            if let Some(found) = self.partial(&key)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// The keys tried for a domain: itself, then each parent domain (with a leading dot unless
/// `parent_matches`). The top-level label is included, as in Postfix.
pub fn domain_keys(domain: &str, parent_matches: bool) -> Vec<String> {
    let mut keys = vec![domain.to_string()];
    let mut rest = domain;
    while let Some(dot) = rest.get(1..).and_then(|r| r.find('.')).map(|i| i + 1) {
        let parent = &rest[dot..];
        keys.push(if parent_matches {
            parent[1..].to_string()
        } else {
            parent.to_string()
        });
        rest = parent;
    }
    keys.retain(|k| !k.is_empty() && k != ".");
    keys
}

/// Splits `localpart` at the first of the `delimiter` characters, as Postfix's
/// recipient_delimiter handling does: `(user, "+ext")`. `None` when there is no extension
/// or the address must not be split (postmaster, MAILER-DAEMON, double-bounce, `owner-*`
/// and `*-request` when `-` is a delimiter, or an empty user part).
pub fn split_extension<'a>(localpart: &'a str, delimiter: &str) -> Option<(&'a str, &'a str)> {
    if delimiter.is_empty() {
        return None;
    }
    let never = ["postmaster", "mailer-daemon", DOUBLE_BOUNCE];
    if never.iter().any(|n| localpart.eq_ignore_ascii_case(n)) {
        return None;
    }
    if delimiter.contains('-') {
        let lower = localpart.to_ascii_lowercase();
        if lower.starts_with("owner-") || (lower.len() > 8 && lower.ends_with("-request")) {
            return None;
        }
    }
    let at = localpart.find(|c| delimiter.contains(c))?;
    (at > 0).then(|| localpart.split_at(at))
}

/// Looks up a mail address (`check_sender_access`, `check_recipient_access`) in the
/// access(5) order: `user+ext@domain`, `user@domain`, `domain` and its parent domains,
/// `user+ext@`, `user@`. `delimiter` is `recipient_delimiter` (any of its characters
/// starts an extension; empty = none). An address without `@` is looked up whole (and
/// without its extension) only.
pub fn lookup_address(
    map: &dyn Map,
    addr: &str,
    delimiter: &str,
    parent_matches: bool,
) -> Result<Found, TableError> {
    let s = Search::new(map);
    if let Some(found) = s.full(addr)? {
        return Ok(Some(found));
    }
    let (local, domain) = match addr.rfind('@') {
        Some(at) => (&addr[..at], Some(&addr[at + 1..])),
        None => (addr, None),
    };
    let bare = split_extension(local, delimiter).map(|(user, _)| user);
    if let Some(user) = bare {
        let key = match domain {
            Some(d) => format!("{user}@{d}"),
            None => user.to_string(),
        };
        if let Some(found) = s.partial(&key)? {
            return Ok(Some(found));
        }
    }
    let Some(domain) = domain else {
        return Ok(None);
    };
    if let Some(found) = s.domain(domain, parent_matches)? {
        return Ok(Some(found));
    }
    if let Some(found) = s.partial(&format!("{local}@"))? {
        return Ok(Some(found));
    }
    match bare {
        Some(user) => s.partial(&format!("{user}@")),
        None => Ok(None),
    }
}

/// Looks up a host name (`check_helo_access`, the name half of `check_client_access`):
/// the name itself (offered to every table), then its parent domains.
pub fn lookup_domain(
    map: &dyn Map,
    domain: &str,
    parent_matches: bool,
) -> Result<Found, TableError> {
    let s = Search::new(map);
    if let Some(found) = s.full(domain)? {
        return Ok(Some(found));
    }
    let mut keys = domain_keys(domain, parent_matches).into_iter();
    keys.next();
    for key in keys {
        if let Some(found) = s.partial(&key)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The keys tried for a client address: the address, then the address with its last
/// `.octet` (IPv4) or `:part` (IPv6) removed, repeatedly: `1.2.3.4`, `1.2.3`, `1.2`, `1`;
/// `2001:db8::1`, `2001:db8:`, `2001:db8`, `2001`. `address` is the printable form Postfix
/// uses (IPv6 compressed, lower case).
pub fn address_keys(address: &str) -> Vec<String> {
    let delim = if address.contains(':') { ':' } else { '.' };
    let mut keys = Vec::new();
    let mut rest = address;
    loop {
        if !rest.is_empty() {
            keys.push(rest.to_string());
        }
        match rest.rfind(delim) {
            Some(at) => rest = &rest[..at],
            None => break,
        }
    }
    keys
}

/// `check_client_access`: the client host name and its parent domains, then the client
/// address and its shortened forms ([`address_keys`]). Pass the name Postfix would use
/// (`unknown` when there is none).
pub fn lookup_client(
    map: &dyn Map,
    hostname: &str,
    address: &str,
    parent_matches: bool,
) -> Result<Found, TableError> {
    if let Some(found) = lookup_domain(map, hostname, parent_matches)? {
        return Ok(Some(found));
    }
    let s = Search::new(map);
    let mut keys = address_keys(address).into_iter();
    if let Some(first) = keys.next()
        && let Some(found) = s.full(&first)?
    {
        return Ok(Some(found));
    }
    for key in keys {
        if let Some(found) = s.partial(&key)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
