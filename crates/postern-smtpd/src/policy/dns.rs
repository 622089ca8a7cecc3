//! The DNS seam and the DNS-based restrictions.
//!
//! The resolver is not in the tree yet: [`Dns`] is the interface smtpd will hand in
//! (through [`super::Policy::set_dns`]). Its method returns a boxed future so that the
//! trait stays object-safe (`Arc<dyn Dns>`); `async fn` in a trait is not.

use std::future::Future;
use std::pin::Pin;

/// A record type the restrictions ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RrType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Mail exchanger.
    Mx,
    /// Reverse pointer.
    Ptr,
    /// Text (DNSBL reasons).
    Txt,
}

/// A lookup's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsAnswer {
    /// Records, in presentation form (`127.0.0.2`, `mx.example.`, TXT text).
    Found(Vec<String>),
    /// NXDOMAIN or no records of that type.
    NotFound,
    /// The answer is not known now (timeout, SERVFAIL).
    TempFail,
}

/// The future a [`Dns`] lookup returns.
pub type DnsFuture<'a> = Pin<Box<dyn Future<Output = DnsAnswer> + Send + 'a>>;

/// A resolver.
pub trait Dns: Send + Sync + std::fmt::Debug {
    /// Looks `name` up (no trailing dot needed).
    fn lookup<'a>(&'a self, name: &'a str, rr: RrType) -> DnsFuture<'a>;
}

/// A DNS-based restriction word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DnsWord {
    UnknownSenderDomain,
    UnknownRecipientDomain,
    UnknownClientHostname,
    UnknownReverseClientHostname,
    UnknownHeloHostname,
    RblClient(String),
    RhsblClient(String),
    RhsblSender(String),
    RhsblHelo(String),
    DnswlClient(String),
}

impl DnsWord {
    /// `Some(needs_argument)` when `word` is a DNS-based restriction.
    pub(crate) fn arity(word: &str) -> Option<bool> {
        match word {
            "reject_unknown_sender_domain"
            | "reject_unknown_recipient_domain"
            | "reject_unknown_client_hostname"
            | "reject_unknown_client"
            | "reject_unknown_reverse_client_hostname"
            | "reject_unknown_helo_hostname"
            | "reject_unknown_hostname" => Some(false),
            "reject_rbl_client"
            | "reject_rhsbl_client"
            | "reject_rhsbl_sender"
            | "reject_rhsbl_helo"
            | "permit_dnswl_client" => Some(true),
            _ => None,
        }
    }

    pub(crate) fn new(word: &str, arg: Option<String>) -> Option<DnsWord> {
        use DnsWord::*;
        Some(match word {
            "reject_unknown_sender_domain" => UnknownSenderDomain,
            "reject_unknown_recipient_domain" => UnknownRecipientDomain,
            "reject_unknown_client_hostname" | "reject_unknown_client" => UnknownClientHostname,
            "reject_unknown_reverse_client_hostname" => UnknownReverseClientHostname,
            "reject_unknown_helo_hostname" | "reject_unknown_hostname" => UnknownHeloHostname,
            "reject_rbl_client" => RblClient(arg?),
            "reject_rhsbl_client" => RhsblClient(arg?),
            "reject_rhsbl_sender" => RhsblSender(arg?),
            "reject_rhsbl_helo" => RhsblHelo(arg?),
            "permit_dnswl_client" => DnswlClient(arg?),
            _ => return None,
        })
    }

    /// Whether the word works without a resolver (it uses the session's name lookups).
    pub(crate) fn needs_resolver(&self) -> bool {
        !matches!(
            self,
            DnsWord::UnknownClientHostname | DnsWord::UnknownReverseClientHostname
        )
    }

    /// The word as configured, for warnings.
    pub(crate) fn name(&self) -> &'static str {
        use DnsWord::*;
        match self {
            UnknownSenderDomain => "reject_unknown_sender_domain",
            UnknownRecipientDomain => "reject_unknown_recipient_domain",
            UnknownClientHostname => "reject_unknown_client_hostname",
            UnknownReverseClientHostname => "reject_unknown_reverse_client_hostname",
            UnknownHeloHostname => "reject_unknown_helo_hostname",
            RblClient(_) => "reject_rbl_client",
            RhsblClient(_) => "reject_rhsbl_client",
            RhsblSender(_) => "reject_rhsbl_sender",
            RhsblHelo(_) => "reject_rhsbl_helo",
            DnswlClient(_) => "permit_dnswl_client",
        }
    }
}

/// `zone=127.0.0.2` or `zone=127.0.0.[2..4]` or `zone`: the zone and the accepted
/// answers (empty = any).
pub(crate) fn split_zone(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((zone, filter)) => (zone, Some(filter)),
        None => (arg, None),
    }
}

