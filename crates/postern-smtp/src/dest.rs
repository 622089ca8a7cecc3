//! From a parsed next hop to the addresses to try, in order (RFC 5321 §5.1).
//!
//! * MX records by preference, shuffled among equal preference; each MX
//!   host's addresses (IPv4 first); at most `limit` addresses in all.
//! * No MX records → the domain's own A/AAAA records.
//! * A null MX (RFC 7505) → bounce 5.1.10; a name that does not exist →
//!   bounce 5.4.4; a DNS failure → defer 4.4.3.

use crate::nexthop::Dest;
use crate::result::Outcome;
use postern_dns::{Lookup, Resolver};
use std::net::IpAddr;

/// One place to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// TCP: the host's name (as found in MX or the next hop), address, port.
    Inet {
        /// Host name for texts and `relay=`.
        host: String,
        /// Address.
        ip: IpAddr,
        /// Port.
        port: u16,
    },
    /// A UNIX-domain socket.
    Unix(String),
}

fn not_found(name: &str, rtype: &str) -> Outcome {
    Outcome::bounce(
        "5.4.4",
        format!(
            "Host or domain name not found. Name service error for name={name} type={rtype}: Host not found"
        ),
    )
}

fn temp_fail(name: &str, rtype: &str) -> Outcome {
    Outcome::defer(
        "4.4.3",
        format!(
            "Host or domain name not found. Name service error for name={name} type={rtype}: Host not found, try again"
        ),
    )
}

/// A cheap seed for shuffling equal-preference MX hosts (no RNG crate needed).
fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32) | 1
}

/// Orders MX records by preference, shuffling equal preferences with `seed`.
pub fn order_mx(mut mx: Vec<(u16, String)>, mut seed: u64) -> Vec<String> {
    mx.sort_by_key(|(p, _)| *p);
    let mut out = Vec::with_capacity(mx.len());
    let mut i = 0;
    while i < mx.len() {
        let j = i + mx[i..].iter().take_while(|(p, _)| *p == mx[i].0).count();
        let mut group: Vec<String> = mx[i..j].iter().map(|(_, h)| h.clone()).collect();
        for k in (1..group.len()).rev() {
            // xorshift64
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            group.swap(k, (seed % (k as u64 + 1)) as usize);
        }
        out.extend(group);
        i = j;
    }
    out
}

/// Resolves `dest` (never [`Dest::Unix`]) to at most `limit` targets
/// (0 = no limit).
pub async fn resolve(r: &Resolver, dest: &Dest, limit: usize) -> Result<Vec<Target>, Outcome> {
    let (host, port, mx) = match dest {
        Dest::Unix(p) => return Ok(vec![Target::Unix(p.clone())]),
        Dest::Inet { host, port, mx } => (host.as_str(), *port, *mx),
    };
    let limit = if limit == 0 { usize::MAX } else { limit };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![Target::Inet {
            host: ip.to_string(),
            ip,
            port,
        }]);
    }
    let hosts = if mx {
        match r.mx(host).await {
            Lookup::Found(list) if postern_dns::is_null_mx(&list) => {
                return Err(Outcome::bounce(
                    "5.1.10",
                    format!("Domain {host} does not accept mail (nullMX)"),
                ));
            }
            Lookup::Found(list) if !list.is_empty() => order_mx(list, seed()),
            Lookup::Found(_) | Lookup::NotFound => vec![host.to_string()],
            Lookup::TempFail(_) => return Err(temp_fail(host, "MX")),
        }
    } else {
        vec![host.to_string()]
    };
    let via_mx = mx && !(hosts.len() == 1 && hosts[0] == host);
    let mut out = Vec::new();
    let mut temp = None;
    let mut missing = None;
    for h in &hosts {
        if out.len() >= limit {
            break;
        }
        match r.a_aaaa(h).await {
            Lookup::Found(ips) => {
                for ip in ips {
                    if out.len() < limit {
                        out.push(Target::Inet {
                            host: h.clone(),
                            ip,
                            port,
                        });
                    }
                }
            }
            Lookup::NotFound => missing = missing.or(Some(h.clone())),
            Lookup::TempFail(_) => temp = temp.or(Some(h.clone())),
        }
    }
    if !out.is_empty() {
        return Ok(out);
    }
    if let Some(h) = temp {
        return Err(temp_fail(&h, "A"));
    }
    let name = missing.unwrap_or_else(|| host.to_string());
    // Without MX records the domain itself was looked up: name it as
    // Postfix does (type=MX); an MX host without address: type=A.
    Err(not_found(&name, if mx && !via_mx { "MX" } else { "A" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mx_order_preference_then_shuffle() {
        let mx = vec![
            (20, "c".to_string()),
            (10, "a".to_string()),
            (10, "b".to_string()),
            (30, "d".to_string()),
        ];
        let mut seen_first = std::collections::HashSet::new();
        for s in 1..64u64 {
            let o = order_mx(mx.clone(), s * 7919);
            assert_eq!(&o[2..], ["c", "d"]);
            let mut head = o[..2].to_vec();
            seen_first.insert(head[0].clone());
            head.sort();
            assert_eq!(head, ["a", "b"]);
        }
        assert_eq!(seen_first.len(), 2, "equal preferences are shuffled");
    }

    #[test]
    fn texts() {
        let o = not_found("nx.example", "MX");
        assert_eq!(o.dsn, "5.4.4");
        assert_eq!(
            o.text,
            "Host or domain name not found. Name service error for name=nx.example type=MX: Host not found"
        );
        assert_eq!(temp_fail("x", "MX").dsn, "4.4.3");
    }
}
