//! Host addresses without the DNS, from the system's name service (`getaddrinfo`:
//! `/etc/hosts`, then what nsswitch.conf says), as Postfix's "native" lookups:
//!
//! * [`resolve_native`]: the whole next hop when DNS is off (`smtp_dns_support_level =
//!   disabled`, or the legacy `disable_dns_lookups = yes`): no MX lookup whatever the next
//!   hop's form; a name that does not exist bounces (5.4.4, `unable to look up host H:
//!   Name or service not known`), a temporary failure defers (4.4.4).
//! * [`HostLookup`]: `smtp_host_lookup` with DNS on (`dns`, `native`, `dns, native`), used
//!   by [`super::resolve`] for the addresses of each host.
//!
//! # Security
//! The answers are cut at [`MAX_ADDRESSES`] like DNS answers.
//!
//! # Configuration
//! `smtp_host_lookup`, `smtp_dns_support_level`, `disable_dns_lookups` (the `lmtp_` forms for
//! LMTP), through [`super::AddrPolicy`] and [`crate::AgentConfig`].

use super::{AddrPolicy, Cand, MAX_ADDRESSES, Target, literal, order_addresses, seed};
use crate::nexthop::Dest;
use crate::result::Outcome;
use postern_dns::Lookup;
use std::net::IpAddr;

/// `*_host_lookup`: how a host's addresses are found (MX lookups use DNS either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLookup {
    /// `dns`: A/AAAA queries.
    pub dns: bool,
    /// `native`: the system's name service (`/etc/hosts`, nsswitch.conf); with `dns`
    /// too, only for a host the DNS does not know.
    pub native: bool,
}

impl HostLookup {
    /// Parses `dns`, `native` or both (blanks or commas between); `name` is the parameter
    /// for the error, which Postfix's smtp also makes fatal.
    pub fn parse(name: &str, value: &str) -> Result<HostLookup, String> {
        let mut h = HostLookup {
            dns: false,
            native: false,
        };
        for w in postern_config::split_list(value) {
            match w.to_ascii_lowercase().as_str() {
                "dns" => h.dns = true,
                "native" => h.native = true,
                _ => return Err(format!("unknown {name} value \"{w}\" in \"{value}\"")),
            }
        }
        if !h.dns && !h.native {
            return Err(format!("{name}: no host lookup mechanism in \"{value}\""));
        }
        Ok(h)
    }
}

/// [`system_lookup`]'s answer as a [`Lookup`] (a temporary failure is `TempFail`).
pub(super) fn native_addresses(
    host: &str,
    lookup: impl Fn(&str) -> std::io::Result<Vec<IpAddr>>,
) -> Lookup<Vec<IpAddr>> {
    match lookup(host) {
        Ok(ips) if !ips.is_empty() => Lookup::Found(ips),
        Ok(_) => Lookup::NotFound,
        Err(e) => {
            let o = native_failure(host, &e);
            if o.action == postern_ipc::proto::Action::Bounce {
                Lookup::NotFound
            } else {
                Lookup::TempFail(o.text)
            }
        }
    }
}

/// The system's name service (`getaddrinfo`: `/etc/hosts`, then what nsswitch.conf says)
/// for one host name, as Postfix with `smtp_dns_support_level = disabled`.
pub(super) fn system_lookup(host: &str) -> std::io::Result<Vec<IpAddr>> {
    use std::net::ToSocketAddrs;
    let mut out: Vec<IpAddr> = Vec::new();
    for a in (host, 0u16).to_socket_addrs()? {
        if !out.contains(&a.ip()) {
            out.push(a.ip());
        }
    }
    Ok(out)
}

/// A failed native lookup as Postfix words it (`unable to look up host H: gai text`):
/// a name that does not exist bounces (5.4.4), a temporary failure defers (4.4.4), any
/// other error defers as a system problem (4.3.0).
fn native_failure(host: &str, e: &std::io::Error) -> Outcome {
    let text = e.to_string();
    let why = text
        .strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text);
    let why = why.split(" (os error ").next().unwrap_or(why);
    let msg = format!("unable to look up host {host}: {why}");
    if why.starts_with("Temporary failure") {
        Outcome::defer("4.4.4", msg)
    } else if why.starts_with("Name or service not known")
        || why.starts_with("No address associated")
    {
        Outcome::bounce("5.4.4", msg)
    } else {
        Outcome::defer("4.3.0", msg)
    }
}

