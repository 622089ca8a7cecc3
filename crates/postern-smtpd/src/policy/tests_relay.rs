//! The relay battery: address tricks that must not open a relay (checked against
//! Postfix 3.7.11 with the same settings).

use super::Stage;
use super::tests::{facts, policy, text};

const CF: &str = "compatibility_level = 3.6\nmydestination = localhost\nrelay_domains =\n\
    mynetworks = 10.0.0.0/8\nlocal_recipient_maps =\ninet_interfaces = 127.0.0.1\nmyorigin = mx.example.com\n";

const REFUSED: &[&str] = &[
    "u@remote.example",
    "u%remote.example@localhost",
    "remote.example!u@localhost",
    "u@remote.example@localhost", // "u@remote.example"@localhost in internal form
    "u@remote.example.",
    "u@[192.0.2.1]",
    "u%remote.example%localhost@localhost",
    "u", // gets @$myorigin, which is not local here (oracle: refused)
];

const ACCEPTED: &[&str] = &[
    "u@localhost",
    "u@LOCALHOST",
    "u@localhost.",
    "u@[127.0.0.1]",
    "postmaster",
];

#[tokio::test]
async fn reject_unauth_destination_battery() {
    let p = policy(&format!(
        "{CF}smtpd_relay_restrictions = reject_unauth_destination\n"
    ));
    for r in REFUSED {
        let v = p.check(Stage::Rcpt, &facts(r)).await;
        assert_eq!(
            text(&v),
            Some(format!("554 5.7.1 <{r}>: Relay access denied")),
            "{r}"
        );
    }
    for r in ACCEPTED {
        assert_eq!(p.check(Stage::Rcpt, &facts(r)).await.reject, None, "{r}");
    }
}

#[tokio::test]
async fn defer_unauth_destination_battery() {
    // Postfix's 3.x default relay list; the reply is relay_domains_reject_code made 4xx.
    let p = policy(CF);
    for r in REFUSED {
        let v = p.check(Stage::Rcpt, &facts(r)).await;
        assert_eq!(
            text(&v),
            Some(format!("454 4.7.1 <{r}>: Relay access denied")),
            "{r}"
        );
    }
    for r in ACCEPTED {
        assert_eq!(p.check(Stage::Rcpt, &facts(r)).await.reject, None, "{r}");
    }
}

#[tokio::test]
async fn relay_domains_and_routing() {
    let p = policy(&format!(
        "{CF}relay_domains = relay.example\nsmtpd_relay_restrictions = reject_unauth_destination\n"
    ));
    for ok in ["u@relay.example", "u@sub.relay.example"] {
        assert_eq!(p.check(Stage::Rcpt, &facts(ok)).await.reject, None, "{ok}");
    }
    for bad in [
        "u%other.example@relay.example",
        "other.example!u@relay.example",
        "u@other.example@relay.example",
    ] {
        assert!(
            p.check(Stage::Rcpt, &facts(bad)).await.reject.is_some(),
            "{bad}"
        );
    }
    let p = policy(&format!(
        "{CF}smtpd_relay_restrictions = reject_unauth_destination\nallow_percent_hack = no\nswap_bangpath = no\n"
    ));
    // Without the rewrites the address stays local, but routed: Postfix 3.7 still
    // refuses it to an untrusted client (the next hop might honour the operator).
    for r in ["u%remote.example@localhost", "remote.example!u@localhost"] {
        assert_eq!(
            text(&p.check(Stage::Rcpt, &facts(r)).await),
            Some(format!("554 5.7.1 <{r}>: Relay access denied")),
            "{r}"
        );
    }
    let p = policy(&format!(
        "{CF}smtpd_relay_restrictions = permit_auth_destination, reject\n"
    ));
    assert_eq!(
        p.check(Stage::Rcpt, &facts("u@localhost")).await.reject,
        None
    );
    assert!(
        p.check(Stage::Rcpt, &facts("u@remote.example"))
            .await
            .reject
            .is_some()
    );
}

#[tokio::test]
async fn check_relay_domains_is_enforced() {
    // Oracle: Postfix 3.7 answers `<r>: Recipient address rejected: Relay access denied`.
    let p = policy(&format!(
        "{CF}relay_domains = relay.example\nsmtpd_relay_restrictions = check_relay_domains\n"
    ));
    for r in REFUSED {
        assert_eq!(
            text(&p.check(Stage::Rcpt, &facts(r)).await),
            Some(format!(
                "554 5.7.1 <{r}>: Recipient address rejected: Relay access denied"
            )),
            "{r}"
        );
    }
    for r in ACCEPTED.iter().chain(&["u@relay.example"]) {
        assert_eq!(p.check(Stage::Rcpt, &facts(r)).await.reject, None, "{r}");
    }
}

