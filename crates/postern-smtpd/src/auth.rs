//! Inbound email authentication in smtpd (issue 15): SPF, DKIM, ARC and DMARC checked at
//! the end of data and written as one RFC 8601 `Authentication-Results:` header, the DMARC
//! disposition (`p=reject` refused, `p=quarantine` held or marked), and the checker behind
//! the SPF restriction words (`reject_spf_fail` & co., see `policy::spf`). Postfix does
//! this with OpenDKIM, OpenDMARC and policyd-spf; replies follow those tools.
//!
//! * The header is put first in the message as smtpd hands it on (to cleanup or the
//!   before-queue filter), after removing every incoming `Authentication-Results:` header
//!   whose authserv-id is ours (RFC 8601 §5: a forgery or a stale copy). It is added
//!   before any milter runs, so milters (and cleanup's header checks) see it; cleanup's
//!   own `Received:` header goes above it, where a milter's inserted header would be.
//! * `p=reject` that fails: `550 5.7.1 rejected by DMARC policy for DOMAIN` (OpenDMARC's
//!   words) at the end of data. `p=quarantine`: the message is held (`postqueue -p` shows
//!   `!`; log `hold: END-OF-MESSAGE from …: quarantined by DMARC policy for DOMAIN`), or
//!   with `dmarc_quarantine_action = header` gets `X-Postern-DMARC: quarantine; DOMAIN`.
//!   `sp=`, `np=` and `t=y` are applied by `postern_auth`.
//! * Exemptions (OpenDKIM's InternalHosts, OpenDMARC's IgnoreAuthenticatedClients):
//!   clients in `mynetworks` and SASL-authenticated clients are not checked at all — no
//!   header (it would describe our own outbound mail before it is signed), no disposition.
//! * DNS failure is `temperror`: accepted (with the result in the header), or, with
//!   `smtpd_auth_temperror_action = defer`, `451 4.4.3` — never a reject.
//!
//! # Security
//!
//! The message and the SMTP facts come from the network: `postern_auth` bounds the
//! message, the header section, the signatures checked and the DNS lookups; nothing here
//! panics on input. The SPF cache is bounded ([`SPF_CACHE`] entries).
//!
//! # Configuration
//!
//! `smtpd_authentication_checks` (`spf`, `dkim`, `arc`, `dmarc`; empty = none),
//! `smtpd_authserv_id` (default `$myhostname`), `smtpd_dmarc_policy`,
//! `dmarc_quarantine_action` (`hold` | `header`), `smtpd_auth_temperror_action`
//! (`accept` | `defer`), `dns_servers`. A word these do not know stops smtpd at start-up
//! (fail closed).

use crate::policy::{MessageAction, SpfAnswer, SpfCheck, SpfFuture};
use crate::session::{Session, reply};
use postern_auth::report::{DmarcRecord, record_dmarc};
use postern_auth::verify::keep_methods;
use postern_auth::verify::psl::PublicSuffixList;
use postern_auth::{AuthResults, Context, Verifier};
use postern_config::{Config, p};
use postern_smtp_proto::Reply;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// SPF answers kept per process (cleared when full).
pub const SPF_CACHE: usize = 1024;

/// The methods `smtpd_authentication_checks` may name.
const METHODS: &[&str] = &["spf", "dkim", "arc", "dmarc"];

/// The configuration of the inbound checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// The methods written into the header (`dmarc` too when `smtpd_dmarc_policy = yes`).
    pub methods: Vec<&'static str>,
    /// `smtpd_authserv_id`.
    pub authserv_id: String,
    /// `smtpd_dmarc_policy`.
    pub dmarc_policy: bool,
    /// `dmarc_quarantine_action = header` (else hold).
    pub quarantine_header: bool,
    /// `smtpd_auth_temperror_action = defer` (else accept).
    pub temperror_defer: bool,
    /// `dmarc_report_directory` when `dmarc_reporting = yes`.
    pub report_dir: Option<PathBuf>,
    /// `dmarc_public_suffix_list`.
    pub psl: PathBuf,
}

