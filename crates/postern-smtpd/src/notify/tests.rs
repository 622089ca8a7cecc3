//! Unit tests: classification, transcript bounds, the notice's shape.

use super::*;

fn r(code: u16, enh: (u8, u16, u16), text: &str) -> Reply {
    Reply::new(code, Some(enh), text)
}

#[test]
fn classifies_smtpd_replies() {
    let cases = [
        (
            r(502, (5, 5, 2), "Error: command not recognized"),
            Some(Class::Protocol),
        ),
        (
            r(503, (5, 5, 1), "Error: need MAIL command"),
            Some(Class::Protocol),
        ),
        (
            r(501, (5, 1, 7), "Bad sender address syntax"),
            Some(Class::Protocol),
        ),
        (
            r(554, (5, 5, 1), "Error: no valid recipients"),
            Some(Class::Protocol),
        ),
        (
            r(421, (4, 7, 0), "mx Error: too many errors"),
            Some(Class::Protocol),
        ),
        (
            r(451, (4, 3, 5), "Server configuration error"),
            Some(Class::Software),
        ),
        (
            r(451, (4, 3, 0), "Error: internal error 4"),
            Some(Class::Software),
        ),
        (
            r(451, (4, 3, 0), "Error: queue file write error"),
            Some(Class::Resource),
        ),
        (
            r(452, (4, 3, 1), "Insufficient system storage"),
            Some(Class::Resource),
        ),
        (
            r(552, (5, 3, 4), "Message size exceeds fixed limit"),
            Some(Class::Bounce),
        ),
        (
            r(554, (5, 4, 0), "Error: too many hops"),
            Some(Class::Bounce),
        ),
        (
            r(452, (4, 5, 3), "Error: too many recipients"),
            Some(Class::Policy),
        ),
        (
            r(450, (4, 7, 1), "Error: too much mail from 1.2.3.4"),
            Some(Class::Policy),
        ),
        (r(421, (4, 4, 2), "mx Error: timeout exceeded"), None),
        (r(250, (2, 0, 0), "Ok"), None),
        (Reply::new(220, None, "mx ESMTP"), None),
    ];
    for (reply, want) in cases {
        assert_eq!(classify(&reply), want, "{}", reply.encode());
    }
}

#[test]
fn classifies_restriction_refusals() {
    assert_eq!(
        restriction_class(&r(554, (5, 7, 1), "Relay access denied")),
        Class::Policy
    );
    assert_eq!(
        restriction_class(&r(501, (5, 5, 2), "Helo command rejected")),
        Class::Policy
    );
    assert_eq!(
        restriction_class(&r(451, (4, 3, 5), "Server configuration error")),
        Class::Software
    );
    assert_eq!(
        restriction_class(&r(451, (4, 3, 0), "Temporary lookup failure")),
        Class::Resource
    );
    assert_eq!(
        restriction_class(&r(550, (5, 1, 1), "User unknown")),
        Class::Bounce
    );
}

#[test]
fn mask_follows_notify_classes() {
    let words = |s: &str| s.split(", ").map(String::from).collect::<Vec<_>>();
    let m = mask_of(&words("resource, software"));
    let mut t = Transcript::new(true);
    t.restriction(&r(554, (5, 7, 1), "Relay access denied"));
    t.output(&r(554, (5, 7, 1), "Relay access denied"));
    assert!(!t.due(m), "policy is not in the default classes");
    assert!(t.due(mask_of(&words("policy"))));
    assert!(
        !t.due(mask_of(&words("protocol"))),
        "an already-classified refusal is not re-classified"
    );
    t.output(&r(502, (5, 5, 2), "Error: command not recognized"));
    assert!(t.due(mask_of(&words("protocol"))));
    assert_eq!(mask_of(&words("delay, 2bounce")), 0);
}

#[test]
fn transcript_is_bounded_and_disabled_without_classes() {
    let mut off = Transcript::new(false);
    off.input(b"HELO x\r\n");
    off.output(&r(502, (5, 5, 2), "x"));
    assert!(off.is_empty() && !off.due(0xff));
    let mut t = Transcript::new(true);
    for _ in 0..MAX_LINES + 50 {
        t.input(&vec![b'A'; MAX_LINE * 2]);
    }
    assert_eq!(t.len(), MAX_LINES);
    assert_eq!(t.dropped, 50);
    assert!(t.lines.iter().all(|l| l.len() <= MAX_LINE));
    t.reset();
    assert!(t.is_empty() && t.dropped == 0);
}

#[test]
fn notice_has_postfix_shape() {
    let n = NotifySettings {
        mask: 4,
        recipient: "postmaster".into(),
        sender: "double-bounce@example.com".into(),
        threshold: 100,
        mail_name: "Postfix".into(),
    };
    let mut t = Transcript::new(true);
    t.output(&Reply::new(220, None, "mx.example.com ESMTP"));
    t.input(b"BOGUS \x01cmd\r\n");
    t.output(&r(502, (5, 5, 2), "Error: command not recognized"));
    t.input(format!("RCPT TO:<{}>", "x".repeat(100)).as_bytes());
    t.abort("lost connection");
    let text = String::from_utf8(compose(&n, "localhost[127.0.0.1]", &t)).unwrap();
    let want_head = "From: Mail Delivery System <MAILER-DAEMON>\n\
        To: Postmaster <postmaster>\n\
        Subject: Postfix SMTP server: errors from localhost[127.0.0.1]\n\n\
        Transcript of session follows.\n\n \
        Out: 220 mx.example.com ESMTP\n \
        In:  BOGUS ?cmd\n \
        Out: 502 5.5.2 Error: command not recognized\n";
    assert!(text.starts_with(want_head), "{text}");
    let wrapped = format!(
        " In:  RCPT\n     TO:<{}\n     {}\n",
        "x".repeat(70),
        "x".repeat(30) + ">"
    );
    assert!(text.contains(&wrapped), "{text}");
    assert!(text.ends_with("\nSession aborted, reason: lost connection\n\nFor other details, see the local mail logfile\n"));
    assert!(
        text.lines()
            .skip(6)
            .take(4)
            .all(|l| l.is_empty() || l.starts_with(' '))
    );
    assert!(text.lines().all(|l| l.len() <= 79), "{text}");
}

#[test]
fn wrap_breaks_at_white_space() {
    assert_eq!(wrap("short", 78, 4), vec!["short"]);
    let long = format!("{} {}", "a".repeat(70), "b".repeat(20));
    assert_eq!(
        wrap(&long, 78, 4),
        vec!["a".repeat(70), format!("    {}", "b".repeat(20))]
    );
    let word = "c".repeat(100);
    let w = wrap(&word, 78, 4);
    assert_eq!(w[0].len(), 78);
    assert_eq!(w[1], format!("    {}", "c".repeat(22)));
}
