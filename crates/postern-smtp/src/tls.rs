//! STARTTLS for the SMTP client (rustls with the `ring` provider): the
//! stream type and the handshake. Which certificate is acceptable is
//! decided by [`crate::verify::Verifier`] and the session (per
//! [`crate::tlsconf`]); the handshake itself always checks the peer's
//! signatures with the key of the certificate it presents.
//!
//! Security: data the peer sent before the handshake is discarded by the
//! session; a failed handshake leaves the stream [`Stream::Broken`].
//!
//! Parameters: none directly (see `tlsconf`).

pub use crate::policy::Level;
use crate::session::Conn;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

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

/// OpenSSL's name of a key-exchange group (`X25519`, `prime256v1`…).
fn kx_name(g: rustls::NamedGroup) -> String {
    match g {
        rustls::NamedGroup::X25519 => "X25519".into(),
        rustls::NamedGroup::secp256r1 => "prime256v1".into(),
        rustls::NamedGroup::secp384r1 => "secp384r1".into(),
        rustls::NamedGroup::secp521r1 => "secp521r1".into(),
        other => format!("{other:?}"),
    }
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
        let kx = conn
            .negotiated_key_exchange_group()
            .map(|g| format!(" key-exchange {}", kx_name(g.name())))
            .unwrap_or_default();
        *self = Stream::Tls(Box::new(StreamOwned::new(conn, sock)));
        Ok(format!("{trust}|{version} with cipher {cipher}{kx}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(kx_name(rustls::NamedGroup::X25519), "X25519");
    }
}
