//! The SMTP client's TLS configuration (main.cf + `smtp_tls_policy_maps`)
//! and, per connection, the effective level, rustls configuration and
//! certificate check ([`ConnTls`]): Postfix's `smtp_tls_policy.c` with
//! DANE (RFC 7672) and MTA-STS (RFC 8461) folded in.
//!
//! Order of precedence for one MX host: a `smtp_tls_policy_maps` entry
//! for the next hop (or a parent domain), else `smtp_tls_security_level`;
//! at `dane`/`dane-only` the TLSA records of the host decide; where no
//! DANE policy is in effect and no table entry exists, an MTA-STS policy
//! of the recipient domain (`smtp_mta_sts_enable`) upgrades `none`/`may`/
//! `encrypt` to `verify` with the MX host name (mode `enforce`; MX hosts
//! the policy does not list are skipped), or is only logged (`testing`).
//!
//! An invalid policy (bad level, attribute, protocol list, fingerprint
//! digest) defers with `client TLS configuration problem` (4.7.5), as
//! Postfix does, after a warning naming the table and key. So does a policy
//! table that cannot be opened or queried: it stays in the list as a
//! surrogate whose lookups fail, never "no policy" (fail closed).
//!
//! Parameters: `smtp_tls_security_level`, `smtp_use_tls`,
//! `smtp_enforce_tls`, `smtp_tls_enforce_peername`, `compatibility_level`,
//! `smtp_tls_policy_maps`, `smtp_tls_protocols`,
//! `smtp_tls_mandatory_protocols`, `smtp_tls_verify_cert_match`,
//! `smtp_tls_secure_cert_match`, `smtp_tls_fingerprint_cert_match`,
//! `smtp_tls_fingerprint_digest`, `smtp_tls_servername`,
//! `smtp_tls_loglevel`, `smtp_tls_CAfile`, `smtp_tls_CApath`,
//! `tls_append_default_CA`, `smtp_tls_trust_anchor_file` (`lmtp_` for LMTP).

use crate::dane::{self, DaneCheck, DaneState};
use crate::policy::{self, Digest, Level, NameRule, Versions};
use crate::result::Outcome;
use crate::sts::StsPolicy;
use crate::verify::{Check, Verifier};
use postern_config::{Config, p};
use postern_table::BoxMap;
use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::TrustAnchor;
use std::sync::Arc;

/// What one connection does about TLS.
#[derive(Debug, Clone)]
pub struct ConnTls {
    /// The effective level.
    pub level: Level,
    /// rustls configuration (None: no TLS).
    pub config: Option<Arc<ClientConfig>>,
    /// The verifier inside `config`, to read the verdict after the handshake.
    pub verifier: Option<Arc<Verifier>>,
    /// Server name for the handshake (SNI is sent only when `config` says).
    pub sni: Option<String>,
    /// MTA-STS `testing` domain: log a failed check, do not enforce.
    pub sts_testing: Option<String>,
    /// The MTA-STS or DANE policy in effect, for TLS-RPT: (policy-type, policy-string,
    /// mx-host).
    pub report_policy: Option<(String, Vec<String>, Vec<String>)>,
}

/// Where and what the session records for TLS-RPT (RFC 8460): the record with the
/// policy filled in; the session adds the outcome.
#[derive(Debug, Clone)]
pub struct TlsReport {
    /// `tlsrpt_report_directory`.
    pub dir: std::path::PathBuf,
    /// The record so far.
    pub record: postern_auth::report::TlsRecord,
}

impl ConnTls {
    /// No TLS at all.
    pub fn none() -> ConnTls {
        ConnTls {
            level: Level::None,
            config: None,
            verifier: None,
            sni: None,
            sts_testing: None,
            report_policy: None,
        }
    }
}

/// The resolved policy of one next hop.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Level before DANE/MTA-STS.
    pub level: Level,
    /// From a policy table entry.
    pub explicit: bool,
    /// Allowed TLS versions.
    pub versions: Versions,
    /// verify/secure match list.
    pub matches: Vec<String>,
    /// Fingerprint digest and values.
    pub fingerprints: (Digest, Vec<Vec<u8>>),
    /// `servername` (main.cf or table).
    pub servername: Option<String>,
    /// Trust anchors for this next hop.
    pub roots: Arc<Vec<TrustAnchor<'static>>>,
}

/// Main-cf TLS settings of the agent.
pub struct TlsConf {
    pfx: &'static str,
    global: Result<Level, String>,
    protocols: String,
    mandatory_protocols: String,
    verify_match: String,
    secure_match: String,
    fingerprint_match: String,
    digest: String,
    servername: String,
    /// `smtp_tls_loglevel`.
    pub loglevel: u32,
    maps: Vec<BoxMap>,
    roots: Arc<Vec<TrustAnchor<'static>>>,
    ta_roots: Option<Arc<Vec<TrustAnchor<'static>>>>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for TlsConf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConf")
            .field("global", &self.global)
            .field("maps", &self.maps.len())
            .finish_non_exhaustive()
    }
}

