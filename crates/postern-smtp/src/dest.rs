//! From a parsed next hop to the addresses to try, in order (RFC 5321 §5.1).
//!
//! * MX records by preference, shuffled among equal preference; then each
//!   MX host's addresses of the families `inet_protocols` enables (A only
//!   for `ipv4`, AAAA only for `ipv6`, both for `all`).
//! * Among equal MX preference, `*_address_preference` decides which family
//!   goes first (`ipv4`, `ipv6`), or `any`: no family order, and with
//!   `*_randomize_addresses` the addresses are shuffled (Postfix's default).
//! * At most `*_mx_address_limit` addresses; with
//!   `*_balance_inet_protocols` the cut keeps both families when both exist
//!   (Postfix 3.3's `smtp_balance_inet_proto`), so an IPv6-heavy destination
//!   that is unreachable over IPv6 still gets its IPv4 addresses tried.
//! * No MX records → the domain's own A/AAAA records.
//! * A null MX (RFC 7505) → bounce 5.1.10; a name that does not exist →
//!   bounce 5.4.4; a DNS failure → defer 4.4.3. An address literal of a
//!   family that `inet_protocols` disables is "not found" (as Postfix, which
//!   then looks it up as a name).
//! * Without DNS (`smtp_dns_support_level = disabled`, `disable_dns_lookups = yes`):
//!   [`resolve_native`], no MX lookup, the host's addresses from the system's name
//!   service (`/etc/hosts`, nsswitch.conf), as Postfix's native lookups.
//! * With DNS, `smtp_host_lookup` decides how a host's addresses are found: `dns`,
//!   `native` (MX records still from the DNS), or `dns, native` (the system's name
//!   service for a host the DNS does not know).
//!
//! # Configuration
//! `inet_protocols`, `smtp_address_preference`, `smtp_randomize_addresses`,
//! `smtp_balance_inet_protocols`, `smtp_mx_address_limit`, `smtp_host_lookup` (the `lmtp_`
//! forms for LMTP).
//!
//! # Security
//! DNS answers are bounded by hickory; the address list is cut at
//! [`MAX_ADDRESSES`] whatever the limit says.

use crate::nexthop::Dest;
use crate::result::Outcome;
use postern_config::p;
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
pub fn order_mx(mx: Vec<(u16, String)>, seed: u64) -> Vec<String> {
    order_mx_pref(mx, seed)
        .into_iter()
        .map(|(_, h)| h)
        .collect()
}

/// [`order_mx`] keeping each host's preference.
pub fn order_mx_pref(mut mx: Vec<(u16, String)>, mut seed: u64) -> Vec<(u16, String)> {
    mx.sort_by_key(|(p, _)| *p);
    let mut i = 0;
    while i < mx.len() {
        let j = i + mx[i..].iter().take_while(|(p, _)| *p == mx[i].0).count();
        shuffle(&mut mx[i..j], &mut seed);
        i = j;
    }
    mx
}

/// Hard cap on the addresses collected for one delivery.
pub const MAX_ADDRESSES: usize = 100;

/// Address families the client uses (`inet_protocols`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families {
    /// IPv4 (A records).
    pub v4: bool,
    /// IPv6 (AAAA records).
    pub v6: bool,
}

impl Families {
    /// Parses `inet_protocols`: `all`, or `ipv4` and/or `ipv6` separated by
    /// blanks or commas.
    pub fn parse(value: &str) -> Result<Families, String> {
        // The parser master uses for its listeners (`all` = both families).
        let p = postern_server::inet::parse_protocols(value, true).map_err(|e| e.to_string())?;
        Ok(Families {
            v4: p.ipv4,
            v6: p.ipv6,
        })
    }

    fn allows(self, ip: &IpAddr) -> bool {
        if ip.is_ipv4() { self.v4 } else { self.v6 }
    }
}

/// `*_address_preference`: which family goes first among equal preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// No family order (Postfix's default).
    Any,
    /// IPv4 first.
    Ipv4,
    /// IPv6 first.
    Ipv6,
}

impl Preference {
    /// Parses `any`, `ipv4` or `ipv6`.
    pub fn parse(value: &str) -> Option<Preference> {
        match value.trim().to_ascii_lowercase().as_str() {
            "any" => Some(Preference::Any),
            "ipv4" => Some(Preference::Ipv4),
            "ipv6" => Some(Preference::Ipv6),
            _ => None,
        }
    }

