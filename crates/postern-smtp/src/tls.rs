//! STARTTLS for the SMTP client: [`postern_tls::client::Stream`] as the
//! session's [`Conn`]. Which certificate is acceptable is decided by
//! [`crate::verify::Verifier`] and the session (per [`crate::tlsconf`]).
//!
//! Security: see `postern_tls::client` (a failed handshake leaves the
//! stream broken; the session discards pre-handshake data).
//!
//! Parameters: none directly (see `tlsconf`).

pub use crate::policy::Level;
use crate::session::Conn;
pub use postern_tls::client::Stream;
use rustls::ClientConfig;
use std::io;
use std::sync::Arc;
use std::time::Duration;

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
        Stream::starttls(self, cfg, server, timeout)
    }
}
