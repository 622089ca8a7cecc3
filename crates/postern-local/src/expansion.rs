//! Expanding a recipient into a list of destinations: `alias_maps`,
//! `:include:` files and `.forward` files (Postfix's `alias.c`,
//! `include.c`, `dotforward.c`).
//!
//! * [`alias`]: an alias naming itself delivers to the user; over 100
//!   levels bounces with 5.4.6 "alias database loop for NAME". An
//!   `owner-NAME` alias (with `owner_request_special`) becomes the envelope
//!   sender of the expansion (`expand_owner_alias` uses its value instead of
//!   its name) and resets ENVID, RET and ORCPT. `|command` and `/file`
//!   destinations get the rights of the table file's owner, or
//!   `default_privs` for a root-owned table.
//! * [`include`]: absolute paths only, regular files, not world-writable;
//!   read with the current rights; from a root-owned alias, the file owner's
//!   rights apply to its destinations.
//! * [`dotforward`]: the first existing file of `forward_path`, which must be
//!   a regular file owned by the user (or root) and not world-writable, read
//!   as the user; addresses in it are forwarded as new mail, except the
//!   user's own name, which delivers to the mailbox.
//!
//! # Security
//! Files named by users are examined and opened with the user's effective
//! ids ([`as_user`]), never read beyond [`MAX_LIST_FILE`] bytes, and every
//! destination is subject to `allow_mail_to_commands`/`allow_mail_to_files`.
//! The file read must be the file examined (same device and inode, checked
//! on the open descriptor), and a `.forward`'s owner and mode are checked
//! again on that descriptor, so swapping the name between the check and the
//! open gains nothing.
//!
//! # Configuration
//! `alias_maps`, `owner_request_special`, `expand_owner_alias`,
//! `reset_owner_alias`, `frozen_delivered_to`, `forward_path`,
//! `forward_expansion_filter`, `propagate_unmatched_extensions`,
//! `default_privs`.

use crate::alias::{MapOwner, tokens};
use crate::deliver::{Ctx, DeliveryError};
use crate::recipient::{MAX_LEVEL, State, UserAttr, deliver_token, qualify};
use crate::settings::{LocalSettings, exp};
use postern_sys::privs::{self, EffectiveIds, UserInfo};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

/// Largest `.forward` or `:include:` file read.
pub const MAX_LIST_FILE: u64 = 4 * 1024 * 1024;

/// Runs `f` with the effective ids of the rights in `usr` (as root, when
/// they are not root's); otherwise runs it as we are.
pub(crate) fn as_user<T>(
    s: &LocalSettings,
    usr: &UserAttr,
    f: impl FnOnce() -> T,
) -> Result<T, DeliveryError> {
    let Some(pw) = usr.pw.as_ref().filter(|p| s.as_root && p.uid != 0) else {
        return Ok(f());
    };
    with_ids(pw, f)
}

/// Runs `f` with `pw`'s effective ids (root only).
pub(crate) fn with_ids<T>(pw: &UserInfo, f: impl FnOnce() -> T) -> Result<T, DeliveryError> {
    let guard = EffectiveIds::switch(pw)
        .map_err(|e| DeliveryError::from_sys(&format!("cannot switch to user {}", pw.name), &e))?;
    let r = f();
    // Going on with a user's identity would be a privilege bug: stop the
    // process (master starts a fresh one), as Postfix's set_eugid does.
    if let Err(e) = guard.finish() {
        postern_log::fatal!("cannot restore privileges: {e}");
    }
    Ok(r)
}

/// The account `|command` and `/file` deliveries run as: the chosen user,
/// else `default_privs`. None when not root (everything runs as us).
pub(crate) fn rights(s: &LocalSettings, usr: &UserAttr) -> Result<Option<UserInfo>, DeliveryError> {
    if !s.as_root {
        return Ok(None);
    }
    if let Some(pw) = usr.pw.as_ref().filter(|p| p.uid != 0) {
        return Ok(Some(pw.clone()));
    }
    let config = || DeliveryError::temp("4.3.0", "mail system configuration error");
    match privs::lookup_user(&s.default_privs) {
        Ok(Some(pw)) if pw.uid != 0 && pw.gid != 0 => Ok(Some(pw)),
        Ok(Some(_)) => {
            postern_log::warning!("default_privs: {} is a privileged account", s.default_privs);
            Err(config())
        }
        Ok(None) => {
            postern_log::warning!("default_privs: unknown account {}", s.default_privs);
            Err(config())
        }
        Err(e) => {
            postern_log::warning!("default_privs: {e}");
            Err(config())
        }
    }
}

