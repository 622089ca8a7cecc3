//! Chain tests against an in-process fake milter on a unix socket: the fake
//! answers negotiation, then runs a script per received command and records
//! every command.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::*;
use crate::codec::{Response, action, frame};
use crate::reply::Reply;
use crate::spec::DefaultAction;
use crate::{Modification, Verdict};

/// What the fake sends back for one command: responses, or raw bytes.
enum Say {
    R(Vec<Response>),
    Raw(Vec<u8>),
    /// Close the connection now.
    Close,
    /// Stall (sleep) then close.
    Stall(Duration),
}

type Script = Box<dyn FnMut(&Command) -> Say + Send>;

struct Fake {
    _dir: tempfile::TempDir,
    spec: MilterSpec,
    done: JoinHandle<Vec<Command>>,
}

impl Fake {
    fn commands(self) -> Vec<Command> {
        self.done.join().unwrap()
    }
}

fn optneg(actions: u32, protocol: u32) -> Response {
    Response::OptNeg {
        version: 6,
        actions,
        protocol,
        symlists: vec![],
    }
}

/// Continue for every event that expects a reply.
fn cont(c: &Command) -> Say {
    match c {
        Command::Macro { .. } | Command::Abort | Command::Quit => Say::R(vec![]),
        _ => Say::R(vec![Response::Continue]),
    }
}

fn fake(neg: Response, mut script: Script) -> Fake {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (ready, wait) = mpsc::channel();
    let done = std::thread::spawn(move || {
        ready.send(()).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut seen = Vec::new();
        let mut buf = Vec::new();
        let mut piece = [0u8; 65536];
        loop {
            while let Ok(Some(p)) = frame(&buf) {
                let c = Command::decode(p.code, p.data).unwrap();
                buf.drain(..p.consumed);
                let say = if matches!(c, Command::OptNeg { .. }) {
                    Say::R(vec![neg.clone()])
                } else {
                    script(&c)
                };
                let quit = c == Command::Quit;
                seen.push(c);
                let mut out = Vec::new();
                match say {
                    Say::R(rs) => rs.iter().for_each(|r| r.encode(&mut out)),
                    Say::Raw(b) => out = b,
                    Say::Close => return seen,
                    Say::Stall(d) => {
                        std::thread::sleep(d);
                        return seen;
                    }
                }
                if s.write_all(&out).is_err() || quit {
                    return seen;
                }
            }
            match s.read(&mut piece) {
                Ok(0) | Err(_) => return seen,
                Ok(n) => buf.extend_from_slice(&piece[..n]),
            }
        }
    });
    wait.recv().unwrap();
    let spec = MilterSpec {
        name: format!("unix:{}", path.display()),
        command_timeout: Duration::from_millis(500),
        content_timeout: Duration::from_millis(500),
        ..MilterSpec::default()
    };
    Fake {
        _dir: dir,
        spec,
        done,
    }
}

fn macros() -> MacroConfig {
    MacroConfig::postfix_defaults()
}

