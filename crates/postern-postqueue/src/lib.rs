//! postqueue — the queue control command for everyone: list, flush.
//!
//! # Synopsis
//! `postqueue [-v] [-c config_dir] -p | -j | -f | -s site | -i queue_id`
//!
//! # Description
//! * `-p`: the Sendmail-compatible listing (what `mailq` and `sendmail -bp`
//!   print): per message the queue ID followed by `*` (active) or `!`
//!   (hold), the size, the arrival time and the sender (`MAILER-DAEMON` for
//!   the null sender); then, for delayed recipients, the reason in
//!   parentheses from the defer log, and every pending recipient. The footer
//!   counts kilobytes and requests; an empty queue prints `Mail queue is empty`.
//! * `-j`: the same data as JSON Lines, with Postfix 3.7's field names
//!   (`queue_name`, `queue_id`, `arrival_time`, `message_size`,
//!   `forced_expire`, `sender`, `recipients[{address, delay_reason}]`).
//! * `-f`: ask qmgr to retry every deferred message now (trigger `F` on
//!   `public/qmgr`).
//! * `-s site`: ask the fast flush service to deliver the mail it logged
//!   for `site` (a `fast_flush_domains` destination), as ETRN does.
//! * `-i queue_id`: ask the flush service to deliver that one message now.
//!
//! The listing comes from the showq service (`public/showq`), which reads
//! the queue as `mail_owner`; postqueue only relays its text. When showq
//! cannot be reached, root and `mail_owner` get the listing from showq run
//! stand-alone (`showq -S`), as with Postfix; anyone else gets
//! `Queue report unavailable - mail system is down`.
//!
//! # Security
//! In a root instance ordinary users run postqueue set-gid `setgid_group`
//! (`DIR/bin/postqueue`, installed by `postern init`; the gate is
//! `postern`'s set-gid entry); postqueue started any other way by such a user
//! re-executes that copy. `authorized_mailq_users` (listing) and
//! `authorized_flush_users` (`-f`, `-s`, `-i`) are checked against the real
//! uid; root and `mail_owner` are always allowed, as in Postfix. postqueue
//! changes nothing in the queue; the queue ID given to `-i` is validated
//! before use.
//!
//! # Exit status (sysexits)
//! 0 success; 64 usage (also an invalid flush request); 69 mail system down
//! or destination not eligible (flush); 70 unexpected flush or showq reply;
//! 75 the queue cannot be read now, or an access list cannot be evaluated;
//! 77 the user is not allowed; 78 bad configuration.
//!
//! # Configuration
//! `authorized_mailq_users`, `authorized_flush_users`,
//! `mail_owner`, `showq_service_name`, `trigger_timeout`,
//! `flush_service_name`, `ipc_timeout`, `syslog_name`, `maillog_file`.

mod access;
mod relay;

pub use relay::list;

use postern_config::Config;
use postern_ipc::flush::{FlushOp, FlushRequest, FlushStatus};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use postern_server::command::fatal;
pub use postern_server::command::{Fatal, exit};

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `-p`.
    List,
    /// `-j`.
    Json,
    /// `-f`.
    Flush,
    /// `-s site`.
    FlushSite(String),
    /// `-i queue_id`.
    FlushId(String),
}

/// Validated command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The mode.
    pub mode: Mode,
    /// `-c DIR`.
    pub config: Option<PathBuf>,
    /// `-v` count.
    pub verbose: u32,
}

const USAGE_TEXT: &str =
    "usage: postqueue -f | postqueue -i queueid | postqueue -j | postqueue -p | postqueue -s site";

fn set_mode(slot: &mut Option<Mode>, m: Mode) -> Result<(), Fatal> {
    if slot.is_some() {
        return Err(fatal(
            exit::USAGE,
            format!("specify only one of -f, -i, -j, -p, -s; {USAGE_TEXT}"),
        ));
    }
    *slot = Some(m);
    Ok(())
}

