//! TLS session resumption bounded by `smtpd_tls_session_cache_timeout`.
//!
//! TLS 1.3 (and TLS 1.2 clients that ask) get stateless session tickets
//! from rustls's rotating ticketer; TLS 1.2 session IDs go to an in-memory
//! cache. rustls enforces no lifetime on the server side, so both carry the
//! creation time and are refused once older than the timeout. Both live in
//! one smtpd process (Postfix shares them through tlsmgr): a client that
//! reconnects to another process, or after `postern reload`, does a full
//! handshake.
//!
//! # Security
//! Ticket keys never leave the process and rotate (rustls's `Ticketer`).
//! Decrypted tickets are authenticated before the timestamp is read.
//!
//! # Configuration
//! `smtpd_tls_session_cache_timeout` (0 disables resumption).

use rustls::ServerConfig;
use rustls::server::{
    ClientHello, NoServerSessionStorage, ProducesTickets, ResolvesServerCert, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Sessions kept per process for TLS 1.2 session-ID resumption.
const CACHE_SIZE: usize = 4096;

/// Placeholder resolver of the template configuration (never used to serve).
#[derive(Debug)]
pub struct NoKey;

impl ResolvesServerCert for NoKey {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        None
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn stamp(plain: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(plain.len() + 8);
    v.extend_from_slice(&now().to_be_bytes());
    v.extend_from_slice(plain);
    v
}

fn unstamp(v: Vec<u8>, timeout: u64) -> Option<Vec<u8>> {
    let head: [u8; 8] = v.get(..8)?.try_into().ok()?;
    let made = u64::from_be_bytes(head);
    let t = now();
    if made > t.saturating_add(60) || t.saturating_sub(made) > timeout {
        return None;
    }
    Some(v[8..].to_vec())
}

/// Tickets that expire after the timeout.
#[derive(Debug)]
struct TimedTickets {
    inner: Arc<dyn ProducesTickets>,
    timeout: u64,
}

impl ProducesTickets for TimedTickets {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        u32::try_from(self.timeout)
            .unwrap_or(u32::MAX)
            .min(self.inner.lifetime())
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&stamp(plain))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        unstamp(self.inner.decrypt(cipher)?, self.timeout)
    }
}

/// The TLS 1.2 session cache with the same expiry.
#[derive(Debug)]
struct TimedStore {
    inner: Arc<dyn StoresServerSessions>,
    timeout: u64,
}

impl StoresServerSessions for TimedStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, stamp(&value))
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        unstamp(self.inner.get(key)?, self.timeout)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        unstamp(self.inner.take(key)?, self.timeout)
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

/// Sets up resumption on the template configuration (`timeout` in seconds).
pub fn configure(config: &mut ServerConfig, timeout: u64) {
    if timeout == 0 {
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        return;
    }
    config.session_storage = Arc::new(TimedStore {
        inner: rustls::server::ServerSessionMemoryCache::new(CACHE_SIZE),
        timeout,
    });
    match rustls::crypto::ring::Ticketer::new() {
        Ok(t) => {
            config.ticketer = Arc::new(TimedTickets { inner: t, timeout });
            config.send_tls13_tickets = 1;
        }
        Err(e) => postern_log::warning(format!("TLS session tickets disabled: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_expire() {
        let v = stamp(b"abc");
        assert_eq!(unstamp(v.clone(), 10).as_deref(), Some(&b"abc"[..]));
        let mut old = v.clone();
        old[..8].copy_from_slice(&(now() - 100).to_be_bytes());
        assert!(unstamp(old, 10).is_none());
        assert!(unstamp(vec![1, 2], 10).is_none());
    }
}
