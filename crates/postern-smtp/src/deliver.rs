//! One delivery request: the hosts of the next hop in order, then the fallback relays.
//!
//! [`deliver`] resolves the request's next hop to hosts (MX or A/AAAA, or a UNIX socket),
//! takes a cached session or connects to each host in turn, and ends at the first session
//! that answers for every recipient. When the next hop cannot be found or every host failed
//! with a temporary error, the hosts of `smtp_fallback_relay` (`lmtp_fallback_relay`) are
//! tried the same way, in order (Postfix's fallback relays); the last failure is the result.
//!
//! # Configuration
//! `smtp_fallback_relay` (default `$fallback_relay`, empty), through [`AgentConfig`].

use crate::result::{Outcome, Peer};
use crate::session::{self, Conn, Message, SessionEnd};
use crate::{AgentConfig, Dns, cache, dest, nexthop, now, tls, tlsconf, xforward};
use postern_ipc::proto::{Action, DeliverReply, DeliverRequest, RcptResult};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

fn connect_error(peer: &Peer, e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error ").next().unwrap_or(&s).to_string();
    let s = if e.kind() == std::io::ErrorKind::TimedOut {
        "Connection timed out".to_string()
    } else {
        s
    };
    if peer.port == 0 {
        format!("connect to {}: {s}", peer.addr)
    } else {
        format!("connect to {}:{}: {s}", peer.name(), peer.port)
    }
}

/// Delivers `content` for `req`: one result per recipient. When the next hop cannot be
/// found or every host of it failed with a temporary error, the `*_fallback_relay` hosts
/// are tried in order, as Postfix does (not when the next hop is itself a fallback relay).
pub fn deliver(
    agent: &AgentConfig,
    dns: &Dns<'_>,
    req: &DeliverRequest,
    content: &[u8],
    origin: Option<&xforward::Origin>,
    start: f64,
) -> DeliverReply {
    let n = req.recipients.len();
    let msg = Message {
        sender: &req.sender,
        envid: &req.envid,
        ret: &req.ret,
        recipients: &req.recipients,
        content,
        origin,
    };
    let mut failed = match attempt(agent, dns, req, &req.nexthop, &msg, start) {
        Attempt::Done(reply) => return reply,
        Attempt::Failed(f) => f,
    };
    let own = agent.fallback_relays.iter().any(|f| f == &req.nexthop);
    for relay in agent.fallback_relays.iter().filter(|_| !own) {
        if !failed.unfound && failed.outcome.action != Action::Defer {
            break;
        }
        postern_log::info(format!(
            "{}: {}; trying fallback relay {relay}",
            req.queue_id, failed.outcome.text
        ));
        failed = match attempt(agent, dns, req, relay, &msg, start) {
            Attempt::Done(reply) => return reply,
            Attempt::Failed(f) => f,
        };
    }
    finish(req, vec![failed.outcome; n], &failed.relay, start, None)
}

/// Why one next hop got no answer for the message.
struct Failure {
    /// The last host's (or the lookup's) outcome.
    outcome: Outcome,
    /// The `relay=` value of the last host tried (`none` when none was reached).
    relay: String,
    /// The next hop itself could not be found (a lookup failure, even a permanent one).
    unfound: bool,
}

/// The result of delivering to one next hop.
enum Attempt {
    /// A session ended with an answer for every recipient (or a configuration problem that
    /// no other host can change): the final reply.
    Done(DeliverReply),
    /// No host of the next hop took the message.
    Failed(Failure),
}

