//! What every server skeleton runs on, and the callbacks a daemon plugs into
//! it: Postfix's `mail_server.h` in Rust.
//!
//! A daemon's `main` is its configuration and its callbacks:
//! ```text
//! let (ctx, early, opened) = skeleton::init_open(NAME, &args, pre_init, post_init);
//! finish(&ctx, single_server(&ctx, Env::from_master(&ctx), &mut svc))
//! ```
//! Postfix's hooks map as follows:
//!
//! | Postfix (`mail_server.h`)    | here                                              |
//! |------------------------------|---------------------------------------------------|
//! | `MAIL_SERVER_PRE_INIT`       | the `pre_init` hook of [`crate::skeleton::init_with`] (as root) |
//! | `MAIL_SERVER_POST_INIT`      | the `open` hook of [`crate::skeleton::init_open`] (own rights)  |
//! | `MAIL_SERVER_PRE_ACCEPT`     | [`Service::pre_accept`] / [`TriggerService::pre_accept`] |
//! | the service routine          | [`Service::serve`] / [`TriggerService::trigger`]  |
//! | `MAIL_SERVER_LOOP`           | [`Service::on_idle`] (before each wait for a client) |
//! | `MAIL_SERVER_EXIT`/`ON_EXIT` | [`Service::on_exit`] (the loop ends, for any [`Exit`]) |
//!
//! A skeleton takes `(ctx, env, svc)` and returns why it stopped ([`Exit`]); it never
//! exits the process itself, so a test can run a daemon's service in one process on
//! [`Env::for_test`]: a listener it made, a recorder for the status reports, and a
//! [`Shutdown`] it triggers. The skeleton alone owns the status protocol with master
//! ([`StatusSink`]), `max_use`, `max_idle` and the table-change restart.
//!
//! Trigger servers (pickup) take a [`TriggerService`]: it gets the bytes a client sent
//! (a wake-up) instead of the connection.
//!
//! Status: the single and trigger servers report BUSY before and AVAILABLE after
//! each client, so master knows the process has served (only a process that dies
//! before serving throttles its service, as Postfix's master). After each client
//! they ask `postern_table::changed()` and stop ([`Exit::TableChanged`], logging
//! `table NAME has changed -- restarting`) when a table file the process opened was
//! replaced or modified, as Postfix's daemons do; master starts a fresh process.
//! A stop request (SIGHUP at `postern reload`/`stop`) is honoured between clients:
//! the current one is always served to the end.
//!
//! # Security
//! [`Env::from_master`] takes descriptors 3 (and 7… with `-s N`) and 4 only under
//! master; a daemon started otherwise stops with a fatal line. Privileges were dropped by
//! the `init` functions before any of this runs.
//!
//! # Configuration
//! `max_use` (clients per process) and `max_idle` (seconds without a client
//! before the process exits; ignored by a long-lived trigger server).

use crate::skeleton::Context;
use crate::status;
use postern_config::p;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a server runs on: master's descriptors in production, a listener
/// the test made in a test.
pub struct Env {
    /// The listening sockets (UNIX-domain for the blocking skeletons).
    pub listeners: Vec<OwnedFd>,
    /// Where busy/available reports go.
    pub status: StatusSink,
    /// When to stop.
    pub shutdown: Shutdown,
}

/// Where busy/available reports go: master's status pipe, a recorder in tests,
/// nowhere.
pub enum StatusSink {
    /// master's status pipe (descriptor 4).
    Pipe(File),
    /// Each reported status ([`status::BUSY`], [`status::AVAILABLE`]) is appended.
    Record(Arc<Mutex<Vec<u32>>>),
    /// Reports are dropped.
    Discard,
}

impl StatusSink {
    /// Tells master this process is busy or available ([`status::BUSY`],
    /// [`status::AVAILABLE`]). On a pipe, fatal when master is gone.
    pub fn report(&mut self, generation: u32, st: u32) {
        match self {
            StatusSink::Pipe(f) => {
                let msg = status::encode(std::process::id(), generation, st);
                if let Err(e) = f.write_all(&msg) {
                    // master is gone: nothing useful is left to do.
                    postern_log::fatal(format!("master status update: {e}"));
                }
            }
            StatusSink::Record(r) => record(r, &[st]),
            StatusSink::Discard => {}
        }
    }

