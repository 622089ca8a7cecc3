//! In-process session tests, error paths: unknown and non-SMTP commands, the error and
//! junk limits, size limits, pipelining, NUL and bare CR, access denial, timeouts,
//! cleanup failures, BDAT, and the commands that need services or TLS.

use super::*;

#[tokio::test]
async fn unknown_commands_are_500() {
    let h = Harness::new("").await;
    let out = h
        .replies(&[
            l("EHLO c.example"),
            l("FOO"),
            l("EXPN user"),
            l("HELP"),
            l("TURN"),
            l("LHLO c.example"),
            l(""),
            l(" NOOP"),
            l("NOOP extra words"),
        ])
        .await;
    assert_eq!(
        out[1..],
        [
            "500 5.5.2 Error: command not recognized", // oracle
            "500 5.5.2 Error: command not recognized",
            "500 5.5.2 Error: command not recognized",
            "500 5.5.2 Error: command not recognized",
            "500 5.5.2 Error: command not recognized",
            "500 5.5.2 Error: bad syntax",
            "250 2.0.0 Ok",
            "250 2.0.0 Ok",
        ]
    );
}

const GOODBYE: &str = "221 2.7.0 Error: I can break rules, too. Goodbye.";

#[tokio::test]
async fn non_smtp_lines_end_the_session() {
    let h = Harness::new("").await;
    for line in [
        "Subject: hello",
        "From: someone@example.com",
        "GET / HTTP/1.0",
        "post /form HTTP/1.1",
        "CONNECT mx.example:25 HTTP/1.0",
        "123 abc",
        "<html>",
        "http://example.com/",
    ] {
        let out = h.replies(&[l("EHLO c.example"), l(line), l("NOOP")]).await;
        assert_eq!(out[1..], [GOODBYE, "<closed>"], "{line}");
    }
    // Not header-like: no colon right after the first word.
    let out = h.replies(&[l("Subject :x"), l("NOOP")]).await;
    assert_eq!(
        out,
        ["500 5.5.2 Error: command not recognized", "250 2.0.0 Ok"]
    );
}

#[tokio::test]
async fn forbidden_commands_follow_the_parameter() {
    let h = Harness::new("smtpd_forbidden_commands = FOO, inline:{ bar=x }").await;
    for line in ["foo x", "BAR", "Subject: x"] {
        let out = h.replies(&[l(line), l("NOOP")]).await;
        assert_eq!(out, [GOODBYE, "<closed>"], "{line}");
    }
    let out = h.replies(&[l("GET /"), l("123"), l("NOOP")]).await;
    assert_eq!(
        out,
        [
            "500 5.5.2 Error: command not recognized",
            "500 5.5.2 Error: command not recognized",
            "250 2.0.0 Ok",
        ]
    );
}

#[tokio::test]
async fn non_smtp_after_a_refused_data_and_after_a_short_bdat_chunk() {
    let h = Harness::new("").await;
    let out = h
        .replies(&[
            l("EHLO c.example"),
            l("MAIL FROM:<s@x.example>"),
            l("RCPT TO:<nosuch@mx.test.example>"),
            l("DATA"),
            l("Subject: x"),
            l("NOOP"),
        ])
        .await;
    assert_eq!(
        out[3..],
        ["554 5.5.1 Error: no valid recipients", GOODBYE, "<closed>"]
    );
    let mut steps = open_txn();
    steps.extend([raw(b"BDAT 3\r\nabcSubject: x\r\n", 2), l("NOOP")]);
    let out = h.replies(&steps).await;
    assert_eq!(out[3..], ["250 2.0.0 Ok: 3 bytes", GOODBYE, "<closed>"]);
    let mut steps = open_txn();
    steps.extend([raw(b"BDAT 3\r\nabcdef\r\n", 2), l("NOOP")]);
    let out = h.replies(&steps).await;
    assert_eq!(
        out[3..],
        [
            "250 2.0.0 Ok: 3 bytes",
            "500 5.5.2 Error: command not recognized",
            "250 2.0.0 Ok",
        ]
    );
}

const LIMITS: &str =
    "smtpd_hard_error_limit = 3\nsmtpd_soft_error_limit = 2\nsmtpd_junk_command_limit = 2";
const TOO_MANY: &str = "421 4.7.0 mx.test.example Error: too many errors";

