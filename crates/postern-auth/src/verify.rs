//! Verification of inbound mail: DKIM (RFC 6376/8463), ARC (RFC 8617), SPF (RFC 7208,
//! given the client IP, HELO name and envelope sender) and DMARC (RFC 7489), written as
//! one RFC 8601 `Authentication-Results:` header with the configured authserv-id.
//!
//! DNS goes through a [`postern_dns::Resolver`] (`dns_servers`, else resolv.conf): its
//! hickory resolver is handed to mail-auth, so the servers, timeouts and cache are the
//! ones the SMTP client and server use. A DNS failure is `temperror`, never `fail`.
//!
//! # Security
//!
//! Bounded: messages over [`crate::MAX_MESSAGE`] or with a header section over
//! [`crate::MAX_HEADER_SECTION`] get `permerror` without parsing; at most
//! [`MAX_SIGNATURES`] DKIM signatures and ARC sets are checked; SPF stops at RFC 7208's
//! 10 DNS-querying terms and 2 void lookups (mail-auth). Unparsable messages are
//! `permerror`. Nothing here panics on input.
//!
//! # Configuration
//!
//! The authserv-id (the caller's; `myhostname` by default in [`crate::cmd`]).

pub mod psl;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::{Alignment, Policy};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcOutput, DmarcResult,
    MessageAuthenticator, Parameters, ReceivedSpf, SpfOutput, SpfResult,
};
use std::net::IpAddr;

use crate::spf::{MAX_VOID_LOOKUPS, Tracker, check_record, is_spf};
use crate::{check_size, to_crlf};
use postern_dns::Lookup;

/// DKIM signatures (and ARC sets) checked per message; more are ignored.
pub const MAX_SIGNATURES: usize = 8;

/// What is known about the SMTP session of a message.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The authserv-id written first in the header.
    pub authserv_id: String,
    /// The client IP (SPF and ARC need it; without it they are left out).
    pub ip: Option<IpAddr>,
    /// The HELO/EHLO name.
    pub helo: String,
    /// The envelope sender (`""` is the null sender).
    pub sender: String,
}

/// The results of [`Verifier::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    /// The whole `Authentication-Results:` header, folded, CRLF-terminated.
    pub header: String,
    /// One result word per DKIM signature (`pass`, `fail`, `permerror`…); empty: none.
    pub dkim: Vec<&'static str>,
    /// The SPF result word, when an IP was given.
    pub spf: Option<&'static str>,
    /// The ARC result word, when an IP was given.
    pub arc: Option<&'static str>,
    /// The DMARC result word.
    pub dmarc: &'static str,
    /// What DMARC found, for the disposition and the aggregate reports.
    pub dmarc_info: DmarcInfo,
    /// Each DKIM signature checked: (`d=`, `s=`, result word).
    pub dkim_signatures: Vec<(String, String, &'static str)>,
    /// The SPF identity checked: (domain, `mfrom` or `helo`), when an IP was given.
    pub spf_identity: Option<(String, &'static str)>,
}

/// The DMARC side of [`AuthResults`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DmarcInfo {
    /// The RFC 5322.From domain (empty: DMARC did not apply).
    pub domain: String,
    /// The policy the domain asks for this message: `none`, `quarantine` or `reject`
    /// (`p=`, or `sp=`/`np=` for a subdomain, one level lower with `t=y`).
    pub policy: &'static str,
    /// The published record, when one was found.
    pub record: Option<DmarcPolicy>,
    /// A passing DKIM signature is aligned with the From domain.
    pub dkim_aligned: bool,
    /// A passing SPF identity is aligned with the From domain.
    pub spf_aligned: bool,
}

/// The tags of a published DMARC record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcPolicy {
    /// `p=` (`none`, `quarantine`, `reject`).
    pub p: &'static str,
    /// `sp=`.
    pub sp: &'static str,
    /// `adkim=` (`r` or `s`).
    pub adkim: &'static str,
    /// `aspf=` (`r` or `s`).
    pub aspf: &'static str,
    /// `pct=` (mail-auth follows DMARCbis, which dropped it: always 100).
    pub pct: u8,
    /// `rua=` URIs (`mailto:ADDRESS`; mail-auth keeps only mailto: URIs).
    pub rua: Vec<String>,
}

/// The outcome of [`Verifier::spf`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfReport {
    /// `pass`, `fail`, `softfail`, `neutral`, `none`, `temperror` or `permerror`.
    pub result: &'static str,
    /// The domain checked.
    pub domain: String,
    /// The `exp=` explanation of a `fail`, when the domain publishes one.
    pub explanation: Option<String>,
    /// A `Received-SPF:` header (RFC 7208 §9.1), CRLF-terminated.
    pub received_spf: String,
}

/// The verifier: mail-auth on our resolver.
pub struct Verifier {
    auth: MessageAuthenticator,
    resolver: postern_dns::Resolver,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

/// RFC 8601's word for a DKIM or ARC result (ARC-Seal `cv=` uses the same words).
pub(crate) fn dkim_word(r: &DkimResult) -> &'static str {
    match r {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

fn policy_word(p: Policy) -> &'static str {
    match p {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        Policy::None | Policy::Unspecified => "none",
    }
}

fn alignment_word(a: Alignment) -> &'static str {
    match a {
        Alignment::Relaxed => "r",
        Alignment::Strict => "s",
    }
}

