//! proxymap in-process, on the framed-request skeleton (its own test process:
//! the registry of opened tables is global): a real `texthash:` table answered
//! over a UNIX-domain connection; when the file changes, the request gets its
//! reply, then the session is closed and the server returns
//! `Exit::TableChanged` (no `process::exit` mid-session).

use postern_config::{Config, parse_main_cf};
use postern_ipc::proxymap::{FLAG_FOLD_CASE, ProxyOp, ProxyReply, ProxyRequest, ProxyStatus};
use postern_proxymap::{Proxy, approved_tables};
use postern_server::client;
use postern_server::framed;
use postern_server::service::{Env, Exit};
use postern_server::skeleton::Context;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::time::timeout;

async fn lookup(c: &mut UnixStream, table: &str, key: &str) -> Option<ProxyReply> {
    let req = ProxyRequest {
        op: ProxyOp::Lookup,
        table: table.to_string(),
        flags: FLAG_FOLD_CASE,
        key: key.to_string(),
    };
    client::write_frame_async(c, &req.to_attrs()).await.ok()?;
    let reply = timeout(Duration::from_secs(5), client::read_frame_async(c, 1 << 16))
        .await
        .expect("answered in time")
        .ok()??;
    Some(ProxyReply::from_attrs(&reply).expect("a proxymap reply"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texthash_lookups_then_drain_on_change() {
    let dir = std::env::temp_dir().join(format!("postern-proxymap-session-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("aliases");
    std::fs::write(&file, "alice alice@example.com\n").unwrap();
    let table = format!("texthash:{}", file.display());

    let path = dir.join("proxymap");
    let l = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let (env, h) = Env::for_test(vec![OwnedFd::from(l)]);
    let ctx = Arc::new(Context::new(
        "proxymap",
        Config::new(parse_main_cf("").expect("main.cf")),
    ));
    let proxy = Arc::new(Proxy::new(approved_tables(&format!("proxy:{table}"))));
    let server = tokio::spawn(framed::run(ctx, env, usize::MAX, proxy));

    let mut c = UnixStream::connect(&path).await.expect("connect");
    let r = lookup(&mut c, &format!("proxy:{table}"), "ALICE")
        .await
        .expect("reply");
    assert_eq!(
        (r.status, r.value.as_str()),
        (ProxyStatus::Ok, "alice@example.com")
    );
    let r = lookup(&mut c, &table, "bob").await.expect("reply");
    assert_eq!(r.status, ProxyStatus::NoKey);
    let r = lookup(&mut c, "texthash:/etc/other", "bob")
        .await
        .expect("reply");
    assert_eq!(r.status, ProxyStatus::Deny);

    // The table changes while a request is under way (half sent): it is still
    // answered (from the table this process opened), then the session is closed.
    let req = ProxyRequest {
        op: ProxyOp::Lookup,
        table: table.clone(),
        flags: FLAG_FOLD_CASE,
        key: "alice".into(),
    };
    let frame = postern_ipc::encode_frame(&req.to_attrs());
    let (head, tail) = frame.split_at(frame.len() / 2);
    c.write_all(head).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    std::fs::write(&file, "alice other@example.com\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!server.is_finished(), "waits for the request under way");
    c.write_all(tail).await.unwrap();
    let reply = timeout(
        Duration::from_secs(5),
        client::read_frame_async(&mut c, 1 << 16),
    )
    .await
    .expect("answered in time")
    .expect("read")
    .expect("a reply");
    let r = ProxyReply::from_attrs(&reply).expect("a proxymap reply");
    assert_eq!(
        (r.status, r.value.as_str()),
        (ProxyStatus::Ok, "alice@example.com")
    );
    let exit = timeout(Duration::from_secs(5), server)
        .await
        .expect("stopped");
    assert_eq!(exit.expect("no panic"), Exit::TableChanged);
    assert!(
        lookup(&mut c, &table, "alice").await.is_none(),
        "session closed"
    );
    assert!(
        UnixStream::connect(&path).await.is_err(),
        "no longer accepting"
    );
    assert!(!h.statuses().is_empty());
    std::fs::remove_dir_all(&dir).ok();
}
