//! postern-sys — the one crate allowed `unsafe` (layer 1).
//!
//! Everything that touches process identity, inherited descriptors, locks and
//! durability lives here, wrapped once and checked once (as Postfix's `set_ugid`,
//! `safe_open` and `sane_*` wrappers do):
//!
//! * [`privs`]: user lookup, privilege drop (setgid → setgroups → setuid, each
//!   checked and verified), temporary effective-id switches for delivery.
//! * [`fd`]: listeners inherited from master at fixed descriptor numbers, and
//!   spawning children with descriptors placed at those numbers.
//! * [`flow`]: the flow-control pipe (`in_flow_delay`).
//! * [`net`]: listening sockets with master's backlog, interface addresses.
//! * [`durable`]: fsync of files and directories.
//! * [`lock`]: fcntl and flock locks for mailboxes and pid files.
//! * [`safeopen`]: descriptor-relative walks (`openat` with `O_NOFOLLOW`) for
//!   mailbox paths that other users may be able to change.
//! * [`apparmor`]: the exec transition that puts each daemon master starts
//!   into its own AppArmor profile.
//! * `lmdb` (feature `lmdb`): the memory-mapping open of LMDB tables.
//!
//! # Security
//! Every `unsafe` block carries a `// SAFETY:` comment. Every system call's result
//! is checked and reported with the operation, the object and errno.

pub mod apparmor;
pub mod durable;
pub mod fd;
pub mod flow;
#[cfg(feature = "lmdb")]
pub mod lmdb;
pub mod lock;
pub mod net;
pub mod privs;
pub mod safeopen;
pub mod signals;

use thiserror::Error;

/// A failed system call: the operation, its object and the OS error.
#[derive(Debug, Error)]
#[error("{op}({what}): {source}")]
pub struct SysError {
    /// The operation (`setuid`, `fsync`, `open`…).
    pub op: &'static str,
    /// What it was applied to (a path, a uid…).
    pub what: String,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

impl SysError {
    /// Builds an error from an operation, an object and an io::Error.
    pub fn new(op: &'static str, what: impl Into<String>, source: std::io::Error) -> Self {
        SysError {
            op,
            what: what.into(),
            source,
        }
    }

    fn errno(op: &'static str, what: impl Into<String>, e: nix::errno::Errno) -> Self {
        SysError::new(op, what, std::io::Error::from(e))
    }

    /// The raw OS error number, when there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, SysError>;