fn m(pairs: &[(&str, &str)]) -> Macros {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn hdrs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn tempfail_451() -> Verdict {
    Verdict::Tempfail(Reply::new(
        451,
        "4.7.1",
        "Service unavailable - try again later",
    ))
}

#[test]
fn envelope_events_with_macros() {
    let f = fake(optneg(0, 0), Box::new(cont));
    let mut chain = Chain::open(std::slice::from_ref(&f.spec), &macros(), "");
    let ip = "192.0.2.7".parse().ok();
    let mac = m(&[
        ("j", "mx.example"),
        ("{daemon_name}", "smtpd"),
        ("i", "QID"),
    ]);
    assert_eq!(chain.connect("unknown", ip, 4242, &mac), Verdict::Continue);
    assert_eq!(chain.helo("client.example", &mac), Verdict::Continue);
    assert_eq!(
        chain.mail("a@b", &["SIZE=10".into()], &mac),
        Verdict::Continue
    );
    assert_eq!(chain.rcpt("<c@d>", &[], &mac), Verdict::Continue);
    assert_eq!(chain.data(&mac), Verdict::Continue);
    assert_eq!(chain.unknown("XYZZY", &mac), Verdict::Continue);
    chain.abort();
    chain.close();
    let seen = f.commands();
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        seen[1],
        Command::Macro {
            cmd: b'C',
            pairs: pairs(&[("j", "mx.example"), ("{daemon_name}", "smtpd")])
        }
    );
    assert_eq!(
        seen[2],
        Command::Connect {
            hostname: "[192.0.2.7]".into(),
            family: Family::Inet,
            port: 4242,
            addr: "192.0.2.7".into()
        }
    );
    assert_eq!(
        seen[6],
        Command::Mail(vec!["<a@b>".into(), "SIZE=10".into()])
    );
    assert_eq!(
        seen[5],
        Command::Macro {
            cmd: b'M',
            pairs: pairs(&[("i", "QID")])
        }
    );
    assert_eq!(seen[8], Command::Rcpt(vec!["<c@d>".into()]));
    assert_eq!(seen[10], Command::Data);
    assert_eq!(seen[12], Command::Unknown("XYZZY".into()));
    assert_eq!(&seen[13..], [Command::Abort, Command::Quit]);
}

#[test]
fn replies_at_each_stage() {
    let f = fake(
        optneg(0, 0),
        Box::new(|c| match c {
            Command::Mail(a) if a[0] == "<bad@x>" => Say::R(vec![Response::Reject]),
            Command::Mail(a) if a[0] == "<soft@x>" => Say::R(vec![Response::Tempfail]),
            Command::Rcpt(_) => Say::R(vec![Response::ReplyCode(
                b"550-5.7.1 first\r\n550 5.7.1 second 100%%".to_vec(),
            )]),
            Command::Data => Say::R(vec![Response::Progress, Response::Discard]),
            c => cont(c),
        }),
    );
    let mut chain = Chain::open(std::slice::from_ref(&f.spec), &macros(), "");
    let e = Macros::new();
    assert_eq!(chain.connect("h", None, 0, &e), Verdict::Continue);
    assert_eq!(
        chain.mail("bad@x", &[], &e),
        Verdict::Reject(Reply::new(550, "5.7.1", "Command rejected"))
    );
    chain.abort();
    assert_eq!(chain.mail("soft@x", &[], &e), tempfail_451());
    chain.abort();
    assert_eq!(chain.mail("ok@x", &[], &e), Verdict::Continue);
    let Verdict::Reject(r) = chain.rcpt("r@x", &[], &e) else {
        panic!("no reject")
    };
    assert_eq!(r.smtp_lines(), ["550-5.7.1 first", "550 5.7.1 second 100%"]);
    assert_eq!(chain.data(&e), Verdict::Discard);
    chain.close();
    f.commands();
}

#[test]
fn reject_at_connect_is_sticky() {
    let f = fake(
        optneg(0, 0),
        Box::new(|c| match c {
            Command::Connect { .. } => {
                Say::R(vec![Response::ReplyCode(b"421 4.7.0 go away".to_vec())])
            }
            c => cont(c),
        }),
    );
    let mut chain = Chain::open(std::slice::from_ref(&f.spec), &macros(), "");
    let e = Macros::new();
    let want = Verdict::Tempfail(Reply::new(421, "4.7.0", "go away"));
    assert_eq!(chain.connect("h", None, 0, &e), want);
    assert_eq!(chain.helo("x", &e), want);
    assert_eq!(chain.mail("a@b", &[], &e), want);
    chain.close();
    assert!(!f.commands().iter().any(|c| matches!(c, Command::Helo(_))));
}

