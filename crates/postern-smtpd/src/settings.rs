//! The main.cf parameters smtpd reads, resolved once per process.

use postern_config::{Config, Int, p};
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

impl Settings {
    /// Reads the settings (values that do not parse fall back to Postfix's defaults).
    pub fn from_config(cfg: &Config) -> Settings {
        let int = |n: Int| cfg.int(n).max(0);
        Settings {
            myhostname: cfg.str(p::MYHOSTNAME),
            banner: cfg.str(p::SMTPD_BANNER),
            message_size_limit: cfg.size(p::MESSAGE_SIZE_LIMIT),
            recipient_limit: int(p::SMTPD_RECIPIENT_LIMIT) as usize,
            timeout: cfg.time(p::SMTPD_TIMEOUT),
            soft_error_limit: int(p::SMTPD_SOFT_ERROR_LIMIT) as u32,
            hard_error_limit: int(p::SMTPD_HARD_ERROR_LIMIT) as u32,
            error_sleep: cfg.time(p::SMTPD_ERROR_SLEEP_TIME),
            junk_command_limit: int(p::SMTPD_JUNK_COMMAND_LIMIT) as u32,
            line_length_limit: int(p::LINE_LENGTH_LIMIT).max(512) as usize,
            queue_minfree: cfg.size(p::QUEUE_MINFREE),
            queue_directory: cfg.str(p::QUEUE_DIRECTORY).into(),
            disable_vrfy: cfg.bool(p::DISABLE_VRFY_COMMAND),
            helo_required: cfg.bool(p::SMTPD_HELO_REQUIRED),
            smtputf8: cfg.bool(p::SMTPUTF8_ENABLE),
            strict_rfc821: cfg.bool(p::STRICT_RFC821_ENVELOPES),
            forbid_bare_newline: cfg.str(p::SMTPD_FORBID_BARE_NEWLINE),
            delay_reject: cfg.bool(p::SMTPD_DELAY_REJECT),
            ipc_timeout: cfg.time(p::IPC_TIMEOUT),
            discard_ehlo: cfg
                .list(p::SMTPD_DISCARD_EHLO_KEYWORDS)
                .iter()
                .map(|k| k.to_ascii_lowercase())
                .collect(),
            postdrop_config: None,
            per_record_deadline: cfg.bool(p::SMTPD_PER_REQUEST_DEADLINE),
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
    let value = cfg.str(p::SMTPD_FORBIDDEN_COMMANDS);
    match postern_table::DomainList::new(&value, false, &postern_table::OpenOptions::default()) {
        Ok(l) => std::sync::Arc::new(l),
        Err(e) => postern_log::fatal(format!("smtpd_forbidden_commands: {e}")),
    }
}
