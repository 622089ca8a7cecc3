//! The event server skeleton: one process serves many connections at once
//! (smtpd, qmqpd, and through [`crate::framed`] anvil, proxymap and flush), on
//! a tokio runtime.
//!
//! The listeners (master's descriptor 3, and 7… with `-s N`: an `inet` service
//! on several addresses; a test's own in [`crate::service::Env::for_test`])
//! may be TCP or UNIX-domain; the process accepts on all of them. Each
//! accepted connection runs `serve` as its own task. After its first client
//! the process reports that it has served (a busy/available pair: a later
//! crash is not a start-up failure); it reports busy while it holds
//! `per_process_limit` connections and accepts no more, so master starts
//! another process (up to the service's maxproc). It ends ([`Exit`]) after
//! `max_idle` seconds without any connection, and on the shutdown request
//! (SIGHUP: reload or stop) or when a lookup table it opened changed on disk:
//! then it stops accepting, tells the sessions it is draining ([`Drain`]), lets
//! them finish (at most 300 s), and returns. It never exits the process.
//!
//! # Security
//! Privileges were dropped by [`crate::skeleton::init`] before the runtime
//! and its threads start.
//!
//! # Configuration
//! `max_idle`.

use crate::service::{Env, Exit, StatusSink};
use crate::skeleton::Context;
use crate::status;
use postern_config::p;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// A connected client stream.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Who is on the other end.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Client address (None for UNIX-domain clients).
    pub addr: Option<SocketAddr>,
    /// Our address.
    pub local: Option<SocketAddr>,
}

/// Tells a session that the process stopped accepting and is waiting for its
/// sessions to end (shutdown, changed table): a session between requests
/// should close.
#[derive(Debug, Clone)]
pub struct Drain(tokio::sync::watch::Receiver<bool>);

impl Drain {
    /// Whether the process is draining.
    pub fn draining(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the process is draining.
    pub async fn wait(&mut self) {
        // An error means the server loop is gone: draining too.
        let _gone = self.0.wait_for(|d| *d).await;
    }
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

fn listener(fd: std::os::fd::OwnedFd) -> std::io::Result<Listener> {
    use nix::sys::socket::{AddressFamily, SockaddrLike, SockaddrStorage, getsockname};
    use std::os::fd::AsRawFd;
    let addr: SockaddrStorage = getsockname(fd.as_raw_fd()).map_err(std::io::Error::from)?;
    if addr.family() == Some(AddressFamily::Unix) {
        let l = std::os::unix::net::UnixListener::from(fd);
        l.set_nonblocking(true)?;
        Ok(Listener::Unix(tokio::net::UnixListener::from_std(l)?))
    } else {
        let l = std::net::TcpListener::from(fd);
        l.set_nonblocking(true)?;
        Ok(Listener::Tcp(tokio::net::TcpListener::from_std(l)?))
    }
}

/// Runs the event server on a runtime of its own until it ends; see the module
/// documentation. `serve` runs once per connection.
pub fn event_server<F, Fut>(ctx: &Context, env: Env, per_process_limit: usize, serve: F) -> Exit
where
    F: Fn(Arc<Context>, Box<dyn Io>, Peer) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    on_runtime(run(Arc::new(ctx.clone()), env, per_process_limit, serve))
}

/// Runs a server loop on a fresh two-thread runtime (fatal when none can be made).
pub(crate) fn on_runtime(server: impl Future<Output = Exit>) -> Exit {
    raise_fd_limit();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => postern_log::fatal(format!("start runtime: {e}")),
    };
    rt.block_on(server)
}

/// One process holds many connections: lift the soft descriptor limit to the
/// hard limit (Postfix's one-client-per-process servers never need this).
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                postern_log::warning(format!("setrlimit(RLIMIT_NOFILE, {hard}): {e}"));
            }
        }
        Ok(_) => {}
        Err(e) => postern_log::warning(format!("getrlimit(RLIMIT_NOFILE): {e}")),
    }
}

/// The event server's loop, for a caller that has a runtime (a test).
pub async fn run<F, Fut>(ctx: Arc<Context>, env: Env, per_process_limit: usize, serve: F) -> Exit
where
    F: Fn(Arc<Context>, Box<dyn Io>, Peer) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_draining(ctx, env, per_process_limit, move |ctx, io, peer, _drain| {
        serve(ctx, io, peer)
    })
    .await
}

/// Tells master (or a test) whether the process takes more clients.
struct Reporter {
    sink: StatusSink,
    generation: u32,
    busy: bool,
}