/// Parses `args` (`args[0]` is the program name). Options take their value
/// attached (`-cDIR`) or as the next argument.
pub fn parse_args(args: &[OsString]) -> Result<Args, Fatal> {
    let mut mode = None;
    let mut config = None;
    let mut verbose = 0;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a
            .to_str()
            .ok_or_else(|| fatal(exit::USAGE, "argument is not UTF-8"))?;
        let Some(opt) = a.strip_prefix('-').and_then(|o| o.chars().next()) else {
            return Err(fatal(
                exit::USAGE,
                format!("unexpected argument {a}; {USAGE_TEXT}"),
            ));
        };
        let attached = &a[1 + opt.len_utf8()..];
        let mut value = || -> Result<String, Fatal> {
            if !attached.is_empty() {
                return Ok(attached.to_string());
            }
            it.next()
                .and_then(|v| v.to_str())
                .map(str::to_string)
                .ok_or_else(|| fatal(exit::USAGE, format!("option -{opt} requires an argument")))
        };
        match opt {
            'c' => config = Some(PathBuf::from(value()?)),
            's' => set_mode(&mut mode, Mode::FlushSite(value()?))?,
            'i' => {
                let id = value()?;
                if !postern_queue::valid_id(&id) {
                    return Err(fatal(exit::USAGE, format!("invalid queue ID: {id}")));
                }
                set_mode(&mut mode, Mode::FlushId(id))?
            }
            'p' | 'j' | 'f' | 'v' if !attached.is_empty() => {
                return Err(fatal(
                    exit::USAGE,
                    format!("unexpected argument {a}; {USAGE_TEXT}"),
                ));
            }
            'p' => set_mode(&mut mode, Mode::List)?,
            'j' => set_mode(&mut mode, Mode::Json)?,
            'f' => set_mode(&mut mode, Mode::Flush)?,
            'v' => verbose += 1,
            _ => {
                return Err(fatal(
                    exit::USAGE,
                    format!("invalid option -- '{opt}'; {USAGE_TEXT}"),
                ));
            }
        }
    }
    let mode = mode.ok_or_else(|| fatal(exit::USAGE, USAGE_TEXT))?;
    Ok(Args {
        mode,
        config,
        verbose,
    })
}

fn load(args: &Args) -> Result<(PathBuf, Config), Fatal> {
    let dir = postern_server::load::config_dir(args.config.as_deref());
    let cfg = postern_server::load::load(&dir)
        .map(|l| l.config)
        .map_err(|e| fatal(exit::CONFIG, e.to_string()))?;
    postern_log::init("postqueue", postern_server::load::command_log_config(&cfg));
    Ok((dir, cfg))
}

/// Asks qmgr to flush the deferred queue.
pub fn flush(cfg: &Config) -> Result<(), Fatal> {
    let byte = postern_ipc::proto::trigger::FLUSH_DEFERRED;
    postern_server::client::trigger(cfg, "public", "qmgr", &[byte]).map_err(|e| {
        postern_log::warning(plain(&e.to_string()));
        fatal(
            exit::UNAVAILABLE,
            "Cannot flush mail queue - mail system is down",
        )
    })
}

/// What a flush service status means for `-s` / `-i` (Postfix's texts and
/// exit codes); `None` for success.
pub fn flush_status_fatal(
    status: Result<FlushStatus, String>,
    what: &str,
    site: bool,
) -> Option<Fatal> {
    match status {
        Ok(FlushStatus::Ok) => None,
        Ok(FlushStatus::Bad) => Some(fatal(exit::USAGE, format!("Invalid request: \"{what}\""))),
        Ok(FlushStatus::Deny) if site => Some(fatal(
            exit::UNAVAILABLE,
            format!("Flush service is not configured for destination \"{what}\""),
        )),
        Ok(FlushStatus::Deny) => Some(fatal(
            exit::SOFTWARE,
            "Unexpected flush server reply status 4",
        )),
        Ok(FlushStatus::Fail) | Err(_) => {
            if let Err(e) = status {
                postern_log::warning(plain(&e));
            }
            Some(fatal(
                exit::UNAVAILABLE,
                "Cannot flush mail queue - mail system is down",
            ))
        }
    }
}

/// `-s site` / `-i queue_id` through the flush service.
pub fn flush_one(cfg: &Config, op: FlushOp, what: &str) -> Result<(), Fatal> {
    let site = op == FlushOp::SendSite;
    let req = FlushRequest {
        op,
        site: if site {
            what.to_string()
        } else {
            String::new()
        },
        queue_id: if site {
            String::new()
        } else {
            what.to_string()
        },
    };
    let status = postern_server::client::flush(cfg, &req).map_err(|e| e.to_string());
    match flush_status_fatal(status, what, site) {
        None => Ok(()),
        Some(f) => Err(f),
    }
}

/// Runs a parsed command line.
pub fn run(args: &Args) -> Result<(), Fatal> {
    let (dir, cfg) = load(args)?;
    if let Some(f) = access::exec_setgid_copy(&cfg, &dir, args) {
        return Err(f);
    }
    access::check(&cfg, &args.mode)?;
    match &args.mode {
        Mode::List => list(&cfg, &dir, false, &mut std::io::stdout().lock()),
        Mode::Json => list(&cfg, &dir, true, &mut std::io::stdout().lock()),
        Mode::Flush => flush(&cfg),
        Mode::FlushSite(site) => flush_one(&cfg, FlushOp::SendSite, site),
        Mode::FlushId(id) => flush_one(&cfg, FlushOp::SendFile, id),
    }
}

/// Postfix-style error text (see `postern_log::plain`).
pub use postern_log::plain;

/// Entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    match parse_args(&args).and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report("postqueue", true),
    }
}

#[cfg(test)]
mod tests;