/// `*_tls_security_level`, or its default: `smtp_enforce_tls` → verify
/// (encrypt with `smtp_tls_enforce_peername = no`), `smtp_use_tls` → may,
/// else `may` from compatibility level 3.11 on (Postfix 3.11's default),
/// `none` below.
pub fn global_level(cfg: &Config, pfx: &str) -> Result<Level, String> {
    let v = cfg.get(&format!("{pfx}_tls_security_level"));
    if !v.trim().is_empty() {
        return Level::parse(&v).ok_or_else(|| format!("invalid tls security level: \"{v}\""));
    }
    let yes = |n: &str| matches!(cfg.get(&format!("{pfx}_{n}")).trim(), "yes" | "true" | "1");
    Ok(if yes("enforce_tls") {
        if yes("tls_enforce_peername") {
            Level::Verify
        } else {
            Level::Encrypt
        }
    } else if yes("use_tls") || crate::compat_at_least(&cfg.str(p::COMPATIBILITY_LEVEL), (3, 11)) {
        Level::May
    } else {
        Level::None
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsConf {
    /// Reads the settings for `smtp` or `lmtp`, opens the policy tables
    /// and loads the trust anchors (warnings are logged).
    pub fn from_config(cfg: &Config, lmtp: bool) -> TlsConf {
        let pfx = if lmtp { "lmtp" } else { "smtp" };
        let get = |n: &str| cfg.get(&format!("{pfx}_{n}"));
        let global = global_level(cfg, pfx);
        if let Err(e) = &global {
            postern_log::warning(e.clone());
        }
        let maps = crate::tables::open_maps(cfg, &format!("{pfx}_tls_policy_maps"));
        let append = cfg.bool(p::TLS_APPEND_DEFAULT_CA);
        let (roots, warn) =
            postern_tls::anchors::load_roots(&get("tls_CAfile"), &get("tls_CApath"), append);
        for w in warn {
            postern_log::warning(w);
        }
        let tafile = get("tls_trust_anchor_file");
        let ta_roots = if tafile.trim().is_empty() {
            None
        } else {
            Some(Arc::new(load_tafiles(&policy::split_list(&tafile))))
        };
        TlsConf {
            pfx,
            global,
            protocols: get("tls_protocols"),
            mandatory_protocols: get("tls_mandatory_protocols"),
            verify_match: get("tls_verify_cert_match"),
            secure_match: get("tls_secure_cert_match"),
            fingerprint_match: get("tls_fingerprint_cert_match"),
            digest: get("tls_fingerprint_digest"),
            servername: get("tls_servername"),
            loglevel: get("tls_loglevel").trim().parse().unwrap_or(0),
            maps,
            roots: Arc::new(roots),
            ta_roots,
            provider: provider(),
        }
    }

    /// The trust anchors from CAfile/CApath/system store.
    pub fn roots(&self) -> Arc<Vec<TrustAnchor<'static>>> {
        self.roots.clone()
    }

    /// Whether any level can use TLS (for the plaintext-only fast path).
    pub fn never(&self) -> bool {
        self.maps.is_empty() && matches!(self.global, Ok(Level::None))
    }

    fn invalid(&self, what: String) -> Outcome {
        postern_log::warning(what);
        Outcome::defer("4.7.5", "client TLS configuration problem")
    }

    /// The policy of `nexthop` (the request's next hop, verbatim).
    pub fn policy(&self, nexthop: &str) -> Result<Policy, Outcome> {
        let mut level = self
            .global
            .clone()
            .map_err(|e| self.invalid(format!("{}_tls_security_level: {e}", self.pfx)))?;
        let mut entry = None;
        'keys: for key in policy::policy_keys(nexthop) {
            for m in &self.maps {
                match m.lookup(&key) {
                    Ok(Some(v)) => {
                        let where_ = format!("{}, next-hop destination \"{key}\"", m.name());
                        let e = policy::parse_entry(&v)
                            .map_err(|why| self.invalid(format!("{where_}: {why}")))?;
                        for w in &e.ignored {
                            postern_log::warning(format!("{where_}: {w}"));
                        }
                        entry = Some(e);
                        break 'keys;
                    }
                    Ok(None) => {}
                    Err(err) => {
                        return Err(self.invalid(format!(
                            "{}, next-hop destination \"{key}\": policy table lookup error: {err}",
                            m.name()
                        )));
                    }
                }
            }
        }
        let explicit = entry.is_some();
        let e = entry.unwrap_or_default();
        if let Some(l) = e.level {
            level = l;
        }
        let protocols = e.protocols.clone().unwrap_or_else(|| {
            if level == Level::May {
                self.protocols.clone()
            } else {
                self.mandatory_protocols.clone()
            }
        });
        let versions = if level == Level::None {
            Versions {
                tls12: true,
                tls13: true,
            }
        } else {
            policy::parse_protocols(&protocols)
                .map_err(|why| self.invalid(format!("{nexthop}: {why}")))?
        };
        let matches = if !e.matches.is_empty() {
            e.matches.clone()
        } else if level == Level::Verify {
            policy::split_list(&self.verify_match)
        } else if level == Level::Secure {
            policy::split_list(&self.secure_match)
        } else {
            Vec::new()
        };
        let mut fps = Vec::new();
        let mut digest = Digest::Sha256;
        if level == Level::Fingerprint {
            digest = Digest::parse(&self.digest).map_err(|why| {
                self.invalid(format!("{}_tls_fingerprint_digest: {why}", self.pfx))
            })?;
            let list = if e.matches.is_empty() {
                self.fingerprint_match
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            } else {
                e.matches.clone()
            };
            for f in &list {
                match policy::parse_fingerprint(f) {
                    Some(b) => fps.push(b),
                    None => postern_log::warning(format!(
                        "nexthop domain {nexthop}: malformed fingerprint value: {f}"
                    )),
                }
            }
            if fps.is_empty() {
                return Err(self.invalid(format!(
                    "nexthop domain {nexthop}: configured at fingerprint security level, but with no fingerprints to match."
                )));
            }
        }
        let roots = if !e.tafile.is_empty() {
            Arc::new(load_tafiles(&e.tafile))
        } else if let Some(ta) = &self.ta_roots {
            ta.clone()
        } else {
            self.roots.clone()
        };
        let servername = e.servername.clone().or_else(|| {
            let s = self.servername.trim();
            (!s.is_empty()).then(|| s.to_string())
        });
        Ok(Policy {
            level,
            explicit,
            versions,
            matches,
            fingerprints: (digest, fps),
            servername,
            roots,
        })
    }

    /// The TLS of one connection to `host` (port `port`, address family
    /// `v6`) for next-hop domain `domain`; `via_mx`: the host came from an
    /// MX lookup. `Err`: skip this host with that outcome.
    #[allow(clippy::too_many_arguments)]
    pub fn connect(
        &self,
        p: &Policy,
        dns: Option<(&tokio::runtime::Runtime, &postern_dns::Resolver)>,
        domain: &str,
        host: &str,
        port: u16,
        v6: bool,
        via_mx: bool,
        sts: Option<&StsPolicy>,
    ) -> Result<ConnTls, Outcome> {
        let mut level = p.level;
        let mut sni = match p.servername.as_deref() {
            Some("hostname") => Some(host.to_string()),
            Some("nexthop") => Some(domain.to_string()),
            Some(s) => Some(s.to_string()),
            None => None,
        };
        let mut check = match level {
            Level::None | Level::May | Level::Encrypt => Check::None,
            Level::Fingerprint => Check::Fingerprint(p.fingerprints.0, p.fingerprints.1.clone()),
            Level::Verify | Level::Secure => {
                Check::Names(policy::name_rules(&p.matches, host, domain))
            }
            Level::Dane | Level::DaneOnly => {
                let only = level == Level::DaneOnly;
                let state = match dns {
                    Some((rt, r)) => rt.block_on(dane::lookup(r, host, port, v6)),
                    None => DaneState::TempFail(format!("TLSA lookup error for {host}:{port}")),
                };
                match state {
                    DaneState::Usable(tlsa) => {
                        let mut names = vec![NameRule::Exact(norm(host))];
                        let ta = tlsa.iter().any(|t| t.usage == 2);
                        if ta
                            && via_mx
                            && let Some((rt, r)) = dns
                            && rt.block_on(dane::mx_authentic(r, domain))
                        {
                            names.push(NameRule::Exact(norm(domain)));
                        }
                        sni = Some(host.to_string());
                        Check::Dane(DaneCheck { tlsa, names })
                    }
                    DaneState::Unusable if !only => {
                        level = Level::Encrypt;
                        Check::None
                    }
                    DaneState::Unusable => {
                        return Err(Outcome::defer("4.7.5", "TLSA records unusable"));
                    }
                    DaneState::NotFound(_) if !only => {
                        level = Level::May;
                        Check::None
                    }
                    DaneState::NotFound(why) => return Err(Outcome::defer("4.7.5", why)),
                    DaneState::TempFail(why) => return Err(Outcome::defer("4.7.5", why)),
                }
            }
        };
        let mut report_policy = match &check {
            Check::Dane(d) => Some((
                "tlsa".to_string(),
                d.tlsa
                    .iter()
                    .map(|t| {
                        let hex: String = t.data.iter().map(|b| format!("{b:02x}")).collect();
                        format!("{} {} {} {hex}", t.usage, t.selector, t.mtype)
                    })
                    .collect(),
                Vec::new(),
            )),
            _ => None,
        };
        // MTA-STS: only without a table entry and without DANE in effect.
        let mut sts_testing = None;
        if let Some(s) = sts
            && !p.explicit
            && via_mx
            && level <= Level::Encrypt
            && s.mode.applies()
        {
            let listed = s.mx_matches(host);
            report_policy = Some((
                "sts".to_string(),
                s.text.lines().map(|l| l.trim_end().to_string()).collect(),
                s.mx.clone(),
            ));
            if s.mode.enforced() {
                if !listed {
                    return Err(Outcome::defer(
                        "4.7.5",
                        format!("MX host {host} is not listed in the MTA-STS policy of {domain}"),
                    ));
                }
                level = Level::Verify;
                check = Check::Names(vec![NameRule::Exact(norm(host))]);
                sni = Some(host.to_string());
            } else {
                if !listed {
                    postern_log::info(format!(
                        "MTA-STS policy (testing) of {domain}: MX host {host} is not listed"
                    ));
                }
                if matches!(check, Check::None) {
                    check = Check::Names(vec![NameRule::Exact(norm(host))]);
                }
                sts_testing = Some(domain.to_string());
            }
        }
        if level == Level::None {
            return Ok(ConnTls::none());
        }
        let roots =
            if sts_testing.is_some() || (sts.is_some() && level == Level::Verify && !p.explicit) {
                self.roots.clone()
            } else {
                p.roots.clone()
            };
        let verifier = Arc::new(Verifier::new(self.provider.clone(), roots, check));
        let config = postern_tls::client::config(
            &self.provider,
            p.versions.tls12,
            p.versions.tls13,
            verifier.clone(),
            sni.is_some(),
        )
        .map_err(|e| self.invalid(format!("TLS client configuration: {e}")))?;
        Ok(ConnTls {
            level,
            config: Some(config),
            verifier: Some(verifier),
            sni,
            sts_testing,
            report_policy,
        })
    }
}

fn norm(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

/// Trust anchors from `tafile` PEM files (certificates); warnings logged.
fn load_tafiles(files: &[String]) -> Vec<TrustAnchor<'static>> {
    let (anchors, warn) = postern_tls::anchors::from_files(files);
    for w in warn {
        postern_log::warning(w);
    }
    anchors
}

/// Everything one TCP connection needs beyond the agent's settings: the
/// TLS of [`TlsConf::connect`] and the SASL login; `Err`: skip this host.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    agent: &crate::AgentConfig,
    dns: &crate::Dns<'_>,
    p: &Policy,
    nexthop: &str,
    domain: &str,
    host: &str,
    port: u16,
    v6: bool,
    via_mx: bool,
    sts: Option<&StsPolicy>,
) -> Result<crate::session::Settings, Outcome> {
    let mut s = agent.session.clone();
    let r = dns.resolver.map(|r| (dns.rt, r));
    // DANE needs DNSSEC lookups: without DNS (or DNS host lookups), `dane` is `may` and
    // `dane-only` a configuration problem (Postfix's "configured with dnssec lookups
    // disabled").
    let no_dns = agent.dns_disabled || !agent.addresses.lookup.dns;
    let no_dane;
    let p = if no_dns && matches!(p.level, Level::Dane | Level::DaneOnly) {
        postern_log::warning(format!(
            "{nexthop}: {} configured with dnssec lookups disabled",
            p.level.name()
        ));
        if p.level == Level::DaneOnly {
            return Err(Outcome::defer("4.7.5", "client TLS configuration problem"));
        }
        no_dane = Policy {
            level: Level::May,
            ..p.clone()
        };
        &no_dane
    } else {
        p
    };
    let c = agent
        .tls
        .connect(p, r, domain, host, port, v6, via_mx, sts)?;
    s.tls = c.level;
    s.tls_config = c.config;
    s.tls_verifier = c.verifier;
    s.tls_sni = c.sni;
    s.tls_sts_testing = c.sts_testing;
    s.tls_report = match (s.tls_report.take(), c.report_policy) {
        (Some(mut t), Some((policy_type, policy_string, mx_host))) => {
            t.record = postern_auth::report::TlsRecord {
                policy_domain: domain.to_ascii_lowercase(),
                policy_type,
                policy_string,
                mx_host,
                receiving_mx_hostname: host.to_string(),
                ..Default::default()
            };
            Some(t)
        }
        _ => None,
    };
    s.sasl = match &agent.sasl {
        Some(conf) => conf.login(host, port, nexthop, domain)?,
        None => None,
    };
    Ok(s)
}
