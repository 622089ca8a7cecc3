//! postern-cleanup — canonicalize and enqueue (Postfix's `cleanup(8)`).
//!
//! Every message enters the queue through cleanup: pickup (local
//! submissions), smtpd and qmqpd (network), and bounce (notices) each send one
//! `cleanup/1` request. cleanup checks limits, fixes the header (see
//! [`process`]), writes ONE queue file into `incoming/` (or `hold/`) with the
//! durable sequence of `postern-queue-admin` (file fsync, then directory
//! fsync), and only then answers with the queue ID. Finally it wakes qmgr.
//!
//! When the submitter has no client to tell (local submission, flag
//! `BOUNCE_ON_REJECT`), a permanent refusal (message too big, no recipients)
//! is queued anyway, header only, marked with a `cleanup_reject` attribute:
//! qmgr then bounces it to the sender with that reason, as Postfix's cleanup
//! does for pickup.
//!
//! # Security
//! Requests are size-bounded frames decoded strictly; content is never
//! interpreted beyond the header. A write error removes the partial file and
//! answers "defer": nothing is acknowledged that is not durable.
//!
//! # Configuration
//! `myhostname`, `myorigin`, `mail_name`, `append_at_myorigin`,
//! `message_size_limit`, `header_size_limit`, `hopcount_limit`,
//! `duplicate_filter_limit`, `queue_directory`, `ipc_timeout`.

pub mod process;

use postern_ipc::proto::{CleanupReply, CleanupRequest, CleanupStatus, cleanup_flags, trigger};
use postern_queue::Queue;
use postern_server::client;
use postern_server::skeleton::{self, Context};
use process::{Now, Refusal, Settings};
use std::ffi::OsString;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let ctx = skeleton::init("cleanup", &args);
    let settings = settings(&ctx);
    skeleton::single_server(ctx, move |ctx, stream| serve(ctx, &settings, stream))
}

fn settings(ctx: &Context) -> Settings {
    let c = &ctx.config;
    Settings {
        myhostname: c.get("myhostname"),
        myorigin: c.get("myorigin"),
        mail_name: c.get("mail_name"),
        append_at_myorigin: c.get_bool("append_at_myorigin").unwrap_or(true),
        message_size_limit: c.get_int("message_size_limit").unwrap_or(10_240_000).max(0) as u64,
        header_size_limit: c.get_int("header_size_limit").unwrap_or(102_400).max(0) as u64,
        hopcount_limit: c.get_int("hopcount_limit").unwrap_or(50).max(0) as u64,
        duplicate_filter_limit: c.get_int("duplicate_filter_limit").unwrap_or(1000).max(0) as usize,
    }
}

fn serve(ctx: &Context, s: &Settings, mut stream: UnixStream) {
    let timeout = client::ipc_timeout(&ctx.config);
    if let Err(e) = stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
    {
        postern_log::warning(format!("set socket timeout: {e}"));
        return;
    }
    let req = match client::read_frame(&mut stream, client::content_frame_limit(&ctx.config)) {
        Ok(Some(a)) => match CleanupRequest::from_attrs(&a) {
            Ok(r) => r,
            Err(e) => {
                postern_log::warning(format!("bad cleanup request: {e}"));
                return;
            }
        },
        Ok(None) => return,
        Err(e) => {
            postern_log::warning(format!("read cleanup request: {e}"));
            return;
        }
    };
    let reply = enqueue(ctx, s, &req);
    if let Err(e) = client::write_frame(&mut stream, &reply.to_attrs()) {
        // The client did not learn the outcome; if the file was written it will be
        // delivered and the client may submit again: at least once, never lost.
        postern_log::warning(format!("{}: send reply: {e}", reply.queue_id));
    }
}

fn now() -> Now {
    let z = jiff::Zoned::now();
    Now {
        secs: z.timestamp().as_second(),
        offset: z.offset().seconds(),
        zone: z.strftime("%Z").to_string(),
    }
}

