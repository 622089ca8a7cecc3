//! SASL authentication for smtpd (Postfix's `smtpd_sasl_glue` and `xsasl`).
//!
//! Two backends: [`dovecot`] (a client of Dovecot's auth protocol, relaying
//! whatever mechanisms Dovecot offers) and [`builtin`] (PLAIN and LOGIN against
//! a Dovecot passwd-file, with the hash [`schemes`]). [`Sasl`] is built once per
//! process; [`Sasl::start`] opens a [`Conversation`] per AUTH command. The SMTP
//! side (the AUTH command, EHLO keywords, `AUTH=` on MAIL, the log fields) is
//! in [`smtp`].
//!
//! Mechanism filtering is Postfix's: `smtpd_sasl_security_options` (or
//! `smtpd_sasl_tls_security_options` over TLS) names properties a mechanism
//! must not have (`noplaintext`, `noanonymous`, `nodictionary`, `noactive`)
//! or must have (`mutual_auth`, `forward_secrecy`); `noplaintext` thus hides
//! PLAIN and LOGIN.
//!
//! Where we differ from Postfix: when the Dovecot server cannot be reached,
//! Postfix's smtpd exits (`fatal: no SASL authentication mechanisms`) and
//! master restarts it; one smtpd process here serves many sessions, so it logs
//! the warning and leaves AUTH out of that EHLO reply instead. The same holds
//! when the security options leave no mechanism.
//!
//! # Security
//! No password and no raw AUTH data is ever logged; the log names the
//! mechanism and the login (as Postfix does). Every step waits at most
//! `smtpd_timeout` for the client and 20 s for Dovecot.
//!
//! # Configuration
//! `smtpd_sasl_auth_enable`, `smtpd_sasl_type` (`dovecot`, `builtin`),
//! `smtpd_sasl_path`, `smtpd_sasl_service`, `smtpd_sasl_security_options`,
//! `smtpd_sasl_tls_security_options`, `smtpd_sasl_local_domain`,
//! `smtpd_sasl_authenticated_header`, `smtpd_sasl_exceptions_networks`,
//! `smtpd_sasl_response_limit`, `broken_sasl_auth_clients`, `queue_directory`
//! (`smtpd_tls_auth_only` comes through the session's TLS policy).

pub mod builtin;
pub mod dovecot;
pub mod mech;
pub mod schemes;
pub mod smtp;

use dovecot::props;
use postern_config::{Config, p};
use postern_table::NetworkList;
use std::sync::Arc;

/// A start-up problem in the SASL settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// `smtpd_sasl_type` names an implementation we do not have.
    #[error("unsupported SASL server implementation: {0}")]
    Unsupported(String),
    /// A word in `smtpd_sasl_*security_options` Postfix does not know.
    #[error("unknown {param} value \"{word}\" in \"{value}\"")]
    BadOption {
        /// The parameter.
        param: String,
        /// The word.
        word: String,
        /// The whole value.
        value: String,
    },
}

/// Properties a mechanism must have (`require`) and must not have (`forbid`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Bits every offered mechanism has.
    pub require: u32,
    /// Bits no offered mechanism has.
    pub forbid: u32,
}

impl Policy {
    /// Parses `noanonymous, noplaintext, …`.
    ///
    /// # Errors
    /// [`SaslError::BadOption`] for an unknown word (Postfix refuses to start).
    pub fn parse(param: &str, value: &str) -> Result<Policy, SaslError> {
        let mut p = Policy::default();
        for word in value.split(|c: char| c == ',' || c.is_ascii_whitespace()) {
            match word.to_ascii_lowercase().as_str() {
                "" => {}
                "noplaintext" => p.forbid |= props::PLAINTEXT,
                "noactive" => p.forbid |= props::ACTIVE,
                "nodictionary" => p.forbid |= props::DICTIONARY,
                "noanonymous" => p.forbid |= props::ANONYMOUS,
                "forward_secrecy" => p.require |= props::FORWARD_SECRECY,
                "mutual_auth" => p.require |= props::MUTUAL_AUTH,
                _ => {
                    return Err(SaslError::BadOption {
                        param: param.to_string(),
                        word: word.to_string(),
                        value: value.to_string(),
                    });
                }
            }
        }
        Ok(p)
    }

    /// Whether a mechanism with these properties may be offered.
    pub fn allows(&self, mech_props: u32) -> bool {
        mech_props & self.require == self.require && mech_props & self.forbid == 0
    }
}

#[derive(Debug)]
enum Backend {
    Dovecot(dovecot::Client),
    Builtin(Arc<builtin::Builtin>),
}