/// Whether an A answer `addr` matches a DNSBL filter such as `127.0.0.2`,
/// `127.0.0.[2;4]` or `127.0.0.[2..10]`.
pub(crate) fn filter_matches(filter: Option<&str>, addr: &str) -> bool {
    let Some(filter) = filter else {
        return true;
    };
    let mut fparts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in filter.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => {
                fparts.push(&filter[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fparts.push(&filter[start..]);
    let aparts: Vec<&str> = addr.split('.').collect();
    fparts.len() == aparts.len() && fparts.iter().zip(&aparts).all(|(f, a)| octet_matches(f, a))
}

fn octet_matches(f: &str, a: &str) -> bool {
    let Ok(a) = a.parse::<u16>() else {
        return false;
    };
    let Some(inner) = f.strip_prefix('[').and_then(|f| f.strip_suffix(']')) else {
        return f.parse::<u16>() == Ok(a);
    };
    inner.split(';').any(|item| match item.split_once("..") {
        Some((lo, hi)) => match (lo.parse::<u16>(), hi.parse::<u16>()) {
            (Ok(lo), Ok(hi)) => (lo..=hi).contains(&a),
            _ => false,
        },
        None => item.parse::<u16>() == Ok(a),
    })
}

/// The DNSBL query name for a client address: reversed octets (IPv4) or reversed
/// nibbles (IPv6), then the zone.
pub(crate) fn reverse_query(ip: std::net::IpAddr, zone: &str) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.{zone}", o[3], o[2], o[1], o[0])
        }
        std::net::IpAddr::V6(v6) => {
            let mut s = String::new();
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s + zone
        }
    }
}

use super::eval::{Eval, Step, Subject, reply};

