//! Maildir delivery: one file per message, made visible atomically.
//!
//! [`deliver`] creates `tmp/`, `new/` and `cur/` (mode 0700) when missing,
//! writes the message to a new file in `tmp/`, fsyncs it, links it into
//! `new/` under its final name, removes the `tmp/` name and fsyncs `new/`.
//! A reader therefore sees either nothing or the complete message, and a
//! message reported as delivered survives a crash.
//!
//! Names follow the Maildir convention (`time.unique.host`):
//! `tmp/<secs>.P<pid>Q<count>M<usec>.<host>` while writing, then
//! `new/<secs>.V<dev>I<inode>M<usec>.<host>` (device and inode of the file,
//! in hex), with `/` and `:` in the host name written as `\057` and `\072`.
//!
//! # Security
//! The caller runs this with the mailbox owner's identity. The Maildir is
//! reached through [`crate::safedir`]: `tmp/`, `new/` and `cur/` (and, for
//! [`deliver`], the Maildir itself) are opened relative to their parent
//! with `O_NOFOLLOW|O_DIRECTORY` and must belong to the recipient or root.
//! The message file is created with `O_CREAT|O_EXCL|O_NOFOLLOW` relative to
//! the `tmp/` descriptor, and the final name is made with `linkat(2)`, which
//! never follows or replaces an existing name, so a planted symbolic link is
//! never written through. A violation defers (4.2.0) with a warning.

use crate::DeliveryError;
use crate::safedir::{Dir, split_last};
use postern_sys::safeopen::{self, Create};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Escapes `/` and `:` in a host name for use in a Maildir file name.
pub fn escape_host(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for c in host.chars() {
        match c {
            '/' => out.push_str("\\057"),
            ':' => out.push_str("\\072"),
            c => out.push(c),
        }
    }
    if out.is_empty() {
        "localhost".to_string()
    } else {
        out
    }
}

fn write_tmp(tmp: &Dir, name: &str, prefix: &[u8], content: &[u8]) -> Result<File, DeliveryError> {
    let path = tmp.path().join(name);
    let mut f =
        safeopen::open_at(tmp.fd(), name, false, Create::Exclusive, 0o600).map_err(|e| {
            DeliveryError::from_io(
                &format!("create maildir file {}", path.display()),
                &e.source,
            )
        })?;
    let werr = |e: std::io::Error| {
        DeliveryError::from_io(&format!("cannot write maildir file {}", path.display()), &e)
    };
    f.write_all(prefix).map_err(werr)?;
    f.write_all(content).map_err(werr)?;
    if !content.is_empty() && !content.ends_with(b"\n") {
        f.write_all(b"\n").map_err(werr)?;
    }
    postern_sys::durable::fsync_file(&f, &path)
        .map_err(|e| DeliveryError::from_sys("cannot write maildir file", &e))?;
    Ok(f)
}

/// Links `tmp/name` to `new/new_name`; falls back to a rename that does not
/// replace on file systems without hard links.
fn publish(tmp: &Dir, name: &str, new: &Dir, new_name: &str) -> Result<(), DeliveryError> {
    let new_path = new.path().join(new_name);
    match safeopen::link_at(tmp.fd(), name, new.fd(), new_name) {
        Ok(()) => {
            if let Err(e) = safeopen::unlink_at(tmp.fd(), name) {
                // The message is delivered; a stale tmp/ file is harmless and
                // Maildir readers clean tmp/ up.
                postern_log::warning!("remove {}: {e}", tmp.path().join(name).display());
            }
            Ok(())
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP)) => {
            safeopen::rename_noreplace_at(tmp.fd(), name, new.fd(), new_name).map_err(|e| {
                DeliveryError::from_io(
                    &format!("cannot rename to maildir file {}", new_path.display()),
                    &e.source,
                )
            })
        }
        Err(e) => Err(DeliveryError::from_io(
            &format!("create maildir file {}", new_path.display()),
            &e.source,
        )),
    }
}

