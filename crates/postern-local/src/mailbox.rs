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
//! The mail spool and the home directory are the trusted starting points;
//! every directory below them (the Maildir, its `tmp/`, `new/`, `cur/`,
//! the directories of `home_mailbox`) is opened relative to its parent with
//! `O_NOFOLLOW|O_DIRECTORY` and must belong to the recipient or root, and
//! the mbox file is opened as Postfix's `safe_open` does (see
//! `postern-mailbox`); a violation defers with 4.2.0 and a warning, nothing
//! is written and nothing is given away.
//!
//! Home-directory deliveries run entirely with the user's effective ids.
//! A missing spool Maildir is created as Postfix creates spool mailboxes: as
//! the user in a world-writable spool, as the user with the spool's group in
//! a group-writable one, otherwise by root and then given to the user. Its
//! contents are written as the user. A spool mbox is opened (created 0600
//! and given to the user) as root, then written as the user; an existing one
//! must belong to the user (`strict_mailbox_ownership`).
//!
//! Root's mailbox is written with root's privileges, as Postfix's local
//! does (only root-owned directories and files are accepted on its path);
//! `mailbox_command` and the commands and files of root's aliases and
//! `.forward` run as `default_privs` instead (see `command`, `file`).
//!
//! # Configuration
//! `mailbox_transport(_maps)`, `mailbox_command(_maps)`, `home_mailbox`,
//! `mail_spool_directory`, `mailbox_size_limit`, mbox locking parameters.

use crate::deliver::{Ctx, DeliveryError};
use crate::expansion::{as_user, with_ids};
use crate::recipient::{State, UserAttr};
use postern_ipc::proto::DeliverRequest;
use postern_mail::address::quote_address;
use postern_mailbox::safedir::Dir;
use postern_mailbox::{maildir, mbox};
use postern_sys::privs::{self, UserInfo};
use postern_sys::safeopen;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

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
    let target = match (&pw, ctx.s.home_mailbox.as_str()) {
        (Some(p), hm) if !hm.is_empty() => Target {
            base: PathBuf::from(&p.home),
            rel: hm.to_string(),
            is_maildir: hm.ends_with('/'),
            in_spool: false,
        },
        _ => Target {
            base: PathBuf::from(&ctx.s.mail_spool_directory),
            rel: name.to_string(),
            is_maildir: ctx.s.mail_spool_directory.ends_with('/'),
            in_spool: true,
        },
    };
    let prefix = prefix(ctx, st, true);
    match write_mailbox(ctx, st, pw.as_ref(), &target, &prefix) {
        Ok(text) => ctx.sent(st, text),
        Err(e) => ctx.fail(st, e),
    }
    true
}

/// Where the mailbox is: `rel` below the trusted directory `base`.
struct Target {
    base: PathBuf,
    rel: String,
    is_maildir: bool,
    in_spool: bool,
}

impl Target {
    fn context(&self) -> String {
        let path = self.base.join(&self.rel);
        if self.is_maildir {
            format!("cannot update maildir {}", path.display())
        } else {
            format!("cannot update mailbox {}", path.display())
        }
    }
}

/// The recipient's ids: the user's, or ours when not root.
fn ids(pw: Option<&UserInfo>) -> (u32, u32) {
    pw.map_or_else(
        || {
            (
                privs::effective_uid(),
                nix::unistd::Gid::effective().as_raw(),
            )
        },
        |p| (p.uid, p.gid),
    )
}

