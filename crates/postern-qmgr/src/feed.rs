//! Feeding the active queue: incremental scans of `incoming/` and
//! `deferred/` (Postfix's `qmgr_scan` and `qmgr_active_feed`), reading a
//! message, routing its recipients and queueing its delivery jobs.
//!
//! The scans read their directory in batches and stop while the active queue
//! is full (`qmgr_message_active_limit`); they resume where they stopped, so
//! each message costs one `readdir` entry, one `stat`, one rename and one read
//! however many messages are queued. A deferred file's next-retry time (its
//! mtime) is looked at only when the scan reaches it. Passes start on cleanup's
//! `I` trigger (incoming), on the `queue_run_delay` timer (deferred), and on a
//! flush (`postqueue -f`, `sendmail -q`: both, ignoring retry times and
//! `defer_transports`).
//!
//! # Security
//! Names come from the scan (valid queue IDs only); a damaged file goes to
//! `corrupt/`.
//!
//! # Configuration
//! `qmgr_message_active_limit`, `defer_transports`, `soft_bounce`,
//! `maximal_queue_lifetime`, `bounce_queue_lifetime`, the per-transport
//! `*_destination_*` limits (see [`crate::conc`]).

use crate::conc::{Conc, Feedback, Limits};
use crate::resolve::Route;
use crate::sched::{Dest, Msg, Qmgr, now_f};
use crate::worker::{self, Job};
use postern_config::{Str, p};
use postern_ipc::proto::{Action, DeliverRequest, RcptResult, Recipient};
use postern_queue::{ReadError, Scan, ScanFlags};
use std::collections::{HashMap, VecDeque};
use std::time::{Instant, SystemTime};

/// At most this many directory entries are looked at per main-loop round,
/// so that delivery results are handled while a long scan goes on.
const EXAMINE_PER_ROUND: usize = 1000;
/// At most this many messages are activated per main-loop round.
const FEED_PER_ROUND: usize = 100;

/// Postfix's soft bounce: a permanent status becomes temporary (5.x.y → 4.x.y).
pub fn soften(dsn: &str) -> String {
    match dsn.strip_prefix('5') {
        Some(rest) => format!("4{rest}"),
        None => dsn.to_string(),
    }
}

/// The recipients of a queue file still to deliver, as delivery requests carry them.
fn pending_recipients(qf: &postern_qfile::QueueFile) -> Vec<Recipient> {
    qf.pending()
        .map(|r| Recipient {
            address: r.address.clone(),
            original: r.original.clone(),
            orcpt: r.orcpt.clone(),
            notify: r.notify,
            offset: r.offset,
        })
        .collect()
}

impl Qmgr {
    pub(crate) fn active_limit(&self) -> usize {
        self.cfg.int(p::QMGR_MESSAGE_ACTIVE_LIMIT).max(1) as usize
    }

    pub(crate) fn has_room(&self) -> bool {
        self.msgs.len() < self.active_limit()
    }

    /// Whether a scan has more to feed now (the main loop then does not wait).
    pub(crate) fn can_feed(&self) -> bool {
        self.has_room() && (self.incoming.busy() || self.deferred.busy())
    }

    /// Feeds the active queue from the scans under way, alternating between
    /// incoming and deferred as Postfix does, within this round's budget.
    pub(crate) fn feed(&mut self) {
        let (mut examined, mut fed) = (0, 0);
        let mut turn_deferred = self.last_fed_incoming;
        while examined < EXAMINE_PER_ROUND && fed < FEED_PER_ROUND && self.has_room() {
            let (inc, def) = (self.incoming.busy(), self.deferred.busy());
            let deferred = match (inc, def) {
                (false, false) => break,
                (true, false) => false,
                (false, true) => true,
                (true, true) => turn_deferred,
            };
            turn_deferred = !deferred;
            let scan: &mut Scan = if deferred {
                &mut self.deferred
            } else {
                &mut self.incoming
            };
            let next = scan.next_id();
            let (queue, flags, started) = (scan.queue(), scan.flags(), scan.pass_started());
            match next {
                Ok(Some(id)) => {
                    examined += 1;
                    if self.feed_one(queue, &id, flags, started) {
                        fed += 1;
                        self.last_fed_incoming = !deferred;
                    }
                }
                Ok(None) => {
                    if !deferred {
                        self.tokens.caught_up();
                    }
                }
                Err(e) => postern_log::warning(format!("scan {queue}: {e}")),
            }
        }
    }