/// Tries every host of `nexthop` in order.
fn attempt(
    agent: &AgentConfig,
    dns: &Dns<'_>,
    req: &DeliverRequest,
    nexthop_spec: &str,
    msg: &Message<'_>,
    start: f64,
) -> Attempt {
    let n = req.recipients.len();
    let lmtp = agent.session.lmtp;
    let targets = match nexthop::parse(nexthop_spec, lmtp, agent.default_port) {
        Err(why) => Err(Outcome::defer("4.3.5", why)),
        Ok(nexthop::Dest::Unix(path)) => Ok(vec![dest::Target::Unix(path)]),
        Ok(d) if agent.dns_disabled => dest::resolve_system(&d, &agent.addresses),
        Ok(d) => match dns.resolver {
            None => Err(Outcome::defer("4.3.5", "DNS resolver is not configured")),
            Some(r) => dns.rt.block_on(dest::resolve(r, &d, &agent.addresses)),
        },
    };
    let targets = match targets {
        Ok(t) => t,
        Err(outcome) => {
            return Attempt::Failed(Failure {
                outcome,
                relay: "none".into(),
                unfound: true,
            });
        }
    };
    // TLS policy of the next hop; MTA-STS of the recipient domain.
    let (domain, mx_dest) = match nexthop::parse(nexthop_spec, lmtp, agent.default_port) {
        Ok(nexthop::Dest::Inet { host, mx, .. }) => (host, mx && !agent.dns_disabled),
        _ => (agent.myhostname.clone(), false),
    };
    let policy = match agent.tls.policy(nexthop_spec) {
        Ok(p) => p,
        Err(o) => return Attempt::Done(finish(req, vec![o; n], "none", start, None)),
    };
    let sts_policy = match (&agent.sts, dns.resolver) {
        (Some(s), Some(r)) if mx_dest && !policy.explicit => {
            s.policy(&domain, dns.rt, r, &agent.tls.roots())
        }
        _ => None,
    };
    let key = format!("{}|{}", if lmtp { "lmtp" } else { "smtp" }, nexthop_spec);
    let cache = !agent.cache_time.is_zero();
    // A stale cached session (RSET fails) is dropped: connect afresh.
    if cache
        && let Some(mut c) = cache::take(&key)
        && session::rset(&mut c.stream, &agent.session)
    {
        let mut connected = None;
        let mut keep = None;
        let end = session::run_keep(
            &mut c.stream,
            &c.peer,
            &agent.session,
            msg,
            &mut connected,
            Some(&c.caps),
            &mut keep,
        );
        if let SessionEnd::Done(outcomes) = end {
            let relay = c.peer.relay();
            if let Some(caps) = keep {
                c.caps = caps;
                c.expires = Instant::now() + agent.cache_time;
                cache::put(c);
            }
            return Attempt::Done(finish(req, outcomes, &relay, start, connected));
        }
    }
    let mut last = Outcome::defer("4.4.1", "no address to connect to");
    let mut last_relay = "none".to_string();
    let mut k = 0;
    let mut plain_retry = false;
    while k < targets.len() {
        let t = &targets[k];
        let more = k + 1 < targets.len();
        let mut connected = None;
        let (peer, end) = match t {
            dest::Target::Inet { host, ip, port } => {
                let peer = Peer {
                    host: host.clone(),
                    addr: ip.to_string(),
                    port: *port,
                };
                let via_mx = mx_dest && !host.eq_ignore_ascii_case(&domain);
                let conn_settings = tlsconf::prepare(
                    agent,
                    dns,
                    &policy,
                    nexthop_spec,
                    &domain,
                    host,
                    *port,
                    ip.is_ipv6(),
                    via_mx,
                    sts_policy.as_ref(),
                );
                let conn_settings = match conn_settings {
                    Ok(s) => s,
                    Err(o) => {
                        if more {
                            postern_log::info(format!("{}: {}", req.queue_id, o.text));
                        }
                        last = o;
                        last_relay = peer.relay();
                        k += 1;
                        plain_retry = false;
                        continue;
                    }
                };
                let sa = SocketAddr::new(*ip, *port);
                let c = if agent.connect_timeout.is_zero() {
                    TcpStream::connect(sa)
                } else {
                    TcpStream::connect_timeout(&sa, agent.connect_timeout)
                };
                match c {
                    Ok(s) => {
                        let _nodelay = s.set_nodelay(true);
                        let mut s = tls::Stream::Plain(s);
                        let mut settings = conn_settings;
                        if plain_retry {
                            settings.tls = tls::Level::None;
                        }
                        let mut keep = None;
                        let end = session::run_keep(
                            &mut s,
                            &peer,
                            &settings,
                            msg,
                            &mut connected,
                            None,
                            &mut keep,
                        );
                        if let Some(caps) = keep {
                            if cache && matches!(end, SessionEnd::Done(_)) {
                                cache::put(cache::Cached {
                                    key: key.clone(),
                                    stream: s,
                                    caps,
                                    peer: peer.clone(),
                                    settings,
                                    expires: Instant::now() + agent.cache_time,
                                });
                            } else {
                                session::quit(&mut s, &settings);
                            }
                        }
                        (peer, end)
                    }
                    Err(e) => {
                        last = Outcome::defer("4.4.1", connect_error(&peer, &e));
                        last_relay = "none".into();
                        if more {
                            postern_log::info(&last.text);
                        }
                        k += 1;
                        plain_retry = false;
                        continue;
                    }
                }
            }
            dest::Target::Unix(path) => {
                let peer = Peer {
                    host: agent.myhostname.clone(),
                    addr: path.clone(),
                    port: 0,
                };
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(mut s) => {
                        let end = run_conn(&mut s, &peer, agent, msg, &mut connected);
                        (peer, end)
                    }
                    Err(e) => {
                        last = Outcome::defer("4.4.1", connect_error(&peer, &e));
                        last_relay = "none".into();
                        if more {
                            postern_log::info(&last.text);
                        }
                        k += 1;
                        continue;
                    }
                }
            }
        };
        match end {
            SessionEnd::Done(outcomes) => {
                return Attempt::Done(finish(req, outcomes, &peer.relay(), start, connected));
            }
            SessionEnd::NextHost(o) => {
                if more {
                    postern_log::info(format!("{}: {}", req.queue_id, o.text));
                }
                last = o;
                last_relay = peer.relay();
                k += 1;
                plain_retry = false;
            }
            SessionEnd::TlsFailed(o) => {
                // Postfix retries the same address in plaintext under `may`.
                postern_log::info(format!(
                    "{}: {}; retrying without TLS",
                    req.queue_id, o.text
                ));
                last = o;
                last_relay = peer.relay();
                if plain_retry {
                    k += 1;
                    plain_retry = false;
                } else {
                    plain_retry = true;
                }
            }
        }
    }
    Attempt::Failed(Failure {
        outcome: last,
        relay: last_relay,
        unfound: false,
    })
}

