//! Where a recipient goes (Postfix's address classes) and whether it is listed.
//!
//! Before classifying, the address is rewritten the way Postfix's resolver does, which is
//! what defeats the classic relay tricks: a domain-less address gets `@$myorigin`; while
//! the domain is local it is stripped and the local part is looked at again — a quoted
//! `"u@d"` local part is the address `u@d`, `a!b` is `b@a` (`swap_bangpath`), `u%d` is
//! `u@d` (`allow_percent_hack`, last `%` first). A trailing dot on the domain is ignored.

use super::PolicyError;
use super::compile::Table;
use postern_config::Config;
use postern_config::split_list;
use postern_table::{DomainList, NetworkList, OpenOptions, parent_matches};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Postfix's address classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Local,
    VirtualAlias,
    VirtualMailbox,
    Relay,
    Default,
}

/// A resolved address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub class: Class,
    /// `local@domain` after rewriting, domain lower case without trailing dot.
    pub local: String,
    pub domain: String,
}

impl Resolved {
    /// The local part carries sender-specified routing (`u%d`, `d!u`, `"u@d"`).
    pub(crate) fn routed(&self) -> bool {
        self.local.contains(['@', '%', '!'])
    }
}

/// A domain match list whose tables may have failed to open.
#[derive(Debug)]
struct Domains(Result<DomainList, String>);

impl Domains {
    fn new(cfg: &Config, param: &str) -> Domains {
        let pm = parent_matches(param, &cfg.get("parent_domain_matches_subdomains"));
        Domains(
            DomainList::new(&cfg.get(param), pm, &OpenOptions::default()).map_err(|e| {
                postern_log::warning(format!("{param}: {e}"));
                format!("{param}: {e}")
            }),
        )
    }

    fn matches(&self, domain: &str) -> Result<bool, String> {
        match &self.0 {
            Ok(list) => list.matches(domain).map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        }
    }
}

/// The tables of a `*_maps` parameter.
#[derive(Debug)]
struct Maps(Vec<Table>);

