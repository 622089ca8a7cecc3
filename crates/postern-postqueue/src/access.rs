//! Who may list and flush the queue, and the hand-over to the set-gid copy.
//!
//! # Security
//! Root and `mail_owner` may always list and flush (Postfix's rule); anyone
//! else must match `authorized_mailq_users` (`-p`, `-j`) or
//! `authorized_flush_users` (`-f`, `-s`, `-i`), checked against the real
//! uid. A list that cannot be evaluated is a temporary failure, never a
//! permit.

use crate::{Args, Fatal, Mode, exit, fatal};
use postern_config::{Config, p};
use postern_server::acl::{AclError, check_user};
use std::os::unix::process::CommandExt;
use std::path::Path;

/// Whether the real uid is root or `mail_owner` (the queue's owner).
pub(crate) fn privileged(cfg: &Config) -> bool {
    let uid = postern_sys::privs::real_uid();
    uid == 0
        || matches!(
            postern_sys::privs::lookup_user(&cfg.str(p::MAIL_OWNER)),
            Ok(Some(u)) if u.uid == uid
        )
}

/// Applies the access list for `mode`.
pub(crate) fn check(cfg: &Config, mode: &Mode) -> Result<(), Fatal> {
    if privileged(cfg) {
        return Ok(());
    }
    let (param, what) = match mode {
        Mode::List | Mode::Json => (p::AUTHORIZED_MAILQ_USERS, "view"),
        Mode::Flush | Mode::FlushSite(_) | Mode::FlushId(_) => (p::AUTHORIZED_FLUSH_USERS, "flush"),
    };
    match check_user(&cfg.str(param), postern_sys::privs::real_uid()) {
        Ok(()) => Ok(()),
        Err(AclError::Denied { name, uid }) => Err(fatal(
            exit::NOPERM,
            format!("User {name}({uid}) is not allowed to {what} the mail queue"),
        )),
        Err(e) => Err(fatal(exit::TEMPFAIL, format!("{param}: {e}"))),
    }
}

/// An ordinary user of a root instance cannot reach `public/`: postqueue then
/// replaces itself with the set-gid copy for the instance configured in `DIR`
/// (`DIR/bin/postqueue` from `postern init`, else `$daemon_directory/postqueue`). `None`: carry on here
/// (root, `mail_owner`, a non-root instance, already set-gid).
pub(crate) fn exec_setgid_copy(cfg: &Config, dir: &Path, args: &Args) -> Option<Fatal> {
    if postern_sys::privs::is_set_id() || privileged(cfg) {
        return None;
    }
    let copy = postern_server::load::setgid_helper(dir, cfg, "postqueue")?;
    let mut argv: Vec<String> = vec!["-c".into(), dir.display().to_string()];
    argv.extend(std::iter::repeat_n("-v".to_string(), args.verbose as usize));
    match &args.mode {
        Mode::List => argv.push("-p".into()),
        Mode::Json => argv.push("-j".into()),
        Mode::Flush => argv.push("-f".into()),
        Mode::FlushSite(s) => argv.extend(["-s".into(), s.clone()]),
        Mode::FlushId(i) => argv.extend(["-i".into(), i.clone()]),
    }
    let err = std::process::Command::new(&copy)
        .arg0("postqueue")
        .args(&argv)
        .exec();
    Some(fatal(
        exit::UNAVAILABLE,
        format!("execute {}: {err}", copy.display()),
    ))
}
