//! Which name servers to ask: the `dns_servers` parameter, else `/etc/resolv.conf`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Parses one `dns_servers` item: `ip`, `ip:port`, `[v6]` or `[v6]:port`
/// (a bare IPv6 address takes port 53).
pub fn parse_server(item: &str) -> Result<SocketAddr, String> {
    if let Ok(sa) = item.parse::<SocketAddr>() {
        return Ok(sa);
    }
    if let Ok(ip) = item.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    if let Some(inner) = item.strip_prefix('[').and_then(|s| s.strip_suffix(']'))
        && let Ok(ip) = inner.parse::<IpAddr>()
    {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(format!(
        "bad dns_servers entry \"{item}\": expected ip, ip:port or [ipv6]:port"
    ))
}

/// The `nameserver` lines of resolv.conf text (port 53; IPv6 zone suffixes
/// dropped; unparsable lines skipped). `search`, `domain` and `options` are
/// ignored: mail lookups are absolute. An empty result means 127.0.0.1, as
/// with the C library.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        if f.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = f.next() else { continue };
        let addr = addr.split('%').next().unwrap_or(addr);
        if let Ok(ip) = addr.parse::<IpAddr>() {
            let sa = SocketAddr::new(ip, 53);
            if !out.contains(&sa) {
                out.push(sa);
            }
        }
    }
    if out.is_empty() {
        out.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_items() {
        assert_eq!(
            parse_server("127.0.0.1").unwrap(),
            "127.0.0.1:53".parse().unwrap()
        );
        assert_eq!(
            parse_server("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(parse_server("::1").unwrap(), "[::1]:53".parse().unwrap());
        assert_eq!(parse_server("[::1]").unwrap(), "[::1]:53".parse().unwrap());
        assert_eq!(
            parse_server("[::1]:5300").unwrap(),
            "[::1]:5300".parse().unwrap()
        );
        assert!(parse_server("dns.example").is_err());
        assert!(parse_server("1.2.3.4:99999").is_err());
    }

    #[test]
    fn resolv_conf() {
        let t = "# x\nsearch example.com\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\n\
                 nameserver 192.0.2.53\noptions ndots:5\nnameserver junk\n";
        assert_eq!(
            parse_resolv_conf(t),
            vec![
                "192.0.2.53:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(parse_resolv_conf(""), vec!["127.0.0.1:53".parse().unwrap()]);
    }
}