    fn rank(self, ip: &IpAddr) -> u8 {
        match (self, ip.is_ipv6()) {
            (Preference::Ipv4, true) | (Preference::Ipv6, false) => 1,
            _ => 0,
        }
    }
}

#[path = "dest_native.rs"]
mod native;
pub use native::{HostLookup, resolve_native, resolve_system};
use native::{native_addresses, system_lookup};

/// How addresses are chosen and ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrPolicy {
    /// `inet_protocols`.
    pub families: Families,
    /// `*_address_preference`.
    pub preference: Preference,
    /// `*_randomize_addresses`.
    pub randomize: bool,
    /// `*_balance_inet_protocols`.
    pub balance: bool,
    /// `*_mx_address_limit` (0 = no limit).
    pub limit: usize,
    /// `*_host_lookup`.
    pub lookup: HostLookup,
}

impl Default for AddrPolicy {
    fn default() -> Self {
        AddrPolicy {
            families: Families { v4: true, v6: true },
            preference: Preference::Any,
            randomize: true,
            balance: true,
            limit: 5,
            lookup: HostLookup {
                dns: true,
                native: false,
            },
        }
    }
}

impl AddrPolicy {
    /// Reads the policy for the `smtp` or `lmtp` prefix; a bad value is
    /// logged and replaced by its default.
    pub fn from_config(cfg: &postern_config::Config, pfx: &str) -> AddrPolicy {
        let d = AddrPolicy::default();
        let families = Families::parse(&cfg.str(p::INET_PROTOCOLS)).unwrap_or_else(|e| {
            postern_log::warning(format!("{e}; using \"all\""));
            d.families
        });
        let name = format!("{pfx}_address_preference");
        let v = cfg.get(&name);
        let preference = Preference::parse(&v).unwrap_or_else(|| {
            postern_log::warning(format!(
                "{name}: bad value \"{v}\"; using \"any\" (expected any, ipv4 or ipv6)"
            ));
            Preference::Any
        });
        let lmtp = pfx == "lmtp";
        let pick = |smtp, lmtp_param| if lmtp { lmtp_param } else { smtp };
        let lookup_name = if lmtp {
            p::LMTP_HOST_LOOKUP
        } else {
            p::SMTP_HOST_LOOKUP
        };
        let lookup = HostLookup::parse(lookup_name.name(), &cfg.str(lookup_name))
            .unwrap_or_else(|e| postern_log::fatal(e));
        AddrPolicy {
            lookup,
            families,
            preference,
            randomize: cfg.bool(pick(
                p::SMTP_RANDOMIZE_ADDRESSES,
                p::LMTP_RANDOMIZE_ADDRESSES,
            )),
            balance: cfg.bool(pick(
                p::SMTP_BALANCE_INET_PROTOCOLS,
                p::LMTP_BALANCE_INET_PROTOCOLS,
            )),
            limit: cfg
                .int(if lmtp {
                    p::LMTP_MX_ADDRESS_LIMIT
                } else {
                    p::SMTP_MX_ADDRESS_LIMIT
                })
                .max(0) as usize,
        }
    }
}

/// One candidate: MX preference (0 without MX), host name, address.
type Cand = (u16, String, IpAddr);

fn shuffle<T>(v: &mut [T], seed: &mut u64) {
    for k in (1..v.len()).rev() {
        // xorshift64
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        v.swap(k, (*seed % (k as u64 + 1)) as usize);
    }
}

