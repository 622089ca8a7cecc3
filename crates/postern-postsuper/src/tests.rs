use super::*;
use args::{Action, Target};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

#[derive(Default)]
struct Lines(Vec<String>);

impl ops::Report for Lines {
    fn info(&mut self, text: String) {
        self.0.push(text);
    }
    fn warning(&mut self, text: String) {
        self.0.push(format!("warning: {text}"));
    }
}

fn queue() -> (tempfile::TempDir, Queue) {
    let d = tempfile::tempdir().unwrap();
    for sub in postern_queue::ALL_DIRS {
        fs::create_dir(d.path().join(sub)).unwrap();
    }
    let q = Queue::new(d.path());
    (d, q)
}

fn put(q: &Queue, queue: &str, id: &str) {
    let p = q.dir(queue).join(id);
    fs::write(&p, b"queue file").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).unwrap();
}

fn run_ops(q: &Queue, ops: &[(Action, Target)], restrict: &[&str], stdin: &str) -> Vec<String> {
    let mut r = Lines::default();
    let restrict: Vec<String> = restrict.iter().map(|s| s.to_string()).collect();
    ops::run_ops(q, ops, &restrict, &mut stdin.as_bytes(), &mut r);
    r.0
}

fn id(s: &str) -> Target {
    Target::Id(s.into())
}

#[test]
fn delete_by_id_removes_message_and_logs() {
    let (_d, q) = queue();
    put(&q, "deferred", "AAA1");
    put(&q, "hold", "AAA2");
    for log in ["bounce", "defer", "trace"] {
        fs::write(q.dir(log).join("AAA1"), b"log").unwrap();
    }
    let out = run_ops(
        &q,
        &[
            (Action::Delete, id("AAA1")),
            (Action::Delete, id("NOPE")),
            (Action::Delete, id("bad/id")),
        ],
        &[],
        "",
    );
    assert_eq!(
        out,
        [
            "AAA1: removed",
            "warning: invalid mail queue id: bad/id",
            "Deleted: 1 message"
        ]
    );
    assert_eq!(q.locate("AAA1"), None);
    assert!(!q.dir("defer").join("AAA1").exists() && !q.dir("bounce").join("AAA1").exists());
    assert_eq!(q.locate("AAA2"), Some("hold"));
}

