//! postern-smtp — the SMTP and LMTP delivery agent (Postfix's smtp(8)).
//!
//! A delivery agent on `postern_server::agent::delivery_server`: one
//! `deliver/1` request per connection from qmgr, one
//! `deliver-reply/1` with exactly one [`RcptResult`] per recipient (request
//! order, offsets preserved), and one delivery log line per recipient.
//! `argv[0]` selects the protocol: `lmtp` speaks LMTP, anything else SMTP.
//!
//! * [`nexthop`]: next-hop syntax (`[host]:port`, `domain`, `unix:/path`…).
//! * [`dest`]: MX / address resolution (RFC 5321 §5.1, null MX).
//! * [`session`]: the conversation (blocking sockets with per-stage deadlines).
//! * [`result`]: replies and I/O failures → recipient outcomes, Postfix's texts.
//! * [`xforward`]: the original client for a content filter (XFORWARD).
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
mod tables;
pub mod tls;
pub mod tlsconf;
pub mod verify;
pub mod xforward;

mod deliver;
pub use deliver::deliver;
use deliver::finish;

use postern_config::{Config, p};
use postern_server::service::{self, Env};
use postern_server::{agent, client, skeleton};
use result::Outcome;
use session::{Settings, Timeouts};
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// `*_fallback_relay`: next hops tried in order when the destination cannot be
    /// found or every host of it failed with a temporary error.
    pub fallback_relays: Vec<String>,
    /// `*_dns_support_level = disabled` (empty: `disable_dns_lookups = yes`): no DNS at
    /// all, no MX lookups, host addresses from the system's name service.
    pub dns_disabled: bool,
    /// `*_send_xforward_command`: forward the original client's attributes with XFORWARD
    /// when the server offers it.
    pub send_xforward: bool,
}

/// Whether DNS is off for the client: `*_dns_support_level` (`disabled`, `enabled`,
/// `dnssec`), or when it is empty the legacy `disable_dns_lookups`, as Postfix decides.
pub fn dns_disabled(cfg: &Config, lmtp: bool) -> Result<bool, String> {
    let name = if lmtp {
        p::LMTP_DNS_SUPPORT_LEVEL
    } else {
        p::SMTP_DNS_SUPPORT_LEVEL
    };
    let level = cfg.str(name);
    match level.trim().to_ascii_lowercase().as_str() {
        "" => Ok(cfg.bool(p::DISABLE_DNS_LOOKUPS)),
        "disabled" => Ok(true),
        "enabled" | "dnssec" => Ok(false),
        _ => Err(format!("invalid {name}: \"{}\"", level.trim())),
    }
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
            helo_name = cfg.str(p::MYHOSTNAME);
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
            xforward: secs("xforward_timeout", 300),
        };
        let default_port = if lmtp {
            cfg.str(p::LMTP_TCP_PORT).parse().unwrap_or(24)
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
                tls_report: (!lmtp && cfg.bool(p::TLSRPT_REPORTING)).then(|| tlsconf::TlsReport {
                    dir: cfg.str(p::TLSRPT_REPORT_DIRECTORY).into(),
                    record: Default::default(),
                }),
                sasl: None,
                mime_conversion: !cfg.bool(p::DISABLE_MIME_OUTPUT_CONVERSION),
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
            myhostname: cfg.str(p::MYHOSTNAME),
            fallback_relays: cfg.get_list(&format!("{pfx}_fallback_relay")),
            dns_disabled: dns_disabled(cfg, lmtp).unwrap_or_else(|e| postern_log::fatal(e)),
            send_xforward: cfg.bool(if lmtp {
                p::LMTP_SEND_XFORWARD_COMMAND
            } else {
                p::SMTP_SEND_XFORWARD_COMMAND
            }),
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
    let args = skeleton::daemon_args(&args);
    // Tables and trust anchors are read before a chroot (master.cf). The resolver
    // is made after it: in a jail it reads the jail's etc/resolv.conf and
    // etc/hosts, as Postfix's smtp does.
    let program = if lmtp { "lmtp" } else { "smtp" };
    let (ctx, (), agent) = skeleton::init_open(
        program,
        &args,
        |_| (),
        |ctx| AgentConfig::from_config(&ctx.jailed_config(), lmtp),
    );
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => postern_log::fatal(format!("tokio runtime: {e}")),
    };
    // Without DNS (`*_dns_support_level = disabled`) no resolver is made at all.
    let resolver = if agent.dns_disabled {
        None
    } else {
        let _guard = rt.enter();
        match postern_dns::Resolver::from_config(&ctx.config) {
            Ok(r) => Some(r),
            Err(e) => {
                postern_log::warning(format!("DNS resolver: {e}"));
                None
            }
        }
    };
    let env = Env::from_master(&ctx);
    let exit = agent::delivery_server(&ctx, env, move |ctx, req| {
        let q = postern_queue::Queue::new(ctx.config.str(p::QUEUE_DIRECTORY));
        let start = now();
        match q.read(
            &req.queue_name,
            &req.queue_id,
            client::content_frame_limit(&ctx.config),
        ) {
            Ok(qf) => {
                let dns = Dns {
                    rt: &rt,
                    resolver: resolver.as_ref(),
                };
                let origin = agent
                    .send_xforward
                    .then(|| xforward::Origin::from_queue_file(&qf.attrs, &req.queue_id));
                deliver(&agent, &dns, req, &qf.content, origin.as_ref(), start)
            }
            Err(e) => {
                postern_log::warning(format!("{}: {e}", req.queue_id));
                let o = Outcome::defer("4.3.0", format!("cannot read queue file: {e}"));
                finish(req, vec![o; req.recipients.len()], "none", start, None)
            }
        }
    });
    service::finish(&ctx, exit)
}

/// DNS access for [`deliver`].
pub struct Dns<'a> {
    /// The runtime the resolver lives on.
    pub rt: &'a tokio::runtime::Runtime,
    /// None when `dns_servers` was unusable (lookups then defer).
    pub resolver: Option<&'a postern_dns::Resolver>,
}

#[cfg(test)]
mod tests {
    use super::{compat_at_least, dns_disabled};
    use postern_config::{Config, parse_main_cf};

    #[test]
    fn dns_support_level_and_the_legacy_switch() {
        let cfg = |t: &str| Config::new(parse_main_cf(t).unwrap());
        assert_eq!(dns_disabled(&cfg(""), false), Ok(false));
        assert_eq!(
            dns_disabled(&cfg("disable_dns_lookups = yes"), false),
            Ok(true)
        );
        // A level set wins over the legacy switch, as in Postfix.
        let both = cfg("disable_dns_lookups = yes\nsmtp_dns_support_level = dnssec");
        assert_eq!(dns_disabled(&both, false), Ok(false));
        assert_eq!(
            dns_disabled(&both, true),
            Ok(true),
            "lmtp_dns_support_level is empty"
        );
        let off = cfg("smtp_dns_support_level = disabled");
        assert_eq!(dns_disabled(&off, false), Ok(true));
        assert_eq!(
            dns_disabled(&cfg("lmtp_dns_support_level = maybe"), true),
            Err("invalid lmtp_dns_support_level: \"maybe\"".into())
        );
    }

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
