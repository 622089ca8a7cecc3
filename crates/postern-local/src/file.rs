//! Delivery to a file named in an alias, `.forward` or `:include:` file
//! (`/path`, `~/path`; Postfix's `file.c`).
//!
//! * Allowed only for the expansion types in `allow_mail_to_files` (else
//!   5.7.1 "mail to file is restricted").
//! * A path ending in `/` is a Maildir; anything else gets the message
//!   appended in mbox format (`From ` line, `Return-Path:`,
//!   `X-Original-To:`, `Delivered-To:` with `file` in
//!   `prepend_delivered_header`, `>From ` quoting, a blank line), locked as
//!   the mailbox is, within `mailbox_size_limit`.
//! * A character device (`/dev/null`) is written without locking.
//! * An executable file bounces with 5.7.1 "file is executable".
//! * Success: "delivered to file: PATH"; failures: "cannot append message to
//!   file PATH: REASON", deferred or bounced by the reason's status.
//!
//! # Security
//! Everything happens with the effective ids of the alias or `.forward`
//! owner, or `default_privs` for root-owned aliases, so the file system
//! decides what may be written. The file's directory is opened once and the
//! file is examined, opened (with `O_NOFOLLOW`: a planted symbolic link
//! defers, nothing is written through it) and re-checked relative to that
//! descriptor; it must be a regular file with one link, and must still be
//! the file the name refers to after locking (see `postern-mailbox`). A
//! Maildir (`/path/`) must belong to the rights' user or root at every
//! level from the Maildir down.
//!
//! # Configuration
//! `allow_mail_to_files`, `prepend_delivered_header`, `mailbox_size_limit`,
//! mbox locking parameters, `default_privs`.

use crate::deliver::{Ctx, DeliveryError};
use crate::expansion::{as_user, rights};
use crate::recipient::{State, UserAttr};
use postern_mailbox::safedir::{Dir, split_last, violation};
use postern_mailbox::{maildir, mbox};
use postern_sys::safeopen::{self, Create};
use std::io::Write;
use std::path::Path;

/// Delivers to the file at `path`.
pub(crate) fn deliver_file(ctx: &mut Ctx<'_>, st: &State, usr: &UserAttr, path: &str) {
    let mut st = st.clone();
    st.level += 1;
    let ids = match rights(ctx.s, usr) {
        Ok(pw) => pw,
        Err(e) => return ctx.fail(&st, e),
    };
    let uid = ids
        .as_ref()
        .map_or_else(postern_sys::privs::effective_uid, |p| p.uid);
    if ctx.been_here(format!("file {uid} {path}")) {
        return;
    }
    if ctx.s.allow_files & st.exp_type == 0 {
        return ctx.bounce(&st, "5.7.1", "mail to file is restricted");
    }
    let rights = UserAttr { pw: ids };
    let prefix = crate::mailbox::prefix(ctx, &st, ctx.s.delivered_header("file"));
    let content = &ctx.qf.content;
    let s = ctx.s;
    let arrival = ctx.req.arrival as i64;
    let r = if path.ends_with('/') {
        as_user(s, &rights, || {
            maildir::deliver(Path::new(path), prefix.as_bytes(), content, &s.myhostname)
                .map(|_| "delivered to maildir".to_string())
        })
    } else {
        as_user(s, &rights, || {
            append(
                Path::new(path),
                &st.sender,
                arrival,
                prefix.as_bytes(),
                content,
                s,
            )
            .map(|()| format!("delivered to file: {path}"))
        })
    };
    match r.and_then(|x| x) {
        Ok(text) => ctx.sent(&st, text),
        Err(e) => {
            let reason = e
                .text
                .strip_prefix(&format!("cannot update mailbox {path}: "))
                .unwrap_or(&e.text)
                .to_string();
            let text = format!("cannot append message to file {path}: {reason}");
            ctx.fail(&st, DeliveryError { text, ..e });
        }
    }
}

/// Appends one mbox entry to `path` with the current identity. The
/// directory is opened once and everything after is relative to it: the file
/// is examined with `lstat` on that descriptor, opened without following a
/// symbolic link, and what was opened is checked again with `fstat`.
fn append(
    path: &Path,
    sender: &str,
    arrival: i64,
    prefix: &[u8],
    content: &[u8],
    s: &crate::settings::LocalSettings,
) -> Result<(), DeliveryError> {
    let ctx = format!("cannot update mailbox {}", path.display());
    let Some((parent, name)) = split_last(path) else {
        return Err(DeliveryError::perm("5.3.5", "bad file name"));
    };
    let dir = Dir::open_trusted(parent, &ctx)?;
    match safeopen::lstat_at(dir.fd(), name) {
        Ok(st) if st.is_char_device() => {
            let entry = mbox::format_entry(sender, arrival, prefix, content);
            let ioerr = |e: &std::io::Error| DeliveryError::from_io("cannot write", e);
            let mut f = safeopen::open_at(dir.fd(), name, true, Create::No, 0)
                .map_err(|e| ioerr(&e.source))?;
            let now = safeopen::stat_fd(&f).map_err(|e| ioerr(&e.source))?;
            if !now.same_file(&st) {
                return Err(violation(format!(
                    "{ctx}: file status changed unexpectedly"
                )));
            }
            return f.write_all(&entry).map_err(|e| ioerr(&e));
        }
        Ok(st) if st.is_file() && st.mode & 0o111 != 0 => {
            return Err(DeliveryError::perm("5.7.1", "file is executable"));
        }
        _ => {}
    }
    let mut mb = mbox::open_locked_at(dir, name, &s.lock_options(), None)?;
    let r = mb.append(sender, arrival, prefix, content, s.mailbox_size_limit);
    let released = mb.release();
    r.and(released)
}
