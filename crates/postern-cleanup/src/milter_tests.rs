//! Unit tests for the milter outcome applier.

use super::*;
use crate::checks::Verdict as Checks;
use postern_config::Config;
use postern_qfile::QueueFile;

fn built(content: &str) -> Built {
    Built {
        qf: QueueFile {
            sender: "a@example.org".into(),
            recipients: vec![RecipientRecord {
                address: "b@example.org".into(),
                original: "b@example.org".into(),
                ..Default::default()
            }],
            content: content.as_bytes().to_vec(),
            ..Default::default()
        },
        verdict: Checks::default(),
    }
}

fn cfg(main_cf: &str) -> Config {
    Config::new(postern_config::parse_main_cf(main_cf).expect("main.cf"))
}

fn req() -> CleanupRequest {
    CleanupRequest {
        flags: 0,
        sender: "a@example.org".into(),
        fullname: String::new(),
        arrival: (0, 0),
        recipients: Vec::new(),
        attrs: vec![
            ("client_address".into(), "127.0.0.1".into()),
            ("client_name".into(), "localhost".into()),
            ("protocol".into(), "ESMTP".into()),
        ],
        content: Vec::new(),
    }
}

fn outcome(verdict: Verdict, headers: &[(&str, &str)], body: &str) -> Outcome {
    Outcome {
        verdict,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
        modifications: Vec::new(),
    }
}

#[test]
fn split_and_join_are_inverse() {
    let text = "Received: from x\n\tby y; date\nSubject: hi\n\nbody\nline\n";
    let (h, b) = split(text.as_bytes());
    assert_eq!(h[0], ("Received".into(), " from x\n\tby y; date".into()));
    assert_eq!(h[1], ("Subject".into(), " hi".into()));
    assert_eq!(b, b"body\nline\n");
    assert_eq!(join(&h, &b, true), text.as_bytes());
    // A header-only message keeps having no empty line.
    let (h, b) = split(b"Subject: x\n");
    assert_eq!(join(&h, &b, false), b"Subject: x\n");
}

#[test]
fn edits_land_in_the_queue_file() {
    let mut b = built("Subject: hi\n\nold\n");
    let mut o = outcome(
        Verdict::Continue,
        &[("Subject", " hi"), ("X-Added", " yes")],
        "new\n",
    );
    o.modifications = vec![
        Modification::ChangeFrom {
            sender: "<new@example.org>".into(),
            args: None,
        },
        Modification::AddRcpt {
            rcpt: "<c@example.org>".into(),
            args: Some("NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@x".into()),
        },
        Modification::DelRcpt {
            rcpt: "<B@example.org>".into(),
        },
    ];
    assert!(matches!(
        apply(&cfg(""), &req(), "QID", &mut b, &o),
        Decision::Queue
    ));
    assert_eq!(b.qf.content, b"Subject: hi\nX-Added: yes\n\nnew\n");
    assert_eq!(b.qf.sender, "new@example.org");
    assert_eq!(b.qf.recipients.len(), 1);
    let r = &b.qf.recipients[0];
    assert_eq!(r.address, "c@example.org");
    assert_eq!(r.notify, notify::SUCCESS | notify::FAILURE);
    assert_eq!(r.orcpt, "rfc822;c@x");
}

#[test]
fn verdicts() {
    let mut b = built("Subject: hi\n\nx\n");
    let r = Reply::new(550, "5.7.1", "go away");
    match apply(
        &cfg(""),
        &req(),
        "QID",
        &mut b,
        &outcome(Verdict::Reject(r), &[], ""),
    ) {
        Decision::Refuse(f) => {
            assert_eq!(f.status, CleanupStatus::Reject);
            assert_eq!(f.reason, "5.7.1 go away");
        }
        d => panic!("{d:?}"),
    }
    let r = Reply::new(451, "", "later");
    match apply(
        &cfg(""),
        &req(),
        "QID",
        &mut b,
        &outcome(Verdict::Tempfail(r), &[], ""),
    ) {
        Decision::Refuse(f) => {
            assert_eq!(f.status, CleanupStatus::Defer);
            assert_eq!(f.reason, "4.7.1 later");
        }
        d => panic!("{d:?}"),
    }
    let d = apply(
        &cfg(""),
        &req(),
        "QID",
        &mut b,
        &outcome(Verdict::Discard, &[], ""),
    );
    assert!(matches!(d, Decision::Discard));
    let q = outcome(
        Verdict::Quarantine("spam".into()),
        &[("Subject", " hi")],
        "x\n",
    );
    assert!(matches!(
        apply(&cfg(""), &req(), "QID", &mut b, &q),
        Decision::Queue
    ));
    assert!(b.verdict.hold);
}

