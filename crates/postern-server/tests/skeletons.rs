//! In-process tests of the one-client-at-a-time skeletons (single, trigger,
//! delivery agent) on `Env::for_test`: a listener in a temporary directory, a
//! status recorder, a shutdown the test triggers.
//!
//! The table-change exit is in `skeleton_table.rs` (its own process: the table
//! registry is global).

use postern_config::{Config, parse_main_cf};
use postern_ipc::proto::{Action, DeliverReply, DeliverRequest, Recipient};
use postern_server::agent;
use postern_server::client;
use postern_server::service::{self, Env, Exit, Service, TestHandle, TriggerService};
use postern_server::skeleton::Context;
use postern_server::status::{AVAILABLE, BUSY};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn ctx(main_cf: &str) -> Context {
    let main = parse_main_cf(main_cf).expect("main.cf parses");
    Context::new("test", Config::new(main))
}

/// A listener at `DIR/s` and the test's environment on it.
fn listen(dir: &Path) -> (PathBuf, Env, TestHandle) {
    let path = dir.join("s");
    let l = UnixListener::bind(&path).expect("bind");
    let (env, handle) = Env::for_test(vec![OwnedFd::from(l)]);
    (path, env, handle)
}

/// Connects, sends `msg`, half-closes, and returns what the server answered.
fn exchange(path: &Path, msg: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(path).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(msg).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// Echoes one read back, and counts the hooks.
#[derive(Default)]
struct Echo {
    refuse: bool,
    idle: usize,
    exits: usize,
    served: usize,
}

impl Service for Echo {
    fn pre_accept(&mut self, _ctx: &Context) -> bool {
        !self.refuse
    }
    fn serve(&mut self, _ctx: &Context, mut stream: UnixStream) {
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).unwrap();
        stream.write_all(&buf).unwrap();
        self.served += 1;
    }
    fn on_idle(&mut self, _ctx: &Context) {
        self.idle += 1;
    }
    fn on_exit(&mut self, _ctx: &Context) {
        self.exits += 1;
    }
}

fn run_single(c: Context, env: Env, mut svc: Echo) -> JoinHandle<(Exit, Echo)> {
    std::thread::spawn(move || {
        let exit = service::single_server(&c, env, &mut svc);
        (exit, svc)
    })
}

#[test]
fn single_server_serves_max_use_clients_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let (path, env, handle) = listen(dir.path());
    let t = run_single(ctx("max_use = 3\n"), env, Echo::default());
    for i in 0..3 {
        let msg = format!("hello {i}");
        assert_eq!(exchange(&path, msg.as_bytes()), msg.as_bytes());
    }
    let (exit, svc) = t.join().unwrap();
    assert_eq!(exit, Exit::MaxUse);
    assert_eq!((svc.served, svc.idle, svc.exits), (3, 3, 1));
    assert_eq!(
        handle.statuses(),
        [BUSY, AVAILABLE, BUSY, AVAILABLE, BUSY, AVAILABLE]
    );
}

#[test]
fn single_server_exits_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let (_path, env, handle) = listen(dir.path());
    let start = Instant::now();
    let t = run_single(ctx("max_idle = 1s\n"), env, Echo::default());
    let (exit, svc) = t.join().unwrap();
    assert_eq!(exit, Exit::Idle);
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!((svc.served, svc.exits), (0, 1));
    assert!(handle.statuses().is_empty());
}

#[test]
fn single_server_stops_on_shutdown_after_the_current_client() {
    let dir = tempfile::tempdir().unwrap();
    let (path, env, handle) = listen(dir.path());
    let t = run_single(ctx(""), env, Echo::default());
    assert_eq!(exchange(&path, b"one"), b"one");
    // A client in the middle of its request when the stop comes is still served.
    let mut s = UnixStream::connect(&path).unwrap();
    s.write_all(b"two").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    handle.shutdown.trigger();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"two");
    let (exit, svc) = t.join().unwrap();
    assert_eq!(exit, Exit::Shutdown);
    assert_eq!((svc.served, svc.exits), (2, 1));
    assert_eq!(handle.statuses(), [BUSY, AVAILABLE, BUSY, AVAILABLE]);
}

#[test]
fn single_server_leaves_a_client_that_pre_accept_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (path, env, handle) = listen(dir.path());
    let echo = Echo {
        refuse: true,
        ..Echo::default()
    };
    let t = run_single(ctx(""), env, echo);
    let _client = UnixStream::connect(&path).unwrap();
    let (exit, svc) = t.join().unwrap();
    assert_eq!(exit, Exit::Refused);
    assert_eq!((svc.served, svc.exits), (0, 1));
    assert!(handle.statuses().is_empty());
}

