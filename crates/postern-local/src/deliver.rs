//! One delivery request → one result per recipient.
//!
//! For each recipient of a [`DeliverRequest`] (qmgr sends only recipients
//! whose domain is local), [`deliver`] runs Postfix's local(8) delivery
//! switch ([`crate::recipient`]): loop and nesting checks, `alias_maps`,
//! `.forward`, the mailbox ([`crate::mailbox`]: `mailbox_transport`,
//! `mailbox_command`, Maildir or mbox), and unknown users
//! (`fallback_transport`, `luser_relay`). Aliases, `.forward` and
//! `:include:` files expand into `|command`s ([`crate::command`]), `/file`s
//! ([`crate::file`]) and addresses: local ones are delivered in this process,
//! others are forwarded as a new message through cleanup ([`crate::forward`]).
//!
//! Every final destination is a *leaf* with its own result and log line
//! (`to=<expanded>, orig_to=<original>`). The result returned to qmgr for a
//! requested recipient combines its leaves as Postfix's status does: any
//! deferral defers the recipient (and cancels its pending forwards, so a
//! retry does not duplicate them), else any bounce bounces it, else it was
//! sent. A per-recipient duplicate filter (`duplicate_filter_limit`)
//! suppresses repeated destinations.
//!
//! # Where mail goes
//! * As root: the user must exist in the password database. Writes run with
//!   the user's effective ids (a spool mbox is opened and created as root
//!   first, as Postfix does); commands run in a child process with the
//!   user's (or `default_privs`') real ids.
//! * Not root (a test or developer instance): no password lookup and no
//!   `.forward`; any local part is delivered, as the current user, to
//!   `$mail_spool_directory/<local>`.
//!
//! # Errors
//! [`DeliveryError::from_io`] maps system errors to DSN codes.
//!
//! # Configuration
//! See [`crate::settings`].

use crate::alias::MapList;
use crate::recipient::{self, State, UserAttr};
use crate::settings::LocalSettings;
use postern_ipc::proto::{
    Action, CleanupReply, CleanupRequest, DeliverReply, DeliverRequest, RcptResult, Recipient,
};
use postern_mail::address::strip_angle;
use postern_mail::header;
pub use postern_mailbox::DeliveryError;
use postern_qfile::QueueFile;
use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

/// The other services local talks to: delivery agents (`mailbox_transport`,
/// `fallback_transport`) and cleanup (forwarding).
pub trait Services {
    /// Hands one recipient to another transport (Postfix's `deliver_pass`).
    fn pass(&self, req: &DeliverRequest) -> Result<RcptResult, String>;
    /// Submits a new message to cleanup.
    fn cleanup(&self, req: &CleanupRequest) -> Result<CleanupReply, String>;
}

/// Services that are not there (unit tests, tools).
#[derive(Debug, Default)]
pub struct NoServices;

impl Services for NoServices {
    fn pass(&self, req: &DeliverRequest) -> Result<RcptResult, String> {
        Err(format!(
            "connect to private/{}: no such service",
            req.transport
        ))
    }
    fn cleanup(&self, _req: &CleanupRequest) -> Result<CleanupReply, String> {
        Err("connect to public/cleanup: no such service".into())
    }
}

/// Tables opened once per process.
#[derive(Debug)]
pub struct Tables {
    /// `alias_maps`.
    pub aliases: MapList,
    /// `mailbox_command_maps`.
    pub mailbox_command: MapList,
    /// `mailbox_transport_maps`.
    pub mailbox_transport: MapList,
    /// `fallback_transport_maps`.
    pub fallback_transport: MapList,
}

impl Tables {
    /// Opens the tables the settings name.
    pub fn open(s: &LocalSettings) -> Tables {
        Tables {
            aliases: MapList::open("alias_maps", &s.alias_maps),
            mailbox_command: MapList::open("mailbox_command_maps", &s.mailbox_command_maps),
            mailbox_transport: MapList::open("mailbox_transport_maps", &s.mailbox_transport_maps),
            fallback_transport: MapList::open(
                "fallback_transport_maps",
                &s.fallback_transport_maps,
            ),
        }
    }
}

/// One final destination's outcome.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub rcpt: Recipient,
    pub action: Action,
    pub dsn: String,
    pub text: String,
    pub relay: String,
    /// Already logged by another delivery agent (`deliver_pass`).
    pub logged: bool,
}

/// Per-request context shared by the delivery steps.
pub(crate) struct Ctx<'a> {
    pub s: &'a LocalSettings,
    pub t: &'a Tables,
    pub svc: &'a dyn Services,
    pub req: &'a DeliverRequest,
    pub qf: &'a QueueFile,
    dup: HashSet<String>,
    loop_hdrs: HashSet<String>,
    pub forwards: Vec<crate::forward::Batch>,
    pub leaves: Vec<Leaf>,
}

