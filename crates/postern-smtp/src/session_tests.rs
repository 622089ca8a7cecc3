//! Session tests against a scripted peer on loopback.

use super::*;
use postern_ipc::proto::Action;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::thread;

/// What the scripted peer does for each line it reads: `None` = stay silent.
type Script = Box<dyn FnMut(&str) -> Option<String> + Send>;

/// Starts a peer: sends `greeting`, then answers every line with `script`;
/// in DATA mode swallows lines until "." and answers `script(".")`.
fn peer(greeting: &'static str, mut script: Script) -> (u16, thread::JoinHandle<Vec<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut seen = Vec::new();
        if w.write_all(greeting.as_bytes()).is_err() {
            return seen;
        }
        let mut in_data = false;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return seen;
            }
            let l = line.trim_end_matches(['\r', '\n']).to_string();
            if in_data {
                if l == "." {
                    in_data = false;
                    seen.push(".".into());
                    match script(".") {
                        Some(o) if o == "CLOSE" => return seen,
                        Some(o) if w.write_all(o.as_bytes()).is_err() => return seen,
                        _ => {}
                    }
                } else {
                    seen.push(format!("D:{l}"));
                }
                continue;
            }
            seen.push(l.clone());
            let out = script(&l);
            if l == "DATA" && out.as_deref().is_some_and(|o| o.starts_with("354")) {
                in_data = true;
            }
            match out {
                Some(o) if o == "CLOSE" => return seen,
                Some(o) if w.write_all(o.as_bytes()).is_err() => return seen,
                _ => {}
            }
            if l == "QUIT" {
                return seen;
            }
        }
    });
    (port, h)
}

fn ok_script(ehlo: &'static str) -> Script {
    Box::new(move |l: &str| {
        let u = l.to_ascii_uppercase();
        Some(if u.starts_with("EHLO") || u.starts_with("LHLO") {
            ehlo.to_string()
        } else if u.starts_with("RCPT TO:<BAD") {
            "550 5.1.1 <bad@x>: Recipient address rejected\r\n".into()
        } else if u == "DATA" {
            "354 go\r\n".into()
        } else if u == "." {
            "250 2.0.0 Ok: queued as ABC\r\n".into()
        } else if u == "QUIT" {
            "221 bye\r\n".into()
        } else {
            "250 2.1.0 Ok\r\n".into()
        })
    })
}

fn settings(lmtp: bool) -> Settings {
    let s = Duration::from_secs(3);
    Settings {
        lmtp,
        helo_name: "client.test".into(),
        timeouts: Timeouts {
            helo: s,
            mail: s,
            rcpt: s,
            data_init: s,
            data_xfer: s,
            data_done: s,
            quit: s,
            xforward: s,
        },
        reply_limits: ReplyLimits::default(),
        tls: crate::policy::Level::None,
        tls_config: None,
        tls_verifier: None,
        tls_sni: None,
        tls_loglevel: 0,
        tls_sts_testing: None,
        tls_report: None,
        sasl: None,
        mime_conversion: true,
    }
}

fn rcpts(list: &[&str]) -> Vec<Recipient> {
    list.iter().map(|a| Recipient::new(*a)).collect()
}

fn go(port: u16, lmtp: bool, rc: &[Recipient], content: &[u8]) -> SessionEnd {
    go_from(port, lmtp, rc, content, None)
}

/// [`go`] forwarding `origin` with XFORWARD.
fn go_from(
    port: u16,
    lmtp: bool,
    rc: &[Recipient],
    content: &[u8],
    origin: Option<&crate::xforward::Origin>,
) -> SessionEnd {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let p = Peer {
        host: "mx.test".into(),
        addr: "127.0.0.1".into(),
        port,
    };
    let m = Message {
        sender: "s@x",
        envid: "",
        ret: "",
        recipients: rc,
        content,
        origin,
    };
    let mut c = None;
    run(&mut s, &p, &settings(lmtp), &m, &mut c)
}

fn done(e: SessionEnd) -> Vec<Outcome> {
    match e {
        SessionEnd::Done(v) => v,
        other => panic!("not done: {other:?}"),
    }
}

#[test]
fn data_bytes_stuffing_and_crlf() {
    assert_eq!(
        data_bytes(b"a\n.b\n..\nc"),
        b"a\r\n..b\r\n...\r\nc\r\n.\r\n"
    );
    assert_eq!(data_bytes(b""), b".\r\n");
    assert_eq!(data_bytes(b"x\r\n"), b"x\r\n.\r\n");
}