    /// Tells master this process has served and is still available: BUSY then
    /// AVAILABLE in one write (see [`status::served`]). On a pipe, fatal when
    /// master is gone.
    pub fn served(&mut self, generation: u32) {
        match self {
            StatusSink::Pipe(f) => {
                if let Err(e) = status::served(&*f, generation) {
                    postern_log::fatal(format!("master status update: {e}"));
                }
            }
            StatusSink::Record(r) => record(r, &[status::BUSY, status::AVAILABLE]),
            StatusSink::Discard => {}
        }
    }
}

fn record(r: &Mutex<Vec<u32>>, sts: &[u32]) {
    // A test thread that panicked while holding the lock: keep recording.
    let mut v = r.lock().unwrap_or_else(|p| p.into_inner());
    v.extend_from_slice(sts);
}

/// Stop request: master's SIGHUP (reload/stop: finish the current client,
/// then exit) in production, or a test's [`Shutdown::trigger`]. Clones share
/// one flag.
#[derive(Clone, Debug)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    signals: bool,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A stop request only [`Shutdown::trigger`] makes (tests).
    pub fn new() -> Self {
        Shutdown {
            flag: Arc::new(AtomicBool::new(false)),
            signals: false,
        }
    }

    /// Production: installs the SIGHUP flag handler (fatal when that fails); the
    /// request is SIGHUP's arrival or [`Shutdown::trigger`].
    pub fn from_signals() -> Self {
        if let Err(e) = postern_sys::signals::install_exit_flags(false) {
            postern_log::fatal(e);
        }
        Shutdown {
            flag: Arc::new(AtomicBool::new(false)),
            signals: true,
        }
    }

    /// Asks every holder of this shutdown (and its clones) to stop.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
            || (self.signals
                && (postern_sys::signals::hup_received() || postern_sys::signals::term_received()))
    }

    /// Resolves once a stop was requested: at once on SIGHUP (tokio's handler
    /// chains to the flag handler, so the flag is set too), else within a
    /// [`Shutdown::tick`] of [`Shutdown::trigger`]. Needs a tokio runtime.
    pub async fn wait(&self) {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered before the first look at the flag: no SIGHUP is missed.
        let mut hup = if self.signals {
            signal(SignalKind::hangup()).ok()
        } else {
            None
        };
        while !self.requested() {
            match hup.as_mut() {
                Some(h) => {
                    tokio::select! {
                        _ = h.recv() => {}
                        () = tokio::time::sleep(self.tick()) => {}
                    }
                }
                None => tokio::time::sleep(self.tick()).await,
            }
        }
    }

    /// How long a blocking wait may last before it looks at [`Shutdown::requested`]
    /// again: short for a test's trigger; with signals, a signal interrupts the
    /// wait (EINTR) in the thread it hits, and the tick bounds the others.
    pub fn tick(&self) -> Duration {
        if self.signals {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(50)
        }
    }
}

/// A test's handles on an [`Env::for_test`]: the statuses reported, and the
/// shutdown to trigger.
pub struct TestHandle {
    /// Every status the server reported, in order.
    pub status: Arc<Mutex<Vec<u32>>>,
    /// Triggers the server's stop.
    pub shutdown: Shutdown,
}

