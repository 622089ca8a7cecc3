//! DANE for SMTP (RFC 7672, RFC 6698/7671): TLSA lookup and matching.
//!
//! * Lookup ([`lookup`]): only at `dane` / `dane-only`, only for a host
//!   whose address records the resolver marked authentic (AD bit), the
//!   TLSA RRset at `_PORT._tcp.HOST` counts only when authentic too, as
//!   Postfix with `smtp_dns_support_level = dnssec` does. No usable answer
//!   gives `dane` the level `may` (no records, or not validated: "non
//!   DNSSEC destination") or `encrypt` (records, none usable); `dane-only`
//!   defers instead. A failed TLSA lookup defers (`TLSA lookup error`).
//! * Usable records: DANE-TA(2) and DANE-EE(3) with selector 0 (full
//!   certificate) or 1 (SubjectPublicKeyInfo) and matching type 0 (exact),
//!   1 (SHA2-256) or 2 (SHA2-512) of the right length. PKIX-TA(0) and
//!   PKIX-EE(1) are unusable for SMTP (RFC 7672 §3.1.3).
//! * Matching ([`matches`]): DANE-EE on the server certificate ignores
//!   names and dates (RFC 7672 §3.1.1). DANE-TA: a certificate of the
//!   presented chain matching the record becomes the only trust anchor;
//!   the chain must validate to it (dates included) and a certificate name
//!   must match the TLSA base domain (the MX host), or the next-hop domain
//!   when the MX RRset was authentic (RFC 7672 §3.2.2).
//!
//! Security: TLSA data and certificates are untrusted input; digests are
//! compared whole, lengths are checked before use.
//!
//! Parameters: `smtp_tls_security_level` (dane, dane-only) through the
//! caller; `smtp_dns_support_level` is consulted only for `disabled` (no DNS:
//! `tlsconf::prepare` turns `dane` into `may` and defers `dane-only`, as
//! Postfix); otherwise DANE levels always ask with the DO bit.

use crate::policy::NameRule;
use postern_dns::{Lookup, Resolver, Tlsa};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};

/// The records and names a DANE connection is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaneCheck {
    /// Usable TLSA records.
    pub tlsa: Vec<Tlsa>,
    /// Reference identifiers for DANE-TA.
    pub names: Vec<NameRule>,
}

/// What the DNS says about DANE for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaneState {
    /// Validated, usable TLSA records.
    Usable(Vec<Tlsa>),
    /// Validated TLSA records, none usable (`dane` → `encrypt`).
    Unusable,
    /// No validated TLSA records (`dane` → `may`); the reason for
    /// `dane-only`.
    NotFound(&'static str),
    /// The lookup failed: defer.
    TempFail(String),
}

/// Whether a record can be used for SMTP (RFC 7672 §3.1).
pub fn usable(t: &Tlsa) -> bool {
    let len_ok = match t.mtype {
        0 => !t.data.is_empty() && t.data.len() <= 65_535,
        1 => t.data.len() == 32,
        2 => t.data.len() == 64,
        _ => false,
    };
    matches!(t.usage, 2 | 3) && matches!(t.selector, 0 | 1) && len_ok
}

/// Looks up the DANE state of `host:port` (the TLSA base domain). `v6`:
/// the address being connected to is IPv6.
pub async fn lookup(r: &Resolver, host: &str, port: u16, v6: bool) -> DaneState {
    match r.address_secure(host, v6).await {
        Lookup::Found(true) => {}
        Lookup::Found(false) | Lookup::NotFound => {
            return DaneState::NotFound("non DNSSEC destination");
        }
        Lookup::TempFail(_) => return DaneState::NotFound("non DNSSEC destination"),
    }
    let name = format!("_{port}._tcp.{}", host.trim_end_matches('.'));
    match r.tlsa(&name).await {
        Lookup::Found(s) if s.authentic => {
            let u: Vec<Tlsa> = s.records.into_iter().filter(usable).collect();
            if u.is_empty() {
                DaneState::Unusable
            } else {
                DaneState::Usable(u)
            }
        }
        Lookup::Found(_) => DaneState::NotFound("non DNSSEC destination"),
        Lookup::NotFound => DaneState::NotFound("no TLSA records found"),
        Lookup::TempFail(_) => DaneState::TempFail(format!("TLSA lookup error for {host}:{port}")),
    }
}

