//! The SASL words: `permit_sasl_authenticated` and the sender-login checks, with
//! Postfix 3.7.11's replies (oracle: Postfix with Dovecot SASL and a texthash map).

use super::Stage;
use super::tests::{facts, policy, text};
use std::io::Write;

const CF: &str = "compatibility_level = 3.6\nmydestination = localhost, example.org\nmynetworks = 10.0.0.0/8\n\
    local_recipient_maps =\nrecipient_delimiter = +\n";

fn login_map() -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        "joe@example.org joe\nann@example.org ann, joe\n@shared.example joe\nbob bob"
    )
    .unwrap();
    f
}

async fn check(word: &str, login: Option<&str>, sender: &str) -> Option<String> {
    let map = login_map();
    let p = policy(&format!(
        "{CF}smtpd_sender_login_maps = texthash:{}\nsmtpd_sender_restrictions = {word}\n\
         smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination\n",
        map.path().display()
    ));
    let mut f = facts("x@remote.example");
    f.sender = Some(sender.into());
    f.sasl_username = login.map(str::to_string);
    f.sasl_method = login.map(|_| "PLAIN".to_string());
    text(&p.check(Stage::Rcpt, &f).await)
}

#[tokio::test]
async fn sender_login_mismatch() {
    let w = "reject_sender_login_mismatch";
    let not_owned = |s: &str, u: &str| {
        Some(format!(
            "553 5.7.1 <{s}>: Sender address rejected: not owned by user {u}"
        ))
    };
    assert_eq!(check(w, Some("joe"), "joe@example.org").await, None);
    assert_eq!(check(w, Some("JOE"), "ann@example.org").await, None);
    assert_eq!(check(w, Some("joe"), "joe+tag@example.org").await, None);
    assert_eq!(check(w, Some("joe"), "anyone@shared.example").await, None);
    assert_eq!(check(w, Some("bob"), "bob@example.org").await, None); // local part of a local domain
    assert_eq!(
        check(w, Some("ann"), "joe@example.org").await,
        not_owned("joe@example.org", "ann")
    );
    assert_eq!(
        check(w, Some("ann"), "x@else.example").await,
        not_owned("x@else.example", "ann")
    );
    assert_eq!(check(w, Some("ann"), "").await, None);
    assert_eq!(
        check(w, None, "joe@example.org").await.as_deref(),
        Some("553 5.7.1 <joe@example.org>: Sender address rejected: not logged in")
    );
    assert_eq!(
        check(w, None, "x@else.example").await.as_deref(),
        Some("554 5.7.1 <x@remote.example>: Relay access denied")
    );
}

#[tokio::test]
async fn sender_login_variants() {
    let known = "reject_known_sender_login_mismatch";
    assert_eq!(check(known, Some("ann"), "x@else.example").await, None);
    assert!(check(known, Some("ann"), "joe@example.org").await.is_some());
    assert!(check(known, None, "joe@example.org").await.is_some());
    let auth = "reject_authenticated_sender_login_mismatch";
    assert!(check(auth, Some("ann"), "x@else.example").await.is_some());
    assert!(
        check(auth, None, "joe@example.org")
            .await
            .unwrap()
            .contains("Relay access denied")
    );
    let unauth = "reject_unauthenticated_sender_login_mismatch";
    assert_eq!(check(unauth, Some("ann"), "joe@example.org").await, None);
    assert!(
        check(unauth, None, "joe@example.org")
            .await
            .unwrap()
            .contains("not logged in")
    );
}

#[tokio::test]
async fn anonymous_is_not_authenticated() {
    let p = policy(&format!(
        "{CF}smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination\n"
    ));
    let mut f = facts("x@remote.example");
    f.sasl_username = Some("anonymous".into());
    f.sasl_method = Some("ANONYMOUS".into());
    assert!(p.check(Stage::Rcpt, &f).await.reject.is_some());
    f.sasl_method = Some("PLAIN".into());
    assert_eq!(p.check(Stage::Rcpt, &f).await.reject, None);
}
