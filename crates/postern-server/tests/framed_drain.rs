//! The framed-request skeleton's drain on a table change (its own test
//! process: the registry of opened tables is global and a change stays
//! seen): a request under way when the table changes is read to its end and
//! answered, then its connection is closed; an idle connection is closed at
//! once; the server returns `Exit::TableChanged` when the last one is gone.

use postern_config::{Config, parse_main_cf};
use postern_ipc::AttrList;
use postern_server::client;
use postern_server::framed::{self, Framed};
use postern_server::service::{Env, Exit};
use postern_server::skeleton::Context;
use postern_server::status::{AVAILABLE, BUSY};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

struct Echo;

impl Framed for Echo {
    fn frame_limit(&self) -> u64 {
        1 << 10
    }

    fn answer(&self, _ctx: &Context, req: AttrList) -> Option<AttrList> {
        let mut reply = AttrList::new();
        reply.push("echo", req.text("v").as_str());
        Some(reply)
    }
}

fn frame(v: &str) -> Vec<u8> {
    let mut a = AttrList::new();
    a.push("v", v);
    postern_ipc::encode_frame(&a)
}

async fn closed(c: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(
        timeout(Duration::from_secs(5), c.read_to_end(&mut rest)).await,
        Ok(Ok(0))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_change_drains_without_cutting_a_request() {
    let dir = std::env::temp_dir().join(format!("postern-framed-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let table = dir.join("t");
    std::fs::write(&table, "a 1\n").unwrap();
    let _opened = postern_table::open(
        &format!("texthash:{}", table.display()),
        &postern_table::OpenOptions::default(),
    )
    .expect("table opens");

    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("address");
    let (env, h) = Env::for_test(vec![OwnedFd::from(l)]);
    let ctx = Arc::new(Context::new(
        "echo",
        Config::new(parse_main_cf("").expect("main.cf")),
    ));
    let server = tokio::spawn(framed::run(ctx, env, 100, Arc::new(Echo)));

    let mut busy = TcpStream::connect(addr).await.expect("connect");
    busy.write_all(&frame("first")).await.unwrap();
    let r = client::read_frame_async(&mut busy, 1 << 10).await.unwrap();
    assert_eq!(r.expect("reply").text("echo"), "first");
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Half a request, then the table changes under the server.
    let second = frame("second");
    let (head, tail) = second.split_at(second.len() / 2);
    busy.write_all(head).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    std::fs::write(&table, "a 2\n").unwrap();

    // Noticed within a second: the idle connection is closed, the busy one is not.
    assert!(closed(&mut idle).await, "idle session closed at the drain");
    assert!(!server.is_finished(), "waits for the request under way");
    busy.write_all(tail).await.unwrap();
    let r = client::read_frame_async(&mut busy, 1 << 10).await.unwrap();
    assert_eq!(r.expect("the request is answered").text("echo"), "second");
    assert!(closed(&mut busy).await, "then closed");
    let exit = timeout(Duration::from_secs(5), server)
        .await
        .expect("stopped");
    assert_eq!(exit.expect("no panic"), Exit::TableChanged);
    // Served, then not available any more while draining.
    assert_eq!(h.statuses(), [BUSY, AVAILABLE, BUSY]);
    std::fs::remove_dir_all(&dir).ok();
}
