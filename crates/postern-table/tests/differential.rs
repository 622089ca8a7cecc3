//! Differential test: Postern's tables against Debian's Postfix (`postmap -q`).
//!
//! For each table source in `tests/data/` (and one inline spec) a fixed list of tricky keys
//! plus 200 seeded random keys is looked up by Postern and by `postmap -q - type:file`;
//! every answer must agree. Skipped, with a notice, when `/usr/sbin/postmap` is absent (or
//! lacks the pcre type). Postfix prints nothing for an empty result ("empty string result
//! is not allowed"), so an empty Postern result counts as "not found" here.

use postern_table::{OpenOptions, open};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const POSTMAP: &str = "/usr/sbin/postmap";
const RANDOM_KEYS: usize = 200;

/// A tiny xorshift64 generator: deterministic keys without extra crates.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Asks postmap for every key at once (`-q -`); returns the keys it found.
fn postmap(config: &Path, spec: &str, keys: &[String]) -> HashMap<String, String> {
    let mut child = Command::new(POSTMAP)
        .arg("-c")
        .arg(config)
        .args(["-q", "-", spec])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run postmap");
    let mut input = String::new();
    for key in keys {
        input.push_str(key);
        input.push('\n');
    }
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write keys");
    let out = child.wait_with_output().expect("postmap output");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Compares Postern and postmap on `keys`; returns the mismatches.
fn compare(config: &Path, spec: &str, keys: &[String]) -> Vec<String> {
    let map = open(spec, &OpenOptions::default()).expect("open table");
    let want = postmap(config, spec, keys);
    let mut bad = Vec::new();
    for key in keys {
        let ours = map.lookup(key).expect("lookup").filter(|v| !v.is_empty());
        let theirs = want.get(key).cloned();
        if ours != theirs {
            bad.push(format!(
                "{spec} key {key:?}: postern {ours:?}, postfix {theirs:?}"
            ));
        }
    }
    eprintln!(
        "differential: {spec}: {} keys, {} found by postfix, {} mismatches",
        keys.len(),
        want.len(),
        bad.len()
    );
    bad
}

fn with_random(
    fixed: &[&str],
    rng: &mut XorShift,
    make: impl Fn(&mut XorShift) -> String,
) -> Vec<String> {
    let mut keys: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
    while keys.len() < fixed.len() + RANDOM_KEYS {
        let key = make(rng);
        if !key.is_empty() && !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

fn random_word(rng: &mut XorShift, parts: &[&str]) -> String {
    let n = 1 + rng.below(4);
    (0..n).map(|_| rng.pick(parts)).collect()
}

fn random_ip(rng: &mut XorShift) -> String {
    const V4: &[&str] = &[
        "1.2.3",
        "10.0",
        "10.1",
        "172.16.1",
        "172.17",
        "192.168.1",
        "127.0.0",
        "8.8.8",
    ];
    const V6: &[&str] = &[
        "2001:db8:",
        "2001:DB8:0:",
        "::ffff:1.2.3.",
        "::",
        "fe80::",
        "2001:db9::",
        "::ffff:",
    ];
    match rng.below(10) {
        0..=5 => {
            let prefix = rng.pick(V4);
            let mut s = prefix.to_string();
            while s.matches('.').count() < 3 {
                s.push_str(&format!(".{}", rng.below(256)));
            }
            s
        }
        6..=8 => format!("{}{}", rng.pick(V6), rng.below(300)),
        _ => rng
            .pick(&[
                "[1.2.3.4]",
                "01.2.3.4",
                "1.2.3",
                "::1",
                "::2",
                "256.1.1.1",
                "abc",
                "1.2.3.4.5",
            ])
            .to_string(),
    }
}

fn config_dir() -> Option<tempfile::TempDir> {
    if !Path::new(POSTMAP).exists() {
        eprintln!("NOTICE: {POSTMAP} not found; differential test against Postfix skipped");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("main.cf"), "").expect("main.cf");
    Some(dir)
}

fn has_type(config: &Path, kind: &str) -> bool {
    let out = Command::new("/usr/sbin/postconf")
        .arg("-c")
        .arg(config)
        .arg("-m")
        .output();
    out.is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l == kind)
    })
}

