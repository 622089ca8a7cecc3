//! Forwarding: addresses from aliases, `.forward` and `:include:` files that
//! are not delivered in this process become a new message through cleanup
//! (Postfix's `forward.c`).
//!
//! Recipients are collected per (`Delivered-To` address, envelope sender)
//! while one requested recipient is expanded; [`finish`] then submits one
//! message per group: the original content with `Delivered-To: ADDRESS`
//! (lower case; with `forward` in `prepend_delivered_header`) prepended,
//! from the original sender or the `owner-` alias, with ENVID and RET kept
//! unless an `owner-` alias reset them, and each recipient's original
//! address, ORCPT and NOTIFY (without SUCCESS). cleanup adds a `Received:`
//! header with the new queue ID and counts hops (`hopcount_limit`), which
//! ends forwarding loops between hosts. Each recipient is logged as
//! "forwarded as QUEUEID"; a failure defers the requested recipient with
//! 4.3.0 "unable to forward message". Groups are not sent when the recipient
//! is deferred anyway, so that a retry does not duplicate them.
//!
//! # Security
//! The new message carries no client attributes, so no header that claims
//! network origin is made for it.
//!
//! # Configuration
//! `prepend_delivered_header`.

use crate::deliver::{Ctx, Leaf};
use crate::recipient::State;
use postern_ipc::proto::{Action, CleanupRequest, CleanupStatus, Recipient, cleanup_flags, notify};
use std::time::{SystemTime, UNIX_EPOCH};

/// Recipients to forward with one `Delivered-To` address and sender.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    delivered: String,
    sender: String,
    envid: String,
    ret: String,
    rcpts: Vec<Recipient>,
}

/// Adds the current address to the forwarding batch of its group.
pub(crate) fn append(ctx: &mut Ctx<'_>, st: &State) {
    let i = match ctx
        .forwards
        .iter()
        .position(|b| b.delivered == st.delivered && b.sender == st.sender)
    {
        Some(i) => i,
        None => {
            ctx.forwards.push(Batch {
                delivered: st.delivered.clone(),
                sender: st.sender.clone(),
                envid: st.envid.clone(),
                ret: st.ret.clone(),
                rcpts: Vec::new(),
            });
            ctx.forwards.len() - 1
        }
    };
    ctx.forwards[i].rcpts.push(st.rcpt.clone());
}

fn strip_success(n: u8) -> u8 {
    if n == notify::SUCCESS {
        notify::NEVER
    } else {
        n & !notify::SUCCESS
    }
}

/// Submits every batch (unless `cancel`), recording a leaf per recipient.
pub(crate) fn finish(ctx: &mut Ctx<'_>, cancel: bool) {
    let batches = std::mem::take(&mut ctx.forwards);
    if cancel {
        return;
    }
    for b in batches {
        let mut content = Vec::with_capacity(ctx.qf.content.len() + 128);
        if ctx.s.delivered_header("forward") {
            content.extend_from_slice(
                format!(
                    "Delivered-To: {}\n",
                    b.delivered.to_lowercase().replace(['\r', '\n'], "")
                )
                .as_bytes(),
            );
        }
        content.extend_from_slice(&ctx.qf.content);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // As Postfix's forward.c: the original queue ID, which also tells cleanup that
        // this is a forwarded message (ARC sealing's `local_forward`).
        let mut attrs = vec![("log_ident".to_string(), ctx.req.queue_id.clone())];
        if !b.envid.is_empty() {
            attrs.push(("envid".to_string(), b.envid.clone()));
        }
        if !b.ret.is_empty() {
            attrs.push(("ret".to_string(), b.ret.clone()));
        }
        let recipients: Vec<Recipient> = b
            .rcpts
            .iter()
            .map(|r| Recipient {
                notify: strip_success(r.notify),
                offset: 0,
                ..r.clone()
            })
            .collect();
        let req = CleanupRequest {
            flags: cleanup_flags::BOUNCE_ON_REJECT,
            sender: b.sender.clone(),
            fullname: String::new(),
            arrival: (now.as_secs(), now.subsec_micros()),
            recipients,
            attrs,
            content,
        };
        let (action, dsn, text) = match ctx.svc.cleanup(&req) {
            Ok(r) if r.status == CleanupStatus::Ok => (
                Action::Sent,
                "2.0.0",
                format!("forwarded as {}", r.queue_id),
            ),
            Ok(r) => {
                postern_log::warning!(
                    "{}: cleanup refused forwarded message: {}",
                    ctx.req.queue_id,
                    r.reason
                );
                (Action::Defer, "4.3.0", "unable to forward message".into())
            }
            Err(e) => {
                postern_log::warning!("{}: forward: {e}", ctx.req.queue_id);
                (Action::Defer, "4.3.0", "unable to forward message".into())
            }
        };
        for r in b.rcpts {
            ctx.leaves.push(Leaf {
                rcpt: r,
                action,
                dsn: dsn.into(),
                text: text.clone(),
                relay: "local".into(),
                logged: false,
            });
        }
    }
}
