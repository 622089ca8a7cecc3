//! The framed-request server: one request frame in, one reply frame out,
//! any number of times per connection (anvil, proxymap, flush).
//!
//! A [`Framed`] service answers requests; this skeleton does the rest on the
//! event server ([`crate::event`]): it reads each request with the shared
//! frame codec (`client::read_incoming`), refuses a frame over the
//! service's [`Framed::frame_limit`] (the connection is closed with a warning),
//! bounds the rest of a request and the reply write by `ipc_timeout` (a
//! client may wait as long as it likes between requests: smtpd keeps its
//! anvil connection), and calls the service on the blocking pool, so a table
//! lookup or a queue file move never stalls the other sessions. A client that
//! hangs up after fewer bytes than a frame header sent a trigger (master's
//! wake-up `W` to flush): [`Framed::wakeup`] gets the bytes.
//!
//! When the process stops accepting (a lookup table changed on disk, or
//! master's shutdown request), each session finishes the request it is
//! reading or answering, sends its reply, and is closed; a session waiting
//! for its next request is closed at once; the process returns when the last
//! session has ended (Postfix's drain: no client is cut off mid-request), and
//! its clients reconnect to a fresh process.
//!
//! # Security
//! Every frame is bounded by the service's limit before anything is
//! allocated; decoding is strict (`postern-ipc`); a malformed request closes
//! the connection. The service sees only decoded attribute lists.
//!
//! # Configuration
//! `ipc_timeout`, and the event server's `max_idle`.

use crate::client::{self, Head, Incoming};
use crate::event::{self, Drain, Io};
use crate::service::{Env, Exit};
use crate::skeleton::Context;
use postern_ipc::AttrList;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// A request/reply service (Postfix's `attr_scan`/`attr_print` servers).
pub trait Framed: Send + Sync + 'static {
    /// The largest request payload accepted, in bytes.
    fn frame_limit(&self) -> u64;

    /// The reply to one request; `None` closes the connection (a request the
    /// service cannot parse). Runs on the blocking pool: it may do file I/O.
    fn answer(&self, ctx: &Context, req: AttrList) -> Option<AttrList>;

    /// A client sent these few bytes (fewer than a frame header) and hung up:
    /// a wake-up trigger. Ignored unless the service overrides it.
    fn wakeup(&self, _ctx: &Context, _bytes: &[u8]) {}
}

/// Runs the framed-request server on a runtime of its own until it ends (see
/// [`crate::event::event_server`]): `per_process_limit` connections at once.
pub fn framed_server<S: Framed>(
    ctx: &Context,
    env: Env,
    per_process_limit: usize,
    svc: Arc<S>,
) -> Exit {
    event::on_runtime(run(Arc::new(ctx.clone()), env, per_process_limit, svc))
}

/// The framed-request server's loop, for a caller that has a runtime (a test).
pub async fn run<S: Framed>(
    ctx: Arc<Context>,
    env: Env,
    per_process_limit: usize,
    svc: Arc<S>,
) -> Exit {
    event::run_draining(ctx, env, per_process_limit, move |ctx, io, _peer, drain| {
        session(ctx, svc.clone(), io, drain)
    })
    .await
}

/// One connection: requests until the client hangs up, a request is refused, or
/// the process drains.
async fn session<S: Framed>(ctx: Arc<Context>, svc: Arc<S>, mut io: Box<dyn Io>, mut drain: Drain) {
    let timeout = client::ipc_timeout(&ctx.config);
    let what = format!("{} request", ctx.program);
    while !drain.draining() {
        // Between requests the client may take its time, but not past a drain.
        let mut head = Head::default();
        let first = tokio::select! {
            r = io.read(head.space()) => r,
            () = drain.wait() => return,
        };
        let incoming = match first {
            Ok(n) => {
                head.advance(n);
                tokio::time::timeout(
                    timeout,
                    client::read_incoming_async(&mut io, head, svc.frame_limit()),
                )
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
            }
            Err(e) => Err(e),
        };
        let req = match incoming {
            Ok(Incoming::Frame(req)) => req,
            Ok(Incoming::End) => return,
            Ok(Incoming::Short(bytes)) => {
                let (ctx, svc) = (ctx.clone(), svc.clone());
                let _panicked = tokio::task::spawn_blocking(move || svc.wakeup(&ctx, &bytes)).await;
                return;
            }
            Err(e) => {
                postern_log::warning(format!("read {what}: {e}"));
                return;
            }
        };
        let (ctx2, svc2) = (ctx.clone(), svc.clone());
        let reply = match tokio::task::spawn_blocking(move || svc2.answer(&ctx2, req)).await {
            Ok(Some(reply)) => reply,
            Ok(None) | Err(_) => return,
        };
        match tokio::time::timeout(timeout, client::write_frame_async(&mut io, &reply)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return postern_log::warning(format!("send {what} reply: {e}")),
            Err(_) => return postern_log::warning(format!("send {what} reply: timeout")),
        }
    }
}
