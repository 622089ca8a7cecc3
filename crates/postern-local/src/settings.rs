//! The main.cf parameters of local delivery, read once into a plain struct.
//!
//! # Configuration
//! | parameter | use |
//! |---|---|
//! | `myhostname` | Maildir file names |
//! | `mail_spool_directory` | `<dir>/<user>` mbox, or `<dir>/<user>/` Maildir when it ends in `/` |
//! | `home_mailbox` | when set (root only): path under the home directory; trailing `/` = Maildir |
//! | `recipient_delimiter` | characters that start an address extension |
//! | `mailbox_size_limit` | largest mbox file in bytes (0 = no limit) |
//! | `prepend_delivered_header` | kept for `.forward`/file/command deliveries (later); mailbox deliveries always get `Delivered-To:` |
//! | `stale_lock_time` | age after which a `.lock` file is removed |
//! | `deliver_lock_attempts`, `deliver_lock_delay` | lock retries before deferring |
//! | `mailbox_delivery_lock` | `fcntl`, `flock` (treated as fcntl), `dotlock` |
//!
//! A value that does not parse is reported with a warning and the default is
//! used, so one typo in main.cf does not stop local delivery.

use postern_config::Config;

/// Settings of the local delivery agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSettings {
    /// `$myhostname`.
    pub myhostname: String,
    /// `$mail_spool_directory`.
    pub mail_spool_directory: String,
    /// `$home_mailbox` ("" = use the spool).
    pub home_mailbox: String,
    /// `$recipient_delimiter`.
    pub recipient_delimiter: String,
    /// `$mailbox_size_limit` in bytes, 0 = unlimited.
    pub mailbox_size_limit: u64,
    /// `$prepend_delivered_header`.
    pub prepend_delivered_header: Vec<String>,
    /// `$stale_lock_time` in seconds.
    pub stale_lock_time: u64,
    /// `$deliver_lock_attempts`.
    pub deliver_lock_attempts: u32,
    /// `$deliver_lock_delay` in seconds.
    pub deliver_lock_delay: u64,
    /// `$mailbox_delivery_lock`.
    pub mailbox_delivery_lock: Vec<String>,
    /// Whether we run as root (look up users and take on their identity).
    pub as_root: bool,
}

impl Default for LocalSettings {
    fn default() -> Self {
        LocalSettings {
            myhostname: "localhost".into(),
            mail_spool_directory: "/var/mail".into(),
            home_mailbox: String::new(),
            recipient_delimiter: String::new(),
            mailbox_size_limit: 51_200_000,
            prepend_delivered_header: vec!["command".into(), "file".into(), "forward".into()],
            stale_lock_time: 500,
            deliver_lock_attempts: 20,
            deliver_lock_delay: 1,
            mailbox_delivery_lock: vec!["fcntl".into(), "dotlock".into()],
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
}

fn warn_default<T: std::fmt::Display, E: std::fmt::Display>(
    name: &str,
    r: Result<T, E>,
    def: T,
) -> T {
    r.unwrap_or_else(|e| {
        postern_log::warning!("{name}: {e}; using {def}");
        def
    })
}

fn int_param<T: TryFrom<i64> + std::fmt::Display + Copy>(cfg: &Config, name: &str, def: T) -> T {
    let parsed = cfg.get_int(name).map_err(|e| e.to_string()).and_then(|v| {
        if v < 0 {
            return Err(format!("negative value {v}"));
        }
        T::try_from(v).map_err(|_| format!("value {v} out of range"))
    });
    warn_default(name, parsed, def)
}

/// Reads the settings from the configuration.
pub fn from_config(cfg: &Config) -> LocalSettings {
    let d = LocalSettings::default();
    let list_or = |name: &str, def: Vec<String>| {
        let l = cfg.get_list(name);
        if l.is_empty() && !cfg.is_set(name) {
            def
        } else {
            l
        }
    };
    LocalSettings {
        myhostname: cfg.get("myhostname"),
        mail_spool_directory: cfg.get("mail_spool_directory"),
        home_mailbox: cfg.get("home_mailbox"),
        recipient_delimiter: cfg.get("recipient_delimiter"),
        mailbox_size_limit: int_param(cfg, "mailbox_size_limit", d.mailbox_size_limit),
        prepend_delivered_header: list_or("prepend_delivered_header", d.prepend_delivered_header),
        stale_lock_time: warn_default(
            "stale_lock_time",
            cfg.get_time("stale_lock_time"),
            d.stale_lock_time,
        ),
        deliver_lock_attempts: int_param(cfg, "deliver_lock_attempts", d.deliver_lock_attempts),
        deliver_lock_delay: warn_default(
            "deliver_lock_delay",
            cfg.get_time("deliver_lock_delay"),
            d.deliver_lock_delay,
        ),
        mailbox_delivery_lock: list_or("mailbox_delivery_lock", d.mailbox_delivery_lock),
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
    }

    #[test]
    fn from_main_cf() {
        let text = "myhostname = mx.example.test\nmail_spool_directory = /tmp/spool/\n\
                    recipient_delimiter = +-\nmailbox_size_limit = 0\nstale_lock_time = 2m\n\
                    mailbox_delivery_lock = dotlock\ndeliver_lock_attempts = bogus\n";
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
    }
}
