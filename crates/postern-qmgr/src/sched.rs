//! qmgr's event loop and scheduler.

use crate::conc::{Conc, Feedback, Limits};
use crate::resolve::{Resolver, Route};
use crate::worker::{self, Job, Outcome};
use postern_config::Config;
use postern_ipc::proto::{
    Action, BounceOp, BounceRequest, DeliverRequest, RcptResult, Recipient, trigger,
};
use postern_queue::Queue;
use postern_server::skeleton::Context;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

enum Event {
    Trigger(Vec<u8>),
    Done(Outcome),
    Finalized(String),
}

struct Msg {
    arrival: f64,
    /// Null sender: no delay warning.
    null_sender: bool,
    outstanding: usize,
    deferred: usize,
}

struct Dest {
    jobs: VecDeque<Job>,
    active: usize,
    limits: Limits,
    conc: Conc,
    /// Dead until then, with the DSN and text of the last failure.
    dead: Option<(Instant, String, String)>,
    /// `*_destination_rate_delay` (zero = none; otherwise concurrency 1).
    rate_delay: Duration,
    /// No delivery starts before this (rate delay).
    next_start: Instant,
    /// An idle destination with failed cohorts is remembered until then, so
    /// that messages arriving one at a time still add up to a dead
    /// destination (Postfix forgets an idle queue at once; with agents that
    /// fail instantly that would try every message).
    remember_until: Instant,
}

impl Dest {
    /// Deliveries allowed at once now.
    fn window(&self) -> usize {
        if self.rate_delay.is_zero() {
            self.conc.window as usize
        } else {
            1
        }
    }

    /// Nothing queued, running, or remembered: the entry can go.
    fn forgettable(&self, now: Instant) -> bool {
        self.jobs.is_empty()
            && self.active == 0
            && self.dead.is_none()
            && self.next_start <= now
            && (self.conc.fail_cohorts == 0.0 || self.remember_until <= now)
    }
}

struct Qmgr {
    cfg: Config,
    q: Queue,
    resolver: Resolver,
    msgs: HashMap<String, Msg>,
    dests: HashMap<Route, Dest>,
    order: VecDeque<Route>,
    running: usize,
    max_running: usize,
    tx: Sender<Event>,
    next_deferred_scan: Instant,
    /// The last incoming / deferred scan stopped at the active limit.
    incoming_backlog: bool,
    deferred_backlog: bool,
    /// Flow-control tokens for the receivers (`in_flow_delay`).
    tokens: crate::flow::Tokens,
}

fn now_f() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn secs(cfg: &Config, name: &str, dflt: u64) -> u64 {
    cfg.get_time(name).unwrap_or(dflt)
}

/// Runs qmgr until master asks it to stop.
pub fn run(ctx: Context) -> ExitCode {
    if let Err(e) = postern_sys::signals::install_exit_flags(true) {
        postern_log::fatal(e);
    }
    let listener = match postern_sys::fd::take_inherited(postern_sys::fd::LISTEN_FD) {
        Ok(fd) => UnixListener::from(fd),
        Err(e) => postern_log::fatal(format!(
            "listen descriptor: {e} (qmgr runs only under master)"
        )),
    };
    // qmgr is a single long-lived process: the status pipe is kept open but unused.
    let _status = postern_sys::fd::take_inherited(postern_sys::fd::STATUS_FD);
    let (tx, rx) = mpsc::channel();
    let ttx = tx.clone();
    std::thread::spawn(move || accept_loop(listener, ttx));
    let cfg = ctx.config.clone();
    let mut m = Qmgr {
        q: Queue::new(cfg.get("queue_directory")),
        resolver: Resolver::from_config(&cfg),
        max_running: cfg
            .get_int("default_process_limit")
            .unwrap_or(100)
            .clamp(1, 1000) as usize,
        cfg,
        msgs: HashMap::new(),
        dests: HashMap::new(),
        order: VecDeque::new(),
        running: 0,
        tx,
        next_deferred_scan: Instant::now(),
        incoming_backlog: false,
        deferred_backlog: false,
        tokens: crate::flow::Tokens::new(&ctx.config),
    };
    m.recover_active();
    m.scan("incoming");
    let mut stop_deadline: Option<Instant> = None;
    loop {
        if stop_deadline.is_none()
            && (postern_sys::signals::hup_received() || postern_sys::signals::term_received())
        {
            stop_deadline = Some(Instant::now() + Duration::from_secs(30));
        }
        if let Some(d) = stop_deadline
            && (m.running == 0 || Instant::now() >= d)
        {
            return ExitCode::SUCCESS;
        }
        let now = Instant::now();
        let wait = m
            .next_wakeup(now)
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(500))
            .clamp(Duration::from_millis(5), Duration::from_millis(500));
        match rx.recv_timeout(wait) {
            Ok(Event::Trigger(bytes)) if stop_deadline.is_none() => m.on_trigger(&bytes),
            Ok(Event::Trigger(_)) => {}
            Ok(Event::Done(o)) => m.on_done(o),
            Ok(Event::Finalized(id)) => {
                m.running -= 1;
                m.msgs.remove(&id);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return ExitCode::from(1),
        }
        if stop_deadline.is_none() {
            // Room in the active queue again: go on with a cut-off scan,
            // new mail first (as Postfix prefers incoming when full).
            if m.incoming_backlog && m.has_room() {
                m.scan("incoming");
            }
            if Instant::now() >= m.next_deferred_scan || (m.deferred_backlog && m.has_room()) {
                m.scan("deferred");
            }
            m.dispatch();
        }
    }
}

