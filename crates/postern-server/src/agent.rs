//! The server side of `deliver/1` for delivery agents: one delivery request
//! per connection, one [`RcptResult`] per recipient, each logged as Postfix's
//! agents log it.
//!
//! A delivery agent (local, virtual, pipe, discard, error, smtp/lmtp) is one
//! callback plugged into [`delivery_server`]: it gets the decoded [`DeliverRequest`] and
//! returns the reply; this module reads the request frame (with the
//! `ipc_timeout` deadline), decodes it strictly, and writes the reply.
//! [`log_result`] writes the `to=<…>, relay=…, delay=…, dsn=…, status=…`
//! line for one result.
//!
//! # Security
//! The request comes from qmgr over a private socket; it is still decoded
//! strictly (a malformed frame is logged and dropped: qmgr then defers the
//! recipients itself). Agents never move or delete queue files.

use crate::client;
use crate::service::{self, Env, Exit};
use crate::skeleton::{self, Context};
use postern_config::p;
use postern_ipc::proto::{Action, DeliverReply, DeliverRequest, RcptResult, Recipient};
use std::os::unix::net::UnixStream;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest delivery request frame accepted (recipient lists can be long).
pub const REQUEST_LIMIT: u64 = 1 << 24;

/// Serves delivery requests on `env` until the single server stops (see
/// [`crate::service::single_server`]); `deliver` answers each decoded request.
pub fn delivery_server(
    ctx: &Context,
    env: Env,
    mut deliver: impl FnMut(&Context, &DeliverRequest) -> DeliverReply,
) -> Exit {
    postern_log::delivery::set_soft_bounce(ctx.config.bool(p::SOFT_BOUNCE));
    let mut serve = move |ctx: &Context, mut stream: UnixStream| {
        let Some(attrs) =
            skeleton::read_request(ctx, &mut stream, REQUEST_LIMIT, "delivery request")
        else {
            return;
        };
        let req = match DeliverRequest::from_attrs(&attrs) {
            Ok(r) => r,
            Err(e) => return postern_log::warning(format!("bad delivery request: {e}")),
        };
        let reply = deliver(ctx, &req);
        if let Err(e) = client::write_frame(&mut stream, &reply.to_attrs()) {
            postern_log::warning(format!("{}: send reply: {e}", req.queue_id));
        }
    };
    service::single_server(ctx, env, &mut serve)
}

/// Reads the request's queue file and hands it to `deliver`. A file that cannot be read
/// defers every recipient (4.3.0, `relay` in the log), so the mail stays queued.
pub fn with_queue_file(
    ctx: &Context,
    req: &DeliverRequest,
    relay: &str,
    deliver: impl FnOnce(&postern_qfile::QueueFile) -> DeliverReply,
) -> DeliverReply {
    let q = postern_queue::Queue::new(ctx.config.str(p::QUEUE_DIRECTORY));
    match q.read(
        &req.queue_name,
        &req.queue_id,
        client::content_frame_limit(&ctx.config),
    ) {
        Ok(qf) => deliver(&qf),
        Err(e) => {
            postern_log::warning(format!("{}: {e}", req.queue_id));
            let text = format!("cannot read queue file: {e}");
            same_for_all(req, now(), Action::Defer, "4.3.0", &text, relay)
        }
    }
}

/// The checks Postfix's discard and error agents make before acting on the next hop
/// alone: the queue file must still exist (4.3.0 otherwise) and the next hop must not be
/// empty (4.3.5). `Some(reply)` defers every recipient.
pub fn nexthop_precheck(ctx: &Context, req: &DeliverRequest, start: f64) -> Option<DeliverReply> {
    let q = postern_queue::Queue::new(ctx.config.str(p::QUEUE_DIRECTORY));
    let exists = q
        .path(&req.queue_name, &req.queue_id)
        .map_err(|e| e.to_string())
        .and_then(|p| std::fs::metadata(&p).map_err(|e| format!("{}: {e}", p.display())));
    if let Err(e) = exists {
        postern_log::warning(format!("{}: open queue file: {e}", req.queue_id));
        let text = "cannot open queue file";
        return Some(same_for_all(
            req,
            start,
            Action::Defer,
            "4.3.0",
            text,
            "none",
        ));
    }
    if req.nexthop.trim().is_empty() {
        postern_log::warning(format!("{}: empty nexthop hostname", req.queue_id));
        let text = "mail system configuration error";
        return Some(same_for_all(
            req,
            start,
            Action::Defer,
            "4.3.5",
            text,
            "none",
        ));
    }
    None
}

/// Seconds since the epoch, as a float (for `delay=` and `delays=`).
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Logs one result: the delivery attempt started at `start` and ended at `end`.
pub fn log_result(req: &DeliverRequest, r: &RcptResult, start: f64, end: f64) {
    let active = req.active_since.max(req.arrival);
    let line =
        postern_log::delivery::format_delivery_line(&postern_log::delivery::DeliveryRecord {
            queue_id: &req.queue_id,
            to: &r.recipient.address,
            orig_to: &r.recipient.original,
            relay: &r.relay,
            delay: end - req.arrival,
            delays: [
                active - req.arrival,
                (start - active).max(0.0),
                0.0,
                (end - start).max(0.0),
            ],
            dsn: &r.dsn,
            status: r.action.as_str(),
            text: &r.text,
        });
    postern_log::info(line);
}

/// One recipient's result.
pub fn result(rcpt: &Recipient, action: Action, dsn: &str, text: &str, relay: &str) -> RcptResult {
    RcptResult {
        recipient: rcpt.clone(),
        action,
        dsn: dsn.to_string(),
        text: text.to_string(),
        relay: relay.to_string(),
    }
}

/// The same result for every recipient of `req`, each logged.
pub fn same_for_all(
    req: &DeliverRequest,
    start: f64,
    action: Action,
    dsn: &str,
    text: &str,
    relay: &str,
) -> DeliverReply {
    let end = now();
    let results = req
        .recipients
        .iter()
        .map(|rcpt| {
            let r = result(rcpt, action, dsn, text, relay);
            log_result(req, &r, start, end);
            r
        })
        .collect();
    DeliverReply { results }
}
