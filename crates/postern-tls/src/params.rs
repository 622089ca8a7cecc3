//! Postfix's TLS parameter vocabulary, parsed without touching any TLS library.
//!
//! * [`parse_protocols`]: `smtpd_tls_protocols`, `smtp_tls_protocols` and their
//!   `_mandatory_` forms (`>=TLSv1.2`, `!SSLv2, !SSLv3`, `TLSv1.2 TLSv1.3`,
//!   `<=TLSv1.2`), with Postfix's rules (an include list excludes every other
//!   known protocol; an unknown name makes the whole list invalid).
//! * [`CIPHERS`] and [`select_ciphers`]: the TLS 1.2 and 1.3 cipher suites a
//!   rustls `ring` build implements, with their OpenSSL names, and an evaluator
//!   for OpenSSL cipher strings (`tls_medium_cipherlist`, `*_exclude_ciphers`)
//!   over that set. As in OpenSSL, cipher strings and exclusions select TLS 1.2
//!   suites only; TLS 1.3 suites are always available.
//! * [`parse_grade`]: `smtpd_tls_ciphers` / `smtpd_tls_mandatory_ciphers`.
//! * [`curve_groups`]: `tls_eecdh_auto_curves` names mapped to the groups rustls has.
//!
//! # Security
//! Pure; every input is a parameter value. No input panics; lists are split
//! on Postfix's separators and every token is bounded by the value's length.
//!
//! # Configuration
//! Reads nothing itself: callers pass the values of the parameters above.

use std::fmt;

/// A protocol version name Postfix knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// SSLv2 (never offered).
    Ssl2,
    /// SSLv3 (never offered).
    Ssl3,
    /// TLSv1 (never offered by rustls).
    Tls1,
    /// TLSv1.1 (never offered by rustls).
    Tls11,
    /// TLSv1.2.
    Tls12,
    /// TLSv1.3.
    Tls13,
}

const VERSIONS: [(&str, TlsVersion); 6] = [
    ("SSLv2", TlsVersion::Ssl2),
    ("SSLv3", TlsVersion::Ssl3),
    ("TLSv1", TlsVersion::Tls1),
    ("TLSv1.1", TlsVersion::Tls11),
    ("TLSv1.2", TlsVersion::Tls12),
    ("TLSv1.3", TlsVersion::Tls13),
];

impl TlsVersion {
    /// The name as Postfix and OpenSSL log it (`TLSv1.3`).
    pub fn name(self) -> &'static str {
        VERSIONS
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(n, _)| *n)
            .unwrap_or("unknown")
    }

    fn parse(name: &str) -> Option<TlsVersion> {
        VERSIONS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// The version named `name` in any letter case (`tlsv1.2`), for the
    /// client's policy attributes, which accept any case.
    pub fn parse_any_case(name: &str) -> Option<TlsVersion> {
        VERSIONS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// A value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsParamError(pub String);

impl fmt::Display for TlsParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsParamError {}

/// The protocols a `*_tls_protocols` value allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocols {
    excluded: u8,
    floor: Option<TlsVersion>,
    ceiling: Option<TlsVersion>,
}

impl Protocols {
    /// Whether `v` is allowed.
    pub fn allows(&self, v: TlsVersion) -> bool {
        self.excluded & (1 << v as u8) == 0
            && self.floor.is_none_or(|f| v >= f)
            && self.ceiling.is_none_or(|c| v <= c)
    }
}

fn tokens<'a>(value: &'a str, seps: &'a [char]) -> impl Iterator<Item = &'a str> {
    value
        .split(|c: char| c.is_ascii_whitespace() || seps.contains(&c))
        .filter(|t| !t.is_empty())
}

/// Parses a protocol list (names are case-sensitive, as in Postfix).
///
/// # Errors
/// An unknown protocol name: Postfix then disables TLS ("Invalid TLS
/// protocol list").
pub fn parse_protocols(value: &str) -> Result<Protocols, TlsParamError> {
    let mut include = 0u8;
    let mut exclude = 0u8;
    let mut p = Protocols {
        excluded: 0,
        floor: None,
        ceiling: None,
    };
    let bad = || TlsParamError(format!("Invalid TLS protocol list \"{value}\""));
    for tok in tokens(value, &[',', ':']) {
        if let Some(v) = tok.strip_prefix(">=") {
            p.floor = Some(TlsVersion::parse(v).ok_or_else(bad)?);
        } else if let Some(v) = tok.strip_prefix("<=") {
            p.ceiling = Some(TlsVersion::parse(v).ok_or_else(bad)?);
        } else if let Some(v) = tok.strip_prefix('!') {
            exclude |= 1 << TlsVersion::parse(v).ok_or_else(bad)? as u8;
        } else {
            include |= 1 << TlsVersion::parse(tok).ok_or_else(bad)? as u8;
        }
    }
    p.excluded = if include != 0 {
        exclude | (0x3f & !include)
    } else {
        exclude
    };
    Ok(p)
}

/// `*_tls_ciphers`: the OpenSSL cipher grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grade {
    /// `export`.
    Export,
    /// `low`.
    Low,
    /// `medium` (Postfix's default).
    Medium,
    /// `high`.
    High,
    /// `null` (no encryption: rustls has no such suite).
    Null,
}

