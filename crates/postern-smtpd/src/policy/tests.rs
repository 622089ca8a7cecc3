//! Unit tests: each word, each stage, evaluation order, access actions, policy service.
//! Reply texts marked "oracle" were compared with Postfix 3.7.11.

use super::*;
use std::io::Write;

pub(super) fn policy(main_cf: &str) -> Policy {
    let main = postern_config::parse_main_cf(main_cf).expect("main.cf");
    let mut cfg = postern_config::Config::new(main);
    cfg.set_default("myhostname", "mx.example.com");
    cfg.set_default("mydomain", "example.com");
    Policy::from_config(&cfg).expect("policy")
}

pub(super) fn facts(rcpt: &str) -> Facts {
    Facts {
        client_addr: Some("192.0.2.9".parse().unwrap()),
        client_name: "client.example".into(),
        reverse_client_name: "client.example".into(),
        helo: Some("client.example".into()),
        protocol: "ESMTP".into(),
        sender: Some("s@example.org".into()),
        recipient: Some(rcpt.into()),
        ..Facts::default()
    }
}

pub(super) fn text(v: &Verdict) -> Option<String> {
    v.reject.as_ref().map(|r| r.encode().trim_end().to_string())
}

const BASE: &str = "compatibility_level = 3.6\nmydestination = localhost\nrelay_domains =\n\
    mynetworks = 10.0.0.0/8\nlocal_recipient_maps =\nsmtpd_relay_restrictions = permit\n";

/// A removed-on-drop table file.
struct TempTable(std::path::PathBuf);

impl Drop for TempTable {
    fn drop(&mut self) {
        // Best effort: a leftover file in the temp directory is harmless.
        let _removed = std::fs::remove_file(&self.0);
    }
}

fn table(lines: &str) -> (TempTable, String) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("postern-policy-{}-{n}", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let spec = format!("texthash:{}", path.display());
    (TempTable(path), spec)
}

async fn rcpt(p: &Policy, r: &str) -> Option<String> {
    text(&p.check(Stage::Rcpt, &facts(r)).await)
}

#[tokio::test]
async fn safety_rule() {
    let main = postern_config::parse_main_cf(
        "compatibility_level = 3.6\nsmtpd_relay_restrictions =\nsmtpd_recipient_restrictions = permit_mynetworks\n",
    )
    .unwrap();
    let err = Policy::from_config(&postern_config::Config::new(main)).unwrap_err();
    assert!(err.0.starts_with("in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at least one working instance of: reject_unauth_destination"));
}

#[tokio::test]
async fn generic_words() {
    let cases = [
        (
            "reject",
            "554 5.7.1 <u@localhost>: Recipient address rejected: Access denied",
        ),
        (
            "defer",
            "450 4.3.2 <u@localhost>: Recipient address rejected: Try again later",
        ),
        (
            "defer_if_permit",
            "450 4.7.0 <u@localhost>: Recipient address rejected: defer_if_permit requested",
        ),
        (
            "defer_if_permit, permit",
            "450 4.7.0 <u@localhost>: Recipient address rejected: defer_if_permit requested",
        ),
        (
            "defer_if_reject, reject",
            "450 4.7.0 <u@localhost>: Recipient address rejected: defer_if_reject requested",
        ),
        (
            "defer_if_reject, defer_if_permit, reject",
            "450 4.7.0 <u@localhost>: Recipient address rejected: defer_if_permit requested",
        ),
        (
            "defer_if_permit, reject",
            "554 5.7.1 <u@localhost>: Recipient address rejected: Access denied",
        ),
        (
            "reject_non_fqdn_recipient",
            "504 5.5.2 <u@localhost>: Recipient address rejected: need fully-qualified address",
        ),
        ("bogus_word", "451 4.3.5 Server configuration error"),
    ];
    for (list, want) in cases {
        let p = policy(&format!(
            "{BASE}smtpd_recipient_restrictions = reject_unauth_destination, {list}\n"
        ));
        assert_eq!(
            rcpt(&p, "u@localhost").await.as_deref(),
            Some(want),
            "{list}"
        ); // oracle
    }
    let p = policy(&format!(
        "{BASE}smtpd_recipient_restrictions = reject_unauth_destination, permit, reject\n"
    ));
    assert_eq!(rcpt(&p, "u@localhost").await, None);
}

