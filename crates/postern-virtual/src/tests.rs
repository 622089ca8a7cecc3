//! Unit tests of virtual delivery as a non-root process (the root paths are
//! covered by the integration tests, which run a root instance).

use crate::deliver::deliver;
use crate::maps::Maps;
use crate::settings::VirtualSettings;
use postern_ipc::proto::{Action, DeliverRequest, Recipient};
use postern_mailbox::LockOptions;
use postern_qfile::QueueFile;
use std::path::Path;

fn settings(base: &Path, mailboxes: &str, uid: u32, gid: u32) -> VirtualSettings {
    let me = (
        postern_sys::privs::effective_uid(),
        postern_sys::privs::real_gid(),
    );
    VirtualSettings {
        base: base.display().to_string(),
        mailbox_maps: Maps::open("virtual_mailbox_maps", &[format!("inline:{{{mailboxes}}}")]),
        uid_maps: Maps::open("virtual_uid_maps", &[format!("static:{uid}")]),
        gid_maps: Maps::open("virtual_gid_maps", &[format!("static:{gid}")]),
        minimum_uid: 0,
        lock: LockOptions {
            deliver_lock_attempts: 2,
            mailbox_size_limit: 10_000,
            ..LockOptions::default()
        },
        delimiter: "+".into(),
        strict_owner: true,
        enable_original: true,
        myhostname: "mx.test".into(),
        own_ids: Some(me),
    }
}

fn mine(base: &Path, mailboxes: &str) -> VirtualSettings {
    let (u, g) = (
        postern_sys::privs::effective_uid(),
        postern_sys::privs::real_gid(),
    );
    let mut s = settings(base, mailboxes, u, g.max(1));
    s.own_ids = Some((u, g.max(1)));
    s
}

fn request(rcpts: &[(&str, &str)]) -> DeliverRequest {
    DeliverRequest {
        queue_name: "active".into(),
        queue_id: "ABC123".into(),
        transport: "virtual".into(),
        nexthop: "ex.org".into(),
        sender: "alice@example.org".into(),
        arrival: 1_795_387_000.0,
        active_since: 1_795_387_001.0,
        recipients: rcpts
            .iter()
            .map(|(a, o)| Recipient {
                original: o.to_string(),
                ..Recipient::new(*a)
            })
            .collect(),
        ..Default::default()
    }
}

fn qf(content: &[u8]) -> QueueFile {
    QueueFile {
        sender: "alice@example.org".into(),
        content: content.to_vec(),
        ..Default::default()
    }
}

fn results(r: &postern_ipc::proto::DeliverReply) -> Vec<(Action, String, String)> {
    r.results
        .iter()
        .map(|x| (x.action, x.dsn.clone(), x.text.clone()))
        .collect()
}

#[test]
fn maildir_mbox_and_unknown() {
    let d = tempfile::tempdir().unwrap();
    let s = mine(d.path(), "joe@ex.org=ex.org/joe/, ann@ex.org=ex.org/ann");
    std::fs::create_dir(d.path().join("ex.org")).unwrap();
    let req = request(&[
        ("Joe+x@EX.org", "alias@ex.org"),
        ("ann@ex.org", ""),
        ("zed@ex.org", ""),
    ]);
    let reply = deliver(&s, &req, &qf(b"Subject: hi\n\nFrom me\n"));
    assert_eq!(
        results(&reply),
        [
            (Action::Sent, "2.0.0".into(), "delivered to maildir".into()),
            (Action::Sent, "2.0.0".into(), "delivered to mailbox".into()),
            (
                Action::Bounce,
                "5.1.1".into(),
                "unknown user: \"zed@ex.org\"".into()
            ),
        ]
    );
    let new: Vec<_> = std::fs::read_dir(d.path().join("ex.org/joe/new"))
        .unwrap()
        .collect();
    assert_eq!(new.len(), 1);
    let msg = std::fs::read_to_string(new[0].as_ref().unwrap().path()).unwrap();
    assert_eq!(
        msg,
        "Return-Path: <alice@example.org>\nX-Original-To: alias@ex.org\n\
         Delivered-To: Joe+x@EX.org\nSubject: hi\n\nFrom me\n"
    );
    let mbox = std::fs::read_to_string(d.path().join("ex.org/ann")).unwrap();
    assert!(mbox.starts_with("From alice@example.org  "), "{mbox}");
    assert!(mbox.contains("\nDelivered-To: ann@ex.org\nSubject: hi\n\n>From me\n\n"));
}

#[test]
fn configuration_errors_defer() {
    let d = tempfile::tempdir().unwrap();
    let s = mine(d.path(), "a@ex.org=../escape/, b@ex.org=x/");
    let mut other = settings(d.path(), "b@ex.org=x/", 4_000_000, 4_000_000);
    other.own_ids = s.own_ids;
    let mut rel = mine(Path::new("relative"), "b@ex.org=x/");
    rel.base = "relative".into();
    let r = |s: &VirtualSettings, a: &str| {
        let reply = deliver(s, &request(&[(a, "")]), &qf(b"\n"));
        results(&reply).remove(0)
    };
    let a = r(&s, "a@ex.org");
    assert_eq!((a.0, a.1.as_str()), (Action::Defer, "4.3.5"));
    assert_eq!(a.2, "mail system configuration error");
    let b = r(&other, "b@ex.org");
    assert_eq!((b.0, b.1.as_str()), (Action::Defer, "4.3.5"));
    assert!(
        b.2.contains("cannot deliver as uid 4000000 gid 4000000"),
        "{}",
        b.2
    );
    assert_eq!(r(&rel, "b@ex.org").1, "4.3.5");
    let mut low = mine(d.path(), "b@ex.org=x/");
    low.minimum_uid = u32::MAX - 1;
    assert_eq!(r(&low, "b@ex.org").1, "4.3.5");
    assert!(!d.path().parent().unwrap().join("escape").exists());
}

#[test]
fn planted_symlink_and_size_limit() {
    let d = tempfile::tempdir().unwrap();
    let s = mine(d.path(), "l@ex.org=link, big@ex.org=big/");
    let target = d.path().join("target");
    std::fs::write(&target, b"").unwrap();
    std::os::unix::fs::symlink(&target, d.path().join("link")).unwrap();
    let reply = deliver(&s, &request(&[("l@ex.org", "")]), &qf(b"Subject: x\n\nb\n"));
    let (action, dsn, text) = results(&reply).remove(0);
    assert_eq!((action, dsn.as_str()), (Action::Defer, "4.2.0"), "{text}");
    assert!(text.starts_with("delivery failed to mailbox "), "{text}");
    assert_eq!(std::fs::read(&target).unwrap(), b"");
    let big = vec![b'x'; 20_000];
    let reply = deliver(&s, &request(&[("big@ex.org", "")]), &qf(&big));
    let (action, dsn, _) = results(&reply).remove(0);
    assert_eq!((action, dsn.as_str()), (Action::Bounce, "5.2.2"));
}
