use super::*;
use postern_qfile::RecipientRecord;
use std::fs;
use std::path::Path;

fn args(v: &[&str]) -> Result<Args, Fatal> {
    let v: Vec<OsString> = v.iter().map(OsString::from).collect();
    parse_args(&v)
}

const ALL: Show = Show {
    envelope: true,
    header: true,
    body: true,
};

#[test]
fn arguments() {
    let a = args(&["postcat", "-q", "ABC"]).unwrap();
    assert!(a.by_id && a.show == ALL);
    assert_eq!(a.operands, ["ABC"]);
    let b = args(&["postcat", "-bh", "-c", "/x", "/tmp/f"]).unwrap();
    assert_eq!(
        b.show,
        Show {
            envelope: false,
            header: true,
            body: true
        }
    );
    assert_eq!(b.config, Some(PathBuf::from("/x")));
    assert!(!b.by_id);
    assert_eq!(
        args(&["postcat", "-e", "-c/y", "f"]).unwrap().config,
        Some("/y".into())
    );
    assert_eq!(args(&["postcat"]).unwrap_err().code, exit::USAGE);
    assert_eq!(args(&["postcat", "-z", "f"]).unwrap_err().code, exit::USAGE);
    assert_eq!(args(&["postcat", "-c"]).unwrap_err().code, exit::USAGE);
}

fn sample() -> QueueFile {
    QueueFile {
        arrival: (1_795_388_014, 42),
        fullname: "Full Name".into(),
        sender: "a b@ex.test".into(),
        attrs: vec![
            ("rewrite_context".into(), "local".into()),
            ("envid".into(), "ENV1".into()),
        ],
        recipients: vec![
            RecipientRecord {
                address: "x@remote.test".into(),
                original: "x@remote.test".into(),
                orcpt: "rfc822;x@remote.test".into(),
                notify: 8,
                ..Default::default()
            },
            RecipientRecord {
                address: "done@remote.test".into(),
                done: true,
                ..Default::default()
            },
        ],
        content: b"Subject: long\nFrom: Full Name <\"a b\"@ex.test>\n\nx\n".to_vec(),
        ..Default::default()
    }
}

fn golden(name: &str, actual: &[u8]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&path, actual).unwrap();
    }
    let expected = fs::read(&path).unwrap_or_default();
    assert_eq!(
        String::from_utf8_lossy(actual),
        String::from_utf8_lossy(&expected),
        "golden file {} differs",
        path.display()
    );
}

#[test]
fn render_golden() {
    let tz = jiff::tz::TimeZone::UTC;
    let q = sample();
    golden("all.ref", &render(&q, "deferred/6CFFE98C1E3", ALL, &tz));
    let only = |e, h, b| Show {
        envelope: e,
        header: h,
        body: b,
    };
    golden(
        "envelope.ref",
        &render(&q, "deferred/6CFFE98C1E3", only(true, false, false), &tz),
    );
    assert_eq!(
        render(&q, "x", only(false, true, false), &tz),
        b"Subject: long\nFrom: Full Name <\"a b\"@ex.test>\n"
    );
    assert_eq!(render(&q, "x", only(false, false, true), &tz), b"\nx\n");
}

#[test]
fn content_without_final_newline_or_header() {
    let mut q = sample();
    q.content = b"no header, no newline".to_vec();
    let out = render(&q, "f", ALL, &jiff::tz::TimeZone::UTC);
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("no header, no newline\n*** HEADER EXTRACTED f ***\n")
    );
}

fn instance() -> (tempfile::TempDir, Args) {
    let d = tempfile::tempdir().unwrap();
    let qdir = d.path().join("queue");
    for sub in postern_queue::ALL_DIRS {
        fs::create_dir_all(qdir.join(sub)).unwrap();
    }
    fs::write(
        d.path().join("main.cf"),
        format!(
            "queue_directory = {}\nmaillog_file = {}/maillog\n",
            qdir.display(),
            d.path().display()
        ),
    )
    .unwrap();
    fs::write(qdir.join("hold/AB12"), postern_qfile::encode(&mut sample())).unwrap();
    fs::write(qdir.join("deferred/BAD1"), b"POSTERNQ\x01garbage").unwrap();
    let a = Args {
        show: ALL,
        by_id: true,
        config: Some(d.path().to_path_buf()),
        operands: vec![],
    };
    (d, a)
}

#[test]
fn by_queue_id() {
    let (_d, mut a) = instance();
    a.operands = vec!["AB12".into()];
    let mut out = Vec::new();
    run(&a, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("*** ENVELOPE RECORDS hold/AB12 ***\n"),
        "{text}"
    );
    assert!(text.ends_with("*** MESSAGE FILE END hold/AB12 ***\n"));

    a.operands = vec!["NOPE1".into()];
    let e = run(&a, &mut Vec::new()).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (
            exit::FAIL,
            "open queue file NOPE1: No such file or directory"
        )
    );
    a.operands = vec!["BAD1".into()];
    let e = run(&a, &mut Vec::new()).unwrap_err();
    assert_eq!(e.code, exit::FAIL);
    assert!(
        e.msg.starts_with("deferred/BAD1: corrupt queue file ("),
        "{}",
        e.msg
    );
    a.operands = vec!["../etc".into()];
    assert_eq!(run(&a, &mut Vec::new()).unwrap_err().code, exit::USAGE);
}

#[test]
fn by_path() {
    let (d, _a) = instance();
    let path = d.path().join("queue/hold/AB12").display().to_string();
    let a = args(&["postcat", "-h", &path]).unwrap();
    let mut out = Vec::new();
    run(&a, &mut out).unwrap();
    assert_eq!(out, b"Subject: long\nFrom: Full Name <\"a b\"@ex.test>\n");
    let bad = d.path().join("main.cf").display().to_string();
    let e = run(&args(&["postcat", &bad]).unwrap(), &mut Vec::new()).unwrap_err();
    assert!(
        e.msg
            .ends_with("corrupt queue file (bad magic (not a Postern queue file))"),
        "{}",
        e.msg
    );
    let e = run(
        &args(&["postcat", "/nonexistent/x"]).unwrap(),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(e.code, exit::FAIL);
}

#[test]
fn os_error_suffixes_are_dropped() {
    assert_eq!(
        crate::plain("open x: No such file or directory (os error 2): more (os error x)"),
        "open x: No such file or directory: more (os error x)"
    );
}