impl Reporter {
    fn set(&mut self, busy: bool) {
        if busy != self.busy {
            self.busy = busy;
            let st = if busy {
                status::BUSY
            } else {
                status::AVAILABLE
            };
            self.sink.report(self.generation, st);
        }
    }
}

/// [`run`] whose sessions also get the [`Drain`] signal (the framed server).
pub(crate) async fn run_draining<F, Fut>(
    ctx: Arc<Context>,
    env: Env,
    per_process_limit: usize,
    serve: F,
) -> Exit
where
    F: Fn(Arc<Context>, Box<dyn Io>, Peer, Drain) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Env {
        listeners: fds,
        status,
        shutdown,
    } = env;
    let mut listeners = Vec::with_capacity(fds.len());
    for fd in fds {
        match listener(fd) {
            Ok(l) => listeners.push(l),
            Err(e) => postern_log::fatal(format!("listener: {e}")),
        }
    }
    let limit = per_process_limit.max(1);
    let mut next_listener = 0usize;
    let mut has_served = false;
    let mut status = Reporter {
        sink: status,
        generation: ctx.generation,
        busy: false,
    };
    let idle = ctx.config.time(p::MAX_IDLE).max(Duration::from_secs(1));
    let mut active = 0usize;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    // Idle is measured from the last accept or session end; the tick looks for changed
    // lookup tables while no client connects.
    let mut last_activity = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let exit = loop {
        let accepted = tokio::select! {
            a = accept_any(&listeners, &mut next_listener), if !status.busy => a,
            Some(()) = done_rx.recv() => {
                active -= 1;
                last_activity = tokio::time::Instant::now();
                status.set(active >= limit);
                continue;
            }
            () = shutdown.wait() => break Exit::Shutdown,
            _ = tick.tick() => {
                if crate::service::table_changed() {
                    break Exit::TableChanged;
                }
                continue;
            }
            () = tokio::time::sleep_until(last_activity + idle), if active == 0 => break Exit::Idle,
        };
        last_activity = tokio::time::Instant::now();
        let (io, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                postern_log::warning(format!("accept: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        active += 1;
        if !has_served {
            has_served = true;
            status.sink.served(ctx.generation);
        }
        status.set(active >= limit);
        let session = serve(ctx.clone(), io, peer, Drain(drain_rx.clone()));
        let done = done_tx.clone();
        tokio::spawn(async move {
            session.await;
            let _main_loop_gone = done.send(());
        });
        // A changed table: this client is served with the tables we have; no more.
        if crate::service::table_changed() {
            break Exit::TableChanged;
        }
    };
    // No new clients: master starts a fresh process when one comes. The open
    // sessions finish (bounded), told to close between requests.
    drop(listeners);
    if active > 0 {
        status.set(true);
        let _no_session_left = drain_tx.send(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        while active > 0 {
            tokio::select! {
                Some(()) = done_rx.recv() => active -= 1,
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
    exit
}

/// Accepts on whichever listener has a client, starting the search at
/// `*next` (round robin, so one busy address cannot starve another).
async fn accept_any(
    listeners: &[Listener],
    next: &mut usize,
) -> std::io::Result<(Box<dyn Io>, Peer)> {
    use std::task::Poll;
    let n = listeners.len().max(1);
    std::future::poll_fn(|cx| {
        for k in 0..n {
            let i = (*next + k) % n;
            let Some(l) = listeners.get(i) else {
                return Poll::Pending;
            };
            if let Poll::Ready(r) = poll_accept(l, cx) {
                *next = (i + 1) % n;
                return Poll::Ready(r);
            }
        }
        Poll::Pending
    })
    .await
}

fn poll_accept(
    l: &Listener,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<std::io::Result<(Box<dyn Io>, Peer)>> {
    use std::task::Poll;
    match l {
        Listener::Tcp(t) => {
            let (s, addr) = match t.poll_accept(cx) {
                Poll::Ready(Ok(x)) => x,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            if let Err(e) = s.set_nodelay(true) {
                postern_log::warning(format!("TCP_NODELAY: {e}"));
            }
            let local = s.local_addr().ok();
            Poll::Ready(Ok((
                Box::new(s),
                Peer {
                    addr: Some(addr),
                    local,
                },
            )))
        }
        Listener::Unix(u) => {
            let (s, _) = match u.poll_accept(cx) {
                Poll::Ready(Ok(x)) => x,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            Poll::Ready(Ok((
                Box::new(s),
                Peer {
                    addr: None,
                    local: None,
                },
            )))
        }
    }
}
