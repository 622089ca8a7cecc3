//! Postern's DNS client (layer 1): typed MX/A/AAAA/PTR/TXT lookups over
//! hickory-resolver, Postfix's client-name logic, DNSxL (RBL/RHSBL) queries, and
//! DNSSEC-aware (AD bit) MX/A/TLSA lookups for DANE ([`Resolver::query_secure`]).
//!
//! * Name servers come from the Postern parameter `dns_servers` (`ip`,
//!   `ip:port`, `[v6]:port`, comma or space separated) or, when that is empty,
//!   from the `nameserver` lines of `/etc/resolv.conf`. `search`, `domain` and
//!   `ndots` are ignored: every name is looked up as an absolute name.
//! * Each server is asked over UDP, and over TCP when a reply is truncated.
//!   Timeout 5 s per attempt (for all servers together), 2 attempts
//!   ([`DEFAULT_TIMEOUT`], [`DEFAULT_ATTEMPTS`]); Postfix has no main.cf knob
//!   for these either (it leaves them to the C library's `RES_OPTIONS`).
//!   Up to two servers are asked in parallel, fastest first (hickory's
//!   query-statistics order), so a dead server costs at most one attempt.
//!   A SERVFAIL or REFUSED answer is final for that attempt.
//! * Caching: only hickory's small in-memory cache ([`CACHE_ENTRIES`] entries, TTL bound).
//! * Names of loopback addresses (`localhost`, and whatever `/etc/hosts` lists
//!   for 127.0.0.0/8 and ::1) are answered from `/etc/hosts`, read once per
//!   process, without DNS; so is the PTR of any loopback address (not found
//!   when `/etc/hosts` does not list it).
//! * Results are [`Lookup`]s: found, not found (NXDOMAIN or NODATA: a
//!   permanent answer), or a temporary failure (timeout, SERVFAIL, REFUSED,
//!   network error) with its reason. A name that is not a valid DNS name is
//!   "not found", as with Postfix (`DNS_INVAL` is treated as not found).
//!
//! Create a [`Resolver`] inside the tokio runtime that will use it (hickory
//! spawns its connection tasks there).

#![forbid(unsafe_code)]

mod hosts;
mod names;
mod secure;
mod servers;

/// hickory's record types and data, as [`Resolver::query`] takes and returns them.
pub use hickory_resolver::proto::rr::{RData, RecordType};
pub use hosts::LocalHosts;
pub use names::{
    DnsxlSpec, ReplyFilter, canonical_ip, ptr_name, reversed_ip, rhsbl_domain, valid_hostname,
};
pub use secure::{Secure, Tlsa};
pub use servers::{parse_resolv_conf, parse_server};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
    ServerOrderingStrategy,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::rr::Name;
use postern_config::p;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Per-query timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per query and server.
pub const DEFAULT_ATTEMPTS: usize = 2;
/// Entries in hickory's response cache.
pub const CACHE_ENTRIES: u64 = 1024;
/// Longest DNSxL TXT reply text kept (as Postfix's `RBL_TXT_LIMIT`).
pub const RBL_TXT_LIMIT: usize = 500;

/// The outcome of one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// The name has records of the type asked for.
    Found(T),
    /// NXDOMAIN, or the name exists without records of this type (NODATA), or
    /// the name is not a valid domain name.
    NotFound,
    /// No definite answer (timeout, SERVFAIL, REFUSED, network error): try later.
    TempFail(String),
}

impl<T> Lookup<T> {
    /// Maps the found value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Lookup<U> {
        match self {
            Lookup::Found(t) => Lookup::Found(f(t)),
            Lookup::NotFound => Lookup::NotFound,
            Lookup::TempFail(why) => Lookup::TempFail(why),
        }
    }

    /// The found value, if any.
    pub fn found(&self) -> Option<&T> {
        match self {
            Lookup::Found(t) => Some(t),
            _ => None,
        }
    }

    /// Whether this is [`Lookup::Found`].
    pub fn is_found(&self) -> bool {
        matches!(self, Lookup::Found(_))
    }

    /// Whether this is [`Lookup::TempFail`].
    pub fn is_tempfail(&self) -> bool {
        matches!(self, Lookup::TempFail(_))
    }
}