#[test]
fn commands_with_extensions() {
    let caps = EhloCaps {
        size: Some(1000),
        dsn: true,
        eightbitmime: true,
        smtputf8: true,
        ..Default::default()
    };
    let rc = vec![Recipient {
        address: "ü@x".into(),
        original: "o@x".into(),
        orcpt: "rfc822;o+x@x".into(),
        notify: notify::SUCCESS | notify::FAILURE,
        offset: 7,
    }];
    let m = Message {
        sender: "",
        envid: "id 1",
        ret: "hdrs",
        recipients: &rc,
        content: b"\xc3\xa9\n",
        origin: None,
    };
    assert_eq!(
        mail_command(&m, &caps, 4),
        "MAIL FROM:<> SIZE=4 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+201\r\n"
    );
    assert_eq!(
        rcpt_command(&rc[0], &caps),
        "RCPT TO:<ü@x> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;o+2Bx@x\r\n"
    );
    let plain = EhloCaps::default();
    assert_eq!(mail_command(&m, &plain, 4), "MAIL FROM:<>\r\n");
    assert_eq!(rcpt_command(&rc[0], &plain), "RCPT TO:<ü@x>\r\n");
}

#[test]
fn pipelined_partial_reject() {
    let (port, h) = peer(
        "220 mx ESMTP\r\n",
        ok_script("250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
    );
    let rc = rcpts(&["a@x", "bad@x", "c@x"]);
    let v = done(go(port, false, &rc, b"Subject: t\n\n.dot\n"));
    assert_eq!(v[0].action, Action::Sent);
    assert_eq!(v[0].text, "250 2.0.0 Ok: queued as ABC");
    assert_eq!(v[1].action, Action::Bounce);
    assert_eq!(
        v[1].text,
        format!(
            "host mx.test[127.0.0.1] said: 550 5.1.1 <bad@x>: Recipient address rejected (in reply to RCPT TO command)"
        )
    );
    assert_eq!(v[2].action, Action::Sent);
    let seen = h.join().unwrap();
    assert!(seen.contains(&"D:..dot".to_string()), "{seen:?}");
}

#[test]
fn nothing_accepted_no_data() {
    let (port, h) = peer("220 mx\r\n", ok_script("250 mx\r\n"));
    let v = done(go(port, false, &rcpts(&["bad1@x", "bad2@x"]), b"x\n"));
    assert!(v.iter().all(|o| o.action == Action::Bounce));
    let seen = h.join().unwrap();
    assert!(!seen.contains(&"DATA".to_string()), "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("QUIT"));
}

#[test]
fn helo_fallback() {
    let mut inner = ok_script("");
    let (port, h) = peer(
        "220 old\r\n",
        Box::new(move |l: &str| {
            if l.starts_with("EHLO") {
                Some("502 what\r\n".into())
            } else if l.starts_with("HELO") {
                Some("250 old\r\n".into())
            } else {
                inner(l)
            }
        }),
    );
    let v = done(go(port, false, &rcpts(&["a@x"]), b"x\n"));
    assert_eq!(v[0].action, Action::Sent);
    assert!(
        h.join()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("HELO client.test"))
    );
}

#[test]
fn bad_greeting_tries_next() {
    let (port, _h) = peer("421 busy\r\n", ok_script("250 x\r\n"));
    match go(port, false, &rcpts(&["a@x"]), b"x\n") {
        SessionEnd::NextHost(o) => {
            assert_eq!(o.action, Action::Defer);
            assert_eq!(
                o.text,
                "host mx.test[127.0.0.1] refused to talk to me: 421 busy"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn drop_mid_data_defers() {
    let mut inner = ok_script("250 mx\r\n");
    let (port, _h) = peer(
        "220 mx\r\n",
        Box::new(move |l: &str| {
            if l == "." {
                Some("CLOSE".into())
            } else {
                inner(l)
            }
        }),
    );
    let v = done(go(port, false, &rcpts(&["a@x", "b@x"]), b"x\n"));
    for o in &v {
        assert_eq!(o.action, Action::Defer);
        assert_eq!(o.dsn, "4.4.2");
        assert!(
            o.text
                .starts_with("lost connection with mx.test[127.0.0.1] while sending end of data"),
            "{}",
            o.text
        );
    }
}

#[test]
fn garbage_and_huge_reply_defer() {
    let mut inner = ok_script("250 mx\r\n");
    let (port, _h) = peer(
        "220 mx\r\n",
        Box::new(move |l: &str| {
            if l.starts_with("RCPT") {
                Some("hello there\r\n".into())
            } else {
                inner(l)
            }
        }),
    );
    let v = done(go(port, false, &rcpts(&["a@x"]), b"x\n"));
    assert_eq!(v[0].action, Action::Defer);
    assert!(v[0].text.contains("malformed reply"), "{}", v[0].text);

    let mut inner = ok_script("250 mx\r\n");
    let (port, _h) = peer(
        "220 mx\r\n",
        Box::new(move |l: &str| {
            if l == "." {
                Some(format!("250 {}\r\n", "x".repeat(1 << 20)))
            } else {
                inner(l)
            }
        }),
    );
    let v = done(go(port, false, &rcpts(&["a@x"]), b"x\n"));
    assert_eq!(v[0].action, Action::Defer);
    assert!(v[0].text.contains("reply line too long"), "{}", v[0].text);
}

#[test]
fn stall_times_out() {
    let mut inner = ok_script("250 mx\r\n");
    let (port, _h) = peer(
        "220 mx\r\n",
        Box::new(move |l: &str| if l == "." { None } else { inner(l) }),
    );
    let v = done(go(port, false, &rcpts(&["a@x"]), b"x\n"));
    assert_eq!(v[0].action, Action::Defer);
    assert_eq!(
        v[0].text,
        "conversation with mx.test[127.0.0.1] timed out while sending end of data -- message may be sent more than once"
    );
}

#[test]
fn size_and_smtputf8_refused_locally() {
    let (port, _h) = peer("220 mx\r\n", ok_script("250-mx\r\n250 SIZE 5\r\n"));
    let v = done(go(port, false, &rcpts(&["a@x"]), b"0123456789\n"));
    assert_eq!((v[0].action, v[0].dsn.as_str()), (Action::Bounce, "5.3.4"));
    let (port, _h) = peer("220 mx\r\n", ok_script("250 mx\r\n"));
    let v = done(go(port, false, &rcpts(&["ü@x"]), b"x\n"));
    assert_eq!((v[0].action, v[0].dsn.as_str()), (Action::Bounce, "5.6.7"));
    assert_eq!(
        v[0].text,
        "SMTPUTF8 is required, but was not offered by host mx.test[127.0.0.1]"
    );
}

#[test]
fn lmtp_one_reply_per_recipient() {
    let mut inner = ok_script("250-lmtp\r\n250 PIPELINING\r\n");
    let (port, h) = peer(
        "220 lmtp\r\n",
        Box::new(move |l: &str| {
            if l == "." {
                Some("250 2.0.0 a ok\r\n452 4.2.2 b over quota\r\n".into())
            } else {
                inner(l)
            }
        }),
    );
    let v = done(go(port, true, &rcpts(&["a@x", "bad@x", "b@x"]), b"x\n"));
    assert_eq!(v[0].action, Action::Sent);
    assert_eq!(v[1].action, Action::Bounce);
    assert_eq!(v[2].action, Action::Defer);
    assert_eq!(v[2].dsn, "4.2.2");
    assert!(h.join().unwrap()[0].starts_with("LHLO client.test"));
}

#[test]
fn xforward_before_mail_pipelined_and_a_refusal_is_only_logged() {
    for pipelining in [true, false] {
        let ehlo: &'static str = if pipelining {
            "250-mx\r\n250-PIPELINING\r\n250 XFORWARD NAME ADDR PROTO HELO SOURCE\r\n"
        } else {
            "250-mx\r\n250 XFORWARD NAME ADDR PROTO HELO SOURCE\r\n"
        };
        let mut ok = ok_script(ehlo);
        let script: Script = Box::new(move |l: &str| {
            if l.starts_with("XFORWARD PROTO") {
                Some("550 5.7.0 not for you\r\n".into())
            } else {
                ok(l)
            }
        });
        let (port, h) = peer("220 mx ESMTP\r\n", script);
        let origin = crate::xforward::Origin {
            name: "c.example".into(),
            addr: "192.0.2.9".into(),
            proto: "ESMTP".into(),
            helo: "h".into(),
            remote: true,
            ..Default::default()
        };
        let rc = rcpts(&["a@x"]);
        let out = done(go_from(port, false, &rc, b"x\n", Some(&origin)));
        assert_eq!(out[0].action, Action::Sent, "{pipelining}: {out:?}");
        let seen = h.join().unwrap();
        assert_eq!(seen[1], "XFORWARD NAME=c.example ADDR=192.0.2.9");
        assert_eq!(seen[2], "XFORWARD PROTO=ESMTP HELO=h SOURCE=REMOTE");
        assert!(seen[3].starts_with("MAIL FROM:<s@x>"), "{seen:?}");
    }
}
