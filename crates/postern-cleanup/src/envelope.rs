//! Envelope address processing, in Postfix cleanup's order.
//!
//! * Sender: rewrite in the local context (qualify, bang path, percent hack);
//!   `MAILER-DAEMON@$myorigin` becomes the null sender; then
//!   `sender_canonical_maps`, `canonical_maps` and masquerading (each when its
//!   classes include `envelope_sender`); then `sender_bcc_maps`.
//! * Each recipient: the same rewriting with `recipient_canonical_maps`,
//!   `canonical_maps` and masquerading (`envelope_recipient`), then virtual
//!   alias expansion, duplicate elimination (`duplicate_filter_limit`,
//!   case-insensitive), then `recipient_bcc_maps` on the canonical address.
//! * Automatic BCC recipients (`always_bcc`, the bcc maps, header_checks BCC)
//!   are processed like recipients and carry DSN NOTIFY=NEVER.
//!
//! Address mappings (canonical, masquerading, virtual aliases) are skipped
//! with `receive_override_options = no_address_mappings`; automatic BCC is
//! skipped then and for Postern's own notifications.
//!
//! # Security
//! Every expansion is bounded ([`crate::virtual_alias`]); table failures defer.
//!
//! # Configuration
//! See [`crate::tables`].

use crate::addr::{self, Context};
use crate::maps::{Trail, map_address, map11};
use crate::tables::{Tables, classes};
use postern_ipc::proto::notify;
use postern_qfile::RecipientRecord;
use std::collections::HashSet;

/// The switches for one message.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// Address mappings allowed.
    pub map_ok: bool,
    /// Automatic BCC allowed.
    pub bcc_ok: bool,
}

/// Envelope state of one message being built.
pub struct Envelope<'a> {
    t: &'a Tables,
    mode: Mode,
    myorigin: &'a str,
    qid: &'a str,
    dup_limit: usize,
    seen: HashSet<(String, String, u8, String)>,
    /// The recipients to queue, in order.
    pub recipients: Vec<RecipientRecord>,
    /// The last envelope recipient after canonical mapping (for logs).
    pub last_recipient: Option<String>,
}

impl<'a> Envelope<'a> {
    /// A new, empty envelope.
    pub fn new(t: &'a Tables, mode: Mode, myorigin: &'a str, qid: &'a str, dup: usize) -> Self {
        Envelope {
            t,
            mode,
            myorigin,
            qid,
            dup_limit: dup.max(1),
            seen: HashSet::new(),
            recipients: Vec::new(),
            last_recipient: None,
        }
    }

    fn local(&self, a: &str) -> String {
        let ctx = Context {
            origin: self.myorigin,
            domain: &self.t.mydomain,
        };
        addr::rewrite(&self.t.rules, &ctx, a)
    }

    /// Canonical maps and masquerading for one address of class `from`
    /// (`ENV_FROM`/`HDR_FROM`) or `rcpt` (`ENV_RCPT`/`HDR_RCPT`).
    pub fn canonical(&self, a: &str, class: u8, sender: bool, trail: &mut Trail) -> String {
        let t = self.t;
        let mut a = a.to_string();
        let p = t.propagate_canonical;
        let own = if sender {
            &t.sender_canonical
        } else {
            &t.recipient_canonical
        };
        for (maps, cls) in [own, &t.canonical] {
            if *cls & class != 0 && !maps.is_empty() {
                a = map11(maps, &a, p, &t.env, self.qid, trail);
            }
        }
        let (masq, cls) = &t.masquerade;
        if *cls & class != 0 && masq.is_active() {
            a = masq.apply(&a, self.qid, trail);
        }
        a
    }

    /// Processes the envelope sender; returns it (internal form).
    pub fn sender(&mut self, raw: &str, trail: &mut Trail) -> String {
        let mut s = self.local(raw);
        let daemon = self.local("MAILER-DAEMON");
        if s.eq_ignore_ascii_case(&daemon) {
            s.clear();
        }
        if self.mode.map_ok && !s.is_empty() {
            s = self.canonical(&s, classes::ENV_FROM, true, trail);
        }
        if self.mode.bcc_ok && !s.is_empty() && !self.t.sender_bcc.is_empty() {
            self.bcc_lookup(true, &s, trail);
        }
        s
    }

    fn bcc_lookup(&mut self, sender: bool, a: &str, trail: &mut Trail) {
        let maps = if sender {
            &self.t.sender_bcc
        } else {
            &self.t.recipient_bcc
        };
        match map_address(maps, a, false, &self.t.env) {
            Ok(Some(list)) => {
                if let Some(first) = list.into_iter().next() {
                    self.bcc(&first, trail);
                }
            }
            Ok(None) => {}
            Err(e) => trail.table_error(format!(
                "{}: {} map lookup problem ({e})",
                self.qid, maps.title
            )),
        }
    }

    /// Adds one envelope recipient (`original` as received, may be empty).
    pub fn recipient(
        &mut self,
        raw: &str,
        original: &str,
        orcpt: &str,
        notify: u8,
        trail: &mut Trail,
    ) {
        let mut a = self.local(raw);
        if a.is_empty() || a.contains(['\0', '\n']) {
            return;
        }
        if self.mode.map_ok {
            a = self.canonical(&a, classes::ENV_RCPT, false, trail);
        }
        self.last_recipient = Some(a.clone());
        let original = if original.is_empty() {
            a.clone()
        } else {
            self.local(original)
        };
        self.expand_and_add(&a, &original, orcpt, notify, trail);
        if self.mode.bcc_ok && !self.t.recipient_bcc.is_empty() {
            self.bcc_lookup(false, &a, trail);
        }
    }

    /// Adds an automatic BCC recipient (NOTIFY=NEVER).
    pub fn bcc(&mut self, raw: &str, trail: &mut Trail) {
        let mut a = self.local(raw);
        if a.is_empty() || a.contains(['\0', '\n']) {
            return;
        }
        if self.mode.map_ok {
            a = self.canonical(&a, classes::ENV_RCPT, false, trail);
        }
        let orig = a.clone();
        self.expand_and_add(&a, &orig, "", notify::NEVER, trail);
    }

    /// `always_bcc`, added when the message has a recipient.
    pub fn always_bcc(&mut self, trail: &mut Trail) {
        if self.mode.bcc_ok && !self.t.always_bcc.is_empty() && !self.recipients.is_empty() {
            let b = self.t.always_bcc.clone();
            self.bcc(&b, trail);
        }
    }

    fn expand_and_add(
        &mut self,
        a: &str,
        original: &str,
        orcpt: &str,
        notify: u8,
        trail: &mut Trail,
    ) {
        let t = self.t;
        let list = if self.mode.map_ok && !t.virtual_alias.is_empty() {
            crate::virtual_alias::expand(
                &t.virtual_alias,
                a,
                t.propagate_virtual,
                &t.env,
                &t.limits,
                self.qid,
                trail,
            )
        } else {
            vec![a.to_string()]
        };
        for addr in list {
            let key = if t.original_recipient {
                (
                    orcpt.to_string(),
                    original.to_ascii_lowercase(),
                    notify,
                    addr.to_ascii_lowercase(),
                )
            } else {
                (String::new(), String::new(), 0, addr.to_ascii_lowercase())
            };
            if self.seen.contains(&key) {
                continue;
            }
            if self.seen.len() < self.dup_limit {
                self.seen.insert(key);
            }
            self.recipients.push(RecipientRecord {
                address: addr,
                original: original.to_string(),
                orcpt: orcpt.to_string(),
                notify,
                ..Default::default()
            });
        }
    }
}