/// Resolves `dest` (never [`Dest::Unix`]) without DNS (`smtp_dns_support_level = disabled`,
/// or `disable_dns_lookups = yes`): no MX lookup whatever the next hop's form, the host's
/// addresses from the system's name service through `lookup`, ordered and cut under
/// `policy` like DNS answers of one host.
pub fn resolve_native(
    dest: &Dest,
    policy: &AddrPolicy,
    lookup: impl Fn(&str) -> std::io::Result<Vec<IpAddr>>,
) -> Result<Vec<Target>, Outcome> {
    let (host, port) = match dest {
        Dest::Unix(p) => return Ok(vec![Target::Unix(p.clone())]),
        Dest::Inet { host, port, .. } => (host.as_str(), *port),
    };
    if let Some(t) = literal(host, port, policy) {
        return t;
    }
    let ips = lookup(host).map_err(|e| native_failure(host, &e))?;
    let cands: Vec<Cand> = ips
        .into_iter()
        .filter(|ip| policy.families.allows(ip))
        .take(MAX_ADDRESSES)
        .map(|ip| (0, host.to_string(), ip))
        .collect();
    if cands.is_empty() {
        return Err(Outcome::bounce("5.4.4", format!("{host}: host not found")));
    }
    Ok(order_addresses(cands, policy, seed())
        .into_iter()
        .map(|(_, host, ip)| Target::Inet { host, ip, port })
        .collect())
}

/// [`resolve_native`] with the system's `getaddrinfo`.
pub fn resolve_system(dest: &Dest, policy: &AddrPolicy) -> Result<Vec<Target>, Outcome> {
    resolve_native(dest, policy, system_lookup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::Families;

    #[test]
    fn native_lookup_no_mx() {
        let d = Dest::Inet {
            host: "filter.example".into(),
            port: 10024,
            mx: true,
        };
        let p = AddrPolicy {
            families: Families {
                v4: true,
                v6: false,
            },
            ..AddrPolicy::default()
        };
        let t = resolve_native(&d, &p, |h| {
            assert_eq!(h, "filter.example", "the host itself, no MX");
            Ok(vec!["::1".parse().unwrap(), "127.0.0.1".parse().unwrap()])
        })
        .unwrap();
        assert_eq!(
            t,
            [Target::Inet {
                host: "filter.example".into(),
                ip: "127.0.0.1".parse().unwrap(),
                port: 10024
            }]
        );
        let e = resolve_native(&d, &p, |_| Ok(vec!["::1".parse().unwrap()])).unwrap_err();
        assert_eq!(e.text, "filter.example: host not found");
        let gai =
            |t: &str| std::io::Error::other(format!("failed to lookup address information: {t}"));
        let e = resolve_native(&d, &p, |_| Err(gai("Name or service not known"))).unwrap_err();
        assert_eq!(
            (e.dsn.as_str(), e.text.as_str()),
            (
                "5.4.4",
                "unable to look up host filter.example: Name or service not known"
            )
        );
        let e = resolve_native(&d, &p, |_| Err(gai("Temporary failure in name resolution")))
            .unwrap_err();
        assert_eq!(e.dsn, "4.4.4");
        let lit = Dest::Inet {
            host: "127.0.0.2".into(),
            port: 25,
            mx: false,
        };
        assert_eq!(
            resolve_native(&lit, &p, |_| panic!("no lookup"))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn host_lookup_values() {
        let p = |v: &str| HostLookup::parse("smtp_host_lookup", v);
        let both = HostLookup {
            dns: true,
            native: true,
        };
        assert_eq!(p("dns, native"), Ok(both));
        assert_eq!(p("native").map(|h| (h.dns, h.native)), Ok((false, true)));
        assert_eq!(AddrPolicy::default().lookup, p("dns").unwrap());
        assert_eq!(
            p("dns nis"),
            Err("unknown smtp_host_lookup value \"nis\" in \"dns nis\"".into())
        );
        assert!(p("").is_err());
        let gai =
            |t: &str| std::io::Error::other(format!("failed to lookup address information: {t}"));
        assert_eq!(
            native_addresses("h", |_| Err(gai("Name or service not known"))),
            Lookup::NotFound
        );
        assert!(matches!(
            native_addresses("h", |_| Err(gai("Temporary failure in name resolution"))),
            Lookup::TempFail(t) if t == "unable to look up host h: Temporary failure in name resolution"
        ));
        assert_eq!(native_addresses("h", |_| Ok(vec![])), Lookup::NotFound);
    }
}