/// The DMARC facts of a [`DmarcOutput`].
fn dmarc_info(out: &DmarcOutput) -> DmarcInfo {
    DmarcInfo {
        domain: out.domain().to_string(),
        policy: policy_word(out.policy()),
        record: out.dmarc_record().map(|r| DmarcPolicy {
            p: policy_word(r.p),
            sp: policy_word(r.sp),
            adkim: alignment_word(r.adkim),
            aspf: alignment_word(r.aspf),
            pct: 100,
            rua: r
                .rua()
                .iter()
                .map(|u| format!("mailto:{}", u.uri()))
                .collect(),
        }),
        dkim_aligned: *out.dkim_result() == DmarcResult::Pass,
        spf_aligned: *out.spf_result() == DmarcResult::Pass,
    }
}

/// The header with only the methods in `methods` (`dkim`, `spf`, `arc`, `dmarc`; `dkim`
/// keeps `dkim-atps` too); `; none` when nothing is left.
pub fn keep_methods(header: &str, methods: &[&str]) -> String {
    let body = header.trim_end_matches("\r\n");
    let mut parts = body.split(";\r\n\t");
    let head = parts.next().unwrap_or_default().to_string();
    let kept: Vec<&str> = parts
        .filter(|p| {
            let m = p.split(['=', ' ']).next().unwrap_or_default();
            let m = m.strip_suffix("-atps").unwrap_or(m);
            methods.iter().any(|w| w.eq_ignore_ascii_case(m))
        })
        .collect();
    let head = head.strip_suffix("; none").unwrap_or(&head).to_string();
    if kept.is_empty() {
        return format!("{head}; none\r\n");
    }
    format!("{head};\r\n\t{}\r\n", kept.join(";\r\n\t"))
}

