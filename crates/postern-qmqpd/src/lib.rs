//! postern-qmqpd — the QMQP server (Postfix's `qmqpd(8)`).
//!
//! QMQP carries one message per connection: a netstring holding the message,
//! the sender and the recipients (see [`netstring`]). The message goes to
//! cleanup like any other; the reply is `K` (queued), `Z` (try again) or `D`
//! (refused).
//!
//! # Security
//! Only clients in `qmqpd_authorized_clients` may send (empty: nobody). The
//! request is bounded by `message_size_limit` and `qmqpd_timeout`.
//!
//! # Configuration
//! `qmqpd_authorized_clients`, `qmqpd_timeout`, `qmqpd_error_delay`,
//! `message_size_limit`, `content_filter` (recorded for every message).

pub mod netstring;

use postern_config::p;
use postern_ipc::proto::{CleanupReply, CleanupRequest, CleanupStatus, Recipient};
use postern_server::event::Io;
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = postern_server::skeleton::daemon_args(&args);
    // The client list (it may name tables) is opened before a chroot (master.cf).
    let (ctx, (), clients) = postern_server::skeleton::init_open(
        "qmqpd",
        &args,
        |_| (),
        |ctx| {
            postern_table::NetworkList::new(
                &ctx.config.str(p::QMQPD_AUTHORIZED_CLIENTS),
                &Default::default(),
            )
        },
    );
    let clients = match clients {
        Ok(l) => Arc::new(l),
        Err(e) => postern_log::fatal(format!("qmqpd_authorized_clients: {e}")),
    };
    let env = postern_server::service::Env::from_master(&ctx);
    let exit = postern_server::event::event_server(&ctx, env, 1000, move |ctx, io, peer| {
        let clients = clients.clone();
        async move { serve(&ctx.config, &clients, io, peer.addr.map(|a| a.ip())).await }
    });
    postern_server::service::finish(&ctx, exit)
}

async fn serve(
    cfg: &postern_config::Config,
    clients: &postern_table::NetworkList,
    mut io: Box<dyn Io>,
    addr: Option<std::net::IpAddr>,
) {
    let shown = addr
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".into());
    let name = if addr.is_some_and(|a| a.is_loopback()) {
        "localhost"
    } else {
        "unknown"
    };
    let client = format!("{name}[{shown}]");
    postern_log::info(format!("connect from {client}"));
    let timeout = cfg.time(p::QMQPD_TIMEOUT).max(Duration::from_secs(1));
    let answer = if !addr.is_some_and(|a| clients.matches(a).unwrap_or(false)) {
        postern_log::warning(format!(
            "{client}: client is not in qmqpd_authorized_clients"
        ));
        netstring::reply(
            'D',
            "Error: this server does not accept QMQP mail from your host",
        )
    } else {
        match tokio::time::timeout(timeout, receive(cfg, &mut io)).await {
            Ok(Ok(req)) => submit(cfg, req, &client, &shown).await,
            Ok(Err(r)) => r,
            Err(_) => {
                postern_log::info(format!("timeout after QMQP from {client}"));
                netstring::reply('Z', "Error: timeout exceeded")
            }
        }
    };
    if answer.get(answer.iter().position(|&b| b == b':').unwrap_or(0) + 1) != Some(&b'K') {
        tokio::time::sleep(cfg.time(p::QMQPD_ERROR_DELAY)).await;
    }
    if let Err(e) = io.write_all(&answer).await {
        postern_log::info(format!("write reply to {client}: {e}"));
    }
    postern_log::info(format!("disconnect from {client}"));
}

async fn receive(
    cfg: &postern_config::Config,
    io: &mut Box<dyn Io>,
) -> Result<netstring::Request, Vec<u8>> {
    let msl = usize::try_from(cfg.size(p::MESSAGE_SIZE_LIMIT)).unwrap_or(usize::MAX);
    let limit = if msl == 0 {
        1 << 31
    } else {
        msl.saturating_add(1 << 20)
    };
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 16384];
    let (start, len) = loop {
        match netstring::header(&buf, limit) {
            Ok(Some(h)) => break h,
            Ok(None) => {}
            Err(netstring::Error::TooBig) => {
                return Err(netstring::reply('D', "Error: message too large"));
            }
            Err(_) => return Err(netstring::reply('D', "Error: malformed QMQP request")),
        }
        let n = io
            .read(&mut chunk)
            .await
            .map_err(|_| netstring::reply('Z', "Error: read error"))?;
        if n == 0 {
            return Err(netstring::reply('Z', "Error: lost connection"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    while buf.len() < start + len + 1 {
        let n = io
            .read(&mut chunk)
            .await
            .map_err(|_| netstring::reply('Z', "Error: read error"))?;
        if n == 0 {
            return Err(netstring::reply('Z', "Error: lost connection"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if buf[start + len] != b',' {
        return Err(netstring::reply('D', "Error: malformed QMQP request"));
    }
    netstring::parse(&buf[start..start + len])
        .map_err(|_| netstring::reply('D', "Error: malformed QMQP request"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

async fn submit(
    cfg: &postern_config::Config,
    req: netstring::Request,
    client: &str,
    addr: &str,
) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let content: Vec<u8> = req
        .message
        .iter()
        .copied()
        .filter(|&b| b != b'\r')
        .collect();
    let mut creq = CleanupRequest {
        flags: postern_ipc::proto::cleanup_flags::from_receive_override_options(
            &cfg.str(p::RECEIVE_OVERRIDE_OPTIONS),
        ),
        sender: text(&req.sender),
        fullname: String::new(),
        arrival: (now.as_secs(), now.subsec_micros()),
        recipients: req
            .recipients
            .iter()
            .map(|r| Recipient::new(text(r)))
            .collect(),
        attrs: vec![
            ("rewrite_context".into(), "remote".into()),
            (
                "client_name".into(),
                client.split('[').next().unwrap_or("unknown").into(),
            ),
            ("client_address".into(), addr.into()),
            ("protocol".into(), "QMQP".into()),
        ],
        content,
    };
    // content_filter, as Postfix's qmqpd records it for cleanup.
    let content_filter = cfg.str(p::CONTENT_FILTER);
    if !content_filter.is_empty() {
        creq.attrs.push(("filter".into(), content_filter));
    }
    let timeout = postern_server::client::ipc_timeout(cfg);
    let r = postern_server::client::request_async(
        cfg,
        "public",
        "cleanup",
        &creq.to_attrs(),
        1 << 16,
        timeout,
    )
    .await
    .map_err(|e| e.to_string())
    .and_then(|a| CleanupReply::from_attrs(&a).map_err(|e| e.to_string()));
    match r {
        Ok(r) if r.status == CleanupStatus::Ok => {
            postern_log::info(format!("{}: client={client}", r.queue_id));
            netstring::reply('K', &format!("Ok: queued as {}", r.queue_id))
        }
        Ok(r) if r.status.is_permanent() => netstring::reply('D', &format!("Error: {}", r.reason)),
        Ok(r) => netstring::reply('Z', &format!("Error: {}", r.reason)),
        Err(e) => {
            postern_log::warning(format!("cleanup service: {e}"));
            netstring::reply('Z', "Error: queue file write error")
        }
    }
}
