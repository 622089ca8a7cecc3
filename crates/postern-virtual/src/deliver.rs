//! One delivery request → one result per recipient.
//!
//! For each recipient (its address folded to lower case, the "user"):
//!
//! 1. `virtual_mailbox_maps` gives the mailbox path relative to
//!    `virtual_mailbox_base`; not found → bounce 5.1.1 `unknown user:
//!    "user"`; a table error, a relative base or a path with `..` → defer
//!    4.3.5 `mail system configuration error` (details in a warning);
//! 2. `virtual_uid_maps` and `virtual_gid_maps` give the owner; missing, not
//!    a number, a uid below `virtual_minimum_uid` or gid 0 → defer 4.3.5;
//! 3. a path ending in `/` is a Maildir, anything else an mbox file; the
//!    message gets `Return-Path:`, `X-Original-To:` (when known) and
//!    `Delivered-To:` and is written with the owner's effective uid and gid.
//!
//! Results: `delivered to maildir` / `delivered to mailbox` (2.0.0, relay
//! `virtual`), or the mailbox error prefixed with `maildir delivery failed:`
//! or `delivery failed to mailbox PATH:`, as in Postfix.
//!
//! # Security
//! As root, files are created and written only with the mapped ids (never
//! root: the uid is at least `virtual_minimum_uid`). `virtual_mailbox_base`
//! is the trusted starting point; every directory below it (the domain and
//! mailbox directories, a Maildir's `tmp/`, `new/`, `cur/`) is opened
//! relative to its parent without following a symbolic link and must
//! belong to the mapped uid or root, and an mbox is opened as Postfix's
//! `safe_open` does: never through a symbolic link, a regular file with one
//! link and, with `strict_mailbox_ownership`, owned by the mapped uid. A
//! violation defers (4.2.0) with a warning and writes nothing. A non-root
//! instance cannot change ids: it delivers only when the maps give its own
//! uid and gid, and defers (4.3.5, with the reason) otherwise.

use crate::settings::VirtualSettings;
use postern_ipc::proto::{Action, DeliverReply, DeliverRequest, Recipient};
use postern_mail::address::quote_address;
use postern_mailbox::safedir::Dir;
use postern_mailbox::{DeliveryError, as_owner, maildir, mbox};
use postern_qfile::QueueFile;
use postern_server::agent;
use std::path::Path;

fn config_error(warning: String) -> DeliveryError {
    postern_log::warning(warning);
    DeliveryError::temp("4.3.5", "mail system configuration error")
}

/// The mailbox path for `user` relative to `virtual_mailbox_base`, or why
/// there is none.
fn mailbox_path(s: &VirtualSettings, user: &str) -> Result<String, DeliveryError> {
    let found = s.mailbox_maps.find(user, &s.delimiter).map_err(|e| {
        config_error(format!(
            "table {}: lookup {user}: {e}",
            s.mailbox_maps.title
        ))
    })?;
    let Some(res) = found else {
        return Err(DeliveryError::perm(
            "5.1.1",
            format!("unknown user: \"{user}\""),
        ));
    };
    if !s.base.starts_with('/') {
        return Err(config_error(format!(
            "do not specify relative pathname: virtual_mailbox_base = {}",
            s.base
        )));
    }
    let res = res.trim();
    if res.is_empty()
        || res.split('/').any(|c| c == ".." || c == ".")
        || res.trim_matches('/').is_empty()
    {
        return Err(config_error(format!(
            "recipient {user}: bad mailbox path {res} in {}",
            s.mailbox_maps.title
        )));
    }
    Ok(res.to_string())
}

/// Opens `virtual_mailbox_base` (trusted) and goes down to the directory
/// `rel` below it, every level opened without following a symbolic link
/// and owned by `uid` or root; missing levels are made when `create`.
fn open_dir(
    s: &VirtualSettings,
    rel: &str,
    uid: u32,
    create: bool,
    ctx: &str,
) -> Result<Dir, DeliveryError> {
    Dir::open_trusted(Path::new(&s.base), ctx)?.walk(rel, uid, create, ctx)
}

fn id(
    s: &VirtualSettings,
    maps: &crate::maps::Maps,
    user: &str,
    ok: impl Fn(u32) -> bool,
) -> Result<u32, DeliveryError> {
    let found = maps
        .find(user, &s.delimiter)
        .map_err(|e| config_error(format!("table {}: lookup {user}: {e}", maps.title)))?;
    let Some(v) = found else {
        return Err(config_error(format!(
            "recipient {user}: not found in {}",
            maps.title
        )));
    };
    let what = if maps.title.contains("gid") {
        "gid"
    } else {
        "uid"
    };
    match v.trim().parse::<u32>() {
        Ok(n) if n != u32::MAX && ok(n) => Ok(n),
        _ => Err(config_error(format!(
            "recipient {user}: bad {what} {v} in {}",
            maps.title
        ))),
    }
}

