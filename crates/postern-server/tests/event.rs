//! In-process tests of the event server skeleton on `Env::for_test`: a TCP
//! listener on loopback (port 0), a status recorder, a shutdown the test
//! triggers. Accepting and serving, busy at the per-process limit, the drain
//! on shutdown, the idle exit.

use postern_config::{Config, parse_main_cf};
use postern_server::event::{self, Io, Peer};
use postern_server::service::{Env, Exit, TestHandle};
use postern_server::skeleton::Context;
use postern_server::status::{AVAILABLE, BUSY};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

fn ctx(main_cf: &str) -> Arc<Context> {
    let main = parse_main_cf(main_cf).expect("main.cf parses");
    Arc::new(Context::new("test", Config::new(main)))
}

/// A loopback listener and the test's environment on it.
fn listen() -> (SocketAddr, Env, TestHandle) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("address");
    let (env, handle) = Env::for_test(vec![OwnedFd::from(l)]);
    (addr, env, handle)
}

/// The session: one line back, then the end.
async fn echo(_ctx: Arc<Context>, io: Box<dyn Io>, _peer: Peer) {
    let mut r = BufReader::new(io);
    let mut line = String::new();
    if r.read_line(&mut line).await.is_ok() {
        let _gone = r.get_mut().write_all(line.as_bytes()).await;
    }
}

/// Sends a line, returns everything the server sent until it closed.
async fn talk(c: &mut TcpStream, line: &str) -> String {
    c.write_all(line.as_bytes()).await.expect("write");
    let mut got = String::new();
    timeout(Duration::from_secs(10), c.read_to_string(&mut got))
        .await
        .expect("answered in time")
        .expect("read");
    got
}

/// Waits (at most 5 s) until the recorded statuses are `want`.
async fn statuses_become(h: &TestHandle, want: &[u32]) {
    for _ in 0..100 {
        if h.statuses() == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.statuses(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_clients_and_stops_on_shutdown() {
    let (addr, env, h) = listen();
    let server = tokio::spawn(event::run(ctx(""), env, 10, echo));
    for i in 0..3 {
        let mut c = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(
            talk(&mut c, &format!("hello {i}\n")).await,
            format!("hello {i}\n")
        );
    }
    h.shutdown.trigger();
    let exit = timeout(Duration::from_secs(5), server)
        .await
        .expect("stopped");
    assert_eq!(exit.expect("no panic"), Exit::Shutdown);
    // Served (one busy/available pair), never at its limit.
    assert_eq!(h.statuses(), [BUSY, AVAILABLE]);
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_at_the_limit_and_available_again() {
    let (addr, env, h) = listen();
    let server = tokio::spawn(event::run(ctx(""), env, 1, echo));
    let mut a = TcpStream::connect(addr).await.expect("connect a");
    // Served, then busy: one session is the limit.
    statuses_become(&h, &[BUSY, AVAILABLE, BUSY]).await;
    // The second client waits in the backlog, unserved, while the first holds the process.
    let mut b = TcpStream::connect(addr).await.expect("connect b");
    b.write_all(b"b\n").await.expect("write b");
    let mut buf = [0u8; 8];
    assert!(
        timeout(Duration::from_millis(300), b.read(&mut buf))
            .await
            .is_err(),
        "b is not served while a holds the only session"
    );
    assert_eq!(talk(&mut a, "a\n").await, "a\n");
    let mut got = String::new();
    timeout(Duration::from_secs(10), b.read_to_string(&mut got))
        .await
        .expect("b served once a is gone")
        .expect("read b");
    assert_eq!(got, "b\n");
    statuses_become(&h, &[BUSY, AVAILABLE, BUSY, AVAILABLE, BUSY, AVAILABLE]).await;
    h.shutdown.trigger();
    let exit = timeout(Duration::from_secs(5), server)
        .await
        .expect("stopped");
    assert_eq!(exit.expect("no panic"), Exit::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_lets_sessions_finish() {
    let (addr, env, h) = listen();
    let server = tokio::spawn(event::run(ctx(""), env, 10, echo));
    let mut a = TcpStream::connect(addr).await.expect("connect");
    statuses_become(&h, &[BUSY, AVAILABLE]).await;
    h.shutdown.trigger();
    // Noticed within a tick: no new clients, the open session goes on.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    assert!(!server.is_finished(), "waits for the open session");
    assert_eq!(talk(&mut a, "last\n").await, "last\n");
    let exit = timeout(Duration::from_secs(5), server)
        .await
        .expect("stopped");
    assert_eq!(exit.expect("no panic"), Exit::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_exit_after_max_idle() {
    let (_addr, env, h) = listen();
    let started = std::time::Instant::now();
    let exit = timeout(
        Duration::from_secs(10),
        event::run(ctx("max_idle = 1s"), env, 10, echo),
    )
    .await
    .expect("idle exit in time");
    assert_eq!(exit, Exit::Idle);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(h.statuses().is_empty(), "never served");
}
