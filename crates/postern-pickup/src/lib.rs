//! postern-pickup — local mail pickup (Postfix's `pickup(8)`).
//!
//! A trigger server: on every wake-up (master's `wakeup` timer, or postdrop's
//! trigger after a submission) it scans `maildrop/`, hands each complete file
//! to cleanup as one `cleanup/1` request, and removes the maildrop file only
//! after cleanup reported the new queue file durable. A file cleanup cannot
//! take now (temporary failure) stays for the next scan.
//!
//! # Security
//! Maildrop files come from local users and pickup trusts nothing in them.
//! Who submitted is the file's owner (`st_uid`; postdrop creates the file as
//! the caller's real uid), never a record: pickup itself gives cleanup
//! `origin_uid` and `origin_user` and logs `ID: uid=N from=<sender>`. Only
//! the attributes a submission may carry are accepted (`flags`, of which
//! only "extract recipients" and "hold" count, `envid`, `ret`,
//! `rewrite_context` = `local`|`remote`, as postdrop writes them); a file
//! with any other attribute (`origin_uid`, `filter`, client or SASL
//! attributes…), a file that is not a regular file with one link, a file
//! that does not parse, or whose name is not a queue ID, is moved to
//! `corrupt/` with a warning naming the uid — one bad file never stops the
//! others, and pickup never loops on it. A file that `postsuper -r` put
//! back (owned by `mail_owner`, not readable by others, which no user can
//! create) is a queue file: its other attributes are dropped instead, and
//! the log line adds `orig_id=`, as in Postfix. Files still being written (no ready
//! bit, or `t.*` temporaries) are left alone.
//!
//! # Configuration
//! `queue_directory`, `message_size_limit` (bounds the file read),
//! `receive_override_options`, `content_filter` (recorded for every message), and
//! master.cf's wakeup time for the `pickup` service.

use postern_config::p;
use postern_ipc::proto::{CleanupReply, CleanupRequest, CleanupStatus, Recipient, cleanup_flags};
use postern_queue::Queue;
use postern_server::client;
use postern_server::service::{self, Env};
use postern_server::skeleton::{self, Context};
use std::ffi::OsString;
use std::process::ExitCode;

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = skeleton::daemon_args(&args);
    // The account database is read before a chroot (master.cf): the jail has none.
    let (ctx, (), owner) = skeleton::init_open("pickup", &args, |_| (), mail_owner_uid);
    let mut wakeup = |ctx: &Context, _trigger: &[u8]| scan(ctx, owner);
    let exit = service::trigger_server(&ctx, Env::from_master(&ctx), true, &mut wakeup);
    service::finish(&ctx, exit)
}

