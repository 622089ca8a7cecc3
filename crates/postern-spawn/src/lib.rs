//! postern-spawn — run an external command for each connection (Postfix's spawn(8), the
//! mail system's inetd).
//!
//! A master.cf service names the account and the command:
//!
//! ```text
//! policyd-spf  unix  -  n  n  -  0  spawn
//!   user=nobody argv=/usr/bin/policyd-spf
//! ```
//!
//! Each connection accepted on the service's socket becomes the command's standard input,
//! output and error; this daemon does not read or write it (it is not exposed to what the
//! client or the command send). One command runs at a time per process (the single-server
//! skeleton; master starts more processes up to the service's process limit). When the
//! command exits, the connection is closed; an abnormal end is logged as Postfix logs it:
//!
//! ```text
//! postfix/spawn[PID]: warning: command /usr/bin/policyd-spf exit status 1
//! postfix/spawn[PID]: warning: command /usr/bin/policyd-spf killed by signal 9
//! postfix/spawn[PID]: warning: /usr/bin/policyd-spf: process id 1234: command time limit exceeded
//! ```
//!
//! # Security
//! The command never runs as root. In a root instance `user=NAME[:GROUP]` may not name
//! root, group 0, or the `mail_owner` account or its group (each a fatal configuration
//! error, in Postfix's words: `request to deliver as root`); the command runs with that
//! uid and gid and no supplementary groups, in its own process group, without a shell,
//! with a clean environment (`export_environment`, `PATH=/usr/bin:/bin`), in
//! `queue_directory`. In a non-root instance (a developer's or a test's) nobody can be
//! switched to: `user=` must still be given, but the command runs as the instance's user.
//! The daemon itself runs with master's privileges (master.cf unpriv column `n`) to be
//! able to switch users, and never in a chroot jail (its commands lie outside it).
//! A command that runs longer than its time limit is killed with its process group.
//!
//! # Errors
//! A missing or unknown attribute is fatal at start (`missing user= attribute`, `unknown
//! attribute name: flags=R`); so is an unknown user or group, and a service type other than
//! `unix` (Postfix's spawn also serves `inet`; Postern's single-server skeleton accepts
//! UNIX-domain connections only). A command that cannot be
//! started is logged and the connection closed.
//!
//! # Configuration
//! `SERVICE_time_limit` (the master.cf service name), else `command_time_limit` (1000s);
//! `export_environment`, `mail_owner`, `queue_directory`, `max_use`, `max_idle`.

pub mod attrs;
pub mod run;

use attrs::Attrs;
use postern_server::external::{self, AccountError};
use postern_server::service::{self, Env, Service};
use postern_server::skeleton::{self, Context};
use std::ffi::OsString;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

/// The spawn service: one command per connection.
pub struct Spawn {
    /// What runs for each connection.
    pub cmd: run::Command,
}

impl Service for Spawn {
    fn serve(&mut self, _ctx: &Context, stream: UnixStream) {
        run::serve(&self.cmd, stream);
    }
}

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let ctx = skeleton::init("spawn", &args);
    let mut svc = Spawn { cmd: setup(&ctx) };
    let env = Env::from_master(&ctx);
    service::finish(&ctx, service::single_server(&ctx, env, &mut svc))
}

/// Reads the service's attributes and settings; exits with a fatal log line on an error.
pub fn setup(ctx: &Context) -> run::Command {
    if ctx.service_type != "unix" {
        // The single-server skeleton accepts UNIX-domain connections only: refuse at
        // start rather than close every client.
        postern_log::fatal(format!(
            "service {}: spawn over {} sockets is not supported by Postern (use a unix service)",
            ctx.service, ctx.service_type
        ));
    }
    let attrs = match attrs::parse(&ctx.args) {
        Ok(a) => a,
        Err(e) => postern_log::fatal(e.to_string()),
    };
    run::Command {
        ids: command_ids(ctx, &attrs),
        cwd: ctx.config.get("queue_directory").into(),
        env: external::environment(ctx, ctx.config.get_list("export_environment")),
        time_limit: external::time_limit(ctx, "command_time_limit"),
        argv: attrs.argv,
    }
}

/// The uid and gid for the command (root instance only); fatal on a refused account.
fn command_ids(ctx: &Context, a: &Attrs) -> Option<(u32, u32)> {
    if !postern_sys::privs::is_root() {
        return None;
    }
    let fatal = |m: String| -> ! { postern_log::fatal(m) };
    let owner = ctx.config.get("mail_owner");
    let ids = match external::accounts(ctx, &a.user, a.group.as_deref(), &owner) {
        Ok(ids) => ids,
        Err(AccountError::UnknownUser(u)) => fatal(format!("unknown user name: {u}")),
        Err(AccountError::UnknownGroup(g)) => fatal(format!("unknown group name: {g}")),
        Err(e) => fatal(e.to_string()),
    };
    if let Some(refusal) = attrs::refusal(ids.uid, ids.gid, ids.owner_uid, ids.owner_gid) {
        fatal(refusal);
    }
    Some((ids.uid, ids.gid))
}