impl Grade {
    /// The parameter naming this grade's cipher list (`tls_medium_cipherlist`).
    pub fn cipherlist_param(self) -> postern_config::Str {
        use postern_config::p;
        match self {
            Grade::Export => p::TLS_EXPORT_CIPHERLIST,
            Grade::Low => p::TLS_LOW_CIPHERLIST,
            Grade::Medium => p::TLS_MEDIUM_CIPHERLIST,
            Grade::High => p::TLS_HIGH_CIPHERLIST,
            Grade::Null => p::TLS_NULL_CIPHERLIST,
        }
    }
}

/// Parses a cipher grade (case-insensitive).
///
/// # Errors
/// Any other word.
pub fn parse_grade(value: &str) -> Result<Grade, TlsParamError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "export" => Ok(Grade::Export),
        "low" => Ok(Grade::Low),
        "medium" => Ok(Grade::Medium),
        "high" => Ok(Grade::High),
        "null" => Ok(Grade::Null),
        _ => Err(TlsParamError(format!("invalid cipher grade \"{value}\""))),
    }
}

/// One cipher suite rustls (ring provider) implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CipherInfo {
    /// IANA code point.
    pub code: u16,
    /// OpenSSL's name (what Postfix logs).
    pub openssl: &'static str,
    /// A TLS 1.3 suite (not subject to cipher strings).
    pub tls13: bool,
    /// Cipher strength in bits (`(256/256 bits)` in logs).
    pub bits: u16,
    /// OpenSSL aliases that select this suite.
    aliases: &'static [&'static str],
}

const COMMON12: &[&str] = &[
    "ALL", "DEFAULT", "HIGH", "kECDHE", "ECDHE", "EECDH", "AEAD", "TLSv1.2",
];

/// The suites of rustls's `ring` provider, TLS 1.3 first.
pub const CIPHERS: &[CipherInfo] = &[
    CipherInfo {
        code: 0x1302,
        openssl: "TLS_AES_256_GCM_SHA384",
        tls13: true,
        bits: 256,
        aliases: &[],
    },
    CipherInfo {
        code: 0x1303,
        openssl: "TLS_CHACHA20_POLY1305_SHA256",
        tls13: true,
        bits: 256,
        aliases: &[],
    },
    CipherInfo {
        code: 0x1301,
        openssl: "TLS_AES_128_GCM_SHA256",
        tls13: true,
        bits: 128,
        aliases: &[],
    },
    CipherInfo {
        code: 0xc02c,
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
        tls13: false,
        bits: 256,
        aliases: &["aECDSA", "ECDSA", "AES", "AES256", "AESGCM", "SHA384"],
    },
    CipherInfo {
        code: 0xc030,
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
        tls13: false,
        bits: 256,
        aliases: &["aRSA", "RSA", "AES", "AES256", "AESGCM", "SHA384"],
    },
    CipherInfo {
        code: 0xcca9,
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
        tls13: false,
        bits: 256,
        aliases: &["aECDSA", "ECDSA", "CHACHA20", "SHA256"],
    },
    CipherInfo {
        code: 0xcca8,
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
        tls13: false,
        bits: 256,
        aliases: &["aRSA", "RSA", "CHACHA20", "SHA256"],
    },
    CipherInfo {
        code: 0xc02b,
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
        tls13: false,
        bits: 128,
        aliases: &["aECDSA", "ECDSA", "AES", "AES128", "AESGCM", "SHA256"],
    },
    CipherInfo {
        code: 0xc02f,
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
        tls13: false,
        bits: 128,
        aliases: &["aRSA", "RSA", "AES", "AES128", "AESGCM", "SHA256"],
    },
];

/// The suite with IANA code `code`, if rustls has it.
pub fn cipher_info(code: u16) -> Option<&'static CipherInfo> {
    CIPHERS.iter().find(|c| c.code == code)
}

fn matches(c: &CipherInfo, term: &str) -> bool {
    // `A+B` selects suites matching both.
    term.split('+').filter(|t| !t.is_empty()).all(|t| {
        t.eq_ignore_ascii_case(c.openssl) || c.aliases.contains(&t) || COMMON12.contains(&t)
    }) && !term.trim_matches('+').is_empty()
}

