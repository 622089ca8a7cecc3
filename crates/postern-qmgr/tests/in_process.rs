//! qmgr in-process on `Env::for_test`: a temporary queue with a message in
//! `incoming/`, a fake delivery agent on `private/fake` (a thread answering
//! each `deliver/1` request with `sent`), `default_transport = fake`. qmgr
//! delivers the message at start, a second one on an `I` trigger, removes
//! both queue files, and returns `Exit::Shutdown` when the test asks it to
//! stop. Its own process: qmgr's threads and the table registry are global.

use postern_config::{Config, parse_main_cf};
use postern_ipc::proto::{Action, DeliverReply, DeliverRequest, RcptResult};
use postern_qfile::{QueueFile, RecipientRecord};
use postern_queue::Queue;
use postern_server::client;
use postern_server::service::{Env, Exit};
use postern_server::skeleton::Context;
use postern_server::status::{AVAILABLE, BUSY};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Writes a ready message for `rcpt` into `incoming/`; its queue ID.
fn enqueue(q: &Queue, rcpt: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mut qf = QueueFile {
        arrival: (now.as_secs(), now.subsec_micros()),
        sender: "sender@example.org".into(),
        recipients: vec![RecipientRecord {
            address: rcpt.into(),
            original: rcpt.into(),
            ..Default::default()
        }],
        content: b"Subject: test\n\nhello\n".to_vec(),
        ..Default::default()
    };
    let bytes = postern_qfile::encode(&mut qf);
    postern_queue_admin::enter(q, "incoming", &bytes, 0o700).expect("enqueue")
}

/// The fake agent: answers every request with `sent` and passes it on.
fn fake_agent(path: &Path, seen: mpsc::Sender<DeliverRequest>) {
    let l = UnixListener::bind(path).expect("bind agent");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let Ok(Some(a)) = client::read_frame(&mut s, 1 << 24) else {
                continue;
            };
            let req = DeliverRequest::from_attrs(&a).expect("a deliver/1 request");
            let results = req
                .recipients
                .iter()
                .map(|r| RcptResult {
                    recipient: r.clone(),
                    action: Action::Sent,
                    dsn: "2.0.0".into(),
                    text: "delivered to the fake agent".into(),
                    relay: "fake".into(),
                })
                .collect();
            client::write_frame(&mut s, &DeliverReply { results }.to_attrs()).expect("reply");
            if seen.send(req).is_err() {
                return;
            }
        }
    });
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn empty(q: &Queue, queue: &str) -> bool {
    q.list(queue).expect("list").is_empty()
}

#[test]
fn delivers_through_the_agent_and_stops_on_shutdown() {
    let dir = std::env::temp_dir().join(format!("postern-qmgr-inproc-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let root = dir.join("queue");
    for d in postern_queue::ALL_DIRS {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::create_dir_all(root.join("private")).unwrap();
    std::fs::create_dir_all(root.join("public")).unwrap();
    let q = Queue::new(&root);
    let first = enqueue(&q, "user@example.net");

    let (seen_tx, seen) = mpsc::channel();
    fake_agent(&root.join("private/fake"), seen_tx);
    let trigger_path = root.join("public/qmgr");
    let trigger = UnixListener::bind(&trigger_path).expect("bind qmgr");
    let (env, h) = Env::for_test(vec![OwnedFd::from(trigger)]);

    let main_cf = format!(
        "queue_directory = {}\nmyhostname = mx.example.org\nmydomain = example.org\n\
         mydestination = localhost\ndefault_transport = fake\nrelayhost =\n\
         in_flow_delay = 0\nfast_flush_domains =\ninet_protocols = ipv4\n",
        root.display()
    );
    let cfg = Config::new(parse_main_cf(&main_cf).expect("main.cf"));
    let ctx = Context::new("qmgr", cfg.clone());
    let resolver = postern_qmgr::resolve::Resolver::from_config(&cfg);
    let qmgr = std::thread::spawn(move || postern_qmgr::run(&ctx, env, resolver));

    let req = seen
        .recv_timeout(Duration::from_secs(20))
        .expect("the agent got a request");
    assert_eq!(req.queue_id, first);
    assert_eq!(req.transport, "fake");
    assert_eq!(req.nexthop, "example.net");
    assert_eq!(req.recipients[0].address, "user@example.net");
    wait_until("the first queue file removed", || {
        empty(&q, "incoming") && empty(&q, "active")
    });

    // A second message, announced by cleanup's trigger.
    let second = enqueue(&q, "other@example.net");
    UnixStream::connect(&trigger_path)
        .and_then(|mut s| s.write_all(b"I"))
        .expect("trigger");
    let req = seen
        .recv_timeout(Duration::from_secs(20))
        .expect("the agent got the second request");
    assert_eq!(req.queue_id, second);
    wait_until("the second queue file removed", || {
        empty(&q, "incoming") && empty(&q, "active")
    });
    assert!(empty(&q, "deferred"));

    h.shutdown.trigger();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !qmgr.is_finished() {
        assert!(Instant::now() < deadline, "qmgr stopped in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(qmgr.join().expect("no panic"), Exit::Shutdown);
    // Served at start, busy/available around the trigger.
    assert_eq!(h.statuses(), [BUSY, AVAILABLE, BUSY, AVAILABLE]);
    std::fs::remove_dir_all(&dir).ok();
}
