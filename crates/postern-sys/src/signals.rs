//! Signal flags for the blocking daemon skeletons.
//!
//! A daemon that must finish its current request before exiting (on master's
//! SIGHUP at reload) installs a handler that only sets an atomic flag; the
//! skeleton checks the flag between requests. Blocking calls return `EINTR`,
//! which the skeletons treat as "look at the flags".

use crate::{Result, SysError};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use std::sync::atomic::{AtomicBool, Ordering};

static HUP: AtomicBool = AtomicBool::new(false);
static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_hup(_: libc::c_int) {
    HUP.store(true, Ordering::SeqCst);
}

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

/// Installs flag-setting handlers for SIGHUP (finish and exit) and, when
/// `graceful_term` is set, for SIGTERM too. Without `SA_RESTART`, so blocking
/// calls return `EINTR`.
pub fn install_exit_flags(graceful_term: bool) -> Result<()> {
    let hup = SigAction::new(
        SigHandler::Handler(on_hup),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { sigaction(Signal::SIGHUP, &hup) }
        .map_err(|e| SysError::errno("sigaction", "SIGHUP", e))?;
    if graceful_term {
        let term = SigAction::new(
            SigHandler::Handler(on_term),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: as above.
        unsafe { sigaction(Signal::SIGTERM, &term) }
            .map_err(|e| SysError::errno("sigaction", "SIGTERM", e))?;
    }
    Ok(())
}

/// Whether SIGHUP arrived.
pub fn hup_received() -> bool {
    HUP.load(Ordering::SeqCst)
}

/// Whether SIGTERM arrived (only with `graceful_term`).
pub fn term_received() -> bool {
    TERM.load(Ordering::SeqCst)
}

/// Unblocks every signal. master blocks the signals it reads through a
/// signalfd, and the mask survives `exec`; each daemon calls this first.
pub fn unblock_all() -> Result<()> {
    SigSet::all()
        .thread_unblock()
        .map_err(|e| SysError::errno("sigprocmask", "SIG_UNBLOCK", e))
}
