//! The main.cf parameters of local delivery, read once into a plain struct.
//!
//! # Configuration
//! | parameter | use |
//! |---|---|
//! | `myhostname`, `myorigin`, `mydestination` | Maildir names; qualifying and classifying expanded addresses |
//! | `mail_spool_directory` | `<dir>/<user>` mbox, or `<dir>/<user>/` Maildir when it ends in `/` |
//! | `home_mailbox` | when set (root only): path under the home directory; trailing `/` = Maildir |
//! | `recipient_delimiter` | characters that start an address extension |
//! | `mailbox_size_limit` | largest mbox file (and file delivery) in bytes (0 = no limit) |
//! | `prepend_delivered_header` | `command`, `file`, `forward`: where `Delivered-To:` is added (mailboxes always) |
//! | `stale_lock_time`, `deliver_lock_attempts`, `deliver_lock_delay`, `mailbox_delivery_lock` | mbox locking |
//! | `alias_maps` | alias tables (aliases(5) semantics) |
//! | `forward_path` | `.forward` search list (raw: `$home`, `$user`, `$extension`… expanded per recipient) |
//! | `allow_mail_to_commands`, `allow_mail_to_files` | `alias`, `forward`, `include` |
//! | `mailbox_command`, `mailbox_command_maps` | deliver mailboxes through a command (raw, expanded per recipient) |
//! | `mailbox_transport`, `mailbox_transport_maps` | hand mailbox delivery to another transport |
//! | `fallback_transport`, `fallback_transport_maps` | where unknown users go |
//! | `luser_relay` | address for unknown users (raw, expanded per recipient) |
//! | `owner_request_special`, `expand_owner_alias`, `reset_owner_alias` | `owner-NAME` handling |
//! | `frozen_delivered_to` | keep the first `Delivered-To` address through forwarding |
//! | `duplicate_filter_limit` | size of the per-recipient duplicate filter |
//! | `command_time_limit`, `local_command_shell`, `export_environment`, `command_expansion_filter`, `command_execution_directory`, `execution_directory_expansion_filter` | command deliveries |
//! | `forward_expansion_filter` | characters allowed in values substituted into `forward_path` |
//! | `default_privs` | account for commands and files of root-owned aliases |
//! | `propagate_unmatched_extensions` | `alias`, `forward`, `include` bits |
//! | `strict_mailbox_ownership` | an mbox owned by someone else defers |
//! | `enable_original_recipient` | `X-Original-To:` |
//!
//! A value that does not parse is reported with a warning and the default is
//! used, so one typo in main.cf does not stop local delivery.

use postern_config::{Config, p};

/// Expansion-type bits (where an address came from), for the `allow_mail_to_*` masks.
pub mod exp {
    /// From an alias table.
    pub const ALIAS: u8 = 1;
    /// From a `.forward` file.
    pub const FORWARD: u8 = 2;
    /// From an `:include:` file.
    pub const INCLUDE: u8 = 4;
}

