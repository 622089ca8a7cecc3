//! mbox delivery: append one message to a locked UNIX mailbox file.
//!
//! Each message is written as
//!
//! ```text
//! From <sender or MAILER-DAEMON>  Sun Nov 22 22:40:48 2026
//! <prefix: Return-Path, Delivered-To>
//! <content, body lines starting with "From " written as ">From ">
//! <empty line>
//! ```
//!
//! in a single `write(2)` on an `O_APPEND` descriptor, then fsynced. On any
//! write or sync error the file is truncated back to its previous size, so
//! a failed delivery never leaves half a message behind.
//!
//! # Locking (`mailbox_delivery_lock`)
//! * `dotlock`: `<mailbox>.lock` created with `O_EXCL`, removed afterwards; a
//!   lock older than `stale_lock_time` is removed. When the directory is not
//!   writable (a non-root instance with a shared spool) the dot lock is skipped
//!   silently, as Postfix does.
//! * `fcntl` (and `flock`, which is treated the same): a POSIX write lock on
//!   the whole file.
//!
//! Each lock is tried `deliver_lock_attempts` times, `deliver_lock_delay`
//! apart, then delivery is deferred (4.2.0). fcntl locks belong to the
//! process, so threads of one process also take an in-process lock on the
//! mailbox path first.
//!
//! # Security
//! The mailbox is opened relative to its directory's descriptor (see
//! [`crate::safedir`]) with `O_NOFOLLOW|O_NONBLOCK` (never through a
//! symbolic link, never blocking on a FIFO), as Postfix's `safe_open` does:
//! an absent file is created exclusively (`O_CREAT|O_EXCL`); an existing one
//! must be a regular file with one link, and after locking the name must
//! still be that file (`fstat` of the descriptor and `lstat` of the name:
//! same device and inode). When the caller gives an owner, an existing
//! mailbox must belong to that owner and a new one is created 0600 and given
//! to them. The dot lock is created and removed relative to the same
//! directory descriptor. Violations defer delivery (4.2.0) with a warning.
//!
//! # Errors
//! `mailbox_size_limit` (0 = none) is checked before writing: a message that
//! would make the file larger bounces with 5.2.2.

use crate::DeliveryError;
use crate::LockOptions;
use crate::safedir::{Dir, split_last, violation};
use postern_mail::address::quote_address;
use postern_mail::date::mbox_from_date;
use postern_sys::safeopen::{self, Create};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

static HELD: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
static RELEASED: Condvar = Condvar::new();

fn held() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    HELD.lock().unwrap_or_else(|p| p.into_inner())
}

/// Exclusive use of a mailbox path among the threads of this process.
struct PathGuard(PathBuf);

impl PathGuard {
    fn acquire(path: &Path) -> PathGuard {
        let mut set = held();
        while set.contains(path) {
            set = RELEASED.wait(set).unwrap_or_else(|p| p.into_inner());
        }
        set.insert(path.to_path_buf());
        PathGuard(path.to_path_buf())
    }
}

impl Drop for PathGuard {
    fn drop(&mut self) {
        held().remove(&self.0);
        RELEASED.notify_all();
    }
}

/// An open, locked mailbox.
pub struct LockedMbox {
    file: File,
    path: PathBuf,
    dir: Dir,
    /// The dot lock's name in `dir`, while held.
    dotlock: Option<String>,
    _guard: PathGuard,
}

fn cannot(path: &Path) -> String {
    format!("cannot update mailbox {}", path.display())
}

fn is_stale(dir: &Dir, lock: &str, stale: u64) -> bool {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    safeopen::lstat_at(dir.fd(), lock)
        .is_ok_and(|st| now.saturating_sub(st.mtime) > i64::try_from(stale).unwrap_or(i64::MAX))
}

/// Most stale lock files removed in one delivery (bounds a lock that keeps
/// reappearing with an old time stamp).
const MAX_STALE_REMOVALS: u32 = 5;

/// Creates `<name>.lock` in `dir`; `Ok(None)` when the directory is not writable.
fn take_dotlock(
    dir: &Dir,
    name: &str,
    path: &Path,
    s: &LockOptions,
) -> Result<Option<String>, DeliveryError> {
    let lock = format!("{name}.lock");
    let lock_path = dir.path().join(&lock);
    let (mut attempt, mut removed) = (0, 0);
    loop {
        match safeopen::open_at(dir.fd(), &lock, false, Create::Exclusive, 0o600) {
            Ok(_file) => return Ok(Some(lock)),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                if removed < MAX_STALE_REMOVALS && is_stale(dir, &lock, s.stale_lock_time) {
                    removed += 1;
                    postern_log::warning!("{}: removing stale lock file", lock_path.display());
                    match safeopen::unlink_at(dir.fd(), &lock) {
                        Ok(()) => continue,
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                        Err(e) => postern_log::warning!("remove {}: {e}", lock_path.display()),
                    }
                }
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EACCES | libc::EPERM | libc::EROFS)
                ) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(DeliveryError::from_io(
                    &format!("{}: cannot create lock file", cannot(path)),
                    &e.source,
                ));
            }
        }
        attempt += 1;
        if attempt >= s.deliver_lock_attempts.max(1) {
            return Err(DeliveryError::temp(
                "4.2.0",
                format!("{}: lock file {} exists", cannot(path), lock_path.display()),
            ));
        }
        std::thread::sleep(Duration::from_secs(s.deliver_lock_delay));
    }
}

