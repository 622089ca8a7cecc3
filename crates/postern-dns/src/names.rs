//! Pure helpers: reverse-lookup names, DNSxL query names and reply filters,
//! Postfix's `valid_hostname`.

use std::net::{IpAddr, Ipv4Addr};

/// `4.3.2.1` for `1.2.3.4`, or the 32 reversed nibbles for an IPv6 address
/// (no trailing dot, no zone). IPv4-mapped IPv6 addresses are treated as IPv4.
pub fn reversed_ip(ip: IpAddr) -> String {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(64);
            for b in v6.octets().iter().rev() {
                s.push(hex(b & 0xf));
                s.push('.');
                s.push(hex(b >> 4));
                s.push('.');
            }
            s.pop();
            s
        }
    }
}

fn hex(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

/// The PTR query name: `4.3.2.1.in-addr.arpa` or `….ip6.arpa`.
pub fn ptr_name(ip: IpAddr) -> String {
    let ip = canonical_ip(ip);
    let zone = if ip.is_ipv4() {
        "in-addr.arpa"
    } else {
        "ip6.arpa"
    };
    format!("{}.{}", reversed_ip(ip), zone)
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) → IPv4; everything else unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Postfix's `valid_hostname()`: labels of letters, digits, `-` and `_`, not
/// starting or ending with `-`, at most 63 octets each and 255 in all, and not
/// all-numeric (a "numeric hostname" is an address in disguise). A trailing dot
/// is accepted.
pub fn valid_hostname(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut all_numeric = true;
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return false;
        }
        if label.starts_with('-') || label.ends_with('-') {
            return false;
        }
        for c in label.chars() {
            if c.is_ascii_alphabetic() || c == '_' || c == '-' {
                all_numeric = false;
            } else if !c.is_ascii_digit() {
                return false;
            }
        }
    }
    !all_numeric
}

/// A DNSxL zone as written in a restriction: `zone` or `zone=filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsxlSpec {
    /// The zone queried (`zen.example`).
    pub zone: String,
    /// The reply filter after `=`, if any.
    pub filter: Option<ReplyFilter>,
}

impl DnsxlSpec {
    /// Parses `zone[=d.d.d.d]`. The filter uses Postfix's `ip_match` syntax:
    /// each octet is a number, or `[` a `;`-separated list of numbers and
    /// `lo..hi` ranges `]`, e.g. `127.0.0.[2..11;20]`.
    pub fn parse(spec: &str) -> Result<DnsxlSpec, String> {
        let (zone, filter) = match spec.split_once('=') {
            Some((z, f)) => (z, Some(ReplyFilter::parse(f)?)),
            None => (spec, None),
        };
        let zone = zone.trim_end_matches('.');
        if zone.is_empty() {
            return Err(format!("empty DNSxL zone in \"{spec}\""));
        }
        Ok(DnsxlSpec {
            zone: zone.to_string(),
            filter,
        })
    }

    /// Whether a list of A records passes the filter (no filter: any record).
    pub fn matches(&self, addrs: &[Ipv4Addr]) -> bool {
        match &self.filter {
            None => !addrs.is_empty(),
            Some(f) => addrs.iter().any(|a| f.matches(*a)),
        }
    }
}

/// A DNSxL reply filter: four octet patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyFilter {
    octets: [Vec<(u8, u8)>; 4],
}

