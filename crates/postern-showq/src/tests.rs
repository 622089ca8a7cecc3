use super::*;
use listing::{Listed, Rcpt};
use postern_qfile::{QueueFile, RecipientRecord, statuslog};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const NOV22: u64 = 1_795_387_994; // Sun Nov 22 22:53:14 2026 UTC

fn rcpt(a: &str, done: bool) -> RecipientRecord {
    RecipientRecord {
        address: a.into(),
        original: a.into(),
        done,
        ..Default::default()
    }
}

fn put(root: &Path, queue: &str, id: &str, qf: &mut QueueFile, mode: u32) -> QueueFile {
    let p = root.join(queue).join(id);
    fs::write(&p, postern_qfile::encode(qf)).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    qf.clone()
}

fn msg(sender: &str, rcpts: Vec<RecipientRecord>, size: usize, arrival: u64) -> QueueFile {
    QueueFile {
        arrival: (arrival, 0),
        sender: sender.into(),
        recipients: rcpts,
        content: vec![b'x'; size],
        ..Default::default()
    }
}

fn defer(root: &Path, id: &str, qf: &QueueFile, addr: &str, reason: &str) {
    let r = qf.recipients.iter().find(|r| r.address == addr).unwrap();
    let line = statuslog::encode_entry(&statuslog::LogEntry {
        recipient: addr.into(),
        offset: r.offset,
        status: "4.4.1".into(),
        action: "delayed".into(),
        reason: reason.into(),
        ..Default::default()
    });
    let p = root.join("defer").join(id);
    let mut old = fs::read(&p).unwrap_or_default();
    old.extend_from_slice(line.as_bytes());
    fs::write(p, old).unwrap();
}

/// A queue with one message of each kind, plus things a listing must skip.
fn fixture() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    for q in postern_queue::ALL_DIRS {
        fs::create_dir(root.join(q)).unwrap();
    }
    let refused = "connect to 127.0.0.1[127.0.0.1]:1: Connection refused";
    let mut m = msg(
        "alice@ex.test",
        vec![
            rcpt("bob@remote.test", false),
            rcpt("done@remote.test", true),
            rcpt("carol@remote.test", false),
        ],
        255,
        NOV22,
    );
    let m = put(root, "deferred", "2186F98C0B2", &mut m, 0o700);
    defer(
        root,
        "2186F98C0B2",
        &m,
        "bob@remote.test",
        "an older reason",
    );
    defer(root, "2186F98C0B2", &m, "bob@remote.test", refused);
    defer(root, "2186F98C0B2", &m, "carol@remote.test", refused);
    let mut m = msg(
        "",
        vec![
            rcpt("dave@remote.test", false),
            rcpt("eve@remote.test", false),
        ],
        244,
        NOV22 + 1,
    );
    let m = put(root, "deferred", "2874398C253", &mut m, 0o700);
    defer(
        root,
        "2874398C253",
        &m,
        "eve@remote.test",
        "host mx.remote.test said: 451 try later",
    );
    let mut m = msg(
        "a b@ex.test",
        vec![rcpt("t@remote.test", false)],
        2000,
        NOV22 + 20,
    );
    let m = put(root, "hold", "27BDE98C255", &mut m, 0o700);
    defer(
        root,
        "27BDE98C255",
        &m,
        "t@remote.test",
        "This is a deliberately very long deferral reason text that goes on and on past the eighty column limit",
    );
    put(
        root,
        "active",
        "4B23598C",
        &mut msg(
            "root@oracle.test",
            vec![rcpt("x@remote.test", false)],
            300,
            NOV22 - 5,
        ),
        0o700,
    );
    put(
        root,
        "maildrop",
        "D9DF098C043",
        &mut msg("joe", vec![rcpt("user", false)], 12, 1_700_000_000),
        0o744,
    );
    // Skipped: a file still being written, a writer's temp file, a corrupt file.
    put(
        root,
        "incoming",
        "AAAAA1",
        &mut msg("x", vec![rcpt("y", false)], 1, NOV22),
        0o600,
    );
    fs::write(root.join("incoming/t.12.0"), b"partial").unwrap();
    fs::write(root.join("deferred/BADF00D"), b"this is not a queue file").unwrap();
    fs::set_permissions(
        root.join("deferred/BADF00D"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    d
}

fn collect(root: &Path) -> (Vec<Listed>, Vec<String>) {
    let mut warnings = Vec::new();
    let msgs = listing::collect(&Queue::new(root), 1 << 20, &mut |w| warnings.push(w)).unwrap();
    (msgs, warnings)
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&path, actual).unwrap();
    }
    let expected = fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(actual, expected, "golden file {} differs", path.display());
}