#[tokio::test]
async fn warn_if_reject_logs() {
    let p = policy(&format!(
        "{BASE}smtpd_recipient_restrictions = warn_if_reject reject_non_fqdn_recipient, reject_unauth_destination\n"
    ));
    let v = p.check(Stage::Rcpt, &facts("u@localhost")).await;
    assert_eq!(v.reject, None);
    assert_eq!(v.log, vec!["reject_warning: RCPT from client.example[192.0.2.9]: 504 5.5.2 <u@localhost>: Recipient address rejected: need fully-qualified address; from=<s@example.org> to=<u@localhost> proto=ESMTP helo=<client.example>".to_string()]);
}

#[tokio::test]
async fn helo_and_sender_words() {
    let p = policy(&format!(
        "{BASE}smtpd_recipient_restrictions = reject_unauth_destination\nsmtpd_helo_restrictions = reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname\nsmtpd_sender_restrictions = reject_non_fqdn_sender\n"
    ));
    let mut f = facts("u@localhost");
    f.helo = Some("c".into());
    assert_eq!(
        text(&p.check(Stage::Rcpt, &f).await).unwrap(),
        "504 5.5.2 <c>: Helo command rejected: need fully-qualified hostname"
    );
    f.helo = Some("bad..name".into());
    assert_eq!(
        text(&p.check(Stage::Rcpt, &f).await).unwrap(),
        "501 5.5.2 <bad..name>: Helo command rejected: Invalid name"
    );
    f.helo = Some("[192.0.2.1]".into());
    f.sender = Some("a".into());
    assert_eq!(
        text(&p.check(Stage::Rcpt, &f).await).unwrap(),
        "504 5.5.2 <a>: Sender address rejected: need fully-qualified address"
    );
    f.sender = Some(String::new());
    assert_eq!(text(&p.check(Stage::Rcpt, &f).await), None);
}

#[tokio::test]
async fn delay_reject_and_stages() {
    let lists = "smtpd_client_restrictions = reject\nsmtpd_recipient_restrictions = reject_unauth_destination\n";
    let delayed = policy(&format!("{BASE}{lists}"));
    let f = facts("u@localhost");
    assert_eq!(delayed.check(Stage::Connect, &f).await.reject, None);
    assert_eq!(delayed.check(Stage::Mail, &f).await.reject, None);
    let want = "554 5.7.1 <client.example[192.0.2.9]>: Client host rejected: Access denied"; // oracle
    assert_eq!(
        text(&delayed.check(Stage::Rcpt, &f).await).as_deref(),
        Some(want)
    );
    let now = policy(&format!("{BASE}{lists}smtpd_delay_reject = no\n"));
    assert_eq!(
        text(&now.check(Stage::Connect, &f).await).as_deref(),
        Some(want)
    );
    assert_eq!(now.check(Stage::Rcpt, &f).await.reject, None);

    let p = policy(&format!(
        "{BASE}smtpd_recipient_restrictions = reject_unauth_destination\nsmtpd_data_restrictions = reject\nsmtpd_end_of_data_restrictions = reject\nsmtpd_etrn_restrictions = reject\nsmtpd_helo_restrictions = reject\nsmtpd_sender_restrictions = defer\nsmtpd_delay_reject = no\n"
    ));
    assert_eq!(
        text(&p.check(Stage::Data, &f).await).unwrap(),
        "554 5.7.1 <DATA>: Data command rejected: Access denied"
    );
    assert_eq!(
        text(&p.check(Stage::EndOfData, &f).await).unwrap(),
        "554 5.7.1 <END-OF-MESSAGE>: End-of-data rejected: Access denied"
    );
    assert_eq!(
        text(&p.check(Stage::Helo, &f).await).unwrap(),
        "554 5.7.1 <client.example>: Helo command rejected: Access denied"
    );
    assert_eq!(
        text(&p.check(Stage::Mail, &f).await).unwrap(),
        "450 4.3.2 <s@example.org>: Sender address rejected: Try again later"
    );
    let mut e = f.clone();
    e.etrn_domain = Some("@x".into());
    assert_eq!(
        text(&p.check(Stage::Etrn, &e).await).unwrap(),
        "554 5.7.1 <x>: Etrn command rejected: Access denied"
    );
}

