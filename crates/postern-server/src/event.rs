//! The event server skeleton: one process serves many connections at once
//! (smtpd, and later qmqpd), on a tokio runtime.
//!
//! The listeners inherited from master (descriptor 3, and 7… with `-s N`:
//! an `inet` service on several addresses) may be TCP or UNIX-domain; the
//! process accepts on all of them. Each accepted connection runs `serve` as
//! its own task. After its first client the process tells master it has
//! served (a busy/available pair: a later crash is not a start-up failure);
//! it tells master it is busy while it holds `per_process_limit`
//! connections, so master starts another process (up to the service's
//! maxproc); it exits after `max_idle` seconds without any
//! connection, and on SIGHUP (reload) — or when a lookup table it opened
//! changed on disk — it stops accepting, lets open sessions finish, and exits.
//!
//! # Security
//! Privileges were dropped by [`crate::skeleton::init`] before the runtime
//! and its threads start.

use crate::skeleton::Context;
use crate::status;
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Runs the event server; never returns.
pub fn event_server<F, Fut>(ctx: Context, per_process_limit: usize, serve: F) -> !
where
    F: Fn(Arc<Context>, Box<dyn Io>, Peer) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let fds = crate::skeleton::inherited_listeners(&ctx);
    let status = match postern_sys::fd::take_inherited(postern_sys::fd::STATUS_FD) {
        Ok(fd) => File::from(fd),
        Err(e) => postern_log::fatal(format!("status descriptor: {e}")),
    };
    raise_fd_limit();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => postern_log::fatal(format!("start runtime: {e}")),
    };
    let code = rt.block_on(run(
        Arc::new(ctx),
        fds,
        status,
        per_process_limit.max(1),
        Arc::new(serve),
    ));
    std::process::exit(code)
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

async fn run<F, Fut>(
    ctx: Arc<Context>,
    fds: Vec<std::os::fd::OwnedFd>,
    status: File,
    limit: usize,
    serve: Arc<F>,
) -> i32
where
    F: Fn(Arc<Context>, Box<dyn Io>, Peer) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut listeners = Vec::with_capacity(fds.len());
    for fd in fds {
        match listener(fd) {
            Ok(l) => listeners.push(l),
            Err(e) => postern_log::fatal(format!("listener: {e}")),
        }
    }
    let mut next_listener = 0usize;
    let mut has_served = false;
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => postern_log::fatal(format!("signal handler: {e}")),
    };
    let idle = Duration::from_secs(ctx.config.get_time("max_idle").unwrap_or(100).max(1));
    let active = Arc::new(AtomicUsize::new(0));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut busy = false;
    let generation = ctx.generation;
    let report = |busy_now: bool, busy: &mut bool| {
        if busy_now != *busy {
            *busy = busy_now;
            let st = if busy_now {
                status::BUSY
            } else {
                status::AVAILABLE
            };
            if let Err(e) = (&status).write_all(&status::encode(std::process::id(), generation, st))
            {
                postern_log::fatal(format!("master status update: {e}"));
            }
        }
    };
    // Idle is measured from the last accept or session end; the tick looks for changed
    // lookup tables while no client connects.
    let mut last_activity = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let accepted = tokio::select! {
            a = accept_any(&listeners, &mut next_listener), if !busy => a,
            _ = done_rx.recv() => {
                last_activity = tokio::time::Instant::now();
                report(active.load(Ordering::SeqCst) >= limit, &mut busy);
                continue;
            }
            _ = hup.recv() => break,
            _ = tick.tick() => {
                if crate::skeleton::table_changed() {
                    // Not available any more: master starts a fresh process.
                    report(true, &mut busy);
                    break;
                }
                continue;
            }
            _ = tokio::time::sleep_until(last_activity + idle), if active.load(Ordering::SeqCst) == 0 => return 0,
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
        active.fetch_add(1, Ordering::SeqCst);
        if !has_served {
            has_served = true;
            if let Err(e) = crate::status::served(&status, generation) {
                postern_log::fatal(format!("master status update: {e}"));
            }
        }
        report(active.load(Ordering::SeqCst) >= limit, &mut busy);
        // A changed table: serve this client with the tables we have, accept no more,
        // and exit once the open sessions are done (master starts a fresh process).
        let restart = crate::skeleton::table_changed();
        let (ctx2, serve2, active2, done2) =
            (ctx.clone(), serve.clone(), active.clone(), done_tx.clone());
        tokio::spawn(async move {
            serve2(ctx2, io, peer).await;
            active2.fetch_sub(1, Ordering::SeqCst);
            let _main_loop_gone = done2.send(());
        });
        if restart {
            report(true, &mut busy);
            break;
        }
    }
    // Reload or stop: no new clients; let the open sessions finish (bounded).
    drop(listeners);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while active.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    0
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
