//! Codec round trips and bad input.

use super::*;

fn one(bytes: &[u8]) -> (u8, Vec<u8>) {
    let p = frame(bytes).unwrap().unwrap();
    assert_eq!(p.consumed, bytes.len());
    (p.code, p.data.to_vec())
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn command_round_trips() {
    let cmds = [
        Command::OptNeg {
            version: 6,
            actions: action::ALL,
            protocol: proto::offered(6).unwrap(),
        },
        Command::Macro {
            cmd: b'C',
            pairs: vec![(s("j"), s("mx")), (s("{daemon_name}"), s("smtpd"))],
        },
        Command::Connect {
            hostname: s("client.example"),
            family: Family::Inet,
            port: 54321,
            addr: s("192.0.2.1"),
        },
        Command::Connect {
            hostname: s("x"),
            family: Family::Unknown,
            port: 0,
            addr: s(""),
        },
        Command::Helo(s("helo.example")),
        Command::Mail(vec![s("<a@b>"), s("SIZE=10")]),
        Command::Rcpt(vec![s("<c@d>")]),
        Command::Data,
        Command::Header {
            name: s("Subject"),
            value: s("hi\n\tthere"),
        },
        Command::Eoh,
        Command::Body(b"line\r\n".to_vec()),
        Command::BodyEob,
        Command::Unknown(s("XYZZY")),
        Command::Abort,
        Command::Quit,
    ];
    for c in cmds {
        let mut out = Vec::new();
        c.encode(&mut out);
        let (code, data) = one(&out);
        assert_eq!(Command::decode(code, &data).unwrap(), c);
    }
}

#[test]
fn response_round_trips() {
    let resps = [
        Response::OptNeg {
            version: 6,
            actions: 0x1ff,
            protocol: 0,
            symlists: vec![(0, s("j _")), (5, s("i"))],
        },
        Response::Accept,
        Response::Continue,
        Response::Discard,
        Response::Reject,
        Response::Tempfail,
        Response::Shutdown,
        Response::Progress,
        Response::Skip,
        Response::Quarantine(s("spam")),
        Response::AddHeader {
            name: s("X-A"),
            value: s("1"),
        },
        Response::InsHeader {
            index: 0,
            name: s("X-B"),
            value: s("2"),
        },
        Response::ChgHeader {
            index: 2,
            name: s("X-C"),
            value: s(""),
        },
        Response::ReplBody(b"new\r\n".to_vec()),
        Response::AddRcpt(s("<n@x>")),
        Response::AddRcptPar {
            rcpt: s("<n@x>"),
            args: Some(s("NOTIFY=NEVER")),
        },
        Response::DelRcpt(s("<o@x>")),
        Response::ChgFrom {
            sender: s("<f@x>"),
            args: None,
        },
    ];
    for r in resps {
        let mut out = Vec::new();
        r.encode(&mut out);
        let (code, data) = one(&out);
        assert_eq!(Response::decode(code, &data).unwrap(), r);
    }
    let mut out = Vec::new();
    Response::ReplyCode(b"550 5.7.1 no".to_vec()).encode(&mut out);
    let (code, data) = one(&out);
    assert_eq!(
        Response::decode(code, &data).unwrap(),
        Response::ReplyCode(b"550 5.7.1 no\0".to_vec())
    );
}

#[test]
fn framing_needs_more_and_bounds() {
    assert_eq!(frame(b""), Ok(None));
    assert_eq!(frame(b"\0\0\0"), Ok(None));
    assert_eq!(frame(b"\0\0\0\x02c"), Ok(None));
    assert_eq!(frame(b"\0\0\0\0"), Err(CodecError::BadLength(0)));
    let big = u32::try_from(MAX_PACKET + 1).unwrap();
    assert_eq!(frame(&big.to_be_bytes()), Err(CodecError::TooLong(big)));
    assert_eq!(
        frame(&[0xff, 0xff, 0xff, 0xff]),
        Err(CodecError::TooLong(u32::MAX))
    );
    // Two packets back to back: the first only.
    let two = b"\0\0\0\x01c\0\0\0\x01a";
    assert_eq!(
        frame(two),
        Ok(Some(Packet {
            consumed: 5,
            code: b'c',
            data: b""
        }))
    );
}

#[test]
fn bad_responses() {
    use CodecError::*;
    let cases: &[(u8, &[u8], CodecError)] = &[
        (b'c', b"x", Trailing { code: b'c', len: 1 }),
        (b'a', b"\0", Trailing { code: b'a', len: 1 }),
        (
            b'Z',
            b"",
            Unknown {
                what: "reply",
                code: b'Z',
            },
        ),
        (b'h', b"X-A\0value", Truncated("string")),
        (b'h', b"X-A", Truncated("string")),
        (b'i', b"\0\0\0", Truncated("network long")),
        (
            b'm',
            b"\0\0\0\x01X\0v\0extra",
            Trailing { code: b'm', len: 5 },
        ),
        (b'O', b"\0\0\0\x06\0\0\0\0", Truncated("network long")),
        (
            b'O',
            b"\0\0\0\x06\0\0\0\0\0\0\0\0\0\0\0\x01i",
            Truncated("string"),
        ),
        (b'e', b"<a@b>\0ARGS", Truncated("string")),
        (b'+', b"", Truncated("string")),
    ];
    for (code, data, want) in cases {
        assert_eq!(
            Response::decode(*code, data).as_ref(),
            Err(want),
            "{}",
            *code as char
        );
    }
}

#[test]
fn quarantine_reason_is_bounded_and_clean() {
    let long = "é".repeat(80);
    let r = Response::decode(b'q', format!("{long}\0").as_bytes()).unwrap();
    let Response::Quarantine(reason) = r else {
        panic!("not quarantine")
    };
    assert!(reason.len() <= response::MAX_REASON);
    let r = Response::decode(b'q', b"a\nb\0").unwrap();
    assert_eq!(r, Response::Quarantine(s("a?b")));
}

#[test]
fn offered_masks() {
    assert_eq!(proto::offered(2), Some(0x7f));
    assert_eq!(proto::offered(3), Some(0x17f));
    assert_eq!(proto::offered(4), Some(0x37f));
    assert_eq!(proto::offered(6), Some(0x1fffff));
    assert_eq!(proto::offered(7), None);
}
