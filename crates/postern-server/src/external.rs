//! What the daemons that run external commands for a master.cf service (pipe, spawn)
//! share: the commands' environment, their time limit, the kill at that limit, and the
//! lookup of the `user=` account and `mail_owner` their refusals compare.
//!
//! # Security
//! The environment is built from nothing: only the names of the daemon's
//! `export_environment` (a name passes this process's value on, `NAME=value` sets one;
//! `MAIL_CONFIG` is this instance's configuration directory), and always
//! `PATH=/usr/bin:/bin`.
//!
//! # Configuration
//! `SERVICE_time_limit` (per master.cf service name); the caller names the parameter it
//! falls back to and passes its `export_environment` list (so each daemon's manual page
//! lists what it reads).

use crate::skeleton::Context;
use postern_config::Time;
use std::time::Duration;

/// One external command as pipe and spawn run it.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// Program and arguments (non-empty).
    pub argv: Vec<String>,
    /// (uid, gid) to run as; `None` = as this process.
    pub ids: Option<(u32, u32)>,
    /// Working directory.
    pub cwd: std::path::PathBuf,
    /// The whole environment of the command.
    pub env: Vec<(String, String)>,
    /// Time limit for the whole run.
    pub time_limit: Duration,
}

/// The commands' whole environment from the `export_environment` list `names`.
pub fn environment(ctx: &Context, names: Vec<String>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for item in names {
        if let Some((k, v)) = item.split_once('=') {
            env.push((k.to_string(), v.to_string()));
        } else if item == "MAIL_CONFIG" {
            env.push((item, ctx.config_dir.display().to_string()));
        } else if let Some(v) = std::env::var_os(&item) {
            env.push((item, v.to_string_lossy().into_owned()));
        }
    }
    env.retain(|(k, _)| k != "PATH");
    env.push(("PATH".into(), "/usr/bin:/bin".into()));
    env
}

/// `SERVICE_time_limit` when set (validated at load as a time), else the parameter
/// `fallback` (at least one second).
pub fn time_limit(ctx: &Context, fallback: Time) -> Duration {
    let specific = format!("{}_time_limit", ctx.service);
    let limit = match ctx.config.get_time(&specific) {
        Ok(secs) if ctx.config.raw(&specific).is_some() => Duration::from_secs(secs),
        _ => ctx.config.time(fallback),
    };
    limit.max(Duration::from_secs(1))
}

/// Kills a command's process group and the command itself (SIGKILL, as Postfix at the
/// time limit), so descendants that hold its descriptors cannot keep the daemon busy.
pub fn kill_group(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    let sig = nix::sys::signal::Signal::SIGKILL;
    // The group first (the command and what it started), then the command
    // itself in case it left the group.
    for target in [-pid, pid] {
        if let Err(e) = postern_sys::privs::signal(target, sig) {
            postern_log::warning(format!("cannot kill process (group) {pid}: {e}"));
        }
    }
}

/// The ids a command of `user=NAME[:GROUP]` runs with, and `mail_owner`'s (for the
/// checks each daemon makes in its own words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accounts {
    /// The user's uid.
    pub uid: u32,
    /// The group's gid, else the user's primary gid.
    pub gid: u32,
    /// `mail_owner`'s uid.
    pub owner_uid: u32,
    /// `mail_owner`'s primary gid.
    pub owner_gid: u32,
}

/// Why [`accounts`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// No such user.
    #[error("unknown user {0}")]
    UnknownUser(String),
    /// No such group.
    #[error("unknown group {0}")]
    UnknownGroup(String),
    /// `mail_owner` names no account.
    #[error("file {dir}/main.cf: parameter mail_owner: unknown user name value: {name}")]
    UnknownOwner {
        /// The configuration directory.
        dir: String,
        /// `mail_owner`'s value.
        name: String,
    },
    /// The account database could not be read.
    #[error(transparent)]
    Lookup(#[from] postern_sys::SysError),
}

/// Looks up `user` (and `group`) and `owner` (the caller's `mail_owner`). Fails closed: the
/// owner checks are never skipped because `mail_owner` cannot be looked up.
pub fn accounts(
    ctx: &Context,
    user: &str,
    group: Option<&str>,
    owner: &str,
) -> Result<Accounts, AccountError> {
    let pw = postern_sys::privs::lookup_user(user)?
        .ok_or_else(|| AccountError::UnknownUser(user.to_string()))?;
    let gid = match group {
        None => pw.gid,
        Some(g) => postern_sys::privs::lookup_group(g)?
            .ok_or_else(|| AccountError::UnknownGroup(g.to_string()))?,
    };
    let owner =
        postern_sys::privs::lookup_user(owner)?.ok_or_else(|| AccountError::UnknownOwner {
            dir: ctx.config_dir.display().to_string(),
            name: owner.to_string(),
        })?;
    Ok(Accounts {
        uid: pw.uid,
        gid,
        owner_uid: owner.uid,
        owner_gid: owner.gid,
    })
}
