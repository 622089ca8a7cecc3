//! The SMTP client's TLS policy language (pure): security levels, the
//! `smtp_tls_policy_maps` entry syntax, protocol lists, certificate match
//! lists and fingerprints, as Postfix's `smtp_tls_policy.c` and
//! `tls_level.c` define them.
//!
//! * Levels, weakest first: `none`, `may`, `encrypt`, `fingerprint`,
//!   `dane`, `dane-only`, `verify`, `secure` (Postfix's numeric order).
//!   Above `encrypt` the certificate must match; from `verify` on it must
//!   also chain to a trusted CA.
//! * A policy entry: `level [name=value …]`, separated by whitespace or
//!   commas; attributes `ciphers`, `protocols`, `exclude`, `servername`
//!   (once each), `match` and `tafile` (repeatable), `connection_reuse`.
//!   Any error makes the destination's policy invalid: mail is deferred
//!   with `client TLS configuration problem` (errors in attributes may
//!   weaken security, so none is ignored).
//! * Protocols: `>=TLSv1.2`, `<=TLSv1.3`, `!SSLv3`, `TLSv1.2:TLSv1.3`; only
//!   TLS 1.2 and 1.3 exist in rustls, older versions are never offered.
//!
//! Security: table values and main.cf are trusted configuration, still
//! every input is bounded and no input panics (fuzzed: `tls_policy`).
//!
//! Parameters (read by [`crate::tlsconf`]): `smtp_tls_security_level`,
//! `smtp_tls_protocols`, `smtp_tls_mandatory_protocols`,
//! `smtp_tls_verify_cert_match`, `smtp_tls_secure_cert_match`,
//! `smtp_tls_fingerprint_cert_match`, `smtp_tls_fingerprint_digest`.

use postern_tls::params::{self as tls_params, TlsVersion};

/// `smtp_tls_security_level` and policy-table levels, in Postfix's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// No TLS.
    None,
    /// Opportunistic: STARTTLS when offered, plaintext otherwise.
    May,
    /// Mandatory encryption without certificate checks.
    Encrypt,
    /// The certificate or its public key must have a listed digest.
    Fingerprint,
    /// Opportunistic DANE (RFC 7672).
    Dane,
    /// Mandatory DANE.
    DaneOnly,
    /// CA-verified certificate matching `smtp_tls_verify_cert_match`.
    Verify,
    /// CA-verified certificate matching `smtp_tls_secure_cert_match`.
    Secure,
}

impl Level {
    /// Parses a level name (case-insensitive).
    pub fn parse(v: &str) -> Option<Level> {
        Some(match v.trim().to_ascii_lowercase().as_str() {
            "none" => Level::None,
            "may" => Level::May,
            "encrypt" => Level::Encrypt,
            "fingerprint" => Level::Fingerprint,
            "dane" => Level::Dane,
            "dane-only" => Level::DaneOnly,
            "verify" => Level::Verify,
            "secure" => Level::Secure,
            _ => return None,
        })
    }

    /// The level's name, as in main.cf.
    pub fn name(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::May => "may",
            Level::Encrypt => "encrypt",
            Level::Fingerprint => "fingerprint",
            Level::Dane => "dane",
            Level::DaneOnly => "dane-only",
            Level::Verify => "verify",
            Level::Secure => "secure",
        }
    }

    /// The certificate must match (names, digests or TLSA records).
    pub fn must_match(self) -> bool {
        self > Level::Encrypt
    }

    /// The certificate must chain to a trusted CA.
    pub fn must_trust(self) -> bool {
        self >= Level::Verify
    }

    /// TLS is required (no plaintext fallback).
    pub fn mandatory(self) -> bool {
        self >= Level::Encrypt
    }
}

/// The TLS versions a policy allows (rustls offers only 1.2 and 1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// TLS 1.2 allowed.
    pub tls12: bool,
    /// TLS 1.3 allowed.
    pub tls13: bool,
}

/// Parses a protocol list (`smtp_tls_protocols`, `protocols=`): Postfix's
/// `>=V`, `<=V`, `!V` and bare `V` (include only the listed) forms, names in
/// any case, at most 64 terms; the rules are [`postern_tls::params`]'s.
pub fn parse_protocols(list: &str) -> Result<Versions, String> {
    let bad = || format!("invalid TLS protocol list \"{list}\"");
    let mut canonical = Vec::new();
    for tok in list
        .split(|c: char| c.is_whitespace() || c == ',' || c == ':')
        .filter(|t| !t.is_empty())
        .take(64)
    {
        let op = [">=", "<=", "!"]
            .into_iter()
            .find(|op| tok.starts_with(op))
            .unwrap_or("");
        let v = TlsVersion::parse_any_case(&tok[op.len()..]).ok_or_else(bad)?;
        canonical.push(format!("{op}{}", v.name()));
    }
    let p = tls_params::parse_protocols(&canonical.join(" ")).map_err(|_| bad())?;
    let v = Versions {
        tls12: p.allows(TlsVersion::Tls12),
        tls13: p.allows(TlsVersion::Tls13),
    };
    if !v.tls12 && !v.tls13 {
        return Err(format!("no TLS protocol version left in \"{list}\""));
    }
    Ok(v)
}