impl Ctx<'_> {
    /// Postfix's `been_here`: true when `key` was seen for this recipient.
    /// A full filter forgets nothing and remembers nothing new.
    pub fn been_here(&mut self, key: String) -> bool {
        let key = key.to_lowercase();
        if self.dup.contains(&key) {
            return true;
        }
        if self.s.duplicate_filter_limit == 0 || self.dup.len() < self.s.duplicate_filter_limit {
            self.dup.insert(key);
        }
        false
    }

    /// Whether `key` was seen, without recording it.
    pub fn been_here_check(&self, key: &str) -> bool {
        self.dup.contains(&key.to_lowercase())
    }

    /// Whether the message already has `Delivered-To: <addr>`.
    pub fn is_loop(&self, addr: &str) -> bool {
        self.loop_hdrs.contains(&addr.to_lowercase())
    }

    /// Records a result for the current destination.
    pub fn leaf(&mut self, st: &State, action: Action, dsn: &str, text: impl Into<String>) {
        self.leaves.push(Leaf {
            rcpt: st.rcpt.clone(),
            action,
            dsn: dsn.to_string(),
            text: text.into(),
            relay: "local".into(),
            logged: false,
        });
    }

    /// A successful delivery.
    pub fn sent(&mut self, st: &State, text: impl Into<String>) {
        self.leaf(st, Action::Sent, "2.0.0", text);
    }

    /// A permanent failure.
    pub fn bounce(&mut self, st: &State, dsn: &str, text: impl Into<String>) {
        self.leaf(st, Action::Bounce, dsn, text);
    }

    /// A temporary failure.
    pub fn defer(&mut self, st: &State, dsn: &str, text: impl Into<String>) {
        self.leaf(st, Action::Defer, dsn, text);
    }

    /// A failure classified by its DSN.
    pub fn fail(&mut self, st: &State, e: DeliveryError) {
        let action = if e.permanent {
            Action::Bounce
        } else {
            Action::Defer
        };
        self.leaf(st, action, &e.dsn, e.text);
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn log_leaf(req: &DeliverRequest, l: &Leaf, start: f64, end: f64) {
    let active = req.active_since.max(req.arrival);
    let line =
        postern_log::delivery::format_delivery_line(&postern_log::delivery::DeliveryRecord {
            queue_id: &req.queue_id,
            to: &l.rcpt.address,
            orig_to: &l.rcpt.original,
            relay: &l.relay,
            delay: end - req.arrival,
            delays: [active - req.arrival, start - active, 0.0, end - start],
            dsn: &l.dsn,
            status: l.action.as_str(),
            text: &l.text,
        });
    postern_log::info(line);
}

/// The result for a requested recipient from its leaves.
fn combine(rcpt: &Recipient, leaves: &[Leaf]) -> RcptResult {
    let pick = leaves
        .iter()
        .find(|l| l.action == Action::Defer)
        .or_else(|| leaves.iter().find(|l| l.action == Action::Bounce))
        .or_else(|| leaves.first());
    let Some(l) = pick else {
        // Everything was a duplicate of something already delivered.
        return RcptResult {
            recipient: rcpt.clone(),
            action: Action::Sent,
            dsn: "2.0.0".into(),
            text: "delivered".into(),
            relay: "local".into(),
        };
    };
    let text = if l.action != Action::Sent && !l.rcpt.address.eq_ignore_ascii_case(&rcpt.address) {
        format!("<{}>: {}", l.rcpt.address, l.text)
    } else {
        l.text.clone()
    };
    RcptResult {
        recipient: rcpt.clone(),
        action: l.action,
        dsn: l.dsn.clone(),
        text,
        relay: l.relay.clone(),
    }
}

/// Delivers `qf` to every recipient of `req`; one result per recipient, in order.
pub fn deliver(
    settings: &LocalSettings,
    tables: &Tables,
    svc: &dyn Services,
    req: &DeliverRequest,
    qf: &QueueFile,
) -> DeliverReply {
    let loop_hdrs = header::find_all(&qf.content, "delivered-to")
        .map(|f| strip_angle(&f.value_string()).to_lowercase())
        .collect();
    let mut ctx = Ctx {
        s: settings,
        t: tables,
        svc,
        req,
        qf,
        dup: HashSet::new(),
        loop_hdrs,
        forwards: Vec::new(),
        leaves: Vec::new(),
    };
    let mut results = Vec::with_capacity(req.recipients.len());
    for rcpt in &req.recipients {
        let start = now();
        ctx.dup.clear();
        ctx.leaves.clear();
        ctx.forwards.clear();
        recipient::deliver_recipient(&mut ctx, State::top(req, rcpt), UserAttr::default());
        let cancel = ctx.leaves.iter().any(|l| l.action == Action::Defer);
        crate::forward::finish(&mut ctx, cancel);
        let end = now();
        for l in ctx.leaves.iter().filter(|l| !l.logged) {
            log_leaf(req, l, start, end);
        }
        results.push(combine(rcpt, &ctx.leaves));
    }
    DeliverReply { results }
}

#[cfg(test)]
#[path = "deliver_tests.rs"]
mod tests;
