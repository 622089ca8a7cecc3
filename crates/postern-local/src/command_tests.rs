//! Unit tests of command deliveries.

use super::*;
use std::os::unix::process::ExitStatusExt;

#[test]
fn argv_shell_rule() {
    assert_eq!(
        argv("/usr/bin/procmail -a x", ""),
        ["/usr/bin/procmail", "-a", "x"]
    );
    assert_eq!(argv("cat > /tmp/x", ""), ["/bin/sh", "-c", "cat > /tmp/x"]);
    assert_eq!(argv("  ", ""), ["/bin/sh", "-c", "  "]);
    assert_eq!(
        argv("a b", "/bin/bash -e -c"),
        ["/bin/bash", "-e", "-c", "a b"]
    );
}

#[test]
fn exit_status_mapping() {
    let st = |code: i32| Some(ExitStatus::from_raw(code << 8));
    assert!(outcome("x", st(0), b"").is_ok());
    let e = outcome("x", st(75), b"").unwrap_err();
    assert_eq!(
        (e.permanent, e.dsn.as_str(), e.text.as_str()),
        (false, "4.3.0", "temporary failure")
    );
    let e = outcome("x", st(77), b"no\tway\n").unwrap_err();
    assert_eq!(
        (e.permanent, e.dsn.as_str(), e.text.as_str()),
        (true, "5.7.0", "permission denied. Command output: no way ")
    );
    let e = outcome("x y", st(3), b"\x01oops").unwrap_err();
    assert_eq!(
        e.text,
        "Command died with status 3: \"x y\". Command output: _oops"
    );
    assert_eq!(e.dsn, "5.3.0");
    let e = outcome("x", st(1), b"5.1.1 no such mailbox\n").unwrap_err();
    assert_eq!(
        (e.permanent, e.dsn.as_str(), e.text.as_str()),
        (true, "5.1.1", "no such mailbox ")
    );
    let e = outcome("x", Some(ExitStatus::from_raw(9)), b"").unwrap_err();
    assert_eq!(
        (e.permanent, e.text.as_str()),
        (false, "Command died with signal 9: \"x\"")
    );
    let e = outcome("x", None, b"").unwrap_err();
    assert_eq!(
        (e.permanent, e.text.as_str()),
        (true, "Command time limit exceeded: \"x\"")
    );
}

#[test]
fn time_limit_kills_the_process_group() {
    let d = tempfile::tempdir().unwrap();
    let marker = d.path().join("late");
    let spec = Spec {
        command: format!("(sleep 3; touch {}) & sleep 30", marker.display()),
        time_limit: Duration::from_secs(1),
        ..Spec::default()
    };
    let start = Instant::now();
    let (status, _out) = run(&spec, b"").unwrap();
    assert!(status.is_none());
    assert!(start.elapsed() < Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!marker.exists(), "the background child was killed too");
}

#[test]
fn input_environment_and_output() {
    let spec = Spec {
        command: "cat; echo \"[$FOO] $PATH\"".into(),
        env: vec![
            ("FOO".into(), "bar".into()),
            ("PATH".into(), "/usr/bin:/bin".into()),
        ],
        time_limit: Duration::from_secs(10),
        ..Spec::default()
    };
    let (status, out) = run(&spec, b"hello\n").unwrap();
    assert!(status.unwrap().success());

    assert_eq!(
        String::from_utf8_lossy(&out),
        "hello\n[bar] /usr/bin:/bin\n"
    );
    let spec = Spec {
        command: "/no/such/program".into(),
        time_limit: Duration::from_secs(10),
        ..Spec::default()
    };
    let e = run(&spec, b"").unwrap_err();
    assert!(
        !e.permanent && e.text.contains("execvp /no/such/program"),
        "{e:?}"
    );
}
