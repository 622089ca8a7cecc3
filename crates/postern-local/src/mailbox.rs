//! Mailbox delivery for a local user (Postfix's `mailbox.c`), and handing a
//! recipient to another transport (`deliver_pass`).
//!
//! In order: `mailbox_transport_maps` (by user name), `mailbox_transport`,
//! then (as root) the user must exist in the password database, then
//! `mailbox_command_maps`, `mailbox_command` (run as the user, not subject
//! to `allow_mail_to_commands`), `home_mailbox` (a Maildir when it ends in
//! `/`), a Maildir `mail_spool_directory/` or the mbox
//! `mail_spool_directory/USER`.
//!
//! Each message gets `Return-Path:`, `X-Original-To:` (with
//! `enable_original_recipient`) and `Delivered-To:` prepended.
//!
//! # Security
//! Maildir and home-directory mbox writes run entirely with the user's
//! effective ids. A spool mbox is opened (created 0600 and given to the user)
//! as root, because the spool is not writable by users, then written as the
//! user; an existing one must belong to the user (`strict_mailbox_ownership`).
//! `postern-mailbox` never writes through a symbolic link.
//!
//! # Configuration
//! `mailbox_transport(_maps)`, `mailbox_command(_maps)`, `home_mailbox`,
//! `mail_spool_directory`, `mailbox_size_limit`, mbox locking parameters.

use crate::deliver::{Ctx, DeliveryError};
use crate::expansion::{as_user, with_ids};
use crate::recipient::{State, UserAttr};
use postern_ipc::proto::DeliverRequest;
use postern_mail::address::quote_address;
use postern_mailbox::{maildir, mbox};
use postern_sys::privs::{self, UserInfo};
use std::path::{Path, PathBuf};

/// Hands the current recipient to `transport[:nexthop]` and takes its result.
pub(crate) fn pass(ctx: &mut Ctx<'_>, st: &State, spec: &str) {
    let spec = spec.trim();
    let (transport, nexthop) = match spec.split_once(':') {
        Some((t, n)) if !n.is_empty() => (t, n.to_string()),
        Some((t, _)) => (t, ctx.req.nexthop.clone()),
        None => (spec, ctx.req.nexthop.clone()),
    };
    let sub = DeliverRequest {
        transport: transport.to_string(),
        nexthop,
        recipients: vec![st.rcpt.clone()],
        ..ctx.req.clone()
    };
    match ctx.svc.pass(&sub) {
        Ok(r) => ctx.leaves.push(crate::deliver::Leaf {
            rcpt: st.rcpt.clone(),
            action: r.action,
            dsn: r.dsn,
            text: r.text,
            relay: r.relay,
            logged: true,
        }),
        Err(e) => {
            postern_log::warning!("{}: {transport}: {e}", ctx.req.queue_id);
            ctx.defer(st, "4.3.0", "mail transport unavailable");
        }
    }
}

/// The lines prepended to a stored message.
pub(crate) fn prefix(ctx: &Ctx<'_>, st: &State, delivered: bool) -> String {
    let sender = if st.sender.is_empty() {
        String::new()
    } else {
        quote_address(&st.sender)
    };
    let mut p = format!("Return-Path: <{sender}>\n");
    if ctx.s.enable_original_recipient && !st.rcpt.original.is_empty() {
        p.push_str(&format!(
            "X-Original-To: {}\n",
            quote_address(&st.rcpt.original)
        ));
    }
    if delivered {
        p.push_str(&format!("Delivered-To: {}\n", quote_address(&st.delivered)));
    }
    p.replace('\r', "")
}

fn bad_name(user: &str) -> bool {
    user.is_empty()
        || user.contains('/')
        || user.starts_with('.')
        || user.chars().any(char::is_control)
}

