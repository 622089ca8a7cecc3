//! A tiny in-process DNS responder for tests: UDP and TCP on one loopback
//! port, answering from a map built with hickory-proto's types.
//!
//! Special behaviour by name: anything under `servfail.test` gets SERVFAIL,
//! anything under `timeout.test` gets no reply at all, and answers for names
//! under `big.test` are truncated (TC) over UDP so the client must retry over
//! TCP. Unknown names get NXDOMAIN; known names without the type asked get
//! NOERROR with an empty answer (NODATA).

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, MX, PTR, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// The zone: (lower-case name without trailing dot, type) → records.
#[derive(Default, Clone)]
pub struct Zone {
    map: HashMap<(String, RecordType), Vec<RData>>,
}

#[allow(dead_code)]
impl Zone {
    pub fn add(&mut self, name: &str, rdata: RData) -> &mut Self {
        self.map
            .entry((key(name), rdata.record_type()))
            .or_default()
            .push(rdata);
        self
    }
    pub fn a(&mut self, name: &str, ip: &str) -> &mut Self {
        match ip.parse::<IpAddr>().unwrap() {
            IpAddr::V4(v4) => self.add(name, RData::A(A(v4))),
            IpAddr::V6(v6) => self.add(name, RData::AAAA(AAAA(v6))),
        }
    }
    pub fn mx(&mut self, name: &str, pref: u16, host: &str) -> &mut Self {
        self.add(
            name,
            RData::MX(MX::new(pref, Name::from_ascii(host).unwrap())),
        )
    }
    pub fn ptr(&mut self, ip: &str, host: &str) -> &mut Self {
        let ip: IpAddr = ip.parse().unwrap();
        let name = postern_dns::ptr_name(ip);
        self.add(&name, RData::PTR(PTR(Name::from_ascii(host).unwrap())))
    }
    pub fn txt(&mut self, name: &str, strings: &[&str]) -> &mut Self {
        self.add(
            name,
            RData::TXT(TXT::new(strings.iter().map(|s| s.to_string()).collect())),
        )
    }
    fn name_exists(&self, name: &str) -> bool {
        self.map.keys().any(|(n, _)| n == name)
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn under(name: &str, zone: &str) -> bool {
    name == zone || name.ends_with(&format!(".{zone}"))
}

/// A running responder; dropped with the test's runtime.
pub struct Responder {
    pub addr: SocketAddr,
    /// Queries received (UDP and TCP).
    pub queries: Arc<AtomicUsize>,
    /// Queries received over TCP.
    pub tcp_queries: Arc<AtomicUsize>,
}

/// Answer for one query message, or `None` to stay silent.
fn answer(zone: &Zone, req: &[u8], udp: bool) -> Option<Vec<u8>> {
    let q = Message::from_vec(req).ok()?;
    if q.metadata.message_type != MessageType::Query {
        return None;
    }
    let query = q.queries.first()?.clone();
    let name = key(&query.name.to_ascii());
    if under(&name, "timeout.test") {
        return None;
    }
    let mut m = Message::response(q.metadata.id, q.metadata.op_code);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.add_query(query.clone());
    if under(&name, "servfail.test") {
        m.metadata.response_code = ResponseCode::ServFail;
    } else if let Some(rr) = zone.map.get(&(name.clone(), query.query_type)) {
        m.metadata.authoritative = true;
        if udp && under(&name, "big.test") {
            m.metadata.truncation = true;
        } else {
            for d in rr {
                m.add_answer(Record::from_rdata(query.name.clone(), 60, d.clone()));
            }
        }
    } else if !zone.name_exists(&name) {
        m.metadata.response_code = ResponseCode::NXDomain;
    }
    m.to_vec().ok()
}

/// Starts the responder on 127.0.0.1 (UDP and TCP on the same free port).
pub async fn start(zone: Zone) -> Responder {
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        if let Ok(tcp) = TcpListener::bind(addr).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().unwrap();
    let zone = Arc::new(zone);
    let queries = Arc::new(AtomicUsize::new(0));
    let tcp_queries = Arc::new(AtomicUsize::new(0));
    {
        let zone = zone.clone();
        let queries = queries.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                    return;
                };
                queries.fetch_add(1, Ordering::SeqCst);
                if let Some(out) = answer(&zone, &buf[..n], true) {
                    // A lost reply is the client's timeout case; nothing to do here.
                    drop(udp.send_to(&out, peer).await);
                }
            }
        });
    }
    {
        let queries = queries.clone();
        let tcp_queries = tcp_queries.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = tcp.accept().await else {
                    return;
                };
                let zone = zone.clone();
                let queries = queries.clone();
                let tcp_queries = tcp_queries.clone();
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 2];
                        if s.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut req = vec![0u8; u16::from_be_bytes(len) as usize];
                        if s.read_exact(&mut req).await.is_err() {
                            return;
                        }
                        queries.fetch_add(1, Ordering::SeqCst);
                        tcp_queries.fetch_add(1, Ordering::SeqCst);
                        if let Some(out) = answer(&zone, &req, false) {
                            let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                            framed.extend_from_slice(&out);
                            if s.write_all(&framed).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
    }
    Responder {
        addr,
        queries,
        tcp_queries,
    }
}
