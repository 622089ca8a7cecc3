//! What RFC 7208 requires and mail-auth 0.13.3 does not do: the strict record syntax
//! (§4.6, §12: an unknown mechanism, a bad address or CIDR length, a bad macro, a repeated
//! `redirect`/`exp` or two `v=spf1` records make `permerror`; mail-auth skips such terms
//! and evaluates the rest) and the void-lookup limit (§4.6.4: more than 2 lookups that
//! answer NXDOMAIN or nothing make `permerror`; mail-auth has no such limit).
//!
//! Both are applied around mail-auth's `check_host()`: [`Tracker`] is handed to it as
//! its resolver caches (it never answers, so every lookup still goes to DNS) and counts
//! the lookups that found nothing (asked, never stored) and names the TXT records read;
//! after evaluation every `v=spf1` record read is checked with [`check_record`]. A record
//! read is syntax-checked whole before evaluation (§4.6), and evaluation stops at the
//! third void lookup, so turning the result into `permerror` afterwards is the result
//! RFC 7208's order of work gives.
//!
//! # Security
//!
//! Pure checks on bounded strings (a TXT record is at most 64 KiB); no recursion.
//!
//! # Configuration
//!
//! None.

use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use mail_auth::ResolverCache;

/// RFC 7208 §4.6.4: more void lookups than this is `permerror`.
pub const MAX_VOID_LOOKUPS: usize = 2;

/// The resolver caches given to mail-auth's SPF evaluation: they store nothing, they
/// count lookups (`get`) and answers (`insert`) and keep the TXT names answered.
#[derive(Debug, Default)]
pub struct Tracker {
    asked: AtomicUsize,
    answered: AtomicUsize,
    txt_names: Mutex<Vec<String>>,
}

impl Tracker {
    /// Lookups that found nothing (NXDOMAIN, no data, or an error).
    pub fn void_lookups(&self) -> usize {
        self.asked
            .load(Ordering::Relaxed)
            .saturating_sub(self.answered.load(Ordering::Relaxed))
    }

    /// The TXT names that answered, in order.
    pub fn txt_names(&self) -> Vec<String> {
        self.txt_names.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// One cache face of the [`Tracker`] per record type (mail-auth's caches are typed).
#[derive(Debug)]
pub struct Face<'a> {
    tracker: &'a Tracker,
    txt: bool,
}

impl Tracker {
    /// The face for TXT lookups.
    pub fn txt(&self) -> Face<'_> {
        Face {
            tracker: self,
            txt: true,
        }
    }

    /// The face for the other lookups (MX, A, AAAA, PTR).
    pub fn other(&self) -> Face<'_> {
        Face {
            tracker: self,
            txt: false,
        }
    }
}

/// A key's name, when it is a string (TXT keys are).
pub trait KeyName {
    /// The name.
    fn key_name(&self) -> Option<String>;
}

