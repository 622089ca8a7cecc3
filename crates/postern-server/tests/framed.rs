//! In-process tests of the framed-request skeleton on `Env::for_test`:
//! requests and replies on one connection, a service that closes the
//! session, an oversized frame, a wake-up. The table-change drain is in
//! `framed_drain.rs` (its own process: the table registry is global).

use postern_config::{Config, parse_main_cf};
use postern_ipc::AttrList;
use postern_server::client;
use postern_server::framed::{self, Framed};
use postern_server::service::{Env, Exit, TestHandle};
use postern_server::skeleton::Context;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Echoes `v` back as `echo`; `close` ends the session; records wake-ups.
#[derive(Default)]
struct Echo {
    wakeups: Mutex<Vec<Vec<u8>>>,
}

impl Framed for Echo {
    fn frame_limit(&self) -> u64 {
        64
    }

    fn answer(&self, _ctx: &Context, req: AttrList) -> Option<AttrList> {
        if req.get("close").is_some() {
            return None;
        }
        let mut reply = AttrList::new();
        reply.push("echo", req.text("v").as_str());
        Some(reply)
    }

    fn wakeup(&self, _ctx: &Context, bytes: &[u8]) {
        self.wakeups.lock().unwrap().push(bytes.to_vec());
    }
}

fn request(name: &str, v: &str) -> AttrList {
    let mut a = AttrList::new();
    a.push(name, v);
    a
}

fn start() -> (
    SocketAddr,
    Arc<Echo>,
    TestHandle,
    tokio::task::JoinHandle<Exit>,
) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("address");
    let (env, handle) = Env::for_test(vec![OwnedFd::from(l)]);
    let ctx = Arc::new(Context::new(
        "echo",
        Config::new(parse_main_cf("").expect("main.cf")),
    ));
    let svc = Arc::new(Echo::default());
    let server = tokio::spawn(framed::run(ctx, env, 100, svc.clone()));
    (addr, svc, handle, server)
}

async fn read(c: &mut TcpStream) -> Option<AttrList> {
    timeout(
        Duration::from_secs(10),
        client::read_frame_async(c, 1 << 10),
    )
    .await
    .expect("answered in time")
    .expect("a frame or the end")
}

async fn stop(h: &TestHandle, server: tokio::task::JoinHandle<Exit>) {
    h.shutdown.trigger();
    let exit = timeout(Duration::from_secs(5), server)
        .await
        .expect("stopped");
    assert_eq!(exit.expect("no panic"), Exit::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_replies_on_one_connection() {
    let (addr, _svc, h, server) = start();
    let mut c = TcpStream::connect(addr).await.expect("connect");
    for v in ["one", "two"] {
        client::write_frame_async(&mut c, &request("v", v))
            .await
            .expect("send");
        assert_eq!(read(&mut c).await.expect("reply").text("echo"), v);
    }
    // The service ends the session.
    client::write_frame_async(&mut c, &request("close", ""))
        .await
        .expect("send");
    assert!(read(&mut c).await.is_none(), "closed");
    stop(&h, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_the_connection_only() {
    let (addr, _svc, h, server) = start();
    let mut big = TcpStream::connect(addr).await.expect("connect");
    big.write_all(&1000u32.to_be_bytes()).await.expect("send");
    big.write_all(&[0u8; 100]).await.expect("send");
    let mut rest = Vec::new();
    let n = timeout(Duration::from_secs(10), big.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    assert!(
        n.is_err() || rest.is_empty(),
        "no reply to an oversized frame"
    );
    let mut c = TcpStream::connect(addr).await.expect("connect");
    client::write_frame_async(&mut c, &request("v", "still"))
        .await
        .expect("send");
    assert_eq!(read(&mut c).await.expect("reply").text("echo"), "still");
    stop(&h, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_bytes_than_a_header_is_a_wakeup() {
    let (addr, svc, h, server) = start();
    let mut c = TcpStream::connect(addr).await.expect("connect");
    c.write_all(b"W").await.expect("send");
    c.shutdown().await.expect("half-close");
    let mut rest = Vec::new();
    timeout(Duration::from_secs(10), c.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .expect("read");
    assert!(rest.is_empty());
    assert_eq!(*svc.wakeups.lock().unwrap(), vec![b"W".to_vec()]);
    stop(&h, server).await;
}