/// Settings of the local delivery agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSettings {
    /// `$myhostname`.
    pub myhostname: String,
    /// `$myorigin` (appended to expanded addresses without a domain).
    pub myorigin: String,
    /// `$mydestination`, lower case: addresses here are delivered in this process.
    pub mydestination: Vec<String>,
    /// `$mail_name`.
    pub mail_name: String,
    /// `$mail_spool_directory`.
    pub mail_spool_directory: String,
    /// `$home_mailbox` ("" = use the spool).
    pub home_mailbox: String,
    /// `$recipient_delimiter`.
    pub recipient_delimiter: String,
    /// `$mailbox_size_limit` in bytes, 0 = unlimited.
    pub mailbox_size_limit: u64,
    /// `$prepend_delivered_header`, lower case.
    pub prepend_delivered_header: Vec<String>,
    /// `$stale_lock_time` in seconds.
    pub stale_lock_time: u64,
    /// `$deliver_lock_attempts`.
    pub deliver_lock_attempts: u32,
    /// `$deliver_lock_delay` in seconds.
    pub deliver_lock_delay: u64,
    /// `$mailbox_delivery_lock`.
    pub mailbox_delivery_lock: Vec<String>,
    /// `$alias_maps` (table specs).
    pub alias_maps: Vec<String>,
    /// `$forward_path`, unexpanded.
    pub forward_path: String,
    /// `$allow_mail_to_commands` as [`exp`] bits.
    pub allow_commands: u8,
    /// `$allow_mail_to_files` as [`exp`] bits.
    pub allow_files: u8,
    /// `$mailbox_command`, unexpanded.
    pub mailbox_command: String,
    /// `$mailbox_command_maps`.
    pub mailbox_command_maps: Vec<String>,
    /// `$mailbox_transport`.
    pub mailbox_transport: String,
    /// `$mailbox_transport_maps`.
    pub mailbox_transport_maps: Vec<String>,
    /// `$fallback_transport`.
    pub fallback_transport: String,
    /// `$fallback_transport_maps`.
    pub fallback_transport_maps: Vec<String>,
    /// `$luser_relay`, unexpanded.
    pub luser_relay: String,
    /// `$owner_request_special`.
    pub owner_request_special: bool,
    /// `$expand_owner_alias`.
    pub expand_owner_alias: bool,
    /// `$reset_owner_alias`.
    pub reset_owner_alias: bool,
    /// `$frozen_delivered_to`.
    pub frozen_delivered_to: bool,
    /// `$duplicate_filter_limit` (0 = unlimited).
    pub duplicate_filter_limit: usize,
    /// `$command_time_limit` in seconds.
    pub command_time_limit: u64,
    /// `$local_command_shell` ("" = run simple commands directly, others with /bin/sh -c).
    pub local_command_shell: String,
    /// `$export_environment`: names (or `name=value`) passed to commands.
    pub export_environment: Vec<String>,
    /// `$command_expansion_filter`.
    pub command_expansion_filter: String,
    /// `$forward_expansion_filter`.
    pub forward_expansion_filter: String,
    /// `$command_execution_directory`, unexpanded.
    pub command_execution_directory: String,
    /// `$execution_directory_expansion_filter`.
    pub execution_directory_expansion_filter: String,
    /// `$default_privs`.
    pub default_privs: String,
    /// `$propagate_unmatched_extensions` as [`exp`] bits (local's share of it).
    pub propagate_extensions: u8,
    /// `$strict_mailbox_ownership`.
    pub strict_mailbox_ownership: bool,
    /// `$enable_original_recipient`.
    pub enable_original_recipient: bool,
    /// Whether we run as root (look up users and take on their identity).
    pub as_root: bool,
}

const FILTER: &str = "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

impl Default for LocalSettings {
    fn default() -> Self {
        LocalSettings {
            myhostname: "localhost".into(),
            myorigin: "localhost".into(),
            mydestination: vec!["localhost".into()],
            mail_name: "Postfix".into(),
            mail_spool_directory: "/var/mail".into(),
            home_mailbox: String::new(),
            recipient_delimiter: String::new(),
            mailbox_size_limit: 51_200_000,
            prepend_delivered_header: vec!["command".into(), "file".into(), "forward".into()],
            stale_lock_time: 500,
            deliver_lock_attempts: 20,
            deliver_lock_delay: 1,
            mailbox_delivery_lock: vec!["fcntl".into(), "dotlock".into()],
            alias_maps: Vec::new(),
            forward_path: "$home/.forward${recipient_delimiter}${extension}, $home/.forward".into(),
            allow_commands: exp::ALIAS | exp::FORWARD,
            allow_files: exp::ALIAS | exp::FORWARD,
            mailbox_command: String::new(),
            mailbox_command_maps: Vec::new(),
            mailbox_transport: String::new(),
            mailbox_transport_maps: Vec::new(),
            fallback_transport: String::new(),
            fallback_transport_maps: Vec::new(),
            luser_relay: String::new(),
            owner_request_special: true,
            expand_owner_alias: false,
            reset_owner_alias: false,
            frozen_delivered_to: true,
            duplicate_filter_limit: 1000,
            command_time_limit: 1000,
            local_command_shell: String::new(),
            export_environment: vec!["TZ".into(), "MAIL_CONFIG".into(), "LANG".into()],
            command_expansion_filter: FILTER.into(),
            forward_expansion_filter: FILTER.into(),
            command_execution_directory: String::new(),
            execution_directory_expansion_filter: FILTER.into(),
            default_privs: "nobody".into(),
            propagate_extensions: 0,
            strict_mailbox_ownership: true,
            enable_original_recipient: true,
            as_root: false,
        }
    }
}