#[tokio::test]
async fn permit_ends_only_its_list() {
    let p = policy(&format!(
        "{BASE}smtpd_client_restrictions = permit\nsmtpd_recipient_restrictions = reject_unauth_destination, reject\n"
    ));
    assert!(
        rcpt(&p, "u@localhost")
            .await
            .unwrap()
            .contains("Access denied")
    );
    // The relay list runs before the recipient list; a reject in it ends everything.
    let p = policy(&format!(
        "{BASE}smtpd_relay_restrictions = reject_unauth_destination\nsmtpd_recipient_restrictions = defer\n"
    ));
    assert_eq!(
        rcpt(&p, "u@remote.example").await.unwrap(),
        "554 5.7.1 <u@remote.example>: Relay access denied"
    );
    let p = policy(&format!(
        "{BASE}smtpd_relay_restrictions = reject_unauth_destination\nsmtpd_recipient_restrictions = defer\nsmtpd_relay_before_recipient_restrictions = no\n"
    ));
    assert!(
        rcpt(&p, "u@remote.example")
            .await
            .unwrap()
            .starts_with("450 4.3.2")
    );
}

#[tokio::test]
async fn mynetworks_and_sasl() {
    let p = policy(&format!(
        "{BASE}smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination\n"
    ));
    let mut f = facts("u@remote.example");
    assert!(p.check(Stage::Rcpt, &f).await.reject.is_some());
    f.client_addr = Some("10.1.2.3".parse().unwrap());
    assert_eq!(p.check(Stage::Rcpt, &f).await.reject, None);
    f.client_addr = Some("192.0.2.9".parse().unwrap());
    f.sasl_username = Some("joe".into());
    assert_eq!(p.check(Stage::Rcpt, &f).await.reject, None);
}

#[tokio::test]
async fn restriction_classes() {
    let p = policy(&format!(
        "{BASE}smtpd_restriction_classes = strict, loop\nstrict = reject_non_fqdn_recipient, permit\nloop = loop\nsmtpd_recipient_restrictions = reject_unauth_destination, strict, reject\n"
    ));
    assert!(
        rcpt(&p, "u@localhost")
            .await
            .unwrap()
            .contains("need fully-qualified address")
    );
    assert_eq!(rcpt(&p, "u@[127.0.0.1]").await, None);
    let p = policy(&format!(
        "{BASE}smtpd_restriction_classes = loop\nloop = loop\nsmtpd_recipient_restrictions = reject_unauth_destination, loop\n"
    ));
    assert_eq!(
        rcpt(&p, "u@localhost").await.unwrap(),
        "451 4.3.5 Server configuration error"
    );
}

