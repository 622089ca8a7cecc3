//! Server keys and certificate chains from PEM files, as Postfix loads them.
//!
//! Two layouts: the legacy pairs (`smtpd_tls_cert_file` + `smtpd_tls_key_file`
//! for RSA, `smtpd_tls_eccert_file` + `smtpd_tls_eckey_file` for ECDSA; key
//! and certificate may share one file) and `smtpd_tls_chain_files` (each file
//! holds one or more chains, each a private key followed by its certificates,
//! leaf first). The same chain layout is the value of a `tls_server_sni_maps`
//! entry, either as file names or as base64 of the PEM text (`postmap -F`).
//!
//! # Security
//! Keys are read once, at process start (or, for SNI, on first use of a
//! table entry), by the unprivileged smtpd: files must be readable by
//! `mail_owner`. Key material is never logged. Every failure is a warning
//! naming the file; the caller then runs without TLS (Postfix's "disabling
//! TLS support"), never panics.

use rustls::SignatureScheme;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use std::sync::Arc;

/// What the key is, for Postfix's `server-signature RSA-PSS (2048 bits)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDesc {
    /// `RSA-PSS`, `ECDSA`, `ED25519`.
    pub name: &'static str,
    /// `(2048 bits)` or `(prime256v1)`.
    pub detail: Option<String>,
}

/// A key with its chain and description.
#[derive(Debug, Clone)]
pub struct LoadedKey {
    /// The key and certificates rustls signs with.
    pub key: Arc<CertifiedKey>,
    /// For logging.
    pub desc: KeyDesc,
}

/// Loads a legacy certificate + key pair; `kind` is `RSA` or `ECDSA` (for
/// the warnings).
pub fn load_pair(
    provider: &CryptoProvider,
    kind: &str,
    cert_file: &str,
    key_file: &str,
) -> Result<LoadedKey, String> {
    let read = |f: &str| std::fs::read(f).map_err(|e| (f.to_string(), e.to_string()));
    let cert_pem = read(cert_file).map_err(|(f, e)| {
        format!("cannot get {kind} certificate from file \"{f}\": {e}: disabling TLS support")
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(format!(
            "cannot get {kind} certificate from file \"{cert_file}\": disabling TLS support"
        ));
    }
    let key_pem = if key_file == cert_file {
        cert_pem
    } else {
        read(key_file).map_err(|(f, e)| {
            format!("cannot get {kind} private key from file \"{f}\": {e}: disabling TLS support")
        })?
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        format!("cannot get {kind} private key from file \"{key_file}\": disabling TLS support")
    })?;
    certified(provider, certs, key).map_err(|e| {
        format!(
            "{kind} private key in {key_file} does not match public key in {cert_file}: {e}: disabling TLS support"
        )
    })
}

/// Loads every chain from PEM text (`origin` names it in warnings).
pub fn load_chains(
    provider: &CryptoProvider,
    pem: &[u8],
    origin: &str,
) -> Result<Vec<LoadedKey>, String> {
    let mut out = Vec::new();
    let mut key: Option<PrivateKeyDer<'static>> = None;
    let mut certs: Vec<CertificateDer<'static>> = Vec::new();
    let mut index = 0usize;
    let mut seen_any = false;
    for (i, item) in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem).enumerate() {
        let (kind, der) = item.map_err(|e| {
            format!("error loading private keys and certificates from: {origin}: {e}")
        })?;
        seen_any = true;
        match kind {
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                finish(provider, origin, &mut out, &mut key, &mut certs, index)?;
                index = i + 1;
                key = Some(match kind {
                    SectionKind::PrivateKey => PrivateKeyDer::Pkcs8(der.into()),
                    SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(der.into()),
                    _ => PrivateKeyDer::Sec1(der.into()),
                });
            }
            SectionKind::Certificate => {
                if key.is_none() {
                    return Err(format!("error loading chain from {origin}: key not first"));
                }
                certs.push(der.into());
            }
            _ => {}
        }
    }
    if !seen_any {
        return Err(format!("No PEM data in {origin}"));
    }
    if key.is_none() && out.is_empty() {
        return Err(format!("No private key found in {origin}"));
    }
    finish(provider, origin, &mut out, &mut key, &mut certs, index)?;
    Ok(out)
}

