//! DKIM signing in cleanup (issue 15): after the milters, as the last change before the
//! queue file is written, cleanup adds one `DKIM-Signature:` header per key the signing
//! table names for the message's author (RFC 6376, RSA and Ed25519 of RFC 8463), first in
//! the header. Postfix leaves this to OpenDKIM as a milter; the tables follow OpenDKIM's
//! `SigningTable`/`KeyTable` with Postfix's lookup tables and search order.
//!
//! * Which mail: new mail (not bounces or notices) whose client matches
//!   `dkim_signing_clients`: `permit_mynetworks` (`client_address` in `mynetworks`),
//!   `permit_sasl_authenticated` (a SASL login), `permit_local_submission` (sendmail/pickup:
//!   the request carries the submitter's `origin_uid`), `static:all`; not when
//!   `receive_override_options` has `no_milters` (as with OpenDKIM as a milter, the
//!   re-injection service after a content filter does not sign again).
//! * Which keys: the first `From:` address is looked up in `dkim_signing_table` in
//!   access(5) order (`user+ext@domain`, `user@domain`, `domain` and its parents —
//!   `parent_domain_matches_subdomains` as for `smtpd_access_maps` — `user@`); the result
//!   is one or more key names (comma/space separated), each looked up whole in
//!   `dkim_key_table` as `domain:selector:/path/to/key.pem` (`%` as the domain = the From
//!   domain). No From header or no match: the message is not signed.
//! * Key rotation without restart: a key file is read when first used and again whenever
//!   it changes (device, inode, size or modification time); a changed table file restarts
//!   cleanup between requests as any table does. A chrooted cleanup reads the key files
//!   its key tables list before entering the jail ([`Dkim::preload`]) and uses those
//!   copies when the paths are out of reach; a replaced key then takes effect with the
//!   next cleanup process (`max_use`, `max_idle`, a table change or `postern reload`).
//!
//! # Security
//!
//! Fail closed: a signing configuration that cannot work (a table that does not open, a
//! bad `dkim_canonicalization`, a key name without a key, a key that cannot be read) defers
//! the message (`4.7.5`) with a warning that says why; nothing is sent unsigned that the
//! tables say must be signed. A message over postern-auth's size bounds is queued unsigned
//! with a warning (deferring it would never end). Key files are read by cleanup (the
//! `mail_owner` account; inside the jail when cleanup is chrooted), at most 64 KiB.
//!
//! # Configuration
//!
//! `dkim_signing_table`, `dkim_key_table`, `dkim_signing_clients`, `dkim_signed_headers`,
//! `dkim_oversign_headers`, `dkim_canonicalization`, `mynetworks`, `recipient_delimiter`,
//! `parent_domain_matches_subdomains`.

use crate::milter::attr;
use crate::process::Refusal;
use postern_auth::Key;
use postern_auth::sign::{Canon, Signer};
use postern_config::{Config, p};
use postern_ipc::proto::{CleanupRequest, CleanupStatus, cleanup_flags};
use postern_qfile::QueueFile;
use postern_table::{BoxMap, NetworkList};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One `dkim_signing_clients` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Mynetworks,
    Sasl,
    Local,
    All,
}

/// A key file's identity: device, inode, size, modification time (s, ns).
type Stamp = (u64, u64, u64, i64, i64);

/// A loaded key and the signer made from it.
struct Cached {
    stamp: Stamp,
    signer: Signer,
}

/// The signing configuration with its tables open and the keys loaded so far.
pub struct Dkim {
    /// `dkim_signing_table` is set (even when a table failed to open).
    configured: bool,
    signing: Vec<BoxMap>,
    keys: Vec<BoxMap>,
    clients: Vec<Client>,
    mynetworks: Option<NetworkList>,
    headers: Vec<String>,
    canon: (Canon, Canon),
    delimiter: String,
    parent_matches: bool,
    /// Why signing cannot work (every message to sign is then deferred).
    error: Option<String>,
    cache: HashMap<String, Cached>,
    /// Key files read before a chroot ([`Dkim::preload`]), by path: used when the path
    /// cannot be reached from inside the jail.
    preloaded: HashMap<PathBuf, Vec<u8>>,
}

impl std::fmt::Debug for Dkim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dkim")
            .field("signing", &self.signing)
            .field("clients", &self.clients)
            .field("error", &self.error)
            .finish()
    }
}

impl Default for Dkim {
    /// No signing.
    fn default() -> Dkim {
        Dkim {
            configured: false,
            signing: Vec::new(),
            keys: Vec::new(),
            clients: Vec::new(),
            mynetworks: None,
            headers: Vec::new(),
            canon: (Canon::Relaxed, Canon::Relaxed),
            delimiter: String::new(),
            parent_matches: false,
            error: None,
            cache: HashMap::new(),
            preloaded: HashMap::new(),
        }
    }
}

fn words(v: &str) -> impl Iterator<Item = &str> {
    v.split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
}

fn open_maps(cfg: &Config, param: &str, errors: &mut Vec<String>) -> Vec<BoxMap> {
    let mut out = Vec::new();
    for spec in cfg.get_list(param) {
        match postern_table::open(&spec, &Default::default()) {
            Ok(m) => out.push(m),
            Err(e) => errors.push(format!("{param}: {spec}: {e}")),
        }
    }
    out
}