/// The SASL server of one smtpd process.
#[derive(Debug)]
pub struct Sasl {
    backend: Backend,
    plain_policy: Policy,
    tls_policy: Policy,
    /// `smtpd_sasl_service`.
    pub service: String,
    /// `broken_sasl_auth_clients`.
    pub broken_clients: bool,
    /// `smtpd_sasl_exceptions_networks`.
    pub exceptions: Option<NetworkList>,
    /// `smtpd_sasl_authenticated_header`.
    pub authenticated_header: bool,
    /// `smtpd_sasl_response_limit`.
    pub response_limit: usize,
}

/// One authentication in progress.
#[derive(Debug)]
pub enum Conversation {
    /// Waiting on Dovecot's connection `conn` for request `id`.
    Dovecot(dovecot::Conn, u32),
    /// The built-in mechanism's state.
    Builtin(mech::State),
}

/// What the session does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `334 <challenge>`, then feed the answer to [`Sasl::step`].
    Challenge(String),
    /// `235`: authenticated as this user.
    Done(String),
    /// `535`: reason (empty: unknown) and the login the backend named.
    Fail(String, Option<String>),
    /// `454`: the backend is unavailable.
    Temp(String),
}

/// What the backend gets to know about the client.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Our address (`lip`), empty when unknown.
    pub local: String,
    /// The client's address (`rip`), empty when unknown.
    pub remote: String,
    /// The session is TLS-protected.
    pub tls: bool,
}

/// Built-in mechanisms and their properties.
const BUILTIN_MECHS: &[(&str, u32)] = &[("PLAIN", props::PLAINTEXT), ("LOGIN", props::PLAINTEXT)];

impl Sasl {
    /// The SASL server, or `None` when `smtpd_sasl_auth_enable = no`.
    ///
    /// # Errors
    /// An unknown `smtpd_sasl_type` or security option (Postfix: fatal).
    pub fn from_config(cfg: &Config) -> Result<Option<Sasl>, SaslError> {
        if !cfg.bool(p::SMTPD_SASL_AUTH_ENABLE) {
            return Ok(None);
        }
        let path = cfg.str(p::SMTPD_SASL_PATH);
        let backend = match cfg.str(p::SMTPD_SASL_TYPE).trim() {
            "dovecot" => Backend::Dovecot(dovecot::Client::new(dovecot::Endpoint::parse(
                &path,
                &cfg.str(p::QUEUE_DIRECTORY),
            ))),
            "builtin" => Backend::Builtin(Arc::new(builtin::Builtin::new(
                path.into(),
                cfg.str(p::SMTPD_SASL_LOCAL_DOMAIN),
            ))),
            other => return Err(SaslError::Unsupported(other.to_string())),
        };
        let opt = |n: &str| Policy::parse(n, &cfg.get(n));
        let exceptions = cfg.str(p::SMTPD_SASL_EXCEPTIONS_NETWORKS);
        let exceptions = if exceptions.trim().is_empty() {
            None
        } else {
            match NetworkList::new(&exceptions, &Default::default()) {
                Ok(l) => Some(l),
                Err(e) => {
                    postern_log::warning(format!("smtpd_sasl_exceptions_networks: {e}"));
                    None
                }
            }
        };
        Ok(Some(Sasl {
            backend,
            plain_policy: opt("smtpd_sasl_security_options")?,
            tls_policy: opt("smtpd_sasl_tls_security_options")?,
            service: cfg.str(p::SMTPD_SASL_SERVICE),
            broken_clients: cfg.bool(p::BROKEN_SASL_AUTH_CLIENTS),
            exceptions,
            authenticated_header: cfg.bool(p::SMTPD_SASL_AUTHENTICATED_HEADER),
            response_limit: cfg.int(p::SMTPD_SASL_RESPONSE_LIMIT).clamp(512, 1 << 20) as usize,
        }))
    }

    /// The mechanisms offered now (empty: none, or the backend is unreachable).
    pub async fn mechanisms(&self, tls: bool) -> Vec<String> {
        let policy = if tls {
            self.tls_policy
        } else {
            self.plain_policy
        };
        let all: Vec<(String, u32)> = match &self.backend {
            Backend::Dovecot(c) => match c.mechanisms().await {
                Some(m) => m.into_iter().map(|m| (m.name, m.props)).collect(),
                None => Vec::new(),
            },
            Backend::Builtin(_) => BUILTIN_MECHS
                .iter()
                .map(|(n, p)| (n.to_string(), *p))
                .collect(),
        };
        all.into_iter()
            .filter(|(_, p)| policy.allows(*p))
            .map(|(n, _)| n)
            .collect()
    }

