//! Listening sockets made by master, and the host's interface addresses.
//!
//! master opens every listener itself (Postfix's `inet_listen`/`unix_listen`)
//! so that it can choose the accept backlog: the standard library's 128 is
//! far below a burst of clients at start-up, and a full accept queue makes
//! the kernel drop the client's handshake ACK, so the client believes it is
//! connected but is never greeted. Listeners are created close-on-exec and
//! non-blocking; an IPv6 listener is IPv6-only, so a wildcard IPv4 and a
//! wildcard IPv6 listener can share a port, as Postfix binds them.
//!
//! # Security
//! No `unsafe` here: every call goes through `nix`. `SO_REUSEADDR` is set on
//! TCP listeners only (a restarted master rebinds at once while old
//! connections linger in TIME_WAIT); it never allows two live listeners.
//!
//! # Configuration
//! None: callers pass addresses computed from `inet_interfaces` and
//! `inet_protocols`.

use crate::{Result, SysError};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, UnixAddr, bind, listen,
    setsockopt, socket, sockopt,
};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::Path;

/// The accept backlog master asks for (the kernel caps it at `somaxconn`).
pub const LISTEN_BACKLOG: i32 = 4096;

fn backlog() -> Backlog {
    Backlog::new(LISTEN_BACKLOG).unwrap_or(Backlog::MAXCONN)
}

/// A TCP listener on `addr`: close-on-exec, non-blocking, `SO_REUSEADDR`,
/// IPv6-only for an IPv6 address, with [`LISTEN_BACKLOG`].
pub fn listen_tcp(addr: SocketAddr) -> Result<OwnedFd> {
    let what = addr.to_string();
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| SysError::errno("socket", what.clone(), e))?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)
        .map_err(|e| SysError::errno("setsockopt(SO_REUSEADDR)", what.clone(), e))?;
    match addr {
        SocketAddr::V4(a) => bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(a)),
        SocketAddr::V6(a) => {
            setsockopt(&fd, sockopt::Ipv6V6Only, &true)
                .map_err(|e| SysError::errno("setsockopt(IPV6_V6ONLY)", what.clone(), e))?;
            bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn6::from(a))
        }
    }
    .map_err(|e| SysError::errno("bind", what.clone(), e))?;
    listen(&fd, backlog()).map_err(|e| SysError::errno("listen", what, e))?;
    Ok(fd)
}

/// A UNIX-domain stream listener at `path` (which must not exist):
/// close-on-exec, non-blocking, with [`LISTEN_BACKLOG`].
pub fn listen_unix(path: &Path) -> Result<OwnedFd> {
    let what = path.display().to_string();
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| SysError::errno("socket", what.clone(), e))?;
    let addr = UnixAddr::new(path).map_err(|e| SysError::errno("bind", what.clone(), e))?;
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr)
        .map_err(|e| SysError::errno("bind", what.clone(), e))?;
    listen(&fd, backlog()).map_err(|e| SysError::errno("listen", what, e))?;
    Ok(fd)
}

/// Whether the kernel supports sockets of the address family of `ip`
/// (Postfix drops IPv6 from `inet_protocols` with a warning when it does not).
pub fn family_supported(ipv6: bool) -> bool {
    let family = if ipv6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).is_ok()
}

/// One address configured on a network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddr {
    /// The address.
    pub ip: IpAddr,
    /// Its netmask, when the interface reports one.
    pub netmask: Option<IpAddr>,
    /// Whether the interface is a loopback interface.
    pub loopback: bool,
}

/// Every IPv4 and IPv6 address configured on the host's interfaces
/// (`getifaddrs`), in the kernel's order, without duplicates.
pub fn interface_addresses() -> Result<Vec<InterfaceAddr>> {
    use nix::net::if_::InterfaceFlags;
    let list =
        nix::ifaddrs::getifaddrs().map_err(|e| SysError::errno("getifaddrs", "interfaces", e))?;
    let ip_of = |a: &nix::sys::socket::SockaddrStorage| -> Option<IpAddr> {
        if let Some(v4) = a.as_sockaddr_in() {
            return Some(IpAddr::V4(v4.ip()));
        }
        a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
    };
    let mut out: Vec<InterfaceAddr> = Vec::new();
    for ifa in list {
        let Some(ip) = ifa.address.as_ref().and_then(ip_of) else {
            continue;
        };
        if out.iter().any(|o| o.ip == ip) {
            continue;
        }
        out.push(InterfaceAddr {
            ip,
            netmask: ifa.netmask.as_ref().and_then(ip_of),
            loopback: ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_listener_on_loopback_has_a_port() {
        let fd = listen_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let l = std::net::TcpListener::from(fd);
        assert!(l.local_addr().unwrap().port() > 0);
    }

    #[test]
    fn loopback_is_listed() {
        let addrs = interface_addresses().unwrap();
        assert!(
            addrs
                .iter()
                .any(|a| a.loopback && a.ip == IpAddr::from([127, 0, 0, 1]))
        );
    }
}
