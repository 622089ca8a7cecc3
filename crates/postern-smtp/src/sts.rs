//! MTA-STS (RFC 8461): discovery, policy parsing, a persistent cache, and
//! the MX-host check. Postfix has no MTA-STS of its own (it relies on an
//! external policy server through `smtp_tls_policy_maps`); Postern builds
//! it in, off by default.
//!
//! * Discovery: the TXT record `_mta-sts.DOMAIN` (`v=STSv1; id=…;`).
//!   Exactly one such record, else there is no (new) policy.
//! * Fetch ([`crate::https`]): `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`
//!   with a WebPKI-valid certificate, no redirects, status 200, at most
//!   64 KiB, within `smtp_mta_sts_timeout`.
//! * Cache: one file per domain under `smtp_mta_sts_cache_directory`,
//!   written atomically (temporary file, fsync, rename, directory fsync),
//!   kept until `max_age` passes, so it survives restarts. A record whose
//!   `id` equals the cached one is not fetched again. When the TXT lookup or
//!   the fetch fails, an unexpired cached policy stays in force (§5.1).
//! * Policy text: `version: STSv1`, `mode: enforce|testing|none`,
//!   `max_age` (0…31557600 s), `mx:` patterns (`mx.example`, `*.example`
//!   for exactly one more label); other keys ignored; CRLF or LF lines.
//!
//! Security: TXT records, HTTP replies and cache files are untrusted input:
//! bounded, parsed without panics (fuzzed: `mta_sts_policy`); cache file
//! names are built only from validated domain names.
//!
//! Parameters (Postern's own): `smtp_mta_sts_enable` (no),
//! `smtp_mta_sts_cache_directory` (`$data_directory/mta-sts`),
//! `smtp_mta_sts_timeout` (10s).

use postern_config::p;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest policy body accepted.
pub const MAX_POLICY: usize = 64 * 1024;
/// Longest `max_age` (one year, RFC 8461 §3.2).
pub const MAX_AGE: u64 = 31_557_600;

/// A policy's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only to listed MX hosts with valid certificates.
    Enforce,
    /// Report (log) failures only.
    Testing,
    /// No policy.
    None,
}

impl Mode {
    /// The policy does something (enforce or testing).
    pub fn applies(self) -> bool {
        self != Mode::None
    }
    /// Failures stop delivery.
    pub fn enforced(self) -> bool {
        self == Mode::Enforce
    }
}

/// A domain's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsPolicy {
    /// The TXT record's `id`.
    pub id: String,
    /// Mode.
    pub mode: Mode,
    /// `mx:` patterns, lower case.
    pub mx: Vec<String>,
    /// `max_age` in seconds.
    pub max_age: u64,
    /// Unix time until which the policy is valid.
    pub expires: u64,
    /// The policy text as fetched.
    pub text: String,
}

impl StsPolicy {
    /// Whether `host` matches one of the `mx:` patterns.
    pub fn mx_matches(&self, host: &str) -> bool {
        self.mx.iter().any(|p| mx_pattern_matches(p, host))
    }
}

/// `mx.example` matches itself; `*.example` matches one more label.
pub fn mx_pattern_matches(pattern: &str, host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    match p.strip_prefix("*.") {
        Some(suffix) => h
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => !p.is_empty() && h == p,
    }
}

/// Parses a policy body: (mode, mx patterns, max_age).
pub fn parse_policy(body: &[u8]) -> Result<(Mode, Vec<String>, u64), String> {
    if body.len() > MAX_POLICY {
        return Err("policy too large".into());
    }
    let text = std::str::from_utf8(body).map_err(|_| "policy is not UTF-8".to_string())?;
    let (mut version, mut mode, mut max_age) = (None, None, None);
    let mut mx = Vec::new();
    for line in text.split('\n').take(1000) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(format!("malformed policy line \"{}\"", printable(line)));
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "version" if version.is_none() => version = Some(v.to_string()),
            "mode" if mode.is_none() => {
                mode = Some(match v {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    _ => return Err(format!("unknown mode \"{}\"", printable(v))),
                })
            }
            "max_age" if max_age.is_none() => {
                let n: u64 = v
                    .parse()
                    .ok()
                    .filter(|_| v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("invalid max_age \"{}\"", printable(v)))?;
                max_age = Some(n.min(MAX_AGE));
            }
            "mx" if mx.len() < 100 && !v.is_empty() && v.len() <= 255 => {
                mx.push(v.to_ascii_lowercase());
            }
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err("missing or unknown version".into());
    }
    let mode = mode.ok_or("missing mode")?;
    let max_age = max_age.ok_or("missing max_age")?;
    if mode != Mode::None && mx.is_empty() {
        return Err("no mx patterns".into());
    }
    Ok((mode, mx, max_age))
}