impl LocalSettings {
    /// The mbox locking and size settings, for `postern-mailbox`.
    pub fn lock_options(&self) -> postern_mailbox::LockOptions {
        postern_mailbox::LockOptions {
            stale_lock_time: self.stale_lock_time,
            deliver_lock_attempts: self.deliver_lock_attempts,
            deliver_lock_delay: self.deliver_lock_delay,
            mailbox_delivery_lock: self.mailbox_delivery_lock.clone(),
            mailbox_size_limit: self.mailbox_size_limit,
        }
    }

    /// Whether `mailbox_delivery_lock` names this method.
    pub fn lock_method(&self, name: &str) -> bool {
        self.mailbox_delivery_lock
            .iter()
            .any(|m| m.eq_ignore_ascii_case(name))
    }

    /// Whether `prepend_delivered_header` names this kind of delivery.
    pub fn delivered_header(&self, kind: &str) -> bool {
        self.prepend_delivered_header.iter().any(|k| k == kind)
    }

    /// Whether a domain is one of `mydestination` (or empty).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        d.is_empty() || self.mydestination.contains(&d)
    }
}

/// Parses a list of `alias`, `forward`, `include` into [`exp`] bits.
pub fn exp_mask(name: &str, words: &[String]) -> u8 {
    let mut m = 0;
    for w in words {
        match w.to_ascii_lowercase().as_str() {
            "alias" => m |= exp::ALIAS,
            "forward" => m |= exp::FORWARD,
            "include" => m |= exp::INCLUDE,
            // Other daemons' bits of propagate_unmatched_extensions.
            "canonical" | "virtual" if name == "propagate_unmatched_extensions" => {}
            other => postern_log::warning!("{name}: unknown expansion type \"{other}\""),
        }
    }
    m
}

/// A count: negative is 0, too large is the type's maximum.
fn count<T: TryFrom<i64> + Bounded>(v: i64) -> T {
    T::try_from(v.max(0)).unwrap_or(T::MAX)
}

/// The largest value of a count type.
trait Bounded {
    const MAX: Self;
}
impl Bounded for u32 {
    const MAX: Self = u32::MAX;
}
impl Bounded for usize {
    const MAX: Self = usize::MAX;
}

