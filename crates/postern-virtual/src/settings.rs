//! The main.cf parameters of the virtual delivery agent, read once at start.
//!
//! # Configuration
//! | parameter | use |
//! |---|---|
//! | `virtual_mailbox_base` | prefix of every mailbox path (must be absolute) |
//! | `virtual_mailbox_maps` | recipient → mailbox path under the base; trailing `/` = Maildir |
//! | `virtual_uid_maps`, `virtual_gid_maps` | recipient → numeric uid / gid (often `static:5000`) |
//! | `virtual_minimum_uid` | smallest uid accepted from `virtual_uid_maps` (default 100) |
//! | `virtual_mailbox_limit` | largest mbox file or Maildir message in bytes (0 = none) |
//! | `virtual_mailbox_lock` | mbox locking: `fcntl`, `flock`, `dotlock` |
//! | `stale_lock_time`, `deliver_lock_attempts`, `deliver_lock_delay` | dot-lock handling |
//! | `recipient_delimiter` | extension split for the `user@domain` lookup |
//! | `strict_mailbox_ownership` | an mbox must belong to the recipient's uid |
//! | `enable_original_recipient` | adds `X-Original-To:` |
//! | `myhostname` | Maildir file names |
//!
//! A numeric value that does not parse is reported and its default used.

use crate::maps::Maps;
use postern_config::{Config, Int, Str, p};
use postern_mailbox::LockOptions;

/// Settings of the virtual delivery agent.
#[derive(Debug)]
pub struct VirtualSettings {
    /// `$virtual_mailbox_base`.
    pub base: String,
    /// `$virtual_mailbox_maps`.
    pub mailbox_maps: Maps,
    /// `$virtual_uid_maps`.
    pub uid_maps: Maps,
    /// `$virtual_gid_maps`.
    pub gid_maps: Maps,
    /// `$virtual_minimum_uid`.
    pub minimum_uid: u32,
    /// mbox locking and `$virtual_mailbox_limit`.
    pub lock: LockOptions,
    /// `$recipient_delimiter`.
    pub delimiter: String,
    /// `$strict_mailbox_ownership`.
    pub strict_owner: bool,
    /// `$enable_original_recipient`.
    pub enable_original: bool,
    /// `$myhostname`.
    pub myhostname: String,
    /// Running as root: deliveries take on the mapped uid/gid. Otherwise the
    /// (uid, gid) of this process, the only ones it can deliver as.
    pub own_ids: Option<(u32, u32)>,
}

/// A non-negative integer parameter.
fn number(cfg: &Config, param: Int) -> u64 {
    u64::try_from(cfg.int(param)).unwrap_or(0)
}

/// Reads the settings and opens the tables.
pub fn from_config(cfg: &Config) -> VirtualSettings {
    let d = LockOptions::default();
    let mut locks = cfg.list(p::VIRTUAL_MAILBOX_LOCK);
    if locks.is_empty() {
        locks = d.mailbox_delivery_lock.clone();
    }
    let maps = |param: Str| Maps::open(param.name(), &cfg.list(param));
    let own_ids = (!postern_sys::privs::is_root()).then(|| {
        (
            postern_sys::privs::effective_uid(),
            postern_sys::privs::real_gid(),
        )
    });
    VirtualSettings {
        base: cfg.str(p::VIRTUAL_MAILBOX_BASE),
        mailbox_maps: maps(p::VIRTUAL_MAILBOX_MAPS),
        uid_maps: maps(p::VIRTUAL_UID_MAPS),
        gid_maps: maps(p::VIRTUAL_GID_MAPS),
        minimum_uid: number(cfg, p::VIRTUAL_MINIMUM_UID).min(u64::from(u32::MAX)) as u32,
        lock: LockOptions {
            stale_lock_time: cfg.time(p::STALE_LOCK_TIME).as_secs(),
            deliver_lock_attempts: number(cfg, p::DELIVER_LOCK_ATTEMPTS).min(1000) as u32,
            deliver_lock_delay: cfg.time(p::DELIVER_LOCK_DELAY).as_secs(),
            mailbox_delivery_lock: locks,
            mailbox_size_limit: number(cfg, p::VIRTUAL_MAILBOX_LIMIT),
        },
        delimiter: cfg.str(p::RECIPIENT_DELIMITER),
        strict_owner: cfg.bool(p::STRICT_MAILBOX_OWNERSHIP),
        enable_original: cfg.bool(p::ENABLE_ORIGINAL_RECIPIENT),
        myhostname: cfg.str(p::MYHOSTNAME),
        own_ids,
    }
}

/// Postfix refuses to start when the mailbox limit is below the message
/// size limit (a message could then never be delivered): the same check.
pub fn check_limits(cfg: &Config, s: &VirtualSettings) -> Result<(), String> {
    let limit = s.lock.mailbox_size_limit;
    if limit == 0 {
        return Ok(());
    }
    let message = cfg.size(p::MESSAGE_SIZE_LIMIT);
    if message == 0 {
        return Err(
            "configuration error: virtual_mailbox_limit is limited but message_size_limit is unlimited"
                .into(),
        );
    }
    if limit < message {
        return Err(
            "configuration error: virtual_mailbox_limit is smaller than message_size_limit".into(),
        );
    }
    Ok(())
}