fn accept_loop(listener: UnixListener, tx: Sender<Event>) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => postern_log::fatal(format!("poll: {e}")),
        }
        let Ok((mut s, _)) = listener.accept() else {
            continue;
        };
        let mut buf = [0u8; 256];
        let mut got = 0;
        if s.set_read_timeout(Some(Duration::from_secs(1))).is_ok() {
            while got < buf.len() {
                match s.read(&mut buf[got..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
        }
        if tx.send(Event::Trigger(buf[..got].to_vec())).is_err() {
            return;
        }
    }
}

impl Qmgr {
    fn recover_active(&mut self) {
        let entries = match self.q.list("active") {
            Ok(e) => e,
            Err(e) => postern_log::fatal(format!("scan active: {e}")),
        };
        for e in entries {
            if let Err(err) = postern_queue_admin::move_file(&self.q, "active", "incoming", &e.id) {
                postern_log::warning(format!("{}: requeue from active: {err}", e.id));
            }
        }
    }

    fn on_trigger(&mut self, bytes: &[u8]) {
        let mut incoming = bytes.is_empty();
        for b in bytes {
            match *b {
                trigger::UNTHROTTLE => self.unthrottle(),
                trigger::FLUSH_DEFERRED => {
                    self.unthrottle();
                    self.release_deferred();
                    self.next_deferred_scan = Instant::now();
                    incoming = true;
                }
                trigger::SCAN_DEFERRED | trigger::SCAN_ALL => {
                    self.next_deferred_scan = Instant::now();
                    incoming = true;
                }
                _ => incoming = true,
            }
        }
        if incoming {
            self.scan("incoming");
        }
        if Instant::now() >= self.next_deferred_scan {
            self.scan("deferred");
        }
    }

    /// Forgets dead destinations (ETRN, `postqueue -f`/`-s`/`-i`): their
    /// next jobs are tried again, from the initial concurrency.
    fn unthrottle(&mut self) {
        for d in self.dests.values_mut() {
            if d.dead.take().is_some() {
                d.conc.revive(&d.limits);
            }
        }
    }

    /// `postqueue -f`: every deferred message is due now.
    fn release_deferred(&mut self) {
        if let Ok(entries) = self.q.list("deferred") {
            for e in entries {
                if let Err(err) =
                    postern_queue_admin::set_mtime(&self.q, "deferred", &e.id, SystemTime::now())
                    && !err.is_not_found()
                {
                    postern_log::warning(format!("{}: {err}", e.id));
                }
            }
        }
    }

    fn active_limit(&self) -> usize {
        self.cfg
            .get_int("qmgr_message_active_limit")
            .unwrap_or(20000)
            .max(1) as usize
    }

    fn has_room(&self) -> bool {
        self.msgs.len() < self.active_limit()
    }

    fn scan(&mut self, queue: &str) {
        if queue == "deferred" {
            self.next_deferred_scan = Instant::now()
                + Duration::from_secs(secs(&self.cfg, "queue_run_delay", 300).max(1));
        }
        let limit = self.active_limit();
        let mut entries = match self.q.list(queue) {
            Ok(e) => e,
            Err(e) => {
                postern_log::warning(format!("scan {queue}: {e}"));
                return;
            }
        };
        entries.sort_by_key(|e| e.mtime);
        let now = SystemTime::now();
        let mut cut = false;
        for e in entries {
            if !e.ready || (queue == "deferred" && e.mtime > now) || self.msgs.contains_key(&e.id) {
                continue;
            }
            if self.msgs.len() >= limit {
                cut = true;
                break;
            }
            match postern_queue_admin::move_file(&self.q, queue, "active", &e.id) {
                Ok(()) => {
                    self.activate(&e.id, queue == "deferred");
                    if queue == "incoming" {
                        self.tokens.fed();
                    }
                }
                Err(err) if err.is_not_found() => {}
                Err(err) => postern_log::warning(format!("{}: move to active: {err}", e.id)),
            }
        }
        // A scan cut short by qmgr_message_active_limit goes on as soon as
        // messages leave the active queue (see the main loop).
        if queue == "incoming" {
            self.incoming_backlog = cut;
            if !cut {
                self.tokens.caught_up();
            }
        } else {
            self.deferred_backlog = cut;
        }
    }

    fn activate(&mut self, id: &str, retry: bool) {
        let limit = postern_server::client::content_frame_limit(&self.cfg);
        let qf = match self.q.read("active", id, limit) {
            Ok(qf) => qf,
            Err(postern_queue::ReadError::NotFound(_)) => return,
            Err(e) => {
                postern_log::warning(format!("{id}: {e}; moved to corrupt/"));
                if let Err(e) = postern_queue_admin::move_file(&self.q, "active", "corrupt", id) {
                    postern_log::warning(format!("{id}: {e}"));
                }
                return;
            }
        };
        let pending: Vec<Recipient> = qf
            .pending()
            .map(|r| Recipient {
                address: r.address.clone(),
                original: r.original.clone(),
                orcpt: r.orcpt.clone(),
                notify: r.notify,
                offset: r.offset,
            })
            .collect();
        postern_log::info(format!(
            "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
            qf.sender,
            qf.content.len(),
            pending.len()
        ));
        let arrival = qf.arrival.0 as f64 + qf.arrival.1 as f64 / 1e6;
        let active_since = now_f();
        self.msgs.insert(
            id.to_string(),
            Msg {
                arrival,
                null_sender: qf.sender.is_empty(),
                outstanding: 0,
                deferred: 0,
            },
        );
        let base = DeliverRequest {
            queue_name: "active".into(),
            queue_id: id.to_string(),
            sender: qf.sender.clone(),
            envid: qf.attr("envid").unwrap_or("").to_string(),
            ret: qf.attr("ret").unwrap_or("").to_string(),
            arrival,
            active_since,
            ..Default::default()
        };
        if pending.is_empty() {
            self.finalize(id);
            return;
        }
        if let Some(reject) = qf.attr("cleanup_reject") {
            let (dsn, text) = reject.split_once(' ').unwrap_or(("5.0.0", reject));
            self.decide(&base, pending, Action::Bounce, dsn, text, "bounced");
            return;
        }
        let lifetime_name = if qf.sender.is_empty() {
            "bounce_queue_lifetime"
        } else {
            "maximal_queue_lifetime"
        };
        let lifetime = secs(&self.cfg, lifetime_name, 5 * 86400) as f64;
        if retry && active_since - arrival > lifetime {
            self.expire(&base, pending);
            return;
        }
        let mut groups: HashMap<Route, Vec<Recipient>> = HashMap::new();
        for r in pending {
            match self
                .resolver
                .resolve_filtered(&r.address, qf.attr("filter"))
            {
                Ok(route) => groups.entry(route).or_default().push(r),
                Err(u) => {
                    let (action, status) = if u.temporary {
                        (Action::Defer, "deferred")
                    } else {
                        (Action::Bounce, "bounced")
                    };
                    self.decide(&base, vec![r], action, &u.dsn, &u.text, status);
                }
            }
        }
        for (route, rcpts) in groups {
            self.enqueue(&base, route, rcpts);
        }
    }

    fn param_for(&self, transport: &str, what: &str, dflt: i64) -> i64 {
        let specific = format!("{transport}_{what}");
        self.cfg
            .get_int(&specific)
            .or_else(|_| self.cfg.get_int(&format!("default_{what}")))
            .unwrap_or(dflt)
    }

    fn time_for(&self, transport: &str, what: &str, dflt: u64) -> u64 {
        self.cfg
            .get_time(&format!("{transport}_{what}"))
            .or_else(|_| self.cfg.get_time(&format!("default_{what}")))
            .unwrap_or(dflt)
    }

    fn feedback_for(&self, transport: &str, what: &str) -> Feedback {
        let specific = format!("{transport}_{what}");
        let general = format!("default_{what}");
        let v = if self.cfg.raw(&specific).is_some() {
            self.cfg.get(&specific)
        } else {
            self.cfg.get(&general)
        };
        Feedback::parse(&v).unwrap_or_else(|| {
            postern_log::warning(format!(
                "{specific}: bad value \"{v}\"; using 1 (expected N, N/concurrency or N/sqrt_concurrency)"
            ));
            Feedback::Constant(1.0)
        })
    }

    fn limits_for(&self, transport: &str) -> Limits {
        let initial = self
            .cfg
            .get_int("initial_destination_concurrency")
            .unwrap_or(5)
            .clamp(1, 100_000) as u32;
        let limit = self
            .param_for(transport, "destination_concurrency_limit", 20)
            .clamp(0, 100_000) as u32;
        let cohort_limit = self
            .param_for(transport, "destination_concurrency_failed_cohort_limit", 1)
            .max(0) as f64;
        Limits {
            initial,
            limit,
            positive: self.feedback_for(transport, "destination_concurrency_positive_feedback"),
            negative: self.feedback_for(transport, "destination_concurrency_negative_feedback"),
            cohort_limit,
        }
    }

    fn enqueue(&mut self, base: &DeliverRequest, route: Route, rcpts: Vec<Recipient>) {
        let rlimit = self
            .param_for(&route.transport, "destination_recipient_limit", 50)
            .max(1) as usize;
        let limits = self.limits_for(&route.transport);
        let rate_delay =
            Duration::from_secs(self.time_for(&route.transport, "destination_rate_delay", 0));
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

    /// Results qmgr decides itself (cleanup rejections, expiry): logged here,
    /// booked on a worker thread like any delivery.
    fn decide(
        &mut self,
        base: &DeliverRequest,
        rcpts: Vec<Recipient>,
        action: Action,
        dsn: &str,
        text: &str,
        status: &str,
    ) {
        let results: Vec<RcptResult> = rcpts
            .into_iter()
            .map(|r| RcptResult {
                recipient: r,
                action,
                dsn: dsn.to_string(),
                text: text.to_string(),
                relay: "none".into(),
            })
            .collect();
        for r in &results {
            worker::log_result(&base.queue_id, base, r, status);
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

    fn expire(&mut self, base: &DeliverRequest, rcpts: Vec<Recipient>) {
        let log = self
            .q
            .read_log("defer", &base.queue_id)
            .ok()
            .flatten()
            .unwrap_or_default();
        let entries = postern_qfile::statuslog::parse_log(&log);
        for r in rcpts {
            let last = entries.iter().rev().find(|e| e.offset == r.offset);
            let (dsn, text) = match last {
                Some(e) => (e.status.clone(), e.reason.clone()),
                None => ("4.7.0".to_string(), "message expired".to_string()),
            };
            self.decide(
                base,
                vec![r],
                Action::Bounce,
                &dsn,
                &text,
                "expired, returned to sender",
            );
        }
    }

    fn spawn(&mut self, job: Job, dest: Option<Route>) {
        self.running += 1;
        let (cfg, q, tx) = (self.cfg.clone(), self.q.clone(), self.tx.clone());
        std::thread::spawn(move || {
            let mut o = worker::run(&cfg, &q, job);
            o.dest = dest;
            // The main loop is gone only when qmgr is exiting.
            let _gone = tx.send(Event::Done(o));
        });
    }

    /// Defers a job for a dead destination without contacting it.
    fn suspend(&mut self, mut job: Job, dsn: &str, reason: &str) {
        let text = format!("delivery temporarily suspended: {reason}");
        let results: Vec<RcptResult> = job
            .request
            .recipients
            .iter()
            .map(|r| RcptResult {
                recipient: r.clone(),
                action: Action::Defer,
                dsn: dsn.to_string(),
                text: text.clone(),
                relay: "none".into(),
            })
            .collect();
        for r in &results {
            worker::log_result(&job.request.queue_id, &job.request, r, "deferred");
        }
        job.decided = Some(results);
        // The job was counted in its message's `outstanding` when queued.
        self.spawn(job, None);
    }

    /// Dead destinations: revive those whose time is up, defer the jobs of
    /// the others; forget destinations with nothing left to remember.
    fn housekeep(&mut self, now: Instant) {
        let mut suspended = Vec::new();
        for d in self.dests.values_mut() {
            let Some((until, dsn, reason)) = &d.dead else {
                continue;
            };
            if now >= *until {
                d.dead = None;
                d.conc.revive(&d.limits);
            } else if !d.jobs.is_empty() {
                let (dsn, reason) = (dsn.clone(), reason.clone());
                suspended.extend(d.jobs.drain(..).map(|j| (j, dsn.clone(), reason.clone())));
            }
        }
        for (job, dsn, reason) in suspended {
            self.suspend(job, &dsn, &reason);
        }
        let before = self.dests.len();
        self.dests.retain(|_, d| !d.forgettable(now));
        if self.dests.len() != before {
            let dests = &self.dests;
            self.order.retain(|k| dests.contains_key(k));
        }
    }

    /// When the main loop should look again (rate delays, dead timers).
    fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        self.dests
            .values()
            .filter_map(|d| match &d.dead {
                Some((until, _, _)) => Some(*until),
                None if !d.jobs.is_empty() && d.next_start > now => Some(d.next_start),
                None => None,
            })
            .min()
    }

    /// Starts jobs round-robin over destinations within the limits.
    fn dispatch(&mut self) {
        let now = Instant::now();
        self.housekeep(now);
        let mut idle_rounds = 0;
        while self.running < self.max_running
            && !self.order.is_empty()
            && idle_rounds < self.order.len()
        {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            let Some(dest) = self.dests.get_mut(&key) else {
                continue;
            };
            self.order.push_back(key.clone());
            if dest.dead.is_none()
                && dest.active < dest.window()
                && dest.next_start <= now
                && let Some(job) = dest.jobs.pop_front()
            {
                dest.active += 1;
                idle_rounds = 0;
                self.spawn(job, Some(key));
                continue;
            }
            idle_rounds += 1;
        }
    }

    fn on_done(&mut self, o: Outcome) {
        self.running -= 1;
        if let Some(key) = &o.dest
            && let Some(d) = self.dests.get_mut(key)
        {
            d.active = d.active.saturating_sub(1);
            if !d.rate_delay.is_zero() {
                d.next_start = Instant::now() + d.rate_delay;
            }
            if o.conn_failed {
                let backoff = secs(&self.cfg, "minimal_backoff_time", 300).max(1);
                d.remember_until = Instant::now() + Duration::from_secs(backoff);
                if d.conc.on_failure(&d.limits) {
                    let (dsn, text) = o
                        .last_defer
                        .clone()
                        .unwrap_or_else(|| ("4.4.1".into(), "destination unreachable".into()));
                    postern_log::info(format!(
                        "destination {}:{} declared dead for {backoff}s: {text}",
                        key.transport, key.nexthop
                    ));
                    d.dead = Some((Instant::now() + Duration::from_secs(backoff), dsn, text));
                }
            } else {
                let busy = d.active as u32;
                d.conc.on_success(&d.limits, busy);
            }
        }
        let done = match self.msgs.get_mut(&o.queue_id) {
            Some(m) => {
                m.deferred += o.deferred;
                m.outstanding -= 1;
                m.outstanding == 0
            }
            None => false,
        };
        if done {
            self.finalize(&o.queue_id);
        }
    }

    /// The message has no job left: notices, then remove or defer.
    fn finalize(&mut self, id: &str) {
        let Some(m) = self.msgs.get(id) else { return };
        let deferred = m.deferred;
        let age = (now_f() - m.arrival).max(0.0);
        let warn_after = secs(&self.cfg, "delay_warning_time", 0);
        let warn = deferred > 0 && !m.null_sender && should_warn(warn_after, age);
        let backoff = {
            let age = age as u64;
            let min = secs(&self.cfg, "minimal_backoff_time", 300);
            let max = secs(&self.cfg, "maximal_backoff_time", 4000).max(min);
            age.clamp(min, max)
        };
        let (cfg, q, tx, id) = (
            self.cfg.clone(),
            self.q.clone(),
            self.tx.clone(),
            id.to_string(),
        );
        self.running += 1;
        std::thread::spawn(move || {
            finish(&cfg, &q, &id, deferred, backoff, warn);
            let _gone = tx.send(Event::Finalized(id));
        });
    }
}

/// `delay_warning_time` (0 = off) has passed for a message of this age.
fn should_warn(warn_after: u64, age: f64) -> bool {
    warn_after > 0 && age >= warn_after as f64
}

/// The line the bounce service appends to `defer/ID` once it sent the delay
/// warning (see postern-bounce's `warn-delay`): status-log readers skip it
/// (it names no recipient), it lives exactly as long as the defer log, and
/// it survives qmgr restarts. A message that later defers again after its
/// log was removed (all delivered) cannot exist, so one warning per message.
pub(crate) const DELAY_WARNED_MARK: &str = "delay_warned=";

fn delay_warned(q: &Queue, id: &str) -> bool {
    match q.read_log("defer", id) {
        Ok(Some(log)) => String::from_utf8_lossy(&log)
            .lines()
            .any(|l| l.starts_with(DELAY_WARNED_MARK)),
        _ => false,
    }
}

fn finish(cfg: &Config, q: &Queue, id: &str, deferred: usize, backoff: u64, warn: bool) {
    let has_bounce_log = matches!(q.read_log("bounce", id), Ok(Some(_)));
    let mut flushed = true;
    if has_bounce_log {
        let req = BounceRequest {
            op: BounceOp::FlushBounce,
            queue_name: "active".into(),
            queue_id: id.into(),
            results: vec![],
        };
        if let Err(e) = worker::bounce_call(cfg, &req) {
            postern_log::warning(format!("{id}: bounce service: {e}; will retry"));
            flushed = false;
        }
    }
    if deferred > 0 && warn && !delay_warned(q, id) {
        let req = BounceRequest {
            op: BounceOp::WarnDelay,
            queue_name: "active".into(),
            queue_id: id.into(),
            results: vec![],
        };
        if let Err(e) = worker::bounce_call(cfg, &req) {
            postern_log::warning(format!("{id}: delay warning: {e}; will retry"));
        }
    }
    if deferred > 0 || !flushed {
        let when = SystemTime::now() + Duration::from_secs(backoff);
        match postern_queue_admin::move_file(q, "active", "deferred", id) {
            Ok(()) => {
                if let Err(e) = postern_queue_admin::set_mtime(q, "deferred", id, when) {
                    postern_log::warning(format!("{id}: set retry time: {e}"));
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => postern_log::warning(format!("{id}: move to deferred: {e}")),
        }
        return;
    }
    if matches!(q.read_log("defer", id), Ok(Some(_))) {
        let req = BounceRequest {
            op: BounceOp::RemoveDeferLog,
            queue_name: "active".into(),
            queue_id: id.into(),
            results: vec![],
        };
        if let Err(e) = worker::bounce_call(cfg, &req) {
            postern_log::warning(format!("{id}: remove defer log: {e}"));
        }
    }
    match postern_queue_admin::remove(q, "active", id) {
        Ok(()) => postern_log::info(format!("{id}: removed")),
        Err(e) if e.is_not_found() => {}
        Err(e) => postern_log::warning(format!("{id}: remove: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_warning_threshold() {
        assert!(!should_warn(0, 1e9), "0 = off");
        assert!(!should_warn(4 * 3600, 3599.0));
        assert!(should_warn(1, 1.0));
        assert!(should_warn(1, 2.5));
    }
}