/// Opens the recipient's Maildir `name` in the mail spool, creating it when
/// missing with the identity Postfix uses for the spool: as the recipient
/// when the spool is world-writable, as the recipient with the spool's group
/// when it is group-writable, otherwise as root, then given to the recipient
/// (only root can change such a spool, so nobody can swap the new directory).
fn spool_maildir(
    ctx: &Ctx<'_>,
    spool: &Dir,
    name: &str,
    pw: Option<&UserInfo>,
    cx: &str,
) -> Result<Dir, DeliveryError> {
    let (uid, gid) = ids(pw);
    if let Some(d) = spool.sub_opt(name, uid, cx)? {
        return Ok(d);
    }
    match pw.filter(|p| ctx.s.as_root && p.uid != 0) {
        None => spool.mkdir(name, cx)?,
        Some(u) => {
            let mode = spool.stat().mode;
            if mode & 0o002 != 0 {
                with_ids(u, || spool.mkdir(name, cx))??;
            } else if mode & 0o020 != 0 {
                postern_mailbox::as_owner((u.uid, spool.stat().gid), || spool.mkdir(name, cx))?;
            } else {
                spool.mkdir(name, cx)?;
                if let Some(d) = spool.sub_opt(name, 0, cx)? {
                    safeopen::chown_fd(d.fd(), uid, gid)
                        .map_err(|e| DeliveryError::from_sys(cx, &e))?;
                }
            }
        }
    }
    spool.sub(name, uid, false, cx)
}

fn write_mailbox(
    ctx: &Ctx<'_>,
    st: &State,
    pw: Option<&UserInfo>,
    t: &Target,
    prefix: &str,
) -> Result<&'static str, DeliveryError> {
    let s = ctx.s;
    let content = &ctx.qf.content;
    let usr = UserAttr { pw: pw.cloned() };
    let (uid, gid) = ids(pw);
    let cx = t.context();
    let lock = s.lock_options();
    let arrival = ctx.req.arrival as i64;
    let strict = Some((uid, gid)).filter(|_| s.strict_mailbox_ownership);
    let write = |mb: &mut mbox::LockedMbox| {
        mb.append(
            &st.sender,
            arrival,
            prefix.as_bytes(),
            content,
            s.mailbox_size_limit,
        )
    };
    let append = |mut mb: mbox::LockedMbox| {
        let r = write(&mut mb);
        let released = mb.release();
        r.and(released).map(|()| "delivered to mailbox")
    };
    if !t.in_spool {
        // Under the home directory: everything as the user, every level
        // below the home directory checked.
        return as_user(s, &usr, || {
            let home = Dir::open_trusted(&t.base, &cx)?;
            home.check_owner(uid, &cx)?;
            if t.is_maildir {
                let md = home.walk(&t.rel, uid, true, &cx)?;
                return maildir::deliver_in(&md, uid, prefix.as_bytes(), content, &s.myhostname)
                    .map(|_| "delivered to maildir");
            }
            let (dir, file) = match t.rel.trim_end_matches('/').rsplit_once('/') {
                Some((d, f)) => (home.walk(d, uid, false, &cx)?, f),
                None => (home, t.rel.as_str()),
            };
            append(mbox::open_locked_at(dir, file, &lock, strict)?)
        })?;
    }
    if t.is_maildir && !t.base.is_dir() {
        // Postfix creates a missing Maildir path; the spool itself is made
        // not writable by others.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&t.base)
            .map_err(|e| {
                DeliveryError::from_io(&format!("{cx}: create {}", t.base.display()), &e)
            })?;
    }
    let spool = Dir::open_trusted(&t.base, &cx)?;
    if t.is_maildir {
        let md = spool_maildir(ctx, &spool, &t.rel, pw, &cx)?;
        return as_user(s, &usr, || {
            maildir::deliver_in(&md, uid, prefix.as_bytes(), content, &s.myhostname)
        })?
        .map(|_| "delivered to maildir");
    }
    let Some(u) = pw.filter(|_| s.as_root) else {
        // Not root: everything as ourselves.
        return append(mbox::open_locked_at(spool, &t.rel, &lock, strict)?);
    };
    // Spool mbox: open, lock and create as root (the spool is not writable
    // by users), write as the user. Without strict_mailbox_ownership an
    // existing mailbox of another owner is used as it is.
    let foreign = !s.strict_mailbox_ownership
        && safeopen::lstat_at(spool.fd(), &t.rel).is_ok_and(|m| m.uid != u.uid);
    let owner = Some((u.uid, u.gid)).filter(|_| !foreign);
    let mut mb = mbox::open_locked_at(spool, &t.rel, &lock, owner)?;
    let r = with_ids(u, || write(&mut mb));
    let released = mb.release();
    r?.and(released).map(|()| "delivered to mailbox")
}
