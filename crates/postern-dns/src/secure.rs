//! DNSSEC-aware lookups for DANE (RFC 7672): the answer together with the AD
//! ("authentic data") bit of the configured resolver.
//!
//! Postfix does not validate DNSSEC itself: with `smtp_dns_support_level =
//! dnssec` it sets the DO bit (EDNS0) on its queries and trusts the AD bit of
//! the recursive resolver it is configured to use, which should be a local,
//! validating one. [`Resolver::query_secure`] does the same: one query per
//! attempt with EDNS0 (DO=1) and AD=1 (RFC 6840 §5.7), sent to the servers of
//! `dns_servers` (or resolv.conf) in order, over UDP and over TCP when the
//! UDP answer is truncated. No cache: these answers are asked for only at
//! DANE security levels, once per delivery attempt and MX host.
//!
//! Security notes: the reply must come from the server asked (connected
//! UDP socket), carry our random id and echo our question; its size is
//! bounded (UDP 4096 bytes, TCP 65535) and it is decoded by hickory-proto.
//! The AD bit is only as trustworthy as the path to the resolver: use a
//! resolver on loopback.
//!
//! Parameters: none of its own (`dns_servers` through [`Resolver`]).

use crate::{Lookup, Resolver, to_name};
use hickory_resolver::proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_resolver::proto::rr::{RData, RecordType};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// An answer and whether the resolver marked it authentic (AD bit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secure<T> {
    /// The records.
    pub records: T,
    /// The AD bit of the reply: the resolver validated the answer with DNSSEC.
    pub authentic: bool,
}

/// One TLSA record (RFC 6698 §2.1), as numbers and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// Certificate usage: 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE.
    pub usage: u8,
    /// Selector: 0 full certificate, 1 SubjectPublicKeyInfo.
    pub selector: u8,
    /// Matching type: 0 exact, 1 SHA2-256, 2 SHA2-512.
    pub mtype: u8,
    /// Certificate association data.
    pub data: Vec<u8>,
}

/// Largest UDP reply we accept.
const MAX_UDP: usize = 4096;

enum Raw {
    Answer(Message),
    NxDomain(bool),
    Fail(String),
}

impl Resolver {
    /// Records of `rtype` at `name` with the AD bit of the reply. NXDOMAIN
    /// and NODATA are [`Lookup::NotFound`].
    pub async fn query_secure(&self, name: &str, rtype: RecordType) -> Lookup<Secure<Vec<RData>>> {
        let Some(qname) = to_name(name) else {
            return Lookup::NotFound;
        };
        let mut last = format!("{name}/{rtype}: no DNS server answered");
        for _attempt in 0..self.opts.attempts.max(1) {
            for server in self.servers.iter() {
                let mut msg = Message::query();
                msg.metadata.recursion_desired = true;
                msg.metadata.authentic_data = true;
                msg.add_query(Query::query(qname.clone(), rtype));
                let mut edns = Edns::new();
                edns.set_max_payload(1232);
                edns.set_dnssec_ok(true);
                msg.set_edns(edns);
                let id = msg.metadata.id;
                let Ok(wire) = msg.to_vec() else {
                    return Lookup::NotFound;
                };
                match ask(*server, &wire, id, &msg.queries, self.opts.timeout).await {
                    Raw::Answer(m) => {
                        let v: Vec<RData> = m
                            .answers
                            .iter()
                            .filter(|r| r.data.record_type() == rtype)
                            .map(|r| r.data.clone())
                            .collect();
                        if v.is_empty() {
                            return Lookup::NotFound;
                        }
                        return Lookup::Found(Secure {
                            records: v,
                            authentic: m.metadata.authentic_data,
                        });
                    }
                    Raw::NxDomain(_ad) => return Lookup::NotFound,
                    Raw::Fail(why) => last = format!("{name}/{rtype}: {why}"),
                }
            }
        }
        Lookup::TempFail(last)
    }