impl ReplyFilter {
    /// Parses `d.d.d.d` where each `d` is `N` or `[N;A..B;…]`.
    pub fn parse(text: &str) -> Result<ReplyFilter, String> {
        let bad = |why: &str| format!("bad DNSxL reply filter \"{text}\": {why}");
        let mut octets: [Vec<(u8, u8)>; 4] = Default::default();
        let mut rest = text;
        for (i, slot) in octets.iter_mut().enumerate() {
            let part;
            if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or_else(|| bad("missing \"]\""))?;
                part = &after[..end];
                rest = &after[end + 1..];
                for item in part.split(';') {
                    let range = match item.split_once("..") {
                        Some((lo, hi)) => (
                            num(lo).ok_or_else(|| bad(item))?,
                            num(hi).ok_or_else(|| bad(item))?,
                        ),
                        None => {
                            let n = num(item).ok_or_else(|| bad(item))?;
                            (n, n)
                        }
                    };
                    if range.0 > range.1 {
                        return Err(bad(item));
                    }
                    slot.push(range);
                }
            } else {
                let end = rest.find('.').unwrap_or(rest.len());
                part = &rest[..end];
                rest = &rest[end..];
                let n = num(part).ok_or_else(|| bad(part))?;
                slot.push((n, n));
            }
            if i < 3 {
                rest = rest
                    .strip_prefix('.')
                    .ok_or_else(|| bad("need four octets"))?;
            }
        }
        if !rest.is_empty() {
            return Err(bad("trailing text"));
        }
        Ok(ReplyFilter { octets })
    }

    /// Whether `addr` matches.
    pub fn matches(&self, addr: Ipv4Addr) -> bool {
        addr.octets()
            .iter()
            .zip(self.octets.iter())
            .all(|(o, ranges)| ranges.iter().any(|(lo, hi)| lo <= o && o <= hi))
    }
}

fn num(s: &str) -> Option<u8> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The RHSBL query domain for `what` (an address or a domain), following
/// Postfix: the part after the last `@`; `None` (skip the lookup) for an
/// address literal, an invalid hostname, or a name whose last label is all
/// digits.
pub fn rhsbl_domain(what: &str) -> Option<&str> {
    let domain = match what.rfind('@') {
        Some(i) => &what[i + 1..],
        None => what,
    };
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.starts_with('[') || domain.is_empty() || !valid_hostname(domain) {
        return None;
    }
    let last = domain.rsplit('.').next().unwrap_or(domain);
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(reversed_ip(v4), "1.2.0.192");
        assert_eq!(ptr_name(v4), "1.2.0.192.in-addr.arpa");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(ptr_name(mapped), "1.2.0.192.in-addr.arpa");
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            reversed_ip(v6),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
        );
        assert!(ptr_name(v6).ends_with(".ip6.arpa"));
    }

    #[test]
    fn hostnames() {
        assert!(valid_hostname("mail.example.com"));
        assert!(valid_hostname("mail.example.com."));
        assert!(valid_hostname("a_b.example"));
        assert!(!valid_hostname("1.2.3.4"));
        assert!(!valid_hostname("bad..name"));
        assert!(!valid_hostname("-bad.example"));
        assert!(!valid_hostname("sp ace.example"));
        assert!(!valid_hostname(""));
        assert!(!valid_hostname(&"a".repeat(64)));
    }

    #[test]
    fn filters() {
        let s = DnsxlSpec::parse("zen.example=127.0.0.[2..11;20]").unwrap();
        assert_eq!(s.zone, "zen.example");
        assert!(s.matches(&["127.0.0.2".parse().unwrap()]));
        assert!(s.matches(&["127.0.0.1".parse().unwrap(), "127.0.0.20".parse().unwrap()]));
        assert!(!s.matches(&["127.0.0.12".parse().unwrap()]));
        assert!(!s.matches(&[]));
        let any = DnsxlSpec::parse("list.example.").unwrap();
        assert_eq!(any.zone, "list.example");
        assert!(any.filter.is_none());
        assert!(any.matches(&["127.0.0.9".parse().unwrap()]));
        assert!(DnsxlSpec::parse("z=127.0.0").is_err());
        assert!(DnsxlSpec::parse("z=127.0.0.256").is_err());
        assert!(DnsxlSpec::parse("z=127.0.0.[5..2]").is_err());
        assert!(DnsxlSpec::parse("=127.0.0.2").is_err());
    }

    #[test]
    fn rhsbl_domains() {
        assert_eq!(rhsbl_domain("user@Spam.Example"), Some("Spam.Example"));
        assert_eq!(rhsbl_domain("host.example."), Some("host.example"));
        assert_eq!(rhsbl_domain("user@[192.0.2.1]"), None);
        assert_eq!(rhsbl_domain("user@host.123"), None);
        assert_eq!(rhsbl_domain(""), None);
    }
}