/// Reads a list file with the rights in `usr`; `nofollow` refuses a final
/// symbolic link (`.forward`, which the caller `lstat`ed as a regular file).
/// The file must still be `expect` (same device and inode: nobody replaced
/// it between the caller's checks and the open), and the attributes
/// returned are those of the open descriptor, for the caller to check again.
fn read_list(
    s: &LocalSettings,
    usr: &UserAttr,
    path: &str,
    nofollow: bool,
    expect: &std::fs::Metadata,
) -> Result<(std::fs::Metadata, String), DeliveryError> {
    let flags = libc::O_NONBLOCK | libc::O_NOCTTY | if nofollow { libc::O_NOFOLLOW } else { 0 };
    let r = as_user(
        s,
        usr,
        || -> std::io::Result<(std::fs::Metadata, Vec<u8>)> {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(flags)
                .open(path)?;
            let md = f.metadata()?;
            if md.dev() != expect.dev() || md.ino() != expect.ino() {
                return Err(std::io::Error::other("file status changed unexpectedly"));
            }
            let mut buf = Vec::new();
            f.take(MAX_LIST_FILE).read_to_end(&mut buf)?;
            Ok((md, buf))
        },
    )?;
    r.map(|(md, b)| (md, String::from_utf8_lossy(&b).into_owned()))
        .map_err(|e| DeliveryError::from_io(&format!("cannot open file {path}"), &e))
}

/// Delivers to each destination of `list`; returns how many there were.
fn token_string(ctx: &mut Ctx<'_>, st: &State, usr: &UserAttr, list: &str) -> usize {
    let toks = tokens(list);
    for t in &toks {
        deliver_token(ctx, st, usr, t);
    }
    toks.len()
}

/// Delivers to each destination of each non-comment line of a file.
fn token_lines(ctx: &mut Ctx<'_>, st: &State, usr: &UserAttr, text: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| token_string(ctx, st, usr, l))
        .sum()
}

/// Looks `name` up in `alias_maps` and delivers to its expansion. Returns
/// false when there is no such alias.
pub(crate) fn alias(ctx: &mut Ctx<'_>, st: &State, _usr: &UserAttr, name: &str) -> bool {
    if st
        .exp_from
        .as_ref()
        .is_some_and(|f| f.eq_ignore_ascii_case(name))
    {
        return false;
    }
    let mut st = st.clone();
    st.level += 1;
    if st.level > MAX_LEVEL {
        postern_log::warning!("alias database loop for {name}");
        ctx.bounce(&st, "5.4.6", format!("alias database loop for {name}"));
        return true;
    }
    st.exp_from = Some(name.to_string());
    let (value, owner) = match ctx.t.aliases.find(name) {
        Ok(Some(v)) => v,
        Ok(None) => return false,
        Err(_) => {
            ctx.defer(&st, "4.3.0", "alias database unavailable");
            return true;
        }
    };
    st.exp_type = exp::ALIAS;
    let usr = match owner {
        MapOwner::Trusted => UserAttr::default(),
        MapOwner::Uid(uid) => match privs::lookup_uid(uid) {
            Ok(Some(pw)) => UserAttr { pw: Some(pw) },
            other => {
                let why = other.err().map(|e| format!(": {e}")).unwrap_or_default();
                postern_log::warning!("cannot find alias database owner for uid {uid}{why}");
                ctx.defer(&st, "4.3.0", "cannot find alias database owner");
                return true;
            }
        },
        MapOwner::Unknown => {
            postern_log::warning!("no owner UID for alias database of {name}");
            ctx.defer(&st, "4.3.0", "mail system configuration error");
            return true;
        }
    };
    let mut new_owner = false;
    if ctx.s.owner_request_special {
        let key = format!("owner-{name}");
        match ctx.t.aliases.find(&key) {
            Ok(Some((rhs, _))) => {
                let who = if ctx.s.expand_owner_alias {
                    tokens(&rhs).into_iter().next().unwrap_or(key)
                } else {
                    key
                };
                let canon = qualify(ctx.s, &who);
                st.owner = Some(canon.clone());
                st.sender = canon;
                new_owner = true;
            }
            Ok(None) => {
                if ctx.s.reset_owner_alias {
                    st.owner = None;
                }
            }
            Err(_) => {
                ctx.defer(&st, "4.3.0", "alias database unavailable");
                return true;
            }
        }
    }
    if !ctx.s.frozen_delivered_to {
        st.delivered = st.rcpt.address.clone();
    }
    st.strip_success();
    if new_owner {
        // A mailing list: the DSN parameters of the original do not apply.
        st.envid.clear();
        st.ret.clear();
        st.rcpt.orcpt.clear();
        st.rcpt.original.clear();
    }
    if token_string(ctx, &st, &usr, &value) == 0 {
        postern_log::warning!("no recipient in alias lookup result for {name}");
        ctx.defer(&st, "4.3.0", "alias database unavailable");
    }
    true
}

