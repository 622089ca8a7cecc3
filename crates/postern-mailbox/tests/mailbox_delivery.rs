//! Local delivery checked by independent readers: Python's `mailbox` module
//! (Maildir and mbox) and Dovecot's `doveadm`, plus locking and the refusals
//! of unsafe mailbox files.

use postern_mailbox::LockOptions;
use postern_mailbox::{maildir, mbox};
use postern_sys::privs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

fn settings() -> LockOptions {
    LockOptions {
        deliver_lock_attempts: 3,
        deliver_lock_delay: 1,
        ..LockOptions::default()
    }
}

/// Runs a Python snippet with `args`; `None` (test skipped) without python3.
fn python(script: &str, args: &[&str]) -> Option<String> {
    let out = match Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
    {
        Ok(o) => o,
        Err(_) => {
            eprintln!("python3 not found: skipping");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

const MESSAGE: &[u8] =
    b"From: Alice <alice@example.org>\nSubject: test\n\nFrom the start\nline two\n";

#[test]
fn maildir_is_read_by_python() {
    let d = tempfile::tempdir().unwrap();
    let md = d.path().join("Maildir");
    for i in 0..3 {
        let prefix = format!("Return-Path: <alice@example.org>\nDelivered-To: u{i}@localhost\n");
        maildir::deliver(&md, prefix.as_bytes(), MESSAGE, "host.example").unwrap();
    }
    let script = "import mailbox, sys\n\
        box = mailbox.Maildir(sys.argv[1], create=False)\n\
        msgs = sorted(box, key=lambda m: m['Delivered-To'])\n\
        print(len(msgs))\n\
        for m in msgs: print(m['Delivered-To'], m['Subject'], repr(m.get_payload()))\n";
    let Some(out) = python(script, &[md.to_str().unwrap()]) else {
        return;
    };
    assert_eq!(
        out,
        "3\n\
         u0@localhost test 'From the start\\nline two\\n'\n\
         u1@localhost test 'From the start\\nline two\\n'\n\
         u2@localhost test 'From the start\\nline two\\n'\n"
    );
}

#[test]
fn mbox_is_read_by_python_with_from_quoting() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("user");
    let s = settings();
    mbox::deliver(
        &path,
        "alice@example.org",
        1_795_387_248,
        b"Delivered-To: u@localhost\n",
        MESSAGE,
        &s,
    )
    .unwrap();
    mbox::deliver(
        &path,
        "",
        1_795_387_249,
        b"",
        b"Subject: second\n\nno final newline",
        &s,
    )
    .unwrap();
    let script = "import mailbox, sys\n\
        box = mailbox.mbox(sys.argv[1], create=False)\n\
        for m in box: print(repr(m.get_from()), m['Subject'], repr(m.get_payload()))\n";
    let Some(out) = python(script, &[path.to_str().unwrap()]) else {
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("'alice@example.org  ")
            && lines[0].ends_with("test '>From the start\\nline two\\n'"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("'MAILER-DAEMON  ")
            && lines[1].ends_with("second 'no final newline\\n'"),
        "{out}"
    );
    assert!(!path.with_extension("lock").exists());
}

#[test]
fn concurrent_deliveries_make_a_valid_mbox() {
    let d = tempfile::tempdir().unwrap();
    let path = Arc::new(d.path().join("shared"));
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let path = Arc::clone(&path);
            std::thread::spawn(move || {
                let body = format!(
                    "Subject: msg {i}\n\nFrom thread {i}\n{}\n",
                    "x".repeat(i * 37)
                );
                mbox::deliver(
                    &path,
                    "s@example.org",
                    1_795_387_248,
                    b"",
                    body.as_bytes(),
                    &settings(),
                )
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let script = "import mailbox, sys\n\
        box = mailbox.mbox(sys.argv[1], create=False)\n\
        subs = sorted(int(m['Subject'].split()[1]) for m in box)\n\
        ok = all(m.get_payload().startswith('>From thread ') for m in box)\n\
        print(len(subs), subs == list(range(200)), ok)\n";
    let Some(out) = python(script, &[path.to_str().unwrap()]) else {
        return;
    };
    assert_eq!(out, "200 True True\n");
}

#[test]
fn another_process_holding_the_fcntl_lock_delays_delivery() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("locked");
    std::fs::write(&path, b"").unwrap();
    let script = "import fcntl, sys, time\n\
        f = open(sys.argv[1], 'a')\n\
        fcntl.lockf(f, fcntl.LOCK_EX)\n\
        print('locked', flush=True)\n\
        time.sleep(float(sys.argv[2]))\n";
    let spawn = |secs: &str| {
        let mut child = match Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&path)
            .arg(secs)
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(_) => return None,
        };
        let mut buf = [0u8; 7];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut buf).unwrap();
        Some(child)
    };
    let mut one_try = settings();
    one_try.deliver_lock_attempts = 1;
    let Some(mut child) = spawn("3") else { return };
    let e = mbox::deliver(&path, "a@b", 0, b"", b"Subject: x\n\n", &one_try).unwrap_err();
    assert_eq!((e.permanent, e.dsn.as_str()), (false, "4.2.0"), "{e:?}");
    assert!(e.text.contains("unable to lock"), "{e:?}");
    child.kill().unwrap();
    child.wait().unwrap();

    let Some(mut child) = spawn("1.5") else {
        return;
    };
    let mut patient = settings();
    patient.deliver_lock_attempts = 5;
    mbox::deliver(&path, "a@b", 0, b"", b"Subject: x\n\n", &patient).unwrap();
    child.wait().unwrap();
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("From a@b  ")
    );
}

