//! Tests of the whole message transformation, with tables from main.cf text.

use super::*;
use postern_ipc::proto::Recipient;

fn settings() -> Settings {
    Settings {
        myhostname: "mx.example.org".into(),
        myorigin: "example.org".into(),
        mail_name: "Postfix".into(),
        message_size_limit: 1000,
        header_size_limit: 102400,
        header_address_token_limit: 10240,
        hopcount_limit: 3,
        duplicate_filter_limit: 1000,
        always_add_missing_headers: false,
        undisclosed_recipients_header: String::new(),
    }
}

fn req(content: &str) -> CleanupRequest {
    CleanupRequest {
        sender: "joe".into(),
        recipients: vec![Recipient::new("ann"), Recipient::new("ann@example.org")],
        attrs: vec![
            ("rewrite_context".into(), "local".into()),
            ("origin_uid".into(), "1000".into()),
        ],
        content: content.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn now() -> Now {
    Now {
        secs: 1_795_000_000,
        offset: 0,
        zone: "UTC".into(),
    }
}

fn tables(main_cf: &str) -> Tables {
    let text = format!(
        "myorigin = example.org\nmydomain = example.org\nmydestination = example.org, localhost\n{main_cf}"
    );
    let cfg = postern_config::Config::new(postern_config::parse_main_cf(&text).unwrap());
    let t = Tables::from_config(&cfg);
    assert!(t.open_errors.is_empty(), "{:?}", t.open_errors);
    t
}

fn bt(r: &CleanupRequest, t: &Tables) -> (Result<Built, Refusal>, Trail) {
    let mut trail = Trail::default();
    let out = build(r, &settings(), t, "ABC123", &now(), &mut trail);
    (out, trail)
}

fn b(r: &CleanupRequest) -> Result<QueueFile, Refusal> {
    bt(r, &tables("")).0.map(|b| b.qf)
}

fn rcpts(q: &QueueFile) -> Vec<&str> {
    q.recipients.iter().map(|r| r.address.as_str()).collect()
}

#[test]
fn adds_missing_headers_and_qualifies() {
    let q = b(&req("Subject: hi\nReturn-Path: <evil>\n\nbody\n")).unwrap();
    assert_eq!(q.sender, "joe@example.org");
    assert_eq!(
        q.recipients.len(),
        1,
        "duplicate after qualification is dropped"
    );
    let text = String::from_utf8(q.content).unwrap();
    assert!(
        text.starts_with("Received: by mx.example.org (Postfix, from userid 1000)\n\tid ABC123; ")
    );
    for h in [
        "Date: ",
        "Message-Id: <",
        ".ABC123@mx.example.org>",
        "From: joe@example.org",
    ] {
        assert!(text.contains(h), "missing {h} in {text}");
    }
    // undisclosed_recipients_header is empty by default (Postfix 3.x).
    assert!(!text.contains("To:"), "{text}");
    assert!(!text.contains("Return-Path"));
    assert!(text.ends_with("\n\nbody\n"));
    // Postfix's order and date format: Message-Id, then Date with a padded day
    // and the zone comment (1_795_000_000 is Wed, 18 Nov 2026 11:06:40 UTC).
    let mid = text.find("\nMessage-Id: <20261118110640.ABC123@mx.example.org>\n");
    let date = text.find("\nDate: Wed, 18 Nov 2026 11:06:40 +0000 (UTC)\n");
    assert!(mid.is_some() && date.is_some() && mid < date, "{text}");
    assert!(
        text.contains("; Wed, 18 Nov 2026 11:06:40 +0000 (UTC)\n"),
        "{text}"
    );
}

#[test]
fn undisclosed_recipients_header_when_configured() {
    let mut s = settings();
    s.undisclosed_recipients_header = "To: undisclosed-recipients:;".into();
    let mut trail = Trail::default();
    let t = tables("");
    let built = build(
        &req("Subject: x\n\nb\n"),
        &s,
        &t,
        "ABC123",
        &now(),
        &mut trail,
    );
    let text = String::from_utf8(built.unwrap().qf.content).unwrap();
    assert!(text.contains("\nTo: undisclosed-recipients:;\n"), "{text}");
    let built = build(&req("Cc: a@b\n\nb\n"), &s, &t, "ABC123", &now(), &mut trail);
    let text = String::from_utf8(built.unwrap().qf.content).unwrap();
    assert!(!text.contains("undisclosed"), "{text}");
}

#[test]
fn resent_headers_and_full_name() {
    let mut r = req("Resent-From: r@example.org\nSubject: x\n\nb\n");
    r.fullname = "Joe User".into();
    let text = String::from_utf8(b(&r).unwrap().content).unwrap();
    for h in ["\nResent-Message-Id: <", "\nResent-Date: "] {
        assert!(text.contains(h), "missing {h:?}: {text}");
    }
    assert!(
        !text.contains("\nDate:") && !text.contains("\nMessage-Id:"),
        "{text}"
    );
    let mut r = req("Subject: x\n\nb\n");
    r.fullname = "Joe User".into();
    let text = String::from_utf8(b(&r).unwrap().content).unwrap();
    assert!(
        text.contains("\nFrom: Joe User <joe@example.org>\n"),
        "{text}"
    );
    r.fullname = "Joe (the) User".into();
    let text = String::from_utf8(b(&r).unwrap().content).unwrap();
    assert!(
        text.contains("\nFrom: \"Joe (the) User\" <joe@example.org>\n"),
        "{text}"
    );
}

#[test]
fn normalisation_and_header_only_messages() {
    // Only a header: no empty line is added; a big header block is kept.
    let text = String::from_utf8(b(&req("Subject: x\nFrom: a@b")).unwrap().content).unwrap();
    assert!(!text.contains("\n\n"), "{text}");
    let many: String = (0..3000)
        .map(|i| format!("X-{i}: {}\n", "v".repeat(60)))
        .collect();
    let mut s = settings();
    s.message_size_limit = 0;
    let mut trail = Trail::default();
    let built = build(
        &req(&format!("{many}\nbody\n")),
        &s,
        &tables(""),
        "ABC123",
        &now(),
        &mut trail,
    );
    let text = String::from_utf8(built.unwrap().qf.content).unwrap();
    assert!(text.contains(&many) && text.ends_with("\n\nbody\n"));
    // A leading From_ line becomes a header; the headers after it stay headers.
    let text = String::from_utf8(
        b(&req(
            "From a@b Sat Dec  5 10:00:00 2026\nSubject : s\n\nb\n",
        ))
        .unwrap()
        .content,
    )
    .unwrap();
    assert!(
        text.contains("\nX-Mailbox-Line: From a@b Sat Dec  5 10:00:00 2026\nSubject: s\n"),
        "{text}"
    );
}

#[test]
fn extracts_recipients_and_hides_bcc() {
    let mut r = req("To: A <a@x.org>, b\nBcc: c@y.org\nSubject: s\n\nb\n");
    r.recipients.clear();
    r.flags = cleanup_flags::EXTRACT_RCPTS;
    let q = b(&r).unwrap();
    assert_eq!(rcpts(&q), ["a@x.org", "b@example.org", "c@y.org"]);
    let text = String::from_utf8_lossy(&q.content);
    assert!(!text.contains("Bcc"));
    // Header addresses are qualified in the local context.
    assert!(text.contains("To: A <a@x.org>, b@example.org\n"), "{text}");
    // Bcc and Resent-Bcc are dropped from every message, as Postfix does.
    let mut r = req("To: a@x.org\nBcc: c@y.org\nResent-Bcc: d@y.org\n\nb\n");
    r.attrs[0].1 = "remote".into();
    let text = String::from_utf8(b(&r).unwrap().content).unwrap();
    assert!(!text.contains("Bcc"), "{text}");
}

#[test]
fn limits() {
    let big = req(&"x".repeat(2000));
    assert_eq!(
        check(&big, &settings()).unwrap_err().status,
        CleanupStatus::TooBig
    );
    let loop_ = req("Received: a\nReceived: b\nDelivered-To: c\nReceived: d\n\nx\n");
    assert_eq!(
        check(&loop_, &settings()).unwrap_err().status,
        CleanupStatus::Hops
    );
    let mut none = req("Subject: x\n\n");
    none.recipients.clear();
    assert_eq!(b(&none).unwrap_err().status, CleanupStatus::NoRecipients);
}

#[test]
fn canonical_masquerade_virtual_and_bcc() {
    let t = tables(
        "canonical_maps = inline:{ joe@example.org=Joe.Doe@example.org }\n\
         recipient_canonical_maps = inline:{ @old.example=@new.example }\n\
         masquerade_domains = example.net\n\
         virtual_alias_maps = inline:{ {team@example.org=ann@example.org, bob@host.example.net} }\n\
         recipient_delimiter = +\n\
         sender_bcc_maps = inline:{ @example.org=archive@example.org }\n\
         always_bcc = audit@example.org\n",
    );
    let mut r = req(
        "From: Joe <joe>\nTo: x@old.example, Team <team@example.org>\nCc: u@mail.example.net (U)\n\nhi\n",
    );
    r.recipients = vec![
        Recipient::new("x@old.example"),
        Recipient::new("team+a@example.org"),
    ];
    let (out, trail) = bt(&r, &t);
    let q = out.unwrap().qf;
    assert!(trail.fail.is_none());
    assert_eq!(q.sender, "Joe.Doe@example.org");
    assert_eq!(
        rcpts(&q),
        [
            "archive@example.org",
            "x@new.example",
            "ann+a@example.org",
            "bob+a@host.example.net",
            "audit@example.org"
        ]
    );
    assert_eq!(q.recipients[0].notify, postern_ipc::proto::notify::NEVER);
    let text = String::from_utf8(q.content).unwrap();
    assert!(text.contains("From: Joe <Joe.Doe@example.org>\n"), "{text}");
    assert!(
        text.contains("To: x@new.example, Team <team@example.org>\n"),
        "{text}"
    );
    assert!(text.contains("Cc: u@example.net (U)\n"), "{text}");
}

#[test]
fn no_address_mappings_flag() {
    let t = tables(
        "canonical_maps = inline:{ joe@example.org=other@example.org }\nalways_bcc = a@example.org\n",
    );
    let mut r = req("From: joe\n\nx\n");
    r.flags = cleanup_flags::NO_ADDRESS_MAPPINGS;
    let q = bt(&r, &t).0.unwrap().qf;
    assert_eq!(q.sender, "joe@example.org");
    assert_eq!(rcpts(&q), ["ann@example.org"]);
}

#[test]
fn header_and_body_checks() {
    let t = tables(
        "header_checks = regexp:{ {/^Subject: hold/ HOLD}, {/^X-Filter:/ FILTER relay:[10.0.0.1]}, {/^X-Redirect:/ REDIRECT boss@example.org}, {/^Subject: prepend/ PREPEND X-Seen: yes} }\n\
         body_checks = regexp:{ {/^secret/ REPLACE [redacted]}, {/^reject me/ REJECT 5.7.0 No thanks} }\n",
    );
    let r = req("Subject: hold this\nSubject: prepend\nX-Filter: 1\n\nsecret stuff\nok\n");
    let (out, trail) = bt(&r, &t);
    let built = out.unwrap();
    assert!(built.verdict.hold);
    assert_eq!(built.qf.attr("filter"), Some("relay:[10.0.0.1]"));
    let text = String::from_utf8(built.qf.content).unwrap();
    assert!(text.contains("X-Seen: yes\nSubject: prepend\n"), "{text}");
    assert!(text.ends_with("\n\n[redacted]\nok\n"), "{text}");
    assert!(trail.logs.iter().any(|l| l.1 == "ABC123: hold: header Subject: hold this from local; from=<joe@example.org> to=<ann@example.org>"));

    let (out, _) = bt(&req("X-Redirect: 1\n\nx\n"), &t);
    assert_eq!(rcpts(&out.unwrap().qf), ["boss@example.org"]);

    let (_, trail) = bt(&req("Subject: x\n\nreject me\n"), &t);
    let f = trail.fail.unwrap();
    assert_eq!(
        (f.status, f.reason.as_str()),
        (CleanupStatus::Reject, "5.7.0 No thanks")
    );

    let mut r = req("Subject: hold\n\nx\n");
    r.flags = cleanup_flags::NO_HEADER_BODY_CHECKS;
    assert!(!bt(&r, &t).0.unwrap().verdict.hold);
}

#[test]
fn remote_header_context() {
    let t = tables("local_header_rewrite_clients = permit_mynetworks\nmynetworks = 10.0.0.0/8\n");
    let mut r = req("To: bare\n\nx\n");
    r.attrs = vec![
        ("rewrite_context".into(), "remote".into()),
        ("client_address".into(), "192.0.2.1".into()),
        ("client_name".into(), "unknown".into()),
    ];
    let text = String::from_utf8(bt(&r, &t).0.unwrap().qf.content).unwrap();
    assert!(text.contains("To: bare\n"), "{text}");
    r.attrs[1].1 = "10.1.2.3".into();
    let text = String::from_utf8(bt(&r, &t).0.unwrap().qf.content).unwrap();
    assert!(text.contains("To: bare@example.org\n"), "{text}");
}

#[test]
fn missing_headers_for_local_header_clients_only() {
    let t = tables("");
    let mut r = req("Subject: x\n\nx\n");
    r.attrs = vec![
        ("rewrite_context".into(), "remote".into()),
        ("client_address".into(), "192.0.2.1".into()),
        ("client_name".into(), "unknown".into()),
    ];
    let text = String::from_utf8(bt(&r, &t).0.unwrap().qf.content).unwrap();
    for h in ["Date:", "Message-Id:", "From:", "To:"] {
        assert!(!text.contains(h), "{h} added for a remote client: {text}");
    }
    // permit_inet_interfaces (the default) matches the host's own addresses only:
    // 127.0.0.2 is a loopback address but no interface has it.
    r.attrs[1].1 = "127.0.0.2".into();
    let text = String::from_utf8(bt(&r, &t).0.unwrap().qf.content).unwrap();
    assert!(!text.contains("Message-Id:"), "{text}");
    r.attrs[1].1 = "127.0.0.1".into();
    let text = String::from_utf8(bt(&r, &t).0.unwrap().qf.content).unwrap();
    for h in ["Date: ", "Message-Id: <", "From: joe@example.org"] {
        assert!(text.contains(h), "missing {h}: {text}");
    }
    r.attrs[1].1 = "192.0.2.1".into();
    let mut s = settings();
    s.always_add_missing_headers = true;
    let mut trail = Trail::default();
    let built = build(&r, &s, &t, "ABC123", &now(), &mut trail).unwrap();
    let text = String::from_utf8(built.qf.content).unwrap();
    assert!(
        text.contains("Message-Id: <") && text.contains("Date: "),
        "{text}"
    );
}

#[test]
fn broken_table_is_reported() {
    let text = "canonical_maps = texthash:/nonexistent/file\n";
    let cfg = postern_config::Config::new(postern_config::parse_main_cf(text).unwrap());
    assert_eq!(Tables::from_config(&cfg).open_errors.len(), 1);
    let t = tables("virtual_alias_maps = fail:x\n");
    let (_, trail) = bt(&req("S: x\n\nx\n"), &t);
    let f = trail.fail.unwrap();
    assert_eq!(
        (f.status, f.reason.as_str()),
        (CleanupStatus::Defer, "4.3.0 Error: queue file write error")
    );
}
