//! Unit tests of the delivery switch (non-root unless stated).

use super::*;
use postern_ipc::proto::{CleanupStatus, notify};
use postern_sys::privs;
use std::cell::RefCell;
use std::path::Path;

fn settings(spool: &Path) -> LocalSettings {
    LocalSettings {
        mail_spool_directory: spool.display().to_string(),
        recipient_delimiter: "+".into(),
        deliver_lock_attempts: 2,
        myorigin: "localhost".into(),
        mydestination: vec!["localhost".into()],
        ..LocalSettings::default()
    }
}

fn request(rcpts: &[&str]) -> DeliverRequest {
    DeliverRequest {
        queue_name: "active".into(),
        queue_id: "ABC123".into(),
        transport: "local".into(),
        nexthop: "localhost".into(),
        sender: "alice@example.org".into(),
        arrival: 1_795_387_000.0,
        active_since: 1_795_387_001.0,
        recipients: rcpts.iter().map(|r| Recipient::new(*r)).collect(),
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

/// Records what would go to cleanup and other transports.
#[derive(Default)]
struct Fake {
    cleanup: RefCell<Vec<CleanupRequest>>,
    passed: RefCell<Vec<DeliverRequest>>,
}

impl Services for Fake {
    fn pass(&self, req: &DeliverRequest) -> Result<RcptResult, String> {
        self.passed.borrow_mut().push(req.clone());
        Ok(RcptResult {
            recipient: req.recipients[0].clone(),
            action: Action::Sent,
            dsn: "2.0.0".into(),
            text: "delivered via lmtp".into(),
            relay: "dovecot".into(),
        })
    }
    fn cleanup(&self, req: &CleanupRequest) -> Result<CleanupReply, String> {
        self.cleanup.borrow_mut().push(req.clone());
        Ok(CleanupReply {
            status: CleanupStatus::Ok,
            queue_id: "NEWQID".into(),
            reason: String::new(),
        })
    }
}

fn run(s: &LocalSettings, svc: &dyn Services, rcpts: &[&str], content: &[u8]) -> DeliverReply {
    let t = Tables::open(s);
    deliver(s, &t, svc, &request(rcpts), &qf(content))
}

fn summary(r: &DeliverReply) -> Vec<(Action, String, String)> {
    r.results
        .iter()
        .map(|r| (r.action, r.dsn.clone(), r.text.clone()))
        .collect()
}

#[test]
fn non_root_spool_delivery_and_results() {
    let d = tempfile::tempdir().unwrap();
    let s = settings(d.path());
    let req = request(&[
        "Bob+ext@localhost",
        "../evil@localhost",
        ".x@localhost",
        "@localhost",
        "carol@localhost",
    ]);
    let reply = deliver(
        &s,
        &Tables::open(&s),
        &NoServices,
        &req,
        &qf(b"Subject: hi\n\nFrom me\n"),
    );
    let got: Vec<_> = reply
        .results
        .iter()
        .map(|r| (r.action, r.dsn.as_str(), r.relay.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Action::Sent, "2.0.0", "local"),
            (Action::Bounce, "5.1.3", "local"),
            (Action::Bounce, "5.1.3", "local"),
            (Action::Bounce, "5.1.3", "local"),
            (Action::Sent, "2.0.0", "local"),
        ]
    );
    assert_eq!(reply.results[0].recipient, req.recipients[0]);
    assert_eq!(reply.results[0].text, "delivered to mailbox");
    let bob = std::fs::read_to_string(d.path().join("bob")).unwrap();
    assert!(bob.starts_with("From alice@example.org  "), "{bob}");
    assert!(bob.contains("\nReturn-Path: <alice@example.org>\nX-Original-To: Bob+ext@localhost\nDelivered-To: Bob+ext@localhost\nSubject: hi\n\n>From me\n\n"), "{bob}");
}

#[test]
fn maildir_spool_and_loop() {
    let d = tempfile::tempdir().unwrap();
    let s = settings(&d.path().join("spool"));
    let mut sp = s.clone();
    sp.mail_spool_directory.push('/');
    let reply = run(&sp, &NoServices, &["u@localhost"], b"Subject: a\n\nb\n");
    assert_eq!(reply.results[0].text, "delivered to maildir");
    assert_eq!(
        std::fs::read_dir(d.path().join("spool/u/new"))
            .unwrap()
            .count(),
        1
    );
    let reply = run(
        &s,
        &NoServices,
        &["x@localhost"],
        b"Delivered-To: X@Localhost\nSubject: a\n\nb\n",
    );
    assert_eq!(
        summary(&reply),
        [(
            Action::Bounce,
            "5.4.6".into(),
            "mail forwarding loop for x@localhost".into()
        )]
    );
}

#[test]
fn aliases_expand_locally_and_forward_remote_addresses() {
    let d = tempfile::tempdir().unwrap();
    let mut s = settings(d.path());
    s.alias_maps = vec![
        "inline:{ {postmaster=root}, {root=carol, dave@remote.example}, {team=carol, erin} }"
            .into(),
    ];
    let fake = Fake::default();
    let reply = run(
        &s,
        &fake,
        &["postmaster@localhost", "team@localhost"],
        b"Subject: a\n\nb\n",
    );
    assert_eq!(summary(&reply)[0].0, Action::Sent);
    assert_eq!(summary(&reply)[1].0, Action::Sent);
    // carol got both, erin one; Delivered-To names the alias (frozen_delivered_to).
    let carol = std::fs::read_to_string(d.path().join("carol")).unwrap();
    assert_eq!(carol.matches("\nSubject: a\n").count(), 2, "{carol}");
    assert!(
        carol.contains("Delivered-To: postmaster@localhost\n"),
        "{carol}"
    );
    assert!(
        carol.contains("X-Original-To: postmaster@localhost\n"),
        "{carol}"
    );
    assert!(d.path().join("erin").exists());
    let sent = fake.cleanup.borrow();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].sender, "alice@example.org");
    assert_eq!(sent[0].recipients[0].address, "dave@remote.example");
    assert_eq!(sent[0].recipients[0].original, "postmaster@localhost");
    assert!(
        sent[0]
            .content
            .starts_with(b"Delivered-To: postmaster@localhost\nSubject: a\n")
    );
    assert_eq!(sent[0].flags, cleanup_flags_bounce());
}

