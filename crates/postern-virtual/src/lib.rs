//! postern-virtual — the virtual mailbox delivery agent (Postfix's virtual(8)).
//!
//! Delivers mail for `$virtual_mailbox_domains` (qmgr routes that address
//! class to `$virtual_transport`, default `virtual`) into Maildir or mbox
//! mailboxes named by tables, owned by numeric ids that need no system
//! account:
//!
//! ```text
//! virtual_mailbox_domains = example.com
//! virtual_mailbox_base = /var/mail/vhosts
//! virtual_mailbox_maps = texthash:/etc/postern/vmailbox   # joe@example.com  example.com/joe/
//! virtual_uid_maps = static:5000
//! virtual_gid_maps = static:5000
//! ```
//!
//! * [`settings`]: the parameters, read once; [`maps`]: the tables and
//!   their lookup order (`user+ext@domain`, `user@domain`, `@domain`);
//! * [`deliver`]: one result per recipient, logged with `relay=virtual`
//!   (`status=sent (delivered to maildir)`, `status=bounced (unknown user:
//!   "x@example.com")`).
//!
//! Mailbox writing (Maildir, locked mbox) is `postern-mailbox`, shared with
//! `local`.
//!
//! # Security
//! master.cf runs this agent with master's privileges (unpriv column `n`):
//! as root it writes every mailbox with the mapped uid/gid as effective ids
//! (never below `virtual_minimum_uid`, never gid 0) and returns to root
//! after each delivery; failing to return is fatal. Not as root (a
//! developer's or a test's instance) it can write only as itself: a
//! recipient whose maps give another uid or gid is deferred with a reason
//! saying so. See [`deliver`] for symlinks and ownership.
//!
//! # Errors
//! Unknown recipients bounce (5.1.1). Table and configuration problems defer
//! (4.3.5) and log a warning with the details; mailbox problems defer or
//! bounce as `postern-mailbox` maps them (a full disk 4.3.0, over quota
//! 4.2.2, over `virtual_mailbox_limit` 5.2.2). As in Postfix, the agent
//! refuses to start when `virtual_mailbox_limit` is below
//! `message_size_limit`.

pub mod deliver;
pub mod maps;
pub mod settings;
#[cfg(test)]
mod tests;

use postern_server::agent;
use postern_server::service::{Env, finish};
use postern_server::skeleton;
use std::ffi::OsString;
use std::process::ExitCode;

/// Daemon entry point: one delivery request per connection.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = skeleton::daemon_args(&args);
    let ctx = skeleton::init("virtual", &args);
    if let Some(a) = ctx.args.first() {
        postern_log::fatal(format!("unexpected command-line argument: {a}"));
    }
    let s = settings::from_config(&ctx.config);
    if let Err(e) = settings::check_limits(&ctx.config, &s) {
        postern_log::fatal(e);
    }
    let exit = agent::delivery_server(&ctx, Env::from_master(&ctx), move |ctx, req| {
        agent::with_queue_file(ctx, req, "virtual", |qf| deliver::deliver(&s, req, qf))
    });
    finish(&ctx, exit)
}