/// The `id` of the one `v=STSv1` TXT record among `records`.
pub fn parse_txt(records: &[String]) -> Option<String> {
    let sts: Vec<&String> = records
        .iter()
        .filter(|r| r.trim_start().starts_with("v=STSv1"))
        .collect();
    if sts.len() != 1 {
        return None;
    }
    let mut version_ok = false;
    let mut id = None;
    for field in sts[0].split(';').take(32) {
        let Some((k, v)) = field.split_once('=') else {
            continue;
        };
        match k.trim() {
            "v" => version_ok = v.trim() == "STSv1",
            "id" => {
                let v = v.trim();
                if (1..=32).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    id = Some(v.to_string());
                }
            }
            _ => {}
        }
    }
    if version_ok { id } else { None }
}

fn printable(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// A domain name safe as a file name, or None.
fn cache_name(domain: &str) -> Option<String> {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    let ok = !d.is_empty()
        && d.len() <= 253
        && !d.starts_with('.')
        && !d.contains("..")
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    ok.then_some(d)
}

/// Serializes a policy for the cache.
pub fn cache_encode(p: &StsPolicy) -> String {
    format!("postern-mta-sts 1 {} {}\n{}", p.id, p.expires, p.text)
}

/// Reads a cache file's contents back.
pub fn cache_decode(data: &[u8]) -> Option<StsPolicy> {
    let nl = data.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(data.get(..nl)?).ok()?;
    let mut it = head.split(' ');
    if it.next()? != "postern-mta-sts" || it.next()? != "1" {
        return None;
    }
    let id = it.next()?.to_string();
    let expires: u64 = it.next()?.parse().ok()?;
    let body = data.get(nl + 1..)?;
    let (mode, mx, max_age) = parse_policy(body).ok()?;
    Some(StsPolicy {
        id,
        mode,
        mx,
        max_age,
        expires,
        text: String::from_utf8_lossy(body).into_owned(),
    })
}

/// The MTA-STS machinery of one agent process.
#[derive(Debug, Clone)]
pub struct Sts {
    /// Cache directory.
    pub dir: PathBuf,
    /// Whole-fetch time limit.
    pub timeout: Duration,
}

impl Sts {
    /// From main.cf; None when `smtp_mta_sts_enable` is off.
    pub fn from_config(cfg: &postern_config::Config) -> Option<Sts> {
        if !cfg.bool(p::SMTP_MTA_STS_ENABLE) {
            return None;
        }
        let dir = cfg.str(p::SMTP_MTA_STS_CACHE_DIRECTORY);
        let dir = if dir.trim().is_empty() {
            PathBuf::from(cfg.str(p::DATA_DIRECTORY)).join("mta-sts")
        } else {
            PathBuf::from(dir.trim())
        };
        Some(Sts {
            dir,
            timeout: cfg
                .time(p::SMTP_MTA_STS_TIMEOUT)
                .max(Duration::from_secs(1)),
        })
    }

    fn read_cache(&self, domain: &str) -> Option<StsPolicy> {
        let name = cache_name(domain)?;
        let data = std::fs::read(self.dir.join(name)).ok()?;
        if data.len() > MAX_POLICY + 256 {
            return None;
        }
        cache_decode(&data).filter(|p| p.expires > now())
    }

    fn write_cache(&self, domain: &str, p: &StsPolicy) -> std::io::Result<()> {
        let Some(name) = cache_name(domain) else {
            return Ok(());
        };
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(".{name}.{}", std::process::id()));
        let res = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(cache_encode(p).as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.dir.join(&name))?;
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if res.is_err() {
            let _gone = std::fs::remove_file(&tmp);
        }
        res
    }

    /// The policy in force for `domain` (None: no MTA-STS).
    pub fn policy(
        &self,
        domain: &str,
        rt: &tokio::runtime::Runtime,
        r: &postern_dns::Resolver,
        roots: &std::sync::Arc<Vec<rustls::pki_types::TrustAnchor<'static>>>,
    ) -> Option<StsPolicy> {
        let domain = cache_name(domain)?;
        let cached = self.read_cache(&domain);
        let id = match rt.block_on(r.txt(&format!("_mta-sts.{domain}"))) {
            postern_dns::Lookup::Found(recs) => parse_txt(&recs),
            _ => None,
        };
        let id = match id {
            None => return cached,
            Some(id) if cached.as_ref().is_some_and(|c| c.id == id) => return cached,
            Some(id) => id,
        };
        let host = format!("mta-sts.{domain}");
        let body = match crate::https::get_policy(rt, r, &host, roots, self.timeout) {
            Ok(b) => b,
            Err(why) => {
                postern_log::warning(format!("MTA-STS policy fetch for {domain} failed: {why}"));
                return cached;
            }
        };
        match parse_policy(&body) {
            Ok((mode, mx, max_age)) => {
                let p = StsPolicy {
                    id,
                    mode,
                    mx,
                    max_age,
                    expires: now().saturating_add(max_age),
                    text: String::from_utf8_lossy(&body).into_owned(),
                };
                if let Err(e) = self.write_cache(&domain, &p) {
                    postern_log::warning(format!("MTA-STS cache {}: {e}", self.dir.display()));
                }
                Some(p)
            }
            Err(why) => {
                postern_log::warning(format!("MTA-STS policy of {domain} is invalid: {why}"));
                cached
            }
        }
    }
}

#[cfg(test)]
#[path = "sts_tests.rs"]
mod tests;
