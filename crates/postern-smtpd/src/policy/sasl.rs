//! The SASL restrictions on the sender: `reject_sender_login_mismatch`,
//! `reject_known_sender_login_mismatch`,
//! `reject_authenticated_sender_login_mismatch` and
//! `reject_unauthenticated_sender_login_mismatch`, with the owners of a sender
//! address from `smtpd_sender_login_maps` (Postfix 3.7's behaviour and texts).
//!
//! An authenticated client whose login is not among the sender's owners gets
//! `553 5.7.1 <sender>: Sender address rejected: not owned by user LOGIN`
//! (for the `known` variant only when the sender has owners at all); an
//! unauthenticated client using a sender that has owners gets `553 5.7.1
//! <sender>: Sender address rejected: not logged in`. The null sender is
//! never checked; without `smtpd_sender_login_maps` the words do nothing.
//!
//! Owners are looked up as Postfix's `smtpd_sender_login_maps` documents:
//! `user@domain` (and without its address extension), then `user` when the
//! domain is local, then `@domain`; regexp and pcre tables get the full
//! address only. The value is a list of login names (comma or blank
//! separated), compared without regard to case.
//!
//! # Security
//! The sender is a lookup key only. A table that cannot be read gives
//! `451 4.3.5 Server configuration error`, never a permit.
//!
//! # Configuration
//! `smtpd_sender_login_maps`, `recipient_delimiter`.

use super::addr::Class;
use super::compile::Table;
use super::eval::{Eval, Step, Subject, config_error};

/// Which halves of the check a word applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoginCheck {
    /// Check authenticated clients.
    pub authenticated: bool,
    /// Check unauthenticated clients.
    pub unauthenticated: bool,
    /// Authenticated clients pass when the sender has no owner.
    pub known_only: bool,
}

impl LoginCheck {
    /// The restriction word → its check.
    pub(crate) fn from_word(word: &str) -> Option<LoginCheck> {
        let (a, u, k) = match word {
            "reject_sender_login_mismatch" => (true, true, false),
            "reject_known_sender_login_mismatch" => (true, true, true),
            "reject_authenticated_sender_login_mismatch" => (true, false, false),
            "reject_unauthenticated_sender_login_mismatch" => (false, true, false),
            _ => return None,
        };
        Some(LoginCheck {
            authenticated: a,
            unauthenticated: u,
            known_only: k,
        })
    }
}

/// Opens the tables of `smtpd_sender_login_maps`.
pub(crate) fn open_login_maps(value: &str) -> Vec<Table> {
    value
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
        .map(Table::open)
        .collect()
}

impl Eval<'_> {
    /// One of the sender-login words.
    pub(crate) fn sender_login(&mut self, check: LoginCheck) -> Step {
        let Some(sender) = self.f.sender.clone().filter(|s| !s.is_empty()) else {
            return Step::Dunno;
        };
        if self.p.login_maps.is_empty() {
            return Step::Dunno;
        }
        let owners = match self.owners(&sender) {
            Ok(o) => o,
            Err(step) => return step,
        };
        let r = match (&self.f.sasl_username, owners) {
            (Some(login), owners) if check.authenticated => {
                let owned = owners.as_deref().is_some_and(|o| {
                    o.split(|c: char| c == ',' || c.is_ascii_whitespace())
                        .any(|n| n.eq_ignore_ascii_case(login))
                });
                if owned || (owners.is_none() && check.known_only) {
                    return Step::Dunno;
                }
                format!("not owned by user {login}")
            }
            (None, Some(_)) if check.unauthenticated => "not logged in".to_string(),
            _ => return Step::Dunno,
        };
        let r = self.rejected(553, (5, 7, 1), Subject::Sender, &r);
        self.refuse(r)
    }

    /// The owners of `sender`, from the first table that knows it.
    fn owners(&self, sender: &str) -> Result<Option<String>, Step> {
        let keys = self.login_keys(sender);
        for t in &self.p.login_maps {
            let map = match t {
                Table::Open(m) => m,
                Table::Broken { name, error } => {
                    postern_log::warning(format!("{name}: table lookup problem: {error}"));
                    return Err(Step::Reject(config_error()));
                }
            };
            let pattern = ["regexp:", "pcre:"]
                .iter()
                .any(|p| map.name().starts_with(p));
            for key in keys.iter().take(if pattern { 1 } else { keys.len() }) {
                match map.lookup(key) {
                    Ok(Some(v)) => return Ok(Some(v)),
                    Ok(None) => {}
                    Err(e) => {
                        postern_log::warning(format!(
                            "{}: table lookup problem for \"{key}\": {e}",
                            map.name()
                        ));
                        return Err(Step::Reject(config_error()));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Lookup keys in Postfix's order.
    fn login_keys(&self, sender: &str) -> Vec<String> {
        let mut keys = vec![sender.to_string()];
        let Some(at) = sender.rfind('@') else {
            return keys;
        };
        let (local, domain) = (&sender[..at], &sender[at + 1..]);
        let delims = &self.p.params.delimiter;
        let bare = match local.find(|c| !delims.is_empty() && delims.contains(c)) {
            Some(i) if i > 0 => Some(&local[..i]),
            _ => None,
        };
        if let Some(b) = bare {
            keys.push(format!("{b}@{domain}"));
        }
        let is_local = self
            .p
            .addrs
            .resolve(sender)
            .is_ok_and(|r| r.class == Class::Local);
        if is_local {
            keys.push(local.to_string());
            if let Some(b) = bare {
                keys.push(b.to_string());
            }
        }
        keys.push(format!("@{domain}"));
        keys
    }
}