/// A start-up problem (bad `dns_servers`, resolver construction).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// A `dns_servers` entry did not parse.
    #[error("{0}")]
    BadServer(String),
    /// hickory refused the configuration.
    #[error("DNS resolver: {0}")]
    Build(String),
}

/// Resolver tuning (tests use short timeouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Per-query timeout.
    pub timeout: Duration,
    /// Attempts per query.
    pub attempts: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
        }
    }
}

/// True for a null MX (RFC 7505): the single record `0 .` — the domain
/// accepts no mail. (Like Postfix, any preference is accepted.)
pub fn is_null_mx(mx: &[(u16, String)]) -> bool {
    mx.len() == 1 && mx[0].1 == "."
}

/// What [`Resolver::mail_host`] found for a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailHost {
    /// The domain has (non-null) MX records.
    Mx,
    /// No MX, but A or AAAA records.
    Address,
    /// A null MX: the domain accepts no mail.
    NullMx,
}

/// How a client-name lookup went, as Postfix's `name_status` /
/// `reverse_name_status` (`SMTPD_PEER_CODE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameStatus {
    /// Found (and, for the client name, forward-confirmed).
    Ok,
    /// Temporary failure: reject with 450 whatever the configured code.
    TempFail,
    /// No (valid) PTR record.
    NotFound,
    /// The PTR name does not resolve back to the address.
    Forged,
}

/// The client's names, as Postfix's smtpd computes them at connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientName {
    /// Verified name (PTR whose A/AAAA includes the address), or `unknown`.
    pub name: String,
    /// How the verified-name lookup went.
    pub name_status: NameStatus,
    /// The PTR name (not forward-checked), or `unknown`.
    pub reverse_name: String,
    /// How the PTR lookup went.
    pub reverse_status: NameStatus,
    /// A Postfix-style warning to log, e.g. `hostname h.example does not
    /// resolve to address 192.0.2.1`.
    pub warning: Option<String>,
}

/// A DNSxL hit: the A records of the query name (after the filter matched)
/// and the TXT text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsxlHit {
    /// The name queried (`2.0.0.127.zen.example`).
    pub query: String,
    /// All A records of the query name.
    pub addrs: Vec<Ipv4Addr>,
    /// TXT records joined with ` / ` and cut at [`RBL_TXT_LIMIT`] (Postfix's
    /// `$rbl_reason`), or `None` without TXT.
    pub text: Option<String>,
}

/// The asynchronous resolver. Cheap to clone (shared cache and connections).
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    hosts: Arc<LocalHosts>,
    servers: Arc<[SocketAddr]>,
    opts: Options,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("servers", &self.servers)
            .finish_non_exhaustive()
    }
}

fn etc_hosts() -> Arc<LocalHosts> {
    static HOSTS: OnceLock<Arc<LocalHosts>> = OnceLock::new();
    HOSTS
        .get_or_init(|| Arc::new(LocalHosts::read(Path::new("/etc/hosts"))))
        .clone()
}

impl Resolver {
    /// Servers from `dns_servers`, else from `/etc/resolv.conf`; default options.
    pub fn from_config(cfg: &postern_config::Config) -> Result<Resolver, DnsError> {
        let items = cfg.list(p::DNS_SERVERS);
        let servers = if items.is_empty() {
            parse_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
        } else {
            items
                .iter()
                .map(|i| parse_server(i).map_err(DnsError::BadServer))
                .collect::<Result<Vec<_>, _>>()?
        };
        Resolver::new(&servers, Options::default())
    }

