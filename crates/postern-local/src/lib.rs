//! postern-local — the local delivery agent.
//!
//! * [`settings`]: the main.cf parameters local delivery reads.
//! * [`deliver`]: one delivery request → one result per recipient.
//! * mailbox writing (Maildir, mbox) lives in `postern-mailbox`, shared with `virtual`.
pub mod deliver;
pub mod settings;

use postern_ipc::proto::{Action, DeliverReply, DeliverRequest, RcptResult};
use postern_server::client;
use postern_server::skeleton;
use std::ffi::OsString;
use std::process::ExitCode;

/// Daemon entry point: one delivery request per connection.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let ctx = skeleton::init("local", &args);
    let s = settings::from_config(&ctx.config);
    skeleton::single_server(ctx, move |ctx, mut stream| {
        let Some(attrs) = skeleton::read_request(ctx, &mut stream, 1 << 24, "delivery request")
        else {
            return;
        };
        let req = match DeliverRequest::from_attrs(&attrs) {
            Ok(r) => r,
            Err(e) => return postern_log::warning(format!("bad delivery request: {e}")),
        };
        let q = postern_queue::Queue::new(ctx.config.get("queue_directory"));
        let reply = match q.read(
            &req.queue_name,
            &req.queue_id,
            client::content_frame_limit(&ctx.config),
        ) {
            Ok(qf) => deliver::deliver(&s, &req, &qf),
            Err(e) => {
                postern_log::warning(format!("{}: {e}", req.queue_id));
                defer_all(&req, &format!("cannot read queue file: {e}"))
            }
        };
        if let Err(e) = client::write_frame(&mut stream, &reply.to_attrs()) {
            postern_log::warning(format!("{}: send reply: {e}", req.queue_id));
        }
    })
}

fn defer_all(req: &DeliverRequest, text: &str) -> DeliverReply {
    DeliverReply {
        results: req
            .recipients
            .iter()
            .map(|r| RcptResult {
                recipient: r.clone(),
                action: Action::Defer,
                dsn: "4.3.0".into(),
                text: text.to_string(),
                relay: "local".into(),
            })
            .collect(),
    }
}
