//! postdrop — store a locally submitted message in the maildrop queue.
//!
//! # Synopsis
//! `postdrop [-rv] [-c config_dir]` (run by sendmail, never by hand)
//!
//! # Description
//! postdrop reads one maildrop record stream (the `postern-qfile` format
//! that sendmail builds) on standard input, checks it completely, stores it
//! durably in `$queue_directory/maildrop` (file and directory fsynced, mode
//! 0744 when complete) and wakes the pickup service with a `W` trigger on
//! `public/pickup`. When pickup cannot be reached (the mail system is down)
//! a warning is logged and the message waits in maildrop: the exit status is
//! still 0, since the message is safe. `-r` (the record stream on stdin) is
//! the only input mode and is implied; `-v` is accepted.
//!
//! # Security
//! In a root instance ordinary users run postdrop set-gid `setgid_group`
//! (`DIR/bin/postdrop`; the environment, descriptor and
//! configuration-directory checks happen in `postern`'s set-gid entry
//! before this code runs): `maildrop/` is 0730 `mail_owner:setgid_group`, so
//! postdrop can create a file there but not list or read the directory, and
//! the file belongs to the caller's real uid — which is all pickup believes
//! about who submitted it.
//!
//! The caller must match `authorized_submit_users` (Postfix's text `User
//! NAME(UID) is not allowed to submit mail`, exit 77). The input is not
//! trusted: it is read with a bound (`message_size_limit` × 2 + 1 MiB),
//! parsed with `postern_qfile::parse` (any malformed record, missing field or
//! trailing data is refused; so are control characters in envelope fields and
//! a non-numeric `flags` attribute), and only the attributes a submission
//! may carry are kept (`flags`, `envid`, `ret`, `rewrite_context` =
//! `local`|`remote`); any other (`origin_uid`, `filter`, `client_*`…) is
//! dropped with Postfix's warning `uid=N: ignoring attribute record`. The
//! queue ID comes from the file's inode, never from input.
//!
//! # Exit status (sysexits)
//! 0 stored; 64 usage; 65 the stream is invalid or too large; 75 the queue
//! could not be written (retry later) or `authorized_submit_users` could not
//! be evaluated; 77 not allowed to submit; 78 configuration or queue
//! directory missing.
//!
//! # Configuration
//! `authorized_submit_users`, `queue_directory`, `message_size_limit`,
//! `trigger_timeout`, `syslog_name`, `maillog_file`.

use postern_config::{Config, p};
use postern_qfile::QueueFile;
use postern_queue::Queue;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use postern_server::command::fatal;
pub use postern_server::command::{Fatal, exit};

/// Command-line options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// `-c DIR`.
    pub config: Option<PathBuf>,
    /// `-v` count.
    pub verbose: u32,
}