/// The mailbox owner (uid, gid) for `user`.
fn owner(s: &VirtualSettings, user: &str) -> Result<(u32, u32), DeliveryError> {
    let uid = id(s, &s.uid_maps, user, |u| u >= s.minimum_uid)?;
    let gid = id(s, &s.gid_maps, user, |g| g != 0)?;
    if let Some((my_uid, my_gid)) = s.own_ids
        && (uid, gid) != (my_uid, my_gid)
    {
        return Err(DeliveryError::temp(
            "4.3.5",
            format!(
                "mail system configuration error: cannot deliver as uid {uid} gid {gid}: \
                 this instance does not run as root and delivers only as uid {my_uid} gid {my_gid}"
            ),
        ));
    }
    Ok((uid, gid))
}

fn deliver_maildir(
    s: &VirtualSettings,
    ids: (u32, u32),
    rel: &str,
    prefix: &[u8],
    content: &[u8],
) -> Result<&'static str, DeliveryError> {
    let path = format!("{}/{rel}", s.base);
    let limit = s.lock.mailbox_size_limit;
    if limit > 0 && (prefix.len() + content.len()) as u64 > limit {
        return Err(DeliveryError::perm(
            "5.2.2",
            "maildir delivery failed: error writing message: File too large",
        ));
    }
    let r = as_owner(ids, || {
        let ctx = format!("cannot update maildir {path}");
        let md = open_dir(s, rel, ids.0, true, &ctx)?;
        maildir::deliver_in(&md, ids.0, prefix, content, &s.myhostname)
    });
    r.map(|_| "delivered to maildir").map_err(|e| {
        if e.text.contains("Permission denied") {
            postern_log::warning(format!(
                "maildir access problem for UID/GID={}/{}: {}",
                ids.0, ids.1, e.text
            ));
            postern_log::warning("perhaps you need to create the maildirs in advance");
        }
        DeliveryError {
            text: format!("maildir delivery failed: {}", e.text),
            ..e
        }
    })
}

fn deliver_mbox(
    s: &VirtualSettings,
    ids: (u32, u32),
    rel: &str,
    req: &DeliverRequest,
    prefix: &[u8],
    content: &[u8],
) -> Result<&'static str, DeliveryError> {
    let path = format!("{}/{rel}", s.base);
    let owner = s.strict_owner.then_some(ids);
    let r = as_owner(ids, || {
        let (dir, file) = rel.rsplit_once('/').unwrap_or(("", rel));
        let dir = open_dir(
            s,
            dir,
            ids.0,
            false,
            &format!("cannot update mailbox {path}"),
        )?;
        let mut mb = mbox::open_locked_at(dir, file, &s.lock, owner)?;
        let r = mb.append(
            &req.sender,
            req.arrival as i64,
            prefix,
            content,
            s.lock.mailbox_size_limit,
        );
        let released = mb.release();
        r.and(released)
    });
    r.map(|()| "delivered to mailbox").map_err(|e| {
        let ours = format!("cannot update mailbox {path}: ");
        let why = e.text.strip_prefix(&ours).unwrap_or(&e.text);
        DeliveryError {
            text: format!("delivery failed to mailbox {path}: {why}"),
            ..e
        }
    })
}

/// `Return-Path:`, `X-Original-To:` and `Delivered-To:`, as Postfix's virtual writes them.
pub fn prefix(s: &VirtualSettings, sender: &str, rcpt: &Recipient) -> String {
    let mut p = format!("Return-Path: <{}>\n", quote_address(sender));
    if s.enable_original && !rcpt.original.is_empty() {
        p.push_str(&format!(
            "X-Original-To: {}\n",
            quote_address(&rcpt.original)
        ));
    }
    p.push_str(&format!("Delivered-To: {}\n", quote_address(&rcpt.address)));
    p
}

fn deliver_one(
    s: &VirtualSettings,
    req: &DeliverRequest,
    qf: &QueueFile,
    rcpt: &Recipient,
) -> Result<&'static str, DeliveryError> {
    let user = rcpt.address.to_lowercase();
    let path = mailbox_path(s, &user)?;
    let ids = owner(s, &user)?;
    let prefix = prefix(s, &req.sender, rcpt);
    if path.ends_with('/') {
        deliver_maildir(s, ids, &path, prefix.as_bytes(), &qf.content)
    } else {
        deliver_mbox(s, ids, &path, req, prefix.as_bytes(), &qf.content)
    }
}

/// Delivers `qf` to every recipient of `req`; one result per recipient, in order.
pub fn deliver(s: &VirtualSettings, req: &DeliverRequest, qf: &QueueFile) -> DeliverReply {
    let mut results = Vec::with_capacity(req.recipients.len());
    for rcpt in &req.recipients {
        let start = agent::now();
        let r = match deliver_one(s, req, qf, rcpt) {
            Ok(text) => agent::result(rcpt, Action::Sent, "2.0.0", text, "virtual"),
            Err(e) => {
                let action = if e.permanent {
                    Action::Bounce
                } else {
                    Action::Defer
                };
                agent::result(rcpt, action, &e.dsn, &e.text, "virtual")
            }
        };
        agent::log_result(req, &r, start, agent::now());
        results.push(r);
    }
    DeliverReply { results }
}