fn refuse(r: Refusal) -> CleanupReply {
    CleanupReply {
        status: r.status,
        queue_id: String::new(),
        reason: r.reason,
    }
}

fn enqueue(ctx: &Context, s: &Settings, req: &CleanupRequest) -> CleanupReply {
    match process::check(req, s) {
        Ok(()) => write(ctx, s, req, None),
        Err(r) if req.flags & cleanup_flags::BOUNCE_ON_REJECT != 0 => {
            let mut header_only = req.clone();
            let end = postern_mail::header::header_end(&req.content);
            header_only.content =
                req.content[..end.header_len.min(s.header_size_limit as usize)].to_vec();
            header_only.content.push(b'\n');
            write(ctx, s, &header_only, Some(r))
        }
        Err(r) => refuse(r),
    }
}

fn write(
    ctx: &Context,
    s: &Settings,
    req: &CleanupRequest,
    reject: Option<Refusal>,
) -> CleanupReply {
    let q = Queue::new(ctx.config.get("queue_directory"));
    let target = if req.flags & cleanup_flags::HOLD != 0 {
        "hold"
    } else {
        "incoming"
    };
    let newfile = match postern_queue_admin::create(&q, target) {
        Ok(f) => f,
        Err(e) => {
            postern_log::warning(format!("create queue file: {e}"));
            return defer("4.3.0 queue file write error");
        }
    };
    if req.flags & cleanup_flags::DISCARD != 0 {
        // Dropping `newfile` removes the file: nothing is queued.
        postern_log::info(format!("{}: discarded", newfile.id));
        return CleanupReply {
            status: CleanupStatus::Ok,
            queue_id: newfile.id.clone(),
            reason: String::new(),
        };
    }
    let now = now();
    let mut qf = match process::build(req, s, &newfile.id, &now) {
        Ok(qf) => qf,
        Err(r)
            if r.status == CleanupStatus::NoRecipients
                && req.flags & cleanup_flags::BOUNCE_ON_REJECT != 0
                && !req.sender.is_empty() =>
        {
            // Tell the sender rather than dropping the message silently.
            let mut to_sender = req.clone();
            to_sender.recipients = vec![postern_ipc::proto::Recipient::new(req.sender.clone())];
            to_sender.flags &= !cleanup_flags::EXTRACT_RCPTS;
            match process::build(&to_sender, s, &newfile.id, &now) {
                Ok(mut qf) => {
                    qf.attrs.push((
                        "cleanup_reject".into(),
                        "5.1.3 No recipient addresses found in message header".into(),
                    ));
                    qf
                }
                Err(r) => return refuse(r),
            }
        }
        Err(r) => return refuse(r),
    };
    if let Some(r) = reject {
        qf.attrs.push(("cleanup_reject".into(), r.reason));
    }
    let bytes = postern_qfile::encode(&mut qf);
    let id = match newfile.commit(&bytes, 0o700) {
        Ok(id) => id,
        Err(e) => {
            postern_log::warning(format!("write queue file: {e}"));
            let reason = if e.is_no_space() {
                "4.3.4 insufficient system storage"
            } else {
                "4.3.0 queue file write error"
            };
            return defer(reason);
        }
    };
    let mid = postern_mail::header::find(&qf.content, "Message-Id")
        .map(|f| f.value_string())
        .unwrap_or_default();
    postern_log::info(format!("{id}: message-id={mid}"));
    if target == "incoming"
        && let Err(e) = client::trigger(&ctx.config, "public", "qmgr", &[trigger::SCAN_INCOMING])
    {
        postern_log::warning(format!(
            "{id}: trigger qmgr: {e} (the next queue scan will find the message)"
        ));
    }
    CleanupReply {
        status: CleanupStatus::Ok,
        queue_id: id,
        reason: String::new(),
    }
}

fn defer(reason: &str) -> CleanupReply {
    CleanupReply {
        status: CleanupStatus::Defer,
        queue_id: String::new(),
        reason: reason.to_string(),
    }
}
