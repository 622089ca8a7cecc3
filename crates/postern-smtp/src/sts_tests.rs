use super::*;

#[test]
fn policy_text() {
    let body = b"version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n";
    let (mode, mx, age) = parse_policy(body).unwrap();
    assert_eq!(mode, Mode::Enforce);
    assert_eq!(mx, ["mx1.example.com", "*.example.net"]);
    assert_eq!(age, 86400);
    assert!(parse_policy(b"version: STSv1\nmode: none\nmax_age: 5\n").is_ok());
    assert!(parse_policy(b"version: STSv2\nmode: enforce\nmx: a\nmax_age: 5\n").is_err());
    assert!(parse_policy(b"version: STSv1\nmode: enforce\nmax_age: 5\n").is_err());
    assert!(parse_policy(b"version: STSv1\nmode: bogus\nmx: a\nmax_age: 5\n").is_err());
    assert!(parse_policy(b"version: STSv1\nmode: enforce\nmx: a\nmax_age: -5\n").is_err());
    let (_, _, age) =
        parse_policy(b"version: STSv1\nmode: testing\nmx: a\nmax_age: 9999999999\n").unwrap();
    assert_eq!(age, MAX_AGE);
    assert!(parse_policy(&[0xff, 0xfe]).is_err());
}

#[test]
fn mx_patterns() {
    assert!(mx_pattern_matches("mx1.example.com", "MX1.example.com."));
    assert!(mx_pattern_matches("*.example.net", "a.example.net"));
    assert!(!mx_pattern_matches("*.example.net", "a.b.example.net"));
    assert!(!mx_pattern_matches("*.example.net", "example.net"));
    assert!(!mx_pattern_matches("", "example.net"));
}

#[test]
fn txt_records() {
    assert_eq!(
        parse_txt(&["v=STSv1; id=20240101T0000;".into()]),
        Some("20240101T0000".into())
    );
    assert_eq!(
        parse_txt(&["v=STSv1; id=abc".into(), "v=spf1 -all".into()]),
        Some("abc".into())
    );
    assert_eq!(
        parse_txt(&["v=STSv1; id=a".into(), "v=STSv1; id=b".into()]),
        None
    );
    assert_eq!(parse_txt(&["v=STSv1;".into()]), None);
    assert_eq!(parse_txt(&["v=STSv1; id=bad-id!".into()]), None);
}

#[test]
fn cache_round_trip() {
    let text = "version: STSv1\nmode: testing\nmx: mx.example\nmax_age: 60\n".to_string();
    let p = StsPolicy {
        id: "abc1".into(),
        mode: Mode::Testing,
        mx: vec!["mx.example".into()],
        max_age: 60,
        expires: 1234,
        text,
    };
    assert_eq!(cache_decode(cache_encode(&p).as_bytes()), Some(p));
    assert_eq!(cache_decode(b"garbage"), None);
    assert_eq!(cache_name("../etc"), None);
    assert_eq!(cache_name("Example.COM."), Some("example.com".into()));
}