fn dmarc_word(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

/// The RFC 8601 result word of an SPF result.
pub fn spf_word(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

/// The domain part of an address (`""` without one).
fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@').map_or("", |(_, d)| d)
}

impl Verifier {
    /// A verifier asking `resolver`'s servers. Call inside the tokio runtime.
    pub fn new(resolver: &postern_dns::Resolver) -> Verifier {
        Verifier {
            auth: MessageAuthenticator(resolver.hickory().clone()),
            resolver: resolver.clone(),
        }
    }

    /// SPF of the MAIL FROM identity (the HELO identity for the null sender), RFC 7208
    /// `check_host()`; `host` is the receiving host's name (`%{r}`).
    pub async fn spf(&self, ip: IpAddr, helo: &str, sender: &str, host: &str) -> SpfReport {
        let out = self.spf_output(ip, helo, sender, host).await;
        let received_spf = ReceivedSpf::new(&out, ip, helo, sender, host).to_header();
        SpfReport {
            result: spf_word(out.result()),
            domain: out.domain().to_string(),
            explanation: out.explanation().map(str::to_string),
            received_spf,
        }
    }

    async fn spf_output(&self, ip: IpAddr, helo: &str, sender: &str, host: &str) -> SpfOutput {
        let tracker = Tracker::default();
        let (txt, other) = (tracker.txt(), tracker.other());
        let params = if sender.is_empty() || domain_of(sender).is_empty() {
            SpfParameters::verify_ehlo(ip, helo, host)
        } else {
            SpfParameters::verify_mail_from(ip, helo, host, sender)
        };
        let params = Parameters::new(params)
            .with_txt_cache(&txt)
            .with_mx_cache(&other)
            .with_ipv4_cache(&other)
            .with_ipv6_cache(&other)
            .with_ptr_cache(&other);
        let out = self.auth.check_host(params).await;
        if matches!(out.result(), SpfResult::TempError | SpfResult::None) {
            return out;
        }
        // RFC 7208 §4.6.4 and §4.6/§12, which mail-auth 0.13.3 does not enforce.
        if tracker.void_lookups() > MAX_VOID_LOOKUPS {
            return SpfOutput::new(out.domain().to_string()).with_result(SpfResult::PermError);
        }
        for name in tracker.txt_names() {
            let Lookup::Found(records) = self.resolver.txt(&name).await else {
                continue;
            };
            let spf: Vec<&String> = records.iter().filter(|r| is_spf(r)).collect();
            let bad = match spf.as_slice() {
                [] => false,
                [one] => check_record(one).is_err(),
                _ => true,
            };
            if bad {
                return SpfOutput::new(out.domain().to_string()).with_result(SpfResult::PermError);
            }
        }
        out
    }

    /// Verifies `message` (LF or CRLF line ends) in `ctx`.
    pub async fn verify(&self, message: &[u8], ctx: &Context) -> AuthResults {
        if let Err(e) = check_size(message) {
            return refused(ctx, &e.to_string());
        }
        let crlf = to_crlf(message);
        let Some(mut msg) = AuthenticatedMessage::parse(&crlf) else {
            return refused(ctx, "unparsable message");
        };
        msg.dkim_headers.truncate(MAX_SIGNATURES);
        msg.ams_headers.truncate(MAX_SIGNATURES);
        msg.as_headers.truncate(MAX_SIGNATURES);
        msg.aar_headers.truncate(MAX_SIGNATURES);
        let msg = msg;

        let dkim = self.auth.verify_dkim(&msg).await;
        let header_from = msg.from.first().cloned().unwrap_or_default();
        let mut ar =
            AuthenticationResults::new(&ctx.authserv_id).with_dkim_results(&dkim, &header_from);
        let dkim_words: Vec<&'static str> = dkim.iter().map(|o| dkim_word(o.result())).collect();
        let dkim_signatures = dkim
            .iter()
            .filter_map(|o| {
                let sig = o.signature()?;
                Some((sig.d.clone(), sig.s.clone(), dkim_word(o.result())))
            })
            .collect();

        let (spf_out, spf_word_, arc_word) = match ctx.ip {
            Some(ip) => {
                let host = ctx.authserv_id.as_str();
                let spf = self.spf_output(ip, &ctx.helo, &ctx.sender, host).await;
                ar = if ctx.sender.is_empty() {
                    ar.with_spf_ehlo_result(&spf, ip, &ctx.helo)
                } else {
                    ar.with_spf_mailfrom_result(&spf, ip, &ctx.sender, &ctx.helo)
                };
                let arc = self.auth.verify_arc(&msg).await;
                ar = ar.with_arc_result(&arc, ip);
                let w = spf_word(spf.result());
                (spf, Some(w), Some(dkim_word(arc.result())))
            }
            None => (SpfOutput::new(String::new()), None, None),
        };

        let mail_from_domain = match domain_of(&ctx.sender) {
            "" => ctx.helo.as_str(),
            d => d,
        };
        let dmarc = self
            .auth
            .verify_dmarc(DmarcParameters::new(
                &msg,
                &dkim,
                mail_from_domain,
                &spf_out,
            ))
            .await;
        let spf_identity = ctx.ip.map(|_| {
            if domain_of(&ctx.sender).is_empty() {
                (ctx.helo.clone(), "helo")
            } else {
                (domain_of(&ctx.sender).to_string(), "mfrom")
            }
        });
        let dmarc_w = if dmarc.domain().is_empty() {
            "none"
        } else {
            ar = ar.with_dmarc_result(&dmarc);
            dmarc_word(&dmarc.result())
        };
        AuthResults {
            header: ar.to_header(),
            dkim: dkim_words,
            spf: spf_word_,
            arc: arc_word,
            dmarc: dmarc_w,
            dmarc_info: dmarc_info(&dmarc),
            dkim_signatures,
            spf_identity,
        }
    }
}

/// The results of a message refused before parsing: `dkim=permerror (REASON)`.
fn refused(ctx: &Context, reason: &str) -> AuthResults {
    let reason: String = reason
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '(' && c != ')' {
                c
            } else {
                ' '
            }
        })
        .collect();
    AuthResults {
        header: format!(
            "Authentication-Results: {};\r\n\tdkim=permerror ({reason})\r\n",
            ctx.authserv_id
        ),
        dkim: vec!["permerror"],
        spf: None,
        arc: None,
        dmarc: "none",
        dmarc_info: DmarcInfo::default(),
        dkim_signatures: Vec::new(),
        spf_identity: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_header_is_one_line_pair() {
        let ctx = Context {
            authserv_id: "mx.example".into(),
            ..Context::default()
        };
        let r = refused(&ctx, "message (too) large\n");
        assert_eq!(
            r.header,
            "Authentication-Results: mx.example;\r\n\tdkim=permerror (message  too  large )\r\n"
        );
        assert_eq!(r.dkim, vec!["permerror"]);
    }

    #[test]
    fn methods_kept() {
        let h = "Authentication-Results: mx.example;\r\n\tdkim=pass header.d=a.example;\r\n\tspf=fail (x=y) smtp.mailfrom=a@b;\r\n\tarc=none;\r\n\tdmarc=pass header.from=a.example\r\n";
        assert_eq!(
            keep_methods(h, &["spf", "dmarc"]),
            "Authentication-Results: mx.example;\r\n\tspf=fail (x=y) smtp.mailfrom=a@b;\r\n\tdmarc=pass header.from=a.example\r\n"
        );
        assert_eq!(
            keep_methods(h, &[]),
            "Authentication-Results: mx.example; none\r\n"
        );
        assert_eq!(keep_methods(h, &["dkim", "spf", "arc", "dmarc"]), h);
        assert_eq!(
            keep_methods("Authentication-Results: mx; none\r\n", &["dkim"]),
            "Authentication-Results: mx; none\r\n"
        );
    }

    #[test]
    fn words() {
        assert_eq!(spf_word(SpfResult::SoftFail), "softfail");
        assert_eq!(dkim_word(&DkimResult::None), "none");
        assert_eq!(domain_of("a@b.example"), "b.example");
        assert_eq!(domain_of(""), "");
    }
}
