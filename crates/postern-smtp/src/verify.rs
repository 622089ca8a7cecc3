//! Server-certificate checks for the SMTP client, as rustls verifiers.
//!
//! Like Postfix (since 2.5), the handshake always completes: the
//! [`Verifier`] records what it found (trusted chain? matching name,
//! digest or TLSA record?) in a [`Verdict`], and the session decides
//! afterwards what the security level demands (defer with `Server
//! certificate not trusted` / `not verified`, or go on). The TLS handshake
//! signatures are always checked against the presented certificate's key,
//! so the peer must hold the key of what it shows.
//!
//! * Trust: the chain must lead to an anchor from `smtp_tls_CAfile`,
//!   `smtp_tls_CApath` (PEM files; a directory's files are all read), or —
//!   when both are empty, or `tls_append_default_CA = yes` — the system
//!   store (loaded by `postern_tls::anchors`), validated by webpki (dates, usage,
//!   signatures). `tafile=` / `smtp_tls_trust_anchor_file` replace the CAs.
//! * Names: subjectAltName DNS names (the subject CN only when there is no
//!   DNS name), per [`crate::policy::name_matches`].
//! * Fingerprints: the certificate's or its public key's digest.
//! * DANE: [`crate::dane::matches`].
//!
//! Security: every certificate byte is untrusted input; parsing is
//! webpki's, apart from [`subject_cn`] which is bounded and fuzzed.
//!
//! Parameters: `smtp_tls_CAfile`, `smtp_tls_CApath`,
//! `tls_append_default_CA`, `smtp_tls_trust_anchor_file` (via
//! [`crate::tlsconf`]).

use crate::dane::{self, DaneCheck};
use crate::policy::{Digest, NameRule, name_matches};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::{Arc, Mutex};

/// What the certificate must satisfy beyond the handshake.
#[derive(Debug, Clone)]
pub enum Check {
    /// Nothing (`may`, `encrypt`); trust is still computed for the log.
    None,
    /// One of these digests of the certificate or of its public key.
    Fingerprint(Digest, Vec<Vec<u8>>),
    /// A trusted chain and a name matching one rule.
    Names(Vec<NameRule>),
    /// The TLSA records (RFC 7672).
    Dane(DaneCheck),
}

/// The outcome of one certificate check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The server presented a certificate.
    pub has_cert: bool,
    /// The chain leads to a trusted anchor (or a DANE record vouches).
    pub trusted: bool,
    /// The certificate matches the policy (name, digest, TLSA).
    pub matched: bool,
    /// Why the chain is not trusted, in Postfix's words, with `%s` for the
    /// peer's `host[addr]:port` (logged when the level checks trust).
    pub untrusted_why: Option<String>,
}

impl Verdict {
    /// `Verified`, `Trusted`, `Untrusted` or `Anonymous`, as Postfix's
    /// TLS summary line starts.
    pub fn label(&self) -> &'static str {
        if !self.has_cert {
            "Anonymous"
        } else if self.matched {
            "Verified"
        } else if self.trusted {
            "Trusted"
        } else {
            "Untrusted"
        }
    }
}

/// A verifier for one connection: checks, then keeps the [`Verdict`].
pub struct Verifier {
    provider: Arc<CryptoProvider>,
    roots: Arc<Vec<TrustAnchor<'static>>>,
    check: Check,
    verdict: Mutex<Option<Verdict>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("check", &self.check)
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier with `check` against `roots`.
    pub fn new(
        provider: Arc<CryptoProvider>,
        roots: Arc<Vec<TrustAnchor<'static>>>,
        check: Check,
    ) -> Verifier {
        Verifier {
            provider,
            roots,
            check,
            verdict: Mutex::new(None),
        }
    }