/// Whether the MX RRset of `domain` is authentic (for DANE-TA names).
pub async fn mx_authentic(r: &Resolver, domain: &str) -> bool {
    matches!(r.mx_secure(domain).await, Lookup::Found(s) if s.authentic)
}

/// The bytes a record's selector picks from `cert`.
fn selected(selector: u8, cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    match selector {
        0 => Some(cert.as_ref().to_vec()),
        1 => crate::verify::spki_der(cert),
        _ => None,
    }
}

/// Whether `t` matches `cert` (selector and matching type applied).
pub fn record_matches(t: &Tlsa, cert: &CertificateDer<'_>) -> bool {
    let Some(data) = selected(t.selector, cert) else {
        return false;
    };
    let got = match t.mtype {
        0 => data,
        1 => ring::digest::digest(&ring::digest::SHA256, &data)
            .as_ref()
            .to_vec(),
        2 => ring::digest::digest(&ring::digest::SHA512, &data)
            .as_ref()
            .to_vec(),
        _ => return false,
    };
    got == t.data
}

/// Checks a presented chain against the records: (trusted, matched).
/// `names_ok(ee, rules)` checks the reference identifiers for DANE-TA.
pub fn matches(
    d: &DaneCheck,
    provider: &CryptoProvider,
    ee: &CertificateDer<'_>,
    chain: &[CertificateDer<'_>],
    now: UnixTime,
    names_ok: impl Fn(&CertificateDer<'_>, &[NameRule]) -> bool,
) -> (bool, bool) {
    // DANE-EE: the server certificate itself; names and dates ignored.
    if d.tlsa.iter().any(|t| t.usage == 3 && record_matches(t, ee)) {
        return (true, true);
    }
    // DANE-TA: a presented issuer certificate is the trust anchor.
    for ta in chain {
        if !d.tlsa.iter().any(|t| t.usage == 2 && record_matches(t, ta)) {
            continue;
        }
        let Ok(anchor) = webpki::anchor_from_trusted_cert(ta) else {
            continue;
        };
        if crate::verify::pkix(provider, &[anchor], ee, chain, now).is_ok() {
            return (true, names_ok(ee, &d.names));
        }
    }
    (false, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(usage: u8, selector: u8, mtype: u8, len: usize) -> Tlsa {
        Tlsa {
            usage,
            selector,
            mtype,
            data: vec![0; len],
        }
    }

    #[test]
    fn usability() {
        assert!(usable(&t(3, 1, 1, 32)));
        assert!(usable(&t(2, 0, 2, 64)));
        assert!(usable(&t(3, 0, 0, 100)));
        assert!(!usable(&t(1, 1, 1, 32)), "PKIX-EE is unusable for SMTP");
        assert!(!usable(&t(0, 0, 1, 32)), "PKIX-TA is unusable for SMTP");
        assert!(!usable(&t(3, 1, 1, 31)), "wrong digest length");
        assert!(!usable(&t(3, 2, 1, 32)), "unknown selector");
        assert!(!usable(&t(3, 1, 3, 32)), "unknown matching type");
        assert!(!usable(&t(3, 1, 0, 0)), "empty data");
    }

    #[test]
    fn full_certificate_match() {
        let cert = CertificateDer::from(vec![1u8, 2, 3]);
        let mut r = t(3, 0, 0, 0);
        r.data = vec![1, 2, 3];
        assert!(record_matches(&r, &cert));
        r.mtype = 1;
        r.data = ring::digest::digest(&ring::digest::SHA256, &[1, 2, 3])
            .as_ref()
            .to_vec();
        assert!(record_matches(&r, &cert));
        r.data[0] ^= 1;
        assert!(!record_matches(&r, &cert));
        // Selector 1 needs a parseable certificate.
        r.selector = 1;
        assert!(!record_matches(&r, &cert));
    }
}
