//! postern-smtp — the SMTP and LMTP delivery agent (Postfix's smtp(8)).
//!
//! A single_server: one `deliver/1` request per connection from qmgr, one
//! `deliver-reply/1` with exactly one [`RcptResult`] per recipient (request
//! order, offsets preserved), and one delivery log line per recipient.
//! `argv[0]` selects the protocol: `lmtp` speaks LMTP, anything else SMTP.
//!
//! * [`nexthop`]: next-hop syntax (`[host]:port`, `domain`, `unix:/path`…).
//! * [`dest`]: MX / address resolution (RFC 5321 §5.1, null MX).
//! * [`session`]: the conversation (blocking sockets with per-stage deadlines).
//! * [`result`]: replies and I/O failures → recipient outcomes, Postfix's texts.
//!
//! DNS runs on a current-thread tokio runtime owned by the process (hickory
//! needs one); the SMTP conversation itself uses blocking std sockets.
pub mod cache;
pub mod dane;
pub mod dest;
pub mod https;
pub mod mime7;
pub mod nexthop;
pub mod policy;
pub mod result;
pub mod sasl;
pub mod session;
pub mod sts;
pub mod tls;
pub mod tlsconf;
pub mod verify;

use postern_config::Config;
use postern_ipc::proto::{Action, DeliverReply, DeliverRequest, RcptResult};
use postern_server::{client, skeleton};
use result::{Outcome, Peer};
use session::{Conn, Message, SessionEnd, Settings, Timeouts};
use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Everything the agent reads from main.cf (with the `smtp_`/`lmtp_` prefix).
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Session settings.
    pub session: Settings,
    /// TLS policy (main.cf, policy tables, trust anchors).
    pub tls: std::sync::Arc<tlsconf::TlsConf>,
    /// SASL client settings (None: `smtp_sasl_auth_enable = no`).
    pub sasl: Option<std::sync::Arc<sasl::SaslConf>>,
    /// MTA-STS (None: `smtp_mta_sts_enable = no`).
    pub sts: Option<sts::Sts>,
    /// `*_connect_timeout` (zero: the system's).
    pub connect_timeout: Duration,
    /// Address families, preference and `*_mx_address_limit`.
    pub addresses: dest::AddrPolicy,
    /// 25, or `lmtp_tcp_port` (24).
    pub default_port: u16,
    /// `myhostname`: the host name Postfix logs for a UNIX-socket peer
    /// (`relay=myhostname[/path]`).
    pub myhostname: String,
    /// `*_connection_cache_time_limit` when `*_connection_cache_on_demand`
    /// is on (zero: no reuse).
    pub cache_time: Duration,
}

impl AgentConfig {
    /// Reads the parameters for `smtp` or `lmtp`.
    pub fn from_config(cfg: &Config, lmtp: bool) -> AgentConfig {
        let pfx = if lmtp { "lmtp" } else { "smtp" };
        let secs = |name: &str, dflt: u64| {
            Duration::from_secs(cfg.get_time(&format!("{pfx}_{name}")).unwrap_or(dflt))
        };
        let helo = if lmtp { "lhlo" } else { "helo" };
        let mut helo_name = cfg.get(&format!("{pfx}_{helo}_name"));
        if helo_name.is_empty() {
            helo_name = cfg.get("myhostname");
        }
        if helo_name.is_empty() {
            helo_name = "localhost".into();
        }
        let timeouts = Timeouts {
            helo: secs(&format!("{helo}_timeout"), 300),
            mail: secs("mail_timeout", 300),
            rcpt: secs("rcpt_timeout", 300),
            data_init: secs("data_init_timeout", 120),
            data_xfer: secs("data_xfer_timeout", 180),
            data_done: secs("data_done_timeout", 600),
            quit: secs("quit_timeout", 300),
        };
        let default_port = if lmtp {
            cfg.get("lmtp_tcp_port").parse().unwrap_or(24)
        } else {
            25
        };
        let tls_conf = tlsconf::TlsConf::from_config(cfg, lmtp);
        AgentConfig {
            session: Settings {
                lmtp,
                helo_name,
                timeouts,
                reply_limits: Default::default(),
                tls: tls::Level::None,
                tls_config: None,
                tls_verifier: None,
                tls_sni: None,
                tls_loglevel: tls_conf.loglevel,
                tls_sts_testing: None,
                sasl: None,
                mime_conversion: !matches!(
                    cfg.get("disable_mime_output_conversion").trim(),
                    "yes" | "true" | "1"
                ),
            },
            tls: std::sync::Arc::new(tls_conf),
            sasl: sasl::SaslConf::from_config(cfg, lmtp).map(std::sync::Arc::new),
            sts: if lmtp {
                None
            } else {
                sts::Sts::from_config(cfg)
            },
            connect_timeout: secs("connect_timeout", if lmtp { 0 } else { 30 }),
            addresses: dest::AddrPolicy::from_config(cfg, pfx),
            default_port,
            myhostname: cfg.get("myhostname"),
            cache_time: if matches!(
                cfg.get(&format!("{pfx}_connection_cache_on_demand")).trim(),
                "no" | "false" | "0"
            ) {
                Duration::ZERO
            } else {
                secs("connection_cache_time_limit", 2)
            },
        }
    }
}

