//! In-process session tests for milters: a fake milter (a thread speaking the wire
//! protocol through `postern_milter::codec`) on a Unix socket, and for the content
//! stage a fake cleanup that runs the milter round (`MilterInspect` → `MilterOutcome`).

use crate::session::tests::{Harness, MSG, l, open_txn};
use postern_config::p;
use postern_ipc::milter::{MilterInspect, MilterOutcome};
use postern_ipc::proto::{CleanupReply, CleanupRequest, CleanupStatus, cleanup_flags};
use postern_milter::codec::{Command, Response};
use postern_server::client::{read_frame, write_frame};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

type Script = fn(&Command) -> Vec<Response>;
/// What the fake cleanup received: each request and the milters' outcome.
type Seen = Arc<Mutex<Vec<(CleanupRequest, Option<MilterOutcome>)>>>;

/// Serves every connection on `path` with `script` (negotiation, macros, abort and
/// quit handled here). Returns the socket path.
fn fake_milter(dir: &Path, script: Script) -> PathBuf {
    let path = dir.join("milter.sock");
    let listener = UnixListener::bind(&path).expect("milter socket");
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || serve(s, script));
        }
    });
    path
}

fn serve(mut s: UnixStream, script: Script) {
    loop {
        let mut len = [0u8; 4];
        if s.read_exact(&mut len).is_err() {
            return;
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        if body.is_empty() || s.read_exact(&mut body).is_err() {
            return;
        }
        let Ok(cmd) = Command::decode(body[0], &body[1..]) else {
            return;
        };
        let replies = match &cmd {
            Command::OptNeg { actions, .. } => vec![Response::OptNeg {
                version: 6,
                actions: *actions,
                protocol: 0,
                symlists: Vec::new(),
            }],
            Command::Macro { .. } | Command::Abort => Vec::new(),
            Command::Quit => return,
            other => {
                let r = script(other);
                if r.is_empty() {
                    vec![Response::Continue]
                } else {
                    r
                }
            }
        };
        let mut out = Vec::new();
        for r in replies {
            r.encode(&mut out);
        }
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

/// A cleanup that runs the milter round for MILTER requests and records the outcome.
fn fake_cleanup(queue_dir: &Path) -> Seen {
    let public = queue_dir.join("public");
    std::fs::create_dir_all(&public).expect("public");
    let listener = UnixListener::bind(public.join("cleanup")).expect("cleanup socket");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let Ok(Some(a)) = read_frame(&mut s, 1 << 24) else {
                continue;
            };
            let Ok(req) = CleanupRequest::from_attrs(&a) else {
                continue;
            };
            let mut outcome = None;
            if req.flags & cleanup_flags::MILTER != 0 {
                let inspect = MilterInspect {
                    queue_id: "QID1".into(),
                    headers: vec![
                        ("Received".into(), " from c.example by mx".into()),
                        ("Subject".into(), " t".into()),
                    ],
                    body: b"body\n".to_vec(),
                    hidden: 1,
                };
                if write_frame(&mut s, &inspect.to_attrs()).is_err() {
                    continue;
                }
                let Ok(Some(a)) = read_frame(&mut s, 1 << 24) else {
                    continue;
                };
                outcome = MilterOutcome::from_attrs(&a).ok();
            }
            let refused = outcome
                .as_ref()
                .is_some_and(|o| o.verdict == "reject" || o.verdict == "tempfail");
            let reply = CleanupReply {
                status: if refused {
                    CleanupStatus::Reject
                } else {
                    CleanupStatus::Ok
                },
                queue_id: "QID1".into(),
                reason: String::new(),
            };
            record.lock().expect("lock").push((req, outcome));
            let _ignored = write_frame(&mut s, &reply.to_attrs());
        }
    });
    seen
}

async fn harness(dir: &Path, extra: &str) -> Harness {
    let sock = dir.join("milter.sock");
    let text = format!(
        "smtpd_milters = unix:{}\nmilter_connect_timeout = 1s\nmilter_command_timeout = 1s\n{extra}",
        sock.display()
    );
    Harness::with_cleanup(&text, None).await
}

fn queue_dir(h: &Harness) -> PathBuf {
    PathBuf::from(h.cfg.str(p::QUEUE_DIRECTORY))
}

