//! File locks: fcntl (POSIX record locks, what mail readers expect on mbox
//! files) and flock (std, used for pid files).

use crate::{Result, SysError};
use nix::fcntl::{FcntlArg, fcntl};
use std::fs::File;

/// Takes or tries an exclusive fcntl lock on the whole file. Returns `Ok(false)`
/// when `wait` is false and another process holds a conflicting lock.
pub fn fcntl_lock_exclusive(f: &File, wait: bool, what: &str) -> Result<bool> {
    let fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    let arg = if wait {
        FcntlArg::F_SETLKW(&fl)
    } else {
        FcntlArg::F_SETLK(&fl)
    };
    match fcntl(f, arg) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EACCES) if !wait => Ok(false),
        Err(e) => Err(SysError::errno("fcntl(F_SETLK)", what, e)),
    }
}

/// Tries an exclusive flock; `Ok(false)` when someone else holds it.
pub fn flock_try_exclusive(f: &File, what: &str) -> Result<bool> {
    match f.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(SysError::new("flock", what, e)),
    }
}
