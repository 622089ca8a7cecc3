//! Walking a mailbox path one directory at a time, as the recipient's
//! mailbox must be reached: never through a symbolic link, never through a
//! directory that belongs to anyone but the recipient or root.
//!
//! A [`Dir`] is an open directory descriptor with the path it was reached
//! by (for messages). [`Dir::open_trusted`] opens the starting point, which
//! comes from the configuration or the password database (the mail spool,
//! a home directory, `virtual_mailbox_base`); everything below it is opened
//! with [`Dir::sub`] or [`Dir::walk`], relative to the descriptor of its
//! parent, with `O_NOFOLLOW|O_DIRECTORY`, and its owner is checked on the
//! open descriptor. Later operations use the descriptor, so there is no
//! window between the check and the use.
//!
//! # Security
//! A violation (a symbolic link, something that is not a directory, a
//! directory owned by another user) defers the delivery with 4.2.0 and logs
//! a warning naming the path; nothing is written. Directories are created
//! with mode 0700 and are never given away here (see `postern-local` for
//! the mail spool, where root creates the recipient's entry).
//!
//! # Configuration
//! None; callers pass the recipient's uid (the running uid in a non-root
//! instance).

use crate::DeliveryError;
use postern_sys::safeopen::{self, Stat};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// An open directory on a mailbox path.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    st: Stat,
}

/// A delivery refused for safety: logged as a warning, deferred with 4.2.0.
pub fn violation(text: String) -> DeliveryError {
    postern_log::warning!("{text}");
    DeliveryError::temp("4.2.0", text)
}

impl Dir {
    /// Opens a directory named by the configuration (symbolic links in
    /// its path are followed).
    pub fn open_trusted(path: &Path, ctx: &str) -> Result<Dir, DeliveryError> {
        let fd = safeopen::open_dir(path).map_err(|e| {
            DeliveryError::from_io(&format!("{ctx}: open {}", path.display()), &e.source)
        })?;
        let st = safeopen::stat_fd(&fd)
            .map_err(|e| DeliveryError::from_sys(&format!("{ctx}: {}", path.display()), &e))?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
            st,
        })
    }

    /// The path this directory was reached by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's attributes when it was opened.
    pub fn stat(&self) -> &Stat {
        &self.st
    }

    /// The descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Refuses this directory unless it belongs to `uid` or root.
    pub fn check_owner(&self, uid: u32, ctx: &str) -> Result<(), DeliveryError> {
        if self.st.uid != uid && self.st.uid != 0 {
            return Err(violation(format!(
                "{ctx}: directory {} is owned by uid {}",
                self.path.display(),
                self.st.uid
            )));
        }
        Ok(())
    }

    /// Opens the subdirectory `name`; `Ok(None)` when it does not exist.
    /// A symbolic link or a non-directory is a violation; so is a directory
    /// that belongs to neither `uid` nor root.
    pub fn sub_opt(&self, name: &str, uid: u32, ctx: &str) -> Result<Option<Dir>, DeliveryError> {
        let path = self.path.join(name);
        let fd = match safeopen::open_dir_at(&self.fd, name) {
            Ok(fd) => fd,
            Err(e) => {
                return match e.raw_os_error() {
                    Some(libc::ENOENT) => Ok(None),
                    Some(libc::ELOOP | libc::ENOTDIR) => Err(self.not_a_dir(name, &path, ctx, &e)),
                    Some(libc::EINVAL) => Err(violation(format!(
                        "{ctx}: bad path name component \"{name}\""
                    ))),
                    _ => Err(DeliveryError::from_io(
                        &format!("{ctx}: open {}", path.display()),
                        &e.source,
                    )),
                };
            }
        };
        let st = safeopen::stat_fd(&fd)
            .map_err(|e| DeliveryError::from_sys(&format!("{ctx}: {}", path.display()), &e))?;
        let dir = Dir { fd, path, st };
        dir.check_owner(uid, ctx)?;
        Ok(Some(dir))
    }

    fn not_a_dir(
        &self,
        name: &str,
        path: &Path,
        ctx: &str,
        e: &postern_sys::SysError,
    ) -> DeliveryError {
        match safeopen::lstat_at(&self.fd, name) {
            Ok(st) if st.is_symlink() => {
                violation(format!("{ctx}: {} is a symbolic link", path.display()))
            }
            Ok(_) => violation(format!("{ctx}: {} is not a directory", path.display())),
            Err(_) => DeliveryError::from_io(&format!("{ctx}: open {}", path.display()), &e.source),
        }
    }

    /// Opens the subdirectory `name`, creating it (mode 0700, with the
    /// current identity) when `create` and it is missing.
    pub fn sub(&self, name: &str, uid: u32, create: bool, ctx: &str) -> Result<Dir, DeliveryError> {
        if let Some(d) = self.sub_opt(name, uid, ctx)? {
            return Ok(d);
        }
        let path = self.path.join(name);
        if !create {
            return Err(DeliveryError::from_io(
                &format!("{ctx}: open {}", path.display()),
                &std::io::Error::from_raw_os_error(libc::ENOENT),
            ));
        }
        self.mkdir(name, ctx)?;
        self.sub_opt(name, uid, ctx)?.ok_or_else(|| {
            DeliveryError::temp(
                "4.2.0",
                format!("{ctx}: {} disappeared after creation", path.display()),
            )
        })
    }

    /// Creates the subdirectory `name` (mode 0700); an existing one is fine.
    pub fn mkdir(&self, name: &str, ctx: &str) -> Result<(), DeliveryError> {
        match safeopen::mkdir_at(&self.fd, name, 0o700) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(violation(format!(
                "{ctx}: bad path name component \"{name}\""
            ))),
            Err(e) => Err(DeliveryError::from_io(
                &format!("{ctx}: create directory {}", self.path.join(name).display()),
                &e.source,
            )),
        }
    }

    /// Goes down the relative path `rel` (components separated by `/`;
    /// empty components are skipped, `.` and `..` refused), each level as
    /// [`Dir::sub`] does.
    pub fn walk(&self, rel: &str, uid: u32, create: bool, ctx: &str) -> Result<Dir, DeliveryError> {
        let mut parts = rel.split('/').filter(|c| !c.is_empty());
        let Some(first) = parts.next() else {
            return self.reopen(ctx);
        };
        let mut cur = self.sub(first, uid, create, ctx)?;
        for part in parts {
            cur = cur.sub(part, uid, create, ctx)?;
        }
        Ok(cur)
    }

    fn reopen(&self, ctx: &str) -> Result<Dir, DeliveryError> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| DeliveryError::from_io(&format!("{ctx}: {}", self.path.display()), &e))?;
        Ok(Dir {
            fd,
            path: self.path.clone(),
            st: self.st,
        })
    }
}