impl AuthSettings {
    /// Reads the parameters; `None` when no check is configured.
    ///
    /// # Errors
    ///
    /// A word or value the parameters do not allow (one line naming it).
    pub fn from_config(cfg: &Config) -> Result<Option<AuthSettings>, String> {
        let mut methods = Vec::new();
        for w in cfg.list(p::SMTPD_AUTHENTICATION_CHECKS) {
            let w = w.to_ascii_lowercase();
            match METHODS.iter().find(|m| **m == w) {
                Some(m) if !methods.contains(m) => methods.push(*m),
                Some(_) => {}
                None => {
                    return Err(format!(
                        "smtpd_authentication_checks: unknown check \"{w}\" (use spf, dkim, arc, dmarc)"
                    ));
                }
            }
        }
        let dmarc_policy = cfg.bool(p::SMTPD_DMARC_POLICY);
        if dmarc_policy && !methods.contains(&"dmarc") {
            methods.push("dmarc");
        }
        let quarantine_header = choice(cfg, "dmarc_quarantine_action", "hold", "header")?;
        let temperror_defer = choice(cfg, "smtpd_auth_temperror_action", "accept", "defer")?;
        if methods.is_empty() {
            return Ok(None);
        }
        let mut authserv_id = cfg.str(p::SMTPD_AUTHSERV_ID).trim().to_string();
        if authserv_id.is_empty() {
            authserv_id = cfg.str(p::MYHOSTNAME);
        }
        let report_dir = cfg
            .bool(p::DMARC_REPORTING)
            .then(|| PathBuf::from(cfg.str(p::DMARC_REPORT_DIRECTORY)))
            .filter(|d| !d.as_os_str().is_empty());
        Ok(Some(AuthSettings {
            methods,
            authserv_id,
            dmarc_policy,
            quarantine_header,
            temperror_defer,
            report_dir,
            psl: PathBuf::from(cfg.str(p::DMARC_PUBLIC_SUFFIX_LIST)),
        }))
    }
}

/// A two-word parameter: `Ok(false)` for `off` (or empty), `Ok(true)` for `on`.
fn choice(cfg: &Config, name: &str, off: &str, on: &str) -> Result<bool, String> {
    match cfg.get(name).trim() {
        v if v == off || v.is_empty() => Ok(false),
        v if v == on => Ok(true),
        v => Err(format!("{name}: \"{v}\" is not {off} or {on}")),
    }
}

/// The inbound checks of one smtpd process (also the SPF words' checker).
pub struct Auth {
    /// The checks' settings (`None`: only the SPF words use this).
    pub settings: Option<AuthSettings>,
    verifier: Verifier,
    myhostname: String,
    spf_cache: Mutex<HashMap<(IpAddr, String, String), SpfAnswer>>,
    resolver: postern_dns::Resolver,
    /// The Public Suffix List, read at the first report record (`None`: unreadable).
    psl: OnceLock<Option<PublicSuffixList>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// The checks on `resolver` (smtpd's `dns_servers` resolver).
    pub fn new(
        settings: Option<AuthSettings>,
        resolver: &postern_dns::Resolver,
        myhostname: &str,
    ) -> Auth {
        Auth {
            settings,
            verifier: Verifier::new(resolver),
            myhostname: myhostname.to_string(),
            spf_cache: Mutex::new(HashMap::new()),
            resolver: resolver.clone(),
            psl: OnceLock::new(),
        }
    }

    /// The domain whose DMARC record applied: the From domain when it publishes one,
    /// else its organizational domain (Public Suffix List; the From domain when the list
    /// cannot be read, with a warning once).
    async fn policy_domain(&self, st: &AuthSettings, from: &str) -> String {
        let own = format!("_dmarc.{from}");
        if let postern_dns::Lookup::Found(txt) = self.resolver.txt(&own).await
            && txt.iter().any(|t| t.trim_start().starts_with("v=DMARC1"))
        {
            return from.to_string();
        }
        let psl = self
            .psl
            .get_or_init(|| match PublicSuffixList::load(&st.psl) {
                Ok(l) => Some(l),
                Err(e) => {
                    postern_log::warning(format!("dmarc_public_suffix_list: {e}"));
                    None
                }
            });
        psl.as_ref()
            .map_or_else(|| from.to_string(), |l| l.organizational_domain(from))
    }
}

impl SpfCheck for Auth {
    fn check<'a>(&'a self, ip: IpAddr, helo: &'a str, sender: &'a str) -> SpfFuture<'a> {
        Box::pin(async move {
            let key = (ip, helo.to_ascii_lowercase(), sender.to_ascii_lowercase());
            if let Some(a) = self
                .spf_cache
                .lock()
                .ok()
                .and_then(|c| c.get(&key).cloned())
            {
                return a;
            }
            let r = self.verifier.spf(ip, helo, sender, &self.myhostname).await;
            let a = SpfAnswer {
                result: r.result,
                domain: r.domain,
                explanation: r.explanation,
            };
            // A DNS failure may be gone at the next RCPT: not cached.
            if a.result != "temperror"
                && let Ok(mut c) = self.spf_cache.lock()
            {
                if c.len() >= SPF_CACHE {
                    c.clear();
                }
                c.insert(key, a.clone());
            }
            a
        })
    }
}