    /// A resolver asking exactly `servers`, in order, with `/etc/hosts` for loopback names.
    pub fn new(servers: &[SocketAddr], opts: Options) -> Result<Resolver, DnsError> {
        Resolver::with_hosts(servers, opts, etc_hosts())
    }

    /// As [`Resolver::new`] with an explicit loopback hosts table.
    pub fn with_hosts(
        servers: &[SocketAddr],
        opts: Options,
        hosts: Arc<LocalHosts>,
    ) -> Result<Resolver, DnsError> {
        if servers.is_empty() {
            return Err(DnsError::BadServer("no DNS servers".into()));
        }
        let name_servers = servers
            .iter()
            .map(|sa| {
                let mut udp = ConnectionConfig::udp();
                udp.port = sa.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = sa.port();
                NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
            })
            .collect();
        let config = ResolverConfig::from_name_servers(name_servers);
        let mut ro = ResolverOpts::default();
        ro.timeout = opts.timeout;
        ro.attempts = opts.attempts.max(1);
        ro.ndots = 0;
        ro.cache_size = CACHE_ENTRIES;
        ro.use_hosts_file = ResolveHosts::Never;
        // hickory's defaults: servers ordered by observed round-trip time (a dead
        // server drops to the back after one timeout), two asked in parallel.
        ro.server_ordering_strategy = ServerOrderingStrategy::QueryStatistics;
        ro.num_concurrent_reqs = 2;
        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(ro)
            .build()
            .map_err(|e| DnsError::Build(e.to_string()))?;
        Ok(Resolver {
            inner,
            hosts,
            servers: servers.into(),
            opts,
        })
    }

    /// The hickory resolver underneath (same servers, options and cache), for libraries
    /// that take one (postern-auth's mail-auth).
    pub fn hickory(&self) -> &TokioResolver {
        &self.inner
    }

    /// The servers asked, in order.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// Records of `rtype` at `name` (CNAMEs followed), as hickory RData.
    pub async fn query(&self, name: &str, rtype: RecordType) -> Lookup<Vec<RData>> {
        let Some(qname) = to_name(name) else {
            return Lookup::NotFound;
        };
        match self.inner.lookup(qname, rtype).await {
            Ok(l) => {
                let v: Vec<RData> = l
                    .answers()
                    .iter()
                    .filter(|r| r.data.record_type() == rtype)
                    .map(|r| r.data.clone())
                    .collect();
                if v.is_empty() {
                    Lookup::NotFound
                } else {
                    Lookup::Found(v)
                }
            }
            Err(e) => classify(name, rtype, &e),
        }
    }

    /// A records of `name` (loopback names from `/etc/hosts` without DNS).
    pub async fn a(&self, name: &str) -> Lookup<Vec<IpAddr>> {
        self.addresses(name, RecordType::A).await
    }

    /// AAAA records of `name` (loopback names from `/etc/hosts` without DNS).
    pub async fn aaaa(&self, name: &str) -> Lookup<Vec<IpAddr>> {
        self.addresses(name, RecordType::AAAA).await
    }

    async fn addresses(&self, name: &str, rtype: RecordType) -> Lookup<Vec<IpAddr>> {
        let v6 = rtype == RecordType::AAAA;
        if let Some(ips) = self.hosts.addrs(name) {
            let v: Vec<IpAddr> = ips.iter().copied().filter(|i| i.is_ipv6() == v6).collect();
            return if v.is_empty() {
                Lookup::NotFound
            } else {
                Lookup::Found(v)
            };
        }
        self.query(name, rtype).await.map(|v| {
            v.into_iter()
                .filter_map(|d| match d {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })
                .collect()
        })
    }