/// Splits a path into its directory and last component (`None` when it
/// has no file name, e.g. `/` or `a/..`).
pub fn split_last(path: &Path) -> Option<(&Path, &str)> {
    let name = path.file_name()?.to_str()?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty())?;
    Some((parent, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn me() -> u32 {
        postern_sys::privs::effective_uid()
    }

    #[test]
    fn walk_creates_and_refuses_links() {
        let d = tempfile::tempdir().unwrap();
        let top = Dir::open_trusted(d.path(), "t").unwrap();
        let deep = top.walk("a/b//c/", me(), true, "t").unwrap();
        assert_eq!(deep.path(), d.path().join("a/b/c"));
        let mode = std::fs::metadata(d.path().join("a/b")).unwrap().mode() & 0o777;
        assert_eq!(mode & 0o077, 0);
        std::os::unix::fs::symlink(d.path().join("a"), d.path().join("l")).unwrap();
        let e = top.walk("l/b", me(), true, "ctx").unwrap_err();
        assert!(!e.permanent && e.dsn == "4.2.0", "{e:?}");
        assert!(e.text.ends_with("/l is a symbolic link"), "{}", e.text);
        std::fs::write(d.path().join("a/f"), b"").unwrap();
        let e = top.walk("a/f/x", me(), true, "ctx").unwrap_err();
        assert!(e.text.ends_with("/a/f is not a directory"), "{}", e.text);
        let e = top.walk("a/../a", me(), true, "ctx").unwrap_err();
        assert!(e.text.contains("bad path name component"), "{}", e.text);
        assert!(top.sub_opt("absent", me(), "t").unwrap().is_none());
        assert!(top.sub("absent", me(), false, "t").is_err());
    }

    #[test]
    fn foreign_owner_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("x")).unwrap();
        let top = Dir::open_trusted(d.path(), "t").unwrap();
        // Whoever we are, a uid that is neither ours nor root's is foreign.
        let other = if me() == 0 { 4_000_000 } else { me() + 1 };
        if me() == 0 {
            std::os::unix::fs::chown(d.path().join("x"), Some(other), None).unwrap();
            let e = top.sub("x", 0, false, "ctx").unwrap_err();
            assert!(
                e.text.contains(&format!("is owned by uid {other}")),
                "{}",
                e.text
            );
            assert!(top.sub("x", other, false, "ctx").is_ok());
        } else {
            let e = top.sub("x", other, false, "ctx").unwrap_err();
            assert!(
                e.text.contains(&format!("is owned by uid {}", me())),
                "{}",
                e.text
            );
        }
    }

    #[test]
    fn split() {
        assert_eq!(
            split_last(Path::new("/var/mail/u")),
            Some((Path::new("/var/mail"), "u"))
        );
        assert_eq!(split_last(Path::new("/")), None);
        assert_eq!(split_last(Path::new("u")), None);
    }
}
