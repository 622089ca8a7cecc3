//! Unit tests of the proxy filter client: dot-stuffing and XFORWARD batching.

use super::*;

#[test]
fn stuffing() {
    let w = stuffed(b"Received: x\n", b".a\nb\n..\n");
    assert_eq!(w, b"Received: x\r\n..a\r\nb\r\n...\r\n");
    let w = stuffed(b"H: 1\n", b" folded\n");
    assert_eq!(w, b"H: 1\r\n\r\n folded\r\n");
    assert_eq!(stuffed(b"", b"no newline"), b"no newline\r\n");
}

#[test]
fn xforward_split_and_unavailable() {
    let attrs = vec![
        ("NAME", Some("a b".to_string())),
        ("PORT", None),
        ("HELO", Some("x".repeat(480))),
        ("PROTO", Some("ESMTP".to_string())),
    ];
    let offered: Vec<String> = ["NAME", "PORT", "HELO", "PROTO"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let l = xforward_lines(&attrs, &offered);
    assert_eq!(l[0], "XFORWARD NAME=a+20b PORT=[UNAVAILABLE]");
    assert!(l[1].starts_with("XFORWARD HELO=xxx"));
    assert!(l[1].ends_with(" PROTO=ESMTP"));
    assert!(xforward_lines(&attrs, &[]).is_empty());
    assert!(l.iter().all(|c| c.len() <= 512));
}