fn cleanup_flags_bounce() -> u32 {
    postern_ipc::proto::cleanup_flags::BOUNCE_ON_REJECT
}

#[test]
fn owner_alias_sets_sender_and_forwards_local_members() {
    let d = tempfile::tempdir().unwrap();
    let mut s = settings(d.path());
    s.alias_maps = vec!["inline:{ {list=carol, dave}, {owner-list=carol} }".into()];
    let fake = Fake::default();
    let reply = run(&s, &fake, &["list@localhost"], b"Subject: a\n\nb\n");
    assert_eq!(reply.results[0].action, Action::Sent);
    let sent = fake.cleanup.borrow();
    assert_eq!(sent.len(), 1, "members are re-submitted from the owner");
    assert_eq!(sent[0].sender, "owner-list@localhost");
    let to: Vec<_> = sent[0]
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(to, ["carol@localhost", "dave@localhost"]);
    assert!(sent[0].recipients.iter().all(|r| r.original.is_empty()));
    let mut s2 = s.clone();
    s2.expand_owner_alias = true;
    let fake = Fake::default();
    run(&s2, &fake, &["list@localhost"], b"\n");
    assert_eq!(fake.cleanup.borrow()[0].sender, "carol@localhost");
}

#[test]
fn alias_loops_and_self_reference() {
    let d = tempfile::tempdir().unwrap();
    let mut s = settings(d.path());
    s.alias_maps = vec!["inline:{ {a=b}, {b=a}, {me=me, other} }".into()];
    let reply = run(&s, &NoServices, &["a@localhost", "me@localhost"], b"\n");
    // a -> b -> a: the second "a" is an alias naming... b's expansion, a
    // duplicate-free loop that ends at the nesting limit.
    assert_eq!(reply.results[0].action, Action::Bounce, "{reply:?}");
    assert_eq!(reply.results[0].dsn, "5.4.6");
    assert_eq!(reply.results[1].action, Action::Sent);
    assert!(
        d.path().join("me").exists(),
        "an alias naming itself means the user"
    );
    assert!(d.path().join("other").exists());
}