impl Dkim {
    /// Reads the `dkim_*` parameters and opens the tables (before a chroot).
    pub fn from_config(cfg: &Config) -> Dkim {
        let mut errors = Vec::new();
        let signing = open_maps(cfg, "dkim_signing_table", &mut errors);
        let keys = open_maps(cfg, "dkim_key_table", &mut errors);
        if !signing.is_empty() && keys.is_empty() && errors.is_empty() {
            errors.push("dkim_signing_table is set but dkim_key_table is empty".into());
        }
        let mut clients = Vec::new();
        for w in words(&cfg.str(p::DKIM_SIGNING_CLIENTS)) {
            clients.push(match w.to_ascii_lowercase().as_str() {
                "permit_mynetworks" => Client::Mynetworks,
                "permit_sasl_authenticated" => Client::Sasl,
                "permit_local_submission" => Client::Local,
                "static:all" => Client::All,
                other => {
                    errors.push(format!("dkim_signing_clients: unknown element {other}"));
                    continue;
                }
            });
        }
        let canon_text = cfg.str(p::DKIM_CANONICALIZATION);
        let canon = Canon::parse_pair(canon_text.trim()).unwrap_or_else(|| {
            errors.push(format!(
                "dkim_canonicalization: {canon_text}: expected simple or relaxed, e.g. relaxed/relaxed"
            ));
            (Canon::Relaxed, Canon::Relaxed)
        });
        let mut headers: Vec<String> = words(&cfg.str(p::DKIM_SIGNED_HEADERS))
            .map(str::to_ascii_lowercase)
            .collect();
        if headers.is_empty() {
            errors.push("dkim_signed_headers is empty (From must be signed)".into());
        }
        headers.extend(words(&cfg.str(p::DKIM_OVERSIGN_HEADERS)).map(str::to_ascii_lowercase));
        let mynetworks = clients
            .contains(&Client::Mynetworks)
            .then(|| NetworkList::new(&cfg.str(p::MYNETWORKS), &Default::default()))
            .transpose()
            .unwrap_or_else(|e| {
                errors.push(format!("mynetworks: {e}"));
                None
            });
        let pdms = cfg.str(p::PARENT_DOMAIN_MATCHES_SUBDOMAINS);
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        if let (Some(e), false) = (&error, cfg.list(p::DKIM_SIGNING_TABLE).is_empty()) {
            postern_log::warning(format!("{e}; mail to be DKIM-signed will be deferred"));
        }
        Dkim {
            configured: !cfg.list(p::DKIM_SIGNING_TABLE).is_empty(),
            signing,
            keys,
            clients,
            mynetworks,
            headers,
            canon,
            delimiter: cfg.str(p::RECIPIENT_DELIMITER),
            parent_matches: postern_table::parent_matches("smtpd_access_maps", &pdms),
            error,
            cache: HashMap::new(),
            preloaded: HashMap::new(),
        }
    }

    /// Reads every key file the key tables list (tables that can list their records:
    /// texthash, inline, hash, …), for a cleanup about to enter its chroot jail, where
    /// those paths are usually out of reach. Unreadable files are skipped (the message
    /// that needs one is deferred then).
    pub fn preload(&mut self) {
        for m in &self.keys {
            let Ok(Some(records)) = m.sequence() else {
                continue;
            };
            for (_, spec) in records {
                let Some(path) = spec.splitn(3, ':').nth(2).map(|p| PathBuf::from(p.trim())) else {
                    continue;
                };
                let small = std::fs::metadata(&path)
                    .is_ok_and(|m| m.len() <= postern_auth::keys::MAX_KEY_FILE);
                if let (true, Ok(pem)) = (small, std::fs::read(&path)) {
                    self.preloaded.insert(path, pem);
                }
            }
        }
    }

