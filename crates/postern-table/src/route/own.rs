//! This machine's own addresses as Postfix's `own_inet_addr` and `proxy_inet_addr` see
//! them: those of `inet_interfaces` (every interface address for `all`, 127.0.0.1 and ::1
//! for `loopback-only`) with their interface netmasks, and those of `proxy_interfaces`.
//!
//! # Configuration
//! `inet_interfaces`, `proxy_interfaces`; the caller gives the enabled protocols
//! (`inet_protocols`). Host names other than `localhost` are not looked up: a name is
//! skipped (listening on it is master's business).

use crate::OwnAddr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Own addresses.
#[derive(Debug, Clone, Default)]
pub struct Own {
    /// `inet_interfaces`, with interface netmasks (for `mynetworks_style`).
    pub inet: Vec<OwnAddr>,
    /// `proxy_interfaces` (count for address literals only).
    pub proxy: Vec<IpAddr>,
}

impl Own {
    /// Reads `inet_interfaces` and `proxy_interfaces` through `get`, for the protocols
    /// enabled (`ipv4`, `ipv6`).
    pub fn new(get: &dyn Fn(&str) -> String, ipv4: bool, ipv6: bool) -> Own {
        let ifaces: Vec<OwnAddr> = match postern_sys::net::interface_addresses() {
            Ok(list) => list
                .into_iter()
                .filter(|a| if a.ip.is_ipv4() { ipv4 } else { ipv6 })
                .map(|a| (a.ip, a.netmask))
                .collect(),
            Err(_) => Vec::new(),
        };
        Own::from_interfaces(get, &ifaces)
    }

    /// [`Own::new`] with the interface list given.
    pub fn from_interfaces(get: &dyn Fn(&str) -> String, ifaces: &[OwnAddr]) -> Own {
        Own {
            inet: expand(&get("inet_interfaces"), ifaces),
            proxy: expand(&get("proxy_interfaces"), ifaces)
                .into_iter()
                .map(|(ip, _)| ip)
                .collect(),
        }
    }

    /// Every own address (`inet_interfaces` and `proxy_interfaces`).
    pub fn all(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.inet.iter().map(|(ip, _)| *ip).collect();
        v.extend(self.proxy.iter().copied());
        v
    }
}

fn expand(value: &str, ifaces: &[OwnAddr]) -> Vec<OwnAddr> {
    let mut out: Vec<OwnAddr> = Vec::new();
    let push = |ip: IpAddr, out: &mut Vec<OwnAddr>| {
        if !out.iter().any(|(o, _)| *o == ip) {
            let mask = ifaces.iter().find(|(i, _)| *i == ip).and_then(|(_, m)| *m);
            out.push((ip, mask));
        }
    };
    let words = value
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    for word in words {
        match word.to_ascii_lowercase().as_str() {
            "all" => ifaces.iter().for_each(|(ip, _)| push(*ip, &mut out)),
            "loopback-only" => {
                for ip in [
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ] {
                    if ifaces.iter().any(|(i, _)| *i == ip) {
                        push(ip, &mut out);
                    }
                }
            }
            "localhost" => push(IpAddr::V4(Ipv4Addr::LOCALHOST), &mut out),
            w => {
                let w = w.trim_start_matches('[').trim_end_matches(']');
                if let Ok(ip) = w.parse() {
                    push(ip, &mut out);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_and_proxy_interfaces() {
        let p = |s: &str| s.parse::<IpAddr>().unwrap();
        let ifaces = vec![
            (p("127.0.0.1"), Some(p("255.0.0.0"))),
            (p("192.0.2.2"), Some(p("255.255.255.0"))),
            (p("::1"), None),
        ];
        let cfg = |all: &str| {
            let all = all.to_string();
            move |n: &str| match n {
                "inet_interfaces" => all.clone(),
                "proxy_interfaces" => "198.51.100.7".to_string(),
                _ => String::new(),
            }
        };
        let own = Own::from_interfaces(&cfg("all"), &ifaces);
        assert_eq!(own.inet, ifaces);
        assert_eq!(own.proxy, vec![p("198.51.100.7")]);
        let own = Own::from_interfaces(&cfg("loopback-only"), &ifaces);
        assert_eq!(own.all(), vec![p("127.0.0.1"), p("::1"), p("198.51.100.7")]);
        let own = Own::from_interfaces(&cfg("192.0.2.2, [10.1.1.1]"), &ifaces);
        assert_eq!(
            own.inet,
            vec![
                (p("192.0.2.2"), Some(p("255.255.255.0"))),
                (p("10.1.1.1"), None)
            ]
        );
    }
}
