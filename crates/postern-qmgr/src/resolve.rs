//! Recipient resolution (the part of Postfix's trivial-rewrite that qmgr
//! needs in this version): which transport and next hop a recipient goes to.
//!
//! * domain in `$mydestination` (or no domain) → `$local_transport`
//!   (`local:$myhostname`);
//! * anything else → `$default_transport`, with next hop `$relayhost` when set,
//!   else the recipient's domain. (`transport_maps`, virtual and relay domain
//!   classes come with the relay capability.)

/// Where a recipient goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// master.cf service name of the delivery agent.
    pub transport: String,
    /// Next hop.
    pub nexthop: String,
}

/// Resolution settings.
#[derive(Debug, Clone)]
pub struct Resolver {
    /// `$mydestination`, lowercased.
    pub mydestination: Vec<String>,
    /// `$local_transport`.
    pub local_transport: String,
    /// `$default_transport`.
    pub default_transport: String,
    /// `$relayhost`.
    pub relayhost: String,
    /// `$myhostname`.
    pub myhostname: String,
}

fn split_transport(spec: &str, default_nexthop: &str) -> (String, String) {
    match spec.split_once(':') {
        Some((t, n)) if !n.is_empty() => (t.to_string(), n.to_string()),
        Some((t, _)) => (t.to_string(), default_nexthop.to_string()),
        None => (spec.to_string(), default_nexthop.to_string()),
    }
}

impl Resolver {
    /// Whether a domain is one of ours (local delivery).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        d.is_empty() || self.mydestination.contains(&d)
    }

    /// Resolves one recipient address.
    pub fn resolve(&self, addr: &str) -> Route {
        let domain = addr.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if self.is_local_domain(domain) {
            let (transport, nexthop) = split_transport(&self.local_transport, &self.myhostname);
            return Route { transport, nexthop };
        }
        let nh = if self.relayhost.is_empty() {
            domain.to_ascii_lowercase()
        } else {
            self.relayhost.clone()
        };
        let (transport, nexthop) = split_transport(&self.default_transport, &nh);
        Route { transport, nexthop }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Resolver {
        Resolver {
            mydestination: vec!["localhost".into(), "mx.example.org".into()],
            local_transport: "local:mx.example.org".into(),
            default_transport: "smtp".into(),
            relayhost: String::new(),
            myhostname: "mx.example.org".into(),
        }
    }

    #[test]
    fn classes() {
        assert_eq!(r().resolve("u@LOCALHOST").transport, "local");
        assert_eq!(r().resolve("u").transport, "local");
        let remote = r().resolve("u@Example.COM");
        assert_eq!(
            (remote.transport.as_str(), remote.nexthop.as_str()),
            ("smtp", "example.com")
        );
        let mut relay = r();
        relay.relayhost = "[10.0.0.1]:25".into();
        assert_eq!(relay.resolve("u@x.org").nexthop, "[10.0.0.1]:25");
    }
}
