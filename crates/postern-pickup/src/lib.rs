//! postern-pickup — local mail pickup (Postfix's `pickup(8)`).
//!
//! A trigger server: on every wake-up (master's `wakeup` timer, or postdrop's
//! trigger after a submission) it scans `maildrop/`, hands each complete file
//! to cleanup as one `cleanup/1` request, and removes the maildrop file only
//! after cleanup reported the new queue file durable. A file cleanup cannot
//! take now (temporary failure) stays for the next scan.
//!
//! # Security
//! Maildrop files come from local users and are not trusted: each is parsed
//! with a size limit; a file that does not parse, or whose name is not a queue
//! ID, is moved to `corrupt/` and logged — one bad file never stops the
//! others, and pickup never loops on it. Files still being written (no ready
//! bit, or `t.*` temporaries) are left alone.
//!
//! # Configuration
//! `queue_directory`, `message_size_limit` (bounds the file read), and
//! master.cf's wakeup time for the `pickup` service.

use postern_ipc::proto::{CleanupReply, CleanupRequest, CleanupStatus, Recipient, cleanup_flags};
use postern_queue::Queue;
use postern_server::client;
use postern_server::skeleton::{self, Context};
use std::ffi::OsString;
use std::process::ExitCode;

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let ctx = skeleton::init("pickup", &args);
    skeleton::trigger_server(ctx, true, |ctx, _trigger| scan(ctx))
}

fn scan(ctx: &Context) {
    let q = Queue::new(ctx.config.get("queue_directory"));
    quarantine_foreign_names(&q);
    let mut entries = match q.list("maildrop") {
        Ok(e) => e,
        Err(e) => {
            postern_log::warning(format!("scan maildrop: {e}"));
            return;
        }
    };
    entries.sort_by_key(|e| e.mtime);
    for e in entries.into_iter().filter(|e| e.ready) {
        if !pick(ctx, &q, &e.id) {
            break; // cleanup is unavailable: try again at the next wake-up
        }
    }
}

/// Moves files whose names are not queue IDs (and are not a writer's
/// temporary files) to corrupt/, under a fresh ID-shaped name.
fn quarantine_foreign_names(q: &Queue) {
    let Ok(rd) = std::fs::read_dir(q.dir("maildrop")) else {
        return;
    };
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        if postern_queue::valid_id(&name) || name.starts_with("t.") {
            continue;
        }
        let Ok(md) = ent.metadata() else { continue };
        use std::os::unix::fs::MetadataExt;
        let dest = q.dir("corrupt").join(format!("M{:X}", md.ino()));
        match std::fs::rename(ent.path(), &dest) {
            Ok(()) => postern_log::warning(format!(
                "maildrop/{}: not a queue file name; moved to corrupt/{}",
                name.escape_default(),
                dest.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )),
            Err(e) => {
                postern_log::warning(format!("rename maildrop/{}: {e}", name.escape_default()))
            }
        }
    }
}

/// Submits one maildrop file. Returns false when cleanup is unavailable.
fn pick(ctx: &Context, q: &Queue, id: &str) -> bool {
    let limit = client::content_frame_limit(&ctx.config);
    let qf = match q.read("maildrop", id, limit) {
        Ok(qf) => qf,
        Err(postern_queue::ReadError::NotFound(_)) => return true,
        Err(e @ postern_queue::ReadError::Corrupt { .. }) => {
            postern_log::warning(format!("{id}: {e}; moving to corrupt/"));
            if let Err(e) = postern_queue_admin::move_file(q, "maildrop", "corrupt", id) {
                postern_log::warning(format!("{id}: {e}"));
            }
            return true;
        }
        Err(e) => {
            postern_log::warning(format!("{id}: {e}"));
            return true;
        }
    };
    let flags = qf
        .attr("flags")
        .and_then(|f| f.parse::<u32>().ok())
        .unwrap_or(0);
    let uid = qf.attr("origin_uid").unwrap_or("?").to_string();
    let req = CleanupRequest {
        flags: (flags & (cleanup_flags::EXTRACT_RCPTS | cleanup_flags::HOLD))
            | cleanup_flags::BOUNCE_ON_REJECT
            | cleanup_flags::from_receive_override_options(
                &ctx.config.get("receive_override_options"),
            ),
        sender: qf.sender.clone(),
        fullname: qf.fullname.clone(),
        arrival: qf.arrival,
        recipients: qf
            .pending()
            .map(|r| Recipient {
                address: r.address.clone(),
                original: r.original.clone(),
                orcpt: r.orcpt.clone(),
                notify: r.notify,
                offset: 0,
            })
            .collect(),
        attrs: qf
            .attrs
            .iter()
            .filter(|(n, _)| n != "flags")
            .cloned()
            .collect(),
        content: qf.content,
    };
    let timeout = client::ipc_timeout(&ctx.config);
    let reply = client::request(
        &ctx.config,
        "public",
        "cleanup",
        &req.to_attrs(),
        1 << 16,
        timeout,
    )
    .map_err(|e| e.to_string())
    .and_then(|a| CleanupReply::from_attrs(&a).map_err(|e| e.to_string()));
    match reply {
        Ok(r) if r.status == CleanupStatus::Ok => {
            postern_log::info(format!("{}: uid={uid} from=<{}>", r.queue_id, req.sender));
            if let Err(e) = postern_queue_admin::remove(q, "maildrop", id)
                && !e.is_not_found()
            {
                postern_log::warning(format!("remove maildrop/{id}: {e}"));
            }
            true
        }
        Ok(r) if r.status.is_permanent() => {
            // cleanup queued nothing and could not bounce: keep the evidence.
            postern_log::warning(format!("{id}: {}; moving to corrupt/", r.reason));
            if let Err(e) = postern_queue_admin::move_file(q, "maildrop", "corrupt", id) {
                postern_log::warning(format!("{id}: {e}"));
            }
            true
        }
        Ok(r) => {
            postern_log::warning(format!("{id}: cleanup: {}; will retry", r.reason));
            false
        }
        Err(e) => {
            postern_log::warning(format!("{id}: {e}; will retry"));
            false
        }
    }
}
