//! The addresses an `inet` service listens on, as Postfix's master computes
//! them from master.cf's service name, `inet_interfaces` and `inet_protocols`.
//!
//! A service named `host:port` listens on every address of `host` (an IPv4
//! address, an IPv6 address with or without brackets, or a name looked up in
//! the hosts database), filtered by `inet_protocols`. A bare `port` listens
//! on every address of `inet_interfaces`:
//!
//! * `all`: the wildcard address of each enabled protocol (`0.0.0.0`, `::`);
//! * `loopback-only`: `127.0.0.1` and `::1` per `inet_protocols` (`::1` only
//!   when an interface carries it);
//! * otherwise a list of addresses or host names, each expanded as above.
//!
//! `inet_protocols` is `all` (IPv4, plus IPv6 when the kernel has it), or a
//! list of `ipv4`, `ipv6`. Ports are numbers or service names (`smtp`,
//! `submission`, … and `/etc/services`).
//!
//! master binds what [`listen_addresses`] returns; `postern check` calls the
//! same function, so a configuration that passes the check binds at start.
//!
//! # Security
//! Name lookups use the system's resolver (hosts file first, as configured);
//! nothing here listens or connects.
//!
//! # Configuration
//! `inet_interfaces`, `inet_protocols`.

use postern_config::{Config, p};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use thiserror::Error;

/// Why the listen addresses cannot be computed.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InetError {
    /// `inet_protocols` names an unknown protocol.
    #[error("bad inet_protocols value: {0}")]
    Protocol(String),
    /// `inet_protocols` is empty.
    #[error("bad inet_protocols value: \"\"")]
    NoProtocol,
    /// The port is neither a number nor a known service name.
    #[error("unknown service: {0}/tcp")]
    Port(String),
    /// A host name or address yields no address of an enabled protocol.
    #[error("{what}: host not found or no {protocols} address: {host}")]
    Host {
        /// Where it came from (`parameter inet_interfaces`, `master.cf`).
        what: String,
        /// The host.
        host: String,
        /// The enabled protocols.
        protocols: String,
    },
    /// The list is empty.
    #[error("parameter inet_interfaces: no local interface found for {0}")]
    Empty(String),
}

/// The enabled protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocols {
    /// IPv4.
    pub ipv4: bool,
    /// IPv6.
    pub ipv6: bool,
}

impl Protocols {
    fn allows(&self, ip: &IpAddr) -> bool {
        match ip {
            IpAddr::V4(_) => self.ipv4,
            IpAddr::V6(_) => self.ipv6,
        }
    }

    fn describe(&self) -> String {
        match (self.ipv4, self.ipv6) {
            (true, true) => "IPv4 or IPv6".into(),
            (true, false) => "IPv4".into(),
            (false, true) => "IPv6".into(),
            (false, false) => "usable".into(),
        }
    }
}

/// Parses `inet_protocols`; `ipv6_available` says whether the kernel has
/// IPv6 (`all` then means IPv4 only, as Postfix falls back).
pub fn parse_protocols(value: &str, ipv6_available: bool) -> Result<Protocols, InetError> {
    let mut p = Protocols {
        ipv4: false,
        ipv6: false,
    };
    for w in postern_config::split_list(value) {
        match w.to_ascii_lowercase().as_str() {
            "all" => {
                p.ipv4 = true;
                p.ipv6 = ipv6_available;
            }
            "ipv4" => p.ipv4 = true,
            "ipv6" => p.ipv6 = true,
            _ => return Err(InetError::Protocol(w)),
        }
    }
    if !p.ipv4 && !p.ipv6 {
        // `all` without kernel IPv6 is IPv4; nothing at all is an error.
        if value.trim().is_empty() {
            return Err(InetError::NoProtocol);
        }
        p.ipv4 = true;
    }
    Ok(p)
}

/// The enabled protocols of `cfg`.
pub fn protocols(cfg: &Config) -> Result<Protocols, InetError> {
    parse_protocols(
        &cfg.str(p::INET_PROTOCOLS),
        postern_sys::net::family_supported(true),
    )
}

