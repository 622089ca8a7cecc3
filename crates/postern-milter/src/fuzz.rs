//! Fuzz target bodies (`fuzz/fuzz_targets/milter_packet.rs`, `milter_reply.rs`;
//! also run over `fuzz/seeds/` by `fuzz/tests/seeds.rs`). Each takes arbitrary
//! bytes and must never panic except through its assertions, which state
//! properties of the decoders.

use crate::codec::{Command, Response, frame};
use crate::milter::Edits;
use crate::reply;

/// `milter_packet`: the input is a byte stream as a milter (or an MTA) would
/// send it.
///
/// Properties: framing and decoding never panic; every response and command that
/// decodes survives encode → decode unchanged (a reply code's text gains the NUL
/// the encoder appends); edit requests are checked and applied to a small header
/// list without panicking, whatever their indexes.
pub fn packet(data: &[u8]) {
    let mut rest = data;
    let mut headers = vec![
        ("Received".to_string(), " r".to_string()),
        ("Subject".to_string(), " s".to_string()),
    ];
    let mut body = b"b\n".to_vec();
    let mut edits = Edits::new();
    while let Ok(Some(p)) = frame(rest) {
        rest = &rest[p.consumed..];
        if let Ok(r) = Response::decode(p.code, p.data) {
            let mut out = Vec::new();
            r.encode(&mut out);
            let q = frame(&out)
                .ok()
                .flatten()
                .expect("re-encoded response frames");
            let again = Response::decode(q.code, q.data).expect("re-encoded response decodes");
            match (&r, &again) {
                (Response::ReplyCode(a), Response::ReplyCode(b)) => {
                    assert_eq!(b.strip_suffix(b"\0"), Some(a.as_slice()));
                    reply(a);
                }
                _ => assert_eq!(r, again),
            }
            // Errors are the milter's fault and end its exchange; only panics matter.
            if edits.request(r, p.code & 1 == 0).is_err() {
                edits = Edits::new();
            }
        }
        if let Ok(c) = Command::decode(p.code, p.data) {
            let mut out = Vec::new();
            c.encode(&mut out);
            let q = frame(&out)
                .ok()
                .flatten()
                .expect("re-encoded command frames");
            assert_eq!(Command::decode(q.code, q.data).as_ref(), Ok(&c));
        }
    }
    for m in edits.finish() {
        crate::apply_hidden(&mut headers, 1, &mut body, &m);
    }
}

/// `milter_reply`: the input is the text of an SMFIR_REPLYCODE.
///
/// Properties: parsing never panics; an accepted reply has a 4xx/5xx code, at most
/// `MAX_LINES` lines without control characters, and (when the input has no `%`,
/// which the parser rewrites) formats back to text that parses to the same reply.
pub fn reply(data: &[u8]) {
    let Ok(r) = reply::parse(data) else {
        return;
    };
    assert!((400..600).contains(&r.code), "code {}", r.code);
    assert!(!r.lines.is_empty() && r.lines.len() <= reply::MAX_LINES);
    assert!(
        r.lines
            .iter()
            .all(|l| !l.chars().any(|c| c.is_control() && c != '\t'))
    );
    if !data.contains(&b'%') {
        let text = r.smtp_lines().join("\r\n");
        assert_eq!(reply::parse(text.as_bytes()).as_ref(), Ok(&r), "{text:?}");
    }
}