    /// A and AAAA records of `name` (both asked at once). Loopback names from
    /// `/etc/hosts` answer without DNS. IPv4 addresses come first.
    pub async fn a_aaaa(&self, name: &str) -> Lookup<Vec<IpAddr>> {
        if let Some(ips) = self.hosts.addrs(name) {
            return Lookup::Found(ips.to_vec());
        }
        let (a, aaaa) = tokio::join!(self.a(name), self.aaaa(name));
        let mut ips = Vec::new();
        let mut temp = None;
        for r in [a, aaaa] {
            match r {
                Lookup::Found(v) => ips.extend(v),
                Lookup::NotFound => {}
                Lookup::TempFail(why) => temp = temp.or(Some(why)),
            }
        }
        match (ips.is_empty(), temp) {
            (false, _) => Lookup::Found(ips),
            (true, Some(why)) => Lookup::TempFail(why),
            (true, None) => Lookup::NotFound,
        }
    }

    /// MX records of `domain`, sorted by preference (stable), host names
    /// without the trailing dot; a null MX is `[(0, ".")]` (see [`is_null_mx`]).
    pub async fn mx(&self, domain: &str) -> Lookup<Vec<(u16, String)>> {
        self.query(domain, RecordType::MX).await.map(|v| {
            let mut mx: Vec<(u16, String)> = v
                .into_iter()
                .filter_map(|d| match d {
                    RData::MX(mx) => Some((mx.preference, name_text(&mx.exchange))),
                    _ => None,
                })
                .collect();
            mx.sort_by_key(|(p, _)| *p);
            mx
        })
    }

    /// PTR names of `ip` (without trailing dots). Loopback addresses answer
    /// from `/etc/hosts` without DNS (not found when it does not list them:
    /// hickory would answer `localhost` for all of 127.0.0.0/8, RFC 6761).
    pub async fn ptr(&self, ip: IpAddr) -> Lookup<Vec<String>> {
        let ip = canonical_ip(ip);
        if ip.is_loopback() {
            return match self.hosts.names(ip) {
                Some(n) => Lookup::Found(n.to_vec()),
                None => Lookup::NotFound,
            };
        }
        self.query(&ptr_name(ip), RecordType::PTR).await.map(|v| {
            v.into_iter()
                .filter_map(|d| match d {
                    RData::PTR(p) => Some(name_text(&p.0)),
                    _ => None,
                })
                .collect()
        })
    }

