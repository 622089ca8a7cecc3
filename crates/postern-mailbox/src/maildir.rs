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
//! The caller runs this with the mailbox owner's identity. The message file
//! is created with `O_CREAT|O_EXCL|O_NOFOLLOW`, and the final name is made
//! with `link(2)`, which never follows or replaces an existing name, so a
//! planted symbolic link is never written through. Directories on the way to
//! the Maildir may be symbolic links (a common way to place `~/Maildir`);
//! only the owner can plant those in a Maildir path they own.

use crate::DeliveryError;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
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

fn make_dirs(maildir: &Path) -> Result<(), DeliveryError> {
    for sub in ["", "tmp", "new", "cur"] {
        let dir = maildir.join(sub);
        if dir.is_dir() {
            continue;
        }
        match DirBuilder::new().recursive(true).mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(DeliveryError::from_io(
                    &format!("cannot create maildir directory {}", dir.display()),
                    &e,
                ));
            }
        }
    }
    Ok(())
}

fn write_tmp(tmp: &Path, prefix: &[u8], content: &[u8]) -> Result<File, DeliveryError> {
    let ctx = || format!("cannot create maildir file {}", tmp.display());
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(tmp)
        .map_err(|e| DeliveryError::from_io(&ctx(), &e))?;
    let werr = |e: std::io::Error| {
        DeliveryError::from_io(&format!("cannot write maildir file {}", tmp.display()), &e)
    };
    f.write_all(prefix).map_err(werr)?;
    f.write_all(content).map_err(werr)?;
    if !content.is_empty() && !content.ends_with(b"\n") {
        f.write_all(b"\n").map_err(werr)?;
    }
    postern_sys::durable::fsync_file(&f, tmp)
        .map_err(|e| DeliveryError::from_sys("cannot write maildir file", &e))?;
    Ok(f)
}

/// Links `tmp` to `new`; falls back to rename(2) on file systems without
/// hard links. Never replaces an existing `new`.
fn publish(tmp: &Path, new: &Path) -> Result<(), DeliveryError> {
    match std::fs::hard_link(tmp, new) {
        Ok(()) => {
            if let Err(e) = std::fs::remove_file(tmp) {
                // The message is delivered; a stale tmp/ file is harmless and
                // Maildir readers clean tmp/ up.
                postern_log::warning!("remove {}: {e}", tmp.display());
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(DeliveryError::from_io(
            &format!("cannot create maildir file {}", new.display()),
            &e,
        )),
        Err(_) if !new.exists() => std::fs::rename(tmp, new).map_err(|e| {
            DeliveryError::from_io(
                &format!("cannot rename to maildir file {}", new.display()),
                &e,
            )
        }),
        Err(e) => Err(DeliveryError::from_io(
            &format!("cannot link maildir file {}", new.display()),
            &e,
        )),
    }
}

/// Delivers `prefix` + `content` into the Maildir at `maildir`; returns the
/// path of the new file.
pub fn deliver(
    maildir: &Path,
    prefix: &[u8],
    content: &[u8],
    hostname: &str,
) -> Result<PathBuf, DeliveryError> {
    make_dirs(maildir)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, usec) = (now.as_secs(), now.subsec_micros());
    let host = escape_host(hostname);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = maildir.join("tmp").join(format!(
        "{secs}.P{}Q{count}M{usec}.{host}",
        std::process::id()
    ));
    let result = write_tmp(&tmp, prefix, content).and_then(|f| {
        let md = f
            .metadata()
            .map_err(|e| DeliveryError::from_io(&format!("cannot stat {}", tmp.display()), &e))?;
        let new = maildir.join("new").join(format!(
            "{secs}.V{:x}I{:x}M{usec}.{host}",
            md.dev(),
            md.ino()
        ));
        publish(&tmp, &new)?;
        let new_dir = maildir.join("new");
        postern_sys::durable::fsync_dir(&new_dir)
            .map_err(|e| DeliveryError::from_sys("cannot sync maildir", &e))?;
        Ok(new)
    });
    if result.is_err()
        && let Err(e) = std::fs::remove_file(&tmp)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        postern_log::warning!("remove {}: {e}", tmp.display());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
