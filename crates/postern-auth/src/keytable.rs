//! The DKIM key table (`dkim_key_table`, OpenDKIM's KeyTable format): a key name maps to
//! `domain:selector:/path/to/private.key`. The table itself is an ordinary Postfix lookup
//! table (the caller looks the key name up with postern-table); this module parses the
//! looked-up value ([`parse_entry`]) and, for files in OpenDKIM's own layout, one whole
//! line `name domain:selector:path` ([`parse_line`]).
//!
//! Differences from OpenDKIM, all failing closed: the key must be a file named by an
//! absolute path (OpenDKIM also accepts inline key data and relative paths); a domain of
//! `%` (OpenDKIM: the message's signing domain) is kept as `%` and resolved by
//! [`KeyEntry::domain_for`].
//!
//! # Security
//!
//! Values are bounded ([`MAX_ENTRY`]) and checked character by character (DNS-name
//! characters for domain and selector, no control characters in the path) so that a
//! table value cannot inject tags into a signature header. Nothing here panics on input
//! (fuzzed: `fuzz/fuzz_targets/keytable.rs`).
//!
//! # Configuration
//!
//! `dkim_key_table` (read by the callers: cleanup's signing and ARC sealing).

use std::path::PathBuf;

/// Longest key-table value or line accepted (bytes).
pub const MAX_ENTRY: usize = 4096;

/// One key-table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The `d=` domain (`%`: the message's domain, see [`KeyEntry::domain_for`]).
    pub domain: String,
    /// The `s=` selector.
    pub selector: String,
    /// The private key file (absolute).
    pub path: PathBuf,
}

impl KeyEntry {
    /// The signing domain: this entry's, or `message_domain` when it is `%`.
    pub fn domain_for<'a>(&'a self, message_domain: &'a str) -> &'a str {
        if self.domain == "%" {
            message_domain
        } else {
            &self.domain
        }
    }
}

/// Why a key-table value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyTableError {
    /// Not `domain:selector:path`.
    #[error("key table entry is not domain:selector:/path: {0:?}")]
    Syntax(String),
    /// A bad domain.
    #[error("key table entry has a bad domain: {0:?}")]
    Domain(String),
    /// A bad selector.
    #[error("key table entry has a bad selector: {0:?}")]
    Selector(String),
    /// Not an absolute path to a file.
    #[error("key table entry needs an absolute key file path: {0:?}")]
    Path(String),
    /// Over [`MAX_ENTRY`] bytes.
    #[error("key table entry longer than {MAX_ENTRY} bytes")]
    TooLong,
}

/// A DNS label sequence: letters, digits, `-`, `_`, dots between non-empty labels.
fn dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Parses a key-table value `domain:selector:/path` (the path may contain `:`).
pub fn parse_entry(value: &str) -> Result<KeyEntry, KeyTableError> {
    if value.len() > MAX_ENTRY {
        return Err(KeyTableError::TooLong);
    }
    let value = value.trim();
    let mut parts = value.splitn(3, ':');
    let (Some(domain), Some(selector), Some(path)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(KeyTableError::Syntax(value.to_string()));
    };
    let (domain, selector, path) = (domain.trim(), selector.trim(), path.trim());
    if domain != "%" && !dns_name(domain) {
        return Err(KeyTableError::Domain(domain.to_string()));
    }
    if !dns_name(selector) {
        return Err(KeyTableError::Selector(selector.to_string()));
    }
    if !path.starts_with('/') || path.ends_with('/') || path.chars().any(char::is_control) {
        return Err(KeyTableError::Path(path.to_string()));
    }
    Ok(KeyEntry {
        domain: domain.to_ascii_lowercase(),
        selector: selector.to_string(),
        path: PathBuf::from(path),
    })
}

/// Parses one line of an OpenDKIM KeyTable file: `name domain:selector:/path`;
/// `Ok(None)` for a blank or `#` comment line.
pub fn parse_line(line: &str) -> Result<Option<(String, KeyEntry)>, KeyTableError> {
    if line.len() > MAX_ENTRY {
        return Err(KeyTableError::TooLong);
    }
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let Some((name, value)) = line.split_once(|c: char| c.is_ascii_whitespace()) else {
        return Err(KeyTableError::Syntax(line.to_string()));
    };
    Ok(Some((name.to_string(), parse_entry(value)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        let e = parse_entry("Example.COM:sel-1:/etc/postern/keys/a:b.pem").unwrap();
        assert_eq!(e.domain, "example.com");
        assert_eq!(e.selector, "sel-1");
        assert_eq!(e.path, PathBuf::from("/etc/postern/keys/a:b.pem"));
        assert_eq!(e.domain_for("x.example"), "example.com");
        let p = parse_entry("%:s:/k").unwrap();
        assert_eq!(p.domain_for("x.example"), "x.example");
        for bad in [
            "",
            "example.com",
            "example.com:sel",
            "example.com:sel:relative/key",
            "exa mple.com:sel:/k",
            "example.com:se;l:/k",
            "example..com:s:/k",
            "example.com::/k",
            "example.com:s:/k\u{1}x",
            "example.com:s:/dir/",
        ] {
            assert!(parse_entry(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_entry(&"a".repeat(MAX_ENTRY + 1)),
            Err(KeyTableError::TooLong)
        );
    }

    #[test]
    fn lines() {
        assert_eq!(parse_line("  # comment"), Ok(None));
        assert_eq!(parse_line(""), Ok(None));
        let (n, e) = parse_line("rsa\texample.com:rsa:/k.pem").unwrap().unwrap();
        assert_eq!((n.as_str(), e.selector.as_str()), ("rsa", "rsa"));
        assert!(parse_line("lonely").is_err());
        assert!(parse_line("k example.com:s").is_err());
    }
}