/// Delivers to the user's mailbox. Returns false when (as root) the user
/// does not exist.
pub(crate) fn deliver_mailbox(ctx: &mut Ctx<'_>, st: &State, _usr: &UserAttr) -> bool {
    if ctx.been_here(format!("mailbox {}", st.local)) {
        return true;
    }
    match ctx.t.mailbox_transport.find(&st.user) {
        Ok(Some((t, _))) => {
            pass(ctx, st, &t);
            return true;
        }
        Ok(None) => {}
        Err(_) => {
            ctx.defer(st, "4.3.0", "table lookup failure");
            return true;
        }
    }
    if !ctx.s.mailbox_transport.is_empty() {
        let t = ctx.s.mailbox_transport.clone();
        pass(ctx, st, &t);
        return true;
    }
    let pw = if ctx.s.as_root {
        match privs::lookup_user(&st.user) {
            Ok(Some(pw)) => Some(pw),
            Ok(None) => return false,
            Err(e) => {
                postern_log::warning!("error looking up passwd info for {}: {e}", st.user);
                ctx.defer(st, "4.0.0", "user lookup error");
                return true;
            }
        }
    } else {
        if bad_name(&st.user) {
            ctx.bounce(st, "5.1.3", "bad address syntax");
            return true;
        }
        None
    };
    let user_attr = UserAttr { pw: pw.clone() };
    match ctx.t.mailbox_command.find(&st.user) {
        Ok(Some((cmd, _))) => {
            crate::command::deliver_command(ctx, st, &user_attr, &cmd);
            return true;
        }
        Ok(None) => {}
        Err(_) => {
            ctx.defer(st, "4.3.0", "table lookup failure");
            return true;
        }
    }
    if !ctx.s.mailbox_command.is_empty() {
        let cmd = ctx.s.mailbox_command.clone();
        crate::command::deliver_command(ctx, st, &user_attr, &cmd);
        return true;
    }
    let name = pw.as_ref().map_or(st.user.as_str(), |p| p.name.as_str());
    let (path, is_maildir, in_spool) = match (&pw, ctx.s.home_mailbox.as_str()) {
        (Some(p), hm) if !hm.is_empty() => (Path::new(&p.home).join(hm), hm.ends_with('/'), false),
        _ => (
            Path::new(&ctx.s.mail_spool_directory).join(name),
            ctx.s.mail_spool_directory.ends_with('/'),
            true,
        ),
    };
    let prefix = prefix(ctx, st, true);
    match write_mailbox(ctx, st, pw.as_ref(), &path, is_maildir, in_spool, &prefix) {
        Ok(text) => ctx.sent(st, text),
        Err(e) => ctx.fail(st, e),
    }
    true
}

fn write_mailbox(
    ctx: &Ctx<'_>,
    st: &State,
    pw: Option<&UserInfo>,
    path: &PathBuf,
    is_maildir: bool,
    in_spool: bool,
    prefix: &str,
) -> Result<&'static str, DeliveryError> {
    let s = ctx.s;
    let content = &ctx.qf.content;
    let usr = UserAttr { pw: pw.cloned() };
    if is_maildir {
        return as_user(s, &usr, || {
            maildir::deliver(path, prefix.as_bytes(), content, &s.myhostname)
        })?
        .map(|_| "delivered to maildir");
    }
    let arrival = ctx.req.arrival as i64;
    let Some(u) = pw.filter(|_| in_spool && s.as_root) else {
        // Not root, or a mailbox under the home directory: everything as the user.
        return as_user(s, &usr, || {
            mbox::deliver(
                path,
                &st.sender,
                arrival,
                prefix.as_bytes(),
                content,
                &s.lock_options(),
            )
        })?
        .map(|()| "delivered to mailbox");
    };
    // Spool mbox: open, lock and create as root, write as the user.
    // Without strict_mailbox_ownership an existing mailbox of another owner
    // is used as it is.
    let foreign = !s.strict_mailbox_ownership
        && std::fs::symlink_metadata(path).is_ok_and(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() != u.uid
        });
    let owner = Some((u.uid, u.gid)).filter(|_| !foreign);
    let mut mb = mbox::open_locked(path, &s.lock_options(), owner)?;
    let r = with_ids(u, || {
        mb.append(
            &st.sender,
            arrival,
            prefix.as_bytes(),
            content,
            s.mailbox_size_limit,
        )
    });
    let released = mb.release();
    r?.and(released).map(|()| "delivered to mailbox")
}