#[tokio::test]
async fn unimplemented_words_and_broken_tables_fail_closed() {
    for word in [
        "reject_unverified_recipient",
        "check_sasl_access inline:{a=OK}",
        "permit_tls_clientcerts",
        "no_such_restriction",
    ] {
        let p = policy(&format!(
            "{CF}smtpd_relay_restrictions = {word}, permit_mynetworks, reject_unauth_destination\n"
        ));
        let mut f = facts("u@localhost");
        f.client_addr = Some("10.0.0.1".parse().unwrap());
        assert_eq!(
            text(&p.check(Stage::Rcpt, &f).await).as_deref(),
            Some("451 4.3.5 Server configuration error"),
            "{word}"
        );
    }
    for maps in [
        "local_recipient_maps = texthash:/nonexistent/x",
        "local_recipient_maps = fail:x",
    ] {
        let p = policy(&format!("{CF}{maps}\n"));
        assert_eq!(
            text(&p.check(Stage::Rcpt, &facts("u@LOCALHOST")).await).as_deref(),
            Some("451 4.3.0 <u@LOCALHOST>: Temporary lookup failure"),
            "{maps}"
        );
    }
    let p = policy(&format!(
        "{CF}relay_domains = texthash:/nonexistent/x\nvirtual_alias_maps = fail:x\n"
    ));
    assert_eq!(
        text(&p.check(Stage::Rcpt, &facts("u@remote.example")).await).as_deref(),
        Some("451 4.3.0 <u@remote.example>: Temporary lookup failure")
    );
}

/// `mynetworks` computed from `mynetworks_style` and the interfaces is what Debian's
/// `postconf -o mynetworks_style=S -o inet_interfaces=I mynetworks` prints on this host
/// (skipped when Postfix's postconf is not installed).
#[test]
fn mynetworks_style_matches_postconf() {
    let postconf = std::path::Path::new("/usr/sbin/postconf");
    if !postconf.exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.cf"), "").unwrap();
    std::fs::write(dir.path().join("master.cf"), "").unwrap();
    for style in ["host", "subnet", "class"] {
        for ifaces in ["all", "loopback-only", "127.0.0.1"] {
            let out = std::process::Command::new(postconf)
                .arg("-c")
                .arg(dir.path())
                .args(["-o", &format!("mynetworks_style={style}")])
                .args(["-o", &format!("inet_interfaces={ifaces}")])
                .args(["-o", "inet_protocols=all", "-h", "mynetworks"])
                .output()
                .unwrap();
            let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let text = format!(
                "mynetworks_style = {style}\ninet_interfaces = {ifaces}\ninet_protocols = all\n"
            );
            let cfg = postern_config::Config::new(postern_config::parse_main_cf(&text).unwrap());
            let ours =
                postern_table::mynetworks_by_style(style, &super::addr::own(&cfg).inet).unwrap();
            assert_eq!(
                ours, theirs,
                "mynetworks_style={style} inet_interfaces={ifaces}"
            );
        }
    }
}

#[tokio::test]
async fn permit_inet_interfaces_is_only_our_addresses() {
    // CF has inet_interfaces = 127.0.0.1: another loopback address is not ours.
    let p = policy(&format!(
        "{CF}proxy_interfaces = 198.51.100.7\nsmtpd_relay_restrictions = permit_inet_interfaces, reject\n"
    ));
    for (client, ok) in [
        ("127.0.0.1", true),
        ("127.0.0.2", false),
        ("198.51.100.7", false),
    ] {
        let mut f = facts("u@remote.example");
        f.client_addr = Some(client.parse().unwrap());
        assert_eq!(
            p.check(Stage::Rcpt, &f).await.reject.is_none(),
            ok,
            "{client}"
        );
    }
    // proxy_interfaces count for address literals, as in Postfix's resolve_local.
    let p = policy(&format!(
        "{CF}proxy_interfaces = 198.51.100.7\nsmtpd_relay_restrictions = reject_unauth_destination\n"
    ));
    assert_eq!(
        p.check(Stage::Rcpt, &facts("u@[198.51.100.7]"))
            .await
            .reject,
        None
    );
}

#[tokio::test]
async fn mynetworks_table_that_cannot_be_opened_defers() {
    // Postfix 3.7: `451 4.3.0 <rcpt>: Temporary lookup failure` when the lookup reaches it.
    let p = policy(&format!(
        "{CF}mynetworks = 10.0.0.0/8 cidr:/nonexistent/mynet\nsmtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n"
    ));
    let mut f = facts("u@remote.example");
    f.client_addr = Some("192.0.2.9".parse().unwrap());
    assert_eq!(
        text(&p.check(Stage::Rcpt, &f).await).as_deref(),
        Some("451 4.3.0 <u@remote.example>: Temporary lookup failure")
    );
    f.client_addr = Some("10.1.2.3".parse().unwrap());
    assert_eq!(p.check(Stage::Rcpt, &f).await.reject, None);
}

/// `soft_bounce = yes`: the relay refusal goes out as 454 4.7.1 (Postfix turns every
/// 5xx restriction reply into 4xx); a 4xx reply stays as it is.
#[tokio::test]
async fn soft_bounce_turns_refusals_into_deferrals() {
    let p = policy(&format!(
        "{CF}soft_bounce = yes\nsmtpd_relay_restrictions = reject_unauth_destination\n"
    ));
    let got = text(&p.check(Stage::Rcpt, &facts("u@remote.example")).await);
    assert_eq!(
        got.as_deref(),
        Some("454 4.7.1 <u@remote.example>: Relay access denied")
    );
    let mut r = super::Reply::new(450, Some((4, 7, 1)), "x");
    super::eval::soften(&mut r);
    assert_eq!((r.code, r.enhanced), (450, Some((4, 7, 1))));
}
