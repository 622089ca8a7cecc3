//! postsuper — queue maintenance for the superuser.
//!
//! # Synopsis
//! `postsuper [-psSv] [-c config_dir] [-d queue_id] [-h queue_id]
//! [-H queue_id] [-r queue_id] [queue ...]`
//!
//! # Description
//! * `-d ID`: delete a message and its bounce/defer/trace logs (default
//!   queues: hold, incoming, active, deferred).
//! * `-h ID`: put a message on hold (from incoming, active, deferred; like
//!   Postfix, active messages are moved too).
//! * `-H ID`: release a message from hold to deferred, with its retry time
//!   set to now so qmgr picks it up at its next deferred scan.
//! * `-r ID`: requeue: move the message to maildrop, so pickup resubmits its
//!   pending recipients to cleanup (defaults: hold, incoming, active, deferred).
//! * `ID` may be `ALL` (upper case, every message of the queues) or `-`
//!   (queue IDs on standard input, one per line). Options may be repeated.
//!   Queue names after the options restrict every operation to them.
//! * `-p`: remove writers' leftovers (temporary and unfinished files) from
//!   incoming and maildrop. Refused while master runs, as a writer could be
//!   mid-file.
//! * `-s`, `-S`: accepted; the flat queue layout needs no structure repair.
//! * `-e`, `-f` (expire): not supported yet (usage error).
//!
//! Output, on stderr and in the log, is Postfix's: `ID: removed` for each
//! message named by ID or read from stdin, and a summary per operation
//! (`Deleted: 2 messages`, `Placed on hold: 1 message`,
//! `Released from hold: …`, `Requeued: …`); an invalid ID gets
//! `warning: invalid mail queue id: …`.
//!
//! # Security
//! Only root, or the owner of `queue_directory` (the user of a private
//! instance), may run postsuper, and never set-uid or set-gid. Run by root,
//! it works with `mail_owner`'s privileges once the configuration is read (as
//! Postfix's postsuper does), so a compromised queue tree cannot lead it
//! outside the mail owner's files. Queue
//! IDs are validated before they become file names. Every change is a
//! single unlink or rename, so a message is never lost or duplicated by a
//! crash of postsuper.
//!
//! # Exit status (sysexits)
//! 0 done (individual messages that were not found are not errors); 64
//! usage; 75 master running (for `-p`); 77 not privileged; 78 configuration.
//!
//! # Configuration
//! `queue_directory`, `syslog_name`, `maillog_file`.

pub mod args;
pub mod ops;

use postern_config::p;
use postern_queue::Queue;
use std::ffi::OsString;
use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;

use postern_server::command::fatal;
pub use postern_server::command::{Fatal, exit};

/// Output to stderr and the log, as Postfix's postsuper does.
struct Console;

impl ops::Report for Console {
    fn info(&mut self, text: String) {
        let text = plain(&text);
        eprintln!("postsuper: {text}");
        postern_log::info(text);
    }
    fn warning(&mut self, text: String) {
        postern_log::warning(plain(&text)); // also printed on stderr by postern-log
    }
}

/// Whether `euid` may change a queue owned by `owner`.
pub fn may_administer(euid: u32, owner: u32) -> bool {
    euid == 0 || euid == owner
}

fn check_privilege(queue_dir: &Path) -> Result<(), Fatal> {
    if postern_sys::privs::is_set_id() {
        return Err(fatal(
            exit::NOPERM,
            "this postfix command must not run as a set-uid process",
        ));
    }
    let md = std::fs::metadata(queue_dir)
        .map_err(|e| fatal(exit::CONFIG, format!("stat {}: {e}", queue_dir.display())))?;
    if !may_administer(postern_sys::privs::effective_uid(), md.uid()) {
        return Err(fatal(
            exit::NOPERM,
            "use of this command is reserved for the superuser",
        ));
    }
    Ok(())
}

