//! The loopback part of `/etc/hosts`: names of loopback addresses are answered
//! locally, without DNS (as the C library would for Postfix). Entries for
//! other addresses are ignored: mail routing uses the DNS only.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Loopback names and addresses read from a hosts file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalHosts {
    by_name: HashMap<String, Vec<IpAddr>>,
    by_addr: HashMap<IpAddr, Vec<String>>,
}

impl LocalHosts {
    /// Parses hosts-file text, keeping only loopback addresses. `localhost`
    /// always maps to 127.0.0.1 and ::1 when the file does not name it
    /// (RFC 6761).
    pub fn parse(text: &str) -> LocalHosts {
        let mut h = LocalHosts::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let Some(addr) = fields.next() else { continue };
            // Strip an IPv6 zone (`fe80::1%lo`); such addresses are not loopback anyway.
            let Ok(ip) = addr.split('%').next().unwrap_or(addr).parse::<IpAddr>() else {
                continue;
            };
            if !ip.is_loopback() {
                continue;
            }
            for name in fields {
                let key = key(name);
                if key.is_empty() {
                    continue;
                }
                let ips = h.by_name.entry(key).or_default();
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
                let names = h.by_addr.entry(ip).or_default();
                let name = name.trim_end_matches('.').to_string();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        if !h.by_name.contains_key("localhost") {
            h.by_name.insert(
                "localhost".into(),
                vec![
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ],
            );
            for ip in [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ] {
                h.by_addr
                    .entry(ip)
                    .or_insert_with(|| vec!["localhost".into()]);
            }
        }
        h
    }

    /// Reads `path` (a missing or unreadable file gives just `localhost`).
    pub fn read(path: &std::path::Path) -> LocalHosts {
        LocalHosts::parse(&std::fs::read_to_string(path).unwrap_or_default())
    }

    /// Addresses of a loopback name, if the file names it (case-insensitive,
    /// trailing dot ignored).
    pub fn addrs(&self, name: &str) -> Option<&[IpAddr]> {
        self.by_name.get(&key(name)).map(Vec::as_slice)
    }

    /// Names of a loopback address (first name first), if listed.
    pub fn names(&self, ip: IpAddr) -> Option<&[String]> {
        self.by_addr.get(&ip).map(Vec::as_slice)
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        let h = LocalHosts::parse(
            "127.0.0.1\tlocalhost\n::1 localhost ip6-localhost # c\n\
             127.0.1.1 box.example box\n192.0.2.5 other.example\n# 127.0.0.9 commented\n",
        );
        assert_eq!(
            h.addrs("LOCALHOST."),
            Some(&["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()][..])
        );
        assert_eq!(
            h.addrs("box.example"),
            Some(&["127.0.1.1".parse().unwrap()][..])
        );
        assert_eq!(h.addrs("other.example"), None);
        assert_eq!(
            h.names("127.0.0.1".parse().unwrap()),
            Some(&["localhost".to_string()][..])
        );
        assert_eq!(
            h.names("127.0.1.1".parse().unwrap()).unwrap(),
            &["box.example".to_string(), "box".to_string()]
        );
        assert_eq!(h.names("127.0.0.9".parse().unwrap()), None);
    }

    #[test]
    fn default_localhost() {
        let h = LocalHosts::parse("");
        assert_eq!(h.addrs("localhost").map(<[IpAddr]>::len), Some(2));
        assert_eq!(
            h.names("::1".parse().unwrap()),
            Some(&["localhost".to_string()][..])
        );
    }
}
