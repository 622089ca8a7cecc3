//! Address tables as cleanup uses them: a named list of lookup tables
//! (`canonical_maps = hash:/a, regexp:/b`), Postfix's address search order
//! ([`postern_table::find_address`]), and the result handling of Postfix's
//! `mail_addr_map`: a result `@domain` keeps the user part, a result may name
//! several addresses, and an unmatched extension is propagated when asked.
//!
//! Also the per-message [`Trail`]: the log lines a message's processing produced
//! and its first failure, so the rewriting code stays free of I/O.
//!
//! # Security
//! Lookup keys come from the network; tables never interpret them as patterns
//! (pattern tables match them). Results are bounded by the table layer.
//!
//! # Configuration
//! Any `*_maps` parameter, `recipient_delimiter`, `myorigin`, `mydestination`,
//! `inet_interfaces`, `proxy_interfaces`, `parent_domain_matches_subdomains`.

use crate::process::Refusal;
use postern_config::{Config, p};
use postern_ipc::proto::CleanupStatus;
use postern_table::{BoxMap, DomainList, TableError};

/// A named list of open tables (the value of one `*_maps` parameter).
#[derive(Debug, Default)]
pub struct MapList {
    /// The parameter name, for logs.
    pub title: String,
    /// The tables, in search order.
    pub maps: Vec<BoxMap>,
}

impl MapList {
    /// Opens every table `param` names. A table that cannot be opened is
    /// reported in `errors` (cleanup then defers all mail: it must not bounce
    /// or lose mail because of a configuration mistake).
    pub fn open(cfg: &Config, param: &str, errors: &mut Vec<String>) -> MapList {
        let mut maps = Vec::new();
        for spec in cfg.get_list(param) {
            match postern_table::open(&spec, &Default::default()) {
                Ok(m) => {
                    for w in m.warnings() {
                        postern_log::warning(format!("{param}: {w}"));
                    }
                    maps.push(m)
                }
                Err(e) => errors.push(format!("{param}: {spec}: {e}")),
            }
        }
        MapList {
            title: param.to_string(),
            maps,
        }
    }

    /// A list from already open tables (tests).
    pub fn from_maps(title: &str, maps: Vec<BoxMap>) -> MapList {
        MapList {
            title: title.to_string(),
            maps,
        }
    }

