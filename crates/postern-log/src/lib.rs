//! postern-log — Postfix-format log lines (layer 1).
//!
//! Every program logs one line per event, queue ID first, in the format that
//! Postfix's log tools (pflogsumm, fail2ban filters, admins' greps) parse:
//!
//! ```text
//! Nov 22 22:40:48 mail postfix/local[4242]: 4F2A1B2C4D: to=<u@localhost>, relay=local, ...
//! ```
//!
//! The program name is `$syslog_name/<program>`; warnings, errors and fatal
//! errors carry Postfix's `warning: `, `error: `, `fatal: ` prefixes.
//!
//! # Configuration
//! `maillog_file` (non-empty: append lines to that file, each line one
//! `write(2)` on an `O_APPEND` descriptor, so concurrent writers never interleave
//! within a line), otherwise syslog through `/dev/log` with `syslog_facility`;
//! `syslog_name`. Commands run from a terminal also print warnings and errors to
//! stderr, as Postfix's do.
//!
//! A failed write (full disk, broken stderr, syslog gone) never stops the
//! program: the line is offered to stderr once, and stderr errors are ignored.
//! A syslog socket that went away (syslogd restarted) is reconnected once per
//! failed line, by the name `/dev/log`: inside a chroot jail that is the
//! jail's `dev/log` (Debian's rsyslog snippet provides it).
//!
//! Chroot: the file or socket opened by [`init`] stays open, and
//! [`prepare_jail`] pins the local time zone ([`time_zone`], [`now`]) before the
//! daemon loses `/etc` and the zone database, as the C library keeps the zone it
//! read first.
//!
//! # Security
//! Callers never pass message bodies or authentication secrets. Control
//! characters in logged text are replaced with `?` so a peer cannot forge lines.
#![forbid(unsafe_code)]

pub mod delivery;

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Where log lines go.
#[derive(Debug, Clone, Default)]
pub struct LogConfig {
    /// `$syslog_name` (usually `postfix`).
    pub syslog_name: String,
    /// `$maillog_file`; empty means syslog.
    pub maillog_file: String,
    /// Host name written in file lines.
    pub hostname: String,
    /// Also copy warnings and errors to stderr (commands).
    pub stderr: bool,
    /// Copy every line to stderr (`start-fg` style debugging, tests).
    pub verbose_stderr: bool,
    /// Syslog facility code (`syslog_facility`, see [`facility_code`]); `None`: mail.
    pub facility: Option<u8>,
}

/// The code of a syslog facility name as `syslog_facility` takes it (`mail`, `local0`…
/// `local7`, …), or `None` for an unknown name.
pub fn facility_code(name: &str) -> Option<u8> {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "", "", "", "", "local0", "local1", "local2", "local3", "local4",
        "local5", "local6", "local7",
    ];
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() {
        return None;
    }
    NAMES.iter().position(|n| *n == name).map(|i| i as u8)
}

enum Sink {
    File(File),
    Syslog(UnixDatagram),
    Stderr,
}

struct Logger {
    tag: String,
    cfg: LogConfig,
    sink: Mutex<Sink>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Installs the process-wide logger for `program` (e.g. `local`). The first call wins.
pub fn init(program: &str, cfg: LogConfig) {
    let name = if cfg.syslog_name.is_empty() {
        "postfix"
    } else {
        cfg.syslog_name.as_str()
    };
    let tag = if program.is_empty() {
        name.to_string()
    } else {
        format!("{name}/{program}")
    };
    let sink = open_sink(&cfg);
    let _already = LOGGER.set(Logger {
        tag,
        cfg,
        sink: Mutex::new(sink),
    }); // first init wins, by design
}

fn open_sink(cfg: &LogConfig) -> Sink {
    if !cfg.maillog_file.is_empty() {
        match OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.maillog_file)
        {
            Ok(f) => return Sink::File(f),
            Err(e) => to_stderr(&format!(
                "warning: open {}: {e}; logging to stderr",
                cfg.maillog_file
            )),
        }
        return Sink::Stderr;
    }
    match connect_syslog() {
        Ok(s) => Sink::Syslog(s),
        Err(_) => Sink::Stderr,
    }
}

fn connect_syslog() -> std::io::Result<UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.connect("/dev/log")?;
    Ok(s)
}

static PINNED_TZ: OnceLock<jiff::tz::TimeZone> = OnceLock::new();

/// Called by a daemon just before it chroots: pins the local time zone (`TZ` or
/// `/etc/localtime`) while the system's files are reachable. Without it jiff
/// would re-read the zone every few minutes, by names the jail does not hold.
pub fn prepare_jail() {
    let _first_wins = PINNED_TZ.set(jiff::tz::TimeZone::system());
}

/// The local time zone: the one pinned by [`prepare_jail`], else the system's.
pub fn time_zone() -> jiff::tz::TimeZone {
    PINNED_TZ
        .get()
        .cloned()
        .unwrap_or_else(jiff::tz::TimeZone::system)
}

/// The current time in [`time_zone`] (log timestamps, header dates).
pub fn now() -> jiff::Zoned {
    jiff::Timestamp::now().to_zoned(time_zone())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Info,
    Warning,
    Error,
    Fatal,
    Panic,
}

