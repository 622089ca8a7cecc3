//! Recipient resolution (the part of Postfix's trivial-rewrite that qmgr
//! needs): the address class of the recipient, then `transport_maps`, give the
//! transport and next hop. The class comes from
//! [`postern_table::route::ClassResolver`], the resolver smtpd's relay control uses, so
//! routed addresses (`u%d@ours`, `d!u@ours`, `"u@d"@ours`, source routes), literals of our
//! own addresses (`u@[127.0.0.1]` is local only when that is one of our addresses),
//! trailing dots and case resolve here exactly as smtpd classified them: nothing smtpd
//! accepted as local is sent elsewhere. A domain list that cannot be read defers the
//! recipient (`4.3.0`).
//!
//! | class | domains | transport |
//! |---|---|---|
//! | local | `$mydestination`, own address literals (or no domain) | `$local_transport` (`local:$myhostname`) |
//! | virtual alias | `$virtual_alias_domains` | none: an address left here after alias expansion is unknown → bounce |
//! | virtual mailbox | `$virtual_mailbox_domains` | `$virtual_transport` |
//! | relay | `$relay_domains` | `$relay_transport`, next hop `$relayhost` or the domain |
//! | default | anything else | `$default_transport`, next hop `$relayhost` or the domain |
//!
//! `transport_maps` is searched first with the full address, the address
//! without extension, the domain, its parent domains (`.parent` keys, or
//! plain parents when `transport_maps` is in `parent_domain_matches_subdomains`),
//! and finally `*`. A result `transport:nexthop` may leave either side empty
//! to keep the class's default.
//!
//! `relocated_maps` (relocated(5), searched like canonical(5): `user@domain`,
//! `user` for local domains, `@domain`) bounces a recipient that has moved with
//! `5.1.6 User has moved to NEWLOCATION`, whatever its class. A content filter
//! recorded by cleanup (`filter=transport:nexthop`, from header_checks FILTER
//! or an access table) overrides the transport and next hop
//! ([`Resolver::resolve_filtered`]); without a next hop it uses
//! `$default_filter_nexthop`, else the recipient's domain, else `$myhostname`.

use postern_config::{Config, p};
use postern_table::BoxMap;
use postern_table::route::{AddrClass, ClassResolver, Own};

/// Where a recipient goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// master.cf service name of the delivery agent.
    pub transport: String,
    /// Next hop.
    pub nexthop: String,
}

/// A recipient qmgr cannot route: bounce or defer with this DSN and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unroutable {
    /// Temporary (table failure) rather than permanent.
    pub temporary: bool,
    /// Enhanced status code.
    pub dsn: String,
    /// Reason text.
    pub text: String,
}

/// Resolution settings.
#[derive(Debug, Default)]
pub struct Resolver {
    /// `$local_transport`.
    pub local_transport: String,
    /// `$default_transport`.
    pub default_transport: String,
    /// `$relay_transport`.
    pub relay_transport: String,
    /// `$virtual_transport`.
    pub virtual_transport: String,
    /// `$relayhost`.
    pub relayhost: String,
    /// `$myhostname`.
    pub myhostname: String,
    /// `$recipient_delimiter`.
    pub delimiter: String,
    classes: Option<ClassResolver>,
    transport_maps: Vec<BoxMap>,
    transport_parent_matches: bool,
    relocated_maps: Vec<BoxMap>,
    relocated_broken: bool,
    myorigin: String,
    default_filter_nexthop: String,
}

fn split_transport(spec: &str, default_nexthop: &str) -> (String, String) {
    match spec.split_once(':') {
        Some((t, n)) if !n.is_empty() => (t.to_string(), n.to_string()),
        Some((t, _)) => (t.to_string(), default_nexthop.to_string()),
        None => (spec.to_string(), default_nexthop.to_string()),
    }
}

