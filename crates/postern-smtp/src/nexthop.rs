//! Next-hop syntax (pure): what qmgr puts in `DeliverRequest::nexthop`.
//!
//! SMTP (`smtp`, `relay`, …):
//! * `[host]` / `[host]:port` / `[1.2.3.4]` / `[ipv6:…]` — no MX lookup;
//! * `domain` / `domain:port` — MX lookup, A/AAAA fallback.
//!
//! LMTP (`lmtp`): never MX; `inet:host[:port]`, `unix:/path`, `host[:port]`,
//! `[host][:port]`, or an absolute path (as `unix:`). Default port 24.
//! Any `smtp:`/`inet:` prefix before an SMTP next hop is dropped.

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A host name or address literal.
    Inet {
        /// Host or domain name, or an IP address (without brackets).
        host: String,
        /// TCP port.
        port: u16,
        /// Look up MX records for `host`.
        mx: bool,
    },
    /// A UNIX-domain socket (LMTP only).
    Unix(String),
}

/// Parses `nexthop`; `lmtp` selects LMTP's syntax; `default_port` is 25 or 24.
pub fn parse(nexthop: &str, lmtp: bool, default_port: u16) -> Result<Dest, String> {
    let bad = || format!("bad next-hop specification: \"{nexthop}\"");
    let mut s = nexthop.trim();
    if lmtp {
        if let Some(p) = s.strip_prefix("unix:") {
            return if p.is_empty() {
                Err(bad())
            } else {
                Ok(Dest::Unix(p.to_string()))
            };
        }
        if s.starts_with('/') {
            return Ok(Dest::Unix(s.to_string()));
        }
    }
    if let Some(rest) = s.strip_prefix("inet:") {
        s = rest;
    }
    if s.is_empty() {
        return Err(bad());
    }
    let (host, port, bracketed) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        let h = h
            .strip_prefix("ipv6:")
            .or_else(|| h.strip_prefix("IPv6:"))
            .or_else(|| h.strip_prefix("IPV6:"))
            .unwrap_or(h);
        (h, port, true)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p), false),
            Some(_) => return Err(bad()),
            None => (s, None, false),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    let port = match port {
        None => default_port,
        Some(p) => parse_port(p).ok_or_else(bad)?,
    };
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    Ok(Dest::Inet {
        host: host.to_string(),
        port,
        mx: !lmtp && !bracketed && !is_ip,
    })
}

fn parse_port(p: &str) -> Option<u16> {
    match p {
        "smtp" => Some(25),
        "lmtp" => Some(24),
        "submission" => Some(587),
        _ => p.parse().ok().filter(|&n| n > 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(h: &str, port: u16, mx: bool) -> Dest {
        Dest::Inet {
            host: h.into(),
            port,
            mx,
        }
    }

    #[test]
    fn smtp_forms() {
        assert_eq!(
            parse("example.com", false, 25),
            Ok(inet("example.com", 25, true))
        );
        assert_eq!(
            parse("example.com:2525", false, 25),
            Ok(inet("example.com", 2525, true))
        );
        assert_eq!(
            parse("[mx.example.com]", false, 25),
            Ok(inet("mx.example.com", 25, false))
        );
        assert_eq!(
            parse("[127.0.0.1]:2526", false, 25),
            Ok(inet("127.0.0.1", 2526, false))
        );
        assert_eq!(
            parse("[ipv6:::1]:26", false, 25),
            Ok(inet("::1", 26, false))
        );
        assert_eq!(
            parse("192.0.2.1", false, 25),
            Ok(inet("192.0.2.1", 25, false))
        );
        assert_eq!(parse("inet:[h]:smtp", false, 25), Ok(inet("h", 25, false)));
        for bad in ["", "[h", "[h]x", "h:0", "h:99999", "h:abc", "[]", "a b"] {
            assert!(parse(bad, false, 25).is_err(), "{bad}");
        }
    }

    #[test]
    fn lmtp_forms() {
        assert_eq!(
            parse("unix:/run/lmtp", true, 24),
            Ok(Dest::Unix("/run/lmtp".into()))
        );
        assert_eq!(
            parse("/run/lmtp", true, 24),
            Ok(Dest::Unix("/run/lmtp".into()))
        );
        assert_eq!(
            parse("inet:localhost", true, 24),
            Ok(inet("localhost", 24, false))
        );
        assert_eq!(
            parse("inet:127.0.0.1:2400", true, 24),
            Ok(inet("127.0.0.1", 2400, false))
        );
        assert_eq!(
            parse("lmtp.example:2400", true, 24),
            Ok(inet("lmtp.example", 2400, false))
        );
        assert!(parse("unix:", true, 24).is_err());
    }
}
