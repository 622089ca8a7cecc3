//! Client TLS (smtp/lmtp): the rustls [`config`] built from the allowed
//! versions and a certificate verifier, and the blocking [`Stream`] that
//! runs STARTTLS and summarises the session for the log line.
//!
//! Which certificate is acceptable is the verifier's business (the caller's
//! policy: levels, DANE, MTA-STS); the handshake itself always checks the
//! peer's signatures with the key of the certificate it presents.
//!
//! # Security
//! Data the peer sent before the handshake is the caller's to discard; a
//! failed handshake leaves the stream [`Stream::Broken`]. The handshake is
//! bounded by the caller's timeout on both directions of the socket.
//!
//! # Configuration
//! None directly: the caller maps `smtp_tls_*` parameters to the versions,
//! the verifier and whether SNI is sent.

use crate::names::{cipher_text, group_name, protocol_name};
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// A rustls client configuration allowing TLS 1.3 and/or 1.2, checking
/// certificates with `verifier`, sending SNI when `sni`.
///
/// # Errors
/// rustls refuses the version set (none allowed, or none the provider has).
pub fn config(
    provider: &Arc<CryptoProvider>,
    tls12: bool,
    tls13: bool,
    verifier: Arc<dyn ServerCertVerifier>,
    sni: bool,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let mut cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.enable_sni = sni;
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

fn broken() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "broken")
}

impl Stream {
    /// The TCP socket (for timeouts).
    ///
    /// # Errors
    /// `NotConnected` on a broken stream.
    pub fn sock(&self) -> io::Result<&TcpStream> {
        match self {
            Stream::Plain(s) => Ok(s),
            Stream::Tls(t) => Ok(&t.sock),
            Stream::Broken => Err(broken()),
        }
    }

    /// Whether STARTTLS succeeded on this stream.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Runs the handshake with `server` (its name for SNI and the verifier;
    /// `localhost` when it is not a valid name) within `timeout` per read or
    /// write. On success: `"Trust|TLSv1.3 with cipher … key-exchange …"`
    /// (`Trust` is `Untrusted` when the peer showed a certificate, else
    /// `Anonymous`; the caller upgrades it after its own check).
    ///
    /// # Errors
    /// `TLS already active`, `timed out`, `lost connection` or rustls's text.
    pub fn starttls(
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
        let version = protocol_name(conn.protocol_version()).unwrap_or("TLS");
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
            .map(|g| format!(" key-exchange {}", group_name(g.name())))
            .unwrap_or_default();
        *self = Stream::Tls(Box::new(StreamOwned::new(conn, sock)));
        Ok(format!("{trust}|{version} with cipher {cipher}{kx}"))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
            Stream::Broken => Err(broken()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
            Stream::Broken => Err(broken()),
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
