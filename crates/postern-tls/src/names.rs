//! rustls values named the way Postfix (OpenSSL) logs them: the protocol
//! (`TLSv1.3`), the cipher suite with its strength
//! (`TLS_AES_256_GCM_SHA384 (256/256 bits)`) and the key-exchange group
//! (`X25519`, `prime256v1`). One table ([`crate::params::CIPHERS`]) names
//! every suite; nothing here edits rustls's `Debug` text.
//!
//! # Security
//! Pure: every string comes from the tables here or from rustls's enums,
//! never from peer text.
//!
//! # Configuration
//! None.

use crate::params::cipher_info;
use rustls::{NamedGroup, ProtocolVersion, SupportedCipherSuite};

/// `TLSv1.2` or `TLSv1.3`; `None` for a version rustls does not offer.
pub fn protocol_name(v: Option<ProtocolVersion>) -> Option<&'static str> {
    match v {
        Some(ProtocolVersion::TLSv1_3) => Some("TLSv1.3"),
        Some(ProtocolVersion::TLSv1_2) => Some("TLSv1.2"),
        _ => None,
    }
}

/// OpenSSL's name of a suite and its strength in bits. A suite missing from
/// [`crate::params::CIPHERS`] (none of the `ring` provider's) keeps rustls's
/// name with 0 bits.
pub fn cipher_name(suite: SupportedCipherSuite) -> (String, u16) {
    match cipher_info(u16::from(suite.suite())) {
        Some(c) => (c.openssl.to_string(), c.bits),
        None => (format!("{:?}", suite.suite()), 0),
    }
}

/// `NAME (BITS/BITS bits)`, as in Postfix's `with cipher …` clause.
pub fn cipher_text(suite: SupportedCipherSuite) -> String {
    let (name, bits) = cipher_name(suite);
    format!("{name} ({bits}/{bits} bits)")
}

/// OpenSSL's name of a key-exchange group (`X25519`, `prime256v1`,
/// `secp384r1`, `secp521r1`; others by their rustls name).
pub fn group_name(g: NamedGroup) -> String {
    match g {
        NamedGroup::X25519 => "X25519".into(),
        NamedGroup::secp256r1 => "prime256v1".into(),
        NamedGroup::secp384r1 => "secp384r1".into(),
        NamedGroup::secp521r1 => "secp521r1".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ring_suite_is_named() {
        let p = rustls::crypto::ring::default_provider();
        for s in &p.cipher_suites {
            assert!(
                cipher_info(u16::from(s.suite())).is_some(),
                "{:?}",
                s.suite()
            );
        }
        let names: Vec<String> = p.cipher_suites.iter().map(|s| cipher_text(*s)).collect();
        for want in [
            "TLS_AES_256_GCM_SHA384 (256/256 bits)",
            "TLS_AES_128_GCM_SHA256 (128/128 bits)",
            "TLS_CHACHA20_POLY1305_SHA256 (256/256 bits)",
            "ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
            "ECDHE-ECDSA-CHACHA20-POLY1305 (256/256 bits)",
        ] {
            assert!(names.contains(&want.to_string()), "{names:?}");
        }
    }

    #[test]
    fn protocols_and_groups() {
        assert_eq!(
            protocol_name(Some(ProtocolVersion::TLSv1_3)),
            Some("TLSv1.3")
        );
        assert_eq!(
            protocol_name(Some(ProtocolVersion::TLSv1_2)),
            Some("TLSv1.2")
        );
        assert_eq!(protocol_name(None), None);
        assert_eq!(group_name(NamedGroup::X25519), "X25519");
        assert_eq!(group_name(NamedGroup::secp256r1), "prime256v1");
    }
}
