//! qmgr's event loop and scheduler: triggers, the deferred-scan timer,
//! dispatching jobs to destinations, delivery results, and what happens to a
//! message when its last job is done (see [`crate::finish`]).
//!
//! [`run`] is qmgr's server loop on the skeleton's [`Env`]: the trigger
//! listeners, the status channel and the stop request come from master (or
//! from a test). Triggers come from the skeleton's trigger machinery
//! ([`service::next_trigger`]) in a thread of their own; around each one
//! qmgr reports busy/available, as every trigger server does. A lookup table
//! that changed on disk (`postmap transport`) ends this qmgr as Postfix's
//! does (`table NAME has changed -- restarting`, [`service::table_changed`]):
//! noticed before a trigger is accepted (Postfix's `qmgr_pre_accept`: the
//! trigger stays queued, so master starts the next qmgr at once) or once a
//! second between scheduling rounds. Then, as on master's stop request, qmgr
//! takes no more work, waits (at most 30 s) for the deliveries under way, and
//! returns why it stopped ([`Exit::TableChanged`], [`Exit::Shutdown`]). What
//! is left in `active/` is moved back to `incoming/` by the next qmgr, as at
//! every start.

use crate::conc::{Conc, Limits};
use crate::finish::{finish, should_warn};
use crate::resolve::{Resolver, Route};
use crate::worker::{self, Job, Outcome};
use postern_config::{Config, p};
use postern_ipc::proto::{Action, DeliverRequest, RcptResult, trigger};
use postern_queue::{Queue, Scan, ScanFlags};
use postern_server::service::{self, Env, Exit, Shutdown};
use postern_server::skeleton::Context;
use postern_server::status;
use std::collections::{HashMap, VecDeque};
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

enum Event {
    Trigger(Vec<u8>),
    Done(Outcome),
    Finalized(String),
}

pub(crate) struct Msg {
    pub(crate) arrival: f64,
    /// Null sender: no delay warning; `bounce_queue_lifetime`.
    pub(crate) null_sender: bool,
    pub(crate) outstanding: usize,
    pub(crate) deferred: usize,
    /// The request every job of this message starts from.
    pub(crate) base: DeliverRequest,
    /// Expired: its deferred recipients are being returned.
    pub(crate) expiring: bool,
}

pub(crate) struct Dest {
    pub(crate) jobs: VecDeque<Job>,
    pub(crate) active: usize,
    pub(crate) limits: Limits,
    pub(crate) conc: Conc,
    /// Dead until then, with the DSN and text of the last failure.
    pub(crate) dead: Option<(Instant, String, String)>,
    /// `*_destination_rate_delay` (zero = none; otherwise concurrency 1).
    pub(crate) rate_delay: Duration,
    /// No delivery starts before this (rate delay).
    pub(crate) next_start: Instant,
    /// An idle destination with failed cohorts is remembered until then, so
    /// that messages arriving one at a time still add up to a dead
    /// destination (Postfix forgets an idle queue at once; with agents that
    /// fail instantly that would try every message).
    pub(crate) remember_until: Instant,
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

/// Counters for the statistics line logged when qmgr stops.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Messages moved into the active queue.
    pub(crate) activated: u64,
}

pub(crate) struct Qmgr {
    pub(crate) cfg: Config,
    pub(crate) q: Queue,
    pub(crate) resolver: Resolver,
    pub(crate) msgs: HashMap<String, Msg>,
    pub(crate) dests: HashMap<Route, Dest>,
    pub(crate) order: VecDeque<Route>,
    running: usize,
    max_running: usize,
    tx: Sender<Event>,
    next_deferred_scan: Instant,
    /// Incremental scans of `incoming/` and `deferred/`.
    pub(crate) incoming: Scan,
    pub(crate) deferred: Scan,
    /// The last message fed came from incoming (the next turn is deferred's).
    pub(crate) last_fed_incoming: bool,
    /// The flush pass under way (its start) and the messages it has fed: a flush
    /// tries each message once, and a message still in delivery when the flush
    /// was asked for is tried once more when the pass reaches its deferral.
    pub(crate) flushed: (SystemTime, std::collections::HashSet<String>),
    /// `defer_transports`.
    pub(crate) defer_transports: Vec<String>,
    /// `soft_bounce`.
    pub(crate) soft_bounce: bool,
    pub(crate) stats: Stats,
    /// Flow-control tokens for the receivers (`in_flow_delay`).
    pub(crate) tokens: crate::flow::Tokens,
}