    /// Moves one file into the active queue if it is ready (and, for
    /// deferred mail, due). Returns whether it was activated.
    fn feed_one(&mut self, queue: &str, id: &str, flags: ScanFlags, started: SystemTime) -> bool {
        if self.msgs.contains_key(id) {
            return false;
        }
        let e = match self.q.stat(queue, id) {
            Ok(e) => e,
            Err(ReadError::NotFound(_)) => return false,
            Err(e) => {
                postern_log::warning(format!("scan {queue}: {e}"));
                return false;
            }
        };
        if !e.ready {
            return false;
        }
        if queue == "deferred" {
            if !flags.all {
                if !self.flushed.1.is_empty() {
                    self.flushed = (SystemTime::UNIX_EPOCH, Default::default());
                }
                if e.mtime > SystemTime::now() {
                    return false; // not due yet
                }
            }
            // A flush tries each message once: one it fed and that came back
            // deferred during the same pass is left for its retry time. (Not a
            // time comparison: a message whose deferral finished just after the
            // flush was asked for must still be tried.)
            if flags.all {
                if self.flushed.0 != started {
                    self.flushed = (started, Default::default());
                }
                if !self.flushed.1.insert(id.to_string()) {
                    return false;
                }
            }
        }
        match postern_queue_admin::move_file(&self.q, queue, "active", id) {
            Ok(()) => {
                self.stats.activated += 1;
                self.activate(id, flags.all);
                if queue == "incoming" {
                    self.tokens.fed();
                }
                true
            }
            Err(err) if err.is_not_found() => false,
            Err(err) => {
                postern_log::warning(format!("{id}: move to active: {err}"));
                false
            }
        }
    }

    /// Reads an active message and queues its jobs. `flush`: the message
    /// came in with a flush (`defer_transports` does not apply).
    fn activate(&mut self, id: &str, flush: bool) {
        let limit = postern_server::client::content_frame_limit(&self.cfg);
        let qf = match self.q.read("active", id, limit) {
            Ok(qf) => qf,
            Err(ReadError::NotFound(_)) => return,
            Err(e) => {
                postern_log::warning(format!("{id}: {e}; moved to corrupt/"));
                if let Err(e) = postern_queue_admin::move_file(&self.q, "active", "corrupt", id) {
                    postern_log::warning(format!("{id}: {e}"));
                }
                return;
            }
        };
        let pending = pending_recipients(&qf);
        postern_log::info(format!(
            "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
            qf.sender,
            qf.content.len(),
            pending.len()
        ));
        let arrival = qf.arrival.0 as f64 + qf.arrival.1 as f64 / 1e6;
        let base = DeliverRequest {
            queue_name: "active".into(),
            queue_id: id.to_string(),
            sender: qf.sender.clone(),
            envid: qf.attr("envid").unwrap_or("").to_string(),
            ret: qf.attr("ret").unwrap_or("").to_string(),
            arrival,
            active_since: now_f(),
            ..Default::default()
        };
        self.msgs.insert(
            id.to_string(),
            Msg {
                arrival,
                null_sender: qf.sender.is_empty(),
                outstanding: 0,
                deferred: 0,
                base: base.clone(),
                expiring: false,
            },
        );
        if pending.is_empty() {
            self.finalize(id);
            return;
        }
        if let Some(reject) = qf.attr("cleanup_reject") {
            let (dsn, text) = reject.split_once(' ').unwrap_or(("5.0.0", reject));
            self.decide(&base, pending, Action::Bounce, dsn, text, true);
            return;
        }
        let mut groups: HashMap<Route, Vec<Recipient>> = HashMap::new();
        for r in pending {
            match self
                .resolver
                .resolve_filtered(&r.address, qf.attr("filter"))
            {
                Ok(route) if !flush && self.defer_transports.contains(&route.transport) => {
                    self.decide(
                        &base,
                        vec![r],
                        Action::Defer,
                        "4.3.2",
                        "deferred transport",
                        true,
                    );
                }
                Ok(route) => groups.entry(route).or_default().push(r),
                Err(u) => {
                    let action = if u.temporary {
                        Action::Defer
                    } else {
                        Action::Bounce
                    };
                    self.decide(&base, vec![r], action, &u.dsn, &u.text, true);
                }
            }
        }
        for (route, rcpts) in groups {
            self.enqueue(&base, route, rcpts);
        }
    }

