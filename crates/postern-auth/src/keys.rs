//! DKIM keys: loading a PEM private key from a file (RSA as PKCS#1 or PKCS#8, Ed25519 as
//! PKCS#8, the forms `openssl genrsa`/`genpkey` and `opendkim-genkey` write) and making a
//! new key pair (`postern dkim keygen`): the PEM private key and the DNS TXT record
//! (`v=DKIM1; k=rsa; p=…`, the RSA key as SubjectPublicKeyInfo as opendkim-genkey
//! publishes it; Ed25519 as the raw 32-byte key, RFC 8463).
//!
//! # Security
//!
//! Key files are read whole but bounded ([`MAX_KEY_FILE`]); RSA keys under 1024 bits are
//! refused for signing (RFC 8301), and keygen makes 1024–4096-bit keys only. Generated
//! private keys are written with mode 0600 by the caller ([`crate::cmd`]).
//!
//! # Configuration
//!
//! None (paths come from the caller).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::dkim::generate::DkimKeyPair;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use std::path::Path;

use crate::AuthError;

/// Largest key file read (a 4096-bit RSA PEM is ~3.3 KB).
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// Key algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// rsa-sha256.
    Rsa,
    /// ed25519-sha256 (RFC 8463).
    Ed25519,
}

impl KeyType {
    /// Parses `rsa` or `ed25519`.
    pub fn parse(s: &str) -> Option<KeyType> {
        match s.to_ascii_lowercase().as_str() {
            "rsa" => Some(KeyType::Rsa),
            "ed25519" => Some(KeyType::Ed25519),
            _ => None,
        }
    }

    /// The `k=` tag value.
    pub fn tag(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

/// A loaded signing key.
pub struct Key {
    /// Its algorithm.
    pub kind: KeyType,
    pub(crate) key: DkimKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("kind", &self.kind).finish()
    }
}

impl Key {
    /// Parses a PEM private key (`RSA PRIVATE KEY` or `PRIVATE KEY`).
    pub fn from_pem(pem: &[u8]) -> Result<Key, AuthError> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| AuthError::Key(format!("no PEM private key: {e}")))?;
        match der {
            PrivateKeyDer::Pkcs1(_) => rsa_key(der),
            PrivateKeyDer::Pkcs8(p8) => {
                let bytes = p8.secret_pkcs8_der().to_vec();
                if let Ok(k) = Ed25519Key::from_pkcs8_der(&bytes) {
                    return Ok(Key {
                        kind: KeyType::Ed25519,
                        key: DkimKey::Ed25519(k),
                    });
                }
                rsa_key(PrivateKeyDer::Pkcs8(bytes.into()))
            }
            _ => Err(AuthError::Key(
                "unsupported key type (RSA or Ed25519 expected)".into(),
            )),
        }
    }

    /// Reads a PEM private key file.
    pub fn from_file(path: &Path) -> Result<Key, AuthError> {
        let data = read_bounded(path, MAX_KEY_FILE)
            .map_err(|e| AuthError::Key(format!("{}: {e}", path.display())))?;
        Key::from_pem(&data).map_err(|e| match e {
            AuthError::Key(m) => AuthError::Key(format!("{}: {m}", path.display())),
            other => other,
        })
    }
}

fn rsa_key(der: PrivateKeyDer<'_>) -> Result<Key, AuthError> {
    let k = RsaKey::<Sha256>::from_key_der(der)
        .map_err(|e| AuthError::Key(format!("bad RSA key: {e}")))?;
    // The PKCS#1 RSAPublicKey is SEQUENCE { modulus, exponent }: its length bounds the
    // modulus size well enough to refuse keys under 1024 bits (RFC 8301 §3.2).
    if k.public_key().len() < 128 {
        return Err(AuthError::Key("RSA key shorter than 1024 bits".into()));
    }
    Ok(Key {
        kind: KeyType::Rsa,
        key: DkimKey::Rsa(k),
    })
}

/// Reads at most `limit` bytes of a file; longer files are an error.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut data = Vec::new();
    f.take(limit + 1).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(data)
}

