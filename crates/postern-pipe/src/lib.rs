//! postern-pipe — delivery to external commands (Postfix's pipe(8)).
//!
//! A master.cf service names the command and how to call it:
//!
//! ```text
//! maildrop  unix  -  n  n  -  -  pipe
//!   flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}
//! ```
//!
//! with `maildrop_destination_recipient_limit = 1` in main.cf when the
//! command takes one recipient (flags `D` and `O` require it). Attributes
//! (`flags=BDFORXhqu.>`, `user=`, `directory=`, `eol=`, `null_sender=`,
//! `size=`, `argv=`) are parsed by [`postern_config::pipe`]; the macros
//! `${sender}`, `${recipient}`, `${original_recipient}`, `${nexthop}`,
//! `${user}`, `${extension}`, `${mailbox}`, `${domain}`, `${size}`,
//! `${queue_id}`, `${envid}`, `${client_address}`, `${client_hostname}`,
//! `${client_port}`, `${client_protocol}`, `${client_helo}` and
//! `${sasl_method}`, `${sasl_username}`, `${sasl_sender}` (empty when
//! unknown) are expanded per request ([`expand`]); the message goes to the
//! command's standard input ([`copy`]); the exit status becomes the DSN
//! status of every recipient of the request ([`status`]), logged with
//! `relay=<service>`:
//!
//! ```text
//! postfix/pipe[PID]: ID: to=<u@example.com>, relay=maildrop, delay=0.1,
//!     delays=0.05/0/0/0.05, dsn=2.0.0, status=sent (delivered via maildrop service)
//! ```
//!
//! # Security
//! The command never runs as root. In a root instance `user=` is required
//! and may not name root, group 0, or the `mail_owner` account or group
//! (each a fatal configuration error, as in Postfix); the command runs with
//! that uid and gid and no supplementary groups, in its own process group,
//! without a shell, with a clean environment. In a non-root instance (a
//! developer's or a test's) nobody can be switched to: `user=` must still
//! be given, but the command runs as the instance's user. `chroot=` is not
//! supported (fatal at start). This daemon itself runs with master's
//! privileges (master.cf unpriv column `n`), to be able to switch users.
//!
//! # Errors
//! A bad attribute is fatal at start, naming it in Postfix's words
//! (`unknown flag: Z`); an unknown macro defers each request (4.3.5) and
//! logs `file DIR/master.cf: service NAME: unknown macro name: "x"`. An
//! unreadable queue file defers (4.3.0). A command that runs longer than
//! `<service>_time_limit` (default `$command_time_limit`, 1000s) is killed
//! with its process group and the mail bounces with 5.3.0 "Command time
//! limit exceeded", as in Postfix.
//!
//! # Configuration
//! `<service>_time_limit`, `command_time_limit`, `export_environment`,
//! `recipient_delimiter`, `enable_original_recipient`, `mail_owner`,
//! `queue_directory`. qmgr applies `<service>_destination_recipient_limit`.

pub mod command;
pub mod copy;
pub mod deliver;
pub mod expand;
pub mod status;

use deliver::Pipe;
use postern_config::p;
use postern_config::pipe::{PipeAttrs, Template, parse_attrs};
use postern_server::agent;
use postern_server::external::{self, AccountError};
use postern_server::service::{Env, finish};
use postern_server::skeleton::{self, Context};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = skeleton::daemon_args(&args);
    let ctx = skeleton::init("pipe", &args);
    let pipe = setup(&ctx);
    let exit = agent::delivery_server(&ctx, Env::from_master(&ctx), move |ctx, req| {
        agent::with_queue_file(ctx, req, &pipe.service, |qf| {
            deliver::deliver(&pipe, req, qf)
        })
    });
    finish(&ctx, exit)
}

/// The uid and gid for the command (root instance only); exits on a bad `user=`.
fn command_ids(ctx: &Context, a: &PipeAttrs) -> Option<(u32, u32)> {
    if !postern_sys::privs::is_root() {
        return None;
    }
    let fatal = |m: String| -> ! { postern_log::fatal(m) };
    let owner_name = ctx.config.str(p::MAIL_OWNER);
    let ids = match external::accounts(ctx, &a.user, a.group.as_deref(), &owner_name) {
        Ok(ids) => ids,
        Err(AccountError::UnknownUser(u)) => {
            fatal(format!("get_service_attr: unknown username: {u}"))
        }
        Err(AccountError::UnknownGroup(g)) => {
            fatal(format!("get_service_attr: unknown group: {g}"))
        }
        Err(e) => fatal(e.to_string()),
    };
    let (uid, gid) = (ids.uid, ids.gid);
    let attr = "user= command-line attribute specifies";
    if uid == 0 {
        fatal(format!("{attr} root privileges"));
    }
    if ids.owner_uid == uid {
        fatal(format!("{attr} mail system owner {owner_name}"));
    }
    if gid == 0 {
        fatal(format!("{attr} privileged group id 0"));
    }
    if ids.owner_gid == gid {
        fatal(format!(
            "{attr} mail system owner {owner_name} group id {gid}"
        ));
    }
    Some((uid, gid))
}

/// Reads the service's attributes and settings; exits on a fatal error.
pub fn setup(ctx: &Context) -> Pipe {
    let attrs = match parse_attrs(&ctx.args) {
        Ok(a) => a,
        Err(e) => postern_log::fatal(e.to_string()),
    };
    if attrs.chroot.is_some() {
        postern_log::fatal("chroot= command-line attribute is not supported by Postern");
    }
    let mut config_error = None;
    let mut templates = Vec::new();
    for arg in &attrs.argv {
        match Template::parse(arg) {
            Ok(t) => templates.push(t),
            Err(e) => {
                config_error = Some(format!(
                    "file {}/master.cf: service {}: {e}",
                    ctx.config_dir.display(),
                    ctx.service
                ));
            }
        }
    }
    let cwd = attrs
        .directory
        .clone()
        .unwrap_or_else(|| ctx.config.str(p::QUEUE_DIRECTORY));
    Pipe {
        service: ctx.service.clone(),
        ids: command_ids(ctx, &attrs),
        templates,
        config_error,
        cwd: PathBuf::from(cwd),
        env: external::environment(ctx, ctx.config.list(p::EXPORT_ENVIRONMENT)),
        time_limit: external::time_limit(ctx, postern_config::p::COMMAND_TIME_LIMIT),
        delimiter: ctx.config.str(p::RECIPIENT_DELIMITER),
        enable_original: ctx.config.bool(p::ENABLE_ORIGINAL_RECIPIENT),
        attrs,
    }
}