    /// Whether `dkim_signing_clients` allows signing this request's mail.
    fn eligible(&self, req: &CleanupRequest) -> Result<bool, String> {
        // As OpenDKIM behind Postfix: `receive_override_options = no_milters` (the
        // re-injection service after a content filter) signs nothing, so mail is signed once.
        if req.flags & (cleanup_flags::BOUNCE | cleanup_flags::NO_MILTERS) != 0 {
            return Ok(false);
        }
        for c in &self.clients {
            let yes = match c {
                Client::All => true,
                Client::Sasl => attr(req, "sasl_username").is_some(),
                Client::Local => attr(req, "origin_uid").is_some(),
                Client::Mynetworks => match (
                    &self.mynetworks,
                    attr(req, "client_address").and_then(|a| a.parse().ok()),
                ) {
                    (Some(n), Some(ip)) => n.matches(ip).map_err(|e| format!("mynetworks: {e}"))?,
                    _ => false,
                },
            };
            if yes {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The key names the signing table gives for `from`.
    fn key_names(&self, from: &str) -> Result<Vec<String>, String> {
        for m in &self.signing {
            let found = postern_table::lookup_address(
                m.as_ref(),
                from,
                &self.delimiter,
                self.parent_matches,
            )
            .map_err(|e| format!("dkim_signing_table: {e}"))?;
            if let Some((v, _)) = found {
                return Ok(words(&v).map(String::from).collect());
            }
        }
        Ok(Vec::new())
    }

    /// The `domain:selector:path` the key table has for `name`.
    fn key_spec(&self, name: &str) -> Result<String, String> {
        for m in &self.keys {
            if let Some(v) = m.lookup(name).map_err(|e| format!("dkim_key_table: {e}"))? {
                return Ok(v.trim().to_string());
            }
        }
        Err(format!("dkim_key_table: no key named {name}"))
    }

    /// Loads (or reloads, when its file changed) the signer for a key-table value;
    /// returns its cache key.
    fn load(&mut self, spec: &str, from_domain: &str) -> Result<String, String> {
        let mut parts = spec.splitn(3, ':');
        let (domain, selector, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(d), Some(s), Some(p)) if !d.is_empty() && !s.is_empty() && !p.is_empty() => {
                (d, s, Path::new(p))
            }
            _ => {
                return Err(format!(
                    "dkim_key_table: {spec}: expected domain:selector:/path/to/key"
                ));
            }
        };
        let domain = if domain == "%" { from_domain } else { domain };
        let cache_key = format!("{domain}:{selector}:{}", path.display());
        let (stamp, preloaded) = match (std::fs::metadata(path), self.preloaded.get(path)) {
            (Ok(meta), _) => (
                (
                    meta.dev(),
                    meta.ino(),
                    meta.size(),
                    meta.mtime(),
                    meta.mtime_nsec(),
                ),
                None,
            ),
            // In the jail: the copy read before the chroot (a new process reads it again).
            (Err(_), Some(pem)) => ((0, 0, 0, 0, 0), Some(pem)),
            (Err(e), None) => return Err(format!("{}: {e}", path.display())),
        };
        let fresh = self.cache.get(&cache_key).is_some_and(|c| c.stamp == stamp);
        if !fresh {
            let key = match preloaded {
                Some(pem) => Key::from_pem(pem).map_err(|e| format!("{}: {e}", path.display())),
                None => Key::from_file(path).map_err(|e| e.to_string()),
            }?;
            let signer = Signer::with(domain, selector, key, &self.headers, self.canon);
            self.cache
                .insert(cache_key.clone(), Cached { stamp, signer });
        }
        Ok(cache_key)
    }

    /// Signs the queue file's content when the configuration says so (see the module
    /// docs). `Err` = defer the message (logged).
    pub fn sign(
        &mut self,
        req: &CleanupRequest,
        queue_id: &str,
        qf: &mut QueueFile,
    ) -> Result<(), Refusal> {
        if !self.configured {
            return Ok(());
        }
        match self.try_sign(req, queue_id, qf) {
            Ok(()) => Ok(()),
            Err(e) => {
                postern_log::warning(format!("{queue_id}: DKIM signing: {e}"));
                Err(Refusal {
                    status: CleanupStatus::Defer,
                    reason: "4.7.5 Error: cannot DKIM-sign the message".into(),
                })
            }
        }
    }

    fn try_sign(
        &mut self,
        req: &CleanupRequest,
        queue_id: &str,
        qf: &mut QueueFile,
    ) -> Result<(), String> {
        if !self.eligible(req)? {
            return Ok(());
        }
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let Some(from) = author(&qf.content) else {
            return Ok(());
        };
        let names = self.key_names(&from)?;
        if names.is_empty() {
            return Ok(());
        }
        let from_domain = from.rsplit_once('@').map_or("", |(_, d)| d).to_string();
        let specs = names
            .iter()
            .map(|n| self.key_spec(n))
            .collect::<Result<Vec<_>, _>>()?;
        let loaded = specs
            .iter()
            .map(|s| self.load(s, &from_domain))
            .collect::<Result<Vec<_>, _>>()?;
        let signers: Vec<&Signer> = loaded
            .iter()
            .filter_map(|k| self.cache.get(k).map(|c| &c.signer))
            .collect();
        let headers = match postern_auth::sign(&qf.content, &signers) {
            Ok(h) => h,
            Err(postern_auth::AuthError::TooLarge(e)) => {
                postern_log::warning(format!("{queue_id}: not DKIM-signed: {e}"));
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        };
        for s in &signers {
            let (d, sel) = s.domain_selector();
            postern_log::info(format!(
                "{queue_id}: DKIM-Signature field added (s={sel}, d={d})"
            ));
        }
        let mut content = headers.replace("\r\n", "\n").into_bytes();
        content.extend_from_slice(&qf.content);
        qf.content = content;
        Ok(())
    }
}

/// The first address of the first `From:` header, lower case.
fn author(content: &[u8]) -> Option<String> {
    let f = postern_mail::header::find(content, "From")?;
    postern_mail::address::parse_address_list(&f.value_string())
        .into_iter()
        .next()
        .filter(|a| !a.is_empty())
        .map(|a| a.to_ascii_lowercase())
}

#[cfg(test)]
#[path = "dkim_tests.rs"]
mod tests;