/// Parses `args` (`args[0]` is the program name).
pub fn parse_args(args: &[OsString]) -> Result<Args, Fatal> {
    let mut out = Args::default();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-r") => {}
            Some("-v") => out.verbose += 1,
            Some("-c") => match it.next() {
                Some(d) => out.config = Some(PathBuf::from(d)),
                None => return Err(fatal(exit::USAGE, "usage error: -c needs a directory")),
            },
            Some(s) if s.starts_with("-c") && s.len() > 2 => {
                out.config = Some(PathBuf::from(&s[2..]))
            }
            _ => {
                return Err(fatal(
                    exit::USAGE,
                    format!(
                        "usage error: unexpected argument {}; usage: postdrop [-rv] [-c config_dir]",
                        a.to_string_lossy()
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// The input bound for a `message_size_limit` (0 = unlimited → 2 GiB).
pub fn input_limit(message_size_limit: u64) -> u64 {
    let msl = if message_size_limit == 0 {
        1u64 << 30
    } else {
        message_size_limit
    };
    msl.saturating_mul(2).saturating_add(1 << 20)
}

/// Reads at most `limit` bytes; more is an error.
pub fn read_bounded(r: &mut impl Read, limit: u64) -> Result<Vec<u8>, Fatal> {
    let mut buf = Vec::new();
    r.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| fatal(exit::TEMPFAIL, format!("read standard input: {e}")))?;
    if buf.len() as u64 > limit {
        return Err(fatal(
            exit::DATAERR,
            format!("message record stream exceeds {limit} bytes; message rejected"),
        ));
    }
    Ok(buf)
}

/// Validates the stream and keeps only the attributes a submission may carry
/// (pure). Dropped attributes go to `warn`.
pub fn validate(
    bytes: &[u8],
    limit: u64,
    uid: u32,
    warn: &mut dyn FnMut(String),
) -> Result<Vec<u8>, Fatal> {
    let mut qf: QueueFile = postern_qfile::parse(bytes, limit).map_err(|e| {
        fatal(
            exit::DATAERR,
            format!("uid={uid}: invalid message record stream: {e}"),
        )
    })?;
    check_envelope(&qf).map_err(|what| {
        fatal(
            exit::DATAERR,
            format!("uid={uid}: invalid message record stream: {what}"),
        )
    })?;
    qf.attrs.retain(|(n, v)| {
        let keep = postern_qfile::submission_attr_ok(n, v);
        if !keep {
            warn(format!(
                "uid={uid}: ignoring attribute record: {:.200}={:.200}",
                n, v
            ));
        }
        keep
    });
    Ok(postern_qfile::encode(&mut qf))
}

/// Envelope fields must be free of control characters (they end up in log
/// lines and headers), and `flags` must be a number.
fn check_envelope(qf: &QueueFile) -> Result<(), String> {
    let bad = |s: &str| s.chars().any(char::is_control);
    if bad(&qf.sender) || bad(&qf.fullname) {
        return Err("control character in sender".into());
    }
    for (n, v) in &qf.attrs {
        if bad(n) || bad(v) {
            return Err(format!(
                "control character in attribute {}",
                n.escape_debug()
            ));
        }
    }
    if let Some(f) = qf.attr("flags") {
        f.parse::<u32>()
            .map_err(|_| format!("bad flags attribute: {}", f.escape_debug()))?;
    }
    for r in &qf.recipients {
        if [&r.address, &r.original, &r.orcpt].iter().any(|f| bad(f)) {
            return Err("control character in recipient".into());
        }
    }
    Ok(())
}

/// Stores the file in maildrop; returns its queue ID.
pub fn store(q: &Queue, bytes: &[u8]) -> Result<String, Fatal> {
    let dir = q.dir("maildrop");
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(fatal(
                exit::CONFIG,
                format!("{}: not a directory", dir.display()),
            ));
        }
        Err(e) => return Err(fatal(exit::CONFIG, format!("stat {}: {e}", dir.display()))),
    }
    postern_queue_admin::enter(q, "maildrop", bytes, 0o744)
        .map_err(|e| fatal(exit::TEMPFAIL, format!("queue file write error: {e}")))
}

/// Wakes pickup; a mail system that is down is not an error.
pub fn wake_pickup(cfg: &Config) {
    if let Err(e) = postern_server::client::trigger(
        cfg,
        "public",
        "pickup",
        &[postern_ipc::proto::trigger::WAKEUP],
    ) {
        let why = match &e {
            postern_server::client::ClientError::Connect { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        postern_log::warning(format_args!(
            "unable to look up public/pickup: {}",
            plain(&why)
        ));
    }
}

fn load(dir: &Path) -> Result<Config, Fatal> {
    postern_server::load::load(dir)
        .map(|l| l.config)
        .map_err(|e| fatal(exit::CONFIG, e.to_string()))
}

/// Does the work; `Ok(queue id)`.
pub fn run(args: &Args, input: &mut impl Read) -> Result<String, Fatal> {
    let dir = postern_server::load::config_dir(args.config.as_deref());
    let cfg = load(&dir)?;
    postern_log::init("postdrop", postern_server::load::command_log_config(&cfg));
    let limit = input_limit(cfg.size(p::MESSAGE_SIZE_LIMIT));
    let uid = postern_sys::privs::real_uid();
    check_submit_acl(&cfg, uid)?;
    let raw = read_bounded(input, limit)?;
    let bytes = validate(&raw, limit, uid, &mut |w| postern_log::warning(w))?;
    let q = Queue::new(cfg.str(p::QUEUE_DIRECTORY));
    let id = store(&q, &bytes)?;
    if args.verbose > 0 {
        postern_log::info(format_args!("{id}: uid={uid} stored in maildrop"));
    }
    wake_pickup(&cfg);
    Ok(id)
}

/// `authorized_submit_users`.
fn check_submit_acl(cfg: &Config, uid: u32) -> Result<(), Fatal> {
    use postern_server::acl::{AclError, check_user};
    match check_user(&cfg.str(p::AUTHORIZED_SUBMIT_USERS), uid) {
        Ok(()) => Ok(()),
        Err(AclError::Denied { name, uid }) => Err(fatal(
            exit::NOPERM,
            format!("User {name}({uid}) is not allowed to submit mail"),
        )),
        Err(e) => Err(fatal(
            exit::TEMPFAIL,
            format!("authorized_submit_users: {e}"),
        )),
    }
}

/// Postfix-style error text (see `postern_log::plain`).
pub use postern_log::plain;

/// Entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let result = parse_args(&args).and_then(|a| run(&a, &mut std::io::stdin().lock()));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(f) => f.report("postdrop", true),
    }
}

#[cfg(test)]
mod tests;
