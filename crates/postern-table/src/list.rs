//! "Match list" parameters: `mydestination`, `relay_domains`, `mynetworks` and friends.
//!
//! A list is words separated by blanks or commas. Each word is a literal, a `type:table`
//! (the key is looked up; any value means "match"), a `/file/name` whose words are read in
//! its place, or `*` (matches anything). Leading `!`s negate. The first item that matches
//! decides: a negated item answers "no"; when nothing matches the answer is "no".
//!
//! Domain matching follows `parent_domain_matches_subdomains`: when the parameter is listed
//! there, `example.com` also matches `sub.example.com` (and a `.example.com` literal matches
//! nothing); otherwise only `.example.com` matches subdomains. Tables get the same keys.

use crate::query::domain_keys;
use crate::source::{logical_lines, read_file};
use crate::spec::tokens;
use crate::{BoxMap, MAX_NESTING, OpenOptions, TableError, open};
use ipnet::IpNet;

mod style;
use std::net::IpAddr;
pub use style::{OwnAddr, mynetworks_by_style};

/// True when `param` is listed in `parent_domain_matches_subdomains` (whose value is
/// `pdms`): then `example.com` in that parameter also matches its subdomains, and a
/// `.example.com` entry is not needed.
pub fn parent_matches(param: &str, pdms: &str) -> bool {
    pdms.split(|c: char| c == ',' || c.is_ascii_whitespace())
        .any(|p| p == param)
}

#[derive(Debug)]
enum Item {
    Any,
    Literal(String),
    Network(IpNet),
    Table(BoxMap),
    /// A table that could not be opened (`NetworkList::new_deferring`): every lookup that
    /// reaches it fails, as Postfix's surrogate tables do.
    Broken {
        table: String,
        message: String,
    },
}

#[derive(Debug)]
struct Entry {
    negate: bool,
    item: Item,
}

/// Expands `value` into (negated, word) pairs, reading `/file` items.
fn words(
    value: &str,
    negate: bool,
    depth: usize,
    out: &mut Vec<(bool, String)>,
) -> Result<(), TableError> {
    if depth > MAX_NESTING {
        return Err(TableError::spec(value, "list files nested too deeply"));
    }
    for token in tokens(value, value)? {
        let mut neg = negate;
        let mut word = token;
        while let Some(rest) = word.strip_prefix('!') {
            neg = !neg;
            word = rest;
        }
        if word.starts_with('/') {
            let text = read_file(word)?;
            for line in logical_lines(word, &text)? {
                words(&line.text, neg, depth + 1, out)?;
            }
        } else if !word.is_empty() {
            out.push((neg, word.to_string()));
        }
    }
    Ok(())
}

