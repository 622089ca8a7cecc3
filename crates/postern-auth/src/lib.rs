//! postern-auth — email authentication built in (issue 15): DKIM signing and verification
//! (RFC 6376, RFC 8463), ARC verification (RFC 8617), SPF (RFC 7208) and DMARC
//! (RFC 7489), on the `mail-auth` crate (pinned 0.13.3, pure-Rust crypto), with results
//! written as one RFC 8601 `Authentication-Results:` header. Layer 1.
//!
//! * [`arc`]: ARC sealing of forwarded mail (RFC 8617).
//! * [`fuzz`]: the fuzz bodies of our parsers (`fuzz/fuzz_targets/`).
//! * [`keys`]: PEM key loading (RSA PKCS#1/PKCS#8, Ed25519) and key generation with the
//!   DNS TXT record.
//! * [`keytable`]: the `dkim_key_table` entries (`domain:selector:/path`).
//! * [`sign`]: `DKIM-Signature:` headers for a message, one per [`sign::Signer`].
//! * [`verify`]: DKIM, ARC, SPF and DMARC through our resolver (`dns_servers`).
//! * [`spf`]: RFC 7208's record syntax and void-lookup limit, which mail-auth lacks.
//! * [`report`]: DMARC aggregate and TLS-RPT reports (record store, daily reports).
//! * [`cmd`]: the `postern dkim` and `postern auth` commands.
//!
//! Postfix has none of this built in (it calls OpenDKIM, OpenDMARC and policyd-spf
//! through milters and the policy protocol); replies and results follow those tools and
//! the RFCs.
//!
//! # Security
//!
//! Input is bounded before any parsing: a message over [`MAX_MESSAGE`] bytes or with a
//! header section over [`MAX_HEADER_SECTION`] bytes is refused (signing) or gets
//! `permerror` (verification). DNS failure is `temperror`, never a failure verdict.
//! Private keys are read from files only the caller names.
//!
//! # Configuration
//!
//! `dns_servers` (through [`postern_dns::Resolver`]), `myhostname` (the default
//! authserv-id). The signing/key tables and restriction words of issue 15 come later.

pub mod arc;
pub mod cmd;
pub mod fuzz;
pub mod keys;
pub mod keytable;
pub mod report;
pub mod sign;
pub mod spf;
pub mod verify;

pub use keys::{Key, KeyPair, KeyType, keygen};
pub use sign::{Signer, sign};
pub use verify::{AuthResults, Context, SpfReport, Verifier};

/// Largest message signed or verified (bytes).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Largest header section signed or verified (bytes).
pub const MAX_HEADER_SECTION: usize = 1024 * 1024;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A key could not be read, parsed or made.
    #[error("{0}")]
    Key(String),
    /// Signing failed (e.g. no header to sign).
    #[error("cannot sign: {0}")]
    Sign(String),
    /// The message is over a limit.
    #[error("{0}")]
    TooLarge(String),
    /// ARC: the chain that arrived is not to be sealed (failed, broken, too long, or not
    /// verifiable now); the message goes on unsealed.
    #[error("{0}")]
    NotSealed(String),
}

/// Refuses a message over [`MAX_MESSAGE`] or with a header section over
/// [`MAX_HEADER_SECTION`].
pub fn check_size(message: &[u8]) -> Result<(), AuthError> {
    if message.len() > MAX_MESSAGE {
        return Err(AuthError::TooLarge(format!(
            "message larger than {MAX_MESSAGE} bytes"
        )));
    }
    if header_len(message) > MAX_HEADER_SECTION {
        return Err(AuthError::TooLarge(format!(
            "header section larger than {MAX_HEADER_SECTION} bytes"
        )));
    }
    Ok(())
}

/// Length of the header section (up to the empty line, or the whole message).
fn header_len(message: &[u8]) -> usize {
    let mut at_line_start = true;
    for (i, &b) in message.iter().enumerate() {
        if at_line_start && (b == b'\n' || (b == b'\r' && message.get(i + 1) == Some(&b'\n'))) {
            return i;
        }
        at_line_start = b == b'\n';
    }
    message.len()
}

/// True when the header section has a header `name` (ASCII case-insensitive).
pub fn has_header(message: &[u8], name: &str) -> bool {
    message[..header_len(message)]
        .split(|&b| b == b'\n')
        .filter(|line| !line.starts_with(b" ") && !line.starts_with(b"\t"))
        .filter_map(|line| line.split(|&b| b == b':').next())
        .any(|n| n.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
}

/// The message with every bare LF made CRLF (DKIM canonicalises CRLF lines).
pub fn to_crlf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32);
    let mut prev = 0u8;
    for &b in message {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf() {
        assert_eq!(to_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert_eq!(to_crlf(b""), b"");
    }

    #[test]
    fn header_section_bound() {
        assert_eq!(header_len(b"A: b\n\nbody"), 5);
        assert_eq!(header_len(b"A: b\r\n\r\nbody"), 6);
        assert_eq!(header_len(b"A: b\n"), 5);
        let mut big = b"X: ".to_vec();
        big.extend(vec![b'a'; MAX_HEADER_SECTION]);
        big.extend_from_slice(b"\n\nbody\n");
        assert!(matches!(check_size(&big), Err(AuthError::TooLarge(_))));
        assert!(check_size(b"A: b\n\nbody\n").is_ok());
        assert!(has_header(b"To: x\nFROM : y\n\nFrom: z\n", "from"));
        assert!(!has_header(b"To: x\n\nFrom: z\n", "from"));
        assert!(!has_header(b"To: x\n from: y\n\n", "from"));
    }
}