fn take_fcntl(file: &File, path: &Path, s: &LockOptions) -> Result<(), DeliveryError> {
    let what = path.display().to_string();
    for attempt in 0..s.deliver_lock_attempts.max(1) {
        match postern_sys::lock::fcntl_lock_exclusive(file, false, &what) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(DeliveryError::from_sys(&cannot(path), &e)),
        }
        if attempt + 1 < s.deliver_lock_attempts {
            std::thread::sleep(Duration::from_secs(s.deliver_lock_delay));
        }
    }
    Err(DeliveryError::temp(
        "4.2.0",
        format!("{}: unable to lock for exclusive access", cannot(path)),
    ))
}

/// Opens (creating exclusively if absent) and checks the mailbox file, as
/// Postfix's `safe_open` does.
fn open_checked(
    dir: &Dir,
    name: &str,
    path: &Path,
    owner: Option<(u32, u32)>,
) -> Result<File, DeliveryError> {
    let refuse = |why: String| Err(violation(format!("{}: {why}", cannot(path))));
    let (file, created) = match safeopen::open_at(dir.fd(), name, true, Create::Exclusive, 0o600) {
        Ok(f) => (f, true),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            match safeopen::open_at(dir.fd(), name, true, Create::No, 0) {
                Ok(f) => (f, false),
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return refuse("file is a symbolic link".into());
                }
                Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                    return refuse("file is a directory".into());
                }
                Err(e) => {
                    return Err(DeliveryError::from_io(
                        &format!("{}: cannot open file", cannot(path)),
                        &e.source,
                    ));
                }
            }
        }
        Err(e) => {
            return Err(DeliveryError::from_io(
                &format!("{}: cannot create file exclusively", cannot(path)),
                &e.source,
            ));
        }
    };
    let st = safeopen::stat_fd(&file).map_err(|e| DeliveryError::from_sys(&cannot(path), &e))?;
    if !st.is_file() {
        return refuse("not a regular file".into());
    }
    if st.nlink != 1 {
        return refuse(format!("file has {} hard links", st.nlink));
    }
    if let Some((uid, gid)) = owner {
        if created {
            safeopen::chown_fd(&file, uid, gid)
                .map_err(|e| DeliveryError::from_sys(&cannot(path), &e))?;
        } else if st.uid != uid {
            postern_log::warning!(
                "specify \"strict_mailbox_ownership = no\" to ignore mailbox ownership mismatch"
            );
            return refuse(format!("file has wrong owner (uid {})", st.uid));
        }
    }
    Ok(file)
}

/// The name must still be the file we opened (nobody renamed, replaced or
/// linked it): `fstat` and `lstat` agree on device, inode, links and mode.
fn same_file(file: &File, dir: &Dir, name: &str, path: &Path) -> Result<(), DeliveryError> {
    let a = safeopen::stat_fd(file).map_err(|e| DeliveryError::from_sys(&cannot(path), &e))?;
    let b = match safeopen::lstat_at(dir.fd(), name) {
        Ok(b) => b,
        Err(e) => {
            return Err(violation(format!(
                "{}: file status changed unexpectedly: {}",
                cannot(path),
                e.source
            )));
        }
    };
    if b.is_symlink() {
        return Err(violation(format!(
            "{}: file is a symbolic link",
            cannot(path)
        )));
    }
    if !a.same_file(&b) || a.nlink != b.nlink || a.mode != b.mode || a.nlink != 1 {
        return Err(violation(format!(
            "{}: file status changed unexpectedly",
            cannot(path)
        )));
    }
    Ok(())
}

/// Opens and locks the mailbox at `path` (see the module docs); its
/// directory is trusted. `owner` (uid, gid): an existing file must belong
/// to uid; a new file is given to it.
pub fn open_locked(
    path: &Path,
    s: &LockOptions,
    owner: Option<(u32, u32)>,
) -> Result<LockedMbox, DeliveryError> {
    let Some((parent, name)) = split_last(path) else {
        return Err(DeliveryError::temp(
            "4.3.5",
            format!("{}: bad mailbox path", cannot(path)),
        ));
    };
    let dir = Dir::open_trusted(parent, &cannot(path))?;
    open_locked_at(dir, name, s, owner)
}