pub(crate) fn now_f() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// A time parameter in seconds.
pub(crate) fn secs(cfg: &Config, param: postern_config::Time) -> u64 {
    cfg.time(param).as_secs()
}

/// Runs qmgr until master (or a test) asks it to stop or a table changed.
pub fn run(ctx: &Context, env: Env, resolver: Resolver) -> Exit {
    let Env {
        listeners,
        status: mut status_sink,
        shutdown,
    } = env;
    let listeners: Vec<UnixListener> = listeners.into_iter().map(UnixListener::from).collect();
    // Set once a changed table was seen (and logged) by either thread.
    let changed = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let (ttx, tchanged, tstop) = (tx.clone(), changed.clone(), shutdown.clone());
    std::thread::spawn(move || trigger_loop(listeners, ttx, tchanged, tstop));
    let cfg = ctx.config.clone();
    let q = Queue::new(cfg.str(p::QUEUE_DIRECTORY));
    let mut m = Qmgr {
        incoming: Scan::new(&q, "incoming"),
        deferred: Scan::new(&q, "deferred"),
        last_fed_incoming: false,
        flushed: (UNIX_EPOCH, Default::default()),
        defer_transports: cfg.list(p::DEFER_TRANSPORTS),
        soft_bounce: cfg.bool(p::SOFT_BOUNCE),
        stats: Stats::default(),
        q,
        resolver,
        max_running: cfg.int(p::DEFAULT_PROCESS_LIMIT).clamp(1, 1000) as usize,
        cfg,
        msgs: HashMap::new(),
        dests: HashMap::new(),
        order: VecDeque::new(),
        running: 0,
        tx,
        next_deferred_scan: Instant::now(),
        tokens: crate::flow::Tokens::new(&ctx.config),
    };
    m.recover_active();
    // Up and working: a later crash is not a start-up failure (master throttles only those).
    status_sink.served(ctx.generation);
    m.incoming.request(ScanFlags::default());
    let mut stop: Option<(Exit, Instant)> = None;
    let mut next_table_check = Instant::now();
    loop {
        if stop.is_none() {
            let why = if changed.load(Ordering::SeqCst)
                || (Instant::now() >= next_table_check && table_changed(&changed))
            {
                Some(Exit::TableChanged)
            } else {
                shutdown.requested().then_some(Exit::Shutdown)
            };
            if let Some(why) = why {
                // Also ends the trigger thread.
                shutdown.trigger();
                stop = Some((why, Instant::now() + Duration::from_secs(30)));
            }
        }
        if Instant::now() >= next_table_check {
            next_table_check = Instant::now() + Duration::from_secs(1);
        }
        if let Some((why, deadline)) = stop
            && (m.running == 0 || Instant::now() >= deadline)
        {
            postern_log::info(format!(
                "statistics: activated={} incoming_scans={} deferred_scans={}",
                m.stats.activated,
                m.incoming.passes(),
                m.deferred.passes()
            ));
            return why;
        }
        let now = Instant::now();
        let wait = if stop.is_none() && m.can_feed() {
            Duration::ZERO
        } else {
            m.next_wakeup(now)
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(500))
                .clamp(Duration::from_millis(5), Duration::from_millis(500))
        };
        match rx.recv_timeout(wait) {
            Ok(Event::Trigger(bytes)) if stop.is_none() => {
                status_sink.report(ctx.generation, status::BUSY);
                m.on_trigger(&bytes);
                status_sink.report(ctx.generation, status::AVAILABLE);
            }
            Ok(Event::Trigger(_)) => {}
            Ok(Event::Done(o)) => m.on_done(o),
            Ok(Event::Finalized(id)) => {
                m.running -= 1;
                m.msgs.remove(&id);
            }
            Err(RecvTimeoutError::Timeout) => {}
            // `m` holds a sender: never.
            Err(RecvTimeoutError::Disconnected) => postern_log::fatal("qmgr event channel closed"),
        }
        if stop.is_none() {
            if Instant::now() >= m.next_deferred_scan {
                m.request_deferred(ScanFlags::default());
            }
            // Scans go on where they stopped, as far as the active queue
            // has room and this round's budget allows.
            m.feed();
            m.dispatch();
        }
    }
}