#[test]
fn modifications_at_end_of_message() {
    let f = fake(
        optneg(action::ALL, 0),
        Box::new(|c| match c {
            Command::BodyEob => Say::R(vec![
                Response::AddHeader {
                    name: "X-Added".into(),
                    value: "yes".into(),
                },
                Response::InsHeader {
                    index: 0,
                    name: "X-Top".into(),
                    value: "top\r\n\tfolded".into(),
                },
                Response::ChgHeader {
                    index: 1,
                    name: "subject".into(),
                    value: "changed".into(),
                },
                Response::ChgHeader {
                    index: 2,
                    name: "X-Dup".into(),
                    value: String::new(),
                },
                Response::ReplBody(b"new body\r\n".to_vec()),
                Response::ReplBody(b"line 2\r\n".to_vec()),
                Response::AddRcptPar {
                    rcpt: "<new@x>".into(),
                    args: Some("NOTIFY=NEVER".into()),
                },
                Response::DelRcpt("<old@x>".into()),
                Response::ChgFrom {
                    sender: "<s@x>".into(),
                    args: None,
                },
                Response::Accept,
            ]),
            c => cont(c),
        }),
    );
    let mut chain = Chain::open(std::slice::from_ref(&f.spec), &macros(), "");
    let e = Macros::new();
    let headers = hdrs(&[("Subject", " hi"), ("X-Dup", " 1"), ("X-Dup", " 2")]);
    let out = chain.message(&headers, b"old\nbody", &e, &e);
    assert_eq!(out.verdict, Verdict::Accept);
    assert_eq!(
        out.headers,
        hdrs(&[
            ("X-Top", " top\n\tfolded"),
            ("Subject", " changed"),
            ("X-Dup", " 1"),
            ("X-Added", " yes")
        ])
    );
    assert_eq!(out.body, b"new body\nline 2\n");
    assert_eq!(out.modifications.len(), 8);
    assert_eq!(
        out.modifications[5],
        Modification::AddRcpt {
            rcpt: "<new@x>".into(),
            args: Some("NOTIFY=NEVER".into())
        }
    );
    chain.close();
    let seen = f.commands();
    assert!(seen.contains(&Command::Header {
        name: "Subject".into(),
        value: "hi".into()
    }));
    assert!(seen.contains(&Command::Body(b"old\r\nbody\r\n".to_vec())));
}

#[test]
fn second_milter_sees_first_milters_edits() {
    let first = fake(
        optneg(action::ADDHDRS, 0),
        Box::new(|c| match c {
            Command::BodyEob => Say::R(vec![
                Response::AddHeader {
                    name: "X-First".into(),
                    value: "1".into(),
                },
                Response::Continue,
            ]),
            c => cont(c),
        }),
    );
    let second = fake(optneg(0, 0), Box::new(cont));
    let specs = [first.spec.clone(), second.spec.clone()];
    let mut chain = Chain::open(&specs, &macros(), "");
    let e = Macros::new();
    let out = chain.message(&hdrs(&[("Subject", " s")]), b"b\n", &e, &e);
    assert_eq!(out.verdict, Verdict::Continue);
    assert_eq!(out.headers.len(), 2);
    chain.close();
    first.commands();
    assert!(second.commands().contains(&Command::Header {
        name: "X-First".into(),
        value: "1".into()
    }));
}

/// A milter that answers `bad` to MAIL gets the default action.
fn fault_at_mail(bad: Say, action: DefaultAction) -> (Verdict, Verdict) {
    let mut bad = Some(bad);
    let mut f = fake(
        optneg(0, 0),
        Box::new(move |c| match c {
            Command::Mail(_) => bad.take().unwrap_or(Say::Close),
            c => cont(c),
        }),
    );
    f.spec.default_action = action;
    let mut chain = Chain::open(std::slice::from_ref(&f.spec), &macros(), "test");
    let e = Macros::new();
    assert_eq!(chain.helo("h", &e), Verdict::Continue);
    let v = chain.mail("a@b", &[], &e);
    let after = chain.rcpt("c@d", &[], &e);
    chain.close();
    f.commands();
    (v, after)
}

#[test]
fn protocol_faults_give_default_action() {
    let garbage = Say::Raw(b"\0\0\0\x01Z".to_vec());
    let zero = Say::Raw(b"\0\0\0\0".to_vec());
    let huge = Say::Raw(b"\x7f\xff\xff\xffc".to_vec());
    let truncated = Say::Raw(b"\0\0\0\x10h".to_vec());
    let trailing = Say::Raw(b"\0\0\0\x03cxx".to_vec());
    let close = Say::Close;
    let stall = Say::Stall(Duration::from_millis(900));
    let early_edit = Say::R(vec![Response::AddHeader {
        name: "X".into(),
        value: "v".into(),
    }]);
    for bad in [
        garbage, zero, huge, truncated, trailing, close, stall, early_edit,
    ] {
        let (v, after) = fault_at_mail(bad, DefaultAction::Tempfail);
        assert_eq!(v, tempfail_451());
        assert_eq!(after, tempfail_451());
    }
}