#[test]
fn all_respects_queue_names_and_skips_unready_files() {
    let (_d, q) = queue();
    put(&q, "deferred", "D1");
    put(&q, "deferred", "D2");
    put(&q, "incoming", "I1");
    put(&q, "incoming", "I2");
    fs::set_permissions(
        q.dir("incoming").join("I2"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let out = run_ops(&q, &[(Action::Hold, Target::All)], &["deferred"], "");
    assert_eq!(out, ["Placed on hold: 2 messages"]);
    assert_eq!(q.locate("D1"), Some("hold"));
    assert_eq!(q.locate("I1"), Some("incoming"));
    let out = run_ops(&q, &[(Action::Delete, Target::All)], &[], "");
    assert_eq!(out, ["Deleted: 3 messages"]);
    assert_eq!(
        q.locate("I2"),
        Some("incoming"),
        "a file being written is left alone"
    );
}

#[test]
fn hold_release_requeue() {
    let (_d, q) = queue();
    put(&q, "active", "A1");
    put(&q, "deferred", "B2");
    let out = run_ops(
        &q,
        &[(Action::Hold, id("A1")), (Action::Hold, id("B2"))],
        &[],
        "",
    );
    assert_eq!(
        out,
        [
            "A1: placed on hold",
            "B2: placed on hold",
            "Placed on hold: 2 messages"
        ]
    );
    // Holding what is on hold already changes nothing.
    assert_eq!(
        run_ops(&q, &[(Action::Hold, id("A1"))], &["hold"], ""),
        ["Placed on hold: 0 messages"]
    );
    let old = SystemTime::now() - Duration::from_secs(86400);
    fs::File::options()
        .write(true)
        .open(q.dir("hold").join("A1"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let out = run_ops(&q, &[(Action::Release, id("A1"))], &[], "");
    assert_eq!(
        out,
        ["A1: released from hold", "Released from hold: 1 message"]
    );
    let mtime = fs::metadata(q.dir("deferred").join("A1"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(
        mtime > SystemTime::now() - Duration::from_secs(60),
        "retry time reset"
    );
    let out = run_ops(&q, &[(Action::Requeue, Target::All)], &[], "");
    assert_eq!(out, ["Requeued: 2 messages"]);
    assert_eq!(q.locate("A1"), Some("maildrop"));
    assert_eq!(q.locate("B2"), Some("maildrop"));
}

#[test]
fn ids_from_stdin() {
    let (_d, q) = queue();
    put(&q, "deferred", "S1");
    put(&q, "active", "S2");
    let out = run_ops(
        &q,
        &[(Action::Delete, Target::Stdin)],
        &[],
        "S1\n\n  S2*\nS3\n../x\n",
    );
    assert_eq!(
        out,
        [
            "S1: removed",
            "S2: removed",
            "warning: invalid mail queue id: ../x",
            "Deleted: 2 messages"
        ]
    );
}

#[test]
fn actions_are_grouped_with_one_summary_each() {
    let (_d, q) = queue();
    put(&q, "deferred", "G1");
    let out = run_ops(
        &q,
        &[
            (Action::Hold, id("G1")),
            (Action::Delete, id("X")),
            (Action::Hold, id("Y")),
        ],
        &[],
        "",
    );
    assert_eq!(
        out,
        [
            "G1: placed on hold",
            "Placed on hold: 1 message",
            "Deleted: 0 messages"
        ]
    );
}

#[test]
fn privilege_rule() {
    assert!(may_administer(0, 105));
    assert!(may_administer(105, 105));
    assert!(!may_administer(1000, 105));
}

#[test]
fn purge_removes_unfinished_files_only_when_master_is_down() {
    let (_d, q) = queue();
    fs::write(q.dir("incoming").join("t.1.2"), b"partial").unwrap();
    put(&q, "incoming", "DONE1");
    let mut r = Lines::default();
    purge(&q, &mut r).unwrap();
    assert_eq!(r.0, ["Purged: 1 unfinished file"]);
    assert_eq!(q.locate("DONE1"), Some("incoming"));
    let pid = q.root().join("pid/master.pid");
    fs::write(&pid, b"1\n").unwrap();
    let held = fs::File::open(&pid).unwrap();
    assert!(postern_sys::lock::flock_try_exclusive(&held, "pid").unwrap());
    assert_eq!(purge(&q, &mut r).unwrap_err().code, exit::TEMPFAIL);
    drop(held);
    purge(&q, &mut r).unwrap();
}

#[test]
fn run_with_a_config_dir() {
    let (d, _q) = queue();
    let conf = tempfile::tempdir().unwrap();
    fs::write(
        conf.path().join("main.cf"),
        format!(
            "queue_directory = {}\nmaillog_file = {}/maillog\n",
            d.path().display(),
            conf.path().display()
        ),
    )
    .unwrap();
    let a = args::Args {
        ops: vec![(Action::Delete, Target::All)],
        config: Some(conf.path().to_path_buf()),
        ..Default::default()
    };
    let mut r = Lines::default();
    run_with(&a, &mut &b""[..], &mut r, &|_| Ok(())).unwrap();
    assert_eq!(r.0, ["Deleted: 0 messages"]);
}

#[test]
fn os_error_suffixes_are_dropped() {
    assert_eq!(
        crate::plain("open x: No such file or directory (os error 2): more (os error x)"),
        "open x: No such file or directory: more (os error x)"
    );
}

#[test]
fn purge_keeps_a_maildrop_file_postdrop_may_still_be_writing() {
    let (_d, q) = queue();
    fs::write(q.dir("maildrop").join("t.9.9"), b"being written").unwrap();
    let mut r = Lines::default();
    purge(&q, &mut r).unwrap();
    assert!(q.dir("maildrop").join("t.9.9").exists());
}
