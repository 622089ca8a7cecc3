use super::*;
use std::fs;

fn args(v: &[&str]) -> Result<Args, Fatal> {
    let v: Vec<OsString> = v.iter().map(OsString::from).collect();
    parse_args(&v)
}

#[test]
fn arguments() {
    assert_eq!(args(&["postqueue", "-p"]).unwrap().mode, Mode::List);
    assert_eq!(args(&["postqueue", "-j"]).unwrap().mode, Mode::Json);
    assert_eq!(args(&["postqueue", "-f"]).unwrap().mode, Mode::Flush);
    assert_eq!(
        args(&["postqueue", "-s", "example.com"]).unwrap().mode,
        Mode::FlushSite("example.com".into())
    );
    assert_eq!(
        args(&["postqueue", "-iABC123"]).unwrap().mode,
        Mode::FlushId("ABC123".into())
    );
    let a = args(&["postqueue", "-c", "/etc/x", "-v", "-p"]).unwrap();
    assert_eq!(a.config, Some(PathBuf::from("/etc/x")));
    assert_eq!(a.verbose, 1);
    for bad in [
        &["postqueue"][..],
        &["postqueue", "-p", "-j"],
        &["postqueue", "-i", "../etc"],
        &["postqueue", "-c"],
        &["postqueue", "-x"],
        &["postqueue", "-px"],
        &["postqueue", "extra", "-p"],
    ] {
        assert_eq!(args(bad).unwrap_err().code, exit::USAGE, "{bad:?}");
    }
}

#[test]
fn os_error_suffixes_are_dropped() {
    assert_eq!(
        crate::plain("open x: No such file or directory (os error 2): more (os error x)"),
        "open x: No such file or directory: more (os error x)"
    );
}

#[test]
fn flush_service_statuses_give_postfix_texts() {
    use postern_ipc::flush::FlushStatus;
    assert_eq!(flush_status_fatal(Ok(FlushStatus::Ok), "x", true), None);
    let f = flush_status_fatal(Ok(FlushStatus::Deny), "example.com", true).unwrap();
    assert_eq!(f.code, exit::UNAVAILABLE);
    assert_eq!(
        f.msg,
        "Flush service is not configured for destination \"example.com\""
    );
    let f = flush_status_fatal(Ok(FlushStatus::Bad), "ABC", false).unwrap();
    assert_eq!(
        (f.code, f.msg.as_str()),
        (exit::USAGE, "Invalid request: \"ABC\"")
    );
    for s in [Ok(FlushStatus::Fail), Err("connect: refused".to_string())] {
        let f = flush_status_fatal(s, "x", true).unwrap();
        assert_eq!(
            (f.code, f.msg.as_str()),
            (
                exit::UNAVAILABLE,
                "Cannot flush mail queue - mail system is down"
            )
        );
    }
}

#[test]
fn flush_and_list_with_the_mail_system_down() {
    let conf = tempfile::tempdir().unwrap();
    fs::write(
        conf.path().join("main.cf"),
        format!(
            "queue_directory = {d}/nope\nmaillog_file = {d}/maillog\nmail_owner = no-such-user-x\n",
            d = conf.path().display()
        ),
    )
    .unwrap();
    let cfg = postern_server::load::load(conf.path()).unwrap().config;
    let e = flush(&cfg).unwrap_err();
    assert_eq!(e.code, exit::UNAVAILABLE);
    assert_eq!(e.msg, "Cannot flush mail queue - mail system is down");
    if postern_sys::privs::real_uid() != 0 {
        let e = list(&cfg, conf.path(), false, &mut Vec::new()).unwrap_err();
        assert_eq!(e.code, exit::UNAVAILABLE);
        assert_eq!(e.msg, "Queue report unavailable - mail system is down");
    }
}

#[test]
fn showq_replies() {
    let frame = |pairs: &[(&str, &str)]| {
        let mut a = postern_ipc::AttrList::new();
        for (k, v) in pairs {
            a.push(k, v);
        }
        postern_ipc::encode_frame(&a)
    };
    let mut ok = frame(&[("data", "Mail queue ")]);
    ok.extend(frame(&[("data", "is empty\n")]));
    ok.extend(frame(&[("status", "0")]));
    assert_eq!(
        relay::read_reply(&mut ok.as_slice()).unwrap(),
        b"Mail queue is empty\n"
    );
    let bad = frame(&[("status", "1"), ("reason", "opendir x: Permission denied")]);
    let e = relay::read_reply(&mut bad.as_slice()).unwrap_err();
    assert_eq!(e.code, exit::TEMPFAIL);
    assert!(e.msg.contains("Permission denied"), "{}", e.msg);
    let cut = frame(&[("data", "partial")]);
    let e = relay::read_reply(&mut cut.as_slice()).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (exit::SOFTWARE, "malformed showq server reply")
    );
}