fn scan(ctx: &Context, owner: Option<u32>) {
    let q = Queue::new(ctx.config.str(p::QUEUE_DIRECTORY));
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
        if !pick(ctx, &q, &e.id, owner) {
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

/// Why a maildrop file is refused, or `None` when its attributes are all
/// ones a submission may carry.
fn forbidden(attrs: &[(String, String)]) -> Option<String> {
    attrs.iter().find_map(|(n, v)| {
        let ok = postern_qfile::submission_attr_ok(n, v);
        (!ok).then(|| {
            format!(
                "forbidden attribute record: {:.100}={:.100}",
                n.escape_default(),
                v.escape_default()
            )
        })
    })
}

/// Moves a refused file to corrupt/ with a warning that names the uid.
fn refuse(q: &Queue, id: &str, uid: u32, why: &str) {
    postern_log::warning(format!(
        "uid={uid}: maildrop/{id}: {why}; moved to corrupt/"
    ));
    if let Err(e) = postern_queue_admin::move_file(q, "maildrop", "corrupt", id) {
        postern_log::warning(format!("{id}: {e}"));
    }
}

/// Who submitted a maildrop file: its owner, and whether it is a message
/// `postsuper -r` requeued (Postfix's test: owned by `mail_owner`, not
/// readable by others; postdrop's files are mode 0744).
struct Submitter {
    uid: u32,
    requeued: bool,
}

/// The submitter of `id`. `Err` (with the uid, when known) for a file that is
/// not a regular file with exactly one link.
fn submitter(q: &Queue, id: &str, owner: Option<u32>) -> Result<Option<Submitter>, (u32, String)> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(q.dir("maildrop").join(id)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err((u32::MAX, format!("lstat: {e}"))),
        Ok(md) if !md.file_type().is_file() => Err((md.uid(), "not a regular file".into())),
        Ok(md) if md.nlink() != 1 => Err((md.uid(), format!("file has {} links", md.nlink()))),
        Ok(md) => Ok(Some(Submitter {
            uid: md.uid(),
            requeued: Some(md.uid()) == owner && md.mode() & 0o004 == 0,
        })),
    }
}

/// The uid of `mail_owner`, when it exists.
fn mail_owner_uid(ctx: &Context) -> Option<u32> {
    match postern_sys::privs::lookup_user(&ctx.config.str(p::MAIL_OWNER)) {
        Ok(u) => u.map(|u| u.uid),
        Err(e) => {
            postern_log::warning(e);
            None
        }
    }
}

/// Submits one maildrop file. Returns false when cleanup is unavailable.
fn pick(ctx: &Context, q: &Queue, id: &str, owner: Option<u32>) -> bool {
    let Submitter { uid, requeued } = match submitter(q, id, owner) {
        Ok(Some(s)) => s,
        Ok(None) => return true,
        Err((uid, why)) => {
            refuse(q, id, uid, &why);
            return true;
        }
    };
    let limit = client::content_frame_limit(&ctx.config);
    let qf = match q.read("maildrop", id, limit) {
        Ok(qf) => qf,
        Err(postern_queue::ReadError::NotFound(_)) => return true,
        Err(e @ postern_queue::ReadError::Corrupt { .. }) => {
            refuse(q, id, uid, &e.to_string());
            return true;
        }
        Err(e) => {
            postern_log::warning(format!("{id}: {e}"));
            return true;
        }
    };
    let mut qf = qf;
    if requeued {
        // postsuper -r: cleanup's own attributes (filters, client
        // information…) are dropped, as Postfix's pickup does.
        qf.attrs
            .retain(|a| forbidden(std::slice::from_ref(a)).is_none());
    } else if let Some(why) = forbidden(&qf.attrs) {
        refuse(q, id, uid, &why);
        return true;
    }
    let flags = qf
        .attr("flags")
        .and_then(|f| f.parse::<u32>().ok())
        .unwrap_or(0);
    let mut attrs: Vec<(String, String)> = qf
        .attrs
        .iter()
        .filter(|(n, _)| n != "flags")
        .cloned()
        .collect();
    attrs.push(("origin_uid".into(), uid.to_string()));
    if let Ok(Some(u)) = postern_sys::privs::lookup_uid(uid) {
        attrs.push(("origin_user".into(), u.name));
    }
    // content_filter, as Postfix's pickup adds it (a submission's own `filter` was refused
    // or, for postsuper -r, dropped above).
    let content_filter = ctx.config.str(p::CONTENT_FILTER);
    if !content_filter.is_empty() {
        attrs.push(("filter".into(), content_filter));
    }
    let req = CleanupRequest {
        flags: (flags & (cleanup_flags::EXTRACT_RCPTS | cleanup_flags::HOLD))
            | cleanup_flags::BOUNCE_ON_REJECT
            | cleanup_flags::from_receive_override_options(
                &ctx.config.str(p::RECEIVE_OVERRIDE_OPTIONS),
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
        attrs,
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
            // For a requeued message also the maildrop ID, as Postfix logs it.
            let orig = if requeued {
                format!(" orig_id={id}")
            } else {
                String::new()
            };
            postern_log::info(format!(
                "{}: uid={uid} from=<{}>{orig}",
                r.queue_id, req.sender
            ));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn a(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_submission_attributes_pass() {
        assert_eq!(
            forbidden(&a(&[
                ("flags", "1"),
                ("envid", "E"),
                ("ret", "FULL"),
                ("rewrite_context", "local")
            ])),
            None
        );
        for bad in [
            ("origin_uid", "0"),
            ("origin_user", "root"),
            ("filter", "smtp:[evil]:25"),
            ("client_address", "1.2.3.4"),
            ("rewrite_context", "trusted"),
            ("flags", "x"),
        ] {
            let why = forbidden(&a(&[("flags", "0"), bad])).unwrap();
            assert!(why.contains(bad.0), "{why}");
        }
    }
}