impl Level {
    fn prefix(self) -> &'static str {
        match self {
            Level::Info => "",
            Level::Warning => "warning: ",
            Level::Error => "error: ",
            Level::Fatal => "fatal: ",
            Level::Panic => "panic: ",
        }
    }

    fn severity(self) -> u8 {
        match self {
            Level::Info => 6,
            Level::Warning => 4,
            Level::Error => 3,
            Level::Fatal => 2,
            Level::Panic => 0,
        }
    }
}

fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn timestamp() -> String {
    now().strftime("%b %e %H:%M:%S").to_string()
}

/// Writes one line to stderr, ignoring every error: a closed or broken stderr
/// (a detached daemon, a reader that went away) must never stop a program,
/// whereas `eprintln!` panics when the write fails.
pub fn to_stderr(line: &str) {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    if std::io::stderr().lock().write_all(&buf).is_err() {
        // Nowhere left to report it.
    }
}

static STDERR_COPY_OFF: AtomicBool = AtomicBool::new(false);

/// Stops copying warnings to stderr (the log file or syslog still gets
/// every line). master calls it once it is up when its stderr is not a
/// terminal: a supervisor's pipe that nobody reads must never fill up and
/// block master (Postfix's programs copy to stderr only for a terminal).
pub fn stop_stderr_copy() {
    STDERR_COPY_OFF.store(true, Ordering::Relaxed);
}

fn emit(level: Level, text: &dyn Display) {
    let body = format!("{}{}", level.prefix(), sanitize(&text.to_string()));
    let Some(l) = LOGGER.get() else {
        to_stderr(&body);
        return;
    };
    let pid = std::process::id();
    let copy = ((l.cfg.stderr && level != Level::Info) || l.cfg.verbose_stderr)
        && !STDERR_COPY_OFF.load(Ordering::Relaxed);
    if copy {
        to_stderr(&format!(
            "{}: {body}",
            l.tag.rsplit('/').next().unwrap_or("postern")
        ));
    }
    let mut sink = match l.sink.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    // A lost log line must not stop mail: write errors go to stderr, nothing more.
    let res = match &mut *sink {
        Sink::File(f) => {
            let line = format!(
                "{} {} {}[{pid}]: {body}\n",
                timestamp(),
                l.cfg.hostname,
                l.tag
            );
            f.write_all(line.as_bytes())
        }
        Sink::Syslog(s) => {
            let pri = l.cfg.facility.unwrap_or(2) * 8 + level.severity();
            let line = format!("<{pri}>{} {}[{pid}]: {body}", timestamp(), l.tag);
            match s.send(line.as_bytes()) {
                Ok(_) => Ok(()),
                // syslogd restarted: its new socket has the same name.
                Err(_) => connect_syslog().and_then(|fresh| {
                    *s = fresh;
                    s.send(line.as_bytes()).map(|_| ())
                }),
            }
        }
        Sink::Stderr => {
            if copy {
                Ok(()) // already printed above
            } else {
                to_stderr(&format!("{} {}[{pid}]: {body}", timestamp(), l.tag));
                Ok(())
            }
        }
    };
    if let Err(e) = res {
        to_stderr(&format!("{}[{pid}]: {body} (log write failed: {e})", l.tag));
    }
}

/// Logs an informational line.
pub fn info(text: impl Display) {
    emit(Level::Info, &text);
}

/// Logs a warning (the program continues).
pub fn warning(text: impl Display) {
    emit(Level::Warning, &text);
}

/// Logs an error (the program continues, but something needs attention).
pub fn error(text: impl Display) {
    emit(Level::Error, &text);
}

/// Logs a fatal error and exits with status 1 (master restarts daemons as needed).
pub fn fatal(text: impl Display) -> ! {
    emit(Level::Fatal, &text);
    std::process::exit(1);
}

/// Logs a bug and aborts.
pub fn panic(text: impl Display) -> ! {
    emit(Level::Panic, &text);
    std::process::abort();
}

/// Drops Rust's ` (os error N)` suffixes so that messages read like
/// Postfix's (`open x: No such file or directory`).
pub fn plain(text: &str) -> String {
    const MARK: &str = " (os error ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(MARK) {
        out.push_str(&rest[..i]);
        let after = &rest[i + MARK.len()..];
        match after.find(')') {
            Some(j) if j > 0 && after[..j].bytes().all(|b| b.is_ascii_digit()) => {
                rest = &after[j + 1..]
            }
            _ => {
                out.push_str(MARK);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `info!`-style formatting helper.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::info(format_args!($($arg)*)) };
}

/// `warning!`-style formatting helper.
#[macro_export]
macro_rules! warning {
    ($($arg:tt)*) => { $crate::warning(format_args!($($arg)*)) };
}

/// `fatal!`-style formatting helper.
#[macro_export]
macro_rules! fatal {
    ($($arg:tt)*) => { $crate::fatal(format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_names() {
        assert_eq!(facility_code("mail"), Some(2));
        assert_eq!(facility_code("LOCAL3"), Some(19));
        assert_eq!(facility_code("daemon"), Some(3));
        assert_eq!(facility_code("bogus"), None);
        assert_eq!(facility_code(""), None);
    }

    #[test]
    fn plain_drops_os_error_suffixes() {
        assert_eq!(
            plain("open x: No such file (os error 2)"),
            "open x: No such file"
        );
        assert_eq!(plain("a (os error 2) b (os error x)"), "a b (os error x)");
    }

    #[test]
    fn control_chars_are_neutralised() {
        assert_eq!(sanitize("a\nb\r\0c"), "a?b??c");
    }
}
