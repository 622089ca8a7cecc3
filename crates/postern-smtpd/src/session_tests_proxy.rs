//! In-process session tests for the before-queue proxy filter (`smtpd_proxy_filter`): a
//! scripted filter on a loopback TCP port answers each command with the next scripted
//! reply; the client's replies and what the filter received are checked. Postfix's rules:
//! a refused greeting or EHLO and an unexpected 2xx/3xx are `451 4.3.0 Error: queue file
//! write error`; 4xx/5xx replies to MAIL, RCPT and DATA are relayed; the reply to the
//! final `.` is the client's, verbatim; cleanup is never asked.

use super::*;

const FAKE: &str = "451 4.3.0 Error: queue file write error";

/// A filter that answers the greeting and then one command per reply of `script`, in
/// order (DATA's content is read up to the final `.` and answered by the next reply);
/// returns its `host:port` and the lines it received.
async fn filter(script: &[&str]) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script: Vec<String> = script.iter().map(|s| s.to_string()).collect();
    let log = seen.clone();
    tokio::spawn(async move {
        let Ok((s, _)) = listener.accept().await else {
            return;
        };
        let (rd, mut wr) = tokio::io::split(s);
        let mut rd = BufReader::new(rd);
        let mut replies = script.into_iter();
        let Some(greeting) = replies.next() else {
            return;
        };
        let _ignored = wr.write_all(format!("{greeting}\r\n").as_bytes()).await;
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end().to_string();
            log.lock().expect("lock").push(line.clone());
            if in_data && line != "." {
                continue;
            }
            let Some(r) = replies.next() else {
                return;
            };
            in_data = r.starts_with("354");
            let _ignored = wr.write_all(format!("{r}\r\n").as_bytes()).await;
        }
    });
    (addr.to_string(), seen)
}

async fn harness(filter_addr: &str) -> Harness {
    Harness::new(&format!(
        "smtpd_proxy_filter = {filter_addr}\nsmtpd_proxy_timeout = 5s"
    ))
    .await
}

#[tokio::test]
async fn accepted_through_the_filter_not_cleanup() {
    let (addr, seen) = filter(&[
        "220 f ESMTP",
        "250-f\r\n250 XFORWARD NAME ADDR HELO",
        "250 ok xforward",
        "250 ok mail",
        "250 ok rcpt",
        "354 go",
        "250 2.0.0 Ok: queued as FILTERED",
    ])
    .await;
    let h = harness(&addr).await;
    let mut steps = open_txn();
    steps.extend([l("DATA"), l(MSG), l("QUIT")]);
    let out = h.replies(&steps).await;
    assert_eq!(
        out[1..],
        [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: queued as FILTERED",
            "221 2.0.0 Bye",
        ]
    );
    assert!(
        h.queued.lock().expect("lock").is_empty(),
        "cleanup not used"
    );
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen[0], "EHLO mx.test.example",
        "smtpd_proxy_ehlo = $myhostname"
    );
    assert_eq!(
        seen[1],
        "XFORWARD NAME=localhost ADDR=[UNAVAILABLE] HELO=c.example"
    );
    assert_eq!(
        seen[2..5],
        [
            "MAIL FROM:<s@x.example>",
            "RCPT TO:<user@mx.test.example>",
            "DATA"
        ]
    );
    assert!(
        seen[5].starts_with("Received: from c.example (localhost [127.0.0.1])"),
        "{seen:?}"
    );
    assert!(seen.contains(&"Subject: t".to_string()) && seen.contains(&"body".to_string()));
    let dot = seen.iter().position(|l| l == ".").expect("final dot");
    assert_eq!(seen[dot + 1..], ["QUIT"], "one final dot, then QUIT");
}

#[tokio::test]
async fn filter_refusals_relayed_misbehaviour_is_451() {
    // A refused greeting: the proxy's fault, not the client's.
    let (addr, _) = filter(&["554 5.3.2 go away"]).await;
    let out = harness(&addr).await.replies(&open_txn()).await;
    assert_eq!(out[1], FAKE);
    // MAIL refused by the filter: relayed.
    let (addr, _) = filter(&["220 f", "250 f", "550 5.7.1 sender refused by filter"]).await;
    let out = harness(&addr).await.replies(&open_txn()).await;
    assert_eq!(out[1], "550 5.7.1 sender refused by filter");
    // An unexpected 3xx to RCPT is not passed through; a 4xx to DATA is.
    let (addr, _) = filter(&["220 f", "250 f", "250 ok", "354 what"]).await;
    let out = harness(&addr).await.replies(&open_txn()).await;
    assert_eq!(out[2], FAKE);
    let (addr, _) = filter(&["220 f", "250 f", "250 ok", "250 ok", "451 4.3.2 busy"]).await;
    let mut steps = open_txn();
    steps.push(l("DATA"));
    let out = harness(&addr).await.replies(&steps).await;
    assert_eq!(out[2..], ["250 2.1.5 Ok", "451 4.3.2 busy"]);
}