impl Maps {
    fn new(cfg: &Config, param: &str) -> Maps {
        Maps(cfg.get_list(param).iter().map(|s| Table::open(s)).collect())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any key is found in any table.
    fn any(&self, keys: &[String]) -> Result<bool, String> {
        for table in &self.0 {
            let map = match table {
                Table::Open(m) => m,
                Table::Broken { name, error } => return Err(format!("{name}: {error}")),
            };
            for key in keys {
                if map
                    .lookup(key)
                    .map_err(|e| format!("{}: {e}", map.name()))?
                    .is_some()
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// Address classification and recipient validation.
#[derive(Debug)]
pub(crate) struct Resolver {
    mydestination: Domains,
    virtual_alias_domains: Domains,
    virtual_mailbox_domains: Domains,
    relay_domains: Domains,
    local_addrs: Vec<IpAddr>,
    myorigin: String,
    append_at_myorigin: bool,
    swap_bangpath: bool,
    percent_hack: bool,
    dequoted: bool,
    delimiter: String,
    local_recipient_maps: Option<Maps>,
    virtual_alias_maps: Maps,
    virtual_mailbox_maps: Maps,
    relay_recipient_maps: Maps,
}

fn interface_addrs(value: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for word in split_list(value) {
        match word.to_ascii_lowercase().as_str() {
            "all" | "loopback-only" | "localhost" => {
                out.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
                out.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
            }
            w => {
                let w = w.trim_start_matches('[').trim_end_matches(']');
                if let Ok(ip) = w.parse() {
                    out.push(ip);
                }
            }
        }
    }
    out
}

impl Resolver {
    pub(crate) fn from_config(cfg: &Config) -> Resolver {
        let b = |n: &str, d: bool| cfg.get_bool(n).unwrap_or(d);
        let mut local_addrs = interface_addrs(&cfg.get("inet_interfaces"));
        local_addrs.extend(interface_addrs(&cfg.get("proxy_interfaces")));
        let lrm = Maps::new(cfg, "local_recipient_maps");
        let lrm_broken = lrm.0.iter().any(|t| matches!(t, Table::Broken { .. }));
        if lrm_broken {
            postern_log::warning(
                "local_recipient_maps: a table is unavailable; \
                 local recipients are not checked",
            );
        }
        Resolver {
            mydestination: Domains::new(cfg, "mydestination"),
            virtual_alias_domains: Domains::new(cfg, "virtual_alias_domains"),
            virtual_mailbox_domains: Domains::new(cfg, "virtual_mailbox_domains"),
            relay_domains: Domains::new(cfg, "relay_domains"),
            local_addrs,
            myorigin: cfg.get("myorigin").to_ascii_lowercase(),
            append_at_myorigin: b("append_at_myorigin", true),
            swap_bangpath: b("swap_bangpath", true),
            percent_hack: b("allow_percent_hack", true),
            dequoted: b("resolve_dequoted_address", true),
            delimiter: cfg.get("recipient_delimiter"),
            local_recipient_maps: (!lrm_broken && !lrm.is_empty()).then_some(lrm),
            virtual_alias_maps: Maps::new(cfg, "virtual_alias_maps"),
            virtual_mailbox_maps: Maps::new(cfg, "virtual_mailbox_maps"),
            relay_recipient_maps: Maps::new(cfg, "relay_recipient_maps"),
        }
    }

    pub(crate) fn add_local_addresses(&mut self, addrs: impl IntoIterator<Item = IpAddr>) {
        self.local_addrs.extend(addrs);
    }

    /// One of this machine's addresses (loopback always counts).
    pub(crate) fn is_own(&self, ip: IpAddr) -> bool {
        ip.is_loopback() || self.local_addrs.contains(&ip)
    }

    fn literal(domain: &str) -> Option<IpAddr> {
        let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
        match inner.get(..5) {
            Some(p) if p.eq_ignore_ascii_case("ipv6:") => inner[5..].parse().ok(),
            _ => inner.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        }
    }

    fn is_local_domain(&self, domain: &str) -> Result<bool, String> {
        if domain.starts_with('[') {
            return Ok(Self::literal(domain).is_some_and(|ip| self.local_addrs.contains(&ip)));
        }
        self.mydestination.matches(domain)
    }

    /// Rewrites and classifies `addr` (internal form). `Err` names a failed table.
    pub(crate) fn resolve(&self, addr: &str) -> Result<Resolved, String> {
        let mut a = addr.to_string();
        for _ in 0..super::MAX_NESTING {
            let Some(at) = a.rfind('@') else {
                if let Some(next) = self.reroute(&a) {
                    a = next;
                } else if self.append_at_myorigin {
                    a = format!("{a}@{}", self.myorigin);
                } else {
                    return Ok(Resolved {
                        class: Class::Local,
                        local: a,
                        domain: String::new(),
                    });
                }
                continue;
            };
            let local = &a[..at];
            let mut domain = a[at + 1..].to_ascii_lowercase();
            if domain.ends_with('.') {
                domain.pop();
            }
            if !self.is_local_domain(&domain)? {
                return self.classify_remote(local, &domain);
            }
            match self.reroute(local) {
                Some(next) => a = next,
                None => {
                    return Ok(Resolved {
                        class: Class::Local,
                        local: local.to_string(),
                        domain,
                    });
                }
            }
        }
        // Routing nested deeper than any real address: treat as foreign.
        Ok(Resolved {
            class: Class::Default,
            local: a.clone(),
            domain: String::new(),
        })
    }

    /// The address a local part routes to (`"u@d"`, `d!u`, `u%d`), if any.
    fn reroute(&self, local: &str) -> Option<String> {
        if self.dequoted && local.contains('@') {
            return Some(local.to_string());
        }
        if self.swap_bangpath
            && let Some((host, user)) = local.split_once('!')
            && !host.is_empty()
            && !user.is_empty()
        {
            return Some(format!("{user}@{host}"));
        }
        if self.percent_hack
            && let Some((user, host)) = local.rsplit_once('%')
            && !host.is_empty()
        {
            return Some(format!("{user}@{host}"));
        }
        None
    }

    fn classify_remote(&self, local: &str, domain: &str) -> Result<Resolved, String> {
        let class = if self.virtual_alias_domains.matches(domain)? {
            Class::VirtualAlias
        } else if self.virtual_mailbox_domains.matches(domain)? {
            Class::VirtualMailbox
        } else if self.relay_domains.matches(domain)? {
            Class::Relay
        } else {
            Class::Default
        };
        Ok(Resolved {
            class,
            local: local.to_string(),
            domain: domain.to_string(),
        })
    }

    /// The keys for a recipient table: `user+ext@domain`, `user@domain`, and (for
    /// domain-wide entries) `@domain`; `local_only` adds `user+ext` and `user` (local
    /// recipient tables such as aliases and passwd are keyed by the local part).
    fn keys(&self, r: &Resolved, local_only: bool) -> Vec<String> {
        let local = r.local.to_lowercase();
        let bare = postern_table::query::split_extension(&local, &self.delimiter)
            .map(|(user, _)| user.to_string());
        let mut keys = vec![format!("{local}@{}", r.domain)];
        if let Some(user) = &bare {
            keys.push(format!("{user}@{}", r.domain));
        }
        if local_only {
            keys.push(local.clone());
            keys.extend(bare);
        } else {
            keys.push(format!("@{}", r.domain));
        }
        keys
    }

    /// `Ok(Some(table description))` when the recipient is unknown to its class's
    /// tables, e.g. `local recipient table`.
    pub(crate) fn unlisted(&self, r: &Resolved) -> Result<Option<&'static str>, String> {
        let known_alias = |s: &Self| s.virtual_alias_maps.any(&s.keys(r, false));
        let (maps, what) = match r.class {
            Class::Default => return Ok(None),
            Class::Local => match &self.local_recipient_maps {
                None => return Ok(None),
                Some(m) => (m, "local recipient table"),
            },
            Class::VirtualAlias => (&self.virtual_alias_maps, "virtual alias table"),
            Class::VirtualMailbox => (&self.virtual_mailbox_maps, "virtual mailbox table"),
            Class::Relay if self.relay_recipient_maps.is_empty() => return Ok(None),
            Class::Relay => (&self.relay_recipient_maps, "relay recipient table"),
        };
        if r.class != Class::VirtualAlias && known_alias(self)? {
            return Ok(None);
        }
        let found = maps.any(&self.keys(r, r.class == Class::Local))?;
        Ok((!found).then_some(what))
    }
}

/// `mynetworks` when set explicitly; `None` means "derive from `mynetworks_style`",
/// which here is always this machine's own addresses (see the module docs of `policy`).
pub(crate) fn mynetworks(cfg: &Config) -> Result<Option<NetworkList>, PolicyError> {
    if !cfg.is_set("mynetworks") {
        return Ok(None);
    }
    NetworkList::new(&cfg.get("mynetworks"), &OpenOptions::default())
        .map(Some)
        .map_err(|e| PolicyError(format!("mynetworks: {e}")))
}