/// Delivers `prefix` + `content` into the open Maildir `maildir`, whose
/// `tmp/`, `new/` and `cur/` (created 0700 when missing) must belong to
/// `uid` or root; returns the path of the new file.
pub fn deliver_in(
    maildir: &Dir,
    uid: u32,
    prefix: &[u8],
    content: &[u8],
    hostname: &str,
) -> Result<PathBuf, DeliveryError> {
    let ctx = format!("cannot update maildir {}", maildir.path().display());
    let tmp = maildir.sub("tmp", uid, true, &ctx)?;
    let new = maildir.sub("new", uid, true, &ctx)?;
    maildir.sub("cur", uid, true, &ctx)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, usec) = (now.as_secs(), now.subsec_micros());
    let host = escape_host(hostname);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{secs}.P{}Q{count}M{usec}.{host}", std::process::id());
    let result = write_tmp(&tmp, &name, prefix, content).and_then(|f| {
        let st = safeopen::stat_fd(&f)
            .map_err(|e| DeliveryError::from_sys(&format!("cannot stat {name}"), &e))?;
        let new_name = format!("{secs}.V{:x}I{:x}M{usec}.{host}", st.dev, st.ino);
        publish(&tmp, &name, &new, &new_name)?;
        safeopen::sync_fd(new.fd())
            .map_err(|e| DeliveryError::from_sys("cannot sync maildir", &e))?;
        Ok(new.path().join(new_name))
    });
    if result.is_err()
        && let Err(e) = safeopen::unlink_at(tmp.fd(), &name)
        && e.raw_os_error() != Some(libc::ENOENT)
    {
        postern_log::warning!("remove {}: {e}", tmp.path().join(&name).display());
    }
    result
}

/// Delivers into the Maildir at `maildir` with the current identity: the
/// directories above it are created as needed and trusted (they come from
/// the configuration); the Maildir itself and everything below it must
/// belong to the current user or root and is never reached through a
/// symbolic link.
pub fn deliver(
    maildir: &Path,
    prefix: &[u8],
    content: &[u8],
    hostname: &str,
) -> Result<PathBuf, DeliveryError> {
    let ctx = format!("cannot update maildir {}", maildir.display());
    let Some((parent, name)) = split_last(maildir) else {
        return Err(DeliveryError::temp(
            "4.3.5",
            format!("{ctx}: bad maildir path"),
        ));
    };
    if let Err(e) = std::fs::create_dir_all(parent) {
        return Err(DeliveryError::from_io(
            &format!("{ctx}: create directory {}", parent.display()),
            &e,
        ));
    }
    let uid = postern_sys::privs::effective_uid();
    let md = Dir::open_trusted(parent, &ctx)?.sub(name, uid, true, &ctx)?;
    deliver_in(&md, uid, prefix, content, hostname)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn host_escaping() {
        assert_eq!(escape_host("a/b:c"), "a\\057b\\072c");
        assert_eq!(escape_host(""), "localhost");
    }

    #[test]
    fn delivers_into_new() {
        let d = tempfile::tempdir().unwrap();
        let md = d.path().join("Maildir");
        let p = deliver(&md, b"Delivered-To: u@x\n", b"Subject: s\n\nbody", "h:o/st").unwrap();
        assert_eq!(p.parent().unwrap(), md.join("new"));
        assert!(
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with(".h\\072o\\057st")
        );
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"Delivered-To: u@x\nSubject: s\n\nbody\n"
        );
        assert_eq!(std::fs::read_dir(md.join("tmp")).unwrap().count(), 0);
        assert!(md.join("cur").is_dir());
        let mode = std::fs::metadata(md.join("new")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn unwritable_parent_defers() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let e = deliver(&file.join("Maildir"), b"", b"x\n", "h").unwrap_err();
        assert!(!e.permanent && e.dsn.starts_with("4."), "{e:?}");
    }

    #[test]
    fn symlink_at_each_level_defers_and_writes_nothing() {
        for level in ["", "tmp", "new", "cur"] {
            let d = tempfile::tempdir().unwrap();
            let md = d.path().join("Maildir");
            let target = d.path().join("elsewhere");
            std::fs::create_dir(&target).unwrap();
            if level.is_empty() {
                std::os::unix::fs::symlink(&target, &md).unwrap();
            } else {
                for sub in ["tmp", "new", "cur"] {
                    std::fs::create_dir_all(md.join(sub)).unwrap();
                }
                std::fs::remove_dir(md.join(level)).unwrap();
                std::os::unix::fs::symlink(&target, md.join(level)).unwrap();
            }
            let e = deliver(&md, b"", b"x\n", "h").unwrap_err();
            assert!(!e.permanent && e.dsn == "4.2.0", "{level}: {e:?}");
            assert!(e.text.contains("is a symbolic link"), "{level}: {}", e.text);
            assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "{level}");
        }
    }

    #[test]
    fn planted_file_in_new_is_not_replaced() {
        let d = tempfile::tempdir().unwrap();
        let md = d.path().join("Maildir");
        deliver(&md, b"", b"one\n", "h").unwrap();
        // A non-directory where tmp/ should be.
        std::fs::remove_dir(md.join("tmp")).unwrap();
        std::fs::write(md.join("tmp"), b"").unwrap();
        let e = deliver(&md, b"", b"x\n", "h").unwrap_err();
        assert!(e.text.contains("is not a directory"), "{}", e.text);
    }
}
