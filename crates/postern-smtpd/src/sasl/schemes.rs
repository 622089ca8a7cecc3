//! Password schemes of Dovecot passwd-files, for the built-in SASL backend.
//!
//! A stored password is `{SCHEME}data`; without a `{SCHEME}` prefix it is
//! `CRYPT` (Dovecot's default for passwd-file), whose algorithm follows the
//! `$id$` of the modular crypt format. Supported: `ARGON2ID`/`ARGON2I`
//! (`$argon2id$…`), `BLF-CRYPT` (`$2y$…`), `SHA512-CRYPT` (`$6$…`),
//! `SHA256-CRYPT` (`$5$…`), `CRYPT` with one of those, and `PLAIN`/`CLEAR`/
//! `CLEARTEXT`. The hash checks are RustCrypto's `argon2` and `sha-crypt` and
//! the `bcrypt` crate; what `doveadm pw -s SCHEME` prints verifies here.
//!
//! # Security
//! Plaintext comparison runs in constant time with respect to the content.
//! Hash computations are CPU-heavy (Argon2: tens of milliseconds and tens of
//! MiB): callers run them on a blocking thread. Nothing here logs.
//!
//! # Configuration
//! None (the file is `smtpd_sasl_path`, read by `builtin`).

use argon2::password_hash::PasswordVerifier;

/// Why a stored password could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemeError {
    /// `{SCHEME}` names a scheme this build does not know.
    #[error("unsupported password scheme {0}")]
    Unsupported(String),
    /// The hash does not parse for its scheme.
    #[error("malformed {0} password hash")]
    Malformed(&'static str),
}

/// Checks `password` against a stored `{SCHEME}data` value.
///
/// # Errors
/// [`SchemeError`] when the stored value cannot be used (never for a wrong
/// password, which is `Ok(false)`).
pub fn verify(stored: &str, password: &[u8]) -> Result<bool, SchemeError> {
    let (scheme, data) = split_scheme(stored);
    match scheme.to_ascii_uppercase().as_str() {
        "PLAIN" | "CLEAR" | "CLEARTEXT" => Ok(ct_eq(data.as_bytes(), password)),
        "ARGON2ID" | "ARGON2I" => argon2_check(data, password),
        "BLF-CRYPT" => bcrypt_check(data, password),
        "SHA512-CRYPT" | "SHA256-CRYPT" => sha_crypt_check(data, password),
        "CRYPT" => crypt(data, password),
        other => Err(SchemeError::Unsupported(other.to_string())),
    }
}

/// `{SCHEME}data` → (`SCHEME`, `data`); no prefix → (`CRYPT`, whole).
fn split_scheme(stored: &str) -> (&str, &str) {
    if let Some(rest) = stored.strip_prefix('{')
        && let Some(end) = rest.find('}')
    {
        return (&rest[..end], &rest[end + 1..]);
    }
    ("CRYPT", stored)
}

fn crypt(data: &str, password: &[u8]) -> Result<bool, SchemeError> {
    if data.starts_with("$6$") || data.starts_with("$5$") {
        sha_crypt_check(data, password)
    } else if data.starts_with("$2") {
        bcrypt_check(data, password)
    } else if data.starts_with("$argon2") {
        argon2_check(data, password)
    } else {
        Err(SchemeError::Unsupported("CRYPT (DES/MD5)".into()))
    }
}

fn argon2_check(data: &str, password: &[u8]) -> Result<bool, SchemeError> {
    use argon2::password_hash::Error as E;
    match argon2::Argon2::default().verify_password(password, data) {
        Ok(()) => Ok(true),
        Err(E::PasswordInvalid) => Ok(false),
        Err(_) => Err(SchemeError::Malformed("ARGON2")),
    }
}

fn bcrypt_check(data: &str, password: &[u8]) -> Result<bool, SchemeError> {
    bcrypt::verify(password, data).map_err(|_| SchemeError::Malformed("BLF-CRYPT"))
}

fn sha_crypt_check(data: &str, password: &[u8]) -> Result<bool, SchemeError> {
    use sha_crypt::password_hash::Error as E;
    match sha_crypt::ShaCrypt::default().verify_password(password, data) {
        Ok(()) => Ok(true),
        Err(E::PasswordInvalid) => Ok(false),
        Err(_) => Err(SchemeError::Malformed("SHA-CRYPT")),
    }
}

/// Equality whose time depends on the lengths only.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with `doveadm pw -s SCHEME -p secret` (Dovecot 2.3.19).
    const ARGON2ID: &str = "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$kp378oGtlt2gjp1NRkB82g$+71gW5zc2Q7gaVc1sxsyyPEX58xZqR2G2TJIRElqLrc";
    const BLF: &str = "{BLF-CRYPT}$2y$05$yw8T7jSXHqQhyr4EBJPFROtB2okHOsHPpqlxU84qZFqvTXozHnhYC";
    const SHA512: &str = "{SHA512-CRYPT}$6$w6406ylmFY84tA1u$L48SW23wu.iU7K6l1CDoqZjGw5lQ2/.XckAIViVguTIwcc61LUwBhrmd6KlBREAi3J8P/6/S8MGqwmHTrNcQ..";

    #[test]
    fn doveadm_hashes_verify() {
        for h in [ARGON2ID, BLF, SHA512, "{PLAIN}secret", "{plain}secret"] {
            assert_eq!(verify(h, b"secret"), Ok(true), "{h}");
            assert_eq!(verify(h, b"Secret"), Ok(false), "{h}");
            assert_eq!(verify(h, b""), Ok(false), "{h}");
        }
        // No prefix: CRYPT, chosen by the $id$.
        assert_eq!(verify(&SHA512[14..], b"secret"), Ok(true));
        assert_eq!(verify(&BLF[11..], b"secret"), Ok(true));
    }

    #[test]
    fn bad_stored_values() {
        assert!(matches!(
            verify("{MD5-CRYPT}$1$x", b"x"),
            Err(SchemeError::Unsupported(_))
        ));
        assert!(verify("{SHA512-CRYPT}garbage", b"x").is_err());
        assert!(verify("{ARGON2ID}$argon2id$broken", b"x").is_err());
        assert!(verify("{BLF-CRYPT}$2y$", b"x").is_err());
        assert!(verify("abcdefghijklm", b"x").is_err());
        assert_eq!(verify("{PLAIN", b"{PLAIN").ok(), None);
    }
}
