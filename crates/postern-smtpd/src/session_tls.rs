//! The session's TLS commands: STARTTLS, wrapper mode, and the `encrypt`
//! level's refusals, with Postfix 3.7's replies and log lines.
//!
//! After `220 2.0.0 Ready to start TLS` every unread byte the client sent is
//! discarded (plaintext injection, CVE-2011-0411) and the session forgets
//! HELO/EHLO and any transaction (RFC 3207 section 4.2): the client must
//! greet again, and the EHLO reply over TLS no longer lists STARTTLS.
//!
//! # Security
//! A failed handshake ends the session (its state is unknown), logged as
//! `SSL_accept error from host[addr]: …`; it never panics. The handshake is
//! bounded by `smtpd_starttls_timeout`.
//!
//! # Configuration
//! Through [`crate::tls::TlsPolicy`]: `smtpd_tls_security_level` (and the
//! legacy `smtpd_use_tls`/`smtpd_enforce_tls`), `smtpd_tls_wrappermode`,
//! `smtpd_tls_auth_only`, `smtpd_tls_loglevel`, `smtpd_starttls_timeout`,
//! `smtpd_discard_ehlo_keywords` (`starttls`).

use crate::session::{Flow, Session, reply};
use crate::tls::{HandshakeError, TlsInfo};
use postern_smtp_proto::{Command, LineReader};

impl Session<'_> {
    /// TLS is on for this session (after STARTTLS, or in wrapper mode).
    pub fn tls_active(&self) -> bool {
        self.tls.is_some()
    }

    /// What the TLS handshake negotiated, when TLS is on.
    pub fn tls_info(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// `smtpd_tls_auth_only` (implied by level `encrypt`) forbids AUTH now:
    /// the SASL code neither offers nor accepts AUTH while this is true.
    pub fn tls_required_for_auth(&self) -> bool {
        self.s.tls.auth_only && !self.tls_active() && !self.standalone
    }

    /// Whether EHLO lists STARTTLS: TLS enabled with usable keys, not on yet.
    pub(crate) fn offer_starttls(&self) -> bool {
        self.s.tls.use_tls && self.s.tls_server.is_some() && !self.tls_active() && !self.standalone
    }

    /// Level `encrypt`: commands other than HELO, EHLO, XCLIENT, STARTTLS,
    /// NOOP and QUIT get `530 5.7.0 Must issue a STARTTLS command first`
    /// until TLS is on (unknown commands keep their own reply, as in Postfix).
    pub(crate) fn needs_tls_first(&self, cmd: &Command) -> bool {
        self.s.tls.enforce
            && !self.tls_active()
            && !self.standalone
            && !matches!(
                cmd,
                Command::Helo(_)
                    | Command::Ehlo(_)
                    | Command::Lhlo(_)
                    | Command::Xclient(_)
                    | Command::StartTls
                    | Command::Noop
                    | Command::Quit
                    | Command::Expn(_)
                    | Command::Help(_)
                    | Command::Unknown(_)
            )
    }

    /// The 530 refusal.
    pub(crate) async fn tls_first(&mut self) -> Flow {
        self.error(reply(530, (5, 7, 0), "Must issue a STARTTLS command first"))
            .await
    }

    /// STARTTLS.
    pub(crate) async fn starttls(&mut self) -> Flow {
        self.set_last("STARTTLS");
        if self.tls_active() {
            self.counters.count("starttls", false);
            return self
                .error(reply(554, (5, 5, 1), "Error: TLS already active"))
                .await;
        }
        if !self.s.tls.use_tls
            || self.standalone
            || self.s.discard_ehlo.iter().any(|k| k == "starttls")
        {
            self.counters.count("starttls", false);
            return self
                .error(reply(502, (5, 5, 1), "Error: command not implemented"))
                .await;
        }
        let Some(server) = self.s.tls_server.clone() else {
            self.counters.count("starttls", false);
            return self
                .error(reply(
                    454,
                    (4, 7, 0),
                    "TLS not available due to local problem",
                ))
                .await;
        };
        self.conn
            .reply(&reply(220, (2, 0, 0), "Ready to start TLS"));
        if let Err(e) = self.conn.flush().await {
            self.counters.count("starttls", false);
            postern_log::info(format!(
                "lost connection ({e}) after STARTTLS from {}",
                self.client
            ));
            return Flow::Close;
        }
        // RFC 3207 4.2: forget everything learned from the client so far.
        self.txn = None;
        self.esmtp = false;
        self.facts.helo = None;
        self.facts.protocol = "SMTP".into();
        // ... including a SASL login made in plaintext before STARTTLS.
        self.facts.sasl_username = None;
        self.facts.sasl_method = None;
        self.lines = LineReader::new(self.s.line_length_limit);
        let limit = self.s.tls.starttls_timeout;
        match self.conn.start_tls(&server, limit, &self.client).await {
            Ok(info) => {
                self.counters.count("starttls", true);
                self.tls_established(info);
                Flow::Continue
            }
            Err(e) => {
                self.counters.count("starttls", false);
                self.handshake_failed(&e, "STARTTLS");
                Flow::Close
            }
        }
    }

    /// Wrapper mode: the handshake before the greeting. False ends the
    /// session.
    pub(crate) async fn wrapper_tls(&mut self) -> bool {
        if !self.s.tls.wrappermode || self.standalone {
            return true;
        }
        let Some(server) = self.s.tls_server.clone() else {
            postern_log::warning(format!(
                "Wrapper-mode request dropped from {} for service {}. TLS context initialization failed. For details see earlier warnings in your logs.",
                self.client, self.s.tls.service
            ));
            return false;
        };
        let limit = self.s.tls.starttls_timeout;
        match self.conn.start_tls(&server, limit, &self.client).await {
            Ok(info) => {
                self.tls_established(info);
                true
            }
            Err(e) => {
                self.handshake_failed(&e, "CONNECT");
                false
            }
        }
    }

    fn tls_established(&mut self, info: TlsInfo) {
        if self.s.tls.loglevel >= 1 {
            postern_log::info(info.summary(&self.client));
        }
        self.tls = Some(info);
    }

    fn handshake_failed(&self, e: &HandshakeError, after: &str) {
        let client = &self.client;
        match e {
            HandshakeError::Tls(why) => {
                postern_log::info(format!("SSL_accept error from {client}: -1"));
                postern_log::warning(format!("TLS library problem: {why}"));
            }
            HandshakeError::Lost => {
                postern_log::info(format!("SSL_accept error from {client}: lost connection"));
            }
            HandshakeError::Timeout => {
                postern_log::info(format!(
                    "SSL_accept error from {client}: Connection timed out"
                ));
            }
            HandshakeError::Io(err) => {
                postern_log::info(format!("SSL_accept error from {client}: {err}"));
            }
        }
        postern_log::info(format!("lost connection after {after} from {client}"));
    }
}