fn run_conn<C: Conn>(
    s: &mut C,
    peer: &Peer,
    agent: &AgentConfig,
    msg: &Message<'_>,
    connected: &mut Option<Instant>,
) -> SessionEnd {
    session::run(s, peer, &agent.session, msg, connected)
}

/// Builds the reply and logs one line per recipient.
pub(crate) fn finish(
    req: &DeliverRequest,
    outcomes: Vec<Outcome>,
    relay: &str,
    start: f64,
    connected: Option<Instant>,
) -> DeliverReply {
    let end = now();
    let active = req.active_since.max(req.arrival);
    let conn_secs = connected
        .map(|c| {
            let since = c.elapsed().as_secs_f64();
            (end - since - start).max(0.0)
        })
        .unwrap_or(0.0);
    let results: Vec<RcptResult> = req
        .recipients
        .iter()
        .zip(outcomes)
        .map(|(r, o)| RcptResult {
            recipient: r.clone(),
            action: o.action,
            dsn: o.dsn,
            text: o.text,
            relay: relay.to_string(),
        })
        .collect();
    for r in &results {
        let line =
            postern_log::delivery::format_delivery_line(&postern_log::delivery::DeliveryRecord {
                queue_id: &req.queue_id,
                to: &r.recipient.address,
                orig_to: &r.recipient.original,
                relay: &r.relay,
                delay: end - req.arrival,
                delays: [
                    active - req.arrival,
                    start - active,
                    conn_secs,
                    end - start - conn_secs,
                ],
                dsn: &r.dsn,
                status: r.action.as_str(),
                text: &r.text,
            });
        postern_log::info(line);
    }
    debug_assert!(
        results
            .iter()
            .all(|r| r.action != Action::Sent || r.dsn.starts_with('2'))
    );
    DeliverReply { results }
}