#[tokio::test]
async fn hard_error_limit_answers_the_last_error_then_421() {
    let h = Harness::new(LIMITS).await;
    let out = h
        .replies(&[l("EHLO c.example"), l("FOO"), l("BAR"), l("BAZ"), l("NOOP")])
        .await;
    // oracle: the third error has its reply; the 421 follows without a command.
    assert_eq!(
        out[1..],
        [
            "500 5.5.2 Error: command not recognized",
            "500 5.5.2 Error: command not recognized",
            "500 5.5.2 Error: command not recognized",
            TOO_MANY,
        ]
    );
    let out = h
        .replies(&[
            l("EHLO c.example"),
            l("MAIL"),
            l("RCPT TO:<user@mx.test.example>"),
            l("DATA"),
            l("NOOP"),
            l("NOOP"),
        ])
        .await;
    assert_eq!(
        out[3..],
        ["503 5.5.1 Error: need RCPT command", TOO_MANY, "<closed>"]
    );
}

#[tokio::test]
async fn junk_commands_count_as_errors_past_the_limit() {
    let h = Harness::new(LIMITS).await;
    let junk = ["NOOP", "NOOP", "NOOP", "RSET", "VRFY user"];
    let mut steps = vec![l("EHLO c.example")];
    steps.extend(junk.iter().map(|c| l(c)));
    steps.push(l("NOOP"));
    let out = h.replies(&steps).await;
    // oracle: EHLO is junk too; the 4th, 5th and 6th junk commands are errors.
    assert_eq!(out[5..], ["252 2.0.0 user", TOO_MANY]);
}

#[tokio::test]
async fn a_delivery_resets_the_error_and_junk_counts() {
    let h = Harness::new(LIMITS).await;
    let mut steps = vec![l("EHLO c.example"), l("FOO"), l("BAR"), l("NOOP")];
    steps.extend([
        l("MAIL FROM:<s@x.example>"),
        l("RCPT TO:<user@mx.test.example>"),
        l("DATA"),
        l(MSG),
    ]);
    steps.extend([l("FOO"), l("BAR"), l("NOOP"), l("NOOP"), l("QUIT")]);
    let out = h.replies(&steps).await;
    assert_eq!(out[7], "250 2.0.0 Ok: queued as TESTID");
    assert_eq!(
        out[8..],
        [
            "500 5.5.2 Error: command not recognized",
            "500 5.5.2 Error: command not recognized",
            "250 2.0.0 Ok",
            "250 2.0.0 Ok",
            "221 2.0.0 Bye",
        ]
    );
}

