use super::*;
use crate::params::{Body, Notify, Orcpt, Ret};
use crate::reply_for;
use CommandError as E;

fn p(line: &str) -> Result<Command, CommandError> {
    parse_command(line.as_bytes(), &Leniency::default())
}

fn wire(line: &[u8]) -> String {
    match parse_command(line, &Leniency::default()) {
        Ok(c) => c.encode(),
        Err(e) => reply_for(&e).encode().trim_end().to_owned(),
    }
}

/// Replies observed from Postfix 3.7.11 for these exact lines (syntax-level only).
#[test]
fn observed_postfix_errors() {
    let table: &[(&[u8], &str)] = &[
        (b"", "500 5.5.2 Error: bad syntax"),
        (b" ", "500 5.5.2 Error: bad syntax"),
        (b"\0", "500 5.5.2 Error: bad syntax"),
        (b"MAIL FROM:<\xfc@b>", "500 5.5.2 Error: bad UTF-8 syntax"),
        (b"HELO", "501 Syntax: HELO hostname"),
        (b"EHLO", "501 Syntax: EHLO hostname"),
        (b"MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL FROM:", "501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL FROM :<a@b>", "501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL FROM<a@b>", "501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL TO:<a@b>", "501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL FROM:<a@b", "501 5.1.7 Bad sender address syntax"),
        (b"MAIL FROM:<a b@c>", "501 5.1.7 Bad sender address syntax"),
        (
            b"MAIL FROM:<a@b>SIZE=1",
            "501 5.1.7 Bad sender address syntax",
        ),
        (
            b"MAIL FROM:<a@b> FOO=bar",
            "555 5.5.4 Unsupported option: FOO=bar",
        ),
        (
            b"MAIL FROM:<u@d> <v@e>",
            "555 5.5.4 Unsupported option: <v@e>",
        ),
        (
            b"MAIL FROM:<a@b> SIZE=abc",
            "501 5.5.4 Bad message size syntax",
        ),
        (b"RCPT", "501 5.5.4 Syntax: RCPT TO:<address>"),
        (b"RCPT TO:", "501 5.5.4 Syntax: RCPT TO:<address>"),
        (b"RCPT FROM:<a@b>", "501 5.5.4 Syntax: RCPT TO:<address>"),
        (b"RCPT TO:<>", "501 5.1.3 Bad recipient address syntax"),
        (b"RCPT TO:<a@b", "501 5.1.3 Bad recipient address syntax"),
        (
            b"RCPT TO:<a@b>NOTIFY=NEVER",
            "501 5.1.3 Bad recipient address syntax",
        ),
        (
            b"RCPT TO:<a@b> NOTIFY=foo",
            "501 5.5.4 Error: Bad NOTIFY parameter syntax",
        ),
        (
            b"RCPT TO:<a@b> ORCPT=x@y",
            "501 5.5.4 Error: Bad ORCPT parameter syntax",
        ),
        (
            b"RCPT TO:<a@b> SIZE=1",
            "555 5.5.4 Unsupported option: SIZE=1",
        ),
        (b"DATA x", "501 5.5.4 Syntax: DATA"),
        (b"RSET x", "501 5.5.4 Syntax: RSET"),
        (b"BDAT", "521 5.5.4 Syntax: BDAT count [LAST]"),
        (b"BDAT x", "521 5.5.4 Syntax: BDAT count [LAST]"),
        (b"BDAT 10 FOO", "521 5.5.4 Syntax: BDAT count [LAST]"),
        (b"BDAT 10 LAST X", "521 5.5.4 Syntax: BDAT count [LAST]"),
        (b"BDAT -1", "521 5.5.4 Syntax: BDAT count [LAST]"),
        (
            b"BDAT 99999999999999999999999",
            "521 5.5.4 Syntax: BDAT count [LAST]",
        ),
        (b"VRFY", "501 5.5.4 Syntax: VRFY address [SMTPUTF8]"),
        (b"VRFY <a b>", "501 5.1.3 Bad recipient address syntax"),
        (b"ETRN", "500 Syntax: ETRN domain"),
        (b"ETRN x y", "500 Syntax: ETRN domain"),
        (b"STARTTLS x", "501 5.5.4 Syntax: STARTTLS"),
        (b"XCLIENT", "501 5.5.4 Syntax: XCLIENT attribute=value..."),
        (
            b"XCLIENT FOO=bar",
            "501 5.5.4 Bad XCLIENT attribute name: FOO",
        ),
        (b"XCLIENT NAME", "501 5.5.4 Error: attribute=value expected"),
        (b"XCLIENT NAME=a+zz", "501 5.5.4 Bad NAME syntax: a+zz"),
        (b"XCLIENT NAME=a+2Bb", "501 5.5.4 Bad NAME syntax: a+b"),
        (b"XCLIENT ADDR=notip", "501 5.5.4 Bad ADDR syntax: notip"),
        (b"XCLIENT PORT=x", "501 5.5.4 Bad PORT syntax: x"),
        (b"XCLIENT PROTO=x", "501 5.5.4 Bad PROTO syntax: x"),
        (b"XFORWARD", "501 5.5.4 Syntax: XFORWARD attribute=value..."),
        (
            b"XFORWARD FOO=1",
            "501 5.5.4 Bad XFORWARD attribute name: FOO",
        ),
        (
            b"XFORWARD NAME",
            "501 5.5.4 Error: attribute=value expected",
        ),
        (b"XFORWARD PORT=x", "501 5.5.4 Bad PORT syntax: x"),
        (b"XFORWARD NAME=a+zz", "501 5.5.4 Bad NAME syntax: a+zz"),
    ];
    for (line, want) in table {
        assert_eq!(wire(line), *want, "{}", String::from_utf8_lossy(line));
    }
}

