//! ARC sealing in cleanup (RFC 8617, issue 15): mail this server forwards gets one new
//! ARC set (`ARC-Seal`, `ARC-Message-Signature`, `ARC-Authentication-Results`) first in
//! its header, after the milters and after DKIM signing, so that the next hop can trust
//! this server's view of the original authentication. Postfix leaves this to OpenARC as a
//! milter; here it is built in (postern-auth's [`postern_auth::arc`]).
//!
//! * Which mail (`arc_sealing_clients`): `local_forward` (local(8)'s alias, `:include:`
//!   and `.forward` re-injections, which carry the original queue ID as `log_ident` and no
//!   client), `permit_local_submission` (sendmail/pickup, e.g. a list manager),
//!   `permit_mynetworks` (SMTP clients in `mynetworks`, e.g. a list manager re-injecting
//!   over SMTP), `permit_sasl_authenticated`, `static:all` (every message received, as a
//!   forwarding relay). Never bounces and notices.
//! * The key: `arc_seal_key` names a key in `dkim_key_table`
//!   (`domain:selector:/path/to/key.pem`, [`postern_auth::keytable`]); the key file is
//!   read at start-up (before a chroot; the jail keeps that copy) and again when it
//!   changes (rotation without restart).
//! * The AAR: this server's DKIM and ARC results, and SPF and DMARC when the client IP is
//!   known (mail received over SMTP); authserv-id `smtpd_authserv_id` (else
//!   `myhostname`). The chain is verified through `dns_servers`.
//! * A chain that failed (or has 50 sets, or cannot be verified now) is passed on unsealed
//!   with a log line, as OpenARC does: sealing it would only say `cv=fail`.
//!
//! # Security
//!
//! Fail closed: `arc_sealing = yes` with a configuration that cannot work (no or unknown
//! `arc_seal_key`, a key table that does not open, an unknown client word, an unreadable
//! key, a key that is not RSA) defers the mail to seal (`4.7.5`) with a warning saying
//! why. DNS lookups are bounded by the resolver's timeouts. Key files are read by
//! cleanup (`mail_owner`).
//!
//! # Configuration
//!
//! `arc_sealing`, `arc_seal_key`, `arc_sealing_clients`, `dkim_key_table`,
//! `smtpd_authserv_id`, `myhostname`, `mynetworks`, `dns_servers`.

use crate::milter::attr;
use crate::process::Refusal;
use postern_auth::arc::{SealKey, Sealer};
use postern_auth::verify::Context;
use postern_auth::{Key, keytable};
use postern_config::{Config, p};
use postern_ipc::proto::{CleanupRequest, CleanupStatus, cleanup_flags};
use postern_qfile::QueueFile;
use postern_table::{BoxMap, NetworkList};
use std::os::unix::fs::MetadataExt;

thread_local! {
    /// cleanup's sealing state (a single-threaded server; set by [`init`]).
    static STATE: std::cell::RefCell<Arc> = std::cell::RefCell::new(Arc::default());
}

/// Reads the configuration and opens the key table (cleanup's open hook, before a
/// chroot); without it nothing is sealed.
pub fn init(cfg: &Config) {
    let arc = Arc::from_config(cfg);
    STATE.with(|s| *s.borrow_mut() = arc);
}

/// Seals `qf`'s message when `arc_sealing` and `arc_sealing_clients` say so (see the
/// module docs); a configuration that cannot work defers the message.
pub fn seal(req: &CleanupRequest, queue_id: &str, qf: &mut QueueFile) -> Result<(), Refusal> {
    STATE.with(|s| s.borrow_mut().seal(req, queue_id, qf))
}

/// One `arc_sealing_clients` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Forward,
    Local,
    Mynetworks,
    Sasl,
    All,
}

/// ARC sealing state: configuration, the open key table, the runtime and the key.
#[derive(Default)]
pub struct Arc {
    enabled: bool,
    key_name: String,
    keys: Vec<BoxMap>,
    clients: Vec<Client>,
    mynetworks: Option<NetworkList>,
    authserv_id: String,
    error: Option<String>,
    rt: Option<(tokio::runtime::Runtime, Sealer)>,
    /// The key file's (device, inode, size, mtime) and the key made from it.
    key: Option<((u64, u64, u64, i64), SealKey)>,
    /// The file that key was read from.
    key_path: std::path::PathBuf,
}

impl std::fmt::Debug for Arc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arc")
            .field("enabled", &self.enabled)
            .field("clients", &self.clients)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

