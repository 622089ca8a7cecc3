//! Where a recipient goes (Postfix's address classes) and whether it is listed.
//!
//! The class comes from [`postern_table::route::ClassResolver`], the resolver qmgr uses
//! too: trivial-rewrite's loop, which is what defeats the classic relay tricks (`u%d@ours`,
//! `d!u@ours`, `"u@d"@ours`, source routes, literals of addresses that are not ours,
//! trailing dots). Our own addresses (for `[addr]` literals and `permit_inet_interfaces`)
//! are those of `inet_interfaces` (every interface address for `all`) and
//! `proxy_interfaces`; `mynetworks`, when unset, is `mynetworks_style` applied to the
//! `inet_interfaces` addresses with their interface netmasks, as Postfix computes it.
//!
//! # Security
//! Fail closed: a list or table that cannot be opened or queried answers `Err`, which the
//! caller turns into a temporary refusal, never into "accept".

use super::PolicyError;
use super::compile::Table;
use postern_config::{Config, p};
use postern_table::NetworkList;
use postern_table::OpenOptions;
pub(crate) use postern_table::route::{AddrClass as Class, Resolution as Resolved};
use postern_table::route::{ClassResolver, Own};
use std::net::IpAddr;

/// The tables of a `*_maps` parameter.
#[derive(Debug)]
struct Maps(Vec<Table>);

impl Maps {
    fn new(cfg: &Config, param: postern_config::Str) -> Maps {
        Maps(cfg.list(param).iter().map(|s| Table::open(s)).collect())
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
    classes: ClassResolver,
    inet: Vec<IpAddr>,
    delimiter: String,
    /// `double_bounce_sender`, lowercased (one of the local parts never refused).
    double_bounce: String,
    local_recipient_maps: Maps,
    virtual_alias_maps: Maps,
    virtual_mailbox_maps: Maps,
    relay_recipient_maps: Maps,
}

/// Own addresses (`inet_interfaces`, `proxy_interfaces`) for the enabled protocols.
pub(crate) fn own(cfg: &Config) -> Own {
    let p = postern_server::inet::protocols(cfg).unwrap_or(postern_server::inet::Protocols {
        ipv4: true,
        ipv6: false,
    });
    Own::new(&|n| cfg.get(n), p.ipv4, p.ipv6)
}

impl Resolver {
    pub(crate) fn new(cfg: &Config, own: &Own) -> Resolver {
        let classes = ClassResolver::new(&|n| cfg.get(n), own.all());
        for e in classes.open_errors() {
            postern_log::warning(format!("{e}; recipients that need it are deferred"));
        }
        Resolver {
            classes,
            inet: own.inet.iter().map(|(ip, _)| *ip).collect(),
            delimiter: cfg.str(p::RECIPIENT_DELIMITER),
            double_bounce: cfg.str(p::DOUBLE_BOUNCE_SENDER).to_lowercase(),
            local_recipient_maps: Maps::new(cfg, p::LOCAL_RECIPIENT_MAPS),
            virtual_alias_maps: Maps::new(cfg, p::VIRTUAL_ALIAS_MAPS),
            virtual_mailbox_maps: Maps::new(cfg, p::VIRTUAL_MAILBOX_MAPS),
            relay_recipient_maps: Maps::new(cfg, p::RELAY_RECIPIENT_MAPS),
        }
    }

    /// One of the `inet_interfaces` addresses (`permit_inet_interfaces`; Postfix's
    /// `own_inet_addr`, which leaves out `proxy_interfaces`).
    pub(crate) fn is_inet_interface(&self, ip: IpAddr) -> bool {
        self.inet.contains(&ip)
    }

    /// `check_relay_domains`: the client host name is in `relay_domains`.
    pub(crate) fn relay_client(&self, name: &str) -> Result<bool, String> {
        self.classes.in_relay_domains(name)
    }

    /// Rewrites and classifies `addr` (internal form). `Err` names a failed table.
    pub(crate) fn resolve(&self, addr: &str) -> Result<Resolved, String> {
        self.classes.resolve(addr)
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

    fn always_known(&self, local: &str) -> bool {
        let local = local.to_lowercase();
        local.is_empty()
            || local == "postmaster"
            || local == "mailer-daemon"
            || local == self.double_bounce
    }

    /// `Ok(Some(table description))` when the recipient is unknown to its class's
    /// tables, e.g. `local recipient table`.
    pub(crate) fn unlisted(&self, r: &Resolved) -> Result<Option<&'static str>, String> {
        let known_alias = |s: &Self| s.virtual_alias_maps.any(&s.keys(r, false));
        let (maps, what) = match r.class {
            Class::Default => return Ok(None),
            Class::Local if self.local_recipient_maps.is_empty() => return Ok(None),
            // As Postfix (oracle 3.7.11): postmaster, MAILER-DAEMON and the double-bounce
            // address in a local domain are never unknown; an empty local part (`""@d`)
            // is MAILER-DAEMON.
            Class::Local if self.always_known(&r.local) => return Ok(None),
            Class::Local => (&self.local_recipient_maps, "local recipient table"),
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

/// `mynetworks`: the parameter when set, else `mynetworks_style` applied to the
/// `inet_interfaces` addresses.
pub(crate) fn mynetworks(cfg: &Config, own: &Own) -> Result<NetworkList, PolicyError> {
    let value = if cfg.is_set(p::MYNETWORKS) {
        cfg.str(p::MYNETWORKS)
    } else {
        postern_table::mynetworks_by_style(&cfg.str(p::MYNETWORKS_STYLE), &own.inet)
            .map_err(PolicyError)?
    };
    // A table that cannot be opened defers the clients it would decide (451 4.3.0), as
    // Postfix's surrogate table; a malformed network still stops smtpd.
    NetworkList::new_deferring(&value, &OpenOptions::default())
        .map_err(|e| PolicyError(format!("mynetworks: {e}")))
}
