//! postern-fuzz — the bodies of Postern's fuzz targets.
//!
//! Each function takes arbitrary bytes and must never panic, except through the
//! `assert!`s below, which state properties of the decoders (canonical encodings,
//! encode/decode round trips). A failing assertion is a bug in the decoder or
//! encoder under test, not in this file — unless the property itself is wrong, in
//! which case fix it here and say why.
//!
//! The same functions run under libFuzzer (`fuzz_targets/*.rs`, via `cargo fuzz`) and
//! as a plain test over `fuzz/seeds/` plus deterministic mutations
//! (`tests/seeds.rs`, via `cargo test`), which needs no nightly flags and no
//! cargo-fuzz.
#![forbid(unsafe_code)]

use postern_ipc::proto::{
    BounceReply, BounceRequest, CleanupReply, CleanupRequest, DeliverReply, DeliverRequest,
};
use postern_ipc::{AttrList, decode_frame_len};

/// Frame size limit used by the IPC target (the daemons derive theirs from
/// `message_size_limit`; the exact number does not matter to the decoder).
pub const IPC_LIMIT: u64 = 1 << 20;

/// Re-encodes a decoded request and decodes it again; the result must be the same
/// value. Compared through `Debug` so that floats compare by representation (NaN).
macro_rules! round_trip {
    ($ty:ty, $list:expr) => {
        if let Ok(v) = <$ty>::from_attrs($list) {
            let bytes = v.to_attrs().encode();
            let list2 = AttrList::decode(&bytes)
                .expect(concat!(stringify!($ty), ": own encoding must decode"));
            let v2 = <$ty>::from_attrs(&list2)
                .expect(concat!(stringify!($ty), ": own encoding must validate"));
            assert_eq!(
                format!("{v:?}"),
                format!("{v2:?}"),
                "{} round trip",
                stringify!($ty)
            );
        }
    };
}

/// `ipc_frame`: the whole input is one attribute-list payload (`postern_ipc` grammar);
/// its first four bytes are also tried as a frame header.
///
/// Properties: decoding never panics; a list that decodes re-encodes to exactly the
/// input (the encoding is canonical); every request type that validates survives
/// `to_attrs` → `encode` → `decode` → `from_attrs` unchanged.
pub fn ipc_frame(data: &[u8]) {
    if let Some(h) = data.first_chunk::<4>() {
        if let Ok(len) = decode_frame_len(*h, IPC_LIMIT) {
            assert!(
                len as u64 <= IPC_LIMIT,
                "decode_frame_len returned {len} above the limit"
            );
        }
    }
    let Ok(list) = AttrList::decode(data) else {
        return;
    };
    assert_eq!(list.encode(), data, "AttrList encoding is not canonical");
    round_trip!(CleanupRequest, &list);
    round_trip!(DeliverRequest, &list);
    round_trip!(BounceRequest, &list);
    round_trip!(postern_ipc::flush::FlushRequest, &list);
    // Replies travel the other way; decoding them must not panic. The results are
    // deliberately dropped: only the absence of a panic is checked.
    let _ = CleanupReply::from_attrs(&list);
    let _ = DeliverReply::from_attrs(&list);
    let _ = BounceReply::from_attrs(&list);
    let _ = postern_ipc::flush::FlushReply::from_attrs(&list);
}

/// `qfile_parse`: the input is a queue file.
///
/// Properties: parsing never panics under a large and a tiny record limit; whatever
/// parses under the tiny limit parses the same under the large one; a parsed file
/// re-encodes to bytes that parse to the same value (offsets aside).
pub fn qfile_parse(data: &[u8]) {
    let small = postern_qfile::parse(data, 64);
    let Ok(q) = postern_qfile::parse(data, 1 << 24) else {
        assert!(small.is_err(), "parses under limit 64 but not under 16 MiB");
        return;
    };
    if let Ok(s) = small {
        assert_eq!(s, q, "limit changed the parse result");
    }
    let mut again = q.clone();
    let bytes = postern_qfile::encode(&mut again);
    let q2 = postern_qfile::parse(&bytes, u64::MAX).expect("own encoding must parse");
    assert_eq!(strip_offsets(q), strip_offsets(q2), "queue file round trip");
}

fn strip_offsets(mut q: postern_qfile::QueueFile) -> postern_qfile::QueueFile {
    q.content_offset = 0;
    for r in &mut q.recipients {
        r.offset = 0;
    }
    q
}

/// Parameters read back in `main_cf` (a mix of kinds, some with `$name` defaults).
const MAIN_NAMES: &[&str] = &[
    "myhostname",
    "mydomain",
    "myorigin",
    "mydestination",
    "queue_directory",
    "message_size_limit",
    "alias_maps",
    "maillog_file",
    "mail_owner",
    "inet_interfaces",
];

/// `main_cf`: the input (lossily decoded as UTF-8) is a main.cf.
///
/// Properties: parsing, building a [`postern_config::Config`] and reading parameters
/// (with `$name` expansion, typed getters) never panic and stay bounded.
pub fn main_cf(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(main) = postern_config::parse_main_cf(&text) else {
        return;
    };
    let own: Vec<String> = main
        .entries
        .iter()
        .take(8)
        .map(|e| e.name.clone())
        .collect();
    let cfg = postern_config::Config::new(main);
    for name in MAIN_NAMES
        .iter()
        .copied()
        .chain(own.iter().map(String::as_str))
    {
        let v = cfg.get(name);
        assert!(
            v.len() <= postern_config::MAX_EXPANSION_OUTPUT + 1024,
            "{name}: expansion unbounded"
        );
        // Typed getters: any value may be of the wrong type; only panics matter.
        let _ = cfg.get_bool(name);
        let _ = cfg.get_int(name);
        let _ = cfg.get_time(name);
        let _ = cfg.get_list(name);
    }
}

/// `master_cf`: the input (lossily decoded as UTF-8) is a master.cf.
///
/// Properties: parsing never panics; every service it returns has a name and a command.
pub fn master_cf(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(master) = postern_config::parse_master_cf(&text) else {
        return;
    };
    for s in &master.services {
        assert!(
            !s.name.is_empty(),
            "service without a name at line {}",
            s.line
        );
        assert!(
            !s.command.is_empty(),
            "service {} without a command",
            s.name
        );
    }
}

/// `auth_headers`: postern-auth's header helpers, A-R method filter and Public Suffix
/// List (`postern_auth::fuzz::headers`), then smtpd's removal of incoming
/// `Authentication-Results:` headers with our authserv-id (the first word of the input):
/// it only ever removes, and a message without that header is left as it is.
pub fn auth_headers(data: &[u8]) {
    postern_auth::fuzz::headers(data);
    let id = String::from_utf8_lossy(data)
        .split_ascii_whitespace()
        .next()
        .unwrap_or("mx.example")
        .to_string();
    let out = postern_smtpd::auth::strip_our_results(data, &id);
    assert!(out.len() <= data.len());
    let lower = data.to_ascii_lowercase();
    if !lower.windows(22).any(|w| w == b"authentication-results") {
        assert_eq!(out, data, "nothing to remove");
    }
}
