//! postern-local — the local delivery agent (Postfix's local(8)).
//!
//! * [`settings`]: the main.cf parameters local delivery reads.
//! * [`deliver`]: one delivery request → one result per recipient.
//! * [`recipient`]: the delivery switch for one address; [`expansion`]:
//!   `alias_maps`, `:include:` and `.forward`; [`alias`]: alias tables and
//!   address lists; [`expand`]: `$name` expansion of `forward_path` & co.
//! * [`mailbox`]: the user's mailbox, `mailbox_command`, `mailbox_transport`;
//!   [`command`]: `|command` deliveries; [`file`]: `/file` deliveries;
//!   [`forward`]: re-submitting forwarded addresses through cleanup.
//! * mailbox writing (Maildir, mbox) lives in `postern-mailbox`, shared with `virtual`.
//!
//! # Security
//! Run by root, the process stays root between deliveries and takes on each
//! recipient's identity for the delivery (effective ids for files, a child
//! with real ids for commands); see each module.
pub mod alias;
pub mod command;
pub mod deliver;
pub mod expand;
pub(crate) mod expansion;
pub(crate) mod file;
pub(crate) mod forward;
pub(crate) mod mailbox;
pub(crate) mod recipient;
pub mod settings;

use postern_config::Config;
use postern_ipc::proto::{CleanupReply, CleanupRequest, DeliverReply, DeliverRequest, RcptResult};
use postern_server::client;
use postern_server::service::{Env, finish};
use postern_server::{agent, skeleton};
use std::ffi::OsString;
use std::process::ExitCode;

/// [`deliver::Services`] over the real sockets.
struct IpcServices<'a> {
    cfg: &'a Config,
}

impl deliver::Services for IpcServices<'_> {
    fn pass(&self, req: &DeliverRequest) -> Result<RcptResult, String> {
        let reply = client::request(
            self.cfg,
            "private",
            &req.transport,
            &req.to_attrs(),
            1 << 20,
            client::ipc_timeout(self.cfg),
        )
        .map_err(|e| e.to_string())?;
        let r = DeliverReply::from_attrs(&reply).map_err(|e| e.to_string())?;
        r.results
            .into_iter()
            .next()
            .ok_or_else(|| "empty reply".to_string())
    }

    fn cleanup(&self, req: &CleanupRequest) -> Result<CleanupReply, String> {
        let reply = client::request(
            self.cfg,
            "public",
            "cleanup",
            &req.to_attrs(),
            1 << 16,
            client::ipc_timeout(self.cfg),
        )
        .map_err(|e| e.to_string())?;
        CleanupReply::from_attrs(&reply).map_err(|e| e.to_string())
    }
}

/// Daemon entry point: one delivery request per connection.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = skeleton::daemon_args(&args);
    let ctx = skeleton::init("local", &args);
    let s = settings::from_config(&ctx.config);
    let tables = deliver::Tables::open(&s);
    let exit = agent::delivery_server(&ctx, Env::from_master(&ctx), move |ctx, req| {
        agent::with_queue_file(ctx, req, "local", |qf| {
            let svc = IpcServices { cfg: &ctx.config };
            deliver::deliver(&s, &tables, &svc, req, qf)
        })
    });
    finish(&ctx, exit)
}
