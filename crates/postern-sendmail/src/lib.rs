//! sendmail — the Sendmail-compatible submission command (also `mailq`,
//! `newaliases`).
//!
//! # Synopsis
//! `sendmail [options] [recipient ...]`, `mailq`, `newaliases`
//!
//! # Description
//! By default (`-bm`) sendmail reads a message on standard input and queues
//! it for delivery: it builds a maildrop file (sender, recipients, DSN
//! options, the content with LF line endings) and hands it to `postdrop`,
//! which stores it durably in `maildrop/` and wakes `pickup`. sendmail exits 0
//! only after postdrop reported the file safely on disk.
//!
//! Modes: `-bm` (default), `-bp` or the name `mailq` (runs `postqueue -p`),
//! `-bi`/`-I` or the name `newaliases` (rebuild `alias_database`), `-q` (runs
//! `postqueue -f`), `-qIid` (`postqueue -i id`). `-bs` runs smtpd stand-alone on stdin/stdout; `-bd`, `-bD`, `-bl`,
//! `-bv`, `-qR` and `-qS` are recognised but not supported by this build
//! (usage error); `-bh`, `-bH` and `-qinterval` are ignored.
//!
//! Message options: `-t` (cleanup extracts recipients from To/Cc/Bcc; they
//! are added to the command-line recipients), `-i`/`-oi` (a line with a
//! single `.` does not end the message), `-f sender`/`-r sender` (`<>` or
//! `""` for the null sender; the default is the login name of the real uid),
//! `-F name` (else `$NAME`), `-N never|success,delay,failure`, `-R full|hdrs`,
//! `-V envid`, `-B 7bit|8bitmime`, `-C main.cf-or-its-directory`,
//! `-oAfile` (alias database for newaliases), `-O smtputf8`. Accepted and
//! ignored like Postfix: `-oX...`, `-Am`, `-Ac`, `-G`, `-U`, `-n`, `-m`, `-x`,
//! `-v`, `-h N`, `-L label`, `-X file`, `-d...`, `-O opt=val`. `--` ends the
//! options; options may follow recipients (glibc `getopt` order).
//!
//! # Exit status (sysexits)
//! 0 queued; 64 usage (bad option, no recipients); 65 data (`-t` without
//! recipient headers); 67 no login name; 71 cannot run postdrop/postqueue;
//! 74 stdin read error; 75 message too big (as Postfix), postdrop failed
//! temporarily, unsupported alias table type; 78 bad configuration;
//! otherwise postdrop's own status is passed through.
//!
//! # Security
//! sendmail runs with the caller's privileges and writes nothing itself; it
//! trusts nothing it cannot check: arguments with control characters are
//! refused, the input is read with a bound of twice `message_size_limit`
//! plus 1 MiB, and postdrop re-validates the whole record stream.
//!
//! # Configuration
//! `message_size_limit` (0 = unlimited), `alias_database`,
//! `default_database_type`, `queue_directory` (via postdrop/postqueue),
//! `syslog_name`, `maillog_file`. The directory is `-C`, else `$MAIL_CONFIG`,
//! else the default.

pub mod hiargs;
pub mod input;
pub mod lowargs;
pub mod submit;

use hiargs::{Fatal, HiArgs};
use lowargs::{LowArgs, Mode};
use std::ffi::OsString;
use std::process::ExitCode;

pub use postern_server::command::exit;

/// Postfix-style error text (see `postern_log::plain`).
pub use postern_log::plain;

/// Entry point; `args[0]` selects `sendmail`, `mailq` or `newaliases` behaviour.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let prog = lowargs::program_name(args.first());
    let low = match LowArgs::parse(&args) {
        Ok(low) => low,
        Err(e) => return hiargs::report(&Fatal::new(exit::USAGE, e.to_string()), &prog),
    };
    match run(low) {
        Ok(code) => ExitCode::from(code),
        Err(f) => hiargs::report(&f, &prog),
    }
}

/// Dispatches on the mode.
pub fn run(low: LowArgs) -> Result<u8, Fatal> {
    match &low.mode {
        Mode::Unsupported(m) => {
            return Err(Fatal::new(
                exit::USAGE,
                format!("usage error: {m} mode is not supported yet"),
            ));
        }
        Mode::Nothing => return Ok(exit::OK),
        _ => {}
    }
    let hi = HiArgs::new(low)?;
    match hi.low.mode.clone() {
        Mode::ListQueue => Err(hi.exec_postqueue(&["-p"])),
        Mode::SmtpStdio => Err(hi.exec_smtpd_stdio()),
        Mode::Flush => Err(hi.exec_postqueue(&["-f"])),
        Mode::FlushId(id) => Err(hi.exec_postqueue(&["-i", &id])),
        Mode::NewAliases => hi.newaliases(),
        Mode::Submit => hi.submit(),
        Mode::Nothing | Mode::Unsupported(_) => Ok(exit::OK),
    }
}