/// A port number from a number or a service name.
pub fn port(name: &str) -> Result<u16, InetError> {
    if let Ok(n) = name.parse::<u16>() {
        return Ok(n);
    }
    let known = match name {
        "smtp" => Some(25),
        "submission" => Some(587),
        "submissions" | "smtps" | "urd" => Some(465),
        "qmqp" => Some(628),
        "lmtp" => Some(24),
        _ => None,
    };
    if let Some(p) = known {
        return Ok(p);
    }
    std::fs::read_to_string("/etc/services")
        .ok()
        .and_then(|t| services_port(&t, name))
        .ok_or_else(|| InetError::Port(name.to_string()))
}

/// Looks `name` up in the text of an `/etc/services` file (tcp entries).
fn services_port(text: &str, name: &str) -> Option<u16> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let (Some(service), Some(port_proto)) = (words.next(), words.next()) else {
            continue;
        };
        let Some((port, "tcp")) = port_proto.split_once('/') else {
            continue;
        };
        if service == name || words.any(|alias| alias == name) {
            return port.parse().ok();
        }
    }
    None
}

/// Expands one host (address or name) to its addresses of the enabled
/// protocols, using `resolve` for names.
fn host_addrs(
    host: &str,
    protos: Protocols,
    resolve: &dyn Fn(&str) -> Vec<IpAddr>,
) -> Option<Vec<IpAddr>> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let all: Vec<IpAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) if host.starts_with('[') => return None,
        Err(_) => resolve(bare),
    };
    let mut out = Vec::new();
    for ip in all.into_iter().filter(|ip| protos.allows(ip)) {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The local addresses named by `inet_interfaces` (wildcards for `all`):
/// the pure core of [`interface_addresses`]. `has_ipv6_loopback` says
/// whether an interface carries `::1`.
pub fn expand_interfaces(
    words: &[String],
    protos: Protocols,
    has_ipv6_loopback: bool,
    resolve: &dyn Fn(&str) -> Vec<IpAddr>,
) -> Result<Vec<IpAddr>, InetError> {
    let mut out: Vec<IpAddr> = Vec::new();
    let push = |ip: IpAddr, out: &mut Vec<IpAddr>| {
        if !out.contains(&ip) {
            out.push(ip);
        }
    };
    for w in words {
        match w.to_ascii_lowercase().as_str() {
            "all" => {
                if protos.ipv4 {
                    push(IpAddr::V4(Ipv4Addr::UNSPECIFIED), &mut out);
                }
                if protos.ipv6 {
                    push(IpAddr::V6(Ipv6Addr::UNSPECIFIED), &mut out);
                }
            }
            "loopback-only" => {
                if protos.ipv4 {
                    push(IpAddr::V4(Ipv4Addr::LOCALHOST), &mut out);
                }
                if protos.ipv6 && has_ipv6_loopback {
                    push(IpAddr::V6(Ipv6Addr::LOCALHOST), &mut out);
                }
            }
            _ => {
                let addrs = host_addrs(w, protos, resolve).ok_or_else(|| InetError::Host {
                    what: "parameter inet_interfaces".into(),
                    host: w.clone(),
                    protocols: protos.describe(),
                })?;
                for ip in addrs {
                    push(ip, &mut out);
                }
            }
        }
    }
    if out.is_empty() {
        return Err(InetError::Empty(words.join(", ")));
    }
    Ok(out)
}

/// The hosts-database resolver (getaddrinfo).
fn system_resolve(host: &str) -> Vec<IpAddr> {
    use std::net::ToSocketAddrs;
    match (host, 0u16).to_socket_addrs() {
        Ok(it) => it.map(|a| a.ip()).collect(),
        Err(_) => Vec::new(),
    }
}

/// The addresses of `inet_interfaces` (wildcards for `all`).
pub fn interface_addresses(cfg: &Config) -> Result<Vec<IpAddr>, InetError> {
    let protos = protocols(cfg)?;
    let has_v6_lo = postern_sys::net::interface_addresses()
        .map(|l| l.iter().any(|a| a.ip == IpAddr::V6(Ipv6Addr::LOCALHOST)))
        .unwrap_or(false);
    expand_interfaces(
        &cfg.list(p::INET_INTERFACES),
        protos,
        has_v6_lo,
        &system_resolve,
    )
}

/// Splits a master.cf inet service name into host (None for a bare port)
/// and port.
pub fn split_service(name: &str) -> (Option<&str>, &str) {
    match name.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => (Some(host), port),
        Some((_, port)) => (None, port),
        None => (None, name),
    }
}

