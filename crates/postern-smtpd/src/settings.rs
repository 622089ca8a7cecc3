//! The main.cf parameters smtpd reads, resolved once per process.

use postern_config::Config;
use std::time::Duration;

/// smtpd's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `$myhostname`.
    pub myhostname: String,
    /// `$smtpd_banner`, expanded.
    pub banner: String,
    /// `message_size_limit` (0 = none).
    pub message_size_limit: u64,
    /// `smtpd_recipient_limit`.
    pub recipient_limit: usize,
    /// `smtpd_timeout`.
    pub timeout: Duration,
    /// `smtpd_soft_error_limit`.
    pub soft_error_limit: u32,
    /// `smtpd_hard_error_limit`.
    pub hard_error_limit: u32,
    /// `smtpd_error_sleep_time`.
    pub error_sleep: Duration,
    /// `smtpd_junk_command_limit`.
    pub junk_command_limit: u32,
    /// `line_length_limit`.
    pub line_length_limit: usize,
    /// `queue_minfree` in bytes (0 = only the message-size rule).
    pub queue_minfree: u64,
    /// `queue_directory` (the file system whose free space MAIL checks).
    pub queue_directory: std::path::PathBuf,
    /// `disable_vrfy_command`.
    pub disable_vrfy: bool,
    /// `smtpd_helo_required`.
    pub helo_required: bool,
    /// `smtputf8_enable`.
    pub smtputf8: bool,
    /// `strict_rfc821_envelopes`.
    pub strict_rfc821: bool,
    /// `smtpd_forbid_bare_newline` (`normalize`, `yes`, `no`).
    pub forbid_bare_newline: String,
    /// `smtpd_delay_reject`.
    pub delay_reject: bool,
    /// `ipc_timeout` for the cleanup exchange.
    pub ipc_timeout: Duration,
    /// `smtpd_discard_ehlo_keywords`, lowercased.
    pub discard_ehlo: Vec<String>,
    /// `smtpd_per_request_deadline` (formerly `smtpd_per_record_deadline`).
    pub per_record_deadline: bool,
    /// Stand-alone mode (`sendmail -bs`): submit through postdrop with this
    /// configuration directory instead of talking to cleanup.
    pub postdrop_config: Option<std::path::PathBuf>,
    /// TLS levels and options (`smtpd_tls_security_level` and friends).
    pub tls: crate::tls::TlsPolicy,
    /// The rustls server, when TLS is enabled and the keys loaded (set by
    /// the daemon's main, never in stand-alone mode).
    pub tls_server: Option<std::sync::Arc<crate::tls::TlsServer>>,
    /// The SASL server when `smtpd_sasl_auth_enable = yes` (set by the
    /// daemon's main, never in stand-alone mode).
    pub sasl: Option<std::sync::Arc<crate::sasl::Sasl>>,
    /// `notify_classes` and the postmaster's error notice.
    pub notify: crate::notify::NotifySettings,
    /// `smtpd_forbidden_commands`: verbs (and tables of verbs) that end the session as
    /// non-SMTP, as header-like lines do.
    pub forbidden_commands: std::sync::Arc<postern_table::DomainList>,
    /// `smtpd_proxy_filter` and its options (the before-queue filter).
    pub proxy: Option<crate::txn::proxy::ProxySettings>,
    /// `smtpd_milters`/`smtpd_milter_maps` and the `milter_*` settings (`None`: no
    /// milters for this service).
    pub milters: Option<std::sync::Arc<crate::session::milter::MilterConfig>>,
    /// The inbound authentication checks (`smtpd_authentication_checks`; set by the
    /// daemon's main with the resolver, never in stand-alone mode).
    pub auth: Option<std::sync::Arc<crate::auth::Auth>>,
}

fn secs(cfg: &Config, name: &str, dflt: u64) -> Duration {
    Duration::from_secs(cfg.get_time(name).unwrap_or(dflt))
}

impl Settings {
    /// Reads the settings (values that do not parse fall back to Postfix's defaults).
    pub fn from_config(cfg: &Config) -> Settings {
        let int = |n: &str, d: i64| cfg.get_int(n).unwrap_or(d).max(0);
        Settings {
            myhostname: cfg.get("myhostname"),
            banner: cfg.get("smtpd_banner"),
            message_size_limit: int("message_size_limit", 10_240_000) as u64,
            recipient_limit: int("smtpd_recipient_limit", 1000) as usize,
            timeout: secs(cfg, "smtpd_timeout", 300),
            soft_error_limit: int("smtpd_soft_error_limit", 10) as u32,
            hard_error_limit: int("smtpd_hard_error_limit", 20) as u32,
            error_sleep: secs(cfg, "smtpd_error_sleep_time", 1),
            junk_command_limit: int("smtpd_junk_command_limit", 100) as u32,
            line_length_limit: int("line_length_limit", 2048).max(512) as usize,
            queue_minfree: int("queue_minfree", 0) as u64,
            queue_directory: cfg.get("queue_directory").into(),
            disable_vrfy: cfg.get_bool("disable_vrfy_command").unwrap_or(false),
            helo_required: cfg.get_bool("smtpd_helo_required").unwrap_or(false),
            smtputf8: cfg.get_bool("smtputf8_enable").unwrap_or(true),
            strict_rfc821: cfg.get_bool("strict_rfc821_envelopes").unwrap_or(false),
            forbid_bare_newline: cfg.get("smtpd_forbid_bare_newline"),
            delay_reject: cfg.get_bool("smtpd_delay_reject").unwrap_or(true),
            ipc_timeout: secs(cfg, "ipc_timeout", 3600),
            discard_ehlo: cfg
                .get_list("smtpd_discard_ehlo_keywords")
                .iter()
                .map(|k| k.to_ascii_lowercase())
                .collect(),
            postdrop_config: None,
            per_record_deadline: cfg.get_bool("smtpd_per_request_deadline").unwrap_or(false),
            tls: crate::tls::TlsPolicy::from_config(cfg).unwrap_or_else(|e| postern_log::fatal(e)),
            tls_server: None,
            sasl: None,
            notify: crate::notify::NotifySettings::from_config(cfg),
            forbidden_commands: forbidden_commands(cfg),
            proxy: crate::txn::proxy::ProxySettings::from_config(cfg)
                .unwrap_or_else(|e| postern_log::fatal(e)),
            // Fail closed: a milter list that does not parse stops smtpd.
            milters: crate::session::milter::MilterConfig::from_config(cfg)
                .unwrap_or_else(|e| postern_log::fatal(e)),
            auth: None,
        }
    }
}

/// `smtpd_forbidden_commands` as a match list (words compared case-insensitively, tables
/// looked up with the verb). A list that cannot be opened is fatal (fail closed).
fn forbidden_commands(cfg: &Config) -> std::sync::Arc<postern_table::DomainList> {
    let value = cfg.get("smtpd_forbidden_commands");
    match postern_table::DomainList::new(&value, false, &postern_table::OpenOptions::default()) {
        Ok(l) => std::sync::Arc::new(l),
        Err(e) => postern_log::fatal(format!("smtpd_forbidden_commands: {e}")),
    }
}
