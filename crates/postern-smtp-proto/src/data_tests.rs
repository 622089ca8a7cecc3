use super::*;

fn cfg(bare_newline: BareNewline) -> DataConfig {
    DataConfig {
        bare_newline,
        message_size_limit: 0,
    }
}

/// Feed all at once and byte by byte; both must agree. Returns (content, consumed).
fn data(mode: BareNewline, input: &[u8]) -> (Vec<u8>, Option<usize>, Result<u64, DataError>) {
    let mut r = DataReader::new(cfg(mode));
    let mut out = Vec::new();
    let consumed = match r.feed(input, &mut out) {
        Feed::Done { consumed } => Some(consumed),
        Feed::NeedMore => None,
    };
    let mut r2 = DataReader::new(cfg(mode));
    let mut out2 = Vec::new();
    let mut consumed2 = None;
    for (i, b) in input.iter().enumerate() {
        if let Feed::Done { consumed } = r2.feed(std::slice::from_ref(b), &mut out2) {
            assert_eq!(consumed, 1);
            consumed2 = Some(i + 1);
            break;
        }
    }
    assert_eq!((&out, consumed), (&out2, consumed2));
    (out, consumed, r.result())
}

#[test]
fn normal_message_and_unstuffing() {
    let (out, n, res) = data(
        BareNewline::Normalize,
        b"Subject: x\r\n\r\n..a\r\n.b\r\nc\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(out, b"Subject: x\n\n.a\nb\nc\n");
    assert_eq!(n, Some(29));
    assert_eq!(res, Ok(19));
}

#[test]
fn empty_message() {
    assert_eq!(data(BareNewline::Normalize, b".\r\n").1, Some(3));
}

/// Observed on Postfix 3.7.11 with smtpd_forbid_bare_newline = normalize:
/// "a\r\n.\nb\r\n..c\r\n.d\r\nx\n.\r\ny\r\n.\r\n" is queued as "a b .c d x y".
#[test]
fn normalize_matches_postfix() {
    let input = b"a\r\n.\nb\r\n..c\r\n.d\r\nx\n.\r\ny\r\n.\r\n";
    let (out, n, res) = data(BareNewline::Normalize, input);
    assert_eq!(out, b"a\nb\n.c\nd\nx\ny\n");
    assert_eq!(n, Some(input.len()));
    assert_eq!(res, Ok(13));
}

#[test]
fn smuggling_forms_do_not_end_data_when_strict() {
    for mode in [BareNewline::Normalize, BareNewline::Reject] {
        for input in [
            &b"a\n.\nMAIL FROM:<x>\r\n"[..],
            b"a\r\n.\nX\r\n",
            b"a\n.\r\nX\r\n",
            b"a\r.\r\nX",
        ] {
            assert_eq!(data(mode, input).1, None, "{mode:?} {input:?}");
        }
    }
    assert_eq!(data(BareNewline::No, b"a\n.\nX").1, Some(4));
    assert_eq!(data(BareNewline::No, b"a\r\n.\nX").1, Some(5));
    assert_eq!(data(BareNewline::No, b"a\n.\r\nX").1, Some(5));
    // A bare CR is content everywhere.
    assert_eq!(data(BareNewline::No, b"a\r.\r\nX").1, None);
}

#[test]
fn reject_flags_bare_lf_but_reads_to_the_end() {
    let (_, n, res) = data(BareNewline::Reject, b"a\nb\r\n.\r\n");
    assert_eq!(n, Some(8));
    assert_eq!(res, Err(DataError::BareLf));
    let (out, _, res) = data(BareNewline::Reject, b"a\r\nb\r\r\nc\rd\r\n.\r\n");
    assert_eq!(out, b"a\nb\r\nc\rd\n");
    assert_eq!(res, Ok(9));
}

#[test]
fn dot_cr_non_lf_keeps_cr() {
    let (out, _, _) = data(BareNewline::Normalize, b".\rx\r\n.\r\n");
    assert_eq!(out, b"\rx\n");
}

#[test]
fn size_limit_keeps_consuming() {
    let mut r = DataReader::new(DataConfig {
        bare_newline: BareNewline::Normalize,
        message_size_limit: 4,
    });
    let mut out = Vec::new();
    assert_eq!(r.feed(b"12345678\r\n", &mut out), Feed::NeedMore);
    assert_eq!(r.feed(b".\r\nQUIT", &mut out), Feed::Done { consumed: 3 });
    assert!(out.len() <= 4);
    assert_eq!(r.result(), Err(DataError::TooBig));
    assert_eq!(
        DataError::TooBig.reply("h", 550).encode(),
        "552 5.3.4 Message size exceeds fixed limit\r\n"
    );
    assert_eq!(
        DataError::BareLf.reply("pfx.test", 550).encode(),
        "550 5.5.2 pfx.test Error: bare <LF> received\r\n"
    );
}

#[test]
fn long_lines_stream_without_bound_issues() {
    let mut input = vec![b'x'; 100_000];
    input.extend_from_slice(b"\r\n.\r\n");
    let (out, n, _) = data(BareNewline::Normalize, &input);
    assert_eq!(out.len(), 100_001);
    assert_eq!(n, Some(input.len()));
}

fn bdat(chunks: &[(&[u8], bool)], mode: BareNewline) -> (Vec<u8>, Result<u64, DataError>) {
    let mut r = BdatReader::new(cfg(mode));
    let mut out = Vec::new();
    for (chunk, last) in chunks {
        r.start_chunk(chunk.len() as u64, *last);
        let mut extra = chunk.to_vec();
        extra.extend_from_slice(b"NEXT");
        assert_eq!(
            r.feed(&extra, &mut out),
            Feed::Done {
                consumed: chunk.len()
            }
        );
    }
    assert!(r.is_done());
    (out, r.result())
}

#[test]
fn bdat_chunks() {
    let (out, res) = bdat(
        &[(b"a\r", false), (b"\nb.\r\n.\r\n", false), (b"", true)],
        BareNewline::Normalize,
    );
    assert_eq!(out, b"a\nb.\n.\n");
    assert_eq!(res, Ok(7));
    let (out, _) = bdat(&[(b"x\r", true)], BareNewline::Normalize);
    assert_eq!(out, b"x\r");
    let (_, res) = bdat(&[(b"x\ny", true)], BareNewline::Reject);
    assert_eq!(res, Err(DataError::BareLf));
    let (_, res) = bdat(&[(b"x\ny", true)], BareNewline::Normalize);
    assert_eq!(res, Ok(3));
}

#[test]
fn bdat_need_more() {
    let mut r = BdatReader::new(DataConfig::default());
    let mut out = Vec::new();
    r.start_chunk(5, true);
    assert_eq!(r.feed(b"ab", &mut out), Feed::NeedMore);
    assert_eq!(r.feed(b"cdeQUIT", &mut out), Feed::Done { consumed: 3 });
    assert_eq!(out, b"abcde");
}
