//! Postfix's search order for mail-address tables: canonical(5), virtual(5),
//! relocated(5), `sender_bcc_maps`, `recipient_bcc_maps` (Postfix's
//! `mail_addr_find`).
//!
//! For `user+ext@domain` (with `+` in `recipient_delimiter`) the keys are, in order:
//!
//! 1. `user+ext@domain` — offered to every table, pattern tables included;
//! 2. `user@domain` — fixed-string tables only, as are all the keys below;
//! 3. `user+ext`, then `user` — only when `domain` is local (`$myorigin`,
//!    `$mydestination`, `$inet_interfaces`, `$proxy_interfaces`: the caller decides);
//! 4. `@domain`.
//!
//! Each key is tried in every table of the list before the next key (Postfix's
//! `maps_find`): an exact entry in the second table beats a catch-all in the first.
//! A key found without its extension reports the extension (with its delimiter), so
//! the caller can propagate it (`propagate_unmatched_extensions`).
//!
//! # Errors
//! A table that cannot answer stops the search with its error: the caller defers.

use crate::query::split_extension;
use crate::{BoxMap, TableError};

/// A match: the value, the key that found it, and the extension (`+ext`, delimiter
/// included) that had to be removed from the address to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrMatch {
    /// The table's value.
    pub value: String,
    /// The key that matched.
    pub key: String,
    /// The unmatched extension, when the key is the address without it.
    pub extension: Option<String>,
}

/// Looks `addr` (internal form) up in `maps` in canonical(5) order. `delimiter` is
/// `recipient_delimiter`; `is_local(domain)` says whether a bare `user` key applies.
pub fn find_address(
    maps: &[BoxMap],
    addr: &str,
    delimiter: &str,
    is_local: &dyn Fn(&str) -> bool,
) -> Result<Option<AddrMatch>, TableError> {
    let (local, domain) = match addr.rfind('@') {
        Some(at) => (&addr[..at], Some(&addr[at + 1..])),
        None => (addr, None),
    };
    let split = split_extension(local, delimiter);
    let bare_local = split.map(|(user, _)| user);
    let ext = split.map(|(_, ext)| ext.to_string());
    let found = |value: String, key: String, with_ext: bool| AddrMatch {
        value,
        key,
        extension: if with_ext { None } else { ext.clone() },
    };
    if let Some((v, k)) = search(maps, addr, false)? {
        return Ok(Some(found(v, k, true)));
    }
    if let Some(user) = bare_local {
        let key = match domain {
            Some(d) => format!("{user}@{d}"),
            None => user.to_string(),
        };
        if let Some((v, k)) = search(maps, &key, true)? {
            return Ok(Some(found(v, k, false)));
        }
    }
    let Some(domain) = domain else {
        return Ok(None);
    };
    if is_local(domain) {
        if let Some((v, k)) = search(maps, local, true)? {
            return Ok(Some(found(v, k, true)));
        }
        if let Some(user) = bare_local
            && let Some((v, k)) = search(maps, user, true)?
        {
            return Ok(Some(found(v, k, false)));
        }
    }
    match search(maps, &format!("@{domain}"), true)? {
        // Postfix does not report the extension for a catch-all match.
        Some((v, k)) => Ok(Some(found(v, k, true))),
        None => Ok(None),
    }
}

/// One key in every map; `partial` keys skip pattern tables.
fn search(
    maps: &[BoxMap],
    key: &str,
    partial: bool,
) -> Result<Option<(String, String)>, TableError> {
    if key.is_empty() {
        return Ok(None);
    }
    for m in maps {
        if partial && m.flags().pattern {
            continue;
        }
        if let Some(v) = m.lookup(key)? {
            return Ok(Some((v, key.to_string())));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(specs: &[&str]) -> Vec<BoxMap> {
        specs
            .iter()
            .map(|s| crate::open(s, &Default::default()).unwrap())
            .collect()
    }

    fn local(d: &str) -> bool {
        d.eq_ignore_ascii_case("example.org")
    }

    fn find(m: &[BoxMap], a: &str) -> Option<(String, Option<String>)> {
        find_address(m, a, "+", &local)
            .unwrap()
            .map(|f| (f.value, f.extension))
    }

    #[test]
    fn order_and_extensions() {
        let m = maps(&[
            "inline:{ a+x@example.org=full, a@example.org=bare, b=user, c+y=userext, @example.org=catch }",
            "inline:{ @other.example=catch2, d@other.example=late }",
        ]);
        assert_eq!(find(&m, "a+x@example.org"), Some(("full".into(), None)));
        assert_eq!(
            find(&m, "a+z@example.org"),
            Some(("bare".into(), Some("+z".into())))
        );
        assert_eq!(find(&m, "B@example.org"), Some(("user".into(), None)));
        assert_eq!(
            find(&m, "b+q@example.org"),
            Some(("user".into(), Some("+q".into())))
        );
        assert_eq!(find(&m, "c+y@example.org"), Some(("userext".into(), None)));
        // `user` keys apply to local domains only.
        assert_eq!(find(&m, "b@other.example"), Some(("catch2".into(), None)));
        // An exact key in a later table beats a catch-all in an earlier one.
        assert_eq!(find(&m, "d@other.example"), Some(("late".into(), None)));
        assert_eq!(find(&m, "zz@example.org"), Some(("catch".into(), None)));
        assert_eq!(find(&m, "zz@nowhere.example"), None);
    }

    #[test]
    fn pattern_tables_see_full_address_only() {
        let m = maps(&["regexp:{ {/^a@/ re}, {/^@example/ at} }"]);
        assert_eq!(find(&m, "a@example.org"), Some(("re".into(), None)));
        assert_eq!(find(&m, "b@example.org"), None);
    }

    #[test]
    fn errors_stop_the_search() {
        let m = maps(&["fail:x"]);
        assert!(find_address(&m, "a@b", "+", &local).is_err());
    }
}