#[test]
fn dot_locks_are_honoured_and_stale_ones_removed() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("dl");
    let lock = d.path().join("dl.lock");
    std::fs::write(&lock, b"").unwrap();
    let mut s = settings();
    s.deliver_lock_attempts = 1;
    let e = mbox::deliver(&path, "a@b", 0, b"", b"x\n", &s).unwrap_err();
    assert!(!e.permanent && e.text.contains("lock file"), "{e:?}");
    assert!(lock.exists());
    s.stale_lock_time = 0;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    mbox::deliver(&path, "a@b", 0, b"", b"x\n", &s).unwrap();
    assert!(!lock.exists());
}

fn assert_refused(path: &Path, what: &str) {
    let e = mbox::deliver(path, "a@b", 0, b"", b"Subject: x\n\n", &settings()).unwrap_err();
    assert_eq!((e.permanent, e.dsn.as_str()), (false, "4.2.0"), "{e:?}");
    assert!(e.text.contains(what), "{e:?}");
}

#[test]
fn unsafe_mailbox_files_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let victim = d.path().join("victim");
    std::fs::write(&victim, b"precious\n").unwrap();

    let link = d.path().join("symlinked");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    assert_refused(&link, "symbolic link");

    let dangling = d.path().join("dangling");
    std::os::unix::fs::symlink(d.path().join("nowhere"), &dangling).unwrap();
    assert_refused(&dangling, "symbolic link");
    assert!(!d.path().join("nowhere").exists());

    let hard = d.path().join("hardlinked");
    std::fs::hard_link(&victim, &hard).unwrap();
    assert_refused(&hard, "2 hard links");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");

    let dir = d.path().join("adir");
    std::fs::create_dir(&dir).unwrap();
    let e = mbox::deliver(&dir, "a@b", 0, b"", b"x\n", &settings()).unwrap_err();
    assert!(!e.permanent, "{e:?}");

    let fifo = d.path().join("fifo");
    if Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        let e = mbox::deliver(&fifo, "a@b", 0, b"", b"x\n", &settings()).unwrap_err();
        assert!(!e.permanent, "{e:?}");
    }
}

#[test]
fn size_limit_bounces_and_leaves_the_mailbox_alone() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("small");
    let mut s = settings();
    s.mailbox_size_limit = 200;
    mbox::deliver(&path, "a@b", 0, b"", b"Subject: 1\n\nshort\n", &s).unwrap();
    let before = std::fs::read(&path).unwrap();
    let e = mbox::deliver(&path, "a@b", 0, b"", &[b'x'; 300], &s).unwrap_err();
    assert_eq!((e.permanent, e.dsn.as_str()), (true, "5.2.2"));
    assert!(e.text.contains("size limit"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    s.mailbox_size_limit = 0;
    mbox::deliver(&path, "a@b", 0, b"", &[b'x'; 300], &s).unwrap();
}

/// Dovecot reads both formats (skipped when doveadm is not installed).
/// doveadm refuses to open mail as root, so a root test hands the files to
/// `nobody` first.
#[test]
fn dovecot_reads_both_formats() {
    let d = tempfile::tempdir().unwrap();
    let md = d.path().join("Maildir");
    maildir::deliver(&md, b"", MESSAGE, "h").unwrap();
    maildir::deliver(&md, b"", MESSAGE, "h").unwrap();
    let mb = d.path().join("mbox");
    std::fs::create_dir(&mb).unwrap();
    let inbox = mb.join("inbox");
    for _ in 0..3 {
        mbox::deliver(&inbox, "a@b", 0, b"", MESSAGE, &settings()).unwrap();
    }
    let (mut uid, mut gid, mut user) = (privs::real_uid(), privs::real_gid(), String::new());
    if privs::is_root() {
        let Ok(Some(nobody)) = privs::lookup_user("nobody") else {
            return;
        };
        (uid, gid, user) = (nobody.uid, nobody.gid, nobody.name);
        chown_tree(d.path(), uid, gid);
    } else if let Ok(Some(me)) = privs::lookup_uid(uid) {
        user = me.name;
    }
    for (location, want) in [
        (format!("maildir:{}", md.display()), "2"),
        (
            format!("mbox:{}:INBOX={}", mb.display(), inbox.display()),
            "3",
        ),
    ] {
        let out = match Command::new("doveadm")
            .env("USER", &user)
            .env("HOME", d.path())
            .args(["-o", &format!("mail_location={location}")])
            .args([
                "-o",
                &format!("mail_uid={uid}"),
                "-o",
                &format!("mail_gid={gid}"),
            ])
            .args(["mailbox", "status", "messages", "INBOX"])
            .output()
        {
            Ok(o) => o,
            Err(_) => {
                eprintln!("doveadm not found: skipping");
                return;
            }
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{location}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(text.trim(), format!("INBOX messages={want}"), "{location}");
    }
}

fn chown_tree(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}
