//! ARC sealing (RFC 8617) of mail this server forwards: one new ARC set
//! (`ARC-Seal:`, `ARC-Message-Signature:`, `ARC-Authentication-Results:`) put before the
//! message, with instance `i=` one more than the chain's last, `cv=` the result of
//! verifying the chain as it arrived (`none` for the first set), and an AAR carrying
//! this server's DKIM and ARC results (and SPF/DMARC when the client IP is known).
//!
//! A chain that arrived failed, broken (sets missing or unparsable), with
//! [`MAX_INSTANCE`] sets, or not verifiable now (a DNS failure: `temperror`) is not sealed:
//! [`Sealer::seal`] answers [`AuthError::NotSealed`] and the caller passes the message on
//! as it is. Sealing it would only add `cv=fail`, which ends the chain for every later
//! hop (RFC 8617 §5.1.2); a DNS failure must not do that. Verification goes through our
//! resolver (`dns_servers`).
//!
//! # Security
//!
//! Messages over [`crate::MAX_MESSAGE`] or with a header section over
//! [`crate::MAX_HEADER_SECTION`] are refused; at most [`crate::verify::MAX_SIGNATURES`]
//! DKIM signatures and ARC sets are checked. Nothing here panics on input.
//!
//! # Configuration
//!
//! None here: the caller (cleanup, `arc_sealing`, `arc_seal_key`) gives the key, the
//! domain and selector (from `dkim_key_table`) and the authserv-id.

use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::DkimKey;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, Done};
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, MessageAuthenticator, Parameters,
};
use std::net::{IpAddr, Ipv4Addr};

use crate::keys::Key;
use crate::sign::DEFAULT_HEADERS;
use crate::verify::{Context, MAX_SIGNATURES};
use crate::{AuthError, check_size, to_crlf};

/// Highest ARC instance (RFC 8617 §4.2.1): a chain this long is not sealed again.
pub const MAX_INSTANCE: u32 = 50;

/// One sealing key: `d=`, `s=` and the key (RSA or Ed25519).
pub struct SealKey {
    inner: ArcSealer<DkimKey, Done>,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey").finish_non_exhaustive()
    }
}

impl SealKey {
    /// A sealing key for `domain`/`selector`; the AMS signs OpenDKIM's header list and
    /// any `DKIM-Signature:`, relaxed/relaxed.
    pub fn new(domain: &str, selector: &str, key: Key) -> SealKey {
        let mut names: Vec<String> = Vec::new();
        for h in DEFAULT_HEADERS.iter().chain(["DKIM-Signature"].iter()) {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(h)) {
                names.push(h.to_string());
            }
        }
        SealKey {
            inner: ArcSealer::from_key(key.key)
                .domain(domain)
                .selector(selector)
                .headers(names)
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed),
        }
    }
}

/// Verifies the chain and seals, through one resolver.
pub struct Sealer {
    auth: MessageAuthenticator,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer asking `resolver`'s servers. Call inside the tokio runtime.
    pub fn new(resolver: &postern_dns::Resolver) -> Sealer {
        Sealer {
            auth: MessageAuthenticator(resolver.hickory().clone()),
        }
    }

    /// A sealer asking the servers of `dns_servers` (else resolv.conf). Call inside the
    /// tokio runtime.
    pub fn from_config(cfg: &postern_config::Config) -> Result<Sealer, AuthError> {
        let r = postern_dns::Resolver::from_config(cfg)
            .map_err(|e| AuthError::Key(format!("dns_servers: {e}")))?;
        Ok(Sealer::new(&r))
    }