#[tokio::test]
async fn soft_limit_delays_replies() {
    let h = Harness::new("smtpd_soft_error_limit = 1\nsmtpd_error_sleep_time = 1s").await;
    let t0 = std::time::Instant::now();
    let out = h.replies(&[l("FOO"), l("BAR")]).await;
    assert_eq!(out.len(), 2);
    // The first error is answered at once, the second after the sleep.
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn size_limits() {
    let h = Harness::new("").await;
    let big = format!(
        "Subject: big\r\n\r\n{}.",
        format!("{}\r\n", "x".repeat(998)).repeat(110)
    );
    let mut steps = vec![
        l("EHLO c.example"),
        l("MAIL FROM:<s@x.example> SIZE=999999999"),
        l("MAIL FROM:<s@x.example>"),
        l("RSET"),
        l("MAIL FROM:<s@x.example> SIZE=99999999999999999999"),
    ];
    steps.extend(open_txn().into_iter().skip(1));
    steps.extend([l("DATA"), l(&big), l("QUIT")]);
    let out = h.replies(&steps).await;
    assert_eq!(
        out[1..],
        [
            "552 5.3.4 Message size exceeds fixed limit",
            "552 5.3.4 Message size exceeds fixed limit", // oracle: SIZE stays until RSET
            "250 2.0.0 Ok",
            "552 5.3.4 Message size exceeds file system imposed limit", // oracle
            "250 2.1.0 Ok", // oracle: an overflowing SIZE does not stay
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "552 5.3.4 Error: message file too big", // oracle
            "221 2.0.0 Bye",
        ]
    );
    let mut steps = open_txn();
    let mut chunk = b"BDAT 100001 LAST\r\n".to_vec();
    chunk.extend(std::iter::repeat_n(b'x', 100_001));
    steps.extend([raw(&chunk, 1), l("NOOP")]);
    let out = h.replies(&steps).await;
    assert_eq!(
        out[3..],
        ["552 5.3.4 Chunk exceeds message size limit", "250 2.0.0 Ok"]
    );
    assert!(h.queued.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let h = Harness::new("").await;
    let out = h
        .replies(&[
            l("EHLO c.example"),
            raw(
                b"MAIL FROM:<s@x.example>\r\nRCPT TO:<user@mx.test.example>\r\n\
                  RCPT TO:<nosuch@mx.test.example>\r\nDATA\r\n",
                4,
            ),
            l(MSG),
            raw(b"RSET\r\nNOOP\r\nVRFY user\r\nFOO\r\nQUIT\r\n", 5),
        ])
        .await;
    assert_eq!(
        out[1..],
        [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "550 5.1.1 <nosuch@mx.test.example>: Recipient address rejected: User unknown in local recipient table",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: queued as TESTID",
            "250 2.0.0 Ok",
            "250 2.0.0 Ok",
            "252 2.0.0 user",
            "500 5.5.2 Error: command not recognized",
            "221 2.0.0 Bye",
        ]
    );
    assert_eq!(h.queued.lock().expect("lock")[0].recipients.len(), 1);
}

#[tokio::test]
async fn nul_ends_a_command_and_bare_cr_stays_in_it() {
    let h = Harness::new("").await;
    let out = h
        .replies(&[
            l("EHLO c.example"),
            raw(b"NOOP\x00x\r\n", 1),
            raw(b"MAIL FROM:<s@x.example>\x00junk\r\n", 1),
            raw(b"RCPT TO:<us\x00er@mx.test.example>\r\n", 1),
            raw(b"\x00NOOP\r\n", 1),
            raw(b"NO\rOP\r\n", 1),
            raw(b"RCPT TO:<user@x\rexample>\r\n", 1),
        ])
        .await;
    // oracle, each of them.
    assert_eq!(
        out[1..],
        [
            "250 2.0.0 Ok",
            "250 2.1.0 Ok",
            "501 5.1.3 Bad recipient address syntax",
            "500 5.5.2 Error: bad syntax",
            "500 5.5.2 Error: command not recognized",
            "501 5.1.3 Bad recipient address syntax",
        ]
    );
}

#[tokio::test]
async fn bdat_transactions() {
    let h = Harness::new("").await;
    let mut steps = vec![
        l("EHLO c.example"),
        raw(b"BDAT 4 LAST\r\nabcd", 1),
        l("NOOP"),
    ];
    steps.extend(open_txn().into_iter().skip(1));
    steps.extend([
        l("BDAT"),
        l("BDAT x"),
        raw(b"BDAT 12\r\nSubject: b\r\n", 1),
        raw(b"BDAT 6 LAST\r\n\r\nbody", 1),
        l("QUIT"),
    ]);
    let out = h.replies(&steps).await;
    assert_eq!(
        out[1..],
        [
            "503 5.5.1 Error: need RCPT command", // oracle
            "250 2.0.0 Ok",
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "521 5.5.4 Syntax: BDAT count [LAST]",
            "<closed>",
            "<closed>",
            "<closed>",
            "<closed>",
        ]
    );
    let mut steps = open_txn();
    steps.extend([
        raw(b"BDAT 12\r\nSubject: b\r\n", 1),
        raw(b"BDAT 6 LAST\r\n\r\nbody", 1),
        l("QUIT"),
    ]);
    let out = h.replies(&steps).await;
    assert_eq!(
        out[3..],
        [
            "250 2.0.0 Ok: 12 bytes",
            "250 2.0.0 Ok: 20 bytes queued as TESTID", // oracle: lines counted with CRLF
            "221 2.0.0 Bye",
        ]
    );
}

#[tokio::test]
async fn services_and_extensions_that_are_off() {
    let h = Harness::new("").await;
    let out = h
        .replies(&[
            l("EHLO c.example"),
            l("VRFY user"),
            l("VRFY <user@mx.test.example>"),
            l("VRFY nosuch"),
            l("VRFY"),
            l("VRFY a b c"),
            l("ETRN"),
            l("ETRN a b"),
            l("ETRN bad..name"),
            l("ETRN example.com"),
            l("AUTH PLAIN"),
            l("STARTTLS"),
            l("STARTTLS x"),
            l("XCLIENT NAME=x"),
            l("XFORWARD NAME=x"),
        ])
        .await;
    assert_eq!(
        out[1..],
        [
            "252 2.0.0 user",
            "252 2.0.0 <user@mx.test.example>",
            "550 5.1.1 <nosuch>: Recipient address rejected: User unknown in local recipient table",
            "501 5.5.4 Syntax: VRFY address [SMTPUTF8]",
            "501 5.1.3 Bad recipient address syntax", // oracle
            "500 Syntax: ETRN domain",
            "500 Syntax: ETRN domain",
            "501 Error: invalid parameter syntax",
            "458 Unable to queue messages", // no flush service here
            "503 5.5.1 Error: authentication not enabled",
            "502 5.5.1 Error: command not implemented",
            "501 5.5.4 Syntax: STARTTLS",
            "550 5.7.0 Error: insufficient authorization",
            "550 5.7.0 Error: insufficient authorization",
        ]
    );
    let h = Harness::new("disable_vrfy_command = yes").await;
    let out = h.replies(&[l("VRFY user")]).await;
    assert_eq!(out, ["502 5.5.1 VRFY command is disabled"]);
}

#[tokio::test]
async fn access_denied_at_connect() {
    let mut h = Harness::new("smtpd_delay_reject = no\nsmtpd_client_restrictions = reject").await;
    h.addr = Some(IpAddr::from([127, 0, 0, 1]));
    let out = h
        .talk(&[l("EHLO c.example"), l("MAIL FROM:<s@x.example>"), l("QUIT")])
        .await;
    assert_eq!(
        out[0],
        "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied"
    );
    assert_eq!(
        out[1..],
        [
            "503 5.7.0 Error: access denied for localhost[127.0.0.1]",
            "503 5.7.0 Error: access denied for localhost[127.0.0.1]",
            "221 2.0.0 Bye",
        ]
    );
}

#[tokio::test]
async fn timeout_ends_the_session() {
    let h = Harness::new("smtpd_timeout = 1s").await;
    let out = h.replies(&[l("EHLO c.example"), raw(b"NOOP", 1)]).await;
    assert_eq!(out[1], "421 4.4.2 mx.test.example Error: timeout exceeded");
}

#[tokio::test]
async fn cleanup_failures_are_answered_as_postfix() {
    let cases = [
        (None, "451 4.3.0 Error: queue file write error"),
        (
            Some(Answer(CleanupStatus::Reject, "5.7.1 go away")),
            "550 5.7.1 go away",
        ),
        (
            Some(Answer(CleanupStatus::Defer, "4.3.5 try later")),
            "451 4.3.5 try later",
        ),
        (
            Some(Answer(CleanupStatus::TooBig, "")),
            "552 5.3.4 Message size exceeds fixed limit",
        ),
        (
            Some(Answer(CleanupStatus::NoRecipients, "")),
            "554 5.5.1 Error: no valid recipients",
        ),
        (
            Some(Answer(CleanupStatus::Hops, "")),
            "554 5.4.0 Error: too many hops",
        ),
    ];
    for (answer, want) in cases {
        let h = Harness::with_cleanup("", answer).await;
        let mut steps = open_txn();
        steps.extend([l("DATA"), l(MSG), l("NOOP")]);
        let out = h.replies(&steps).await;
        assert_eq!(out[4..], [want, "250 2.0.0 Ok"]);
    }
}

#[tokio::test]
async fn a_long_line_is_truncated_not_fatal() {
    let h = Harness::new("").await;
    let long = format!("EHLO {}", "x".repeat(1 << 16));
    let out = h.replies(&[l(&long), l("NOOP")]).await;
    assert!(out[0].starts_with("250-mx.test.example"), "{}", out[0]);
    assert_eq!(out[1], "250 2.0.0 Ok");
}

#[tokio::test]
async fn xclient_and_xforward_from_authorized_clients() {
    let mut h = Harness::new(
        "smtpd_authorized_xclient_hosts = 127.0.0.0/8\n\
         smtpd_authorized_xforward_hosts = 127.0.0.0/8",
    )
    .await;
    h.addr = Some(IpAddr::from([127, 0, 0, 1]));
    let out = h
        .replies(&[
            l("EHLO c.example"),
            l("XCLIENT FOO=bar"),
            l("XCLIENT ADDR=999.1.1.1"),
            l("XCLIENT"),
            l("XCLIENT NAME=client.example ADDR=192.0.2.9"),
            l("EHLO c.example"),
            l("XFORWARD NAME=up.example ADDR=192.0.2.7"),
            l("MAIL FROM:<s@x.example>"),
            l("RCPT TO:<user@mx.test.example>"),
            l("RCPT TO:<u@elsewhere.example>"),
        ])
        .await;
    assert!(out[0].contains("\n250-XCLIENT NAME ADDR"), "{}", out[0]);
    assert_eq!(
        out[1..5],
        [
            "501 5.5.4 Bad XCLIENT attribute name: FOO",
            "501 5.5.4 Bad ADDR syntax: 999.1.1.1",
            "501 5.5.4 Syntax: XCLIENT attribute=value...",
            BANNER,
        ]
    );
    assert_eq!(
        out[6..],
        [
            "250 2.0.0 Ok",
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            // Now 192.0.2.9: outside mynetworks, so no relaying.
            "454 4.7.1 <u@elsewhere.example>: Relay access denied",
        ]
    );
}