/// Takes triggers as the trigger server does and hands them to the main
/// loop, until qmgr stops. Before accepting one it asks whether a table
/// changed (Postfix's `qmgr_pre_accept`): then qmgr stops, and the trigger
/// stays queued for the next qmgr, which master starts as soon as this one is
/// gone.
fn trigger_loop(
    listeners: Vec<UnixListener>,
    tx: Sender<Event>,
    changed: Arc<AtomicBool>,
    shutdown: Shutdown,
) {
    let mut pre_accept = || !changed.load(Ordering::SeqCst) && !table_changed(&changed);
    while let Ok(bytes) =
        service::next_trigger(&listeners, service::FOREVER, &shutdown, &mut pre_accept)
    {
        if tx.send(Event::Trigger(bytes)).is_err() {
            return;
        }
    }
}

/// True (logged once, by the skeleton) when a table qmgr opened has changed;
/// remembered in `changed` for the other thread.
fn table_changed(changed: &AtomicBool) -> bool {
    let now = service::table_changed();
    if now {
        changed.store(true, Ordering::SeqCst);
    }
    now
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

    /// Triggers start scans (Postfix's `qmgr_trigger_event`): a flush
    /// (`F`) starts both with retry times and `defer_transports` ignored;
    /// `D`/`A` start a deferred scan; anything else an incoming scan.
    fn on_trigger(&mut self, bytes: &[u8]) {
        let mut incoming = bytes.is_empty();
        for b in bytes {
            match *b {
                trigger::UNTHROTTLE => self.unthrottle(),
                trigger::FLUSH_DEFERRED => {
                    self.unthrottle();
                    let all = ScanFlags { all: true };
                    self.request_deferred(all);
                    self.incoming.request(all);
                }
                trigger::SCAN_DEFERRED | trigger::SCAN_ALL => {
                    self.request_deferred(ScanFlags::default());
                    incoming = true;
                }
                _ => incoming = true,
            }
        }
        if incoming {
            self.incoming.request(ScanFlags::default());
        }
    }

    /// Starts (or queues) a deferred scan and restarts the
    /// `queue_run_delay` timer.
    fn request_deferred(&mut self, flags: ScanFlags) {
        self.deferred.request(flags);
        self.next_deferred_scan =
            Instant::now() + Duration::from_secs(secs(&self.cfg, p::QUEUE_RUN_DELAY).max(1));
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

    pub(crate) fn spawn(&mut self, job: Job, dest: Option<Route>) {
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
                let backoff = secs(&self.cfg, p::MINIMAL_BACKOFF_TIME).max(1);
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

    /// The message has no job left: expire it if it is too old and still
    /// has deferred recipients (after every attempt, so that
    /// `maximal_queue_lifetime = 0` means one try); otherwise notices, then
    /// remove or defer. `soft_bounce` keeps expired mail queued.
    pub(crate) fn finalize(&mut self, id: &str) {
        let Some(m) = self.msgs.get(id) else { return };
        if m.deferred > 0 && !m.expiring && !self.soft_bounce && self.expired(m) && self.expire(id)
        {
            return;
        }
        let Some(m) = self.msgs.get(id) else { return };
        let deferred = m.deferred;
        let age = (now_f() - m.arrival).max(0.0);
        let warn_after = secs(&self.cfg, p::DELAY_WARNING_TIME);
        let warn = deferred > 0 && !m.null_sender && should_warn(warn_after, age);
        let backoff = {
            let age = age as u64;
            let min = secs(&self.cfg, p::MINIMAL_BACKOFF_TIME);
            let max = secs(&self.cfg, p::MAXIMAL_BACKOFF_TIME).max(min);
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
