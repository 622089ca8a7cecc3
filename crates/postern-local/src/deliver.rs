//! One delivery request → one result per recipient.
//!
//! For each recipient of a [`DeliverRequest`] (qmgr sends only recipients
//! whose domain is local), [`deliver`]:
//!
//! 1. refuses a mail loop: a `Delivered-To:` header equal to the recipient
//!    (case-insensitive) bounces with 5.4.6;
//! 2. finds the mailbox owner from the local part, lowercased, with the
//!    address extension (`recipient_delimiter`) removed;
//! 3. writes the message with `Return-Path:` and `Delivered-To:` (the full
//!    recipient address) prepended, to a Maildir or an mbox file.
//!
//! Alias expansion, `.forward` files, and file or command deliveries slot in
//! between steps 2 and 3: [`resolve`] turns a recipient into a [`Target`],
//! which is today always a mailbox.
//!
//! # Where mail goes
//! * As root: the user must exist in the password database (else 5.1.1
//!   `unknown user`). With `home_mailbox` set, the mailbox is
//!   `$HOME/$home_mailbox` (a Maildir when it ends in `/`); otherwise
//!   `$mail_spool_directory/<user>` (a Maildir `<spool>/<user>/` when the
//!   spool setting ends in `/`). Writes run with the user's effective ids;
//!   only a spool mbox is opened (created and chowned) as root first, because
//!   the spool directory is not writable by users, as Postfix does.
//! * Not root (a test or developer instance): no password lookup; any local
//!   part is delivered, as the current user, to `$mail_spool_directory/<local>`.
//!   A local part that is empty, contains `/`, starts with `.` or contains
//!   control characters bounces with 5.1.3.
//!
//! # Errors
//! [`DeliveryError::from_io`] is the one place where system errors become
//! DSN codes: quota 4.2.2, no space 4.3.0, file too large 5.2.2, everything
//! else 4.2.0 (deferred, so an administrator can fix permissions without
//! mail being returned).
//!
//! # Logging
//! Each result is logged as Postfix does (`to=<…>, relay=local, delay=…,
//! delays=…, dsn=…, status=…`), see [`postern_log::delivery`].

use crate::settings::LocalSettings;
use postern_ipc::proto::{Action, DeliverReply, DeliverRequest, RcptResult, Recipient};
use postern_mail::address::{quote_address, split_domain, split_extension, strip_angle};
use postern_mail::header;
pub use postern_mailbox::DeliveryError;
use postern_mailbox::{maildir, mbox};
use postern_qfile::QueueFile;
use postern_sys::privs::{self, EffectiveIds, UserInfo};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a recipient's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A mailbox of `user` (None when not running as root).
    Mailbox {
        user: Option<UserInfo>,
        path: PathBuf,
        maildir: bool,
    },
}

/// Joins `dir` and `name`, keeping a trailing `/` of `dir` as the Maildir mark.
fn spool_target(spool: &str, name: &str) -> (PathBuf, bool) {
    let maildir = spool.ends_with('/');
    (Path::new(spool).join(name), maildir)
}

/// Resolves the recipient's local part (`user`, extension already removed).
pub fn resolve(settings: &LocalSettings, user: &str) -> Result<Target, DeliveryError> {
    if !settings.as_root {
        if user.is_empty()
            || user.contains('/')
            || user.starts_with('.')
            || user.chars().any(char::is_control)
        {
            return Err(DeliveryError::perm("5.1.3", "bad address syntax"));
        }
        let (path, maildir) = spool_target(&settings.mail_spool_directory, user);
        return Ok(Target::Mailbox {
            user: None,
            path,
            maildir,
        });
    }
    let pw = match privs::lookup_user(user) {
        Ok(Some(pw)) => pw,
        Ok(None) => {
            return Err(DeliveryError::perm(
                "5.1.1",
                format!("unknown user: \"{user}\""),
            ));
        }
        Err(e) => {
            return Err(DeliveryError::from_sys(
                &format!("cannot look up user {user}"),
                &e,
            ));
        }
    };
    // XXX(later issue): alias maps and ~/.forward are consulted here.
    let (path, maildir) = if settings.home_mailbox.is_empty() {
        spool_target(&settings.mail_spool_directory, &pw.name)
    } else {
        (
            Path::new(&pw.home).join(&settings.home_mailbox),
            settings.home_mailbox.ends_with('/'),
        )
    };
    Ok(Target::Mailbox {
        user: Some(pw),
        path,
        maildir,
    })
}

