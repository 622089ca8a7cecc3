use super::*;
use postern_qfile::RecipientRecord;
use std::fs;

fn sample() -> Vec<u8> {
    let mut q = QueueFile {
        arrival: (1_700_000_000, 0),
        sender: "joe".into(),
        attrs: vec![
            ("flags".into(), "0".into()),
            ("origin_uid".into(), "0".into()),
            ("origin_user".into(), "root".into()),
            ("rewrite_context".into(), "local".into()),
        ],
        recipients: vec![RecipientRecord {
            address: "u@x".into(),
            original: "u@x".into(),
            ..Default::default()
        }],
        content: b"Subject: x\n\nbody\n".to_vec(),
        ..Default::default()
    };
    postern_qfile::encode(&mut q)
}

fn args(v: &[&str]) -> Result<Args, Fatal> {
    let v: Vec<OsString> = v.iter().map(OsString::from).collect();
    parse_args(&v)
}

#[test]
fn arguments() {
    assert_eq!(args(&["postdrop"]).unwrap(), Args::default());
    let a = args(&["postdrop", "-r", "-c", "/x", "-v"]).unwrap();
    assert_eq!(a.config, Some(PathBuf::from("/x")));
    assert_eq!(a.verbose, 1);
    assert_eq!(
        args(&["postdrop", "-c/y"]).unwrap().config,
        Some("/y".into())
    );
    assert_eq!(args(&["postdrop", "-c"]).unwrap_err().code, exit::USAGE);
    assert_eq!(args(&["postdrop", "x"]).unwrap_err().code, exit::USAGE);
}

#[test]
fn limits() {
    assert_eq!(input_limit(1000), 2000 + (1 << 20));
    assert_eq!(input_limit(0), (2u64 << 30) + (1 << 20));
    let big = [0u8; 100];
    assert_eq!(
        read_bounded(&mut &big[..], 99).unwrap_err().code,
        exit::DATAERR
    );
    assert_eq!(read_bounded(&mut &big[..], 100).unwrap().len(), 100);
}

fn v(bytes: &[u8], limit: u64) -> Result<Vec<u8>, Fatal> {
    validate(bytes, limit, 1, &mut |_| {})
}

#[test]
fn validation_refuses_garbage_and_drops_foreign_attributes() {
    let good = sample();
    let mut warnings = Vec::new();
    let out = validate(&good, 1 << 20, 1234, &mut |w| warnings.push(w)).unwrap();
    let q = postern_qfile::parse(&out, 1 << 20).unwrap();
    assert_eq!(q.attr("origin_uid"), None);
    assert_eq!(q.attr("origin_user"), None);
    assert_eq!(q.attr("rewrite_context"), Some("local"));
    assert_eq!(q.attr("flags"), Some("0"));
    assert_eq!(
        warnings,
        [
            "uid=1234: ignoring attribute record: origin_uid=0",
            "uid=1234: ignoring attribute record: origin_user=root"
        ]
    );
    assert_eq!(q.sender, "joe");
    let mut f = postern_qfile::parse(&good, 1 << 20).unwrap();
    f.attrs = vec![
        ("filter".into(), "smtp:evil".into()),
        ("rewrite_context".into(), "trusted".into()),
        ("envid".into(), "E1".into()),
    ];
    let out = v(&postern_qfile::encode(&mut f), 1 << 20).unwrap();
    let q = postern_qfile::parse(&out, 1 << 20).unwrap();
    assert_eq!(q.attrs, vec![("envid".to_string(), "E1".to_string())]);
    for n in [0, 5, good.len() - 1] {
        assert_eq!(v(&good[..n], 1 << 20).unwrap_err().code, exit::DATAERR);
    }
    let mut trailing = good.clone();
    trailing.push(b'x');
    assert_eq!(v(&trailing, 1 << 20).unwrap_err().code, exit::DATAERR);
    assert_eq!(v(&good, 4).unwrap_err().code, exit::DATAERR);
}

#[test]
fn envelope_fields_are_checked() {
    let mut q = postern_qfile::parse(&sample(), 1 << 20).unwrap();
    q.recipients[0].address = "u@x\nforged".into();
    let bytes = postern_qfile::encode(&mut q);
    assert_eq!(v(&bytes, 1 << 20).unwrap_err().code, exit::DATAERR);
    let mut q = postern_qfile::parse(&sample(), 1 << 20).unwrap();
    q.attrs[0].1 = "EXTRACT".into();
    let bytes = postern_qfile::encode(&mut q);
    assert!(v(&bytes, 1 << 20).unwrap_err().msg.contains("bad flags"));
}

fn instance() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let q = d.path().join("queue");
    for sub in postern_queue::ALL_DIRS {
        fs::create_dir_all(q.join(sub)).unwrap();
    }
    fs::write(
        d.path().join("main.cf"),
        format!(
            "queue_directory = {}\nmaillog_file = {}\n",
            q.display(),
            d.path().join("maillog").display()
        ),
    )
    .unwrap();
    let dir = d.path().to_path_buf();
    (d, dir)
}

#[test]
fn stores_in_maildrop_without_master() {
    let (_d, dir) = instance();
    let a = Args {
        config: Some(dir.clone()),
        verbose: 0,
    };
    let id = run(&a, &mut &sample()[..]).unwrap();
    let q = Queue::new(dir.join("queue"));
    assert_eq!(q.locate(&id), Some("maildrop"));
    let e = q.list("maildrop").unwrap();
    assert_eq!(e.len(), 1);
    assert!(e[0].ready);
    let qf = q.read("maildrop", &id, 1 << 20).unwrap();
    assert_eq!(qf.recipients[0].address, "u@x");
    assert_eq!(qf.attr("origin_uid"), None);
    use std::os::unix::fs::MetadataExt;
    let owner = fs::metadata(dir.join("queue/maildrop").join(&id))
        .unwrap()
        .uid();
    assert_eq!(owner, postern_sys::privs::real_uid());
    // Invalid input leaves nothing behind.
    assert_eq!(run(&a, &mut &b"junk"[..]).unwrap_err().code, exit::DATAERR);
    assert_eq!(q.list("maildrop").unwrap().len(), 1);
}

#[test]
fn authorized_submit_users_is_enforced() {
    let (_d, dir) = instance();
    let main = dir.join("main.cf");
    let mut text = fs::read_to_string(&main).unwrap();
    text.push_str("authorized_submit_users = no-such-user-here\n");
    fs::write(&main, &text).unwrap();
    let a = Args {
        config: Some(dir.clone()),
        verbose: 0,
    };
    let e = run(&a, &mut &sample()[..]).unwrap_err();
    assert_eq!(e.code, exit::NOPERM);
    assert!(
        e.msg.ends_with("is not allowed to submit mail"),
        "{}",
        e.msg
    );
    text.push_str("authorized_submit_users = nosuchtype:/x\n");
    fs::write(&main, &text).unwrap();
    assert_eq!(
        run(&a, &mut &sample()[..]).unwrap_err().code,
        exit::TEMPFAIL
    );
    assert!(
        Queue::new(dir.join("queue"))
            .list("maildrop")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn missing_queue_is_a_config_error() {
    let (_d, dir) = instance();
    fs::remove_dir(dir.join("queue/maildrop")).unwrap();
    let q = Queue::new(dir.join("queue"));
    assert_eq!(store(&q, &sample()).unwrap_err().code, exit::CONFIG);
}

#[test]
fn os_error_suffixes_are_dropped() {
    assert_eq!(
        crate::plain("open x: No such file or directory (os error 2): more (os error x)"),
        "open x: No such file or directory: more (os error x)"
    );
}
