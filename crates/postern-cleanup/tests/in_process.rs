//! cleanup's service run in-process on `Env::for_test`: a temporary queue, one
//! `cleanup/1` request over the client API, the reply's queue ID, the queue file
//! in `incoming/` with its records, qmgr's wake-up, and a clean shutdown.

use postern_cleanup::Cleanup;
use postern_cleanup::tables::Tables;
use postern_config::{Config, parse_main_cf};
use postern_ipc::proto::{
    CleanupReply, CleanupRequest, CleanupStatus, Recipient, cleanup_flags, trigger,
};
use postern_server::client;
use postern_server::service::{self, Env, Exit};
use postern_server::skeleton::Context;
use postern_server::status::{AVAILABLE, BUSY};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::time::Duration;

#[test]
fn cleanup_queues_one_message_and_wakes_qmgr() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path();
    for d in ["incoming", "hold", "public", "private"] {
        std::fs::create_dir(queue.join(d)).unwrap();
    }
    let main_cf = format!(
        "queue_directory = {}\nmyhostname = mx.example.org\nmydomain = example.org\n\
         in_flow_delay = 0\n",
        queue.display()
    );
    let config = Config::new(parse_main_cf(&main_cf).unwrap());
    let qmgr = UnixListener::bind(queue.join("public/qmgr")).unwrap();
    let listener = UnixListener::bind(queue.join("public/cleanup")).unwrap();
    let (env, handle) = Env::for_test(vec![OwnedFd::from(listener)]);
    let ctx = Context::new("cleanup", config.clone());
    let server = std::thread::spawn(move || {
        let mut cleanup = Cleanup::new(&ctx, Tables::from_config(&ctx.config));
        service::single_server(&ctx, env, &mut cleanup)
    });

    let req = CleanupRequest {
        flags: cleanup_flags::BOUNCE_ON_REJECT,
        sender: "alice@example.org".into(),
        fullname: String::new(),
        arrival: (1_700_000_000, 0),
        recipients: vec![Recipient::new("bob@example.net")],
        attrs: vec![("log_ident".into(), "test".into())],
        content: b"Subject: hello\n\nbody line\n".to_vec(),
    };
    let reply = client::request(
        &config,
        "public",
        "cleanup",
        &req.to_attrs(),
        1 << 16,
        Duration::from_secs(10),
    )
    .unwrap();
    let reply = CleanupReply::from_attrs(&reply).unwrap();
    assert_eq!(reply.status, CleanupStatus::Ok, "{}", reply.reason);
    assert!(
        postern_queue::valid_id(&reply.queue_id),
        "{}",
        reply.queue_id
    );

    let q = postern_queue::Queue::new(queue);
    let qf = q.read("incoming", &reply.queue_id, 1 << 20).unwrap();
    assert_eq!(qf.sender, "alice@example.org");
    assert_eq!(qf.arrival.0, 1_700_000_000);
    let rcpts: Vec<&str> = qf.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(rcpts, ["bob@example.net"]);
    let content = String::from_utf8_lossy(&qf.content);
    assert!(content.contains("Subject: hello\n"), "{content}");
    assert!(content.contains("\nbody line\n"), "{content}");
    // cleanup adds what the header lacks (Postfix's cleanup does for local mail).
    assert!(content.contains("Message-Id: <"), "{content}");

    // qmgr is told to scan incoming/.
    qmgr.set_nonblocking(false).unwrap();
    let (mut wake, _) = qmgr.accept().unwrap();
    wake.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    wake.read_to_end(&mut got).unwrap();
    assert_eq!(got, [trigger::SCAN_INCOMING]);

    handle.shutdown.trigger();
    assert_eq!(server.join().unwrap(), Exit::Shutdown);
    assert_eq!(handle.statuses(), [BUSY, AVAILABLE]);
}
