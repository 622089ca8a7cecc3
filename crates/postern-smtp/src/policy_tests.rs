use super::*;

#[test]
fn levels_order_and_names() {
    for n in [
        "none",
        "may",
        "encrypt",
        "fingerprint",
        "dane",
        "dane-only",
        "verify",
        "secure",
    ] {
        assert_eq!(Level::parse(n).map(Level::name), Some(n));
    }
    assert_eq!(Level::parse(" Encrypt"), Some(Level::Encrypt));
    assert_eq!(Level::parse("bogus"), None);
    assert!(!Level::Encrypt.must_match() && Level::Fingerprint.must_match());
    assert!(!Level::DaneOnly.must_trust() && Level::Verify.must_trust());
    assert!(!Level::May.mandatory() && Level::Dane.mandatory());
}

#[test]
fn protocols() {
    let v = |s| parse_protocols(s).unwrap();
    assert_eq!(
        v(">=TLSv1"),
        Versions {
            tls12: true,
            tls13: true
        }
    );
    assert_eq!(
        v("!SSLv2, !SSLv3"),
        Versions {
            tls12: true,
            tls13: true
        }
    );
    assert_eq!(
        v(">=TLSv1.3"),
        Versions {
            tls12: false,
            tls13: true
        }
    );
    assert_eq!(
        v("<=TLSv1.2"),
        Versions {
            tls12: true,
            tls13: false
        }
    );
    assert_eq!(
        v("TLSv1.2"),
        Versions {
            tls12: true,
            tls13: false
        }
    );
    assert_eq!(
        v("!TLSv1.2"),
        Versions {
            tls12: false,
            tls13: true
        }
    );
    assert_eq!(
        v("TLSv1.2:TLSv1.3"),
        Versions {
            tls12: true,
            tls13: true
        }
    );
    assert!(parse_protocols("<=TLSv1.1").is_err());
    assert!(parse_protocols(">=TLSv9").is_err());
}

#[test]
fn entries() {
    let e = parse_entry("secure match=example.com:.example.com protocols=>=TLSv1.2").unwrap();
    assert_eq!(e.level, Some(Level::Secure));
    assert_eq!(e.matches, ["example.com", ".example.com"]);
    assert_eq!(e.protocols.as_deref(), Some(">=TLSv1.2"));
    let e = parse_entry("fingerprint match=AA:BB|CC:DD, match=EE").unwrap();
    assert_eq!(e.matches, ["AA:BB", "CC:DD", "EE"]);
    assert!(parse_entry("").unwrap_err().contains("empty policy"));
    assert!(
        parse_entry("maybe")
            .unwrap_err()
            .contains("invalid security level")
    );
    assert!(
        parse_entry("may match=x")
            .unwrap_err()
            .contains("invalid at security level")
    );
    assert!(
        parse_entry("verify bogus=1")
            .unwrap_err()
            .contains("invalid attribute name")
    );
    assert!(
        parse_entry("verify protocols=a protocols=b")
            .unwrap_err()
            .contains("multiple")
    );
    assert!(
        parse_entry("verify match")
            .unwrap_err()
            .contains("malformed")
    );
    assert!(parse_entry("encrypt tafile=/x").is_err());
    let e = parse_entry("none match=x").unwrap();
    assert_eq!(e.level, Some(Level::None));
    assert_eq!(e.ignored.len(), 1);
}

#[test]
fn keys() {
    assert_eq!(
        policy_keys("a.b.example"),
        ["a.b.example", ".b.example", ".example"]
    );
    assert_eq!(policy_keys("[relay.example]:587"), ["[relay.example]:587"]);
    assert_eq!(policy_keys("example.com:2525"), ["example.com:2525"]);
    assert_eq!(
        policy_keys("inet:host.example"),
        ["host.example", ".example"]
    );
}

#[test]
fn fingerprints() {
    assert_eq!(parse_fingerprint("0a:FF:10"), Some(vec![0x0a, 0xff, 0x10]));
    assert_eq!(parse_fingerprint("0aff10"), Some(vec![0x0a, 0xff, 0x10]));
    assert_eq!(parse_fingerprint("0a:f"), None);
    assert_eq!(parse_fingerprint("zz"), None);
    assert_eq!(Digest::Sha256.of(b"").len(), 32);
    assert!(Digest::parse("md5").is_err());
}

#[test]
fn names() {
    let rules = name_rules(
        &split_list("hostname, nexthop, dot-nexthop, .other.example"),
        "MX.example.",
        "example",
    );
    assert_eq!(
        rules,
        [
            NameRule::Exact("mx.example".into()),
            NameRule::Exact("example".into()),
            NameRule::Sub("example".into()),
            NameRule::Sub("other.example".into()),
        ]
    );
    let exact = NameRule::Exact("mx.example.com".into());
    assert!(name_matches("MX.example.com", &exact));
    assert!(name_matches("*.example.com", &exact));
    assert!(!name_matches(
        "*.com",
        &NameRule::Exact("example.com".into())
    ));
    assert!(!name_matches("*.mx.example.com", &exact));
    let sub = NameRule::Sub("example.com".into());
    assert!(name_matches("mx.example.com", &sub));
    assert!(!name_matches("example.com", &sub));
    assert!(!name_matches("badexample.com", &sub));
}
