//! `postern check` for master's `inet` listeners: every address a service
//! would bind is computed exactly as master computes it
//! (`postern_server::inet::listen_addresses`), so that a configuration that
//! passes the check also binds at `start`: unknown ports and protocols,
//! host names without an address of an enabled protocol, addresses that no
//! local interface carries (unless the kernel allows non-local binds), and
//! two services on the same address and port.
//!
//! # Security
//! Reads the configuration and the interface list; binds nothing.
//!
//! # Configuration
//! master.cf `inet` services (with their `-o` overrides), `inet_interfaces`,
//! `inet_protocols`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// The problems found, one line each (empty when master would bind).
pub(crate) fn problems(dir: &Path) -> Vec<String> {
    let (Ok(loaded), Ok(master)) = (
        postern_server::load::load_unchecked(dir),
        postern_server::load::load_master(dir),
    ) else {
        return Vec::new(); // reported by the syntax checks
    };
    let master_cf = dir.join("master.cf");
    let local = postern_sys::net::interface_addresses().ok();
    let mut out = Vec::new();
    let mut bound: Vec<(SocketAddr, String)> = Vec::new();
    for svc in master
        .services
        .iter()
        .filter(|s| s.kind == postern_config::ServiceType::Inet)
    {
        let cfg = loaded.config.with_overrides(&svc.overrides);
        let here = format!(
            "{}: line {}: service {}",
            master_cf.display(),
            svc.line,
            svc.name
        );
        let addrs = match postern_server::inet::listen_addresses(&cfg, &svc.name) {
            Ok(a) => a,
            Err(e) => {
                out.push(format!("{here}: {e}"));
                continue;
            }
        };
        for a in addrs {
            if let Some(local) = &local
                && !a.ip().is_unspecified()
                && !local.iter().any(|l| l.ip == a.ip())
                && !nonlocal_bind_allowed(a.ip())
            {
                out.push(format!(
                    "{here}: {} is not an address of this host (bind would fail)",
                    a.ip()
                ));
            }
            if let Some((_, other)) = bound.iter().find(|(b, _)| conflicts(*b, a)) {
                out.push(format!(
                    "{here}: {a} is already used by service {other} (bind would fail)"
                ));
            }
            bound.push((a, svc.name.clone()));
        }
    }
    out
}

/// Whether binding `a` and then `b` fails with EADDRINUSE: the same port and
/// family, and the same address or a wildcard on either side.
fn conflicts(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn nonlocal_bind_allowed(ip: IpAddr) -> bool {
    let path = match ip {
        IpAddr::V4(_) => "/proc/sys/net/ipv4/ip_nonlocal_bind",
        IpAddr::V6(_) => "/proc/sys/net/ipv6/ip_nonlocal_bind",
    };
    std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_port_conflicts() {
        let s = |t: &str| -> SocketAddr { t.parse().unwrap() };
        assert!(conflicts(s("127.0.0.1:25"), s("127.0.0.1:25")));
        assert!(conflicts(s("0.0.0.0:25"), s("127.0.0.1:25")));
        assert!(conflicts(s("[::1]:25"), s("[::]:25")));
        assert!(!conflicts(s("0.0.0.0:25"), s("[::]:25")));
        assert!(!conflicts(s("127.0.0.1:25"), s("127.0.0.2:25")));
        assert!(!conflicts(s("127.0.0.1:25"), s("127.0.0.1:587")));
    }
}