/// Reads the settings from the configuration.
pub fn from_config(cfg: &Config) -> LocalSettings {
    // Parameters expanded per recipient are read unexpanded, as Postfix does.
    let raw = |name: postern_config::Str| cfg.raw(name).unwrap_or_default().trim().to_string();
    LocalSettings {
        myhostname: cfg.str(p::MYHOSTNAME),
        myorigin: cfg.str(p::MYORIGIN),
        mydestination: cfg
            .list(p::MYDESTINATION)
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        mail_name: cfg.str(p::MAIL_NAME),
        mail_spool_directory: cfg.str(p::MAIL_SPOOL_DIRECTORY),
        home_mailbox: cfg.str(p::HOME_MAILBOX),
        recipient_delimiter: cfg.str(p::RECIPIENT_DELIMITER),
        mailbox_size_limit: cfg.size(p::MAILBOX_SIZE_LIMIT),
        prepend_delivered_header: cfg
            .list(p::PREPEND_DELIVERED_HEADER)
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
        stale_lock_time: cfg.time(p::STALE_LOCK_TIME).as_secs(),
        deliver_lock_attempts: count(cfg.int(p::DELIVER_LOCK_ATTEMPTS)),
        deliver_lock_delay: cfg.time(p::DELIVER_LOCK_DELAY).as_secs(),
        mailbox_delivery_lock: cfg.list(p::MAILBOX_DELIVERY_LOCK),
        alias_maps: cfg.list(p::ALIAS_MAPS),
        forward_path: raw(p::FORWARD_PATH),
        allow_commands: exp_mask(
            "allow_mail_to_commands",
            &cfg.list(p::ALLOW_MAIL_TO_COMMANDS),
        ),
        allow_files: exp_mask("allow_mail_to_files", &cfg.list(p::ALLOW_MAIL_TO_FILES)),
        mailbox_command: raw(p::MAILBOX_COMMAND),
        mailbox_command_maps: cfg.list(p::MAILBOX_COMMAND_MAPS),
        mailbox_transport: cfg.str(p::MAILBOX_TRANSPORT).trim().to_string(),
        mailbox_transport_maps: cfg.list(p::MAILBOX_TRANSPORT_MAPS),
        fallback_transport: cfg.str(p::FALLBACK_TRANSPORT).trim().to_string(),
        fallback_transport_maps: cfg.list(p::FALLBACK_TRANSPORT_MAPS),
        luser_relay: raw(p::LUSER_RELAY),
        owner_request_special: cfg.bool(p::OWNER_REQUEST_SPECIAL),
        expand_owner_alias: cfg.bool(p::EXPAND_OWNER_ALIAS),
        reset_owner_alias: cfg.bool(p::RESET_OWNER_ALIAS),
        frozen_delivered_to: cfg.bool(p::FROZEN_DELIVERED_TO),
        duplicate_filter_limit: count(cfg.int(p::DUPLICATE_FILTER_LIMIT)),
        command_time_limit: cfg.time(p::COMMAND_TIME_LIMIT).as_secs(),
        local_command_shell: cfg.str(p::LOCAL_COMMAND_SHELL).trim().to_string(),
        export_environment: cfg.list(p::EXPORT_ENVIRONMENT),
        command_expansion_filter: cfg.str(p::COMMAND_EXPANSION_FILTER),
        forward_expansion_filter: cfg.str(p::FORWARD_EXPANSION_FILTER),
        command_execution_directory: raw(p::COMMAND_EXECUTION_DIRECTORY),
        execution_directory_expansion_filter: cfg.str(p::EXECUTION_DIRECTORY_EXPANSION_FILTER),
        default_privs: cfg.str(p::DEFAULT_PRIVS).trim().to_string(),
        propagate_extensions: exp_mask(
            "propagate_unmatched_extensions",
            &cfg.list(p::PROPAGATE_UNMATCHED_EXTENSIONS),
        ),
        strict_mailbox_ownership: cfg.bool(p::STRICT_MAILBOX_OWNERSHIP),
        enable_original_recipient: cfg.bool(p::ENABLE_ORIGINAL_RECIPIENT),
        as_root: postern_sys::privs::is_root(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_postfix() {
        let d = LocalSettings::default();
        assert_eq!(d.mailbox_size_limit, 51_200_000);
        assert!(d.lock_method("FCNTL") && d.lock_method("dotlock") && !d.lock_method("flock"));
        let cfg = Config::new(postern_config::parse_main_cf("").unwrap());
        let s = from_config(&cfg);
        assert_eq!(s.forward_path, d.forward_path);
        assert_eq!(s.allow_commands, exp::ALIAS | exp::FORWARD);
        assert_eq!(s.allow_files, exp::ALIAS | exp::FORWARD);
        assert_eq!(s.propagate_extensions, 0);
        assert_eq!(s.command_expansion_filter, FILTER);
        assert_eq!(s.export_environment, ["TZ", "MAIL_CONFIG", "LANG"]);
        assert_eq!(s.command_time_limit, 1000);
        assert!(s.owner_request_special && !s.expand_owner_alias && s.frozen_delivered_to);
    }

    #[test]
    fn from_main_cf() {
        let text = "myhostname = mx.example.test\nmail_spool_directory = /tmp/spool/\n\
                    recipient_delimiter = +-\nmailbox_size_limit = 0\nstale_lock_time = 2m\n\
                    mailbox_delivery_lock = dotlock\ndeliver_lock_attempts = bogus\n\
                    luser_relay = $user@other.example\nallow_mail_to_files = include\n\
                    alias_maps = inline:{ a=b, c=d }, texthash:/etc/x\n";
        let cfg = Config::new(postern_config::parse_main_cf(text).unwrap());
        let s = from_config(&cfg);
        assert_eq!(s.myhostname, "mx.example.test");
        assert_eq!(s.mail_spool_directory, "/tmp/spool/");
        assert_eq!(s.recipient_delimiter, "+-");
        assert_eq!(s.mailbox_size_limit, 0);
        assert_eq!(s.stale_lock_time, 120);
        assert_eq!(
            s.deliver_lock_attempts, 20,
            "bad value falls back to the default"
        );
        assert_eq!(s.deliver_lock_delay, 1);
        assert_eq!(s.mailbox_delivery_lock, ["dotlock"]);
        assert_eq!(s.prepend_delivered_header, ["command", "file", "forward"]);
        assert_eq!(s.home_mailbox, "");
        assert_eq!(s.luser_relay, "$user@other.example", "kept unexpanded");
        assert_eq!(s.allow_files, exp::INCLUDE);
        assert_eq!(s.alias_maps, ["inline:{ a=b, c=d }", "texthash:/etc/x"]);
        assert!(s.is_local_domain("MX.example.test.") && !s.is_local_domain("x.test"));
    }
}