impl TestHandle {
    /// The statuses reported so far.
    pub fn statuses(&self) -> Vec<u32> {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Env {
    /// What master passed: the `ctx.listeners` listening descriptors (3, 7, 8…),
    /// the status pipe (4) and SIGHUP as the stop request. Fatal when a
    /// descriptor is missing (daemons run only under master).
    pub fn from_master(ctx: &Context) -> Env {
        let shutdown = Shutdown::from_signals();
        let listeners = match postern_sys::fd::take_listeners(ctx.listeners) {
            Ok(l) => l,
            Err(e) => postern_log::fatal(format!(
                "listen descriptor: {e} (daemons run only under master)"
            )),
        };
        let status = match postern_sys::fd::take_inherited(postern_sys::fd::STATUS_FD) {
            Ok(f) => File::from(f),
            Err(e) => postern_log::fatal(format!(
                "status descriptor: {e} (daemons run only under master)"
            )),
        };
        Env {
            listeners,
            status: StatusSink::Pipe(status),
            shutdown,
        }
    }

    /// A test's environment: its listeners, a status recorder, a shutdown only
    /// the returned handle triggers.
    pub fn for_test(listeners: Vec<OwnedFd>) -> (Env, TestHandle) {
        let status = Arc::new(Mutex::new(Vec::new()));
        let shutdown = Shutdown::new();
        let env = Env {
            listeners,
            status: StatusSink::Record(status.clone()),
            shutdown: shutdown.clone(),
        };
        (env, TestHandle { status, shutdown })
    }
}

/// Why a server loop ended. The process then exits 0 ([`finish`]); master
/// starts a fresh one when there is work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `max_use` clients were served.
    MaxUse,
    /// No client for `max_idle`.
    Idle,
    /// master (SIGHUP) or a test asked the process to stop.
    Shutdown,
    /// A lookup table the process opened changed on disk.
    TableChanged,
    /// [`Service::pre_accept`] declined the next client (left queued for
    /// another process).
    Refused,
}

/// Postfix's `mail_server` callbacks for servers that take one client at a
/// time (the single and delivery-agent skeletons). `pre_init`/`post_init` are
/// the hooks of [`crate::skeleton::init_with`]/[`crate::skeleton::init_open`],
/// which run before the skeleton starts. A closure `FnMut(&Context, UnixStream)`
/// is a `Service` (serve only).
pub trait Service {
    /// Runs when a client is waiting, before it is accepted; `false` leaves it
    /// for another process and ends the loop ([`Exit::Refused`]).
    fn pre_accept(&mut self, _ctx: &Context) -> bool {
        true
    }
    /// Serves one client; the connection closes when `stream` is dropped.
    fn serve(&mut self, ctx: &Context, stream: UnixStream);
    /// Runs before each wait for the next client.
    fn on_idle(&mut self, _ctx: &Context) {}
    /// Runs once when the loop ends, whatever the [`Exit`].
    fn on_exit(&mut self, _ctx: &Context) {}
}

impl<F: FnMut(&Context, UnixStream)> Service for F {
    fn serve(&mut self, ctx: &Context, stream: UnixStream) {
        self(ctx, stream)
    }
}

/// The callbacks of a trigger server (pickup): as [`Service`], but
/// [`TriggerService::trigger`] gets the bytes the client sent (at most 1024,
/// best-effort within one second), not the connection. A closure
/// `FnMut(&Context, &[u8])` is a `TriggerService`.
pub trait TriggerService {
    /// As [`Service::pre_accept`].
    fn pre_accept(&mut self, _ctx: &Context) -> bool {
        true
    }
    /// Handles one trigger (the request bytes; the client is gone).
    fn trigger(&mut self, ctx: &Context, request: &[u8]);
    /// As [`Service::on_idle`].
    fn on_idle(&mut self, _ctx: &Context) {}
    /// As [`Service::on_exit`].
    fn on_exit(&mut self, _ctx: &Context) {}
}

impl<F: FnMut(&Context, &[u8])> TriggerService for F {
    fn trigger(&mut self, ctx: &Context, request: &[u8]) {
        self(ctx, request)
    }
}

/// Ends a daemon after its skeleton returned: exit status 0 whatever the
/// reason (a fatal error exits 1 elsewhere, and only that throttles the service).
pub fn finish(_ctx: &Context, _why: Exit) -> ! {
    std::process::exit(0)
}

/// Serves one client at a time until `max_use` clients were served, the
/// process was idle for `max_idle`, a stop was requested, a table changed, or
/// `pre_accept` declined. Reports BUSY before and AVAILABLE after each client.
pub fn single_server(ctx: &Context, env: Env, svc: &mut impl Service) -> Exit {
    let (max_use, idle) = limits(ctx);
    serve_loop(ctx, env, max_use, idle, svc)
}

/// Runs `svc` for each trigger (wake-ups from master, requests from other
/// programs), reporting BUSY/AVAILABLE around each. Stops on `max_use` and
/// `max_idle` only when `exit_when_idle` is set (pickup), else only at a stop
/// request, a table change or a `pre_accept` refusal.
pub fn trigger_server(
    ctx: &Context,
    env: Env,
    exit_when_idle: bool,
    svc: &mut impl TriggerService,
) -> Exit {
    let (max_use, idle) = if exit_when_idle {
        limits(ctx)
    } else {
        (u64::MAX, FOREVER)
    };
    serve_loop(ctx, env, max_use, idle, &mut Triggered(svc))
}

/// A [`TriggerService`] as a [`Service`]: it reads the trigger's bytes.
struct Triggered<'a, T>(&'a mut T);

impl<T: TriggerService> Service for Triggered<'_, T> {
    fn pre_accept(&mut self, ctx: &Context) -> bool {
        self.0.pre_accept(ctx)
    }
    fn serve(&mut self, ctx: &Context, stream: UnixStream) {
        self.0.trigger(ctx, &read_trigger(stream))
    }
    fn on_idle(&mut self, ctx: &Context) {
        self.0.on_idle(ctx)
    }
    fn on_exit(&mut self, ctx: &Context) {
        self.0.on_exit(ctx)
    }
}