/// Orders candidates (already in MX order) as Postfix does: shuffled within
/// equal preference when `randomize`, then stably sorted by (preference,
/// family rank); then cut to the limit, keeping both families when
/// `balance` (Postfix's regions R1–R3).
pub fn order_addresses(mut c: Vec<Cand>, p: &AddrPolicy, mut seed: u64) -> Vec<Cand> {
    if p.randomize {
        let mut i = 0;
        while i < c.len() {
            let j = i + c[i..].iter().take_while(|x| x.0 == c[i].0).count();
            shuffle(&mut c[i..j], &mut seed);
            i = j;
        }
    }
    c.sort_by_key(|(pref, _, ip)| (*pref, p.preference.rank(ip)));
    let limit = if p.limit == 0 {
        MAX_ADDRESSES
    } else {
        p.limit.min(MAX_ADDRESSES)
    };
    if c.len() <= limit {
        return c;
    }
    let v4 = c.iter().filter(|x| x.2.is_ipv4()).count();
    let v6 = c.len() - v4;
    if !p.balance || v4 == 0 || v6 == 0 {
        c.truncate(limit);
        return c;
    }
    let (mut t4, mut t6) = if v6 <= limit / 2 {
        (limit - v6, v6)
    } else if v4 <= limit / 2 {
        (v4, limit - v4)
    } else {
        let t4 = (limit + usize::from(c[0].2.is_ipv4())) / 2;
        (t4, limit - t4)
    };
    c.retain(|x| {
        let t = if x.2.is_ipv4() { &mut t4 } else { &mut t6 };
        if *t > 0 {
            *t -= 1;
            true
        } else {
            false
        }
    });
    c
}

/// A host's addresses as `policy.lookup` says: DNS, the system's name service, or DNS
/// and then the system's for a host the DNS does not know (Postfix's `dns, native`).
async fn host_addresses(r: &Resolver, host: &str, policy: &AddrPolicy) -> Lookup<Vec<IpAddr>> {
    if policy.lookup.dns {
        let f = policy.families;
        let found = match (f.v4, f.v6) {
            (true, true) => r.a_aaaa(host).await,
            (true, false) => r.a(host).await,
            _ => r.aaaa(host).await,
        };
        if !(policy.lookup.native && matches!(found, Lookup::NotFound)) {
            return found;
        }
    }
    native_addresses(host, system_lookup)
}

/// An address literal as the next hop: itself, or "not found" when `inet_protocols`
/// disables its family; `None` for a name.
fn literal(host: &str, port: u16, policy: &AddrPolicy) -> Option<Result<Vec<Target>, Outcome>> {
    let ip = host.parse::<IpAddr>().ok()?;
    if !policy.families.allows(&ip) {
        return Some(Err(not_found(host, "A")));
    }
    Some(Ok(vec![Target::Inet {
        host: ip.to_string(),
        ip,
        port,
    }]))
}