#[test]
fn default_actions() {
    let bad = || Say::Raw(b"\0\0\0\x01Z".to_vec());
    let (v, after) = fault_at_mail(bad(), DefaultAction::Accept);
    assert_eq!((v, after), (Verdict::Continue, Verdict::Continue));
    let (v, _) = fault_at_mail(bad(), DefaultAction::Reject);
    assert_eq!(
        v,
        Verdict::Reject(Reply::new(550, "5.5.0", "Service unavailable"))
    );
    let (v, _) = fault_at_mail(bad(), DefaultAction::Shutdown);
    assert_eq!(
        v,
        Verdict::Tempfail(Reply::new(
            421,
            "4.7.1",
            "Service unavailable - try again later"
        ))
    );
    let (v, _) = fault_at_mail(bad(), DefaultAction::Quarantine);
    assert_eq!(v, Verdict::Quarantine("default_action".into()));
    // A malformed reply code is a configuration error (4.3.5).
    let (v, _) = fault_at_mail(
        Say::R(vec![Response::ReplyCode(b"550-broken".to_vec())]),
        DefaultAction::Tempfail,
    );
    assert_eq!(
        v,
        Verdict::Tempfail(Reply::new(
            451,
            "4.3.5",
            "Server configuration problem - try again later"
        ))
    );
    let (v, after) = fault_at_mail(Say::R(vec![Response::Shutdown]), DefaultAction::Accept);
    assert_eq!(v, Verdict::Tempfail(crate::milter::shutdown_reply()));
    assert_eq!(after, v);
}

#[test]
fn failed_milter_leaves_no_half_edits() {
    let f = fake(
        optneg(action::ALL, 0),
        Box::new(|c| match c {
            Command::BodyEob => {
                let mut out = Vec::new();
                Response::AddHeader {
                    name: "X-Half".into(),
                    value: "1".into(),
                }
                .encode(&mut out);
                out.extend_from_slice(b"\0\0\0\x01Z");
                Say::Raw(out)
            }
            c => cont(c),
        }),
    );
    let mut spec = f.spec.clone();
    spec.default_action = DefaultAction::Accept;
    let mut chain = Chain::open(&[spec], &macros(), "");
    let e = Macros::new();
    let headers = hdrs(&[("Subject", " s")]);
    let out = chain.message(&headers, b"b\n", &e, &e);
    assert_eq!(out.verdict, Verdict::Continue);
    assert_eq!(out.headers, headers);
    assert!(out.modifications.is_empty());
    chain.close();
    f.commands();
}

#[test]
fn unreachable_milter() {
    let dir = tempfile::tempdir().unwrap();
    let spec = MilterSpec {
        name: format!("unix:{}/none.sock", dir.path().display()),
        ..MilterSpec::default()
    };
    let mut chain = Chain::open(std::slice::from_ref(&spec), &macros(), "");
    let e = Macros::new();
    assert_eq!(chain.connect("h", None, 0, &e), tempfail_451());
    let out = chain.message(&[], b"", &e, &e);
    assert_eq!(out.verdict, tempfail_451());
    let accept = MilterSpec {
        default_action: DefaultAction::Accept,
        ..spec
    };
    let mut chain = Chain::open(&[accept], &macros(), "");
    assert_eq!(chain.connect("h", None, 0, &e), Verdict::Continue);
}

#[test]
fn negotiation_conflicts() {
    for neg in [
        Response::OptNeg {
            version: 7,
            actions: 0,
            protocol: 0,
            symlists: vec![],
        },
        optneg(1 << 20, 0),
        Response::Continue,
    ] {
        let f = fake(neg, Box::new(cont));
        let mut chain = Chain::open(std::slice::from_ref(&f.spec), &macros(), "");
        assert_eq!(chain.helo("h", &Macros::new()), tempfail_451());
        drop(chain);
        f.commands();
    }
}

