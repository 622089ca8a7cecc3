//! postcat — show the contents of a queue file.
//!
//! # Synopsis
//! `postcat [-behv] [-c config_dir] [-q] [file or queue ID ...]`
//!
//! # Description
//! Prints a Postern queue file (or maildrop file) in readable form,
//! modelled on Postfix's postcat so that admins' habits and greps carry over:
//!
//! ```text
//! *** ENVELOPE RECORDS deferred/3F2A1B2C4D ***
//! message_size: 1234
//! message_arrival_time: Sun Nov 22 22:40:48 2026
//! sender_fullname: Joe User
//! sender: joe@example.com
//! named_attribute: rewrite_context=local
//! named_attribute: notify_flags=8
//! original_recipient: u@example.com
//! recipient: u@example.com
//! done_recipient: v@example.com
//! *** MESSAGE CONTENTS deferred/3F2A1B2C4D ***
//! (header and body)
//! *** HEADER EXTRACTED deferred/3F2A1B2C4D ***
//! *** MESSAGE FILE END deferred/3F2A1B2C4D ***
//! ```
//!
//! Recipients already delivered are shown as `done_recipient:` (Postfix
//! shows its done records too). `-e` selects the envelope, `-h` the header,
//! `-b` the body (from the empty line that ends the header); without any of
//! them everything is shown. The `***` section markers appear only when the
//! envelope is selected, as in Postfix. `-q` takes queue IDs and searches
//! every queue (maildrop, incoming, active, deferred, hold, corrupt); the
//! label is then `queue/ID`, otherwise the path given. The arrival time is
//! shown in local time.
//!
//! # Security
//! Read only. Queue IDs are validated before they become file names; the
//! file is parsed completely before anything is printed, and a damaged file
//! is reported, never half-printed.
//!
//! # Exit status
//! 0 shown; 1 a file is missing, unreadable or corrupt (as Postfix); 64 usage.
//!
//! # Configuration
//! `queue_directory` (with `-q`), `syslog_name`, `maillog_file`.

use postern_config::p;
use postern_qfile::QueueFile;
use postern_queue::{Queue, ReadError};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use postern_server::command::fatal;
pub use postern_server::command::{Fatal, exit};

/// What to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Show {
    /// `-e`.
    pub envelope: bool,
    /// `-h`.
    pub header: bool,
    /// `-b`.
    pub body: bool,
}

/// Validated command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Sections.
    pub show: Show,
    /// `-q`: operands are queue IDs.
    pub by_id: bool,
    /// `-c DIR`.
    pub config: Option<PathBuf>,
    /// Files or queue IDs.
    pub operands: Vec<String>,
}

/// Parses `args` (`args[0]` is the program name).
pub fn parse_args(args: &[OsString]) -> Result<Args, Fatal> {
    let (mut e, mut h, mut b, mut by_id) = (false, false, false, false);
    let mut config = None;
    let mut operands = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a
            .to_str()
            .ok_or_else(|| fatal(exit::USAGE, "argument is not UTF-8"))?;
        let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
            operands.push(a.to_string());
            continue;
        };
        for (i, c) in flags.char_indices() {
            match c {
                'e' => e = true,
                'h' => h = true,
                'b' => b = true,
                'q' => by_id = true,
                'v' | 'r' => {} // verbose; records are always shown in file order
                'c' => {
                    let rest = &flags[i + 1..];
                    let dir = if rest.is_empty() {
                        it.next().map(PathBuf::from).ok_or_else(|| {
                            fatal(exit::USAGE, "option requires an argument -- 'c'")
                        })?
                    } else {
                        PathBuf::from(rest)
                    };
                    config = Some(dir);
                    break;
                }
                _ => {
                    return Err(fatal(
                        exit::USAGE,
                        format!(
                            "invalid option -- '{c}'; usage: postcat [-behv] [-c config_dir] [-q] [file or queue ID ...]"
                        ),
                    ));
                }
            }
        }
    }
    if operands.is_empty() {
        return Err(fatal(
            exit::USAGE,
            "no file or queue ID given (reading a queue file from standard input is not supported)",
        ));
    }
    let all = !(e || h || b);
    Ok(Args {
        show: Show {
            envelope: e || all,
            header: h || all,
            body: b || all,
        },
        by_id,
        config,
        operands,
    })
}

/// `Sun Nov 22 22:40:48 2026` in `tz`.
pub fn asctime(secs: u64, tz: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::from_second(secs.min(i64::MAX as u64) as i64) {
        Ok(ts) => ts
            .to_zoned(tz.clone())
            .strftime("%a %b %e %H:%M:%S %Y")
            .to_string(),
        Err(_) => format!("(bad time {secs})"),
    }
}