    /// Starts `mech` (already checked to be offered) with an optional initial response.
    pub async fn start(
        &self,
        mech: &str,
        initial: Option<&str>,
        client: &ClientInfo,
    ) -> (Step, Option<Conversation>) {
        match &self.backend {
            Backend::Dovecot(c) => {
                if initial.is_some_and(|r| !dovecot::is_valid_base64(r)) {
                    return (Step::Fail(mech::BAD_INITIAL.into(), None), None);
                }
                let req = dovecot::auth_fields(
                    mech,
                    &self.service,
                    &client.local,
                    &client.remote,
                    client.tls,
                    initial,
                );
                dovecot_step(c.start(&req).await)
            }
            Backend::Builtin(b) => match mech::start(mech, initial) {
                Some(s) => builtin_step(b, s).await,
                None => (
                    Step::Fail("Invalid authentication mechanism".into(), None),
                    None,
                ),
            },
        }
    }

    /// Feeds the client's answer to the last challenge.
    pub async fn step(&self, conv: Conversation, response: &str) -> (Step, Option<Conversation>) {
        match (&self.backend, conv) {
            (Backend::Dovecot(c), Conversation::Dovecot(conn, id)) => {
                if !dovecot::is_valid_base64(response) {
                    c.cancel(conn, id).await;
                    return (Step::Fail(mech::BAD_CONTINUED.into(), None), None);
                }
                dovecot_step(c.cont(conn, id, response).await)
            }
            (Backend::Builtin(b), Conversation::Builtin(state)) => {
                builtin_step(b, mech::next(state, response)).await
            }
            _ => (Step::Temp("Authentication backend error".into()), None),
        }
    }

    /// Ends a conversation the client aborted (`*`) or overran.
    pub async fn abort(&self, conv: Conversation) {
        if let (Backend::Dovecot(c), Conversation::Dovecot(conn, id)) = (&self.backend, conv) {
            c.cancel(conn, id).await;
        }
    }
}

fn dovecot_step(
    (outcome, conn): (dovecot::Outcome, Option<(dovecot::Conn, u32)>),
) -> (Step, Option<Conversation>) {
    use dovecot::Outcome as O;
    match (outcome, conn) {
        (O::More(c), Some((conn, id))) => {
            (Step::Challenge(c), Some(Conversation::Dovecot(conn, id)))
        }
        (O::More(_), None) => (Step::Temp("Authentication backend error".into()), None),
        (O::Done(u), _) => (Step::Done(u), None),
        (O::Fail(r, u), _) => (Step::Fail(r, u), None),
        (O::Temp(r), _) => (Step::Temp(r), None),
    }
}

async fn builtin_step(
    b: &Arc<builtin::Builtin>,
    s: mech::MechStep,
) -> (Step, Option<Conversation>) {
    match s {
        mech::MechStep::Challenge(c, state) => (
            Step::Challenge(c.to_string()),
            Some(Conversation::Builtin(state)),
        ),
        mech::MechStep::Fail { reason, user } => (
            Step::Fail(reason.to_string(), user.map(|u| b.normalize(&u))),
            None,
        ),
        mech::MechStep::Credentials { user, password } => {
            match builtin::check(b.clone(), user, password).await {
                builtin::Verdict::Ok(u) => (Step::Done(u), None),
                builtin::Verdict::Fail(u) => (Step::Fail(String::new(), Some(u)), None),
                builtin::Verdict::Temp(r) => (Step::Temp(r), None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_options() {
        let p = Policy::parse("x", "noanonymous, noplaintext").unwrap();
        assert!(!p.allows(props::PLAINTEXT));
        assert!(p.allows(props::MUTUAL_AUTH));
        assert!(!p.allows(props::ANONYMOUS));
        let p = Policy::parse("x", "noanonymous").unwrap();
        assert!(p.allows(props::PLAINTEXT));
        let p = Policy::parse("x", "mutual_auth").unwrap();
        assert!(!p.allows(props::PLAINTEXT));
        assert!(p.allows(props::MUTUAL_AUTH | props::PLAINTEXT));
        assert!(Policy::parse("x", "").unwrap().allows(props::ANONYMOUS));
        assert_eq!(
            Policy::parse("smtpd_sasl_security_options", "noanonymous, bogus")
                .unwrap_err()
                .to_string(),
            "unknown smtpd_sasl_security_options value \"bogus\" in \"noanonymous, bogus\""
        );
    }
}
