//! `mynetworks` when it is not set: Postfix's `mynetworks_style` applied to this machine's
//! own addresses (those of `inet_interfaces`, with their interface netmasks).
//!
//! * `host`: each address alone (`/32`, `/128`);
//! * `subnet`: each address's interface subnet;
//! * `class`: an IPv4 address's class A, B or C network (class D: its /4); IPv6 has no
//!   classes and uses the subnet, as Postfix does.
//!
//! The result is a `mynetworks` value (`127.0.0.0/8 [::1]/128`), IPv4 networks first,
//! each once, for [`crate::NetworkList::new`] and for `postconf` to print.

use std::net::IpAddr;

/// One own address and its interface netmask (`None`: not found on an interface).
pub type OwnAddr = (IpAddr, Option<IpAddr>);

fn prefix_of(mask: Option<IpAddr>, max: u32) -> u32 {
    match mask {
        Some(IpAddr::V4(m)) => u32::from(m).leading_ones(),
        Some(IpAddr::V6(m)) => u128::from(m).leading_ones(),
        None => max,
    }
}

/// The `mynetworks` value for `style` (`host`, `subnet`, `class`, any case).
///
/// # Errors
///
/// An unknown style (Postfix: `unknown mynetworks_style value`).
pub fn mynetworks_by_style(style: &str, addrs: &[OwnAddr]) -> Result<String, String> {
    let style = style.trim().to_ascii_lowercase();
    if !matches!(style.as_str(), "host" | "subnet" | "class") {
        return Err(format!("unknown mynetworks_style value: {style}"));
    }
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for (ip, mask) in addrs {
        match ip {
            IpAddr::V4(a) => {
                let bits = u32::from(*a);
                let len = match style.as_str() {
                    "host" => 32,
                    "subnet" => prefix_of(*mask, 32),
                    _ if bits >> 31 == 0 => 8,
                    _ if bits >> 30 == 0b10 => 16,
                    _ if bits >> 29 == 0b110 => 24,
                    _ => 4,
                };
                let net = if len == 0 {
                    0
                } else {
                    bits & (u32::MAX << (32 - len))
                };
                let s = format!("{}/{len}", std::net::Ipv4Addr::from(net));
                if !v4.contains(&s) {
                    v4.push(s);
                }
            }
            IpAddr::V6(a) => {
                let bits = u128::from(*a);
                let len = if style == "host" {
                    128
                } else {
                    prefix_of(*mask, 128)
                };
                let net = if len == 0 {
                    0
                } else {
                    bits & (u128::MAX << (128 - len))
                };
                let s = format!("[{}]/{len}", std::net::Ipv6Addr::from(net));
                if !v6.contains(&s) {
                    v6.push(s);
                }
            }
        }
    }
    v4.extend(v6);
    Ok(v4.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<OwnAddr> {
        let p = |s: &str| s.parse::<IpAddr>().unwrap();
        vec![
            (p("127.0.0.1"), Some(p("255.0.0.0"))),
            (p("::1"), Some(p("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))),
            (p("192.0.2.2"), Some(p("255.255.255.0"))),
            (p("fd00::2"), Some(p("ffff:ffff:ffff:ffff::"))),
            (p("172.16.5.4"), Some(p("255.255.255.0"))),
        ]
    }

    #[test]
    fn styles_as_postconf_prints_them() {
        assert_eq!(
            mynetworks_by_style("host", &addrs()).unwrap(),
            "127.0.0.1/32 192.0.2.2/32 172.16.5.4/32 [::1]/128 [fd00::2]/128"
        );
        assert_eq!(
            mynetworks_by_style("subnet", &addrs()).unwrap(),
            "127.0.0.0/8 192.0.2.0/24 172.16.5.0/24 [::1]/128 [fd00::]/64"
        );
        assert_eq!(
            mynetworks_by_style("Class", &addrs()).unwrap(),
            "127.0.0.0/8 192.0.2.0/24 172.16.0.0/16 [::1]/128 [fd00::]/64"
        );
        assert!(mynetworks_by_style("bogus", &addrs()).is_err());
    }
}