#[test]
fn no_reply_flags_skip_and_old_versions() {
    // NR_HDR: headers get no reply; NOHELO: HELO not sent (its macros are).
    let f = fake(
        Response::OptNeg {
            version: 2,
            actions: 0,
            protocol: proto::NR_HDR | proto::NOHELO,
            symlists: vec![(1, "{my_macro}".into())],
        },
        Box::new(|c| match c {
            Command::Header { .. } => Say::R(vec![]),
            Command::Body(_) => Say::R(vec![Response::Skip]),
            c => cont(c),
        }),
    );
    let mut chain = Chain::open(std::slice::from_ref(&f.spec), &macros(), "");
    let e = m(&[("my_macro", "v")]);
    assert_eq!(chain.helo("h", &e), Verdict::Continue);
    assert_eq!(chain.data(&e), Verdict::Continue);
    let body = vec![b'x'; CHUNK * 2];
    let out = chain.message(&hdrs(&[("A", " 1"), ("B", " 2")]), &body, &e, &e);
    assert_eq!(out.verdict, Verdict::Continue);
    chain.close();
    let seen = f.commands();
    assert!(
        !seen
            .iter()
            .any(|c| matches!(c, Command::Helo(_) | Command::Data))
    );
    assert!(seen.contains(&Command::Macro {
        cmd: b'H',
        pairs: vec![("{my_macro}".into(), "v".into())]
    }));
    let bodies = seen
        .iter()
        .filter(|c| matches!(c, Command::Body(_)))
        .count();
    assert_eq!(bodies, 1, "SMFIR_SKIP ends the body chunks");
    assert!(seen.contains(&Command::BodyEob));
}

#[test]
fn quarantine_holds_the_message_until_abort() {
    let f = fake(
        optneg(action::ALL, 0),
        Box::new(|c| match c {
            Command::BodyEob => Say::R(vec![
                Response::AddHeader {
                    name: "X-Spam".into(),
                    value: "yes".into(),
                },
                Response::Quarantine("spam score 12".into()),
                Response::Continue,
            ]),
            c => cont(c),
        }),
    );
    let mut chain = Chain::open(std::slice::from_ref(&f.spec), &macros(), "");
    let e = Macros::new();
    assert_eq!(chain.mail("a@b", &[], &e), Verdict::Continue);
    let out = chain.message(&hdrs(&[("Subject", " s")]), b"b\n", &e, &e);
    assert_eq!(out.verdict, Verdict::Quarantine("spam score 12".into()));
    assert_eq!(out.headers.len(), 2);
    assert_eq!(
        out.modifications[1],
        Modification::Quarantine {
            reason: "spam score 12".into()
        }
    );
    chain.abort();
    assert_eq!(chain.mail("next@b", &[], &e), Verdict::Continue);
    chain.close();
    let seen = f.commands();
    assert!(seen.contains(&Command::Mail(vec!["<next@b>".into()])));
}

#[test]
fn edits_are_not_checked_against_negotiated_actions() {
    // libmilter sends SMFIR_INSHEADER under SMFIF_ADDHDRS (OpenDMARC does); Postfix
    // applies requests whatever was negotiated.
    let f = fake(
        optneg(action::ADDHDRS, 0),
        Box::new(|c| match c {
            Command::BodyEob => Say::R(vec![
                Response::InsHeader {
                    index: 0,
                    name: "Authentication-Results".into(),
                    value: "mx; dmarc=pass".into(),
                },
                Response::Continue,
            ]),
            c => cont(c),
        }),
    );
    let mut chain = Chain::open(std::slice::from_ref(&f.spec), &macros(), "");
    let e = Macros::new();
    let out = chain.message(&hdrs(&[("Subject", " s")]), b"b\n", &e, &e);
    assert_eq!(out.verdict, Verdict::Continue);
    assert_eq!(out.headers[0].0, "Authentication-Results");
    chain.close();
    f.commands();
}
