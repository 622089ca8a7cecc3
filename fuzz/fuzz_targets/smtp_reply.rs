//! Fuzz target `smtp_reply`: ReplyParser on arbitrary chunks, EhloCaps, and the
//! encode/parse round trip of every reply parsed.
#![no_main]

use postern_smtp_proto::{EhloCaps, ReplyLimits, ReplyParser};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else { return };
    let limits = ReplyLimits { max_line: 64 << (ctl & 3), max_lines: usize::from(ctl >> 2) + 1 };
    let chunk = usize::from(ctl >> 5) + 1;
    let mut parser = ReplyParser::new(limits);
    for mut piece in input.chunks(chunk) {
        while !piece.is_empty() {
            let Ok((n, reply)) = parser.feed(piece) else { return };
            assert!(n <= piece.len());
            piece = &piece[n..];
            let Some(reply) = reply else {
                assert!(piece.is_empty());
                continue;
            };
            assert!(reply.lines.len() <= limits.max_lines);
            let _caps = EhloCaps::from_reply(&reply);
            let wire = reply.encode();
            let mut p2 = ReplyParser::new(ReplyLimits { max_line: usize::MAX / 2, max_lines: usize::MAX });
            let (m, again) = p2.feed(wire.as_bytes()).expect("own encoding must parse");
            assert_eq!(m, wire.len());
            assert_eq!(again.as_ref(), Some(&reply), "reply round trip of {wire:?}");
        }
    }
});
