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
//! able to switch users, but while no command runs its effective ids are `mail_owner`'s
//! (as Postfix's spawn); it never runs in a chroot jail (its commands lie outside it).
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
use postern_config::p;
use postern_server::external::{self, AccountError, Accounts};
use postern_server::service::{self, Env, Service};
use postern_server::skeleton::{self, Context};
use postern_sys::privs::EffectiveIds;
use std::ffi::OsString;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

/// The spawn service: one command per connection.
pub struct Spawn {
    /// What runs for each connection.
    pub cmd: run::Command,
    /// `mail_owner`'s (uid, gid) in a root instance: the effective ids between commands.
    pub owner: Option<(u32, u32)>,
    /// Holds `owner`'s effective ids while no command runs.
    dropped: Option<EffectiveIds>,
}

impl Service for Spawn {
    /// Between commands the process works with `mail_owner`'s effective ids (Postfix's
    /// spawn drops them the same way); root's are needed only to start a command as
    /// `user=` and to kill it at its time limit.
    fn on_idle(&mut self, _ctx: &Context) {
        if let (Some((uid, gid)), None) = (self.owner, &self.dropped) {
            match EffectiveIds::switch_ids(uid, gid) {
                Ok(ids) => self.dropped = Some(ids),
                Err(e) => postern_log::fatal(e),
            }
        }
    }

    fn serve(&mut self, _ctx: &Context, stream: UnixStream) {
        if let Some(ids) = self.dropped.take()
            && let Err(e) = ids.finish()
        {
            postern_log::fatal(e);
        }
        run::serve(&self.cmd, stream);
    }
}

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = skeleton::daemon_args(&args);
    let ctx = skeleton::init("spawn", &args);
    let mut svc = setup(&ctx);
    let env = Env::from_master(&ctx);
    service::finish(&ctx, service::single_server(&ctx, env, &mut svc))
}

/// Reads the service's attributes and settings; exits with a fatal log line on an error.
pub fn setup(ctx: &Context) -> Spawn {
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
    let accounts = command_ids(ctx, &attrs);
    let cmd = run::Command {
        ids: accounts.map(|a| (a.uid, a.gid)),
        cwd: ctx.config.str(p::QUEUE_DIRECTORY).into(),
        env: external::environment(ctx, ctx.config.list(p::EXPORT_ENVIRONMENT)),
        time_limit: external::time_limit(ctx, postern_config::p::COMMAND_TIME_LIMIT),
        argv: attrs.argv,
    };
    Spawn {
        cmd,
        owner: accounts.map(|a| (a.owner_uid, a.owner_gid)),
        dropped: None,
    }
}

/// The ids of the command and of `mail_owner` (root instance only); fatal on a refused
/// account.
fn command_ids(ctx: &Context, a: &Attrs) -> Option<Accounts> {
    if !postern_sys::privs::is_root() {
        return None;
    }
    let fatal = |m: String| -> ! { postern_log::fatal(m) };
    let owner = ctx.config.str(p::MAIL_OWNER);
    let ids = match external::accounts(ctx, &a.user, a.group.as_deref(), &owner) {
        Ok(ids) => ids,
        Err(AccountError::UnknownUser(u)) => fatal(format!("unknown user name: {u}")),
        Err(AccountError::UnknownGroup(g)) => fatal(format!("unknown group name: {g}")),
        Err(e) => fatal(e.to_string()),
    };
    if let Some(refusal) = attrs::refusal(ids.uid, ids.gid, ids.owner_uid, ids.owner_gid) {
        fatal(refusal);
    }
    Some(ids)
}