/// Lines Postfix 3.7.11 accepted; our canonical re-encoding.
#[test]
fn observed_postfix_accepts() {
    let table: &[(&str, &str)] = &[
        ("mail from:<a@b>", "MAIL FROM:<a@b>"),
        ("MAIL  FROM:<a@b>", "MAIL FROM:<a@b>"),
        ("MAIL FROM: <a@b>", "MAIL FROM:<a@b>"),
        ("MAIL FROM:a@b", "MAIL FROM:<a@b>"),
        ("MAIL FROM:<>", "MAIL FROM:<>"),
        ("MAIL FROM:<a@b>\tSIZE=1", "MAIL FROM:<a@b> SIZE=1"),
        ("MAIL FROM:<a@b>  SIZE=10 ", "MAIL FROM:<a@b> SIZE=10"),
        ("MAIL FROM:<@a,@b:u@d>", "MAIL FROM:<u@d>"),
        ("MAIL FROM:<\"a b\"@x>", "MAIL FROM:<\"a b\"@x>"),
        ("RCPT TO:<Postmaster>", "RCPT TO:<Postmaster>"),
        (
            "RCPT TO: <a@b> notify=success,success",
            "RCPT TO:<a@b> NOTIFY=SUCCESS",
        ),
        ("HELO  x", "HELO x"),
        ("HELO x y z", "HELO x y z"),
        ("EHLO [1.2.3.4]", "EHLO [1.2.3.4]"),
        ("  NOOP", "NOOP"),
        ("\tNOOP", "NOOP"),
        ("NOOP x", "NOOP"),
        ("NOOP\r", "NOOP"),
        ("RSET\t", "RSET"),
        ("QUIT x", "QUIT"),
        ("BDAT 10 last", "BDAT 10 LAST"),
        ("BDAT 0 LAST", "BDAT 0 LAST"),
        ("ETRN @x", "ETRN @x"),
        ("VRFY a@b", "VRFY <a@b>"),
        (
            "XFORWARD name=x ident=y source=local",
            "XFORWARD NAME=x IDENT=y SOURCE=local",
        ),
        (
            "XFORWARD ADDR=1.2.3.4 PROTO=x",
            "XFORWARD ADDR=1.2.3.4 PROTO=x",
        ),
        ("XFORWARD NAME=[UNAVAILABLE]", "XFORWARD NAME=[UNAVAILABLE]"),
        ("FOO", "FOO"),
        ("auth plain dGVzdA==", "AUTH PLAIN dGVzdA=="),
    ];
    for (line, want) in table {
        assert_eq!(wire(line.as_bytes()), *want, "{line}");
    }
}

#[test]
fn nul_ends_the_line() {
    // As Postfix 3.7.11 (oracle): "NOOP a\0b" gets 250, "HELO a\0b" 250,
    // "MAIL FROM:<a@b>\0junk" 250, "RCPT TO:<us\0er@b>" 501 5.1.3, "\0NOOP" 500.
    assert_eq!(p("NOOP a\0b"), Ok(Command::Noop));
    assert_eq!(p("HELO a\0b"), Ok(Command::Helo("a".into())));
    assert!(matches!(
        p("MAIL FROM:<a@b>\0junk"),
        Ok(Command::Mail { .. })
    ));
    assert_eq!(p("RCPT TO:<us\0er@b>"), Err(E::BadRecipient));
    assert_eq!(p("\0NOOP"), Err(E::BadSyntax));
}

/// Fuzz find: a verb of control characters did not survive encode/parse.
#[test]
fn regression_fuzz_control_verb() {
    assert_eq!(p("\r\tx"), Err(E::Unrecognized));
    assert_eq!(p("F\u{1}OO"), Err(E::Unrecognized));
}

