//! postern-bounce — the bounce/defer/trace service (Postfix's `bounce(8)`)
//! and its delivery status notifications.
//!
//! * [`dsn`]: composes RFC 3464 notifications (pure; no I/O).
//! * [`service`]: the per-message status logs and the notices (master.cf
//!   services `bounce`, `defer` and `trace` all run this program).
//!
//! # Configuration
//! `bounce_size_limit`, `double_bounce_sender`, `2bounce_notice_recipient`,
//! `myhostname`, `myorigin`, `queue_directory`, `ipc_timeout`.
pub mod dsn;
pub mod service;

use postern_ipc::proto::BounceRequest;
use postern_server::client;
use postern_server::service::{Env, finish};
use postern_server::skeleton;
use std::ffi::OsString;
use std::process::ExitCode;

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = skeleton::daemon_args(&args);
    let ctx = skeleton::init("bounce", &args);
    let mut serve = |ctx: &skeleton::Context, mut stream: std::os::unix::net::UnixStream| {
        let Some(attrs) = skeleton::read_request(ctx, &mut stream, 1 << 24, "bounce request")
        else {
            return;
        };
        let req = match BounceRequest::from_attrs(&attrs) {
            Ok(r) => r,
            Err(e) => return postern_log::warning(format!("bad bounce request: {e}")),
        };
        let reply = service::handle(&ctx.config, &req);
        if let Err(e) = client::write_frame(&mut stream, &reply.to_attrs()) {
            postern_log::warning(format!("{}: send reply: {e}", req.queue_id));
        }
    };
    let exit = postern_server::service::single_server(&ctx, Env::from_master(&ctx), &mut serve);
    finish(&ctx, exit)
}