/// Opens and locks the mailbox `name` in the open directory `dir`.
pub fn open_locked_at(
    dir: Dir,
    name: &str,
    s: &LockOptions,
    owner: Option<(u32, u32)>,
) -> Result<LockedMbox, DeliveryError> {
    let path = dir.path().join(name);
    let guard = PathGuard::acquire(&path);
    let dotlock = if s.lock_method("dotlock") {
        take_dotlock(&dir, name, &path, s)?
    } else {
        None
    };
    let file = match open_checked(&dir, name, &path, owner) {
        Ok(f) => f,
        Err(e) => {
            remove_lock(&dir, &dotlock);
            return Err(e);
        }
    };
    let mb = LockedMbox {
        file,
        path,
        dir,
        dotlock,
        _guard: guard,
    };
    if s.lock_method("fcntl") || s.lock_method("flock") {
        take_fcntl(&mb.file, &mb.path, s)?;
    }
    same_file(&mb.file, &mb.dir, name, &mb.path)?;
    Ok(mb)
}

fn remove_lock(dir: &Dir, lock: &Option<String>) {
    if let Some(l) = lock
        && let Err(re) = safeopen::unlink_at(dir.fd(), l)
    {
        postern_log::warning!("remove {}: {re}", dir.path().join(l).display());
    }
}

/// The mbox entry for one message: `From ` line, prefix, quoted content,
/// final newline and the separating empty line.
pub fn format_entry(sender: &str, arrival_secs: i64, prefix: &[u8], content: &[u8]) -> Vec<u8> {
    let who = if sender.is_empty() {
        "MAILER-DAEMON".to_string()
    } else {
        quote_address(sender).replace(['\n', '\r'], "_")
    };
    let mut out = format!(
        "From {who}  {}\n",
        mbox_from_date(arrival_secs, local_offset(arrival_secs))
    )
    .into_bytes();
    out.reserve(prefix.len() + content.len() + 64);
    for line in prefix
        .split_inclusive(|&b| b == b'\n')
        .chain(content.split_inclusive(|&b| b == b'\n'))
    {
        if line.starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

fn local_offset(secs: i64) -> i32 {
    jiff::Timestamp::from_second(secs)
        .map_or(0, |t| jiff::tz::TimeZone::system().to_offset(t).seconds())
}

impl LockedMbox {
    /// Appends one message; enforces `size_limit` (bytes, 0 = none).
    pub fn append(
        &mut self,
        sender: &str,
        arrival_secs: i64,
        prefix: &[u8],
        content: &[u8],
        size_limit: u64,
    ) -> Result<(), DeliveryError> {
        let entry = format_entry(sender, arrival_secs, prefix, content);
        let ioerr = |e: std::io::Error| DeliveryError::from_io(&cannot(&self.path), &e);
        let orig = self.file.metadata().map_err(ioerr)?.len();
        if size_limit > 0 && orig.saturating_add(entry.len() as u64) > size_limit {
            return Err(DeliveryError::perm(
                "5.2.2",
                format!(
                    "{}: message would exceed mailbox size limit",
                    cannot(&self.path)
                ),
            ));
        }
        let written = self.file.write_all(&entry).map_err(ioerr).and_then(|()| {
            postern_sys::durable::fsync_file(&self.file, &self.path)
                .map_err(|e| DeliveryError::from_sys(&cannot(&self.path), &e))
        });
        if let Err(e) = written {
            if let Err(te) = self.file.set_len(orig) {
                postern_log::warning!("truncate {} to {orig}: {te}", self.path.display());
            }
            return Err(e);
        }
        Ok(())
    }

    /// Unlocks and closes the mailbox, removing the dot lock.
    pub fn release(mut self) -> Result<(), DeliveryError> {
        match self.dotlock.take() {
            Some(l) => safeopen::unlink_at(self.dir.fd(), &l).map_err(|e| {
                DeliveryError::from_io(
                    &format!(
                        "cannot remove lock file {}",
                        self.dir.path().join(&l).display()
                    ),
                    &e.source,
                )
            }),
            None => Ok(()),
        }
    }
}

impl Drop for LockedMbox {
    fn drop(&mut self) {
        let lock = self.dotlock.take();
        remove_lock(&self.dir, &lock);
    }
}

/// Appends `prefix` + `content` to the mbox at `path` with the current
/// identity: open, lock, write, sync, unlock.
pub fn deliver(
    path: &Path,
    sender: &str,
    arrival_secs: i64,
    prefix: &[u8],
    content: &[u8],
    settings: &LockOptions,
) -> Result<(), DeliveryError> {
    let mut mb = open_locked(path, settings, None)?;
    let r = mb.append(
        sender,
        arrival_secs,
        prefix,
        content,
        settings.mailbox_size_limit,
    );
    let released = mb.release();
    r.and(released)
}
