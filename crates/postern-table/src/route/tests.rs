//! The relay tricks of the open-relay battery, resolved as Postfix 3.7's trivial-rewrite
//! does (mydestination = ours.example, relay_domains = relay.example, own address
//! 127.0.0.1).

use super::*;
use std::collections::HashMap;

fn resolver(extra: &[(&str, &str)]) -> ClassResolver {
    let mut p: HashMap<String, String> = [
        ("mydestination", "ours.example, localhost"),
        ("relay_domains", "relay.example"),
        ("virtual_alias_domains", "valias.example"),
        ("myorigin", "ours.example"),
        ("myhostname", "ours.example"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        p.insert(k.to_string(), v.to_string());
    }
    ClassResolver::new(
        &|n| p.get(n).cloned().unwrap_or_default(),
        vec![IpAddr::from([127, 0, 0, 1])],
    )
}

fn class(r: &ClassResolver, a: &str) -> (AddrClass, String, bool) {
    let x = r.resolve(a).unwrap();
    (x.class, format!("{}@{}", x.local, x.domain), x.routed)
}

#[test]
fn tricks_default_settings() {
    use AddrClass::*;
    let r = resolver(&[]);
    let cases = [
        ("user@ours.example", Local, "user@ours.example", false),
        ("user@OURS.EXAMPLE.", Local, "user@ours.example", false),
        ("user", Local, "user@ours.example", false),
        ("user@other.example", Default, "user@other.example", false),
        (
            "user%other.example@ours.example",
            Default,
            "user@other.example",
            false,
        ),
        (
            "other.example!user@ours.example",
            Default,
            "user@other.example",
            false,
        ),
        (
            "user@other.example@ours.example",
            Default,
            "user@other.example",
            false,
        ),
        (
            "@other.example:user@ours.example",
            Local,
            "user@ours.example",
            false,
        ),
        ("user@[127.0.0.1]", Local, "user@[127.0.0.1]", false),
        ("user@[127.0.0.2]", Default, "user@[127.0.0.2]", false),
        (
            "user@ours.example@other.example",
            Default,
            "user@ours.example@other.example",
            true,
        ),
        (
            "user%other.example@relay.example",
            Relay,
            "user%other.example@relay.example",
            true,
        ),
        ("user%other.example", Default, "user@other.example", false),
        ("a!b!user@ours.example", Default, "b!user@a", true),
        (
            "user%ours.example@ours.example",
            Local,
            "user@ours.example",
            false,
        ),
        ("@ours.example", Local, "MAILER-DAEMON@ours.example", false),
    ];
    for (a, c, rw, routed) in cases {
        assert_eq!(class(&r, a), (c, rw.to_string(), routed), "{a}");
    }
}

#[test]
fn tricks_without_routing_operators() {
    use AddrClass::*;
    let r = resolver(&[
        ("allow_percent_hack", "no"),
        ("swap_bangpath", "no"),
        ("resolve_dequoted_address", "no"),
    ]);
    // Local, but routed: relay control does not authorize them (Postfix 3.7 oracle).
    assert_eq!(
        class(&r, "user%other.example@ours.example"),
        (Local, "user%other.example@ours.example".into(), true)
    );
    assert_eq!(
        class(&r, "other!user@ours.example"),
        (Local, "other!user@ours.example".into(), true)
    );
    assert_eq!(
        class(&r, "user@other.example@ours.example"),
        (Local, "user@other.example@ours.example".into(), true)
    );
    // Routing operators are still recognised in a foreign local part.
    assert!(r.resolve("user%x@relay.example").unwrap().routed);
}

#[test]
fn null_and_numeric_domains_and_failures() {
    let r = resolver(&[("resolve_null_domain", "yes")]);
    assert_eq!(r.resolve("user@").unwrap().class, AddrClass::Local);
    let r = resolver(&[]);
    assert_eq!(r.resolve("user@").unwrap().class, AddrClass::Default);
    assert_eq!(
        r.resolve("user@127.0.0.1").unwrap().class,
        AddrClass::Default
    );
    let r = resolver(&[("resolve_numeric_domain", "yes")]);
    assert_eq!(r.resolve("user@127.0.0.1").unwrap().class, AddrClass::Local);
    let r = resolver(&[("mydestination", "fail:x")]);
    assert!(r.resolve("user@ours.example").is_err());
    assert_eq!(r.open_errors().len(), 0);
    let r = resolver(&[("relay_domains", "hash:/nonexistent/x")]);
    assert_eq!(r.open_errors().len(), 1);
    assert!(r.resolve("user@relay.example").is_err());
    assert_eq!(
        r.resolve("user@ours.example").unwrap().class,
        AddrClass::Local
    );
}