#[tokio::test]
async fn access_actions() {
    let (_d, spec) = table(
        "spam.example REJECT\nbad.example REJECT go away\nslow.example DEFER\ncode.example 550 5.7.9 custom text\nwarn.example WARN hmm\ndip.example DEFER_IF_PERMIT dip\ndir.example DEFER_IF_REJECT\nhold.example HOLD\nok.example OK\nclass.example strict\ndisc.example DISCARD\nredir.example REDIRECT x@y.example\nprep.example PREPEND X-A: b\nbcc.example BCC b@c.example\nfilt.example FILTER smtp:[127.0.0.1]:25\nbadf.example FILTER nocolon\nlist.example reject_non_fqdn_sender, permit\n",
    );
    let p = policy(&format!(
        "{BASE}smtpd_restriction_classes = strict\nstrict = reject\nsmtpd_recipient_restrictions = check_recipient_access {spec}, reject_unauth_destination\n"
    ));
    let cases = [
        (
            "a@spam.example",
            Some("554 5.7.1 <a@spam.example>: Recipient address rejected: Access denied"),
        ),
        (
            "a@bad.example",
            Some("554 5.7.1 <a@bad.example>: Recipient address rejected: go away"),
        ),
        (
            "a@slow.example",
            Some("450 4.7.1 <a@slow.example>: Recipient address rejected: Access denied"),
        ),
        (
            "a@code.example",
            Some("550 5.7.9 <a@code.example>: Recipient address rejected: custom text"),
        ),
        (
            "a@warn.example",
            Some("554 5.7.1 <a@warn.example>: Relay access denied"),
        ),
        (
            "a@dip.example",
            Some("554 5.7.1 <a@dip.example>: Relay access denied"),
        ),
        (
            "a@dir.example",
            Some("450 4.7.1 <a@dir.example>: Recipient address rejected: Service unavailable"),
        ),
        (
            "a@class.example",
            Some("554 5.7.1 <a@class.example>: Recipient address rejected: Access denied"),
        ),
        ("a@ok.example", None),
        ("a@disc.example", None),
        ("a@list.example", None),
    ];
    for (r, want) in cases {
        assert_eq!(rcpt(&p, r).await.as_deref(), want, "{r}"); // oracle
    }
    let v = p.check(Stage::Rcpt, &facts("a@warn.example")).await;
    assert_eq!(
        v.log[0],
        "warn: RCPT from client.example[192.0.2.9]: hmm; from=<s@example.org> to=<a@warn.example> proto=ESMTP helo=<client.example>"
    );
    let v = p.check(Stage::Rcpt, &facts("a@hold.example")).await;
    assert_eq!(
        v.actions,
        vec![MessageAction::Hold(
            "<a@hold.example>: Recipient address triggers HOLD action".into()
        )]
    );
    assert!(v.log[0].starts_with("hold: RCPT from client.example[192.0.2.9]: <a@hold.example>: Recipient address triggers HOLD action;"));
    let v = p.check(Stage::Rcpt, &facts("a@disc.example")).await;
    assert!(matches!(v.actions[0], MessageAction::Discard(_)));
    for (r, act) in [
        (
            "a@redir.example",
            MessageAction::Redirect("x@y.example".into()),
        ),
        ("a@prep.example", MessageAction::Prepend("X-A: b".into())),
        ("a@bcc.example", MessageAction::Bcc("b@c.example".into())),
        (
            "a@filt.example",
            MessageAction::Filter("smtp:[127.0.0.1]:25".into()),
        ),
    ] {
        let v = p.check(Stage::Rcpt, &facts(r)).await;
        assert_eq!(v.actions, vec![act], "{r}");
        assert!(v.reject.is_some(), "{r}: the relay check still runs");
    }
    let v = p.check(Stage::Rcpt, &facts("a@redir.example")).await;
    assert!(v.log[0].starts_with("redirect: RCPT from client.example[192.0.2.9]: <a@redir.example>: Recipient address triggers REDIRECT x@y.example;"));
    assert_eq!(
        rcpt(&p, "a@badf.example").await.unwrap(),
        "554 5.7.1 <a@badf.example>: Relay access denied"
    );
}

#[tokio::test]
async fn access_kinds() {
    let (_d, spec) = table(
        "192.0.2.9 REJECT\nbadhelo.example REJECT\nrhelo.example 550 no way\nspam.example REJECT\n<> REJECT null\netrn.example REJECT\n",
    );
    let p = policy(&format!(
        "{BASE}smtpd_client_restrictions = check_client_access {spec}\nsmtpd_recipient_restrictions = reject_unauth_destination\n"
    ));
    assert_eq!(
        rcpt(&p, "u@localhost").await.unwrap(),
        "554 5.7.1 <client.example[192.0.2.9]>: Client host rejected: Access denied"
    );
    let p = policy(&format!(
        "{BASE}smtpd_helo_restrictions = check_helo_access {spec}\nsmtpd_sender_restrictions = check_sender_access {spec}\nsmtpd_etrn_restrictions = check_etrn_access {spec}\nsmtpd_recipient_restrictions = reject_unauth_destination\n"
    ));
    let mut f = facts("u@localhost");
    f.helo = Some("rhelo.example".into());
    assert_eq!(
        text(&p.check(Stage::Rcpt, &f).await).unwrap(),
        "550 5.7.1 <rhelo.example>: Helo command rejected: no way"
    );
    f.helo = Some("x.example".into());
    f.sender = Some("a@spam.example".into());
    assert_eq!(
        text(&p.check(Stage::Rcpt, &f).await).unwrap(),
        "554 5.7.1 <a@spam.example>: Sender address rejected: Access denied"
    );
    f.sender = Some(String::new());
    assert_eq!(
        text(&p.check(Stage::Rcpt, &f).await).unwrap(),
        "554 5.7.1 <>: Sender address rejected: null"
    );
    f.etrn_domain = Some("etrn.example".into());
    assert_eq!(
        text(&p.check(Stage::Etrn, &f).await).unwrap(),
        "554 5.7.1 <etrn.example>: Etrn command rejected: Access denied"
    );
}