fn by_rcpt(c: &Command) -> Vec<Response> {
    match c {
        Command::Rcpt(a) if a[0].contains("other@") => {
            vec![Response::ReplyCode(b"550 5.7.1 no thanks".to_vec())]
        }
        Command::Rcpt(a) if a[0].contains("later@") => vec![Response::Tempfail],
        Command::Mail(a) if a.iter().any(|x| x == "SIZE=10") => vec![Response::Reject],
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn replies_at_mail_and_rcpt() {
    let dir = tempfile::tempdir().expect("tempdir");
    fake_milter(dir.path(), by_rcpt);
    let h = harness(dir.path(), "").await;
    let out = h
        .replies(&[
            l("EHLO c.example"),
            l("MAIL FROM:<s@x.example> SIZE=10"),
            l("MAIL FROM:<s@x.example>"),
            l("RCPT TO:<other@mx.test.example>"),
            l("RCPT TO:<later@relay.example>"),
            l("RCPT TO:<user@mx.test.example>"),
            l("RSET"),
            l("QUIT"),
        ])
        .await;
    assert_eq!(
        out[1..],
        [
            "550 5.7.1 Command rejected",
            "250 2.1.0 Ok",
            "550 5.7.1 no thanks",
            "451 4.7.1 Service unavailable - try again later",
            "250 2.1.5 Ok",
            "250 2.0.0 Ok",
            "221 2.0.0 Bye",
        ]
    );
}

fn refuse_connect(c: &Command) -> Vec<Response> {
    match c {
        Command::Connect { .. } => vec![Response::Reject],
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn connect_refusal_greets_554_and_refuses_mail() {
    let dir = tempfile::tempdir().expect("tempdir");
    fake_milter(dir.path(), refuse_connect);
    let h = harness(dir.path(), "").await;
    let out = h
        .talk(&[
            l("HELO c.example"),
            l("MAIL FROM:<s@x.example>"),
            l("EHLO c.example"),
            l("QUIT"),
        ])
        .await;
    assert_eq!(
        out[0],
        "554 mx.test.example ESMTP not accepting connections"
    );
    assert_eq!(out[1], "250 mx.test.example");
    assert_eq!(out[2], "550 5.7.1 Command rejected");
    assert_eq!(out[3], "250-mx.test.example\n250 ENHANCEDSTATUSCODES");
}

#[tokio::test]
async fn milter_down_gets_the_default_action() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No milter listens on the socket path.
    let h = harness(dir.path(), "milter_default_action = tempfail").await;
    let out = h.replies(&open_txn()).await;
    assert!(out[1].starts_with("451 4.7.1"), "{out:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let h = harness(dir.path(), "milter_default_action = accept").await;
    let out = h.replies(&open_txn()).await;
    assert_eq!(out[1..], ["250 2.1.0 Ok", "250 2.1.5 Ok"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let h = harness(dir.path(), "milter_default_action = shutdown").await;
    let out = h.talk(&open_txn()).await;
    assert!(out[0].starts_with("421 "), "{out:?}");
}

fn at_eom(c: &Command) -> Vec<Response> {
    match c {
        Command::BodyEob => vec![
            Response::AddHeader {
                name: "X-Milter".into(),
                value: "yes".into(),
            },
            Response::AddRcptPar {
                rcpt: "<new@x.example>".into(),
                args: Some("NOTIFY=NEVER".into()),
            },
            Response::Continue,
        ],
        Command::Header { name, .. } if name == "Received" => {
            // Cleanup's own Received: header must stay hidden.
            vec![Response::Reject]
        }
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn content_stage_runs_inside_the_cleanup_exchange() {
    let dir = tempfile::tempdir().expect("tempdir");
    fake_milter(dir.path(), at_eom);
    let h = harness(dir.path(), "").await;
    let seen = fake_cleanup(&queue_dir(&h));
    let mut steps = open_txn();
    steps.extend([l("DATA"), l(MSG), l("QUIT")]);
    let out = h.replies(&steps).await;
    assert_eq!(out[4], "250 2.0.0 Ok: queued as QID1", "{out:?}");
    let seen = seen.lock().expect("lock");
    let (req, outcome) = &seen[0];
    assert_ne!(req.flags & cleanup_flags::MILTER, 0);
    let o = outcome.as_ref().expect("outcome");
    assert_eq!(o.verdict, "continue");
    assert_eq!(o.headers[0].0, "Received");
    assert!(
        o.headers
            .iter()
            .any(|(n, v)| n == "X-Milter" && v.trim() == "yes"),
        "{o:?}"
    );
    assert!(
        o.edits
            .iter()
            .any(|e| e[0] == "add_rcpt" && e[1] == "<new@x.example>")
    );
}

fn reject_eom(c: &Command) -> Vec<Response> {
    match c {
        Command::BodyEob => vec![Response::ReplyCode(
            b"554-5.7.1 spam\r\n554 5.7.1 really".to_vec(),
        )],
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn end_of_message_reject() {
    let dir = tempfile::tempdir().expect("tempdir");
    fake_milter(dir.path(), reject_eom);
    let h = harness(dir.path(), "").await;
    let seen = fake_cleanup(&queue_dir(&h));
    let mut steps = open_txn();
    steps.extend([l("DATA"), l(MSG), l("QUIT")]);
    let out = h.replies(&steps).await;
    assert_eq!(out[4], "554-5.7.1 spam\n554 5.7.1 really", "{out:?}");
    assert_eq!(
        seen.lock().expect("lock")[0].1.as_ref().map(|o| o.code),
        Some(554)
    );
}

#[tokio::test]
async fn no_milters_override() {
    let dir = tempfile::tempdir().expect("tempdir");
    fake_milter(dir.path(), refuse_connect);
    let h = harness(dir.path(), "receive_override_options = no_milters").await;
    let out = h.talk(&[l("QUIT")]).await;
    assert_eq!(out[0], "220 mx.test.example ESMTP test");
}
