//! STARTTLS for the SMTP client (rustls with the `ring` provider).
//!
//! Levels `may` and `encrypt` do not verify the server certificate, as
//! Postfix does not: [`AcceptAny`] accepts every certificate chain but still
//! checks the handshake signatures, so the peer must hold the key of the
//! certificate it presents. Verified levels (`verify`, `secure`, `dane`)
//! are a later issue.

use crate::session::Conn;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// `smtp_tls_security_level`, the levels this client implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// No TLS.
    None,
    /// Opportunistic: STARTTLS when offered, plaintext otherwise.
    May,
    /// Mandatory encryption without certificate checks.
    Encrypt,
}

impl Level {
    /// Parses the parameter value. Unknown or verified levels fall back to
    /// `encrypt` (never weaker than what was asked for); `None` is returned
    /// for those so the caller can warn.
    pub fn parse(v: &str) -> Option<Level> {
        match v.trim().to_ascii_lowercase().as_str() {
            "none" => Some(Level::None),
            "may" => Some(Level::May),
            "encrypt" => Some(Level::Encrypt),
            _ => None,
        }
    }
}

/// Accepts any certificate, verifies handshake signatures.
#[derive(Debug)]
pub struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client configuration for unverified levels.
pub fn unverified_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// A TCP connection, plaintext or after STARTTLS.
#[derive(Debug)]
pub enum Stream {
    /// Plaintext.
    Plain(TcpStream),
    /// After a completed handshake.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// A failed handshake left nothing usable.
    Broken,
}

impl Stream {
    fn sock(&self) -> io::Result<&TcpStream> {
        match self {
            Stream::Plain(s) => Ok(s),
            Stream::Tls(t) => Ok(&t.sock),
            Stream::Broken => Err(io::Error::new(io::ErrorKind::NotConnected, "broken")),
        }
    }

    /// Whether STARTTLS succeeded on this stream.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
            Stream::Broken => Err(io::Error::new(io::ErrorKind::NotConnected, "broken")),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
            Stream::Broken => Err(io::Error::new(io::ErrorKind::NotConnected, "broken")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
            Stream::Broken => Ok(()),
        }
    }
}

/// OpenSSL's name and bits for a rustls suite, as Postfix logs them.
pub fn cipher_text(suite: rustls::SupportedCipherSuite) -> String {
    let name = format!("{:?}", suite.suite());
    let bits = if name.contains("AES_128") { 128 } else { 256 };
    let ossl = if let Some(rest) = name.strip_prefix("TLS13_") {
        format!("TLS_{rest}")
    } else if let Some(rest) = name.strip_prefix("TLS_") {
        // TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 → ECDHE-RSA-AES256-GCM-SHA384
        let (kx, enc) = rest.split_once("_WITH_").unwrap_or((rest, ""));
        let enc = enc
            .replace("AES_128", "AES128")
            .replace("AES_256", "AES256")
            .replace("CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305");
        format!("{kx}-{enc}").replace('_', "-")
    } else {
        name
    };
    format!("{ossl} ({bits}/{bits} bits)")
}

impl Conn for Stream {
    fn read_timeout(&self, d: Duration) -> io::Result<()> {
        self.sock()?.set_read_timeout(Some(d))
    }
    fn write_timeout(&self, d: Duration) -> io::Result<()> {
        self.sock()?.set_write_timeout(Some(d))
    }
    fn starttls(
        &mut self,
        cfg: &Arc<ClientConfig>,
        server: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        let sock = match std::mem::replace(self, Stream::Broken) {
            Stream::Plain(s) => s,
            other => {
                *self = other;
                return Err("TLS already active".into());
            }
        };
        let name = ServerName::try_from(server.to_string())
            .or_else(|_| ServerName::try_from("localhost".to_string()))
            .map_err(|e| e.to_string())?;
        let mut conn = ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())?;
        let _r = sock.set_read_timeout(Some(timeout));
        let _w = sock.set_write_timeout(Some(timeout));
        let mut sock = sock;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                return Err(match e.kind() {
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".to_string(),
                    io::ErrorKind::UnexpectedEof => "lost connection".to_string(),
                    _ => e.to_string(),
                });
            }
        }
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .map(cipher_text)
            .unwrap_or_default();
        let trust = if conn.peer_certificates().is_some_and(|c| !c.is_empty()) {
            "Untrusted"
        } else {
            "Anonymous"
        };
        *self = Stream::Tls(Box::new(StreamOwned::new(conn, sock)));
        Ok(format!("{trust}|{version} with cipher {cipher}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(Level::parse("may"), Some(Level::May));
        assert_eq!(Level::parse(" Encrypt"), Some(Level::Encrypt));
        assert_eq!(Level::parse("none"), Some(Level::None));
        assert_eq!(Level::parse("dane"), None);
    }

    #[test]
    fn cipher_names() {
        let p = rustls::crypto::ring::default_provider();
        let names: Vec<String> = p.cipher_suites.iter().map(|s| cipher_text(*s)).collect();
        assert!(
            names.contains(&"TLS_AES_256_GCM_SHA384 (256/256 bits)".to_string()),
            "{names:?}"
        );
        assert!(
            names.contains(&"TLS_AES_128_GCM_SHA256 (128/128 bits)".to_string()),
            "{names:?}"
        );
        assert!(
            names.contains(&"ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)".to_string()),
            "{names:?}"
        );
        assert!(unverified_config().is_ok());
    }
}