    fn feedback_for(&self, transport: &str, general: Str) -> Feedback {
        let v = self.cfg.transport_str(transport, general);
        Feedback::parse(&v).unwrap_or_else(|| {
            let specific = general.name().replacen("default", transport, 1);
            postern_log::warning(format!(
                "{specific}: bad value \"{v}\"; using 1 (expected N, N/concurrency or N/sqrt_concurrency)"
            ));
            Feedback::Constant(1.0)
        })
    }

    fn limits_for(&self, transport: &str) -> Limits {
        let cfg = &self.cfg;
        let initial = cfg
            .int(p::INITIAL_DESTINATION_CONCURRENCY)
            .clamp(1, 100_000) as u32;
        let limit = cfg
            .transport_int(transport, p::DEFAULT_DESTINATION_CONCURRENCY_LIMIT)
            .clamp(0, 100_000) as u32;
        let cohort_limit = cfg
            .transport_int(
                transport,
                p::DEFAULT_DESTINATION_CONCURRENCY_FAILED_COHORT_LIMIT,
            )
            .max(0) as f64;
        Limits {
            initial,
            limit,
            positive: self.feedback_for(
                transport,
                p::DEFAULT_DESTINATION_CONCURRENCY_POSITIVE_FEEDBACK,
            ),
            negative: self.feedback_for(
                transport,
                p::DEFAULT_DESTINATION_CONCURRENCY_NEGATIVE_FEEDBACK,
            ),
            cohort_limit,
        }
    }

    fn enqueue(&mut self, base: &DeliverRequest, route: Route, rcpts: Vec<Recipient>) {
        let rlimit = self
            .cfg
            .transport_int(&route.transport, p::DEFAULT_DESTINATION_RECIPIENT_LIMIT)
            .max(1) as usize;
        let limits = self.limits_for(&route.transport);
        let rate_delay = self
            .cfg
            .transport_time(&route.transport, p::DEFAULT_DESTINATION_RATE_DELAY);
        for chunk in rcpts.chunks(rlimit) {
            // With one recipient per delivery, Postfix's "destination" is the recipient.
            let key = if rlimit == 1 {
                Route {
                    transport: route.transport.clone(),
                    nexthop: chunk[0].address.to_ascii_lowercase(),
                }
            } else {
                route.clone()
            };
            let mut req = base.clone();
            req.transport = route.transport.clone();
            req.nexthop = route.nexthop.clone();
            req.recipients = chunk.to_vec();
            if let Some(m) = self.msgs.get_mut(&base.queue_id) {
                m.outstanding += 1;
            }
            if !self.dests.contains_key(&key) {
                self.order.push_back(key.clone());
            }
            let dest = self.dests.entry(key).or_insert_with(|| Dest {
                jobs: VecDeque::new(),
                active: 0,
                limits,
                conc: Conc::new(&limits),
                dead: None,
                rate_delay,
                next_start: Instant::now(),
                remember_until: Instant::now(),
            });
            dest.jobs.push_back(Job {
                request: req,
                decided: None,
            });
        }
    }