#[test]
fn every_recipient_deleted_is_refused() {
    let mut b = built("Subject: hi\n\nx\n");
    let mut o = outcome(Verdict::Continue, &[("Subject", " hi")], "x\n");
    o.modifications = vec![Modification::DelRcpt {
        rcpt: "<b@example.org>".into(),
    }];
    assert!(matches!(
        apply(&cfg(""), &req(), "QID", &mut b, &o),
        Decision::Refuse(_)
    ));
}

#[test]
fn outcome_from_ipc() {
    let m = MilterOutcome {
        verdict: "reject".into(),
        code: 554,
        enhanced: "5.7.0".into(),
        text: vec!["a".into(), "b".into()],
        headers: vec![("S".into(), " v".into())],
        body: b"x\n".to_vec(),
        edits: vec![
            vec!["insert_header".into(), "0".into(), "N".into(), " v".into()],
            vec!["add_rcpt".into(), "<x@y>".into()],
        ],
    };
    let o = from_ipc(&m).expect("outcome");
    assert_eq!(
        o.verdict,
        Verdict::Reject(Reply {
            code: 554,
            enhanced: Some("5.7.0".into()),
            lines: vec!["a".into(), "b".into()],
        })
    );
    assert_eq!(o.modifications.len(), 2);
    let bad = MilterOutcome {
        verdict: "reject".into(),
        code: 250,
        ..Default::default()
    };
    assert!(from_ipc(&bad).is_err());
    let bad = MilterOutcome {
        verdict: "continue".into(),
        edits: vec![vec!["insert_header".into(), "x".into()]],
        ..Default::default()
    };
    assert!(from_ipc(&bad).is_err());
}

#[test]
fn milter_header_checks_act_on_added_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = dir.path().join("mhc");
    std::fs::write(
        &table,
        "/^X-Spam: yes/ REJECT spam found\n/^X-Drop:/ IGNORE\n",
    )
    .expect("table");
    let c = cfg(&format!(
        "milter_header_checks = regexp:{}\n",
        table.display()
    ));
    let mut o = outcome(
        Verdict::Continue,
        &[("Subject", " hi"), ("X-Drop", " me"), ("X-Keep", " ok")],
        "x\n",
    );
    o.modifications = vec![
        Modification::AddHeader {
            name: "X-Drop".into(),
            value: " me".into(),
        },
        Modification::AddHeader {
            name: "X-Keep".into(),
            value: " ok".into(),
        },
    ];
    let mut b = built("Subject: hi\n\nx\n");
    assert!(matches!(
        apply(&c, &req(), "QID", &mut b, &o),
        Decision::Queue
    ));
    assert_eq!(b.qf.content, b"Subject: hi\nX-Keep: ok\n\nx\n");
    o.modifications.push(Modification::AddHeader {
        name: "X-Spam".into(),
        value: " yes".into(),
    });
    let mut b = built("Subject: hi\n\nx\n");
    match apply(&c, &req(), "QID", &mut b, &o) {
        Decision::Refuse(f) => assert_eq!(f.reason, "5.7.1 spam found"),
        d => panic!("{d:?}"),
    }
}

#[test]
fn which_mail_non_smtpd_milters_see() {
    let with = |attrs: &[(&str, &str)], flags: u32| {
        let mut r = req();
        r.flags = flags;
        r.attrs = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        non_smtp(&r)
    };
    assert!(with(&[("origin_uid", "1000")], 0));
    assert!(with(&[("protocol", "QMQP")], 0));
    assert!(!with(&[("protocol", "ESMTP")], 0));
    assert!(!with(&[], 0)); // local's forwarding
    assert!(!with(&[("origin_uid", "0")], cleanup_flags::BOUNCE));
}
