use super::*;
use crate::{MapFlags, OpenOptions, open};
use std::sync::Mutex;

/// A map that finds nothing and records every key it is asked for.
#[derive(Debug)]
struct Recorder {
    pattern: bool,
    keys: Mutex<Vec<String>>,
}

impl Recorder {
    fn new(pattern: bool) -> Self {
        Recorder {
            pattern,
            keys: Mutex::new(Vec::new()),
        }
    }
    fn keys(&self) -> Vec<String> {
        self.keys.lock().unwrap().clone()
    }
}

impl Map for Recorder {
    fn lookup(&self, key: &str) -> Result<Option<String>, TableError> {
        self.keys.lock().unwrap().push(key.to_string());
        Ok(None)
    }
    fn name(&self) -> &str {
        "recorder"
    }
    fn flags(&self) -> MapFlags {
        MapFlags {
            fold_case: false,
            pattern: self.pattern,
        }
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn address_order_with_extension_access5() {
    let r = Recorder::new(false);
    assert_eq!(
        lookup_address(&r, "user+foo@mail.example.com", "+", false).unwrap(),
        None
    );
    assert_eq!(
        r.keys(),
        strs(&[
            "user+foo@mail.example.com",
            "user@mail.example.com",
            "mail.example.com",
            ".example.com",
            ".com",
            "user+foo@",
            "user@"
        ])
    );
}

#[test]
fn address_order_parent_matches_subdomains() {
    let r = Recorder::new(false);
    lookup_address(&r, "user@mail.example.com", "+", true).unwrap();
    assert_eq!(
        r.keys(),
        strs(&[
            "user@mail.example.com",
            "mail.example.com",
            "example.com",
            "com",
            "user@"
        ])
    );
}

#[test]
fn pattern_tables_get_the_full_key_once() {
    let r = Recorder::new(true);
    lookup_address(&r, "user+foo@example.com", "+", true).unwrap();
    assert_eq!(r.keys(), strs(&["user+foo@example.com"]));
    let r = Recorder::new(true);
    lookup_client(&r, "mail.example.com", "192.0.2.1", true).unwrap();
    assert_eq!(r.keys(), strs(&["mail.example.com", "192.0.2.1"]));
}

#[test]
fn extension_special_cases() {
    assert_eq!(split_extension("user+foo", "+"), Some(("user", "+foo")));
    assert_eq!(
        split_extension("user-foo+bar", "+-"),
        Some(("user", "-foo+bar"))
    );
    assert_eq!(split_extension("owner-list", "-"), None);
    assert_eq!(split_extension("list-request", "-"), None);
    assert_eq!(split_extension("list-request", "+-"), None);
    assert_eq!(split_extension("owner-list", "+"), None);
    assert_eq!(split_extension("+foo", "+"), None);
    assert_eq!(split_extension("Postmaster", "+"), None);
    assert_eq!(split_extension("user", ""), None);
    let r = Recorder::new(false);
    lookup_address(&r, "owner-list@example.com", "-", true).unwrap();
    assert_eq!(
        r.keys(),
        strs(&[
            "owner-list@example.com",
            "example.com",
            "com",
            "owner-list@"
        ])
    );
}

#[test]
fn address_without_domain_and_null_sender() {
    let r = Recorder::new(false);
    lookup_address(&r, "user+x", "+", true).unwrap();
    assert_eq!(r.keys(), strs(&["user+x", "user"]));
    let r = Recorder::new(false);
    lookup_address(&r, "<>", "+", true).unwrap();
    assert_eq!(r.keys(), strs(&["<>"]));
}

#[test]
fn client_order_ipv4_and_ipv6() {
    let r = Recorder::new(false);
    lookup_client(&r, "a.b.example", "1.2.3.4", false).unwrap();
    assert_eq!(
        r.keys(),
        strs(&[
            "a.b.example",
            ".b.example",
            ".example",
            "1.2.3.4",
            "1.2.3",
            "1.2",
            "1"
        ])
    );
    assert_eq!(
        address_keys("2001:db8::1"),
        strs(&["2001:db8::1", "2001:db8:", "2001:db8", "2001"])
    );
    assert_eq!(address_keys("::1"), strs(&["::1", ":"]));
}

#[test]
fn found_value_and_key() {
    let m = open(
        "inline:{ example.com=REJECT, user@=OK, 1.2.3=DUNNO, .sub.org=HOLD }",
        &OpenOptions::default(),
    )
    .unwrap();
    let got = lookup_address(m.as_ref(), "x+y@mail.Example.COM", "+", true).unwrap();
    assert_eq!(got, Some(("REJECT".to_string(), "Example.COM".to_string())));
    let got = lookup_address(m.as_ref(), "user+y@other.net", "+", true).unwrap();
    assert_eq!(got, Some(("OK".to_string(), "user@".to_string())));
    let got = lookup_client(m.as_ref(), "unknown", "1.2.3.4", true).unwrap();
    assert_eq!(got, Some(("DUNNO".to_string(), "1.2.3".to_string())));
    assert_eq!(lookup_domain(m.as_ref(), "a.sub.org", true).unwrap(), None);
    let got = lookup_domain(m.as_ref(), "a.sub.org", false).unwrap();
    assert_eq!(got, Some(("HOLD".to_string(), ".sub.org".to_string())));
}

#[test]
fn errors_stop_the_search() {
    let m = open("fail:x", &OpenOptions::default()).unwrap();
    assert!(
        lookup_address(m.as_ref(), "a@b", "+", true)
            .unwrap_err()
            .is_temporary()
    );
}

/// A map whose every answer is the empty string (a `key` line with no value).
#[derive(Debug)]
struct Empty;

impl Map for Empty {
    fn lookup(&self, _key: &str) -> Result<Option<String>, TableError> {
        Ok(Some(String::new()))
    }
    fn name(&self) -> &str {
        "hash:/etc/postern/access"
    }
    fn flags(&self) -> MapFlags {
        MapFlags {
            fold_case: false,
            pattern: false,
        }
    }
}

#[test]
fn an_empty_result_is_a_configuration_error() {
    let e = lookup_address(&Empty, "a@b", "+", true).unwrap_err();
    assert!(e.is_temporary());
    assert_eq!(
        e.to_string(),
        "table hash:/etc/postern/access: query error: lookup of a@b returns an empty string result"
    );
    assert!(
        lookup_domain(&Empty, "b", false)
            .unwrap_err()
            .is_temporary()
    );
}