#[tokio::test]
async fn broken_table_defers() {
    let p = policy(&format!(
        "{BASE}smtpd_recipient_restrictions = check_recipient_access texthash:/nonexistent/x, reject_unauth_destination\n"
    ));
    assert_eq!(
        rcpt(&p, "u@localhost").await.unwrap(),
        "451 4.3.5 <u@localhost>: Recipient address rejected: Server configuration error"
    );
}

#[tokio::test]
async fn unlisted_recipients() {
    let (_d, spec) = table("u x\n");
    let p = policy(&format!(
        "{BASE}smtpd_recipient_restrictions = reject_unauth_destination\nlocal_recipient_maps = {spec}\n"
    ));
    assert_eq!(rcpt(&p, "u@localhost").await, None);
    assert_eq!(
        rcpt(&p, "v@localhost").await.unwrap(),
        "550 5.1.1 <v@localhost>: Recipient address rejected: User unknown in local recipient table"
    ); // oracle
    assert_eq!(
        rcpt(&p, "v@[127.0.0.1]").await.unwrap(),
        "550 5.1.1 <v@[127.0.0.1]>: Recipient address rejected: User unknown in local recipient table"
    ); // oracle
    assert_eq!(rcpt(&p, "postmaster").await, None); // oracle: bare postmaster skips RCPT checks
    let p = policy(&format!(
        "{BASE}smtpd_recipient_restrictions = reject_unauth_destination\nlocal_recipient_maps = {spec}\nsmtpd_reject_unlisted_recipient = no\n"
    ));
    assert_eq!(rcpt(&p, "v@localhost").await, None);
    let (_d2, vspec) = table("a@virt.example x\n");
    let p = policy(&format!(
        "{BASE}smtpd_recipient_restrictions = reject_unauth_destination\nvirtual_alias_maps = {vspec}\nvirtual_alias_domains = virt.example\n"
    ));
    assert_eq!(rcpt(&p, "a@virt.example").await, None);
    assert_eq!(
        rcpt(&p, "b@virt.example").await.unwrap(),
        "550 5.1.1 <b@virt.example>: Recipient address rejected: User unknown in virtual alias table"
    );
}

#[tokio::test]
async fn pipelining_and_bounce() {
    let p = policy(&format!(
        "{BASE}smtpd_recipient_restrictions = reject_unauth_destination\nsmtpd_data_restrictions = reject_unauth_pipelining, reject_multi_recipient_bounce\n"
    ));
    let mut f = facts("u@localhost");
    assert_eq!(p.check(Stage::Data, &f).await.reject, None);
    f.improper_pipelining = true;
    assert_eq!(
        text(&p.check(Stage::Data, &f).await).unwrap(),
        "503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP command pipelining"
    );
    f.improper_pipelining = false;
    f.sender = Some(String::new());
    f.recipient_count = 2;
    assert_eq!(
        text(&p.check(Stage::Data, &f).await).unwrap(),
        "550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce"
    );
}

#[derive(Debug)]
struct FakeDns;

impl Dns for FakeDns {
    fn lookup<'a>(&'a self, name: &'a str, rr: RrType) -> DnsFuture<'a> {
        Box::pin(async move {
            match (name, rr) {
                ("9.2.0.192.bl.example", RrType::A) => DnsAnswer::Found(vec!["127.0.0.2".into()]),
                ("9.2.0.192.bl.example", RrType::Txt) => DnsAnswer::Found(vec!["listed".into()]),
                ("example.org", RrType::Mx) => DnsAnswer::Found(vec!["mx.example.org".into()]),
                ("slow.example", _) => DnsAnswer::TempFail,
                _ => DnsAnswer::NotFound,
            }
        })
    }
}