impl Resolver {
    /// Reads the settings and opens the tables.
    pub fn from_config(cfg: &Config) -> Resolver {
        let pdms = cfg.str(p::PARENT_DOMAIN_MATCHES_SUBDOMAINS);
        let mut maps = Vec::new();
        for spec in cfg.list(p::TRANSPORT_MAPS) {
            // A table that cannot be opened stays as its surrogate: every lookup
            // defers (fail closed), as Postfix's trivial-rewrite does.
            let (m, err) = postern_table::open_or_surrogate(&spec, &Default::default());
            if let Some(e) = err {
                postern_log::warning(format!("transport_maps: {spec}: {e}"));
            }
            maps.push(m);
        }
        let mut relocated_maps = Vec::new();
        let mut relocated_broken = false;
        for spec in cfg.list(p::RELOCATED_MAPS) {
            match postern_table::open(&spec, &Default::default()) {
                Ok(m) => relocated_maps.push(m),
                Err(e) => {
                    postern_log::warning(format!("relocated_maps: {spec}: {e}"));
                    relocated_broken = true;
                }
            }
        }
        let protos =
            postern_server::inet::protocols(cfg).unwrap_or(postern_server::inet::Protocols {
                ipv4: true,
                ipv6: false,
            });
        let own = Own::new(&|n| cfg.get(n), protos.ipv4, protos.ipv6);
        let classes = ClassResolver::new(&|n| cfg.get(n), own.all());
        for e in classes.open_errors() {
            postern_log::warning(format!("{e}; recipients that need it are deferred"));
        }
        Resolver {
            relocated_maps,
            relocated_broken,
            myorigin: cfg.str(p::MYORIGIN).to_ascii_lowercase(),
            default_filter_nexthop: cfg.str(p::DEFAULT_FILTER_NEXTHOP),
            local_transport: cfg.str(p::LOCAL_TRANSPORT),
            default_transport: cfg.str(p::DEFAULT_TRANSPORT),
            relay_transport: cfg.str(p::RELAY_TRANSPORT),
            virtual_transport: cfg.str(p::VIRTUAL_TRANSPORT),
            relayhost: cfg.str(p::RELAYHOST),
            myhostname: cfg.str(p::MYHOSTNAME),
            delimiter: cfg.str(p::RECIPIENT_DELIMITER),
            classes: Some(classes),
            transport_maps: maps,
            transport_parent_matches: postern_table::parent_matches("transport_maps", &pdms),
        }
    }

    /// Whether a domain is one of ours (local delivery).
    pub fn is_local_domain(&self, domain: &str) -> Result<bool, String> {
        let d = domain.trim_end_matches('.');
        match &self.classes {
            _ if d.is_empty() => Ok(true),
            Some(c) => c.is_local_domain(d),
            None => Ok(false),
        }
    }