/// Closes the chain that started with `key` at PEM object `index`.
fn finish(
    provider: &CryptoProvider,
    origin: &str,
    out: &mut Vec<LoadedKey>,
    key: &mut Option<PrivateKeyDer<'static>>,
    certs: &mut Vec<CertificateDer<'static>>,
    index: usize,
) -> Result<(), String> {
    if let Some(k) = key.take() {
        if certs.is_empty() {
            return Err(format!("No certs for key at index {index} in {origin}"));
        }
        let loaded = certified(provider, std::mem::take(certs), k).map_err(|_| {
            format!("key at index {index} in {origin} does not match next certificate")
        })?;
        out.push(loaded);
    }
    Ok(())
}

/// Loads chain files named in a list (`smtpd_tls_chain_files`, or an SNI
/// table value that names files).
pub fn load_chain_files(
    provider: &CryptoProvider,
    files: &[String],
) -> Result<Vec<LoadedKey>, String> {
    let mut out = Vec::new();
    for f in files {
        let pem = std::fs::read(f).map_err(|e| format!("error opening chain file: {f}: {e}"))?;
        out.extend(load_chains(provider, &pem, f)?);
    }
    Ok(out)
}

fn certified(
    provider: &CryptoProvider,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<LoadedKey, rustls::Error> {
    let desc = describe(&key);
    let checked = CertifiedKey::from_der(certs, key, provider)?;
    let ck = CertifiedKey::new(checked.cert, Arc::new(ClientOrder(checked.key)));
    let desc = desc.unwrap_or_else(|| KeyDesc {
        name: match ck.key.algorithm() {
            rustls::SignatureAlgorithm::ECDSA => "ECDSA",
            rustls::SignatureAlgorithm::ED25519 => "ED25519",
            rustls::SignatureAlgorithm::RSA => "RSA-PSS",
            _ => "unknown",
        },
        detail: ck.key.public_key().and_then(|spki| curve_of(spki.as_ref())),
    });
    Ok(LoadedKey {
        key: Arc::new(ck),
        desc,
    })
}

/// Signs with the first scheme of the client's list the key supports, as
/// OpenSSL does (rustls's own keys prefer their strongest digest, e.g.
/// RSA-PSS with SHA-512, where Postfix would use the client's SHA-256).
#[derive(Debug)]
struct ClientOrder(Arc<dyn SigningKey>);

impl SigningKey for ClientOrder {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .iter()
            .find_map(|s| self.0.choose_scheme(std::slice::from_ref(s)))
    }

    fn public_key(&self) -> Option<rustls::pki_types::SubjectPublicKeyInfoDer<'_>> {
        self.0.public_key()
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        self.0.algorithm()
    }
}

/// RSA keys: modulus size, read through ring (no DER parsing of our own).
fn describe(key: &PrivateKeyDer<'_>) -> Option<KeyDesc> {
    let pair = match key {
        PrivateKeyDer::Pkcs1(k) => ring::rsa::KeyPair::from_der(k.secret_pkcs1_der()).ok()?,
        PrivateKeyDer::Pkcs8(k) => ring::rsa::KeyPair::from_pkcs8(k.secret_pkcs8_der()).ok()?,
        _ => return None,
    };
    use ring::signature::KeyPair;
    let bits = pair.public_key().modulus_len() * 8;
    Some(KeyDesc {
        name: "RSA-PSS",
        detail: Some(format!("{bits} bits")),
    })
}

/// The named curve of an EC public key, found by its OID in the SPKI.
fn curve_of(spki: &[u8]) -> Option<String> {
    const CURVES: [(&[u8], &str); 3] = [
        (
            &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            "prime256v1",
        ),
        (&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22], "secp384r1"),
        (&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23], "secp521r1"),
    ];
    CURVES
        .iter()
        .find(|(oid, _)| spki.windows(oid.len()).any(|w| w == *oid))
        .map(|(_, n)| (*n).to_string())
}

/// Decodes an SNI table value: base64 of PEM text (`postmap -F`, or tables
/// managed outside Postfix), else a list of chain file names.
pub fn sni_value(
    provider: &CryptoProvider,
    value: &str,
    key: &str,
) -> Result<Vec<LoadedKey>, String> {
    use base64::Engine;
    let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if let Ok(pem) = base64::engine::general_purpose::STANDARD.decode(compact.as_bytes())
        && pem.windows(11).any(|w| w == b"-----BEGIN ")
    {
        return load_chains(provider, &pem, &format!("SNI table entry for {key}"));
    }
    let files: Vec<String> = value
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    if files.is_empty() {
        return Err(format!("empty SNI table entry for {key}"));
    }
    load_chain_files(provider, &files)
}