#[test]
fn commands_files_and_restrictions() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out.mbox");
    let cmd_out = d.path().join("cmd.txt");
    let mut s = settings(d.path());
    s.alias_maps = vec![format!(
        "inline:{{ {{f={}}}, {{c=\"|cat > {} ; echo $SENDER $RECIPIENT $LOCAL >> {}\"}}, {{bad=\"|exit 67;\"}}, {{soft=\"|echo busy; exit 75\"}}, {{dsn=\"|echo 4.2.1 try later; exit 1\"}}, {{ex=/bin/true}} }}",
        out.display(),
        cmd_out.display(),
        cmd_out.display()
    )];
    let reply = run(
        &s,
        &NoServices,
        &[
            "f@localhost",
            "c@localhost",
            "bad@localhost",
            "soft@localhost",
            "dsn@localhost",
            "ex@localhost",
        ],
        b"Subject: s\n\nFrom x\n",
    );
    let got = summary(&reply);
    assert_eq!(
        got[0],
        (
            Action::Sent,
            "2.0.0".into(),
            format!("delivered to file: {}", out.display())
        )
    );
    assert_eq!(got[1].0, Action::Sent, "{got:?}");
    assert_eq!(
        got[2],
        (Action::Bounce, "5.1.1".into(), "user unknown".into())
    );
    assert_eq!(
        got[3],
        (
            Action::Defer,
            "4.3.0".into(),
            "temporary failure. Command output: busy ".into()
        )
    );
    assert_eq!(got[4], (Action::Defer, "4.2.1".into(), "try later ".into()));
    assert_eq!(
        got[5],
        (
            Action::Bounce,
            "5.7.1".into(),
            "cannot append message to file /bin/true: file is executable".into()
        )
    );
    let mbox = std::fs::read_to_string(&out).unwrap();
    assert!(mbox.starts_with("From alice@example.org "), "{mbox}");
    assert!(mbox.contains("Delivered-To: f@localhost\n") && mbox.contains("\n>From x\n\n"));
    let c = std::fs::read_to_string(&cmd_out).unwrap();
    assert!(c.starts_with("From alice@example.org "), "{c}");
    assert!(
        c.contains("Delivered-To: c@localhost\nSubject: s\n\nFrom x\n"),
        "{c}"
    );
    assert!(c.ends_with("alice@example.org c@localhost c\n"), "{c}");

    let mut s2 = s.clone();
    s2.allow_commands = 0;
    s2.allow_files = crate::settings::exp::FORWARD;
    let got = summary(&run(
        &s2,
        &NoServices,
        &["c@localhost", "f@localhost"],
        b"\n",
    ));
    assert_eq!(
        got[0],
        (
            Action::Bounce,
            "5.7.1".into(),
            "mail to command is restricted".into()
        )
    );
    assert_eq!(
        got[1],
        (
            Action::Bounce,
            "5.7.1".into(),
            "mail to file is restricted".into()
        )
    );
}

