//! What the daemons that run external commands for a master.cf service (pipe, spawn)
//! share: the commands' environment, their time limit, and the kill at that limit.
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
use std::time::Duration;

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

/// `SERVICE_time_limit` when set, else the parameter `fallback` (at least one second).
pub fn time_limit(ctx: &Context, fallback: &str) -> Duration {
    let specific = format!("{}_time_limit", ctx.service);
    let name = if ctx.config.raw(&specific).is_some() {
        specific.as_str()
    } else {
        fallback
    };
    let secs = ctx.config.get_time(name).unwrap_or_else(|e| {
        postern_log::warning(format!("{e}; using 1000s"));
        1000
    });
    Duration::from_secs(secs.max(1))
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
