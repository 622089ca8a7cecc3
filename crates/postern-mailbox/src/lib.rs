//! postern-mailbox — writing one message into a user's mailbox: Maildir or mbox.
//!
//! Shared by the delivery agents that store mail (`local`, `virtual`):
//! * [`maildir`]: one file per message, made visible atomically (tmp → new).
//! * [`mbox`]: append to a locked UNIX mailbox file, truncating on failure.
//! * [`safedir`]: reaching a mailbox one directory at a time, never through
//!   a symbolic link or a directory owned by another user.
//! * [`DeliveryError`]: a failure with its RFC 3463 status, and the one place
//!   where system errors become DSN codes.
//!
//! # Security
//! Callers run these functions with the mailbox owner's identity (or check
//! ownership through [`mbox::open_locked`]'s `owner`). Every directory below
//! a trusted starting point and every file is opened relative to its
//! parent's descriptor, never through a symbolic link, and must belong to
//! the recipient (or root); a violation defers with a warning. See each
//! module.
//!
//! # Configuration
//! [`LockOptions`] carries `mailbox_delivery_lock`, `stale_lock_time`,
//! `deliver_lock_attempts`, `deliver_lock_delay` and the size limit
//! (`mailbox_size_limit` for local, `virtual_mailbox_limit` for virtual).
pub mod maildir;
pub mod mbox;
pub mod safedir;

/// Why one delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{dsn} {text}")]
pub struct DeliveryError {
    /// True for a bounce (5.x.x), false for a deferral (4.x.x).
    pub permanent: bool,
    /// RFC 3463 enhanced status code.
    pub dsn: String,
    /// Human-readable reason.
    pub text: String,
}

impl DeliveryError {
    /// A temporary failure.
    pub fn temp(dsn: &str, text: impl Into<String>) -> Self {
        DeliveryError {
            permanent: false,
            dsn: dsn.into(),
            text: text.into(),
        }
    }

    /// A permanent failure.
    pub fn perm(dsn: &str, text: impl Into<String>) -> Self {
        DeliveryError {
            permanent: true,
            dsn: dsn.into(),
            text: text.into(),
        }
    }

    /// Maps a system error to a DSN: `context` says what failed
    /// (`cannot update mailbox /var/mail/u`).
    pub fn from_io(context: &str, e: &std::io::Error) -> Self {
        let text = format!("{context}: {}", os_text(e));
        match e.raw_os_error() {
            Some(libc::EDQUOT) => Self::temp("4.2.2", text),
            Some(libc::ENOSPC) => Self::temp("4.3.0", text),
            Some(libc::EFBIG) => Self::perm("5.2.2", text),
            _ => Self::temp("4.2.0", text),
        }
    }

    /// Maps a failed system call reported by postern-sys.
    pub fn from_sys(context: &str, e: &postern_sys::SysError) -> Self {
        let mapped = Self::from_io(context, &e.source);
        DeliveryError {
            text: format!("{context}: {}: {}", e.op, os_text(&e.source)),
            ..mapped
        }
    }
}

/// The error text without std's ` (os error N)` suffix, as strerror gives it.
fn os_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Runs `f` with effective uid `uid` and `gid` as the only group, as
/// Postfix's `set_eugid` does (a no-op in a non-root process), and restores
/// root's ids afterwards; failing to restore them is fatal.
pub fn as_owner<T>(
    (uid, gid): (u32, u32),
    f: impl FnOnce() -> Result<T, DeliveryError>,
) -> Result<T, DeliveryError> {
    let guard = postern_sys::privs::EffectiveIds::switch_ids(uid, gid).map_err(|e| {
        DeliveryError::from_sys(&format!("cannot switch to uid {uid} gid {gid}"), &e)
    })?;
    let r = f();
    if let Err(e) = guard.finish() {
        // Going on with a user's identity would be a privilege bug.
        postern_log::fatal!("cannot restore privileges: {e}");
    }
    r
}

/// How mbox files are locked and bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    /// `$stale_lock_time` in seconds.
    pub stale_lock_time: u64,
    /// `$deliver_lock_attempts`.
    pub deliver_lock_attempts: u32,
    /// `$deliver_lock_delay` in seconds.
    pub deliver_lock_delay: u64,
    /// `$mailbox_delivery_lock` (or `$virtual_mailbox_lock`): `fcntl`, `flock`, `dotlock`.
    pub mailbox_delivery_lock: Vec<String>,
    /// Largest mbox file in bytes, 0 = unlimited.
    pub mailbox_size_limit: u64,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            stale_lock_time: 500,
            deliver_lock_attempts: 20,
            deliver_lock_delay: 1,
            mailbox_delivery_lock: vec!["fcntl".into(), "dotlock".into()],
            mailbox_size_limit: 51_200_000,
        }
    }
}

impl LockOptions {
    /// Whether the lock list names this method.
    pub fn lock_method(&self, name: &str) -> bool {
        self.mailbox_delivery_lock
            .iter()
            .any(|m| m.eq_ignore_ascii_case(name))
    }
}