#[test]
fn texthash_and_inline_match_postfix() {
    let Some(dir) = config_dir() else { return };
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let fixed = [
        "example.com",
        "EXAMPLE.com",
        "sub.example.org",
        ".sub.example.org",
        "user@",
        "USER@",
        "user+ext@example.net",
        "User+Ext@Example.NET",
        "user@example.net",
        "1.2.3",
        "1.2.3.4",
        "2001:db8:",
        "2001:db8::1",
        "multi",
        "dup",
        "badline",
        "mixed",
        "MiXeD",
        "<>",
        "#",
        "nothere",
    ];
    let parts = [
        "user", "User", "+ext", "Ext", "@", "example", ".com", ".COM", ".net", "1.2", ".3", "dup",
        "mixed", "<>", "x",
    ];
    let keys = with_random(&fixed, &mut rng, |r| random_word(r, &parts));
    let mut bad = compare(
        dir.path(),
        &format!("texthash:{}", data("access.texthash")),
        &keys,
    );

    let inline = "inline:{ Foo=Bar, { k = val with spaces }, x=1, x=2, a=b=c, {User@Example.com = OK}, 1.2.3=REJECT }";
    let fixed = [
        "foo",
        "FOO",
        "k",
        "x",
        "a",
        "user@example.com",
        "USER@EXAMPLE.COM",
        "1.2.3",
        "b",
    ];
    let parts = [
        "foo", "FOO", "k", "x", "a", "user", "@", "example", ".com", "1.2", ".3",
    ];
    let keys = with_random(&fixed, &mut rng, |r| random_word(r, &parts));
    bad.extend(compare(dir.path(), inline, &keys));
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn cidr_matches_postfix() {
    let Some(dir) = config_dir() else { return };
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let fixed = [
        "1.2.3.4",
        "01.2.3.4",
        "10.9.9.9",
        "10.1.2.3",
        "172.16.1.5",
        "172.16.1.200",
        "172.17.1.5",
        "192.168.1.1",
        "2001:db8::1",
        "2001:0db8:0:0::1",
        "[2001:db8::1]",
        "::ffff:1.2.3.7",
        "1.2.3.7",
        "::1",
        "[::1]",
        "127.0.0.1",
        "127.9.9.9",
        "[127.0.0.1]",
        "foo",
        "1.2.3.4.5",
        "0.0.0.0",
        "255.255.255.255",
        "::",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ];
    let keys = with_random(&fixed, &mut rng, random_ip);
    let mut bad = compare(dir.path(), &format!("cidr:{}", data("client.cidr")), &keys);
    let inline =
        "cidr:{ {1.2.3.0/24 net one}, {if !10.0.0.0/8}, {::/0 v6}, {endif}, {0.0.0.0/0 rest} }";
    bad.extend(compare(dir.path(), inline, &keys));
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

const PATTERN_PARTS: &[&str] = &[
    "a",
    "b",
    "c",
    "abc",
    "abcd",
    "d",
    "e",
    "x",
    "y",
    "z",
    "user",
    "+",
    "-",
    "@",
    "example",
    ".com",
    ".",
    "owner-",
    "-outgoing",
    "postmaster",
    "sales",
    "support",
    "admin",
    "12",
    "3",
    "Case",
    "CASE",
    "bad",
    "friend",
    "my.domain",
    "%",
    "!",
    "\\",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "tail",
    "pipe/delim",
    "dot",
    "ungreedy",
    "anch",
    "caps",
    "ABC",
];

#[test]
fn regexp_matches_postfix() {
    let Some(dir) = config_dir() else { return };
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    let fixed = [
        "ac",
        "abc",
        "ABC",
        "AC",
        "a!b@c",
        "postmaster@x.org",
        "list-outgoing@example.org",
        "owner-list-outgoing@example.org",
        "admin42@example.com",
        "admin@example.com",
        "sales+news@example.com",
        "a bad word@example.com",
        "Case",
        "CASE",
        "nodot",
        "1.2.3.4",
        "1234.1.1.1",
        "x(y)z",
        "xyz",
        "\\dot",
        ".dot",
        "user+tag@example.net",
        "pipe/delim",
        "abcde",
        "abcdde",
        "bad5",
        "badd",
        "tail",
        "tail.x",
    ];
    let keys = with_random(&fixed, &mut rng, |r| random_word(r, PATTERN_PARTS));
    let mut bad = compare(
        dir.path(),
        &format!("regexp:{}", data("access.regexp")),
        &keys,
    );
    let inline = "regexp:{ {/^(a)b/ got $1}, {if /c$/}, {/^(.)(.)/ two $2$1}, {endif} }";
    bad.extend(compare(dir.path(), inline, &keys));
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn pcre_matches_postfix() {
    let Some(dir) = config_dir() else { return };
    if !has_type(dir.path(), "pcre") {
        eprintln!(
            "NOTICE: this postmap has no pcre support (install postfix-pcre); pcre differential test skipped"
        );
        return;
    }
    let mut rng = XorShift(0x0dd_ba11_cafe_f00d);
    let fixed = [
        "list-outgoing@x.org",
        "owner-list-outgoing@x.org",
        "friend@other.org",
        "friend@my.domain",
        "x42y",
        "X42Y",
        "Case",
        "CASE",
        "ungreedyaaa",
        "anchor",
        "xanch",
        "joe@example.com",
        "9joe@mail.example.com",
        "a+b@c.d",
        "abcde",
        "abcdde",
        "1.2.3.4",
        "tail",
        "capsABC",
        "capsabc",
    ];
    let keys = with_random(&fixed, &mut rng, |r| random_word(r, PATTERN_PARTS));
    let mut bad = compare(dir.path(), &format!("pcre:{}", data("access.pcre")), &keys);
    let inline = "pcre:{ {/^(a)b/ got $1}, {if /c$/}, {/^(.)(.)/ two $2$1}, {endif} }";
    bad.extend(compare(dir.path(), inline, &keys));
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