    /// Whether the parameter named no table.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// Looks a whole string up (header and body checks): every table, full key.
    pub fn find_string(&self, key: &str) -> Result<Option<String>, TableError> {
        for m in &self.maps {
            if let Some(v) = m.lookup(key)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
}

/// What decides the address search: the extension delimiter and which domains
/// are "local" for bare `user` keys.
#[derive(Debug, Default)]
pub struct AddrEnv {
    /// `recipient_delimiter`.
    pub delimiter: String,
    /// `$myorigin`, lower case.
    pub myorigin: String,
    /// `$mydestination`; `Err` (the open error) when it names a table that cannot be
    /// opened: every question that needs it then fails (defer), never "not local".
    pub mydestination: Option<Result<DomainList, String>>,
    /// `[address]` forms of `$inet_interfaces` and `$proxy_interfaces`.
    pub interfaces: Vec<String>,
}

impl AddrEnv {
    /// Reads the settings.
    pub fn from_config(cfg: &Config) -> AddrEnv {
        let pdms = cfg.str(p::PARENT_DOMAIN_MATCHES_SUBDOMAINS);
        let dest = cfg.str(p::MYDESTINATION);
        let mydestination = if dest.trim().is_empty() {
            None
        } else {
            let parent = postern_table::parent_matches("mydestination", &pdms);
            match DomainList::new(&dest, parent, &Default::default()) {
                Ok(l) => Some(Ok(l)),
                Err(e) => {
                    postern_log::warning(format!("mydestination: {e}"));
                    Some(Err(e.to_string()))
                }
            }
        };
        let mut interfaces = Vec::new();
        for param in [p::INET_INTERFACES, p::PROXY_INTERFACES] {
            for a in cfg.list(param) {
                if a.parse::<std::net::IpAddr>().is_ok() {
                    interfaces.push(format!("[{a}]"));
                }
            }
        }
        AddrEnv {
            delimiter: cfg.str(p::RECIPIENT_DELIMITER),
            myorigin: cfg.str(p::MYORIGIN).to_ascii_lowercase(),
            mydestination,
            interfaces,
        }
    }

    /// Whether `domain` is `$myorigin`, in `$mydestination`, or one of our
    /// interface addresses (Postfix's `resolve_local`). `Err` when `$mydestination`
    /// cannot be opened or queried: the caller defers, as Postfix's cleanup does.
    pub fn is_local(&self, domain: &str) -> Result<bool, TableError> {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        if d.is_empty() || d == self.myorigin {
            return Ok(true);
        }
        if self.interfaces.iter().any(|i| i.eq_ignore_ascii_case(&d)) {
            return Ok(true);
        }
        match &self.mydestination {
            None => Ok(false),
            Some(Ok(l)) => l.matches(&d),
            Some(Err(e)) => Err(TableError::Lookup {
                table: "mydestination".into(),
                message: e.clone(),
            }),
        }
    }
}

/// The log lines and the first failure of one message's processing.
#[derive(Debug, Default)]
pub struct Trail {
    /// `(is_warning, text)` in order.
    pub logs: Vec<(bool, String)>,
    /// Set by the first problem that stops the message.
    pub fail: Option<Refusal>,
}

impl Trail {
    /// Records an info line.
    pub fn info(&mut self, text: String) {
        self.logs.push((false, text));
    }

    /// Records a warning line.
    pub fn warn(&mut self, text: String) {
        self.logs.push((true, text));
    }

    /// Records a failure unless an earlier one is kept. A temporary failure
    /// wins over a permanent one, as Postfix's CLEANUP_STAT_DEFER does.
    pub fn fail(&mut self, status: CleanupStatus, reason: impl Into<String>) {
        let replace = match &self.fail {
            None => true,
            Some(old) => old.status != CleanupStatus::Defer && status == CleanupStatus::Defer,
        };
        if replace {
            self.fail = Some(Refusal {
                status,
                reason: reason.into(),
            });
        }
    }

    /// A table could not answer: defer the message, as Postfix's
    /// CLEANUP_STAT_WRITE (`451 4.3.0 Error: queue file write error`).
    pub fn table_error(&mut self, what: String) {
        self.warn(format!("{what} -- message not accepted, try again later"));
        self.fail(CleanupStatus::Defer, "4.3.0 Error: queue file write error");
    }

    /// Whether processing has failed.
    pub fn failed(&self) -> bool {
        self.fail.is_some()
    }
}

/// Inserts an extension (`+ext`) before the `@` of an address.
pub fn add_extension(addr: &str, ext: &str) -> String {
    match addr.rfind('@') {
        Some(at) => format!("{}{ext}{}", &addr[..at], &addr[at..]),
        None => format!("{addr}{ext}"),
    }
}

/// Postfix's `mail_addr_map`: the addresses `addr` maps to, or `None`.
/// `Err` when a table failed or the result holds no address (defer).
pub fn map_address(
    list: &MapList,
    addr: &str,
    propagate: bool,
    env: &AddrEnv,
) -> Result<Option<Vec<String>>, TableError> {
    // Whether the address's domain is local decides the bare-local-part keys; a
    // mydestination that cannot be read fails the lookup instead of skipping them.
    let local = match addr.rfind('@') {
        Some(at) => env.is_local(&addr[at + 1..])?,
        None => false,
    };
    let is_local = |_: &str| local;
    let Some(m) = postern_table::find_address(&list.maps, addr, &env.delimiter, &is_local)? else {
        return Ok(None);
    };
    let value = m.value.trim();
    let value = if value.starts_with('@') {
        let local = addr.rfind('@').map_or(addr, |at| &addr[..at]);
        let user = match &m.extension {
            Some(e) => local.strip_suffix(e.as_str()).unwrap_or(local),
            None => local,
        };
        format!("{}{value}", postern_mail::address::quote_local_part(user))
    } else {
        value.to_string()
    };
    let mut out = postern_mail::address::parse_address_list(&value);
    if out.is_empty() {
        return Err(TableError::Lookup {
            table: list.title.clone(),
            message: format!("lookup of {addr} returns non-address result \"{value}\""),
        });
    }
    if propagate && let Some(ext) = &m.extension {
        out = out.iter().map(|a| add_extension(a, ext)).collect();
    }
    Ok(Some(out))
}

/// Postfix's one-to-one mapping (canonical maps): applied until the address
/// maps to itself, at most 10 times. The first address of a multi-valued
/// result is used (with a warning).
pub fn map11(
    list: &MapList,
    addr: &str,
    propagate: bool,
    env: &AddrEnv,
    qid: &str,
    trail: &mut Trail,
) -> String {
    let mut cur = addr.to_string();
    for _ in 0..10 {
        match map_address(list, &cur, propagate, env) {
            Ok(Some(v)) => {
                if v.len() > 1 {
                    trail.warn(format!(
                        "{qid}: multi-valued {} entry for {cur}",
                        list.title
                    ));
                }
                let next = v.into_iter().next().unwrap_or_default();
                let same = next.eq_ignore_ascii_case(&cur);
                cur = next;
                if same {
                    return cur;
                }
            }
            Ok(None) => return cur,
            Err(e) => {
                trail.table_error(format!(
                    "{qid}: {} map lookup problem for {cur} ({e})",
                    list.title
                ));
                return cur;
            }
        }
    }
    trail.warn(format!(
        "{qid}: unreasonable {} map nesting for {addr} -- message not accepted, try again later",
        list.title
    ));
    cur
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn list(spec: &str) -> MapList {
        MapList::from_maps(
            "canonical_maps",
            vec![postern_table::open(spec, &Default::default()).unwrap()],
        )
    }

    pub(crate) fn env() -> AddrEnv {
        AddrEnv {
            delimiter: "+".into(),
            myorigin: "example.org".into(),
            mydestination: Some(Ok(DomainList::new(
                "localhost, example.org",
                false,
                &Default::default(),
            )
            .unwrap())),
            interfaces: vec!["[127.0.0.1]".into()],
        }
    }

    /// A mydestination that cannot be opened fails a bare-local-part lookup (defer)
    /// instead of answering "not local" and skipping the key.
    #[test]
    fn broken_mydestination_fails_the_lookup() {
        let l = list("inline:{ joe=Joe.Doe@example.org }");
        let mut e = env();
        e.mydestination = Some(Err("hash:/nonexistent/x: cannot open".into()));
        assert!(map_address(&l, "joe@mx.example", true, &e).is_err());
        // An address without a domain, or with $myorigin, needs no list.
        assert!(map_address(&l, "joe@example.org", true, &e).is_ok());
    }

    #[test]
    fn results_and_extensions() {
        let l = list(
            "inline:{ joe=Joe.Doe@example.org, @old.example=@new.example, {multi@x=a@x, b@x}, {bad@x=,}, {lc@x=\"a b\"@x} }",
        );
        let e = env();
        let m = |a: &str, p: bool| map_address(&l, a, p, &e);
        assert_eq!(
            m("joe@example.org", true).unwrap(),
            Some(vec!["Joe.Doe@example.org".into()])
        );
        assert_eq!(
            m("joe+x@localhost", true).unwrap(),
            Some(vec!["Joe.Doe+x@example.org".into()])
        );
        assert_eq!(
            m("joe+x@localhost", false).unwrap(),
            Some(vec!["Joe.Doe@example.org".into()])
        );
        assert_eq!(
            m("ann@old.example", true).unwrap(),
            Some(vec!["ann@new.example".into()])
        );
        assert_eq!(m("joe@elsewhere.example", true).unwrap(), None);
        assert!(m("bad@x", true).is_err());
        assert_eq!(m("lc@x", true).unwrap(), Some(vec!["a b@x".into()]));
    }

    #[test]
    fn map11_stops_at_fixpoint_and_reports_errors() {
        let l = list("inline:{ a@x=b@x, b@x=c@x, c@x=c@x }");
        let mut t = Trail::default();
        assert_eq!(map11(&l, "a@x", true, &env(), "Q", &mut t), "c@x");
        assert!(!t.failed());
        let f = MapList::from_maps(
            "canonical_maps",
            vec![postern_table::open("fail:x", &Default::default()).unwrap()],
        );
        assert_eq!(map11(&f, "a@x", true, &env(), "Q", &mut t), "a@x");
        assert_eq!(t.fail.unwrap().status, CleanupStatus::Defer);
    }
}