/// End of data: checks the message, applies the DMARC disposition and the temperror
/// action. `Ok`: the content to hand on (our header first); `Err`: the refusal.
pub(crate) async fn end_of_data(
    sess: &mut Session<'_>,
    content: Vec<u8>,
) -> Result<Vec<u8>, Reply> {
    let Some(auth) = sess.s.auth.clone() else {
        return Ok(content);
    };
    let Some(st) = auth.settings.as_ref() else {
        return Ok(content);
    };
    let exempt = ["permit_mynetworks", "permit_sasl_authenticated"].map(String::from);
    if sess.policy.local_header_client(&exempt, &sess.facts) {
        return Ok(content);
    }
    let content = strip_our_results(&content, &st.authserv_id);
    let ctx = Context {
        authserv_id: st.authserv_id.clone(),
        ip: sess.facts.client_addr,
        helo: sess.facts.helo.clone().unwrap_or_default(),
        sender: sess
            .txn
            .as_ref()
            .map(|t| t.sender.clone())
            .unwrap_or_default(),
    };
    let res = auth.verifier.verify(&content, &ctx).await;
    if st.temperror_defer && temperror(st, &res) {
        return Err(reply(
            451,
            (4, 4, 3),
            "Temporary DNS failure checking message authentication; try again later",
        ));
    }
    let mut header = keep_methods(&res.header, &st.methods).replace("\r\n", "\n");
    let info = &res.dmarc_info;
    let disposition = match (st.dmarc_policy && res.dmarc == "fail", info.policy) {
        (true, p @ ("reject" | "quarantine")) => p,
        _ => "none",
    };
    if let Some(dir) = &st.report_dir {
        report(sess, &auth, st, dir, &ctx, &res, disposition).await;
    }
    if disposition != "none" {
        match info.policy {
            "reject" => {
                return Err(reply(
                    550,
                    (5, 7, 1),
                    format!("rejected by DMARC policy for {}", info.domain),
                ));
            }
            "quarantine" if st.quarantine_header => {
                header.push_str(&format!("X-Postern-DMARC: quarantine; {}\n", info.domain));
            }
            "quarantine" => {
                let why = format!("quarantined by DMARC policy for {}", info.domain);
                sess.log_event("hold", "END-OF-MESSAGE", &why);
                if let Some(t) = sess.txn.as_mut() {
                    t.actions.push(MessageAction::Hold(why));
                }
            }
            _ => {}
        }
    }
    let mut out = header.into_bytes();
    out.extend_from_slice(&content);
    Ok(out)
}

/// Records the message for the DMARC aggregate reports (RFC 7489 §7.2): only mail
/// from a domain publishing a record with `rua=` addresses.
async fn report(
    sess: &Session<'_>,
    auth: &Auth,
    st: &AuthSettings,
    dir: &std::path::Path,
    ctx: &Context,
    res: &AuthResults,
    disposition: &str,
) {
    let info = &res.dmarc_info;
    let Some(rec) = info.record.as_ref().filter(|r| !r.rua.is_empty()) else {
        return;
    };
    let envelope_to_domain = sess
        .txn
        .as_ref()
        .and_then(|t| t.rcpts.first())
        .and_then(|r| r.address.rsplit_once('@'))
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    let (spf_domain, scope) = res.spf_identity.clone().unwrap_or_default();
    let r = DmarcRecord {
        source_ip: ctx.ip,
        header_from: info.domain.clone(),
        envelope_from: ctx
            .sender
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default(),
        envelope_to_domain,
        policy_domain: auth.policy_domain(st, &info.domain).await,
        p: rec.p.into(),
        sp: rec.sp.into(),
        pct: rec.pct,
        adkim: rec.adkim.into(),
        aspf: rec.aspf.into(),
        disposition: disposition.into(),
        dkim: res
            .dkim_signatures
            .iter()
            .map(|(d, s, w)| (d.clone(), s.clone(), (*w).to_string()))
            .collect(),
        spf: (spf_domain, scope.into(), res.spf.unwrap_or("none").into()),
        dmarc_dkim_aligned: info.dkim_aligned,
        dmarc_spf_aligned: info.spf_aligned,
        rua: rec.rua.clone(),
    };
    if let Err(e) = record_dmarc(dir, &r) {
        postern_log::warning(format!("dmarc_report_directory: {}: {e}", dir.display()));
    }
}

