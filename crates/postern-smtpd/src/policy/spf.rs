//! The SPF restriction words (Postern; Postfix calls policyd-spf through
//! `check_policy_service` for this): `reject_spf_fail`, `reject_spf_softfail` and
//! `defer_spf_temperror`, usable in any `smtpd_*_restrictions` list once MAIL FROM is known.
//!
//! The check is RFC 7208's `check_host()` on the MAIL FROM identity (the HELO identity
//! for the null sender), through the [`SpfCheck`] given with [`super::Policy::set_spf`]
//! (smtpd's `auth` module: the `postern_auth` verifier on `dns_servers`, cached per
//! client, HELO and sender so that each RCPT does not ask the DNS again).
//!
//! Replies follow policyd-spf's wording inside Postfix's `<who>: what rejected:` frame:
//! `550 5.7.23 … Message rejected due to: SPF fail - not authorized. …` and
//! `451 4.4.3 … SPF temporary error …`. A DNS failure never rejects (RFC 7208 §2.6.6):
//! only `defer_spf_temperror` turns it into a 4xx.
//!
//! # Security
//!
//! The sender and HELO name come from the network; they are only a DNS query subject
//! and reply text. Without a checker (no resolver) the words log a warning once and act
//! as `DUNNO`, as the other DNS words do.
//!
//! # Configuration
//!
//! The words in the restriction lists; `dns_servers` (the resolver), `soft_bounce`.

use super::eval::{Eval, Step, Subject};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// What an SPF check answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfAnswer {
    /// `pass`, `fail`, `softfail`, `neutral`, `none`, `temperror` or `permerror`.
    pub result: &'static str,
    /// The domain checked.
    pub domain: String,
    /// The domain's `exp=` explanation of a `fail`.
    pub explanation: Option<String>,
}

/// A pending [`SpfCheck`] answer.
pub type SpfFuture<'a> = Pin<Box<dyn Future<Output = SpfAnswer> + Send + 'a>>;

/// The SPF seam of the policy: smtpd gives one with [`super::Policy::set_spf`].
pub trait SpfCheck: Send + Sync + std::fmt::Debug {
    /// RFC 7208 `check_host()` for a client, HELO name and envelope sender (`""` = null).
    fn check<'a>(&'a self, ip: IpAddr, helo: &'a str, sender: &'a str) -> SpfFuture<'a>;
}

/// An SPF restriction word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpfWord {
    RejectFail,
    RejectSoftfail,
    DeferTemperror,
}

impl SpfWord {
    /// The word, when `word` names one.
    pub(crate) fn from_word(word: &str) -> Option<SpfWord> {
        Some(match word {
            "reject_spf_fail" => SpfWord::RejectFail,
            "reject_spf_softfail" => SpfWord::RejectSoftfail,
            "defer_spf_temperror" => SpfWord::DeferTemperror,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            SpfWord::RejectFail => "reject_spf_fail",
            SpfWord::RejectSoftfail => "reject_spf_softfail",
            SpfWord::DeferTemperror => "defer_spf_temperror",
        }
    }
}

impl Eval<'_> {
    /// Evaluates an SPF word for the list's subject `s`.
    pub(crate) async fn spf_word(&mut self, w: SpfWord, s: Subject) -> Step {
        let (Some(ip), Some(sender)) = (self.f.client_addr, self.f.sender.clone()) else {
            return Step::Dunno;
        };
        let Some(spf) = self.p.spf.clone() else {
            self.warn_no_dns(w.name());
            return Step::Dunno;
        };
        let helo = self.f.helo.clone().unwrap_or_default();
        let a = spf.check(ip, &helo, &sender).await;
        let (scope, id) = if sender.contains('@') {
            ("mfrom", sender.as_str())
        } else {
            ("helo", helo.as_str())
        };
        let text = match (w, a.result) {
            (SpfWord::RejectFail, "fail") | (SpfWord::RejectSoftfail, "softfail") => {
                let why = match &a.explanation {
                    Some(e) if a.result == "fail" => e.clone(),
                    _ => {
                        format!("Please see http://www.open-spf.org/Why?s={scope};id={id};ip={ip}")
                    }
                };
                let r = self.rejected(
                    550,
                    (5, 7, 23),
                    s,
                    &format!(
                        "Message rejected due to: SPF {} - not authorized. {why}",
                        a.result
                    ),
                );
                return self.refuse(r);
            }
            (SpfWord::DeferTemperror, "temperror") => format!(
                "SPF temporary error: DNS lookup failed for {}",
                if a.domain.is_empty() { id } else { &a.domain }
            ),
            _ => return Step::Dunno,
        };
        let r = self.rejected(451, (4, 4, 3), s, &text);
        self.refuse(r)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{facts, policy};
    use super::*;
    use std::sync::Arc;

    /// Answers `result` for every check.
    #[derive(Debug)]
    struct Fixed(&'static str);

    impl SpfCheck for Fixed {
        fn check<'a>(&'a self, _: IpAddr, _: &'a str, sender: &'a str) -> SpfFuture<'a> {
            let domain = sender.rsplit_once('@').map_or("", |(_, d)| d).to_string();
            Box::pin(async move {
                SpfAnswer {
                    result: self.0,
                    domain,
                    explanation: None,
                }
            })
        }
    }

    fn rcpt(result: &'static str, list: &str) -> Option<String> {
        let mut p = policy(&format!(
            "compatibility_level = 3.6\nmydestination = localhost\nrelay_domains =\n\
             mynetworks = 10.0.0.0/8\nlocal_recipient_maps =\nsmtpd_relay_restrictions = permit\n\
             smtpd_recipient_restrictions = {list}, reject_unauth_destination\n"
        ));
        p.set_spf(Arc::new(Fixed(result)));
        let mut f = facts("u@localhost");
        f.sender = Some("a@sender.example".into());
        let rt = tokio::runtime::Builder::new_current_thread().build().ok()?;
        let v = rt.block_on(p.check(super::super::Stage::Rcpt, &f));
        v.reject.map(|r| r.encode().trim_end().to_string())
    }

    #[test]
    fn words() {
        let all = "reject_spf_fail, reject_spf_softfail, defer_spf_temperror";
        assert_eq!(
            rcpt("fail", all).as_deref(),
            Some(
                "550 5.7.23 <u@localhost>: Recipient address rejected: Message rejected due to: \
                 SPF fail - not authorized. Please see \
                 http://www.open-spf.org/Why?s=mfrom;id=a@sender.example;ip=192.0.2.9"
            )
        );
        assert_eq!(
            rcpt("temperror", all).as_deref(),
            Some(
                "451 4.4.3 <u@localhost>: Recipient address rejected: SPF temporary error: \
                 DNS lookup failed for sender.example"
            )
        );
        assert!(rcpt("softfail", all).is_some_and(|r| r.starts_with("550 5.7.23 ")));
        assert_eq!(rcpt("softfail", "reject_spf_fail"), None);
        assert_eq!(rcpt("temperror", "reject_spf_fail"), None);
        assert_eq!(rcpt("pass", all), None);
        assert_eq!(rcpt("none", all), None);
        assert_eq!(rcpt("permerror", all), None);
    }
}