fn is_table(word: &str) -> bool {
    word.split_once(':').is_some_and(|(kind, name)| {
        !kind.is_empty()
            && !name.is_empty()
            && kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

/// A domain match list (`mydestination`, `relay_domains`, `permit_mx_backup_networks`…).
#[derive(Debug)]
pub struct DomainList {
    entries: Vec<Entry>,
    parent_matches: bool,
}

impl DomainList {
    /// Parses a parameter value. `parent_matches` is [`parent_matches`] for the parameter.
    ///
    /// # Errors
    ///
    /// A table or list file that cannot be opened.
    pub fn new(value: &str, parent_matches: bool, opts: &OpenOptions) -> Result<Self, TableError> {
        let mut list = Vec::new();
        words(value, false, 0, &mut list)?;
        let entries = list
            .into_iter()
            .map(|(negate, word)| {
                let item = match word.as_str() {
                    "*" => Item::Any,
                    w if is_table(w) => Item::Table(open(w, opts)?),
                    w => Item::Literal(w.to_lowercase()),
                };
                Ok(Entry { negate, item })
            })
            .collect::<Result<_, TableError>>()?;
        Ok(DomainList {
            entries,
            parent_matches,
        })
    }

    /// Whether `domain` is in the list.
    ///
    /// # Errors
    ///
    /// A table lookup failed: the answer is unknown and the caller must defer.
    pub fn matches(&self, domain: &str) -> Result<bool, TableError> {
        let name = domain.to_lowercase();
        for entry in &self.entries {
            if self.item_matches(&entry.item, &name)? {
                return Ok(!entry.negate);
            }
        }
        Ok(false)
    }

    fn item_matches(&self, item: &Item, name: &str) -> Result<bool, TableError> {
        match item {
            Item::Any => Ok(true),
            Item::Network(_) => Ok(false),
            Item::Literal(pattern) => Ok(name == pattern || self.parent_literal(name, pattern)),
            Item::Broken { table, message } => Err(TableError::Lookup {
                table: table.clone(),
                message: message.clone(),
            }),
            Item::Table(map) => {
                let fixed = !map.flags().pattern;
                for (i, key) in domain_keys(name, self.parent_matches).iter().enumerate() {
                    if (i == 0 || fixed) && map.lookup(key)?.is_some() {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    fn parent_literal(&self, name: &str, pattern: &str) -> bool {
        if self.parent_matches {
            name.len() > pattern.len() + 1
                && name.ends_with(pattern)
                && name.as_bytes()[name.len() - pattern.len() - 1] == b'.'
        } else {
            pattern.starts_with('.') && name.len() > pattern.len() && name.ends_with(pattern)
        }
    }
}

/// An address match list (`mynetworks`, `smtpd_client_event_limit_exceptions`…): networks
/// as `addr/len` or `[addr]/len` (IPv6 must use brackets in Postfix; both are accepted
/// here), single addresses, and tables (the address string is looked up).
#[derive(Debug)]
pub struct NetworkList {
    entries: Vec<Entry>,
}

impl NetworkList {
    /// Parses a parameter value.
    ///
    /// # Errors
    ///
    /// A malformed network, or a table or list file that cannot be opened.
    pub fn new(value: &str, opts: &OpenOptions) -> Result<Self, TableError> {
        Self::build(value, opts, false)
    }

    /// As [`NetworkList::new`], but a table that cannot be opened does not fail: it is kept
    /// as broken, and a lookup that reaches it fails (Postfix's surrogate table: the
    /// caller defers the request instead of refusing to start).
    ///
    /// # Errors
    ///
    /// A malformed network or list file.
    pub fn new_deferring(value: &str, opts: &OpenOptions) -> Result<Self, TableError> {
        Self::build(value, opts, true)
    }

    fn build(value: &str, opts: &OpenOptions, defer: bool) -> Result<Self, TableError> {
        let mut list = Vec::new();
        words(value, false, 0, &mut list)?;
        let entries = list
            .into_iter()
            .map(|(negate, word)| {
                let item = if word == "*" {
                    Item::Any
                } else if let Some(net) = parse_network(&word)? {
                    Item::Network(net)
                } else if is_table(&word) {
                    match open(&word, opts) {
                        Ok(map) => Item::Table(map),
                        Err(e) if defer => Item::Broken {
                            table: word.clone(),
                            message: e.to_string(),
                        },
                        Err(e) => return Err(e),
                    }
                } else {
                    return Err(TableError::spec(&word, "bad address pattern"));
                };
                Ok(Entry { negate, item })
            })
            .collect::<Result<_, TableError>>()?;
        Ok(NetworkList { entries })
    }

    /// Whether `ip` is in the list.
    ///
    /// # Errors
    ///
    /// A table lookup failed: the answer is unknown and the caller must defer.
    pub fn matches(&self, ip: IpAddr) -> Result<bool, TableError> {
        let key = ip.to_string();
        for entry in &self.entries {
            let hit = match &entry.item {
                Item::Any => true,
                Item::Network(net) => net.contains(&ip),
                Item::Table(map) => map.lookup(&key)?.is_some(),
                Item::Broken { table, message } => {
                    return Err(TableError::Lookup {
                        table: table.clone(),
                        message: message.clone(),
                    });
                }
                Item::Literal(_) => false,
            };
            if hit {
                return Ok(!entry.negate);
            }
        }
        Ok(false)
    }
}

/// `addr`, `addr/len`, `[addr]`, `[addr]/len`. `Ok(None)` when `word` is not an address
/// at all; an error for a malformed prefix or host bits set after the prefix.
fn parse_network(word: &str) -> Result<Option<IpNet>, TableError> {
    let (addr, len) = match word.rsplit_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (word, None),
    };
    let addr = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let Some(ip) = crate::cidr::parse_addr(addr) else {
        return Ok(None);
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => l
            .parse::<u8>()
            .map_err(|_| TableError::spec(word, "bad network prefix"))?,
        Some(_) => return Err(TableError::spec(word, "bad network prefix")),
    };
    let net = IpNet::new(ip, len).map_err(|_| TableError::spec(word, "bad network prefix"))?;
    if net.trunc() != net {
        return Err(TableError::spec(
            word,
            format!(
                "non-null host address bits, perhaps use \"{}\"",
                net.trunc()
            ),
        ));
    }
    Ok(Some(net))
}

#[cfg(test)]
mod tests;