pub(crate) fn compat_at_least(level: &str, want: (u32, u32)) -> bool {
    let mut it = level
        .trim()
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let major = it.next().unwrap_or(0);
    let minor = it.next().unwrap_or(0);
    (major, minor) >= want
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let program = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "smtp".into());
    let lmtp = program == "lmtp";
    let args: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let ctx = skeleton::init(if lmtp { "lmtp" } else { "smtp" }, &args);
    let agent = AgentConfig::from_config(&ctx.config, lmtp);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => postern_log::fatal(format!("tokio runtime: {e}")),
    };
    let resolver = {
        let _guard = rt.enter();
        match postern_dns::Resolver::from_config(&ctx.config) {
            Ok(r) => Some(r),
            Err(e) => {
                postern_log::warning(format!("DNS resolver: {e}"));
                None
            }
        }
    };
    skeleton::single_server(ctx, move |ctx, mut stream| {
        let Some(attrs) = skeleton::read_request(ctx, &mut stream, 1 << 24, "delivery request")
        else {
            return;
        };
        let req = match DeliverRequest::from_attrs(&attrs) {
            Ok(r) => r,
            Err(e) => return postern_log::warning(format!("bad delivery request: {e}")),
        };
        let q = postern_queue::Queue::new(ctx.config.get("queue_directory"));
        let start = now();
        let reply = match q.read(
            &req.queue_name,
            &req.queue_id,
            client::content_frame_limit(&ctx.config),
        ) {
            Ok(qf) => {
                let dns = Dns {
                    rt: &rt,
                    resolver: resolver.as_ref(),
                };
                deliver(&agent, &dns, &req, &qf.content, start)
            }
            Err(e) => {
                postern_log::warning(format!("{}: {e}", req.queue_id));
                let o = Outcome::defer("4.3.0", format!("cannot read queue file: {e}"));
                finish(&req, vec![o; req.recipients.len()], "none", start, None)
            }
        };
        if let Err(e) = client::write_frame(&mut stream, &reply.to_attrs()) {
            postern_log::warning(format!("{}: send reply: {e}", req.queue_id));
        }
    })
}

/// DNS access for [`deliver`].
pub struct Dns<'a> {
    /// The runtime the resolver lives on.
    pub rt: &'a tokio::runtime::Runtime,
    /// None when `dns_servers` was unusable (lookups then defer).
    pub resolver: Option<&'a postern_dns::Resolver>,
}

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

/// Delivers `content` for `req`: one result per recipient.
pub fn deliver(
    agent: &AgentConfig,
    dns: &Dns<'_>,
    req: &DeliverRequest,
    content: &[u8],
    start: f64,
) -> DeliverReply {
    let n = req.recipients.len();
    let lmtp = agent.session.lmtp;
    let targets = match nexthop::parse(&req.nexthop, lmtp, agent.default_port) {
        Err(why) => Err(Outcome::defer("4.3.5", why)),
        Ok(nexthop::Dest::Unix(path)) => Ok(vec![dest::Target::Unix(path)]),
        Ok(d) => match dns.resolver {
            None => Err(Outcome::defer("4.3.5", "DNS resolver is not configured")),
            Some(r) => dns.rt.block_on(dest::resolve(r, &d, &agent.addresses)),
        },
    };
    let targets = match targets {
        Ok(t) => t,
        Err(o) => return finish(req, vec![o; n], "none", start, None),
    };
    // TLS policy of the next hop; MTA-STS of the recipient domain.
    let (domain, mx_dest) = match nexthop::parse(&req.nexthop, lmtp, agent.default_port) {
        Ok(nexthop::Dest::Inet { host, mx, .. }) => (host, mx),
        _ => (agent.myhostname.clone(), false),
    };
    let policy = match agent.tls.policy(&req.nexthop) {
        Ok(p) => p,
        Err(o) => return finish(req, vec![o; n], "none", start, None),
    };
    let sts_policy = match (&agent.sts, dns.resolver) {
        (Some(s), Some(r)) if mx_dest && !policy.explicit => {
            s.policy(&domain, dns.rt, r, &agent.tls.roots())
        }
        _ => None,
    };
    let msg = Message {
        sender: &req.sender,
        envid: &req.envid,
        ret: &req.ret,
        recipients: &req.recipients,
        content,
    };
    let key = format!("{}|{}", if lmtp { "lmtp" } else { "smtp" }, req.nexthop);
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
            &msg,
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
            return finish(req, outcomes, &relay, start, connected);
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
                    &req.nexthop,
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
                            &msg,
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
                        let end = run_conn(&mut s, &peer, agent, &msg, &mut connected);
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
                return finish(req, outcomes, &peer.relay(), start, connected);
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
    finish(req, vec![last; n], &last_relay, start, None)
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
fn finish(
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

#[cfg(test)]
mod tests {
    use super::compat_at_least;

    #[test]
    fn compatibility_levels() {
        assert!(compat_at_least("3.11", (3, 11)));
        assert!(compat_at_least("3.12", (3, 11)));
        assert!(compat_at_least("4", (3, 11)));
        assert!(!compat_at_least("3.6", (3, 11)));
        assert!(!compat_at_least("3.10", (3, 11)));
        assert!(!compat_at_least("0", (3, 11)));
    }
}
