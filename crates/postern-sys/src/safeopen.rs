//! Descriptor-relative file operations for walking a path that other users
//! may be able to change (Postfix's `safe_open` and the checks of its
//! `local(8)`/`virtual(8)` mailbox code, done with `openat(2)` and friends).
//!
//! A caller opens a trusted directory once ([`open_dir`]) and then goes down
//! one name at a time ([`open_dir_at`]): every name is a single path
//! component (never `/`, `.` or `..`), is opened with `O_NOFOLLOW`, and the
//! caller checks the owner of what it got with [`stat_fd`]. Because every
//! later operation ([`open_at`], [`mkdir_at`], [`link_at`], [`unlink_at`],
//! [`lstat_at`]) is relative to a descriptor that was checked, nothing can be
//! swapped between the check and the use.
//!
//! # Security
//! No `unsafe`: everything goes through nix's safe wrappers. A name that is
//! not a single component is refused with `EINVAL` before any system call,
//! so `O_NOFOLLOW` (which applies to the last component only) covers the
//! whole name.
//!
//! # Configuration
//! None: callers decide which directories are trusted and who may own what.

use crate::{Result, SysError};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid, UnlinkatFlags};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// The attributes of a file that the callers check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Type and permission bits (`st_mode`).
    pub mode: u32,
    /// Number of hard links.
    pub nlink: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

impl Stat {
    fn from_raw(st: &nix::sys::stat::FileStat) -> Stat {
        Stat {
            dev: st.st_dev,
            ino: st.st_ino,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode,
            nlink: st.st_nlink,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: st.st_mtime,
        }
    }

    fn kind(&self) -> u32 {
        self.mode & SFlag::S_IFMT.bits()
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == SFlag::S_IFDIR.bits()
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.kind() == SFlag::S_IFREG.bits()
    }

    /// A symbolic link (only [`lstat_at`] can see one).
    pub fn is_symlink(&self) -> bool {
        self.kind() == SFlag::S_IFLNK.bits()
    }

    /// A character device.
    pub fn is_char_device(&self) -> bool {
        self.kind() == SFlag::S_IFCHR.bits()
    }

    /// Same device and inode as `other`.
    pub fn same_file(&self, other: &Stat) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// How [`open_at`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Open an existing file only.
    No,
    /// Create the file; fail with `EEXIST` when the name exists (even as a
    /// dangling symbolic link).
    Exclusive,
}

fn einval(op: &'static str, name: &str) -> SysError {
    SysError::new(
        op,
        name,
        std::io::Error::from_raw_os_error(nix::libc::EINVAL),
    )
}

/// Refuses anything but one plain path component.
fn component(op: &'static str, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(einval(op, name));
    }
    Ok(())
}

/// Opens a directory the caller trusts, by path (symbolic links in it are
/// followed: it comes from the configuration or the password database).
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| SysError::errno("open", path.display().to_string(), e))
}

/// Opens the directory `name` in `dir` without following a symbolic link:
/// `ELOOP` (or `ENOTDIR`) when `name` is a symbolic link, `ENOTDIR` when it
/// is not a directory.
pub fn open_dir_at(dir: impl AsFd, name: &str) -> Result<OwnedFd> {
    component("openat", name)?;
    nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY
            | OFlag::O_DIRECTORY
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| SysError::errno("openat", name, e))
}

/// Opens the file `name` in `dir` for appending (`append`) or writing,
/// never through a symbolic link and never blocking (a FIFO or device is
/// opened without waiting); a created file gets `mode`.
pub fn open_at(
    dir: impl AsFd,
    name: &str,
    append: bool,
    create: Create,
    mode: u32,
) -> Result<File> {
    component("openat", name)?;
    let mut flags = OFlag::O_WRONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY;
    if append {
        flags |= OFlag::O_APPEND;
    }
    if create == Create::Exclusive {
        flags |= OFlag::O_CREAT | OFlag::O_EXCL;
    }
    let fd = nix::fcntl::openat(dir, name, flags, Mode::from_bits_truncate(mode))
        .map_err(|e| SysError::errno("openat", name, e))?;
    Ok(File::from(fd))
}

/// Creates the directory `name` in `dir` with `mode` (less the umask).
pub fn mkdir_at(dir: impl AsFd, name: &str, mode: u32) -> Result<()> {
    component("mkdirat", name)?;
    nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(mode))
        .map_err(|e| SysError::errno("mkdirat", name, e))
}

/// The attributes of an open file.
pub fn stat_fd(fd: impl AsFd) -> Result<Stat> {
    nix::sys::stat::fstat(fd)
        .map(|st| Stat::from_raw(&st))
        .map_err(|e| SysError::errno("fstat", "", e))
}

/// The attributes of `name` in `dir`, not following a symbolic link.
pub fn lstat_at(dir: impl AsFd, name: &str) -> Result<Stat> {
    component("fstatat", name)?;
    nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map(|st| Stat::from_raw(&st))
        .map_err(|e| SysError::errno("fstatat", name, e))
}