    /// TXT records of `name`, each record's strings concatenated (invalid
    /// UTF-8 replaced).
    pub async fn txt(&self, name: &str) -> Lookup<Vec<String>> {
        self.query(name, RecordType::TXT).await.map(|v| {
            v.into_iter()
                .filter_map(|d| match d {
                    RData::TXT(t) => Some(
                        t.txt_data
                            .iter()
                            .map(|s| String::from_utf8_lossy(s))
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()
        })
    }

    /// Postfix's mail-host check for `reject_unknown_{sender,recipient}_domain`:
    /// MX, then A, then AAAA, stopping at the first found; a null MX is
    /// reported as such. Temporary failure wins over not-found.
    pub async fn mail_host(&self, domain: &str) -> Lookup<MailHost> {
        let mut temp = None;
        match self.mx(domain).await {
            Lookup::Found(mx) if is_null_mx(&mx) => return Lookup::Found(MailHost::NullMx),
            Lookup::Found(_) => return Lookup::Found(MailHost::Mx),
            Lookup::NotFound => {}
            Lookup::TempFail(why) => temp = Some(why),
        }
        for t in [RecordType::A, RecordType::AAAA] {
            match self.query(domain, t).await {
                Lookup::Found(_) => return Lookup::Found(MailHost::Address),
                Lookup::NotFound => {}
                Lookup::TempFail(why) => temp = temp.or(Some(why)),
            }
        }
        match temp {
            Some(why) => Lookup::TempFail(why),
            None => Lookup::NotFound,
        }
    }

    /// Postfix's host check for `reject_unknown_helo_hostname`: A, AAAA or MX
    /// (a null MX counts as found). Loopback names from `/etc/hosts` count.
    pub async fn host_exists(&self, name: &str) -> Lookup<()> {
        if self.hosts.addrs(name).is_some() {
            return Lookup::Found(());
        }
        let mut temp = None;
        for t in [RecordType::A, RecordType::AAAA, RecordType::MX] {
            match self.query(name, t).await {
                Lookup::Found(_) => return Lookup::Found(()),
                Lookup::NotFound => {}
                Lookup::TempFail(why) => temp = temp.or(Some(why)),
            }
        }
        match temp {
            Some(why) => Lookup::TempFail(why),
            None => Lookup::NotFound,
        }
    }

    /// Postfix's client-name logic: the first valid PTR name whose A/AAAA
    /// records include `ip` is the verified name; otherwise `unknown`, with
    /// the PTR name kept as the reverse name.
    pub async fn client_name(&self, ip: IpAddr) -> ClientName {
        let ip = canonical_ip(ip);
        let unknown = |status: NameStatus, warning: Option<String>| ClientName {
            name: "unknown".into(),
            name_status: status,
            reverse_name: "unknown".into(),
            reverse_status: status,
            warning,
        };
        let names = match self.ptr(ip).await {
            Lookup::Found(n) => n,
            Lookup::NotFound => return unknown(NameStatus::NotFound, None),
            Lookup::TempFail(why) => {
                return unknown(
                    NameStatus::TempFail,
                    Some(format!("{ip}: address not listed for hostname: {why}")),
                );
            }
        };
        let valid: Vec<&String> = names.iter().filter(|n| valid_hostname(n)).collect();
        let Some(first) = valid.first() else {
            let bad = names.first().map(String::as_str).unwrap_or("");
            return unknown(
                NameStatus::NotFound,
                Some(format!(
                    "{ip}: hostname {bad} verification failed: malformed hostname"
                )),
            );
        };
        let mut status = NameStatus::Forged;
        let mut warning = None;
        for name in &valid {
            match self.a_aaaa(name).await {
                Lookup::Found(addrs) if addrs.iter().any(|a| canonical_ip(*a) == ip) => {
                    return ClientName {
                        name: (*name).clone(),
                        name_status: NameStatus::Ok,
                        reverse_name: (*first).clone(),
                        reverse_status: NameStatus::Ok,
                        warning: None,
                    };
                }
                Lookup::Found(_) => {
                    warning
                        .get_or_insert(format!("hostname {name} does not resolve to address {ip}"));
                }
                Lookup::NotFound => {
                    warning.get_or_insert(format!(
                        "hostname {name} does not resolve to address {ip}: Name or service not known"
                    ));
                }
                Lookup::TempFail(why) => {
                    status = NameStatus::TempFail;
                    warning.get_or_insert(format!(
                        "hostname {name} does not resolve to address {ip}: {why}"
                    ));
                }
            }
        }
        ClientName {
            name: "unknown".into(),
            name_status: status,
            reverse_name: (*first).clone(),
            reverse_status: NameStatus::Ok,
            warning,
        }
    }

    /// The brief's short form of [`Resolver::client_name`]: (name or
    /// `unknown`, verified).
    pub async fn forward_confirmed_name(&self, ip: IpAddr) -> (String, bool) {
        let c = self.client_name(ip).await;
        let ok = c.name_status == NameStatus::Ok;
        (c.name, ok)
    }

    /// DNSBL/DNSWL lookup of a client address: A records of the reversed
    /// address under `spec`'s zone (`zone` or `zone=filter`). Found only when
    /// the filter (if any) matches; then the TXT text is fetched too.
    pub async fn rbl_lookup(&self, ip: IpAddr, spec: &str) -> Lookup<DnsxlHit> {
        let spec = match DnsxlSpec::parse(spec) {
            Ok(s) => s,
            Err(why) => return Lookup::TempFail(why),
        };
        let query = format!("{}.{}", reversed_ip(ip), spec.zone);
        self.dnsxl(query, &spec).await
    }

    /// RHSBL/RHSWL lookup of a domain (or the domain of an address) under
    /// `spec`'s zone. Not found without a query for address literals, invalid
    /// names and all-numeric top labels (as Postfix).
    pub async fn rhsbl_lookup(&self, domain: &str, spec: &str) -> Lookup<DnsxlHit> {
        let spec = match DnsxlSpec::parse(spec) {
            Ok(s) => s,
            Err(why) => return Lookup::TempFail(why),
        };
        let Some(d) = rhsbl_domain(domain) else {
            return Lookup::NotFound;
        };
        let query = format!("{d}.{}", spec.zone);
        self.dnsxl(query, &spec).await
    }

    async fn dnsxl(&self, query: String, spec: &DnsxlSpec) -> Lookup<DnsxlHit> {
        let addrs: Vec<Ipv4Addr> = match self.query(&query, RecordType::A).await {
            Lookup::Found(v) => v
                .into_iter()
                .filter_map(|d| match d {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect(),
            Lookup::NotFound => return Lookup::NotFound,
            Lookup::TempFail(why) => return Lookup::TempFail(why),
        };
        if !spec.matches(&addrs) {
            return Lookup::NotFound;
        }
        let text = match self.txt(&query).await {
            Lookup::Found(t) => Some(join_txt(&t)),
            _ => None,
        };
        Lookup::Found(DnsxlHit { query, addrs, text })
    }
}

/// Postfix's RBL text: records joined with ` / `, at most [`RBL_TXT_LIMIT`] bytes.
fn join_txt(records: &[String]) -> String {
    let mut out = String::new();
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            if out.len() + 3 > RBL_TXT_LIMIT {
                break;
            }
            out.push_str(" / ");
        }
        for c in r.chars() {
            if out.len() + c.len_utf8() > RBL_TXT_LIMIT {
                return out;
            }
            out.push(c);
        }
    }
    out
}

/// `name` as an absolute DNS name (IDNA for non-ASCII), or `None` if invalid.
fn to_name(name: &str) -> Option<Name> {
    let name = name.trim();
    if name.is_empty() || name == "." || name.len() > 254 {
        return None;
    }
    let mut n = Name::from_utf8(name).ok()?;
    n.set_fqdn(true);
    Some(n)
}

/// A name as text without the trailing dot (the root stays `.`).
fn name_text(n: &Name) -> String {
    if n.is_root() {
        return ".".into();
    }
    let s = n.to_ascii();
    s.strip_suffix('.').map(str::to_string).unwrap_or(s)
}

fn classify<T>(name: &str, rtype: RecordType, e: &NetError) -> Lookup<T> {
    match e {
        NetError::Dns(HickoryDnsError::NoRecordsFound(_)) => Lookup::NotFound,
        NetError::Dns(HickoryDnsError::ResponseCode(code)) => {
            Lookup::TempFail(format!("{name}/{rtype}: server answered {code}"))
        }
        NetError::Timeout => Lookup::TempFail(format!("{name}/{rtype}: timed out")),
        other => Lookup::TempFail(format!("{name}/{rtype}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_mx() {
        assert!(is_null_mx(&[(0, ".".into())]));
        assert!(!is_null_mx(&[(0, ".".into()), (10, "mx.example".into())]));
        assert!(!is_null_mx(&[]));
    }

    #[test]
    fn txt_join() {
        assert_eq!(join_txt(&["a".into(), "b".into()]), "a / b");
        let long = "x".repeat(600);
        assert_eq!(join_txt(&[long]).len(), RBL_TXT_LIMIT);
    }

    #[test]
    fn names() {
        assert!(to_name("").is_none());
        assert!(to_name("a..b").is_none());
        assert!(to_name("example.com").unwrap().is_fqdn());
        assert_eq!(name_text(&Name::root()), ".");
        assert_eq!(
            name_text(&Name::from_ascii("mx.example.").unwrap()),
            "mx.example"
        );
    }
}