/// Every address an `inet` service named `name` listens on.
pub fn listen_addresses(cfg: &Config, name: &str) -> Result<Vec<SocketAddr>, InetError> {
    let (host, port_name) = split_service(name);
    let port = port(port_name)?;
    let ips = match host {
        Some("*") => interface_addresses(cfg)?,
        Some(h) => {
            let protos = protocols(cfg)?;
            host_addrs(h, protos, &system_resolve).ok_or_else(|| InetError::Host {
                what: format!("master.cf service {name}"),
                host: h.to_string(),
                protocols: protos.describe(),
            })?
        }
        None => interface_addresses(cfg)?,
    };
    Ok(ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Protocols = Protocols {
        ipv4: true,
        ipv6: true,
    };
    const V4: Protocols = Protocols {
        ipv4: true,
        ipv6: false,
    };

    fn words(s: &str) -> Vec<String> {
        postern_config::split_list(s)
    }

    fn hosts(h: &str) -> Vec<IpAddr> {
        match h {
            "localhost" => vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
            _ => vec![],
        }
    }

    #[test]
    fn protocols_parse() {
        assert_eq!(parse_protocols("all", true).unwrap(), BOTH);
        assert_eq!(parse_protocols("all", false).unwrap(), V4);
        assert_eq!(parse_protocols("ipv4, ipv6", false).unwrap(), BOTH);
        assert!(!parse_protocols("ipv6", true).unwrap().ipv4);
        assert_eq!(
            parse_protocols("ipx", true),
            Err(InetError::Protocol("ipx".into()))
        );
        assert_eq!(parse_protocols(" ", true), Err(InetError::NoProtocol));
    }

    #[test]
    fn interfaces_expand_as_postfix() {
        let e = |s: &str, p, lo6| expand_interfaces(&words(s), p, lo6, &hosts);
        let ips = |v: &[&str]| -> Vec<IpAddr> { v.iter().map(|s| s.parse().unwrap()).collect() };
        assert_eq!(e("all", BOTH, true).unwrap(), ips(&["0.0.0.0", "::"]));
        assert_eq!(e("all", V4, true).unwrap(), ips(&["0.0.0.0"]));
        assert_eq!(
            e("loopback-only", BOTH, true).unwrap(),
            ips(&["127.0.0.1", "::1"])
        );
        assert_eq!(
            e("loopback-only", BOTH, false).unwrap(),
            ips(&["127.0.0.1"])
        );
        assert_eq!(
            e("127.0.0.1, [::1] 10.1.2.3", BOTH, true).unwrap(),
            ips(&["127.0.0.1", "::1", "10.1.2.3"])
        );
        assert_eq!(e("::1", BOTH, true).unwrap(), ips(&["::1"]));
        assert_eq!(
            e("localhost", BOTH, true).unwrap(),
            ips(&["127.0.0.1", "::1"])
        );
        assert_eq!(e("localhost", V4, true).unwrap(), ips(&["127.0.0.1"]));
        assert!(matches!(e("[::1]", V4, true), Err(InetError::Host { .. })));
        assert!(matches!(
            e("nosuch.invalid", BOTH, true),
            Err(InetError::Host { .. })
        ));
        assert!(matches!(e("", BOTH, true), Err(InetError::Empty(_))));
    }

    #[test]
    fn service_names_and_ports() {
        assert_eq!(split_service("smtp"), (None, "smtp"));
        assert_eq!(split_service("127.0.0.1:2525"), (Some("127.0.0.1"), "2525"));
        assert_eq!(split_service("[::1]:25"), (Some("[::1]"), "25"));
        assert_eq!(port("smtp"), Ok(25));
        assert_eq!(port("2525"), Ok(2525));
        let services = "# c\nsmtp\t\t25/tcp\t\tmail\nfoo 99/udp\nbar 1234/tcp baz # x\n";
        assert_eq!(services_port(services, "mail"), Some(25));
        assert_eq!(services_port(services, "baz"), Some(1234));
        assert_eq!(services_port(services, "foo"), None);
    }
}