    /// The new ARC set for `message` (LF or CRLF line ends), CRLF-terminated headers to
    /// put first: `ARC-Seal`, `ARC-Message-Signature`, `ARC-Authentication-Results`.
    /// `ctx.ip`, when known, adds SPF and DMARC to the AAR and is its
    /// `smtp.remote-ip` (else 127.0.0.1: the message came from this host's own
    /// delivery agent). Refused (not sealed) when the chain failed or cannot be checked.
    pub async fn seal(
        &self,
        key: &SealKey,
        message: &[u8],
        ctx: &Context,
    ) -> Result<String, AuthError> {
        check_size(message)?;
        let crlf = to_crlf(message);
        let Some(mut msg) = AuthenticatedMessage::parse(&crlf) else {
            return Err(AuthError::Sign("unparsable message".into()));
        };
        let sets = [
            msg.as_headers.len(),
            msg.ams_headers.len(),
            msg.aar_headers.len(),
        ];
        if sets[1] == 0 && sets != [0, 0, 0] {
            // mail-auth calls a chain without signatures "none": it is broken.
            return Err(AuthError::NotSealed("ARC chain broken".into()));
        }
        if sets.iter().any(|&n| n >= MAX_INSTANCE as usize) {
            return Err(AuthError::NotSealed(format!(
                "ARC chain has {MAX_INSTANCE} sets already"
            )));
        }
        msg.dkim_headers.truncate(MAX_SIGNATURES);
        let msg = msg;
        let dkim = self.auth.verify_dkim(&msg).await;
        let arc = self.auth.verify_arc(&msg).await;
        match arc.result() {
            DkimResult::None | DkimResult::Pass => {}
            DkimResult::TempError(e) => {
                return Err(AuthError::NotSealed(format!(
                    "ARC chain not verifiable now: {e}"
                )));
            }
            r => {
                return Err(AuthError::NotSealed(format!(
                    "ARC chain failed ({})",
                    crate::verify::dkim_word(r)
                )));
            }
        }
        let header_from = msg.from.first().cloned().unwrap_or_default();
        let ip = ctx.ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mut ar =
            AuthenticationResults::new(&ctx.authserv_id).with_dkim_results(&dkim, &header_from);
        if let Some(ip) = ctx.ip {
            let host = ctx.authserv_id.as_str();
            let (params, from_domain) = match ctx.sender.rsplit_once('@') {
                Some((_, d)) if !d.is_empty() => (
                    SpfParameters::verify_mail_from(ip, &ctx.helo, host, &ctx.sender),
                    d,
                ),
                _ => (
                    SpfParameters::verify_ehlo(ip, &ctx.helo, host),
                    ctx.helo.as_str(),
                ),
            };
            let spf = self.auth.check_host(Parameters::new(params)).await;
            ar = if from_domain == ctx.helo {
                ar.with_spf_ehlo_result(&spf, ip, &ctx.helo)
            } else {
                ar.with_spf_mailfrom_result(&spf, ip, &ctx.sender, &ctx.helo)
            };
            let dmarc = self
                .auth
                .verify_dmarc(DmarcParameters::new(&msg, &dkim, from_domain, &spf))
                .await;
            ar = ar.with_arc_result(&arc, ip);
            if !dmarc.domain().is_empty() {
                ar = ar.with_dmarc_result(&dmarc);
            }
        } else {
            ar = ar.with_arc_result(&arc, ip);
        }
        let set = key
            .inner
            .seal(&msg, &ar, &arc)
            .map_err(|e| AuthError::Sign(e.to_string()))?;
        Ok(set.to_header())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyType, keygen};

    const MSG: &[u8] = b"From: a@example.com\nTo: list@example.net\nSubject: hi\n\nbody\n";

    fn sealer() -> Sealer {
        // A closed loopback port: every lookup fails fast (no machine resolver).
        let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        let r = postern_dns::Resolver::new(&[addr], Default::default()).unwrap();
        Sealer::new(&r)
    }

    fn key() -> SealKey {
        let ed = keygen(KeyType::Ed25519, 0).unwrap();
        SealKey::new(
            "example.org",
            "arc",
            Key::from_pem(ed.private_pem.as_bytes()).unwrap(),
        )
    }

    #[tokio::test]
    async fn first_set_is_cv_none() {
        let key = key();
        let ctx = Context {
            authserv_id: "mx.example.org".into(),
            ..Context::default()
        };
        let h = sealer().seal(&key, MSG, &ctx).await.unwrap();
        assert!(h.starts_with("ARC-Seal: i=1; a=ed25519-sha256;"), "{h}");
        assert!(h.contains("cv=none"), "{h}");
        assert!(h.contains("ARC-Message-Signature: i=1;"), "{h}");
        assert!(
            h.contains("ARC-Authentication-Results: i=1; mx.example.org;"),
            "{h}"
        );
        assert!(h.contains("d=example.org") && h.contains("s=arc"), "{h}");
        assert!(h.ends_with("\r\n"), "{h}");
    }

    #[tokio::test]
    async fn failed_or_long_chain_not_sealed() {
        let key = key();
        let ctx = Context::default();
        let mut m = b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.example; s=s; b=AAAA\n".to_vec();
        m.extend_from_slice(MSG);
        let r = sealer().seal(&key, &m, &ctx).await;
        assert!(r.is_err(), "{r:?}");
        assert!(sealer().seal(&key, b"\n\n", &ctx).await.is_err());
        let mut m = b"ARC-Message-Signature: i=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=AAAA; b=AAAA\n".to_vec();
        m.extend_from_slice(MSG);
        let r = sealer().seal(&key, &m, &ctx).await;
        assert!(matches!(r, Err(AuthError::NotSealed(_))), "{r:?}");
    }
}