/// A fingerprint digest (`smtp_tls_fingerprint_digest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Digest {
    /// Parses a digest name; `md5` (Postfix's default below compatibility
    /// level 3.6) is not available and is an error.
    pub fn parse(v: &str) -> Result<Digest, String> {
        match v.trim().to_ascii_lowercase().as_str() {
            "sha1" => Ok(Digest::Sha1),
            "sha256" => Ok(Digest::Sha256),
            "sha384" => Ok(Digest::Sha384),
            "sha512" => Ok(Digest::Sha512),
            other => Err(format!("unsupported fingerprint digest \"{other}\"")),
        }
    }

    /// Digest of `data`.
    pub fn of(self, data: &[u8]) -> Vec<u8> {
        use ring::digest;
        let alg = match self {
            Digest::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Digest::Sha256 => &digest::SHA256,
            Digest::Sha384 => &digest::SHA384,
            Digest::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }
}

/// Parses one fingerprint: hex digits, colons between pairs optional.
pub fn parse_fingerprint(v: &str) -> Option<Vec<u8>> {
    let hex: Vec<u8> = v.bytes().filter(|&b| b != b':').collect();
    if hex.is_empty() || !hex.len().is_multiple_of(2) || hex.len() > 256 {
        return None;
    }
    hex.chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

/// Splits a list on whitespace, commas and colons (main.cf match lists).
pub fn split_list(v: &str) -> Vec<String> {
    v.split(|c: char| c.is_whitespace() || c == ',' || c == ':')
        .filter(|t| !t.is_empty())
        .take(256)
        .map(str::to_string)
        .collect()
}

/// A parsed `smtp_tls_policy_maps` value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The level (`None` never: see [`parse_entry`]).
    pub level: Option<Level>,
    /// `match=` values, each split as the level wants (colon for
    /// verify/secure, `|` for fingerprint).
    pub matches: Vec<String>,
    /// `protocols=` (colon-separated in tables).
    pub protocols: Option<String>,
    /// `ciphers=` (a grade; rustls has only strong suites: recorded only).
    pub ciphers: Option<String>,
    /// `exclude=` (recorded only).
    pub exclude: Option<String>,
    /// `tafile=` trust-anchor files (verify and secure).
    pub tafile: Vec<String>,
    /// `servername=`: `hostname`, `nexthop` or a DNS name.
    pub servername: Option<String>,
    /// `connection_reuse=`.
    pub connection_reuse: Option<bool>,
    /// Warnings for attributes ignored because TLS is off.
    pub ignored: Vec<String>,
}

/// Parses a policy table value. The error is Postfix's warning text
/// (without the `table, next-hop destination "x":` prefix).
pub fn parse_entry(value: &str) -> Result<Entry, String> {
    if value.len() > 64 * 1024 {
        return Err("policy too long".into());
    }
    let mut toks = value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty());
    let first = toks.next().ok_or("invalid empty policy")?;
    let level = Level::parse(first).ok_or_else(|| format!("invalid security level \"{first}\""))?;
    let mut e = Entry {
        level: Some(level),
        ..Entry::default()
    };
    if level < Level::May {
        e.ignored = toks
            .map(|t| format!("ignoring attribute \"{t}\" with TLS disabled"))
            .collect();
        return Ok(e);
    }
    for tok in toks.take(256) {
        let Some((name, val)) = tok.split_once('=') else {
            return Err(format!(
                "malformed attribute/value pair \"{tok}\": missing '=' after attribute name"
            ));
        };
        let name = name.to_ascii_lowercase();
        let once = |slot: &Option<String>| -> Result<(), String> {
            if slot.is_some() {
                return Err(format!("attribute \"{name}\" is specified multiple times"));
            }
            if val.is_empty() {
                return Err(format!("attribute \"{name}\" has empty value"));
            }
            Ok(())
        };
        match name.as_str() {
            "ciphers" => {
                once(&e.ciphers)?;
                e.ciphers = Some(val.into());
            }
            "protocols" => {
                once(&e.protocols)?;
                e.protocols = Some(val.into());
            }
            "exclude" => {
                once(&e.exclude)?;
                e.exclude = Some(val.into());
            }
            "servername" => {
                once(&e.servername)?;
                e.servername = Some(val.into());
            }
            "match" => {
                if !level.must_match() {
                    return Err(format!(
                        "attribute \"match\" invalid at security level \"{}\"",
                        level.name()
                    ));
                }
                if val.is_empty() {
                    return Err("attribute \"match\" has empty value".into());
                }
                let sep = if level == Level::Fingerprint {
                    '|'
                } else {
                    ':'
                };
                e.matches
                    .extend(val.split(sep).filter(|s| !s.is_empty()).map(str::to_string));
            }
            "tafile" => {
                if !level.must_trust() {
                    return Err(format!(
                        "attribute \"tafile\" invalid at security level \"{}\"",
                        level.name()
                    ));
                }
                if val.is_empty() {
                    return Err("attribute \"tafile\" has empty value".into());
                }
                e.tafile.push(val.into());
            }
            "connection_reuse" => {
                e.connection_reuse = Some(match val.to_ascii_lowercase().as_str() {
                    "yes" | "true" | "1" => true,
                    "no" | "false" | "0" => false,
                    _ => return Err(format!("invalid \"connection_reuse\" value \"{val}\"")),
                });
            }
            _ => return Err(format!("invalid attribute name: \"{name}\"")),
        }
    }
    Ok(e)
}