    /// The verdict of the last handshake (None: no certificate was checked).
    pub fn verdict(&self) -> Option<Verdict> {
        self.verdict
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Computes the verdict for a presented chain at time `now`.
    pub fn judge(
        &self,
        ee: &CertificateDer<'_>,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Verdict {
        let mut v = Verdict {
            has_cert: true,
            ..Verdict::default()
        };
        match pkix(&self.provider, &self.roots, ee, chain, now) {
            Ok(()) => v.trusted = true,
            Err(why) => v.untrusted_why = Some(why),
        }
        match &self.check {
            Check::None => {}
            Check::Fingerprint(d, list) => {
                let spki = spki_der(ee);
                v.matched = list.iter().any(|fp| {
                    *fp == d.of(ee.as_ref()) || spki.as_ref().is_some_and(|s| *fp == d.of(s))
                });
            }
            Check::Names(rules) => {
                v.matched = v.trusted && cert_names_match(ee, rules);
            }
            Check::Dane(d) => {
                let (trusted, matched) =
                    dane::matches(d, &self.provider, ee, chain, now, |ee, rules| {
                        cert_names_match(ee, rules)
                    });
                v.trusted |= trusted;
                v.matched = matched;
            }
        }
        v
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let v = self.judge(end_entity, intermediates, now);
        *self.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Validates `ee` + `chain` to one of `anchors` for TLS server use.
pub fn pkix(
    provider: &CryptoProvider,
    anchors: &[TrustAnchor<'_>],
    ee: &CertificateDer<'_>,
    chain: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), String> {
    let cert = webpki::EndEntityCert::try_from(ee)
        .map_err(|e| format!("server certificate verification failed for %s: {e}"))?;
    match cert.verify_for_usage(
        provider.signature_verification_algorithms.all,
        anchors,
        chain,
        now,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    ) {
        Ok(_) => Ok(()),
        Err(e) => Err(postfix_why(&cert, chain, &e)),
    }
}

/// Postfix's `tls_log_verify_error` texts for a webpki error.
fn postfix_why(
    cert: &webpki::EndEntityCert<'_>,
    chain: &[CertificateDer<'_>],
    e: &webpki::Error,
) -> String {
    use webpki::Error as E;
    match e {
        E::CertExpired { .. } => {
            "server certificate verification failed for %s: certificate has expired".into()
        }
        E::CertNotValidYet { .. } => {
            "server certificate verification failed for %s: certificate not yet valid".into()
        }
        E::UnknownIssuer | E::CaUsedAsEndEntity
            if chain.is_empty() && cert.issuer() == cert.subject() =>
        {
            "certificate verification failed for %s: self-signed certificate".into()
        }
        E::UnknownIssuer => {
            let issuer = chain
                .last()
                .and_then(|c| webpki::EndEntityCert::try_from(c).ok())
                .map(|c| name_oneline(c.issuer()))
                .unwrap_or_else(|| name_oneline(cert.issuer()));
            format!("certificate verification failed for %s: untrusted issuer {issuer}")
        }
        E::RequiredEkuNotFoundContext(_) => {
            "certificate verification failed for %s: not designated for use as a server certificate"
                .into()
        }
        other => format!("server certificate verification failed for %s: {other}"),
    }
}

/// The certificate's SubjectPublicKeyInfo (DER), if it parses.
pub fn spki_der(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    webpki::EndEntityCert::try_from(cert)
        .ok()
        .map(|c| c.subject_public_key_info().as_ref().to_vec())
}

/// Whether a DNS name of `ee` (SAN; CN without SAN) satisfies a rule.
pub fn cert_names_match(ee: &CertificateDer<'_>, rules: &[NameRule]) -> bool {
    let Ok(cert) = webpki::EndEntityCert::try_from(ee) else {
        return false;
    };
    let mut names: Vec<String> = cert.valid_dns_names().map(str::to_string).collect();
    if names.is_empty() {
        names.extend(subject_cn(cert.subject()));
    }
    names
        .iter()
        .any(|n| rules.iter().any(|r| name_matches(n, r)))
}

/// Reads one DER TLV at the start of `b`: (tag, contents, rest).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    Some((tag, b.get(hdr..end)?, b.get(end..)?))
}

/// `(short name, value)` pairs of an X.501 Name's contents (the RDN
/// sequence without its outer SEQUENCE header, as webpki gives it).
/// Bounded: at most 64 attributes; unknown types are skipped.
pub fn name_attrs(mut name: &[u8]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    while let Some((0x31, set, rest)) = tlv(name) {
        name = rest;
        let mut set = set;
        while let Some((0x30, atv, rest)) = tlv(set) {
            set = rest;
            let Some((0x06, oid, val)) = tlv(atv) else {
                continue;
            };
            let short = match oid {
                [0x55, 0x04, 0x03] => "CN",
                [0x55, 0x04, 0x06] => "C",
                [0x55, 0x04, 0x07] => "L",
                [0x55, 0x04, 0x08] => "ST",
                [0x55, 0x04, 0x0a] => "O",
                [0x55, 0x04, 0x0b] => "OU",
                _ => continue,
            };
            if let Some((_, v, _)) = tlv(val) {
                let s: String = String::from_utf8_lossy(v)
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .take(256)
                    .collect();
                out.push((short, s));
            }
            if out.len() >= 64 {
                return out;
            }
        }
    }
    out
}

/// The subject's common name(s).
pub fn subject_cn(name: &[u8]) -> Vec<String> {
    name_attrs(name)
        .into_iter()
        .filter(|(k, _)| *k == "CN")
        .map(|(_, v)| v)
        .collect()
}

/// OpenSSL's one-line form `/C=DE/O=Example/CN=Test CA`.
pub fn name_oneline(name: &[u8]) -> String {
    name_attrs(name)
        .into_iter()
        .map(|(k, v)| format!("/{k}={v}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_names() {
        // SEQUENCE-less RDNs: SET { SEQ { OID 2.5.4.3, UTF8 "mx" } } SET { SEQ { OID O, PRINTABLE "Ex" } }
        let name = [
            0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x02, b'm', b'x', 0x31,
            0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x13, 0x02, b'E', b'x',
        ];
        assert_eq!(subject_cn(&name), ["mx"]);
        assert_eq!(name_oneline(&name), "/CN=mx/O=Ex");
        assert!(name_attrs(&name[..5]).is_empty());
        assert!(name_attrs(&[0x31, 0x84, 0xff, 0xff, 0xff, 0xff]).is_empty());
    }

    #[test]
    fn labels() {
        let mut v = Verdict::default();
        assert_eq!(v.label(), "Anonymous");
        v.has_cert = true;
        assert_eq!(v.label(), "Untrusted");
        v.trusted = true;
        assert_eq!(v.label(), "Trusted");
        v.matched = true;
        assert_eq!(v.label(), "Verified");
    }
}