fn envelope(q: &QueueFile, tz: &jiff::tz::TimeZone) -> String {
    let mut out = format!("message_size: {}\n", q.content.len());
    out.push_str(&format!(
        "message_arrival_time: {}\n",
        asctime(q.arrival.0, tz)
    ));
    if !q.fullname.is_empty() {
        out.push_str(&format!("sender_fullname: {}\n", q.fullname));
    }
    out.push_str(&format!("sender: {}\n", q.sender));
    for (n, v) in &q.attrs {
        out.push_str(&format!("named_attribute: {n}={v}\n"));
    }
    for r in &q.recipients {
        if r.notify != 0 {
            out.push_str(&format!("named_attribute: notify_flags={}\n", r.notify));
        }
        if !r.orcpt.is_empty() {
            out.push_str(&format!("named_attribute: dsn_orig_rcpt={}\n", r.orcpt));
        }
        if !r.original.is_empty() {
            out.push_str(&format!("original_recipient: {}\n", r.original));
        }
        let kind = if r.done {
            "done_recipient"
        } else {
            "recipient"
        };
        out.push_str(&format!("{kind}: {}\n", r.address));
    }
    out
}

/// Renders one queue file (pure).
pub fn render(q: &QueueFile, label: &str, show: Show, tz: &jiff::tz::TimeZone) -> Vec<u8> {
    let mut out = Vec::with_capacity(q.content.len() + 512);
    let marker = |out: &mut Vec<u8>, what: &str| {
        if show.envelope {
            out.extend_from_slice(format!("*** {what} {label} ***\n").as_bytes());
        }
    };
    marker(&mut out, "ENVELOPE RECORDS");
    if show.envelope {
        out.extend_from_slice(envelope(q, tz).as_bytes());
    }
    marker(&mut out, "MESSAGE CONTENTS");
    let end = postern_mail::header::header_end(&q.content);
    let part: &[u8] = match (show.header, show.body) {
        (true, true) => &q.content,
        (true, false) => &q.content[..end.header_len],
        (false, true) => &q.content[end.header_len..],
        (false, false) => b"",
    };
    out.extend_from_slice(part);
    if !part.is_empty() && !part.ends_with(b"\n") {
        out.push(b'\n');
    }
    marker(&mut out, "HEADER EXTRACTED");
    marker(&mut out, "MESSAGE FILE END");
    out
}

/// Reads `operand` (a path, or with `-q` a queue ID); returns the file and its label.
fn open(operand: &str, queue: Option<&Queue>) -> Result<(QueueFile, String), Fatal> {
    let Some(q) = queue else {
        let buf = std::fs::read(operand)
            .map_err(|e| fatal(exit::FAIL, format!("open {operand}: {e}")))?;
        let qf = postern_qfile::parse(&buf, buf.len() as u64)
            .map_err(|e| fatal(exit::FAIL, format!("{operand}: corrupt queue file ({e})")))?;
        return Ok((qf, operand.to_string()));
    };
    if !postern_queue::valid_id(operand) {
        return Err(fatal(exit::USAGE, format!("invalid queue ID: {operand}")));
    }
    let not_found = || {
        fatal(
            exit::FAIL,
            format!("open queue file {operand}: No such file or directory"),
        )
    };
    let queue = q.locate(operand).ok_or_else(not_found)?;
    let label = format!("{queue}/{operand}");
    // Records are bounded by the file itself, which is read whole.
    match q.read(queue, operand, u64::MAX) {
        Ok(qf) => Ok((qf, label)),
        Err(ReadError::NotFound(_)) => Err(not_found()),
        Err(ReadError::Corrupt { cause, .. }) => Err(fatal(
            exit::FAIL,
            format!("{label}: corrupt queue file ({cause})"),
        )),
        Err(e) => Err(fatal(exit::FAIL, e.to_string())),
    }
}

/// Shows every operand on `out`.
pub fn run(a: &Args, out: &mut impl Write) -> Result<(), Fatal> {
    let queue = if a.by_id {
        let dir = postern_server::load::config_dir(a.config.as_deref());
        let cfg = postern_server::load::load(&dir)
            .map_err(|e| fatal(exit::FAIL, e.to_string()))?
            .config;
        postern_log::init("postcat", postern_server::load::log_config(&cfg, true));
        Some(Queue::new(cfg.str(p::QUEUE_DIRECTORY)))
    } else {
        None
    };
    let tz = jiff::tz::TimeZone::system();
    for operand in &a.operands {
        let (qf, label) = open(operand, queue.as_ref())?;
        out.write_all(&render(&qf, &label, a.show, &tz))
            .map_err(|e| fatal(exit::FAIL, format!("write standard output: {e}")))?;
    }
    out.flush()
        .map_err(|e| fatal(exit::FAIL, format!("write standard output: {e}")))
}

/// Postfix-style error text (see `postern_log::plain`).
pub use postern_log::plain;

/// Entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    match parse_args(&args).and_then(|a| run(&a, &mut std::io::stdout().lock())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report("postcat", false),
    }
}

#[cfg(test)]
mod tests;
