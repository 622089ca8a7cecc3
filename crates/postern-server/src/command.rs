//! The command edge shared by the user commands (sendmail, postdrop, postqueue, postsuper,
//! postcat, postmap/postalias): sysexits(3) statuses, the [`Fatal`] error a command's
//! functions return, and how `main` reports it (`PROG: fatal: MESSAGE` on stderr, the same
//! text in the mail log, the status as exit code), as Postfix's `msg_fatal_status`.
//!
//! # Security
//!
//! Messages may quote user input (addresses, file names, arguments): [`Fatal::report`]
//! passes them through `postern_log::plain` so that control characters cannot forge
//! terminal output or log lines.
//!
//! # Configuration
//!
//! None; whether to log is the caller's choice (a command logs once its logging is set up).

use std::fmt;
use std::process::ExitCode;

/// sysexits(3) status codes (and the plain failure status 1).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Plain failure (Postfix's postcat and postmap exit 1).
    pub const FAIL: u8 = 1;
    /// Command-line usage error.
    pub const USAGE: u8 = 64;
    /// Data format error.
    pub const DATAERR: u8 = 65;
    /// Addressee unknown.
    pub const NOUSER: u8 = 67;
    /// Service unavailable.
    pub const UNAVAILABLE: u8 = 69;
    /// Internal software error.
    pub const SOFTWARE: u8 = 70;
    /// System error (cannot fork/exec).
    pub const OSERR: u8 = 71;
    /// Input/output error.
    pub const IOERR: u8 = 74;
    /// Temporary failure; the user is invited to retry.
    pub const TEMPFAIL: u8 = 75;
    /// Permission denied.
    pub const NOPERM: u8 = 77;
    /// Configuration error.
    pub const CONFIG: u8 = 78;
}

/// A fatal error: a one-line message (without program name or `fatal:` prefix) and the
/// exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    /// Exit status ([`exit`]).
    pub code: u8,
    /// The message.
    pub msg: String,
}

/// A fatal error with its exit status.
pub fn fatal(code: u8, msg: impl Into<String>) -> Fatal {
    Fatal {
        code,
        msg: msg.into(),
    }
}

impl Fatal {
    /// A fatal error with its exit status.
    pub fn new(code: u8, msg: impl Into<String>) -> Fatal {
        fatal(code, msg)
    }

    /// Prints `prog: fatal: msg` on stderr, logs `fatal: msg` when `log`, and gives the
    /// status.
    pub fn report(&self, prog: &str, log: bool) -> ExitCode {
        let msg = postern_log::plain(&self.msg);
        eprintln!("{prog}: fatal: {msg}");
        if log {
            // XXX(postern-log has no fatal-with-status): logged at info level so that the
            // line is written once, with Postfix's "fatal: " text.
            postern_log::info(format_args!("fatal: {msg}"));
        }
        ExitCode::from(self.code)
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_keeps_code_and_message() {
        let f = fatal(exit::USAGE, "usage: x");
        assert_eq!(f, Fatal::new(64, "usage: x".to_string()));
        assert_eq!(f.to_string(), "usage: x");
        assert_eq!(f.report("x", false), ExitCode::from(64));
    }

    #[test]
    fn sysexits_values() {
        let all = [
            exit::OK,
            exit::FAIL,
            exit::USAGE,
            exit::DATAERR,
            exit::NOUSER,
            exit::UNAVAILABLE,
            exit::SOFTWARE,
            exit::OSERR,
            exit::IOERR,
            exit::TEMPFAIL,
            exit::NOPERM,
            exit::CONFIG,
        ];
        assert_eq!(all, [0, 1, 64, 65, 67, 69, 70, 71, 74, 75, 77, 78]);
    }
}
