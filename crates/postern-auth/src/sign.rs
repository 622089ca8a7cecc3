//! DKIM signing (RFC 6376, RFC 8463): one `DKIM-Signature:` header per [`Signer`]
//! (e.g. one RSA and one Ed25519), relaxed/relaxed canonicalisation unless chosen
//! otherwise, From oversigned, and the default header list OpenDKIM signs.
//!
//! # Security
//!
//! Messages over [`crate::MAX_MESSAGE`] or with a header section over
//! [`crate::MAX_HEADER_SECTION`] are refused ([`AuthError::TooLarge`]); no panics on input.
//!
//! # Configuration
//!
//! None here: cleanup builds [`Signer`]s from `dkim_signing_table`, `dkim_key_table`,
//! `dkim_signed_headers`, `dkim_oversign_headers` and `dkim_canonicalization`
//! (postern-cleanup's `dkim` module); `postern auth sign` from its options.

use mail_auth::common::crypto::DkimKey;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};

use crate::keys::{Key, KeyType};
use crate::{AuthError, check_size, has_header, to_crlf};

/// Headers signed by default (OpenDKIM's list); `From` is listed twice so that one more
/// From header added later breaks the signature (oversigning).
pub const DEFAULT_HEADERS: &[&str] = &[
    "From",
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Resent-Date",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-ID",
    "Content-Description",
];

/// One signature to make: a key with its `d=`, `s=`, `h=` and `c=`.
pub struct Signer {
    inner: DkimSigner<DkimKey, Done>,
    /// The key's algorithm.
    pub kind: KeyType,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("d", &self.inner.template.d)
            .field("s", &self.inner.template.s)
            .field("kind", &self.kind)
            .finish()
    }
}

/// A canonicalisation algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canon {
    /// `simple`.
    Simple,
    /// `relaxed`.
    Relaxed,
}

impl Canon {
    /// Parses `c=` syntax: `relaxed`, `simple/relaxed`… (a missing body part is simple).
    pub fn parse_pair(s: &str) -> Option<(Canon, Canon)> {
        let one = |t: &str| match t {
            "simple" => Some(Canon::Simple),
            "relaxed" => Some(Canon::Relaxed),
            _ => None,
        };
        match s.split_once('/') {
            Some((h, b)) => Some((one(h)?, one(b)?)),
            None => Some((one(s)?, Canon::Simple)),
        }
    }

    fn lib(self) -> Canonicalization {
        match self {
            Canon::Simple => Canonicalization::Simple,
            Canon::Relaxed => Canonicalization::Relaxed,
        }
    }
}

impl Signer {
    /// The signing domain and selector (`d=`, `s=`), for logs.
    pub fn domain_selector(&self) -> (&str, &str) {
        (&self.inner.template.d, &self.inner.template.s)
    }

    /// A signer with the default headers and relaxed/relaxed.
    pub fn new(domain: &str, selector: &str, key: Key) -> Signer {
        Signer::with(domain, selector, key, &[], (Canon::Relaxed, Canon::Relaxed))
    }

    /// A signer of the header names `headers` ([`DEFAULT_HEADERS`] when empty) with
    /// header/body canonicalisation `canon`.
    pub fn with(
        domain: &str,
        selector: &str,
        key: Key,
        headers: &[String],
        canon: (Canon, Canon),
    ) -> Signer {
        let names: Vec<String> = if headers.is_empty() {
            DEFAULT_HEADERS.iter().map(|h| h.to_string()).collect()
        } else {
            headers.to_vec()
        };
        Signer {
            kind: key.kind,
            inner: DkimSigner::from_key(key.key)
                .domain(domain)
                .selector(selector)
                .headers(names)
                .header_canonicalization(canon.0.lib())
                .body_canonicalization(canon.1.lib()),
        }
    }
}

/// Signs `message` (LF or CRLF line ends) with every signer (owned or borrowed, e.g.
/// cleanup's cached signers); returns the `DKIM-Signature:` headers (CRLF, folded) to put
/// before the message, first signer first.
pub fn sign<S: std::borrow::Borrow<Signer>>(
    message: &[u8],
    signers: &[S],
) -> Result<String, AuthError> {
    check_size(message)?;
    // RFC 6376 §5.4: From must be signed; as OpenDKIM, no From header, no signature.
    if !has_header(message, "from") {
        return Err(AuthError::Sign("message has no From header".into()));
    }
    let crlf = to_crlf(message);
    let mut out = String::new();
    for s in signers {
        let sig = s
            .borrow()
            .inner
            .sign(&crlf)
            .map_err(|e| AuthError::Sign(e.to_string()))?;
        out.push_str(&sig.to_header());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::keygen;

    const MSG: &[u8] = b"From: a@example.com\nTo: b@example.net\nSubject: hi\n\nbody\n";

    #[test]
    fn two_signatures() {
        let ed = keygen(KeyType::Ed25519, 0).unwrap();
        let rsa = keygen(KeyType::Rsa, 1024).unwrap();
        let signers = [
            Signer::new(
                "example.com",
                "rsa",
                Key::from_pem(rsa.private_pem.as_bytes()).unwrap(),
            ),
            Signer::new(
                "example.com",
                "ed",
                Key::from_pem(ed.private_pem.as_bytes()).unwrap(),
            ),
        ];
        let h = sign(MSG, &signers).unwrap();
        assert_eq!(h.matches("DKIM-Signature: v=1; a=").count(), 2, "{h}");
        assert!(
            h.contains("a=rsa-sha256") && h.contains("a=ed25519-sha256"),
            "{h}"
        );
        assert!(h.contains("s=rsa;") && h.contains("d=example.com"), "{h}");
        assert!(h.to_ascii_lowercase().contains("from:from"), "{h}");
    }

    #[test]
    fn headerless_and_huge_refused() {
        let ed = keygen(KeyType::Ed25519, 0).unwrap();
        let s = [Signer::new(
            "example.com",
            "ed",
            Key::from_pem(ed.private_pem.as_bytes()).unwrap(),
        )];
        assert!(sign(b"\nbody only\n", &s).is_err());
        let big = vec![b'a'; crate::MAX_MESSAGE + 1];
        assert!(matches!(sign(&big, &s), Err(AuthError::TooLarge(_))));
    }

    #[test]
    fn canon_syntax() {
        assert_eq!(
            Canon::parse_pair("relaxed"),
            Some((Canon::Relaxed, Canon::Simple))
        );
        assert_eq!(
            Canon::parse_pair("simple/relaxed"),
            Some((Canon::Simple, Canon::Relaxed))
        );
        assert_eq!(Canon::parse_pair("loose"), None);
    }
}