/// The policy-table keys for a next hop, in lookup order: the next hop
/// verbatim; for a bare domain also its parents with a leading dot
/// (`a.b.example` → `.b.example` → `.example`).
pub fn policy_keys(nexthop: &str) -> Vec<String> {
    let key = nexthop.trim();
    let key = key
        .strip_prefix("inet:")
        .or_else(|| key.strip_prefix("smtp:"))
        .unwrap_or(key);
    let mut out = vec![key.to_string()];
    if key.starts_with('[') || key.contains(':') || key.contains('/') {
        return out;
    }
    let mut rest = key;
    while let Some(i) = rest.get(1..).and_then(|r| r.find('.')) {
        rest = &rest[i + 1..];
        out.push(rest.to_string());
        if out.len() > 127 {
            break;
        }
    }
    out
}

/// One certificate-name rule of a match list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameRule {
    /// This exact name (wildcard certificate names allowed).
    Exact(String),
    /// Any proper subdomain of this domain.
    Sub(String),
}

/// Turns a verify/secure match list into name rules: `hostname` → the
/// server's name, `nexthop` → the next-hop domain, `dot-nexthop` → its
/// subdomains, `.example` → subdomains of example, else an exact name.
pub fn name_rules(list: &[String], host: &str, nexthop: &str) -> Vec<NameRule> {
    let norm = |s: &str| s.trim_end_matches('.').to_ascii_lowercase();
    list.iter()
        .map(|m| match m.to_ascii_lowercase().as_str() {
            "hostname" => NameRule::Exact(norm(host)),
            "nexthop" => NameRule::Exact(norm(nexthop)),
            "dot-nexthop" => NameRule::Sub(norm(nexthop)),
            s => match s.strip_prefix('.') {
                Some(d) => NameRule::Sub(norm(d)),
                None => NameRule::Exact(norm(s)),
            },
        })
        .filter(|r| !matches!(r, NameRule::Exact(s) | NameRule::Sub(s) if s.is_empty()))
        .collect()
}

/// Whether a certificate name (`mx.example`, `*.example`) satisfies `rule`.
pub fn name_matches(cert_name: &str, rule: &NameRule) -> bool {
    let c = cert_name.trim_end_matches('.').to_ascii_lowercase();
    if c.is_empty() {
        return false;
    }
    match rule {
        NameRule::Exact(want) => {
            if c == *want {
                return true;
            }
            // A wildcard covers exactly one (leftmost) label.
            match (c.strip_prefix("*."), want.split_once('.')) {
                (Some(suffix), Some((label, rest))) => {
                    !label.is_empty() && rest == suffix && suffix.contains('.')
                }
                _ => false,
            }
        }
        NameRule::Sub(domain) => c
            .strip_suffix(domain.as_str())
            .is_some_and(|p| p.len() > 1 && p.ends_with('.')),
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;

/// Fuzz entry point (`fuzz/fuzz_targets/smtp_tls_policy.rs`): the client's
/// parsers of table, DNS, HTTP and certificate input must never panic. The
/// input is split at NUL bytes into up to four fields.
pub fn fuzz(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut f = text.split('\0');
    let (a, b) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
    if let Ok(e) = parse_entry(a) {
        assert!(e.level.is_some());
    }
    drop(parse_protocols(a));
    let _ = parse_fingerprint(a);
    let keys = policy_keys(a);
    assert!(!keys.is_empty());
    let rules = name_rules(&split_list(a), b, b);
    for r in &rules {
        let _ = name_matches(b, r);
    }
    drop(crate::sts::parse_policy(data));
    let _ = crate::sts::parse_txt(&[a.to_string(), b.to_string()]);
    let _ = crate::sts::cache_decode(data);
    let _ = crate::sts::mx_pattern_matches(a, b);
    drop(crate::https::parse_reply(data, true));
    drop(crate::https::parse_reply(data, false));
    let _ = crate::verify::name_oneline(data);
    let cert = rustls::pki_types::CertificateDer::from(data.to_vec());
    let _ = crate::verify::cert_names_match(&cert, &rules);
    let t = postern_dns::Tlsa {
        usage: 3,
        selector: data.first().map_or(0, |x| x & 1),
        mtype: 1,
        data: vec![0; 32],
    };
    let _ = crate::dane::record_matches(&t, &cert);
}