/// Whether the content already has `Delivered-To: <addr>`.
fn is_loop(content: &[u8], addr: &str) -> bool {
    header::find_all(content, "delivered-to")
        .any(|f| strip_angle(&f.value_string()).eq_ignore_ascii_case(addr))
}

fn deliver_mailbox(
    settings: &LocalSettings,
    req: &DeliverRequest,
    qf: &QueueFile,
    target: &Target,
    prefix: &[u8],
) -> Result<&'static str, DeliveryError> {
    let Target::Mailbox {
        user,
        path,
        maildir,
    } = target;
    let arrival = req.arrival as i64;
    let switch = |u: &UserInfo| {
        EffectiveIds::switch(u)
            .map_err(|e| DeliveryError::from_sys(&format!("cannot switch to user {}", u.name), &e))
    };
    // Going on with a user's identity would be a privilege bug: stop the
    // process (master starts a fresh one), as Postfix's set_eugid does.
    let restore = |g: Option<EffectiveIds>| {
        if let Some(Err(e)) = g.map(EffectiveIds::finish) {
            postern_log::fatal!("cannot restore privileges: {e}");
        }
    };
    if *maildir {
        let guard = user.as_ref().map(switch).transpose()?;
        let r = maildir::deliver(path, prefix, &qf.content, &settings.myhostname);
        restore(guard);
        return r.map(|_| "delivered to maildir");
    }
    let in_spool = settings.home_mailbox.is_empty();
    let Some(u) = user.as_ref().filter(|_| in_spool) else {
        // Not root, or a mailbox under the home directory: everything as the user.
        let guard = user.as_ref().map(switch).transpose()?;
        let r = mbox::deliver(
            path,
            &req.sender,
            arrival,
            prefix,
            &qf.content,
            &settings.lock_options(),
        );
        restore(guard);
        return r.map(|()| "delivered to mailbox");
    };
    // Spool mbox: open, lock and create as root, write as the user.
    let mut mb = mbox::open_locked(path, &settings.lock_options(), Some((u.uid, u.gid)))?;
    let guard = switch(u)?;
    let r = mb.append(
        &req.sender,
        arrival,
        prefix,
        &qf.content,
        settings.mailbox_size_limit,
    );
    restore(Some(guard));
    let released = mb.release();
    r.and(released).map(|()| "delivered to mailbox")
}

fn deliver_one(
    settings: &LocalSettings,
    req: &DeliverRequest,
    qf: &QueueFile,
    rcpt: &Recipient,
) -> Result<&'static str, DeliveryError> {
    let addr = rcpt.address.as_str();
    if is_loop(&qf.content, addr) {
        return Err(DeliveryError::perm(
            "5.4.6",
            format!("mail forwarding loop for {addr}"),
        ));
    }
    let local = split_domain(addr).0.to_lowercase();
    let (user, _extension) = split_extension(&local, &settings.recipient_delimiter);
    let target = resolve(settings, user)?;
    let sender = if req.sender.is_empty() {
        String::new()
    } else {
        quote_address(&req.sender)
    };
    let prefix = format!(
        "Return-Path: <{sender}>\nDelivered-To: {}\n",
        quote_address(addr)
    );
    deliver_mailbox(settings, req, qf, &target, prefix.as_bytes())
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn log_result(req: &DeliverRequest, r: &RcptResult, start: f64, end: f64) {
    let active = req.active_since.max(req.arrival);
    let line =
        postern_log::delivery::format_delivery_line(&postern_log::delivery::DeliveryRecord {
            queue_id: &req.queue_id,
            to: &r.recipient.address,
            orig_to: &r.recipient.original,
            relay: &r.relay,
            delay: end - req.arrival,
            delays: [active - req.arrival, start - active, 0.0, end - start],
            dsn: &r.dsn,
            status: r.action.as_str(),
            text: &r.text,
        });
    postern_log::info(line);
}