/// Delivers to the destinations listed in an `:include:` file.
pub(crate) fn include(ctx: &mut Ctx<'_>, st: &State, usr: &UserAttr, path: &str) {
    let mut st = st.clone();
    let mut usr = usr.clone();
    st.level += 1;
    if st.level > MAX_LEVEL {
        postern_log::warning!(":include: nesting limit exceeded for {path}");
        return ctx.bounce(&st, "5.4.6", ":include: nesting limit exceeded");
    }
    let uid = usr.pw.as_ref().map_or(0, |p| p.uid);
    if ctx.been_here(format!("include {uid} {path}")) {
        return;
    }
    st.exp_from = Some(st.local.clone());
    let config = "mail system configuration error";
    if !path.starts_with('/') {
        postern_log::warning!(":include:{path} uses a relative path");
        return ctx.bounce(&st, "5.3.5", config);
    }
    let md = match as_user(ctx.s, &usr, || std::fs::metadata(path)) {
        Ok(Ok(md)) => md,
        Ok(Err(e)) => {
            postern_log::warning!("unable to lookup :include: file {path}: {e}");
            return ctx.bounce(&st, "5.3.5", config);
        }
        Err(e) => return ctx.fail(&st, e),
    };
    if !md.is_file() {
        postern_log::warning!(":include: file {path} is not a regular file");
        return ctx.bounce(&st, "5.3.5", config);
    }
    if md.mode() & 0o002 != 0 {
        postern_log::warning!(":include: file {path} is world writable");
        return ctx.bounce(&st, "5.3.5", config);
    }
    st.exp_type = exp::INCLUDE;
    if ctx.s.as_root && uid == 0 {
        match privs::lookup_uid(md.uid()) {
            Ok(Some(pw)) => {
                if pw.uid != 0 {
                    usr = UserAttr { pw: Some(pw) };
                }
            }
            _ => {
                postern_log::warning!("{path}: cannot find :include: file owner username");
                return ctx.defer(&st, "4.3.5", config);
            }
        }
    }
    if st.owner.is_none() {
        st.owner = Some(st.rcpt.address.clone());
    }
    let text = match read_list(ctx.s, &usr, path, false, &md) {
        Ok((_, t)) => t,
        Err(e) => {
            postern_log::warning!("cannot open include file {path}: {}", e.text);
            return ctx.bounce(&st, "5.3.5", config);
        }
    };
    if ctx.s.propagate_extensions & exp::INCLUDE == 0 {
        st.unmatched = None;
    }
    token_lines(ctx, &st, &usr, &text);
}

/// Delivers to the destinations of the user's `.forward` file. Returns
/// false when there is none (or it is unusable), so the mailbox gets the mail.
pub(crate) fn dotforward(ctx: &mut Ctx<'_>, st: &State, _usr: &UserAttr) -> bool {
    if ctx.s.forward_path.is_empty() || !ctx.s.as_root {
        return false;
    }
    let pw = match privs::lookup_user(&st.user) {
        Ok(Some(pw)) => pw,
        Ok(None) => return false,
        Err(e) => {
            postern_log::warning!("error looking up passwd info for {}: {e}", st.user);
            ctx.defer(st, "4.0.0", "user lookup error");
            return true;
        }
    };
    let mut st = st.clone();
    st.level += 1;
    if !ctx.s.frozen_delivered_to {
        st.delivered = st.rcpt.address.clone();
    }
    let usr = UserAttr {
        pw: Some(pw.clone()),
    };
    st.exp_type = exp::FORWARD;
    st.owner = Some(st.user.clone());
    let vars = st.vars(ctx.s, &usr);
    let mut found = None;
    for entry in ctx
        .s
        .forward_path
        .split([',', ' ', '\t', '\n'])
        .filter(|e| !e.is_empty())
    {
        let e = crate::expand::expand(entry, &vars, Some(&ctx.s.forward_expansion_filter));
        if e.error || e.undefined {
            continue;
        }
        if let Ok(Ok(md)) = as_user(ctx.s, &usr, || std::fs::symlink_metadata(&e.text)) {
            if e.extension_used || ctx.s.propagate_extensions & exp::FORWARD == 0 {
                st.unmatched = None;
            }
            found = Some((e.text, md));
            break;
        }
    }
    let Some((path, md)) = found else {
        return false;
    };
    if ctx.been_here(format!("forward {path}")) {
        return ctx.been_here_check(&format!("forward-done {path}"));
    }
    st.exp_from = Some(st.local.clone());
    if !md.file_type().is_file() {
        postern_log::warning!("file {path} is not a regular file");
        return false;
    }
    if !forward_file_ok(&path, &md, pw.uid) {
        return false;
    }
    // Checked again on the open descriptor: the name may have changed since.
    let text = match read_list(ctx.s, &usr, &path, true, &md) {
        Ok((md, t)) if forward_file_ok(&path, &md, pw.uid) => t,
        Ok(_) => return false,
        Err(e) => {
            postern_log::warning!("cannot open file {path}: {}", e.text);
            return false;
        }
    };
    st.strip_success();
    let count = token_lines(ctx, &st, &usr, &text);
    if count > 0 {
        ctx.been_here(format!("forward-done {path}"));
        return true;
    }
    false
}

/// A `.forward` file must belong to the user or root and not be
/// world-writable.
fn forward_file_ok(path: &str, md: &std::fs::Metadata, uid: u32) -> bool {
    if md.uid() != 0 && md.uid() != uid {
        postern_log::warning!("file {path} has bad owner uid {}", md.uid());
        return false;
    }
    if md.mode() & 0o002 != 0 {
        postern_log::warning!("file {path} is world writable");
        return false;
    }
    true
}