#[test]
fn strictness_knobs() {
    let strict = Leniency {
        strict_rfc821_envelopes: true,
        ..Leniency::default()
    };
    assert_eq!(parse_command(b"MAIL FROM:a@b", &strict), Err(E::BadSender));
    assert_eq!(parse_command(b"RCPT TO:a@b", &strict), Err(E::BadRecipient));
    assert!(parse_command(b"MAIL FROM: <a@b>", &strict).is_ok());
    let utf8 = Leniency {
        strict_smtputf8: true,
        ..Leniency::default()
    };
    assert_eq!(
        parse_command("MAIL FROM:<ü@d>".as_bytes(), &utf8),
        Err(E::NeedSmtputf8)
    );
    assert!(parse_command("MAIL FROM:<ü@d> SMTPUTF8".as_bytes(), &utf8).is_ok());
    // Without the knob the address is accepted and flagged.
    match p("RCPT TO:<ü@d>") {
        Ok(Command::Rcpt { to, .. }) => assert!(to.is_utf8()),
        other => panic!("{other:?}"),
    }
}

/// A tiny deterministic generator (no extra dependencies).
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    fn flag(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn text(&mut self) -> String {
        self.pick(&["x", "a b", "ü", "+=", "<>", "u@d", "[1]", "\"q\""])
            .to_owned()
    }
    fn mailbox(&mut self) -> Mailbox {
        let local = self.pick(&[
            "u",
            "a.b",
            ".u",
            "a b",
            "u@o",
            "q\"\\",
            "ü",
            "user%o",
            "o!u",
            "Postmaster",
        ]);
        let domain = self.pick(&[
            "",
            "d",
            "d.example.",
            "[127.0.0.1]",
            "[IPv6:::1]",
            "bücher.de",
            "d_e",
        ]);
        Mailbox::new(local, (!domain.is_empty()).then_some(domain)).unwrap()
    }
    fn command(&mut self) -> Command {
        match self.below(20) {
            0 => Command::Helo(self.pick(&["x", "a b", "[1.2.3.4]"]).into()),
            1 => Command::Ehlo(self.pick(&["x", "mail.example"]).into()),
            2 => Command::Lhlo("x".into()),
            3 => Command::Mail {
                from: if self.flag() {
                    ReversePath::Null
                } else {
                    ReversePath::Mailbox(self.mailbox())
                },
                params: MailParams {
                    size: self.flag().then(|| self.next()),
                    body: [None, Some(Body::SevenBit), Some(Body::EightBitMime)][self.below(3)],
                    smtputf8: self.flag(),
                    ret: [None, Some(Ret::Full), Some(Ret::Hdrs)][self.below(3)],
                    envid: self
                        .flag()
                        .then(|| self.pick(&["x", "a b", "+=", "id<1>"]).into()),
                    auth: None,
                },
            },
            4 => Command::Rcpt {
                to: self.mailbox(),
                params: RcptParams {
                    notify: match self.below(3) {
                        0 => None,
                        1 => Some(Notify::Never),
                        _ => Some(Notify::On {
                            success: true,
                            delay: self.flag(),
                            failure: self.flag(),
                        }),
                    },
                    orcpt: self.flag().then(|| Orcpt {
                        addr_type: "rfc822".into(),
                        addr: self.text(),
                    }),
                },
            },
            5 => Command::Data,
            6 => Command::Bdat {
                size: self.next(),
                last: self.flag(),
            },
            7 => Command::Rset,
            8 => Command::Noop,
            9 => Command::Quit,
            10 => Command::Vrfy {
                address: self.mailbox(),
                smtputf8: self.flag(),
            },
            11 => Command::Expn(self.pick(&["", "list", "a b"]).into()),
            12 => Command::Etrn(self.pick(&["x", "@x", "#q"]).into()),
            13 => Command::Help(self.flag().then(|| "MAIL".into())),
            14 => Command::StartTls,
            15 => Command::Auth {
                mechanism: "PLAIN".into(),
                initial: self.flag().then(|| "=".into()),
            },
            16 => Command::Xclient(vec![
                (XAttr::Name, "h.example".into()),
                (XAttr::Login, self.text()),
            ]),
            17 => Command::Xforward(vec![
                (XAttr::Addr, "IPV6:::1".into()),
                (XAttr::Helo, self.text()),
            ]),
            _ => Command::Unknown(self.pick(&["FOO", "x", "Mail2"]).into()),
        }
    }
}

#[test]
fn parse_encode_round_trip() {
    let len = Leniency::default();
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let c = g.command();
        let line = c.encode();
        assert_eq!(
            parse_command(line.as_bytes(), &len).as_ref(),
            Ok(&c),
            "{line}"
        );
    }
}