/// Makes `new_name` in `new_dir` a hard link to `old_name` in `old_dir`
/// (never following a symbolic link, never replacing an existing name).
pub fn link_at(
    old_dir: impl AsFd,
    old_name: &str,
    new_dir: impl AsFd,
    new_name: &str,
) -> Result<()> {
    component("linkat", old_name)?;
    component("linkat", new_name)?;
    nix::unistd::linkat(old_dir, old_name, new_dir, new_name, AtFlags::empty())
        .map_err(|e| SysError::errno("linkat", new_name, e))
}

/// Renames `old_name` in `old_dir` to `new_name` in `new_dir`, failing with
/// `EEXIST` rather than replacing an existing `new_name`.
pub fn rename_noreplace_at(
    old_dir: impl AsFd,
    old_name: &str,
    new_dir: impl AsFd,
    new_name: &str,
) -> Result<()> {
    component("renameat2", old_name)?;
    component("renameat2", new_name)?;
    nix::fcntl::renameat2(
        old_dir,
        old_name,
        new_dir,
        new_name,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
    .map_err(|e| SysError::errno("renameat2", new_name, e))
}

/// Removes the (non-directory) name `name` from `dir`.
pub fn unlink_at(dir: impl AsFd, name: &str) -> Result<()> {
    component("unlinkat", name)?;
    nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
        .map_err(|e| SysError::errno("unlinkat", name, e))
}

/// Gives an open file or directory to `uid`/`gid`.
pub fn chown_fd(fd: impl AsFd, uid: u32, gid: u32) -> Result<()> {
    nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .map_err(|e| SysError::errno("fchown", uid.to_string(), e))
}

/// fsyncs an open directory, making entries created in it durable.
pub fn sync_fd(fd: impl AsFd) -> Result<()> {
    nix::unistd::fsync(fd).map_err(|e| SysError::errno("fsync", "", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno(e: &SysError) -> i32 {
        e.raw_os_error().unwrap_or(0)
    }

    #[test]
    fn walk_refuses_symlinks_and_non_directories() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("real")).unwrap();
        std::fs::write(d.path().join("file"), b"x").unwrap();
        std::os::unix::fs::symlink(d.path().join("real"), d.path().join("link")).unwrap();
        let top = open_dir(d.path()).unwrap();
        let real = open_dir_at(&top, "real").unwrap();
        assert!(stat_fd(&real).unwrap().is_dir());
        let e = open_dir_at(&top, "link").unwrap_err();
        assert!(
            matches!(errno(&e), nix::libc::ELOOP | nix::libc::ENOTDIR),
            "{e}"
        );
        assert!(lstat_at(&top, "link").unwrap().is_symlink());
        assert_eq!(
            errno(&open_dir_at(&top, "file").unwrap_err()),
            nix::libc::ENOTDIR
        );
        for bad in ["", ".", "..", "real/..", "a/b"] {
            assert_eq!(
                errno(&open_dir_at(&top, bad).unwrap_err()),
                nix::libc::EINVAL
            );
        }
    }

    #[test]
    fn files_are_never_opened_through_a_link() {
        let d = tempfile::tempdir().unwrap();
        let top = open_dir(d.path()).unwrap();
        std::fs::write(d.path().join("target"), b"keep").unwrap();
        std::os::unix::fs::symlink(d.path().join("target"), d.path().join("link")).unwrap();
        std::os::unix::fs::symlink(d.path().join("absent"), d.path().join("dangling")).unwrap();
        let e = open_at(&top, "link", true, Create::No, 0o600).unwrap_err();
        assert_eq!(errno(&e), nix::libc::ELOOP);
        let e = open_at(&top, "dangling", true, Create::Exclusive, 0o600).unwrap_err();
        assert_eq!(errno(&e), nix::libc::EEXIST);
        assert!(!d.path().join("absent").exists());
        let f = open_at(&top, "new", true, Create::Exclusive, 0o600).unwrap();
        let st = stat_fd(&f).unwrap();
        assert!(st.is_file() && st.nlink == 1);
        link_at(&top, "new", &top, "new2").unwrap();
        assert_eq!(stat_fd(&f).unwrap().nlink, 2);
        assert!(lstat_at(&top, "new2").unwrap().same_file(&st));
        unlink_at(&top, "new2").unwrap();
        mkdir_at(&top, "sub", 0o700).unwrap();
        let sub = open_dir_at(&top, "sub").unwrap();
        rename_noreplace_at(&top, "new", &sub, "moved").unwrap();
        assert_eq!(
            errno(&rename_noreplace_at(&top, "target", &sub, "moved").unwrap_err()),
            nix::libc::EEXIST
        );
        sync_fd(&sub).unwrap();
        assert_eq!(std::fs::read(d.path().join("target")).unwrap(), b"keep");
    }
}