/// Whether a configured check ended in a DNS failure.
fn temperror(st: &AuthSettings, r: &AuthResults) -> bool {
    let on = |m: &str| st.methods.contains(&m);
    (on("dmarc") && r.dmarc == "temperror")
        || (on("spf") && r.spf == Some("temperror"))
        || (on("arc") && r.arc == Some("temperror"))
        || (on("dkim") && r.dkim.contains(&"temperror"))
}

/// The message without the `Authentication-Results:` headers whose authserv-id is `id`
/// (ASCII case-insensitive; RFC 8601 §5). Other headers and the body are untouched.
pub fn strip_our_results(content: &[u8], id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len());
    let mut dropping = false;
    let mut rest = content;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        if line == b"\n" || line == b"\r\n" {
            out.extend_from_slice(rest);
            return out;
        }
        let continuation = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !continuation {
            dropping = is_our_result(line, tail, id);
        }
        if !dropping {
            out.extend_from_slice(line);
        }
        rest = tail;
    }
    out
}

/// Whether the header starting with `line` (continued in `tail`) is an
/// `Authentication-Results:` header with authserv-id `id`.
fn is_our_result(line: &[u8], tail: &[u8], id: &str) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    if !line[..colon]
        .trim_ascii()
        .eq_ignore_ascii_case(b"authentication-results")
    {
        return false;
    }
    // The value with its continuation lines, up to the first `;`.
    let mut value = line[colon + 1..].to_vec();
    let mut t = tail;
    while value.iter().all(|&b| b != b';') && t.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        let end = t
            .iter()
            .position(|&b| b == b'\n')
            .map_or(t.len(), |i| i + 1);
        value.extend_from_slice(&t[..end]);
        t = &t[end..];
    }
    let value = String::from_utf8_lossy(&value);
    let first = value.split(';').next().unwrap_or_default();
    let authserv = strip_comments(first);
    authserv
        .split_ascii_whitespace()
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case(id))
}

/// RFC 5322 comments (nested parentheses) removed.
fn strip_comments(s: &str) -> String {
    let mut depth = 0usize;
    s.chars()
        .filter(|&c| match c {
            '(' => {
                depth += 1;
                false
            }
            ')' => {
                depth = depth.saturating_sub(1);
                false
            }
            _ => depth == 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_ours() {
        let m = b"Authentication-Results: mx.example; spf=pass\n\
                  Authentication-Results: other.example; dkim=pass\n\
                  authentication-results: (c) MX.EXAMPLE\n\tdkim=pass; x\n\
                  Authentication-Results: mx.example.evil; dkim=pass\n\
                  Subject: hi\n\nAuthentication-Results: mx.example; body\n";
        let out = strip_our_results(m, "mx.example");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "Authentication-Results: other.example; dkim=pass\n\
             Authentication-Results: mx.example.evil; dkim=pass\n\
             Subject: hi\n\nAuthentication-Results: mx.example; body\n"
        );
        assert_eq!(strip_our_results(b"", "x"), b"");
        assert_eq!(strip_our_results(b"A: b", "x"), b"A: b");
        assert_eq!(
            strip_our_results(b"Authentication-Results: mx 1; none\r\nB: c\r\n\r\n", "mx"),
            b"B: c\r\n\r\n"
        );
    }

    #[test]
    fn settings() {
        let cfg = |s: &str| {
            Config::new(postern_config::parse_main_cf(s).unwrap_or_else(|_| panic!("main.cf")))
        };
        assert_eq!(AuthSettings::from_config(&cfg("")).ok(), Some(None));
        let s = AuthSettings::from_config(&cfg(
            "myhostname = mx.example\nsmtpd_authentication_checks = spf, DKIM\nsmtpd_dmarc_policy = yes\n",
        ));
        let s = s.ok().flatten();
        assert_eq!(
            s.as_ref().map(|s| s.methods.clone()),
            Some(vec!["spf", "dkim", "dmarc"])
        );
        assert_eq!(s.map(|s| s.authserv_id), Some("mx.example".to_string()));
        assert!(
            AuthSettings::from_config(&cfg("smtpd_authentication_checks = spf, iprev")).is_err()
        );
        assert!(
            AuthSettings::from_config(&cfg(
                "smtpd_authentication_checks = spf\ndmarc_quarantine_action = drop"
            ))
            .is_err()
        );
        assert!(
            AuthSettings::from_config(&cfg(
                "smtpd_authentication_checks = spf\nsmtpd_auth_temperror_action = reject"
            ))
            .is_err()
        );
    }
}