/// Evaluates an OpenSSL cipher string over the TLS 1.2 suites of [`CIPHERS`]
/// and removes `exclusions` (the `*_exclude_ciphers` values, each a list of
/// names or aliases). Returns the selected TLS 1.2 suites in preference order.
///
/// Terms rustls has no suite for (`RC4`, `aNULL`, `3DES`, `MEDIUM`, …) select
/// nothing and are accepted; `@STRENGTH` sorts by strength; other `@` commands
/// are ignored. `!X` removes for good, `-X` removes, `+X` moves to the end.
pub fn select_ciphers(cipherlist: &str, exclusions: &[&str]) -> Vec<&'static CipherInfo> {
    let mut chosen: Vec<&'static CipherInfo> = Vec::new();
    let mut banned: Vec<u16> = Vec::new();
    let tls12 = || CIPHERS.iter().filter(|c| !c.tls13);
    for tok in tokens(cipherlist, &[',', ':']) {
        if tok.eq_ignore_ascii_case("@STRENGTH") {
            chosen.sort_by_key(|c| std::cmp::Reverse(c.bits));
            continue;
        }
        if tok.starts_with('@') {
            continue;
        }
        if let Some(t) = tok.strip_prefix('!') {
            for c in tls12().filter(|c| matches(c, t)) {
                banned.push(c.code);
            }
            chosen.retain(|c| !matches(c, t));
        } else if let Some(t) = tok.strip_prefix('-') {
            chosen.retain(|c| !matches(c, t));
        } else if let Some(t) = tok.strip_prefix('+') {
            let (moved, kept): (Vec<_>, Vec<_>) = chosen.iter().partition(|c| matches(c, t));
            chosen = kept;
            chosen.extend(moved);
        } else {
            for c in tls12().filter(|c| matches(c, tok)) {
                if !chosen.iter().any(|x| x.code == c.code) && !banned.contains(&c.code) {
                    chosen.push(c);
                }
            }
        }
    }
    for ex in exclusions {
        for t in tokens(ex, &[',', ':']) {
            chosen.retain(|c| !matches(c, t));
        }
    }
    chosen
}

/// A key-exchange group rustls (ring) implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// X25519.
    X25519,
    /// NIST P-256 (`prime256v1`).
    P256,
    /// NIST P-384 (`secp384r1`).
    P384,
}

/// Maps a curve list (`tls_eecdh_auto_curves`) to the groups rustls has, in
/// order; names rustls lacks (`X448`, `secp521r1`, …) are skipped.
pub fn curve_groups(value: &str) -> Vec<Group> {
    let mut out = Vec::new();
    for t in tokens(value, &[',', ':']) {
        let g = match t.to_ascii_lowercase().as_str() {
            "x25519" => Group::X25519,
            "prime256v1" | "secp256r1" | "p-256" => Group::P256,
            "secp384r1" | "p-384" => Group::P384,
            _ => continue,
        };
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_lists() {
        let p = parse_protocols(">=TLSv1").unwrap();
        assert!(p.allows(TlsVersion::Tls12) && p.allows(TlsVersion::Tls13));
        assert!(!p.allows(TlsVersion::Ssl3));
        let p = parse_protocols("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1").unwrap();
        assert!(p.allows(TlsVersion::Tls12) && !p.allows(TlsVersion::Tls1));
        let p = parse_protocols("TLSv1.3").unwrap();
        assert!(!p.allows(TlsVersion::Tls12) && p.allows(TlsVersion::Tls13));
        let p = parse_protocols("<=TLSv1.2").unwrap();
        assert!(p.allows(TlsVersion::Tls12) && !p.allows(TlsVersion::Tls13));
        let p = parse_protocols("!TLSv1.3:!TLSv1.2").unwrap();
        assert!(!p.allows(TlsVersion::Tls12) && !p.allows(TlsVersion::Tls13));
        assert!(parse_protocols("").unwrap().allows(TlsVersion::Tls13));
        assert!(parse_protocols("TLSv9").is_err());
        assert!(parse_protocols(">=tlsv1.2").is_err());
        assert!(parse_protocols("!").is_err());
    }

    #[test]
    fn cipher_strings() {
        let all = select_ciphers("aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH", &[]);
        assert_eq!(all.len(), 6);
        assert_eq!(all[0].bits, 256);
        let none = select_ciphers("eNULL:!aNULL", &[]);
        assert!(none.is_empty());
        let no_rsa = select_ciphers("HIGH", &["aRSA"]);
        assert!(no_rsa.iter().all(|c| c.openssl.contains("ECDSA")));
        let only = select_ciphers("ECDHE-RSA-AES128-GCM-SHA256", &[]);
        assert_eq!(only.len(), 1);
        let x = select_ciphers("HIGH:!AES256", &["CHACHA20, AES128+aECDSA"]);
        assert_eq!(
            x.iter().map(|c| c.openssl).collect::<Vec<_>>(),
            ["ECDHE-RSA-AES128-GCM-SHA256"]
        );
        assert!(select_ciphers("+:-:!:@:+++", &["+"]).is_empty());
        assert_eq!(
            cipher_info(0x1302).unwrap().openssl,
            "TLS_AES_256_GCM_SHA384"
        );
    }

    #[test]
    fn grades_and_curves() {
        assert_eq!(parse_grade("Medium").unwrap(), Grade::Medium);
        assert!(parse_grade("strong").is_err());
        assert_eq!(
            curve_groups("X25519 X448 prime256v1 secp521r1 secp384r1"),
            [Group::X25519, Group::P256, Group::P384]
        );
    }
}