impl KeyName for Box<str> {
    fn key_name(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl KeyName for std::net::IpAddr {
    fn key_name(&self) -> Option<String> {
        None
    }
}

impl<K: KeyName, V> ResolverCache<K, V> for Face<'_> {
    fn get<Q>(&self, _: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.tracker.asked.fetch_add(1, Ordering::Relaxed);
        None
    }

    fn remove<Q>(&self, _: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, key: K, _: V, _: std::time::Instant) {
        self.tracker.answered.fetch_add(1, Ordering::Relaxed);
        if self.txt
            && let Some(name) = key.key_name()
            && let Ok(mut v) = self.tracker.txt_names.lock()
            && v.len() < 64
        {
            v.push(name);
        }
    }
}

/// True for an SPF record (`v=spf1` alone or followed by a space), RFC 7208 §4.5.
pub fn is_spf(txt: &str) -> bool {
    let b = txt.as_bytes();
    b.len() >= 6 && b[..6].eq_ignore_ascii_case(b"v=spf1") && (b.len() == 6 || b[6] == b' ')
}

/// Checks an SPF record against RFC 7208's grammar; the error names the bad term.
pub fn check_record(txt: &str) -> Result<(), String> {
    if !is_spf(txt) {
        return Err("not an SPF record".into());
    }
    let (mut redirect, mut exp) = (false, false);
    for term in txt[6..].split(' ').filter(|t| !t.is_empty()) {
        let bad = || format!("bad term \"{term}\"");
        let lower = term.to_ascii_lowercase();
        // A modifier: name "=" macro-string, the name starting with a letter.
        if let Some((name, value)) = lower.split_once('=')
            && !name.is_empty()
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            match name {
                "redirect" | "exp" => {
                    let seen = if name == "redirect" {
                        &mut redirect
                    } else {
                        &mut exp
                    };
                    if *seen || !domain_spec(value) {
                        return Err(bad());
                    }
                    *seen = true;
                }
                _ => {
                    if !macro_string(value) {
                        return Err(bad());
                    }
                }
            }
            continue;
        }
        let body = lower.strip_prefix(['+', '-', '~', '?']).unwrap_or(&lower);
        let (mech, arg) = match body.find([':', '/']) {
            Some(i) => (&body[..i], Some(&body[i..])),
            None => (body, None),
        };
        let ok = match (mech, arg) {
            ("all", None) => true,
            ("include" | "exists", Some(a)) => a.strip_prefix(':').is_some_and(domain_spec),
            ("ptr", None) => true,
            ("ptr", Some(a)) => a.strip_prefix(':').is_some_and(domain_spec),
            ("a" | "mx", None) => true,
            ("a" | "mx", Some(a)) => a_mx_arg(a),
            ("ip4", Some(a)) => a.strip_prefix(':').is_some_and(ip4_net),
            ("ip6", Some(a)) => a.strip_prefix(':').is_some_and(ip6_net),
            _ => false,
        };
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// `[":" domain-spec] [dual-cidr-length]`.
fn a_mx_arg(a: &str) -> bool {
    let (domain, cidr) = match a.strip_prefix(':') {
        Some(rest) => match rest.find('/') {
            Some(i) => (Some(&rest[..i]), &rest[i..]),
            None => (Some(rest), ""),
        },
        None => (None, a),
    };
    domain.is_none_or(domain_spec) && dual_cidr(cidr)
}

/// `[ip4-cidr-length] ["/" ip6-cidr-length]`: "", "/24", "//64", "/24//64".
fn dual_cidr(c: &str) -> bool {
    if c.is_empty() {
        return true;
    }
    let (v4, v6) = match c.find("//") {
        Some(i) => (&c[..i], Some(&c[i + 2..])),
        None => (c, None),
    };
    (v4.is_empty() || v4.strip_prefix('/').is_some_and(|n| cidr(n, 32)))
        && v6.is_none_or(|n| cidr(n, 128))
}

/// A CIDR length 0..=max without leading zeros.
fn cidr(n: &str, max: u32) -> bool {
    !n.is_empty()
        && n.len() <= 3
        && n.bytes().all(|b| b.is_ascii_digit())
        && (n == "0" || !n.starts_with('0'))
        && n.parse::<u32>().is_ok_and(|v| v <= max)
}

fn ip4_net(a: &str) -> bool {
    let (addr, len) = a.split_once('/').map_or((a, None), |(x, l)| (x, Some(l)));
    addr.parse::<Ipv4Addr>().is_ok() && len.is_none_or(|l| cidr(l, 32))
}

fn ip6_net(a: &str) -> bool {
    let (addr, len) = a.split_once('/').map_or((a, None), |(x, l)| (x, Some(l)));
    addr.parse::<Ipv6Addr>().is_ok() && len.is_none_or(|l| cidr(l, 128))
}

/// `macro-string`: visible characters, `%` only in `%%`, `%_`, `%-` or a macro-expand
/// `%{` letter digits [`r`] delimiters `}`.
fn macro_string(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => match b.get(i + 1) {
                Some(b'%' | b'_' | b'-') => i += 2,
                Some(b'{') => {
                    let Some(end) = s[i..].find('}') else {
                        return false;
                    };
                    if !macro_expand(&s[i + 2..i + end]) {
                        return false;
                    }
                    i += end + 1;
                }
                _ => return false,
            },
            0x21..=0x7e => i += 1,
            _ => return false,
        }
    }
    true
}

/// The inside of `%{…}`: a macro letter, digits, an optional `r`, delimiters.
fn macro_expand(inner: &str) -> bool {
    let mut it = inner.chars().peekable();
    let Some(letter) = it.next() else {
        return false;
    };
    if !"slodiphcrtv".contains(letter.to_ascii_lowercase()) {
        return false;
    }
    while it.peek().is_some_and(char::is_ascii_digit) {
        it.next();
    }
    if it.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'r')) {
        it.next();
    }
    it.all(|c| ".-+,/_=".contains(c))
}

