//! Relay control: Postfix's `permit_auth_destination`, `reject_unauth_destination`,
//! `defer_unauth_destination` and the deprecated `check_relay_domains`.
//!
//! A recipient is an authorized destination when its class (resolved as trivial-rewrite
//! does, see [`super::addr`]) is local, virtual or `relay_domains`, and it carries no
//! sender-specified routing (`!`, `%`, `@` left in the local part) unless
//! `allow_untrusted_routing = yes`. A domain list or table that cannot be read refuses the
//! recipient with `451 4.3.0 <addr>: Temporary lookup failure`.
//!
//! # Configuration
//! `relay_domains`, `relay_domains_reject_code`, `allow_untrusted_routing`.

use super::addr::{Class, Resolved};
use super::eval::{Eval, Step, Subject, config_error, lookup_failure, reply};

impl Eval<'_> {
    pub(crate) fn resolve_recipient(&self) -> Result<Option<(String, Resolved)>, Step> {
        let Some(rcpt) = self.f.recipient.clone() else {
            return Ok(None);
        };
        match self.p.addrs.resolve(&rcpt) {
            Ok(r) => Ok(Some((rcpt, r))),
            Err(e) => {
                postern_log::warning(format!("recipient domain lookup: {e}"));
                Err(Step::Reject(lookup_failure(&rcpt)))
            }
        }
    }

    /// Postfix's `permit_auth_destination`: `Ok(Some(true))` when the recipient is a
    /// destination we accept mail for (final or `relay_domains`) and carries no sender
    /// routing (unless `allow_untrusted_routing`).
    fn auth_destination(&self) -> Result<Option<(String, bool)>, Step> {
        let Some((rcpt, r)) = self.resolve_recipient()? else {
            return Ok(None);
        };
        let authorized = if r.routed && !self.p.params.allow_untrusted_routing {
            false
        } else {
            !matches!(r.class, Class::Default)
        };
        Ok(Some((rcpt, authorized)))
    }

    /// `defer`: `None` = permit_auth_destination, `Some(true)` = defer_unauth_destination.
    pub(crate) fn relay(&mut self, defer: Option<bool>) -> Step {
        let (rcpt, authorized) = match self.auth_destination() {
            Ok(Some(x)) => x,
            Ok(None) => return Step::Dunno,
            Err(step) => return step,
        };
        match (authorized, defer) {
            (true, None) => Step::Permit,
            (true, Some(_)) | (false, None) => Step::Dunno,
            (false, Some(defer)) => {
                let code = self.p.params.relay_code;
                let code = if defer { code % 100 + 400 } else { code };
                let r = reply(code, (5, 7, 1), format!("<{rcpt}>: Relay access denied"));
                self.refuse(r)
            }
        }
    }

    /// `check_relay_domains` (deprecated in Postfix, still honoured): permit a client whose
    /// host name is in `relay_domains`, or an authorized destination; else reject.
    pub(crate) fn check_relay_domains(&mut self) -> Step {
        match self.p.addrs.relay_client(&self.f.client_name) {
            Ok(true) => return Step::Permit,
            Ok(false) => {}
            Err(e) => {
                postern_log::warning(e);
                return Step::Reject(config_error());
            }
        }
        match self.auth_destination() {
            Ok(Some((_, true))) => Step::Permit,
            Ok(None) => Step::Dunno,
            Err(step) => step,
            Ok(Some((_, false))) => {
                let r = self.rejected(
                    self.p.params.relay_code,
                    (5, 7, 1),
                    Subject::Recipient,
                    "Relay access denied",
                );
                self.refuse(r)
            }
        }
    }
}