#[test]
fn a_closure_is_a_service() {
    let dir = tempfile::tempdir().unwrap();
    let (path, env, handle) = listen(dir.path());
    let t = std::thread::spawn(move || {
        let c = ctx("max_use = 1\n");
        let mut serve = |_: &Context, mut s: UnixStream| s.write_all(b"hi").unwrap();
        service::single_server(&c, env, &mut serve)
    });
    assert_eq!(exchange(&path, b""), b"hi");
    assert_eq!(t.join().unwrap(), Exit::MaxUse);
    assert_eq!(handle.statuses(), [BUSY, AVAILABLE]);
}

/// Records the triggers it got.
#[derive(Default)]
struct Wakeups(Vec<Vec<u8>>);

impl TriggerService for Wakeups {
    fn trigger(&mut self, _ctx: &Context, request: &[u8]) {
        self.0.push(request.to_vec());
    }
}

#[test]
fn trigger_server_hands_over_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (path, env, handle) = listen(dir.path());
    let t = std::thread::spawn(move || {
        let c = ctx("max_use = 2\n");
        let mut w = Wakeups::default();
        let exit = service::trigger_server(&c, env, true, &mut w);
        (exit, w)
    });
    assert_eq!(exchange(&path, b"W"), b"");
    assert_eq!(exchange(&path, b"A"), b"");
    let (exit, w) = t.join().unwrap();
    assert_eq!(exit, Exit::MaxUse);
    assert_eq!(w.0, [b"W".to_vec(), b"A".to_vec()]);
    assert_eq!(handle.statuses(), [BUSY, AVAILABLE, BUSY, AVAILABLE]);
}

#[test]
fn long_lived_trigger_server_ignores_max_use_and_stops_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (path, env, handle) = listen(dir.path());
    let t = std::thread::spawn(move || {
        let c = ctx("max_use = 1\nmax_idle = 1s\n");
        let mut w = Wakeups::default();
        let exit = service::trigger_server(&c, env, false, &mut w);
        (exit, w)
    });
    exchange(&path, b"1");
    exchange(&path, b"2");
    std::thread::sleep(Duration::from_millis(1200)); // past max_idle: still running
    exchange(&path, b"3");
    handle.shutdown.trigger();
    let (exit, w) = t.join().unwrap();
    assert_eq!(exit, Exit::Shutdown);
    assert_eq!(w.0.len(), 3);
}

fn request(queue_id: &str) -> DeliverRequest {
    DeliverRequest {
        queue_name: "active".into(),
        queue_id: queue_id.into(),
        transport: "fake".into(),
        nexthop: "example.org".into(),
        sender: "a@example.org".into(),
        envid: String::new(),
        ret: String::new(),
        arrival: 1.0,
        active_since: 2.0,
        recipients: vec![
            Recipient::new("b@example.org"),
            Recipient::new("c@example.org"),
        ],
    }
}

#[test]
fn delivery_server_answers_a_deliver_request() {
    let dir = tempfile::tempdir().unwrap();
    let (path, env, handle) = listen(dir.path());
    let t = std::thread::spawn(move || {
        let c = ctx("max_use = 2\n");
        let mut seen = Vec::new();
        let exit = agent::delivery_server(&c, env, |_, req: &DeliverRequest| {
            seen.push(req.queue_id.clone());
            let start = agent::now();
            agent::same_for_all(req, start, Action::Sent, "2.0.0", "delivered", "none")
        });
        (exit, seen)
    });
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    client::write_frame(&mut s, &request("4ABC").to_attrs()).unwrap();
    let reply = client::read_frame(&mut s, 1 << 20)
        .unwrap()
        .expect("a reply");
    let reply = DeliverReply::from_attrs(&reply).unwrap();
    assert_eq!(reply.results.len(), 2);
    assert!(reply.results.iter().all(|r| r.action == Action::Sent));
    assert_eq!(reply.results[1].recipient.address, "c@example.org");
    // A malformed request is dropped without a reply; the server goes on.
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"not a frame at all\n").unwrap();
    let _peer_may_be_gone = s.shutdown(std::net::Shutdown::Write);
    let mut rest = Vec::new();
    // The server closes with bytes unread: an end of file or a reset, never a reply.
    let _eof_or_reset = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
    let (exit, seen) = t.join().unwrap();
    assert_eq!(exit, Exit::MaxUse);
    assert_eq!(seen, ["4ABC"]);
    assert_eq!(handle.statuses(), [BUSY, AVAILABLE, BUSY, AVAILABLE]);
}