/// Run by root: continue as `mail_owner` (setgid, setgroups, setuid).
fn drop_to_mail_owner(cfg: &postern_config::Config) -> Result<(), Fatal> {
    if postern_sys::privs::real_uid() != 0 {
        return Ok(());
    }
    let owner = cfg.str(p::MAIL_OWNER);
    let user = postern_sys::privs::lookup_user(&owner)
        .map_err(|e| fatal(exit::CONFIG, e.to_string()))?
        .ok_or_else(|| {
            fatal(
                exit::CONFIG,
                format!("parameter mail_owner: unknown user name value: {owner}"),
            )
        })?;
    if user.uid == 0 {
        return Err(fatal(
            exit::CONFIG,
            format!("mail_owner {owner} must not be the super-user"),
        ));
    }
    postern_sys::privs::drop_to(user.uid, user.gid).map_err(|e| fatal(exit::CONFIG, e.to_string()))
}

/// Whether master holds its pid-file lock.
fn master_running(q: &Queue) -> Result<bool, Fatal> {
    let path = q.root().join("pid/master.pid");
    let f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(fatal(
                exit::TEMPFAIL,
                format!("open {}: {e}", path.display()),
            ));
        }
    };
    postern_sys::lock::flock_try_exclusive(&f, &path.display().to_string())
        .map(|got| !got) // the lock is dropped with `f`
        .map_err(|e| fatal(exit::TEMPFAIL, e.to_string()))
}

/// Age after which an unfinished maildrop file is a crash leftover (as Postfix's
/// postsuper, 12 hours).
const MAILDROP_TEMP_AGE: u64 = 12 * 3600;

/// `-p`: purge unfinished files from incoming and maildrop.
fn purge(q: &Queue, r: &mut dyn ops::Report) -> Result<(), Fatal> {
    if master_running(q)? {
        return Err(fatal(
            exit::TEMPFAIL,
            "-p is only safe while the mail system is stopped (master is running)",
        ));
    }
    let mut n = 0;
    // cleanup cannot run while master is down, but postdrop (sendmail) can:
    // in maildrop only files untouched for a long time are leftovers.
    for (queue, age) in [("incoming", 0), ("maildrop", MAILDROP_TEMP_AGE)] {
        match postern_queue_admin::purge_unready(q, queue, std::time::Duration::from_secs(age)) {
            Ok(names) => {
                for name in &names {
                    postern_log::info(format_args!("{queue}/{name}: removed unfinished file"));
                }
                n += names.len();
            }
            Err(e) => r.warning(e.to_string()),
        }
    }
    r.info(format!(
        "Purged: {n} unfinished file{}",
        if n == 1 { "" } else { "s" }
    ));
    Ok(())
}

/// Runs a parsed command line against the queue (run by root: as `mail_owner`).
pub fn run(a: &args::Args, input: &mut dyn BufRead, r: &mut dyn ops::Report) -> Result<(), Fatal> {
    run_with(a, input, r, &drop_to_mail_owner)
}

/// [`run`] with the privilege drop as a parameter (unit tests keep theirs).
fn run_with(
    a: &args::Args,
    input: &mut dyn BufRead,
    r: &mut dyn ops::Report,
    drop_privileges: &dyn Fn(&postern_config::Config) -> Result<(), Fatal>,
) -> Result<(), Fatal> {
    let dir = postern_server::load::config_dir(a.config.as_deref());
    let cfg = postern_server::load::load(&dir)
        .map_err(|e| fatal(exit::CONFIG, e.to_string()))?
        .config;
    postern_log::init("postsuper", postern_server::load::log_config(&cfg, true));
    let q = Queue::new(cfg.str(p::QUEUE_DIRECTORY));
    check_privilege(q.root())?;
    drop_privileges(&cfg)?;
    if a.purge {
        purge(&q, r)?;
    }
    ops::run_ops(&q, &a.ops, &a.queues, input, r);
    Ok(())
}

/// Postfix-style error text (see `postern_log::plain`).
pub use postern_log::plain;

/// Entry point.
pub fn main(argv: Vec<OsString>) -> ExitCode {
    let parsed = args::parse(&argv).map_err(|e| fatal(exit::USAGE, e.0));
    match parsed.and_then(|a| run(&a, &mut std::io::stdin().lock(), &mut Console)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report("postsuper", true),
    }
}

#[cfg(test)]
mod tests;
