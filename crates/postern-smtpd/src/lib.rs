//! postern-smtpd — the SMTP server (Postfix's `smtpd(8)`).
//!
//! One process serves many client sessions at once (an event server on
//! tokio); master.cf's process limit bounds the number of processes. Each
//! session runs the state machine in [`session`], checks Postfix's access
//! restrictions through [`policy`], and hands each message to cleanup
//! ([`txn`]); the `250` reply to the end of data is sent only after cleanup
//! reports the queue file durable.
//!
//! # Security
//! Runs unprivileged (`mail_owner`); the TLS keys are read first, as root,
//! in the skeleton's pre-init hook (as Postfix's `pre_init`). Every client line is bounded by
//! `line_length_limit`, every message by `message_size_limit`, every wait by
//! `smtpd_timeout`; errors slow the client down and end the session at
//! `smtpd_hard_error_limit`. The parser never panics on client input.
//!
//! # Configuration
//! `smtpd_banner`, `smtpd_timeout`, `smtpd_*_error_limit`,
//! `smtpd_error_sleep_time`, `smtpd_recipient_limit`, `message_size_limit`,
//! `line_length_limit`, `disable_vrfy_command`, `smtpd_helo_required`,
//! `strict_rfc821_envelopes`, `smtpd_forbid_bare_newline`,
//! `smtpd_discard_ehlo_keywords`, `smtputf8_enable`, `queue_minfree` and
//! `queue_directory` (the free-space check at MAIL, see `checks`), and the
//! restriction lists with relay control (see [`policy`]: `mynetworks`,
//! `mynetworks_style`, `inet_interfaces`, `proxy_interfaces`, `relay_domains`,
//! the routing switches); `notify_classes`, `error_notice_recipient` and
//! `smtpd_history_flush_threshold` (the postmaster's transcript, see [`notify`]).

pub mod anvil;
pub mod auth;
mod checks;
pub mod conn;
pub mod counters;
pub mod notify;
pub mod policy;
pub mod resolver;
pub mod sasl;
pub mod session;
mod session_input;
mod session_tls;
pub mod settings;
pub mod standalone;
pub use postern_tls::server as tls;
pub mod txn;
pub mod xclient;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

/// Sessions one process holds before master is asked for another process.
const SESSIONS_PER_PROCESS: usize = 1000;

/// What smtpd opens with its own rights, before a chroot.
struct Opened {
    policy: Result<policy::Policy, policy::PolicyError>,
    sasl: Result<Option<sasl::Sasl>, sasl::SaslError>,
    anvil: anvil::Anvil,
    trusted: xclient::Trusted,
    /// Built here too: `smtpd_forbidden_commands` may name a table file.
    settings: settings::Settings,
}

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = postern_server::skeleton::daemon_args(&args);
    // Postfix's pre_init: the TLS keys and certificates are read before
    // privileges are dropped (Debian's key is 0640 root:ssl-cert); every table
    // (restrictions, client lists) is opened with smtpd's own rights, before a
    // chroot (master.cf); what names queue paths (policy and SASL sockets) sees
    // the configuration of the jail.
    let standalone = |ctx: &postern_server::skeleton::Context| ctx.args.iter().any(|a| a == "-S");
    let (ctx, tls, opened) = postern_server::skeleton::init_open(
        "smtpd",
        &args,
        |ctx| {
            let tp = tls::TlsPolicy::from_config(&ctx.config).ok();
            tp.filter(|tp| tp.use_tls && !standalone(ctx))
                .map(|tp| tls::TlsServer::load(&ctx.config, &tp))
        },
        |ctx| {
            let jailed = ctx.jailed_config();
            (!standalone(ctx)).then(|| Opened {
                policy: policy::Policy::from_config(&jailed),
                sasl: sasl::Sasl::from_config(&jailed),
                anvil: anvil::Anvil::new(&jailed, &ctx.service),
                trusted: xclient::Trusted::from_config(&jailed),
                settings: settings::Settings::from_config(&jailed),
            })
        },
    );
    let Some(opened) = opened else {
        return standalone::run(ctx);
    };
    let mut settings = opened.settings;
    settings.tls.service = ctx.service.clone();
    if settings.tls.use_tls {
        // As Postfix: a TLS setup problem is a warning, and the service runs
        // without TLS (STARTTLS not offered; wrapper-mode sessions dropped).
        match tls {
            Some(Ok(s)) => settings.tls_server = Some(Arc::new(s)),
            Some(Err(e)) => postern_log::warning(e),
            None => {}
        }
    }
    match opened.sasl {
        Ok(s) => settings.sasl = s.map(Arc::new),
        Err(e) => postern_log::fatal(e),
    }
    let resolver = resolver::from_config(&ctx.config);
    // Fail closed: an authentication setting that does not parse stops smtpd.
    let auth_settings =
        auth::AuthSettings::from_config(&ctx.config).unwrap_or_else(|e| postern_log::fatal(e));
    let auth = resolver.as_ref().map(|r| {
        Arc::new(auth::Auth::new(
            auth_settings.clone(),
            r,
            &settings.myhostname,
        ))
    });
    if auth_settings.is_some() && auth.is_none() {
        postern_log::fatal("smtpd_authentication_checks: DNS lookups are not configured");
    }
    settings.auth = auth.clone();
    let settings = Arc::new(settings);
    let policy = match opened.policy {
        Ok(mut p) => {
            if let Some(r) = &resolver {
                p.set_dns(Arc::new(resolver::PolicyDns(r.clone())));
            }
            if let Some(a) = &auth {
                p.set_spf(a.clone());
            }
            Arc::new(p)
        }
        Err(e) => postern_log::fatal(e),
    };
    let anvil = Arc::new(opened.anvil);
    let trusted = Arc::new(opened.trusted);
    let env = postern_server::service::Env::from_master(&ctx);
    let exit = postern_server::event::event_server(
        &ctx,
        env,
        SESSIONS_PER_PROCESS,
        move |ctx, io, peer| {
            let (settings, policy, anvil, trusted, resolver) = (
                settings.clone(),
                policy.clone(),
                anvil.clone(),
                trusted.clone(),
                resolver.clone(),
            );
            async move {
                let mut conn = conn::Conn::new(io, settings.timeout);
                conn.set_per_record_deadline(settings.per_record_deadline);
                let addr = peer.addr.map(|a| a.ip());
                let mut sess = session::Session::new(
                    &settings,
                    &ctx.config,
                    &policy,
                    &anvil,
                    &trusted,
                    conn,
                    addr,
                );
                sess.client_port = peer.addr.map_or(0, |a| a.port());
                sess.server_addr = peer.local;
                resolver::name_client(&mut sess, resolver.as_ref()).await;
                sess.run().await;
            }
        },
    );
    postern_server::service::finish(&ctx, exit)
}