    /// TLSA records at `name` (`_25._tcp.mx.example`) with the AD bit.
    pub async fn tlsa(&self, name: &str) -> Lookup<Secure<Vec<Tlsa>>> {
        self.query_secure(name, RecordType::TLSA)
            .await
            .map(|s| Secure {
                records: s
                    .records
                    .into_iter()
                    .filter_map(|d| match d {
                        RData::TLSA(t) => Some(Tlsa {
                            usage: t.cert_usage.into(),
                            selector: t.selector.into(),
                            mtype: t.matching.into(),
                            data: t.cert_data,
                        }),
                        _ => None,
                    })
                    .collect(),
                authentic: s.authentic,
            })
    }

    /// Whether the A (or AAAA, for `v6`) records of `host` are DNSSEC
    /// validated (Postfix looks TLSA records up only for such hosts).
    /// Loopback names from `/etc/hosts` count as validated.
    pub async fn address_secure(&self, host: &str, v6: bool) -> Lookup<bool> {
        if self.hosts.addrs(host).is_some() {
            return Lookup::Found(true);
        }
        let t = if v6 { RecordType::AAAA } else { RecordType::A };
        self.query_secure(host, t).await.map(|s| s.authentic)
    }

    /// MX records of `domain` with the AD bit (host names without the dot).
    pub async fn mx_secure(&self, domain: &str) -> Lookup<Secure<Vec<(u16, String)>>> {
        self.query_secure(domain, RecordType::MX)
            .await
            .map(|s| Secure {
                records: s
                    .records
                    .into_iter()
                    .filter_map(|d| match d {
                        RData::MX(mx) => Some((mx.preference, crate::name_text(&mx.exchange))),
                        _ => None,
                    })
                    .collect(),
                authentic: s.authentic,
            })
    }
}

/// One exchange with one server: UDP, then TCP when truncated.
async fn ask(server: SocketAddr, wire: &[u8], id: u16, q: &[Query], timeout: Duration) -> Raw {
    let reply = match tokio::time::timeout(timeout, udp(server, wire)).await {
        Err(_) => return Raw::Fail("timed out".into()),
        Ok(Err(e)) => return Raw::Fail(e.to_string()),
        Ok(Ok(r)) => r,
    };
    let mut m = match check(&reply, id, q) {
        Ok(m) => m,
        Err(why) => return Raw::Fail(why),
    };
    if m.metadata.truncation {
        let reply = match tokio::time::timeout(timeout, tcp(server, wire)).await {
            Err(_) => return Raw::Fail("timed out".into()),
            Ok(Err(e)) => return Raw::Fail(e.to_string()),
            Ok(Ok(r)) => r,
        };
        m = match check(&reply, id, q) {
            Ok(m) => m,
            Err(why) => return Raw::Fail(why),
        };
    }
    match m.metadata.response_code {
        ResponseCode::NoError => Raw::Answer(m),
        ResponseCode::NXDomain => Raw::NxDomain(m.metadata.authentic_data),
        code => Raw::Fail(format!("server answered {code}")),
    }
}

fn check(reply: &[u8], id: u16, q: &[Query]) -> Result<Message, String> {
    let m = Message::from_vec(reply).map_err(|e| format!("malformed reply: {e}"))?;
    if m.metadata.id != id || m.metadata.message_type != MessageType::Response {
        return Err("reply does not match the query".into());
    }
    // hickory compares names case-insensitively.
    if m.queries.len() != q.len()
        || !m
            .queries
            .iter()
            .zip(q)
            .all(|(a, b)| a.query_type() == b.query_type() && a.name() == b.name())
    {
        return Err("reply is for another question".into());
    }
    Ok(m)
}

async fn udp(server: SocketAddr, wire: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(server).await?;
    sock.send(wire).await?;
    let mut buf = vec![0u8; MAX_UDP];
    let n = sock.recv(&mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

async fn tcp(server: SocketAddr, wire: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(server).await?;
    let len = u16::try_from(wire.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "query too long"))?;
    let mut out = Vec::with_capacity(wire.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(wire);
    s.write_all(&out).await?;
    let mut lenb = [0u8; 2];
    s.read_exact(&mut lenb).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(lenb))];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}