/// Resolves `dest` (never [`Dest::Unix`]) to targets under `policy`.
pub async fn resolve(
    r: &Resolver,
    dest: &Dest,
    policy: &AddrPolicy,
) -> Result<Vec<Target>, Outcome> {
    let (host, port, mx) = match dest {
        Dest::Unix(p) => return Ok(vec![Target::Unix(p.clone())]),
        Dest::Inet { host, port, mx } => (host.as_str(), *port, *mx),
    };
    if let Some(t) = literal(host, port, policy) {
        return t;
    }
    let hosts: Vec<(u16, String)> = if mx {
        match r.mx(host).await {
            Lookup::Found(list) if postern_dns::is_null_mx(&list) => {
                return Err(Outcome::bounce(
                    "5.1.10",
                    format!("Domain {host} does not accept mail (nullMX)"),
                ));
            }
            Lookup::Found(list) if !list.is_empty() => order_mx_pref(list, seed()),
            Lookup::Found(_) | Lookup::NotFound => vec![(0, host.to_string())],
            Lookup::TempFail(_) => return Err(temp_fail(host, "MX")),
        }
    } else {
        vec![(0, host.to_string())]
    };
    let via_mx = mx && !(hosts.len() == 1 && hosts[0].1 == host);
    let mut cands: Vec<Cand> = Vec::new();
    let mut temp = None;
    let mut missing = None;
    for (pref, h) in &hosts {
        if cands.len() >= MAX_ADDRESSES {
            break;
        }
        match host_addresses(r, h, policy).await {
            Lookup::Found(ips) => {
                for ip in ips.into_iter().filter(|ip| policy.families.allows(ip)) {
                    if cands.len() < MAX_ADDRESSES {
                        cands.push((*pref, h.clone(), ip));
                    }
                }
            }
            Lookup::NotFound => missing = missing.or(Some(h.clone())),
            Lookup::TempFail(_) => temp = temp.or(Some(h.clone())),
        }
    }
    if !cands.is_empty() {
        return Ok(order_addresses(cands, policy, seed())
            .into_iter()
            .map(|(_, host, ip)| Target::Inet { host, ip, port })
            .collect());
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

    fn cands(spec: &[(u16, &str)]) -> Vec<Cand> {
        spec.iter()
            .map(|(p, ip)| (*p, format!("h{p}"), ip.parse().unwrap()))
            .collect()
    }

    fn ips(c: &[Cand]) -> Vec<String> {
        c.iter().map(|x| x.2.to_string()).collect()
    }

    fn policy(preference: Preference, limit: usize) -> AddrPolicy {
        AddrPolicy {
            preference,
            limit,
            ..AddrPolicy::default()
        }
    }

    #[test]
    fn inet_protocols_values() {
        let both = Families { v4: true, v6: true };
        assert_eq!(Families::parse("all"), Ok(both));
        assert_eq!(Families::parse("ipv4, ipv6"), Ok(both));
        assert_eq!(
            Families::parse("ipv4"),
            Ok(Families {
                v4: true,
                v6: false
            })
        );
        assert_eq!(
            Families::parse(" IPv6 "),
            Ok(Families {
                v4: false,
                v6: true
            })
        );
        assert!(Families::parse("").is_err());
        assert!(Families::parse("ipv5").is_err());
        assert_eq!(Preference::parse("IPv6"), Some(Preference::Ipv6));
        assert_eq!(Preference::parse("any"), Some(Preference::Any));
        assert_eq!(Preference::parse("both"), None);
    }

    #[test]
    fn family_preference_within_equal_mx_preference_only() {
        let c = cands(&[
            (10, "::1"),
            (10, "127.0.0.1"),
            (20, "::2"),
            (20, "127.0.0.2"),
        ]);
        for seed in 1..20u64 {
            let v4 = order_addresses(c.clone(), &policy(Preference::Ipv4, 0), seed * 31);
            assert_eq!(ips(&v4), ["127.0.0.1", "::1", "127.0.0.2", "::2"]);
            let v6 = order_addresses(c.clone(), &policy(Preference::Ipv6, 0), seed * 31);
            assert_eq!(ips(&v6), ["::1", "127.0.0.1", "::2", "127.0.0.2"]);
        }
        let mut firsts = std::collections::HashSet::new();
        for seed in 1..64u64 {
            let any = order_addresses(c.clone(), &policy(Preference::Any, 0), seed * 7919);
            assert!(any[..2].iter().all(|x| x.0 == 10), "MX order kept");
            firsts.insert(any[0].2);
        }
        assert_eq!(firsts.len(), 2, "any: both families come first sometimes");
        let fixed = AddrPolicy {
            randomize: false,
            ..policy(Preference::Any, 0)
        };
        assert_eq!(
            ips(&order_addresses(c, &fixed, 5)),
            ["::1", "127.0.0.1", "::2", "127.0.0.2"]
        );
    }

    #[test]
    fn balance_keeps_both_families_within_the_limit() {
        // Five IPv6 addresses first, one IPv4 last, limit 2 (Postfix's R1).
        let c = cands(&[
            (10, "::1"),
            (10, "::2"),
            (10, "::3"),
            (10, "::4"),
            (10, "::5"),
            (20, "127.0.0.1"),
        ]);
        let p = AddrPolicy {
            randomize: false,
            ..policy(Preference::Ipv6, 2)
        };
        assert_eq!(
            ips(&order_addresses(c.clone(), &p, 1)),
            ["::1", "127.0.0.1"]
        );
        let unbalanced = AddrPolicy {
            balance: false,
            ..p
        };
        assert_eq!(ips(&order_addresses(c, &unbalanced, 1)), ["::1", "::2"]);
        // R2: many of both, limit 3, the first address decides the odd one.
        let c = cands(&[
            (10, "127.0.0.1"),
            (10, "127.0.0.2"),
            (10, "127.0.0.3"),
            (10, "::1"),
            (10, "::2"),
        ]);
        let p = AddrPolicy {
            randomize: false,
            ..policy(Preference::Ipv4, 3)
        };
        assert_eq!(
            ips(&order_addresses(c, &p, 1)),
            ["127.0.0.1", "127.0.0.2", "::1"]
        );
        // One family only: a plain cut.
        let c = cands(&[(10, "127.0.0.1"), (10, "127.0.0.2"), (10, "127.0.0.3")]);
        assert_eq!(order_addresses(c, &policy(Preference::Any, 2), 3).len(), 2);
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
