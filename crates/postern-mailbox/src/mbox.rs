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
//! The mailbox is opened with `O_NOFOLLOW|O_NONBLOCK` (never through a
//! symbolic link, never blocking on a FIFO) and must be a regular file with
//! one link, which is still the file the path names after locking; when the
//! caller gives an owner, an existing mailbox must belong to that owner and a
//! new one is created 0600 and given to them. Violations defer delivery.
//!
//! # Errors
//! `mailbox_size_limit` (0 = none) is checked before writing: a message that
//! would make the file larger bounces with 5.2.2.

use crate::DeliveryError;
use crate::LockOptions;
use postern_mail::address::quote_address;
use postern_mail::date::mbox_from_date;
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
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
    dotlock: Option<PathBuf>,
    _guard: PathGuard,
}

fn cannot(path: &Path) -> String {
    format!("cannot update mailbox {}", path.display())
}

fn dotlock_name(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

fn is_stale(lock: &Path, stale: u64) -> bool {
    std::fs::symlink_metadata(lock)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > Duration::from_secs(stale))
}

/// Most stale lock files removed in one delivery (bounds a lock that keeps
/// reappearing with an old time stamp).
const MAX_STALE_REMOVALS: u32 = 5;

/// Creates `<path>.lock`; `Ok(None)` when the directory is not writable.
fn take_dotlock(path: &Path, s: &LockOptions) -> Result<Option<PathBuf>, DeliveryError> {
    let lock = dotlock_name(path);
    let (mut attempt, mut removed) = (0, 0);
    loop {
        let r = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock);
        match r {
            Ok(_file) => return Ok(Some(lock)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if removed < MAX_STALE_REMOVALS && is_stale(&lock, s.stale_lock_time) {
                    removed += 1;
                    postern_log::warning!("{}: removing stale lock file", lock.display());
                    match std::fs::remove_file(&lock) {
                        Ok(()) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => postern_log::warning!("remove {}: {e}", lock.display()),
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
                    &e,
                ));
            }
        }
        attempt += 1;
        if attempt >= s.deliver_lock_attempts.max(1) {
            return Err(DeliveryError::temp(
                "4.2.0",
                format!("{}: lock file {} exists", cannot(path), lock.display()),
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

/// Opens (creating if needed) and checks the mailbox file.
fn open_checked(path: &Path, owner: Option<(u32, u32)>) -> Result<File, DeliveryError> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    let open = |create_new: bool| {
        let mut o = OpenOptions::new();
        o.append(true).mode(0o600).custom_flags(flags);
        if create_new {
            o.create_new(true)
        } else {
            &mut o
        }
        .open(path)
    };
    let ioerr = |e: std::io::Error| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            DeliveryError::temp(
                "4.2.0",
                format!("{}: file is a symbolic link", cannot(path)),
            )
        } else {
            DeliveryError::from_io(&cannot(path), &e)
        }
    };
    let (file, created) = match open(true) {
        Ok(f) => (f, true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            (open(false).map_err(ioerr)?, false)
        }
        Err(e) => return Err(ioerr(e)),
    };
    let md = file.metadata().map_err(ioerr)?;
    let refuse = |why: &str| {
        Err(DeliveryError::temp(
            "4.2.0",
            format!("{}: {why}", cannot(path)),
        ))
    };
    if !md.file_type().is_file() {
        return refuse("not a regular file");
    }
    if md.nlink() != 1 {
        return refuse(&format!("file has {} hard links", md.nlink()));
    }
    if let Some((uid, gid)) = owner {
        if created {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(ioerr)?;
        } else if md.uid() != uid {
            return refuse("file has wrong owner");
        }
    }
    Ok(file)
}

/// The path must still name the file we opened (nobody renamed or replaced it).
fn same_file(file: &File, path: &Path) -> Result<(), DeliveryError> {
    let ioerr = |e: std::io::Error| DeliveryError::from_io(&cannot(path), &e);
    let (a, b) = (
        file.metadata().map_err(ioerr)?,
        std::fs::symlink_metadata(path).map_err(ioerr)?,
    );
    if a.dev() != b.dev() || a.ino() != b.ino() {
        return Err(DeliveryError::temp(
            "4.2.0",
            format!("{}: file was replaced while opening", cannot(path)),
        ));
    }
    Ok(())
}

/// Opens and locks the mailbox at `path` (see the module docs). `owner`
/// (uid, gid): an existing file must belong to uid; a new file is given to it.
pub fn open_locked(
    path: &Path,
    s: &LockOptions,
    owner: Option<(u32, u32)>,
) -> Result<LockedMbox, DeliveryError> {
    let guard = PathGuard::acquire(path);
    let dotlock = if s.lock_method("dotlock") {
        take_dotlock(path, s)?
    } else {
        None
    };
    let mb = LockedMbox {
        file: open_checked(path, owner).map_err(|e| remove_lock(&dotlock, e))?,
        path: path.to_path_buf(),
        dotlock,
        _guard: guard,
    };
    if s.lock_method("fcntl") || s.lock_method("flock") {
        take_fcntl(&mb.file, path, s)?;
    }
    same_file(&mb.file, path)?;
    Ok(mb)
}

fn remove_lock(lock: &Option<PathBuf>, e: DeliveryError) -> DeliveryError {
    if let Some(l) = lock
        && let Err(re) = std::fs::remove_file(l)
    {
        postern_log::warning!("remove {}: {re}", l.display());
    }
    e
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
            Some(l) => std::fs::remove_file(&l).map_err(|e| {
                DeliveryError::from_io(&format!("cannot remove lock file {}", l.display()), &e)
            }),
            None => Ok(()),
        }
    }
}

impl Drop for LockedMbox {
    fn drop(&mut self) {
        if let Some(l) = self.dotlock.take()
            && let Err(e) = std::fs::remove_file(&l)
        {
            postern_log::warning!("remove {}: {e}", l.display());
        }
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