    fn transport_lookup(&self, addr: &str) -> Result<Option<String>, String> {
        for map in &self.transport_maps {
            let found = postern_table::lookup_address(
                map.as_ref(),
                addr,
                &self.delimiter,
                self.transport_parent_matches,
            )
            .map_err(|e| e.to_string())?;
            if let Some((value, _key)) = found {
                return Ok(Some(value));
            }
            if !map.flags().pattern
                && let Some(v) = map.lookup("*").map_err(|e| e.to_string())?
            {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Resolves one recipient of a message that may carry a content filter
    /// (`transport:nexthop`, from the queue file's `filter` attribute).
    pub fn resolve_filtered(&self, addr: &str, filter: Option<&str>) -> Result<Route, Unroutable> {
        let Some(f) = filter.map(str::trim).filter(|f| !f.is_empty()) else {
            return self.resolve(addr);
        };
        let (transport, nexthop) = f.split_once(':').unwrap_or((f, ""));
        let nexthop = if !nexthop.is_empty() {
            nexthop.to_string()
        } else if !self.default_filter_nexthop.is_empty() {
            self.default_filter_nexthop.clone()
        } else {
            match addr.rsplit_once('@') {
                Some((_, d)) if !d.is_empty() => d.to_string(),
                _ => self.myhostname.clone(),
            }
        };
        Ok(Route {
            transport: transport.to_string(),
            nexthop,
        })
    }

    /// relocated(5): `Some(new location)` when the recipient has moved.
    fn relocated(&self, addr: &str) -> Result<Option<String>, Unroutable> {
        let fail = || Unroutable {
            temporary: true,
            dsn: "4.3.0".into(),
            text: "relocated_maps lookup failure".into(),
        };
        if self.relocated_broken {
            postern_log::warning("relocated_maps lookup failure");
            return Err(fail());
        }
        if self.relocated_maps.is_empty() {
            return Ok(None);
        }
        let is_local = |d: &str| {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == self.myorigin || self.is_local_domain(&d).unwrap_or(false)
        };
        match postern_table::find_address(&self.relocated_maps, addr, &self.delimiter, &is_local) {
            Ok(found) => Ok(found.map(|m| m.value)),
            Err(e) => {
                postern_log::warning(format!("relocated_maps lookup failure: {e}"));
                Err(fail())
            }
        }
    }

    /// Resolves one recipient address.
    pub fn resolve(&self, addr: &str) -> Result<Route, Unroutable> {
        if let Some(newloc) = self.relocated(addr)? {
            return Err(Unroutable {
                temporary: false,
                dsn: "5.1.6".into(),
                text: format!("User has moved to {newloc}"),
            });
        }
        let defer = |e: String| {
            postern_log::warning(format!("address resolution of {addr}: {e}"));
            Unroutable {
                temporary: true,
                dsn: "4.3.0".into(),
                text: "address resolver failure".into(),
            }
        };
        let res = match &self.classes {
            Some(c) => c.resolve(addr).map_err(defer)?,
            None => return Err(defer("no resolver".into())),
        };
        let domain = res.domain.clone();
        let remote_hop = if self.relayhost.is_empty() {
            domain.clone()
        } else {
            self.relayhost.clone()
        };
        let local = res.class == AddrClass::Local;
        let (class_transport, default_hop) = match res.class {
            AddrClass::Local => (self.local_transport.clone(), self.myhostname.clone()),
            AddrClass::VirtualAlias => {
                return Err(Unroutable {
                    temporary: false,
                    dsn: "5.1.1".into(),
                    text: format!("<{addr}>: User unknown in virtual alias table"),
                });
            }
            AddrClass::VirtualMailbox => (self.virtual_transport.clone(), domain.clone()),
            AddrClass::Relay => (self.relay_transport.clone(), remote_hop),
            AddrClass::Default => (self.default_transport.clone(), remote_hop),
        };
        let (mut transport, mut nexthop) = split_transport(&class_transport, &default_hop);
        match self.transport_lookup(addr) {
            Ok(Some(v)) => {
                let (t, n) = v
                    .split_once(':')
                    .map(|(t, n)| (t.trim(), n.trim()))
                    .unwrap_or((v.trim(), ""));
                if !t.is_empty() {
                    transport = t.to_string();
                }
                if !n.is_empty() {
                    nexthop = n.to_string();
                } else if !t.is_empty() && transport != "local" && !local {
                    nexthop = domain.clone();
                }
            }
            Ok(None) => {}
            Err(e) => {
                postern_log::warning(format!("transport_maps lookup of {addr}: {e}"));
                return Err(Unroutable {
                    temporary: true,
                    dsn: "4.3.0".into(),
                    text: "transport table lookup failure".into(),
                });
            }
        }
        Ok(Route { transport, nexthop })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(extra: &str) -> Resolver {
        let text = format!(
            "mydestination = localhost, mx.example.org\nmyhostname = mx.example.org\nrelay_domains = relayed.example\n\
             virtual_alias_domains = valias.example\n{extra}"
        );
        let cfg = Config::new(postern_config::parse_main_cf(&text).unwrap());
        Resolver::from_config(&cfg)
    }

    #[test]
    fn classes() {
        let res = r("");
        assert_eq!(res.resolve("u@LOCALHOST").unwrap().transport, "local");
        assert_eq!(res.resolve("u").unwrap().transport, "local");
        let remote = res.resolve("u@Example.COM").unwrap();
        assert_eq!(
            (remote.transport.as_str(), remote.nexthop.as_str()),
            ("smtp", "example.com")
        );
        assert_eq!(res.resolve("u@relayed.example").unwrap().transport, "relay");
        assert!(!res.resolve("u@valias.example").unwrap_err().temporary);
        let relay = r("relayhost = [10.0.0.1]:25\n");
        assert_eq!(relay.resolve("u@x.org").unwrap().nexthop, "[10.0.0.1]:25");
    }

    #[test]
    fn routed_addresses_and_literals_resolve_as_smtpd_classifies_them() {
        let res = r("inet_interfaces = 127.0.0.1\nproxy_interfaces =\n");
        for local in [
            "u@[127.0.0.1]",
            "u@MX.example.org.",
            "@other.example:u@localhost",
        ] {
            assert_eq!(res.resolve(local).unwrap().transport, "local", "{local}");
        }
        for (remote, hop) in [
            ("u@[127.0.0.2]", "[127.0.0.2]"),
            ("u%other.example@localhost", "other.example"),
            ("other.example!u@localhost", "other.example"),
            ("u@other.example@localhost", "other.example"),
        ] {
            let route = res.resolve(remote).unwrap();
            assert_eq!(
                (route.transport.as_str(), route.nexthop.as_str()),
                ("smtp", hop),
                "{remote}"
            );
        }
        let broken = r("relay_domains = texthash:/nonexistent/x\n");
        assert!(broken.resolve("u@elsewhere.example").unwrap_err().temporary);
    }

    #[test]
    fn relocated_and_filter() {
        let res = r(
            "myorigin = mx.example.org\nrelocated_maps = inline:{ joe=joe@new.example, {@gone.example=see www.gone.example} }\n",
        );
        let moved = res.resolve("joe@localhost").unwrap_err();
        assert_eq!(
            (moved.temporary, moved.dsn.as_str(), moved.text.as_str()),
            (false, "5.1.6", "User has moved to joe@new.example")
        );
        assert_eq!(
            res.resolve("x@gone.example").unwrap_err().text,
            "User has moved to see www.gone.example"
        );
        assert_eq!(res.resolve("ann@localhost").unwrap().transport, "local");
        let f = res
            .resolve_filtered("a@b.example", Some("scan:[127.0.0.1]:10025"))
            .unwrap();
        assert_eq!(
            (f.transport.as_str(), f.nexthop.as_str()),
            ("scan", "[127.0.0.1]:10025")
        );
        let f = res.resolve_filtered("a@b.example", Some("scan:")).unwrap();
        assert_eq!(f.nexthop, "b.example");
        let broken = r("relocated_maps = fail:x\n");
        assert!(broken.resolve("a@b").unwrap_err().temporary);
    }

    #[test]
    fn transport_maps() {
        let res = r(
            "transport_maps = inline:{special.example=smtp:[192.0.2.9]:2525, .sub.example=relay:, u@x.org=discard:}, inline:{ *=error:nowhere }\n",
        );
        let s = res.resolve("a@special.example").unwrap();
        assert_eq!(
            (s.transport.as_str(), s.nexthop.as_str()),
            ("smtp", "[192.0.2.9]:2525")
        );
        let sub = res.resolve("a@deep.sub.example").unwrap();
        assert_eq!(
            (sub.transport.as_str(), sub.nexthop.as_str()),
            ("relay", "deep.sub.example")
        );
        assert_eq!(res.resolve("u@x.org").unwrap().transport, "discard");
        let star = res.resolve("v@elsewhere.example").unwrap();
        assert_eq!(
            (star.transport.as_str(), star.nexthop.as_str()),
            ("error", "nowhere")
        );
    }
}