#[test]
fn include_files_and_symlinks() {
    let d = tempfile::tempdir().unwrap();
    let list = d.path().join("list");
    let target = d.path().join("target");
    std::fs::write(&target, b"").unwrap();
    let link = d.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::fs::write(&list, format!("# members\nzed, {}\n", link.display())).unwrap();
    let mut s = settings(d.path());
    s.allow_files = crate::settings::exp::ALIAS | crate::settings::exp::INCLUDE;
    s.alias_maps = vec![format!(
        "inline:{{ {{inc=:include:{}}}, {{rel=:include:x}} }}",
        list.display()
    )];
    let fake = Fake::default();
    let reply = run(&s, &fake, &["inc@localhost", "rel@localhost"], b"\n");
    assert_eq!(reply.results[0].action, Action::Defer, "{reply:?}");
    assert!(reply.results[0].text.contains("symbolic link"), "{reply:?}");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        b"",
        "never written through a symlink"
    );
    // Deferred: the include file's forward of zed is cancelled.
    assert!(fake.cleanup.borrow().is_empty());
    assert_eq!(
        summary(&reply)[1],
        (
            Action::Bounce,
            "5.3.5".into(),
            "mail system configuration error".into()
        )
    );
}

#[test]
fn transports_luser_relay_and_unknown() {
    let d = tempfile::tempdir().unwrap();
    let mut s = settings(d.path());
    s.mailbox_transport_maps = vec!["inline:{ viauser=lmtp:[127.0.0.1]:24 }".into()];
    let fake = Fake::default();
    let reply = run(&s, &fake, &["viauser@localhost"], b"\n");
    assert_eq!(reply.results[0].relay, "dovecot");
    let p = &fake.passed.borrow()[0];
    assert_eq!(
        (p.transport.as_str(), p.nexthop.as_str()),
        ("lmtp", "[127.0.0.1]:24")
    );
    s.mailbox_transport = "dovecot".into();
    let fake = Fake::default();
    run(&s, &fake, &["x@localhost"], b"\n");
    assert_eq!(fake.passed.borrow()[0].nexthop, "localhost");
    let reply = run(&s, &NoServices, &["x@localhost"], b"\n");
    assert_eq!(
        summary(&reply)[0],
        (
            Action::Defer,
            "4.3.0".into(),
            "mail transport unavailable".into()
        )
    );
}

#[test]
fn duplicate_filter_and_notify() {
    let d = tempfile::tempdir().unwrap();
    let mut s = settings(d.path());
    s.alias_maps =
        vec!["inline:{ {l=x@remote.example, x@remote.example, y@remote.example} }".into()];
    let fake = Fake::default();
    let t = Tables::open(&s);
    let mut req = request(&["l@localhost"]);
    req.recipients[0].notify = notify::SUCCESS | notify::FAILURE;
    deliver(&s, &t, &fake, &req, &qf(b"\n"));
    let sent = fake.cleanup.borrow();
    assert_eq!(sent[0].recipients.len(), 2, "duplicate suppressed");
    assert_eq!(sent[0].recipients[0].notify, notify::FAILURE);
    drop(sent);
    s.duplicate_filter_limit = 1;
    let fake = Fake::default();
    run(&s, &fake, &["l@localhost"], b"\n");
    assert_eq!(
        fake.cleanup.borrow()[0].recipients.len(),
        3,
        "a full filter remembers nothing"
    );
}

/// A table that cannot be opened defers the recipients that need it (4.3.0) and
/// nothing is written or passed on: never "continue without the table".
#[test]
fn broken_tables_defer() {
    let d = tempfile::tempdir().unwrap();
    let broken = vec!["hash:/nonexistent/postern/table".to_string()];
    type Param = fn(&mut LocalSettings) -> &mut Vec<String>;
    let cases: [(Param, &str); 3] = [
        (|s| &mut s.alias_maps, "alias database unavailable"),
        (|s| &mut s.mailbox_transport_maps, "table lookup failure"),
        (|s| &mut s.mailbox_command_maps, "table lookup failure"),
    ];
    for (param, text) in cases {
        let mut s = settings(d.path());
        *param(&mut s) = broken.clone();
        let fake = Fake::default();
        let reply = run(&s, &fake, &["bob@localhost"], b"Subject: x\n\nx\n");
        let want = (Action::Defer, "4.3.0".to_string(), text.to_string());
        assert_eq!(summary(&reply), [want]);
        assert!(fake.passed.borrow().is_empty() && fake.cleanup.borrow().is_empty());
        assert!(!d.path().join("bob").exists());
    }
}