#[tokio::test]
async fn dns_words() {
    let cfg = format!(
        "{BASE}smtpd_recipient_restrictions = reject_unauth_destination\nsmtpd_client_restrictions = reject_rbl_client bl.example=127.0.0.[2..4]\nsmtpd_sender_restrictions = reject_unknown_sender_domain\n"
    );
    let p = policy(&cfg);
    // Without a resolver: DUNNO.
    assert_eq!(rcpt(&p, "u@localhost").await, None);
    let mut p = policy(&cfg);
    p.set_dns(std::sync::Arc::new(FakeDns));
    assert_eq!(
        rcpt(&p, "u@localhost").await.unwrap(),
        "554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using bl.example; listed"
    );
    let p2 = {
        let mut p = policy(&format!(
            "{BASE}smtpd_recipient_restrictions = reject_unauth_destination\nsmtpd_sender_restrictions = reject_unknown_sender_domain\n"
        ));
        p.set_dns(std::sync::Arc::new(FakeDns));
        p
    };
    let mut f = facts("u@localhost");
    assert_eq!(p2.check(Stage::Rcpt, &f).await.reject, None);
    f.sender = Some("a@nx.example".into());
    assert_eq!(
        text(&p2.check(Stage::Rcpt, &f).await).unwrap(),
        "450 4.1.8 <a@nx.example>: Sender address rejected: Domain not found"
    );
    f.sender = Some("a@slow.example".into());
    assert_eq!(
        text(&p2.check(Stage::Rcpt, &f).await).unwrap(),
        "450 4.1.8 <a@slow.example>: Sender address rejected: Domain not found"
    );
    let p3 = policy(&format!(
        "{BASE}smtpd_recipient_restrictions = reject_unauth_destination, reject_unknown_client_hostname\n"
    ));
    let mut f = facts("u@localhost");
    f.client_name = "unknown".into();
    assert_eq!(
        text(&p3.check(Stage::Rcpt, &f).await).unwrap(),
        "450 4.7.25 <unknown[192.0.2.9]>: Client host rejected: cannot find your hostname, [192.0.2.9]"
    );
}

#[tokio::test]
async fn policy_service() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        // One connection, reused for every request.
        let (sock, _) = listener.accept().await.unwrap();
        let mut io = BufReader::new(sock);
        let mut seen = Vec::new();
        loop {
            let mut attrs = Vec::new();
            loop {
                let mut line = String::new();
                if io.read_line(&mut line).await.unwrap() == 0 {
                    return seen;
                }
                if line == "\n" {
                    break;
                }
                attrs.push(line.trim_end().to_string());
            }
            let rcpt = attrs
                .iter()
                .find_map(|a| a.strip_prefix("recipient="))
                .unwrap_or("")
                .to_string();
            let action = if rcpt.starts_with("bad") {
                "REJECT no thanks"
            } else {
                "DUNNO"
            };
            seen.push(attrs);
            io.get_mut()
                .write_all(format!("action={action}\nextra=1\n\n").as_bytes())
                .await
                .unwrap();
        }
    });
    let p = policy(&format!(
        "{BASE}smtpd_recipient_restrictions = reject_unauth_destination, check_policy_service inet:127.0.0.1:{port}\n"
    ));
    assert_eq!(rcpt(&p, "good@localhost").await, None);
    assert_eq!(
        rcpt(&p, "bad@localhost").await.unwrap(),
        "554 5.7.1 <bad@localhost>: Recipient address rejected: no thanks"
    );
    drop(p);
    let seen = server.await.unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0][0], "request=smtpd_access_policy");
    assert!(seen[0].contains(&"protocol_state=RCPT".to_string()));
    assert!(seen[0].contains(&"client_address=192.0.2.9".to_string()));
    // A dead service: the default action, after the retries.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let p = policy(&format!(
        "{BASE}smtpd_recipient_restrictions = reject_unauth_destination, check_policy_service {{ inet:127.0.0.1:{port}, retry_delay=0s }}\n"
    ));
    assert_eq!(
        rcpt(&p, "x@localhost").await.unwrap(),
        "451 4.3.5 <x@localhost>: Recipient address rejected: Server configuration problem"
    );
}