    /// Results qmgr decides itself (cleanup rejections, routing failures,
    /// `defer_transports`, expiry): logged here when `log`, booked on a
    /// worker thread like any delivery. With `soft_bounce` a bounce becomes
    /// a deferral.
    pub(crate) fn decide(
        &mut self,
        base: &DeliverRequest,
        rcpts: Vec<Recipient>,
        action: Action,
        dsn: &str,
        text: &str,
        log: bool,
    ) {
        let (action, dsn) = if action == Action::Bounce && self.soft_bounce {
            (Action::Defer, soften(dsn))
        } else {
            (action, dsn.to_string())
        };
        let results: Vec<RcptResult> = rcpts
            .into_iter()
            .map(|r| RcptResult {
                recipient: r,
                action,
                dsn: dsn.clone(),
                text: text.to_string(),
                relay: "none".into(),
            })
            .collect();
        if log {
            for r in &results {
                worker::log_result(&base.queue_id, base, r, action.as_str());
            }
        }
        let mut req = base.clone();
        req.recipients = results.iter().map(|r| r.recipient.clone()).collect();
        if let Some(m) = self.msgs.get_mut(&base.queue_id) {
            m.outstanding += 1;
        }
        self.spawn(
            Job {
                request: req,
                decided: Some(results),
            },
            None,
        );
    }

    /// The message is too old and still has deferred recipients (checked
    /// after each delivery attempt, as Postfix's `qmgr_active_done`): each
    /// pending recipient bounces with its last deferral reason. Returns
    /// false when there is nothing to expire (then the caller finishes).
    pub(crate) fn expire(&mut self, id: &str) -> bool {
        let Some(m) = self.msgs.get_mut(id) else {
            return false;
        };
        // Once per stay in the active queue; a failure below leaves the
        // message deferred (never removed as if delivered).
        m.expiring = true;
        let base = m.base.clone();
        let limit = postern_server::client::content_frame_limit(&self.cfg);
        let pending = match self.q.read("active", id, limit) {
            Ok(qf) => pending_recipients(&qf),
            Err(e) => {
                postern_log::warning(format!("{id}: expire: {e}"));
                return false;
            }
        };
        if pending.is_empty() {
            return false;
        }
        if let Some(m) = self.msgs.get_mut(id) {
            // The bounces below decide each deferred recipient again.
            m.deferred = 0;
        }
        postern_log::info(format!(
            "{id}: from=<{}>, status=expired, returned to sender",
            base.sender
        ));
        let log = self
            .q
            .read_log("defer", id)
            .ok()
            .flatten()
            .unwrap_or_default();
        let entries = postern_qfile::statuslog::parse_log(&log);
        for r in pending {
            let last = entries.iter().rev().find(|e| e.offset == r.offset);
            let (dsn, text) = match last {
                Some(e) => (e.status.clone(), e.reason.clone()),
                None => ("4.7.0".to_string(), "message expired".to_string()),
            };
            self.decide(&base, vec![r], Action::Bounce, &dsn, &text, false);
        }
        true
    }

    /// The message's lifetime (`bounce_queue_lifetime` for the null sender)
    /// has passed.
    pub(crate) fn expired(&self, m: &Msg) -> bool {
        let param = if m.null_sender {
            p::BOUNCE_QUEUE_LIFETIME
        } else {
            p::MAXIMAL_QUEUE_LIFETIME
        };
        let lifetime = self.cfg.time(param).as_secs() as f64;
        now_f() - m.arrival >= lifetime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_bounce_softens_permanent_codes_only() {
        assert_eq!(soften("5.1.1"), "4.1.1");
        assert_eq!(soften("4.4.1"), "4.4.1");
        assert_eq!(soften("2.0.0"), "2.0.0");
    }
}