/// Delivers `qf` to every recipient of `req`; one result per recipient, in order.
pub fn deliver(settings: &LocalSettings, req: &DeliverRequest, qf: &QueueFile) -> DeliverReply {
    let mut results = Vec::with_capacity(req.recipients.len());
    for rcpt in &req.recipients {
        let start = now();
        let (action, dsn, text) = match deliver_one(settings, req, qf, rcpt) {
            Ok(text) => (Action::Sent, "2.0.0".to_string(), text.to_string()),
            Err(e) => (
                if e.permanent {
                    Action::Bounce
                } else {
                    Action::Defer
                },
                e.dsn,
                e.text,
            ),
        };
        let r = RcptResult {
            recipient: rcpt.clone(),
            action,
            dsn,
            text,
            relay: "local".into(),
        };
        log_result(req, &r, start, now());
        results.push(r);
    }
    DeliverReply { results }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(spool: &Path) -> LocalSettings {
        LocalSettings {
            mail_spool_directory: spool.display().to_string(),
            recipient_delimiter: "+".into(),
            deliver_lock_attempts: 2,
            ..LocalSettings::default()
        }
    }

    fn request(rcpts: &[&str]) -> DeliverRequest {
        DeliverRequest {
            queue_name: "active".into(),
            queue_id: "ABC123".into(),
            transport: "local".into(),
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

    #[test]
    fn error_mapping() {
        let e = |n| DeliveryError::from_io("cannot x", &std::io::Error::from_raw_os_error(n));
        assert_eq!(
            (e(libc::EDQUOT).permanent, e(libc::EDQUOT).dsn.as_str()),
            (false, "4.2.2")
        );
        assert_eq!(e(libc::ENOSPC).dsn, "4.3.0");
        assert_eq!(e(libc::EACCES).dsn, "4.2.0");
        assert!(
            e(libc::EACCES)
                .text
                .starts_with("cannot x: Permission denied")
        );
        assert!(e(libc::EFBIG).permanent);
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
        let reply = deliver(&s, &req, &qf(b"Subject: hi\n\nFrom me\n"));
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
        assert!(bob.contains("\nReturn-Path: <alice@example.org>\nDelivered-To: Bob+ext@localhost\nSubject: hi\n\n>From me\n\n"));
    }

    #[test]
    fn maildir_spool_and_loop() {
        let d = tempfile::tempdir().unwrap();
        let s = settings(&d.path().join("spool"));
        let mut sp = s.clone();
        sp.mail_spool_directory.push('/');
        let reply = deliver(&sp, &request(&["u@localhost"]), &qf(b"Subject: a\n\nb\n"));
        assert_eq!(reply.results[0].text, "delivered to maildir");
        assert_eq!(
            std::fs::read_dir(d.path().join("spool/u/new"))
                .unwrap()
                .count(),
            1
        );
        let looped = qf(b"Delivered-To: X@Localhost\nSubject: a\n\nb\n");
        let reply = deliver(&s, &request(&["x@localhost"]), &looped);
        assert_eq!(reply.results[0].action, Action::Bounce);
        assert_eq!(reply.results[0].dsn, "5.4.6");
        assert_eq!(
            reply.results[0].text,
            "mail forwarding loop for x@localhost"
        );
    }

    #[test]
    fn unknown_user_as_root() {
        let d = tempfile::tempdir().unwrap();
        let mut s = settings(d.path());
        s.as_root = true;
        let reply = deliver(
            &s,
            &request(&["no-such-user-postern-test@localhost"]),
            &qf(b"\n"),
        );
        assert_eq!(reply.results[0].action, Action::Bounce);
        assert_eq!(reply.results[0].dsn, "5.1.1");
        assert_eq!(
            reply.results[0].text,
            "unknown user: \"no-such-user-postern-test\""
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
        let reply = deliver(
            &s,
            &request(&["nobody@localhost"]),
            &qf(b"Subject: a\n\nb\n"),
        );
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
    }
}