#[test]
fn unknown_user_as_root() {
    let d = tempfile::tempdir().unwrap();
    let mut s = settings(d.path());
    s.as_root = true;
    let reply = run(
        &s,
        &NoServices,
        &["no-such-user-postern-test@localhost"],
        b"\n",
    );
    assert_eq!(
        summary(&reply),
        [(
            Action::Bounce,
            "5.1.1".into(),
            "unknown user: \"no-such-user-postern-test\"".into()
        )]
    );
    s.luser_relay = "catchall+$user".into();
    let reply = run(
        &s,
        &NoServices,
        &["no-such-user-postern-test@localhost"],
        b"\n",
    );
    // catchall does not exist either: the relay of the relay is itself.
    assert_eq!(
        reply.results[0].text,
        "<catchall+catchall@localhost>: unknown user: \"catchall\""
    );
}

/// Effective-id switches apply to every thread of the process, so the
/// root test runs alone in a child process (the test binary itself).
#[test]
fn as_root_spool_mbox_is_owned_by_the_user() {
    if !privs::is_root() {
        eprintln!("not root: skipping");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "deliver::tests::as_root_child",
            "--ignored",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "run by as_root_spool_mbox_is_owned_by_the_user in a child process"]
fn as_root_child() {
    let Ok(Some(nobody)) = privs::lookup_user("nobody") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let mut s = settings(d.path());
    s.as_root = true;
    let reply = run(&s, &NoServices, &["nobody@localhost"], b"Subject: a\n\nb\n");
    assert_eq!(
        reply.results[0].action,
        Action::Sent,
        "{:?}",
        reply.results[0]
    );
    let md = std::fs::metadata(d.path().join("nobody")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((md.uid(), md.mode() & 0o777), (nobody.uid, 0o600));
    assert!(!d.path().join("nobody.lock").exists());
    assert_eq!(privs::effective_uid(), 0);
    as_root_maildirs(&nobody);
}

/// Root's Maildir accepts only root-owned directories and no symbolic link;
/// a user's Maildir in a root-only spool is made by root and given to them.
fn as_root_maildirs(nobody: &privs::UserInfo) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let d = tempfile::tempdir().unwrap();
    let spool = d.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut s = settings(&spool);
    s.mail_spool_directory.push('/');
    s.as_root = true;
    let root_md = spool.join("root");
    std::fs::create_dir(&root_md).unwrap();
    std::os::unix::fs::chown(&root_md, Some(nobody.uid), None).unwrap();
    let deferred = |what: &str| {
        let r = run(&s, &NoServices, &["root@localhost"], b"Subject: a\n\nb\n");
        let r = &r.results[0];
        assert_eq!(
            (r.action, r.dsn.as_str()),
            (Action::Defer, "4.2.0"),
            "{r:?}"
        );
        assert!(r.text.contains(what), "{what}: {r:?}");
    };
    deferred(&format!("is owned by uid {}", nobody.uid));
    std::os::unix::fs::chown(&root_md, Some(0), None).unwrap();
    let elsewhere = d.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, root_md.join("new")).unwrap();
    deferred(&format!("{}/new is a symbolic link", root_md.display()));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    std::fs::remove_file(root_md.join("new")).unwrap();
    let r = run(
        &s,
        &NoServices,
        &["root@localhost", "nobody@localhost"],
        b"Subject: a\n\nb\n",
    );
    assert!(r.results.iter().all(|r| r.action == Action::Sent), "{r:?}");
    let md = std::fs::metadata(spool.join("nobody")).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o777), (nobody.uid, 0o700));
    let md = std::fs::metadata(spool.join("nobody/new")).unwrap();
    assert_eq!(md.uid(), nobody.uid);
    assert_eq!(privs::effective_uid(), 0);
}