/// The loop of the one-client-at-a-time skeletons.
fn serve_loop(
    ctx: &Context,
    env: Env,
    max_use: u64,
    idle: Duration,
    svc: &mut impl Service,
) -> Exit {
    let Env {
        listeners,
        mut status,
        shutdown,
    } = env;
    let listeners: Vec<UnixListener> = listeners.into_iter().map(UnixListener::from).collect();
    let mut served = 0;
    let exit = loop {
        if served >= max_use {
            break Exit::MaxUse;
        }
        svc.on_idle(ctx);
        let stream = match accept(&listeners, idle, &shutdown, &mut || svc.pre_accept(ctx)) {
            Ok(s) => s,
            Err(why) => break why,
        };
        status.report(ctx.generation, status::BUSY);
        svc.serve(ctx, stream);
        served += 1;
        status.report(ctx.generation, status::AVAILABLE);
        if table_changed() {
            break Exit::TableChanged;
        }
    };
    svc.on_exit(ctx);
    exit
}

/// An idle limit that never ends a long-lived server.
pub const FOREVER: Duration = Duration::from_secs(365 * 86400);

/// The next trigger: waits (at most `idle`) for a connection that `pre_accept`
/// lets through and returns the bytes it sent (at most 1024, best-effort within
/// one second). Why not: [`Exit::Idle`], [`Exit::Shutdown`], [`Exit::Refused`].
/// For a daemon that runs its own loop around triggers (qmgr) on [`Env`]'s
/// listeners (`UnixListener::from(fd)`).
pub fn next_trigger(
    listeners: &[UnixListener],
    idle: Duration,
    shutdown: &Shutdown,
    pre_accept: &mut dyn FnMut() -> bool,
) -> Result<Vec<u8>, Exit> {
    accept(listeners, idle, shutdown, pre_accept).map(read_trigger)
}

/// What a trigger client sent: at most 1024 bytes, best-effort within one second.
fn read_trigger(mut stream: UnixStream) -> Vec<u8> {
    let mut buf = [0u8; 1024];
    let mut got = 0;
    if stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .is_ok()
    {
        while got < buf.len() {
            match stream.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(_) => break, // a trigger is best-effort: use what arrived
            }
        }
    }
    buf[..got].to_vec()
}

/// Waits for a connection on any of the listeners; once one is readable,
/// `pre_accept` decides whether to take it (`false` leaves it queued for
/// master's next process: [`Exit::Refused`]). [`Exit::Idle`] after `idle`
/// without a client, [`Exit::Shutdown`] on a stop request.
pub fn accept(
    listeners: &[UnixListener],
    idle: Duration,
    shutdown: &Shutdown,
    pre_accept: &mut dyn FnMut() -> bool,
) -> Result<UnixStream, Exit> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let deadline = std::time::Instant::now() + idle;
    loop {
        if shutdown.requested() {
            return Err(Exit::Shutdown);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(Exit::Idle);
        }
        let wait = left.min(shutdown.tick());
        let ms = PollTimeout::try_from(wait.as_millis().max(1) as i32).unwrap_or(PollTimeout::MAX);
        let mut fds: Vec<PollFd> = listeners
            .iter()
            .map(|l| PollFd::new(l.as_fd(), PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, ms) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => postern_log::fatal(format!("poll: {e}")),
        }
        let ready = fds
            .iter()
            .position(|f| f.revents().is_some_and(|r| !r.is_empty()));
        drop(fds);
        let Some(l) = ready.and_then(|i| listeners.get(i)) else {
            continue;
        };
        if !pre_accept() {
            return Err(Exit::Refused);
        }
        match l.accept() {
            Ok((s, _)) => return Ok(s),
            // Another process took it, or the client went away.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                continue;
            }
            Err(e) => postern_log::fatal(format!("accept connection: {e}")),
        }
    }
}

/// `max_use` (clients per process) and `max_idle` (idle time before exit).
pub fn limits(ctx: &Context) -> (u64, Duration) {
    let max_use = ctx.config.int(p::MAX_USE).max(1) as u64;
    let max_idle = ctx.config.time(p::MAX_IDLE).as_secs().max(1);
    (max_use, Duration::from_secs(max_idle))
}

/// True (after logging Postfix's line) when a lookup table this process opened has
/// changed on disk: the server stops after its current request and master starts a
/// fresh process that opens the new table.
pub fn table_changed() -> bool {
    match postern_table::changed() {
        Some(table) => {
            postern_log::info(format!("table {table} has changed -- restarting"));
            true
        }
        None => false,
    }
}
