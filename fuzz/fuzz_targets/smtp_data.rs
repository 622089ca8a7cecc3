//! Fuzz target `smtp_data`: DataReader and BdatReader on arbitrary chunks.
//!
//! Byte 0 picks the bare-newline policy, size limit and chunk size. Properties:
//! no panic; chunking does not change the result; DATA stops exactly after the first
//! end-of-data sequence (`CRLF.CRLF` under normalize/reject, also `LF.LF`/`LF.CRLF`
//! under `no`, counting the DATA command's own CRLF) and never before; output never
//! outgrows input; BDAT consumes exactly the chunk size.
#![no_main]

use postern_smtp_proto::{BareNewline, BdatReader, DataConfig, DataReader, Feed};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else { return };
    let bare_newline = [BareNewline::No, BareNewline::Normalize, BareNewline::Reject][usize::from(ctl % 3)];
    let message_size_limit = if ctl & 4 != 0 { 16 } else { 0 };
    let cfg = DataConfig { bare_newline, message_size_limit };
    let chunk = usize::from(ctl >> 3) + 1;

    let whole = run_data(cfg, input, input.len().max(1));
    let chunked = run_data(cfg, input, chunk);
    assert_eq!(whole, chunked, "chunking changed the DATA result");
    let (out, consumed) = whole;
    assert!(out.len() <= input.len());
    if message_size_limit != 0 {
        assert!(out.len() as u64 <= message_size_limit);
    }
    assert_eq!(consumed, expected_end(bare_newline, input), "DATA end position");

    run_bdat(cfg, input, chunk);
});

fn run_data(cfg: DataConfig, input: &[u8], chunk: usize) -> (Vec<u8>, Option<usize>) {
    let mut r = DataReader::new(cfg);
    let mut out = Vec::new();
    let mut offset = 0;
    for piece in input.chunks(chunk) {
        if let Feed::Done { consumed } = r.feed(piece, &mut out) {
            assert!(consumed <= piece.len());
            return (out, Some(offset + consumed));
        }
        offset += piece.len();
    }
    (out, None)
}

/// Position just after the first end-of-data sequence, treating the input as if
/// preceded by the DATA command's CRLF.
fn expected_end(mode: BareNewline, input: &[u8]) -> Option<usize> {
    let mut s = b"\r\n".to_vec();
    s.extend_from_slice(input);
    let find = |pat: &[u8]| s.windows(pat.len()).position(|w| w == pat).map(|i| i + pat.len() - 2);
    match mode {
        BareNewline::No => [find(b"\n.\n"), find(b"\n.\r\n")].into_iter().flatten().min(),
        _ => find(b"\r\n.\r\n"),
    }
}

fn run_bdat(cfg: DataConfig, input: &[u8], chunk: usize) {
    let mut r = BdatReader::new(cfg);
    let mut out = Vec::new();
    let sizes = input.chunks(chunk.max(2) / 2 + 1);
    let n = sizes.len();
    let mut rest = input;
    for (i, c) in input.chunks(chunk.max(2) / 2 + 1).enumerate() {
        let last = i + 1 == n;
        r.start_chunk(c.len() as u64, last);
        let mut fed = 0;
        while fed < c.len() || c.is_empty() {
            let piece = &rest[fed..rest.len().min(fed + chunk)];
            match r.feed(piece, &mut out) {
                Feed::Done { consumed } => {
                    fed += consumed;
                    break;
                }
                Feed::NeedMore => fed += piece.len(),
            }
        }
        assert_eq!(fed, c.len(), "BDAT consumed the wrong number of octets");
        rest = &rest[fed..];
    }
    assert!(rest.is_empty());
    assert!(out.len() <= input.len());
    if n > 0 {
        assert!(r.is_done());
    }
}