/// `domain-spec`: a macro-string that ends in a macro or a top label that is not all
/// digits (RFC 7208 §7.1 `domain-end`).
fn domain_spec(s: &str) -> bool {
    if s.is_empty() || !macro_string(s) {
        return false;
    }
    if s.ends_with('}') {
        return true;
    }
    let t = s.strip_suffix('.').unwrap_or(s);
    let Some((_, top)) = t.rsplit_once('.') else {
        return false;
    };
    !top.is_empty()
        && top.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !top.starts_with('-')
        && !top.ends_with('-')
        && top.bytes().any(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_records() {
        for r in [
            "v=spf1",
            "v=spf1 -all",
            "V=SPF1 +a mx/24 a:mail.example.com/24//64 mx//64 ~all",
            "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.example.net ?all",
            "v=spf1 exists:%{i}.%{l1r+-}._spf.%{d} ptr ptr:example.org -all",
            "v=spf1 redirect=_spf.example.com",
            "v=spf1 -all exp=explain._spf.%{d} foo=bar%%",
            "v=spf1  a   -all ",
        ] {
            assert_eq!(check_record(r), Ok(()), "{r}");
        }
    }

    #[test]
    fn bad_records() {
        for r in [
            "v=spf1 ip4:300.1.1.1 -all",
            "v=spf1 foo:bar -all",
            "v=spf1 ip4:192.0.2.0/33",
            "v=spf1 ip6:2001:db8::/129",
            "v=spf1 a/024",
            "v=spf1 include -all",
            "v=spf1 include:example.123",
            "v=spf1 exists:%{z}.example.com",
            "v=spf1 exists:%x.example.com",
            "v=spf1 redirect=a.example redirect=b.example",
            "v=spf1 exp=a.example exp=b.example",
            "v=spf1 all:foo",
            "v=spf1 +-all",
            "v=spf1 mx://64",
            "v=spf10 -all",
        ] {
            assert!(check_record(r).is_err(), "{r}");
        }
    }

    #[test]
    fn mutated_records_never_panic() {
        let seeds = [
            "v=spf1 a:mail.example.com/24//64 mx//64 ~all",
            "v=spf1 exists:%{i}.%{l1r+-}._spf.%{d} ptr:example.org -all exp=x.%{d}",
            "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 redirect=é.example",
        ];
        let alphabet = b"v=spf1 :/%{}.-+~?_r0123456789aAz\xc3\xa9\t";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut valid = 0;
        for seed in seeds {
            for _ in 0..3000 {
                let mut b = seed.as_bytes().to_vec();
                for _ in 0..3 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let at = (x as usize) % (b.len() + 1);
                    let c = alphabet[(x >> 32) as usize % alphabet.len()];
                    match x % 3 {
                        0 if at < b.len() => b[at] = c,
                        1 if at < b.len() => {
                            b.remove(at);
                        }
                        _ => b.insert(at, c),
                    }
                }
                valid += usize::from(check_record(&String::from_utf8_lossy(&b)).is_ok());
            }
        }
        // Some mutants stay valid, most do not.
        assert!(valid > 0 && valid < 9000, "{valid}");
    }

    #[test]
    fn spf_recognition() {
        assert!(is_spf("v=spf1"));
        assert!(is_spf("v=spf1 -all"));
        assert!(!is_spf("v=spf10"));
        assert!(!is_spf("hello"));
    }

    #[test]
    fn tracker_counts_unanswered_lookups() {
        let t = Tracker::default();
        let txt = t.txt();
        let other = t.other();
        let _: Option<u8> = ResolverCache::<Box<str>, u8>::get(&txt, "a.example.");
        ResolverCache::<Box<str>, u8>::insert(&txt, "a.example.".into(), 1, now());
        let _: Option<u8> = ResolverCache::<Box<str>, u8>::get(&other, "b.example.");
        let _: Option<u8> = ResolverCache::<Box<str>, u8>::get(&other, "c.example.");
        assert_eq!(t.void_lookups(), 2);
        assert_eq!(t.txt_names(), vec!["a.example.".to_string()]);
    }

    fn now() -> std::time::Instant {
        std::time::Instant::now()
    }
}
