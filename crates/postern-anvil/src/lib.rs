//! postern-anvil — connection and rate counters (Postfix's `anvil(8)`).
//!
//! One anvil process per instance counts, per (service, client address):
//! simultaneous connections, and connections, messages, recipients, new TLS
//! sessions and AUTH attempts per `anvil_rate_time_unit`. smtpd processes keep
//! a connection open and send one `anvil/1` request per event; the reply
//! carries the counters, and smtpd decides (the limits are smtpd's
//! parameters). Counters of a client with no connection and no activity for
//! a full time unit are dropped. Every `anvil_status_update_time` anvil logs
//! the largest counts seen, as Postfix does.
//!
//! # Security
//! Only local processes reach anvil (private socket). Memory is bounded: at
//! most `MAX_CLIENTS` identities are kept; past that, the oldest idle ones go.
//!
//! # Configuration
//! `anvil_rate_time_unit`, `anvil_status_update_time`.

mod table;

use postern_ipc::proto::{AnvilReply, AnvilRequest};
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let ctx = postern_server::skeleton::init("anvil", &args);
    let unit = Duration::from_secs(
        ctx.config
            .get_time("anvil_rate_time_unit")
            .unwrap_or(60)
            .max(1),
    );
    let counters = Arc::new(Mutex::new(table::Table::new(unit)));
    postern_server::event::event_server(ctx, usize::MAX, move |_ctx, mut io, _peer| {
        let counters = counters.clone();
        async move {
            loop {
                let mut hdr = [0u8; 4];
                if io.read_exact(&mut hdr).await.is_err() {
                    return;
                }
                let Ok(len) = postern_ipc::decode_frame_len(hdr, 4096) else {
                    return;
                };
                let mut buf = vec![0u8; len];
                if io.read_exact(&mut buf).await.is_err() {
                    return;
                }
                let req = match postern_ipc::AttrList::decode(&buf)
                    .and_then(|a| AnvilRequest::from_attrs(&a))
                {
                    Ok(r) => r,
                    Err(e) => {
                        postern_log::warning(format!("bad anvil request: {e}"));
                        return;
                    }
                };
                let reply = {
                    let mut t = match counters.lock() {
                        Ok(t) => t,
                        Err(p) => p.into_inner(),
                    };
                    t.event(&req.op, &req.ident, std::time::Instant::now())
                };
                let frame = postern_ipc::encode_frame(&reply.to_attrs());
                if io.write_all(&frame).await.is_err() {
                    return;
                }
            }
        }
    })
}

/// Re-export for tests.
pub fn reply_for(count: u64, rate: u64) -> AnvilReply {
    AnvilReply { count, rate }
}