fn refusal(reason: &str) -> Refusal {
    Refusal {
        status: CleanupStatus::Defer,
        reason: format!("4.7.5 Server configuration error: {reason}"),
    }
}

impl Arc {
    /// Reads the `arc_*` parameters and opens the key table (before a chroot).
    pub fn from_config(cfg: &Config) -> Arc {
        if !cfg.bool(p::ARC_SEALING) {
            return Arc::default();
        }
        let mut errors = Vec::new();
        let mut keys = Vec::new();
        for spec in cfg.list(p::DKIM_KEY_TABLE) {
            match postern_table::open(&spec, &Default::default()) {
                Ok(m) => keys.push(m),
                Err(e) => errors.push(format!("dkim_key_table: {spec}: {e}")),
            }
        }
        let key_name = cfg.str(p::ARC_SEAL_KEY).trim().to_string();
        if key_name.is_empty() || keys.is_empty() {
            errors.push("arc_sealing = yes needs arc_seal_key and dkim_key_table".into());
        }
        let mut clients = Vec::new();
        for w in cfg.list(p::ARC_SEALING_CLIENTS) {
            clients.push(match w.to_ascii_lowercase().as_str() {
                "local_forward" => Client::Forward,
                "permit_local_submission" => Client::Local,
                "permit_mynetworks" => Client::Mynetworks,
                "permit_sasl_authenticated" => Client::Sasl,
                "static:all" => Client::All,
                other => {
                    errors.push(format!("arc_sealing_clients: unknown element {other}"));
                    continue;
                }
            });
        }
        let mynetworks = match clients.contains(&Client::Mynetworks) {
            true => NetworkList::new(&cfg.str(p::MYNETWORKS), &Default::default())
                .map_err(|e| errors.push(format!("mynetworks: {e}")))
                .ok(),
            false => None,
        };
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => match rt.block_on(async { Sealer::from_config(cfg) }) {
                Ok(sealer) => Some((rt, sealer)),
                Err(e) => {
                    errors.push(e.to_string());
                    None
                }
            },
            Err(e) => {
                errors.push(format!("runtime: {e}"));
                None
            }
        };
        let id = cfg.str(p::SMTPD_AUTHSERV_ID);
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        if let Some(e) = &error {
            postern_log::warning(format!("{e}; mail to be ARC-sealed will be deferred"));
        }
        let mut arc = Arc {
            enabled: true,
            key_name,
            keys,
            clients,
            mynetworks,
            authserv_id: if id.trim().is_empty() {
                cfg.str(p::MYHOSTNAME)
            } else {
                id.trim().to_string()
            },
            error,
            rt,
            key: None,
            key_path: Default::default(),
        };
        // Read the key now, before a chroot; a failure is reported per message.
        if arc.error.is_none() && arc.load().is_err() {
            arc.key = None;
        }
        arc
    }

    /// Whether `arc_sealing_clients` covers this request's mail.
    fn eligible(&self, req: &CleanupRequest) -> Result<bool, String> {
        if req.flags & cleanup_flags::BOUNCE != 0 {
            return Ok(false);
        }
        let client = attr(req, "client_address");
        for c in &self.clients {
            let yes = match c {
                Client::All => true,
                Client::Forward => {
                    client.is_none()
                        && attr(req, "origin_uid").is_none()
                        && attr(req, "log_ident").is_some()
                }
                Client::Local => attr(req, "origin_uid").is_some(),
                Client::Sasl => attr(req, "sasl_username").is_some(),
                Client::Mynetworks => match (client.map(str::parse), &self.mynetworks) {
                    (Some(Ok(ip)), Some(n)) => n.matches(ip).map_err(|e| e.to_string())?,
                    _ => false,
                },
            };
            if yes {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The sealing key, loaded again when its file changed.
    fn load(&mut self) -> Result<&SealKey, String> {
        let mut value = None;
        for m in &self.keys {
            if let Some(v) = m.lookup(&self.key_name).map_err(|e| e.to_string())? {
                value = Some(v);
                break;
            }
        }
        let value = value
            .ok_or_else(|| format!("arc_seal_key {} is not in dkim_key_table", self.key_name))?;
        let entry = keytable::parse_entry(&value).map_err(|e| e.to_string())?;
        let md = match std::fs::metadata(&entry.path) {
            Ok(md) => md,
            // In a chroot jail: the key read before the chroot ([`Arc::from_config`]).
            Err(_) if self.key.is_some() && self.key_path == entry.path => {
                return self.key.as_ref().map(|(_, k)| k).ok_or_else(String::new);
            }
            Err(e) => return Err(format!("{}: {e}", entry.path.display())),
        };
        let stamp = (md.dev(), md.ino(), md.size(), md.mtime());
        if self.key.as_ref().is_none_or(|(s, _)| *s != stamp) {
            let key = Key::from_file(&entry.path).map_err(|e| e.to_string())?;
            if key.kind != postern_auth::KeyType::Rsa {
                return Err("arc_seal_key must be an RSA key (RFC 8617: rsa-sha256)".into());
            }
            if entry.domain == "%" {
                return Err("arc_seal_key needs a domain, not %".into());
            }
            self.key = Some((stamp, SealKey::new(&entry.domain, &entry.selector, key)));
            self.key_path = entry.path;
        }
        self.key
            .as_ref()
            .map(|(_, k)| k)
            .ok_or_else(|| "no key".to_string())
    }

    /// Seals `qf`'s message when `arc_sealing` and the clients say so.
    pub fn seal(
        &mut self,
        req: &CleanupRequest,
        queue_id: &str,
        qf: &mut QueueFile,
    ) -> Result<(), Refusal> {
        if !self.enabled {
            return Ok(());
        }
        let fail = |e: &str| {
            postern_log::warning(format!("{queue_id}: ARC sealing: {e}"));
            refusal("ARC sealing")
        };
        if let Some(e) = &self.error {
            return Err(fail(e));
        }
        match self.eligible(req) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => return Err(fail(&e)),
        }
        let ctx = Context {
            authserv_id: self.authserv_id.clone(),
            ip: attr(req, "client_address").and_then(|a| a.parse().ok()),
            helo: attr(req, "helo_name").unwrap_or_default().to_string(),
            sender: req.sender.clone(),
        };
        if let Err(e) = self.load() {
            return Err(fail(&e));
        }
        let (Some((rt, sealer)), Some((_, key))) = (&self.rt, &self.key) else {
            return Err(fail("not initialised"));
        };
        match rt.block_on(sealer.seal(key, &qf.content, &ctx)) {
            Ok(headers) => {
                let mut content = headers.replace("\r\n", "\n").into_bytes();
                content.extend_from_slice(&qf.content);
                qf.content = content;
            }
            Err(e @ postern_auth::AuthError::NotSealed(_)) => {
                postern_log::info(format!("{queue_id}: not ARC-sealed: {e}"))
            }
            Err(e) => postern_log::warning(format!("{queue_id}: not ARC-sealed: {e}")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(flags: u32, attrs: &[(&str, &str)]) -> CleanupRequest {
        CleanupRequest {
            flags,
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..CleanupRequest::default()
        }
    }

    #[test]
    fn which_mail() {
        let forward = req(cleanup_flags::BOUNCE_ON_REJECT, &[("log_ident", "ABC")]);
        let pickup = req(cleanup_flags::BOUNCE_ON_REJECT, &[("origin_uid", "1000")]);
        let smtp = req(0, &[("client_address", "127.0.0.1")]);
        let remote = req(0, &[("client_address", "192.0.2.1")]);
        let bounce = req(cleanup_flags::BOUNCE, &[("log_ident", "ABC")]);
        let mut a = Arc {
            clients: vec![Client::Forward],
            ..Arc::default()
        };
        let yes = |a: &Arc, r: &CleanupRequest| a.eligible(r).unwrap();
        assert!(yes(&a, &forward));
        assert!(!yes(&a, &pickup) && !yes(&a, &smtp) && !yes(&a, &bounce));
        a.clients = vec![Client::Mynetworks, Client::Local];
        a.mynetworks = NetworkList::new("127.0.0.0/8", &Default::default()).ok();
        assert!(yes(&a, &smtp) && yes(&a, &pickup));
        assert!(!yes(&a, &remote) && !yes(&a, &forward));
        a.clients = vec![Client::All];
        assert!(yes(&a, &remote) && !yes(&a, &bounce));
    }

    #[test]
    fn disabled_and_broken_configuration() {
        let mut off = Arc::default();
        let mut qf = QueueFile::default();
        assert!(off.seal(&req(0, &[]), "Q", &mut qf).is_ok());
        let text = "arc_sealing = yes\narc_sealing_clients = bogus\n";
        let cfg = Config::new(postern_config::parse_main_cf(text).unwrap());
        let mut bad = Arc::from_config(&cfg);
        let r = bad.seal(&req(0, &[]), "Q", &mut qf);
        assert!(
            matches!(r, Err(ref f) if f.status == CleanupStatus::Defer),
            "{r:?}"
        );
    }
}