/// A new key pair.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// Its algorithm.
    pub kind: KeyType,
    /// The private key, PEM.
    pub private_pem: String,
    /// The base64 public key, the `p=` value.
    pub public_b64: String,
}

impl KeyPair {
    /// The TXT record value: `v=DKIM1; k=…; p=…`.
    pub fn txt(&self) -> String {
        format!("v=DKIM1; k={}; p={}", self.kind.tag(), self.public_b64)
    }

    /// The record as a zone-file line for `SELECTOR._domainkey.DOMAIN`, the value split in
    /// character-strings of at most 255 bytes (as opendkim-genkey prints it).
    pub fn zone_line(&self, selector: &str, domain: &str) -> String {
        let txt = self.txt();
        let parts: Vec<String> = txt
            .as_bytes()
            .chunks(250)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect();
        format!(
            "{selector}._domainkey.{domain}.\tIN\tTXT\t( {} )",
            parts.join("\n\t")
        )
    }
}

/// Bits accepted for new RSA keys.
pub const RSA_BITS: std::ops::RangeInclusive<usize> = 1024..=4096;

/// Makes a new key pair (RSA of `bits` bits, or Ed25519).
pub fn keygen(kind: KeyType, bits: usize) -> Result<KeyPair, AuthError> {
    match kind {
        KeyType::Rsa => {
            if !RSA_BITS.contains(&bits) {
                return Err(AuthError::Key(format!(
                    "RSA key size {bits}: expected 1024 to 4096 bits"
                )));
            }
            let pair =
                DkimKeyPair::generate_rsa(bits).map_err(|e| AuthError::Key(e.to_string()))?;
            Ok(KeyPair {
                kind,
                private_pem: pem("RSA PRIVATE KEY", pair.private_key()),
                public_b64: STANDARD.encode(rsa_spki(pair.public_key())),
            })
        }
        KeyType::Ed25519 => {
            let pair =
                DkimKeyPair::generate_ed25519().map_err(|e| AuthError::Key(e.to_string()))?;
            Ok(KeyPair {
                kind,
                private_pem: pem("PRIVATE KEY", pair.private_key()),
                public_b64: STANDARD.encode(pair.public_key()),
            })
        }
    }
}

/// PEM armour, 64 columns.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// DER length octets.
fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (rsaEncryption, NULL params).
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    const ALG: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8];
    bits.extend_from_slice(pkcs1);
    let mut body = ALG.to_vec();
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_roundtrip() {
        let pair = keygen(KeyType::Ed25519, 0).unwrap();
        assert!(
            pair.private_pem
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
        let key = Key::from_pem(pair.private_pem.as_bytes()).unwrap();
        assert_eq!(key.kind, KeyType::Ed25519);
        assert!(pair.txt().starts_with("v=DKIM1; k=ed25519; p="));
        assert_eq!(STANDARD.decode(&pair.public_b64).unwrap().len(), 32);
    }

    #[test]
    fn rsa_roundtrip_and_spki() {
        let pair = keygen(KeyType::Rsa, 1024).unwrap();
        assert!(
            pair.private_pem
                .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
        );
        assert_eq!(
            Key::from_pem(pair.private_pem.as_bytes()).unwrap().kind,
            KeyType::Rsa
        );
        // SPKI of a 1024-bit key: 162 bytes starting 30 81 9f 30 0d.
        let spki = STANDARD.decode(&pair.public_b64).unwrap();
        assert_eq!(&spki[..5], &[0x30, 0x81, 0x9f, 0x30, 0x0d]);
        assert_eq!(spki.len(), 162);
        let line = pair.zone_line("sel", "example.com");
        assert!(line.starts_with("sel._domainkey.example.com.\tIN\tTXT\t( \"v=DKIM1; k=rsa; p="));
    }

    #[test]
    fn bad_keys_refused() {
        assert!(keygen(KeyType::Rsa, 512).is_err());
        assert!(Key::from_pem(b"nothing").is_err());
        assert!(
            Key::from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
        assert_eq!(KeyType::parse("RSA"), Some(KeyType::Rsa));
        assert_eq!(KeyType::parse("dsa"), None);
    }
}