#[test]
fn mailq_text_golden() {
    let d = fixture();
    let (msgs, warnings) = collect(d.path());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("BADF00D: corrupt queue file"),
        "{warnings:?}"
    );
    golden(
        "mailq.ref",
        &listing::format_text(&msgs, &jiff::tz::TimeZone::UTC),
    );
}

#[test]
fn mailq_json_golden() {
    let d = fixture();
    let (msgs, _) = collect(d.path());
    let text: String = msgs.iter().map(listing::format_json).collect();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["recipients"].is_array() && v["forced_expire"] == false);
    }
    golden("mailq-json.ref", &text);
}

#[test]
fn empty_queue() {
    let d = tempfile::tempdir().unwrap();
    for q in postern_queue::ALL_DIRS {
        fs::create_dir(d.path().join(q)).unwrap();
    }
    let (msgs, warnings) = collect(d.path());
    assert!(msgs.is_empty() && warnings.is_empty());
    assert_eq!(
        listing::format_text(&msgs, &jiff::tz::TimeZone::UTC),
        "Mail queue is empty\n"
    );
}

#[test]
fn unreadable_queue_is_an_error_not_an_empty_queue() {
    let d = tempfile::tempdir().unwrap();
    let mut warnings = Vec::new();
    let r = listing::collect(&Queue::new(d.path().join("nope")), 1 << 20, &mut |w| {
        warnings.push(w)
    });
    assert!(r.is_err());
    let conf = config_for(d.path().join("nope").as_path());
    let listing = render(&conf.1, Format::Text);
    let mut out = Vec::new();
    write_reply(&mut out, &listing).unwrap();
    let frame = client::read_frame(&mut out.as_slice(), 1 << 20)
        .unwrap()
        .unwrap();
    assert_eq!(frame.text("status"), "1");
    assert!(frame.text("reason").contains("nope"), "{frame:?}");
}

#[test]
fn one_request_singular_and_odd_text_is_escaped() {
    let m = Listed {
        queue: "incoming".into(),
        id: "ABCDE12345".into(),
        arrival: NOV22,
        size: 1024,
        sender: "q\"uote@x".into(),
        forced_expire: false,
        recipients: vec![Rcpt {
            address: "r@x".into(),
            reason: Some("tab\there".into()),
        }],
    };
    let text = listing::format_text(std::slice::from_ref(&m), &jiff::tz::TimeZone::UTC);
    assert!(text.ends_with("-- 1 Kbytes in 1 Request.\n"), "{text}");
    assert!(
        text.contains("\nABCDE12345     1024 Sun Nov 22 22:53:14  \"q\\\"uote\"@x\n"),
        "{text}"
    );
    let json = listing::format_json(&m);
    assert!(json.contains(r#""delay_reason": "tab\there""#), "{json}");
    serde_json::from_str::<serde_json::Value>(&json).unwrap();
}

fn config_for(queue: &Path) -> (tempfile::TempDir, Config) {
    let conf = tempfile::tempdir().unwrap();
    fs::write(
        conf.path().join("main.cf"),
        format!(
            "queue_directory = {}\nmaillog_file = {}/maillog\n",
            queue.display(),
            conf.path().display()
        ),
    )
    .unwrap();
    let cfg = postern_server::load::load(conf.path()).unwrap().config;
    (conf, cfg)
}

#[test]
fn reply_frames_carry_the_whole_listing() {
    let d = fixture();
    let (_conf, cfg) = config_for(d.path());
    let listing = render(&cfg, Format::Json);
    let mut out = Vec::new();
    write_reply(&mut out, &listing).unwrap();
    let mut r = out.as_slice();
    let mut text = Vec::new();
    loop {
        let f = client::read_frame(&mut r, 1 << 20).unwrap().unwrap();
        if let Some(d) = f.get("data") {
            text.extend_from_slice(d);
            continue;
        }
        assert_eq!(f.text("status"), "0");
        break;
    }
    assert_eq!(String::from_utf8(text).unwrap().lines().count(), 5);
    assert_eq!(parse_request(&request(Format::Json)), Some(Format::Json));
    let mut bad = AttrList::new();
    bad.push("proto", "flush/1");
    assert_eq!(parse_request(&bad), None);
}