impl Eval<'_> {
    /// `warning: WORD: DNS lookups are not configured`, once per process.
    pub(crate) fn warn_no_dns(&self, word: &str) {
        if !self
            .p
            .dns_warned
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            postern_log::warning(format!("{word}: DNS lookups are not configured"));
        }
    }

    /// Evaluates a DNS-based word.
    pub(crate) async fn dns_word(&mut self, w: &DnsWord, s: Subject) -> Step {
        let pr = &self.p.params;
        let f = self.f;
        match w {
            DnsWord::UnknownClientHostname if f.client_name == "unknown" => {
                let text = format!("cannot find your hostname, [{}]", self.client_addr());
                let r = self.rejected(pr.unknown_client_code, (4, 7, 25), Subject::Client, &text);
                return self.refuse(r);
            }
            DnsWord::UnknownReverseClientHostname if f.reverse_client_name == "unknown" => {
                let text = format!(
                    "cannot find your reverse hostname, [{}]",
                    self.client_addr()
                );
                let r = self.rejected(pr.unknown_client_code, (4, 7, 25), Subject::Client, &text);
                return self.refuse(r);
            }
            _ if !w.needs_resolver() => return Step::Dunno,
            _ => {}
        }
        let Some(dns) = self.p.dns.clone() else {
            self.warn_no_dns(w.name());
            return Step::Dunno;
        };
        match w {
            DnsWord::UnknownSenderDomain => self.unknown_domain(&*dns, Subject::Sender).await,
            DnsWord::UnknownRecipientDomain => self.unknown_domain(&*dns, Subject::Recipient).await,
            DnsWord::UnknownHeloHostname => self.unknown_helo(&*dns).await,
            DnsWord::RblClient(arg) | DnsWord::DnswlClient(arg) => {
                let Some(ip) = f.client_addr else {
                    return Step::Dunno;
                };
                let (zone, filter) = split_zone(arg);
                let q = reverse_query(ip, zone);
                let listed = self.listed(&*dns, &q, filter).await;
                let permit = matches!(w, DnsWord::DnswlClient(_));
                match (listed, permit) {
                    (Some(true), true) => Step::Permit,
                    (Some(true), false) => {
                        let what = ip.to_string();
                        self.rbl_reject(&*dns, "Client host", &what, zone, &q, s)
                            .await
                    }
                    _ => Step::Dunno,
                }
            }
            DnsWord::RhsblClient(arg) | DnsWord::RhsblSender(arg) | DnsWord::RhsblHelo(arg) => {
                let (domain, class) = match w {
                    DnsWord::RhsblClient(_) => (Some(f.client_name.clone()), "Client host"),
                    DnsWord::RhsblHelo(_) => (f.helo.clone(), "Helo command"),
                    _ => (
                        f.sender
                            .as_deref()
                            .and_then(|a| a.rsplit_once('@'))
                            .map(|(_, d)| d.to_string()),
                        "Sender address",
                    ),
                };
                let Some(domain) = domain.filter(|d| !d.is_empty() && d != "unknown") else {
                    return Step::Dunno;
                };
                let (zone, filter) = split_zone(arg);
                let q = format!("{}.{zone}", domain.trim_end_matches('.'));
                match self.listed(&*dns, &q, filter).await {
                    Some(true) => self.rbl_reject(&*dns, class, &domain, zone, &q, s).await,
                    _ => Step::Dunno,
                }
            }
            _ => Step::Dunno,
        }
    }

    /// `Some(listed)`, or `None` on a temporary failure (Postfix then skips the list).
    async fn listed(&self, dns: &dyn Dns, q: &str, filter: Option<&str>) -> Option<bool> {
        match dns.lookup(q, RrType::A).await {
            DnsAnswer::Found(addrs) => Some(addrs.iter().any(|a| filter_matches(filter, a))),
            DnsAnswer::NotFound => Some(false),
            DnsAnswer::TempFail => None,
        }
    }

    async fn rbl_reject(
        &mut self,
        dns: &dyn Dns,
        class: &str,
        what: &str,
        zone: &str,
        q: &str,
        _s: Subject,
    ) -> Step {
        let reason = match dns.lookup(q, RrType::Txt).await {
            DnsAnswer::Found(t) => t.join(" "),
            _ => String::new(),
        };
        let pr = &self.p.params;
        let mut text = pr.default_rbl_reply.clone();
        let reason_part = if reason.is_empty() {
            String::new()
        } else {
            format!("; {reason}")
        };
        text = text
            .replace("${rbl_reason?; $rbl_reason}", &reason_part)
            .replace("$rbl_code", &pr.maps_rbl_code.to_string())
            .replace("$rbl_class", class)
            .replace("$rbl_what", what)
            .replace("$rbl_domain", zone)
            .replace("$rbl_reason", &reason);
        let code = pr.maps_rbl_code;
        let body = text
            .strip_prefix(&code.to_string())
            .map_or(text.as_str(), str::trim_start)
            .to_string();
        let r = reply(code, (5, 7, 1), body);
        self.refuse(r)
    }

    async fn unknown_domain(&mut self, dns: &dyn Dns, s: Subject) -> Step {
        let addr = if s == Subject::Sender {
            &self.f.sender
        } else {
            &self.f.recipient
        };
        let Some(addr) = addr.clone().filter(|a| a.contains('@')) else {
            return Step::Dunno;
        };
        // As Postfix: the address is resolved first; final destinations (local, virtual)
        // are not looked up, and the domain is the resolved one (`u%d@ours` -> `d`).
        let domain = match self.p.addrs.resolve(&addr) {
            Ok(r) if r.class.is_final() => return Step::Dunno,
            Ok(r) => r.domain,
            Err(e) => {
                postern_log::warning(format!("address lookup: {e}"));
                return Step::Reject(super::eval::lookup_failure(&addr));
            }
        };
        if domain.starts_with('[') || domain.is_empty() {
            return Step::Dunno;
        }
        let mut temp = false;
        for rr in [RrType::Mx, RrType::A, RrType::Aaaa] {
            match dns.lookup(domain.trim_end_matches('.'), rr).await {
                // RFC 7505 null MX: the domain says it accepts no mail.
                DnsAnswer::Found(v) if rr == RrType::Mx && v.len() == 1 && v[0].trim() == "." => {
                    let (code, dsn) = if s == Subject::Sender {
                        (550, (5, 7, 27))
                    } else {
                        (556, (5, 1, 10))
                    };
                    let text = format!(
                        "Domain {} does not accept mail (nullMX)",
                        domain.trim_end_matches('.')
                    );
                    let r = self.rejected(code, dsn, s, &text);
                    return self.refuse(r);
                }
                DnsAnswer::Found(_) => return Step::Dunno,
                DnsAnswer::NotFound => {}
                DnsAnswer::TempFail => temp = true,
            }
        }
        let dsn = if s == Subject::Sender {
            (4, 1, 8)
        } else {
            (4, 1, 2)
        };
        let pr = &self.p.params;
        if temp {
            let r = self.rejected(450, dsn, s, "Domain not found");
            self.set_defer_if_permit(r);
            return Step::Dunno;
        }
        let r = self.rejected(pr.unknown_address_code, dsn, s, "Domain not found");
        self.refuse(r)
    }

    async fn unknown_helo(&mut self, dns: &dyn Dns) -> Step {
        let Some(helo) = self.f.helo.clone() else {
            return Step::Dunno;
        };
        if helo.starts_with('[') {
            return Step::Dunno;
        }
        let mut temp = false;
        for rr in [RrType::A, RrType::Aaaa, RrType::Mx] {
            match dns.lookup(helo.trim_end_matches('.'), rr).await {
                DnsAnswer::Found(_) => return Step::Dunno,
                DnsAnswer::NotFound => {}
                DnsAnswer::TempFail => temp = true,
            }
        }
        let code = self.p.params.unknown_hostname_code;
        if temp {
            let r = self.rejected(450, (4, 7, 1), Subject::Helo, "Host not found");
            self.set_defer_if_permit(r);
            return Step::Dunno;
        }
        let r = self.rejected(code, (4, 7, 1), Subject::Helo, "Host not found");
        self.refuse(r)
    }
}
