//! postern-queue-admin — creating, moving and deleting queue files (layer 1).
//!
//! Only cleanup, qmgr, pickup, postdrop and postsuper may depend on this crate
//! (checked in CI by `scripts/check-layers.py`); delivery agents, smtpd and the
//! bounce service never create, rename or delete queue files.
//!
//! [`enter`] is the durable write path behind every acknowledgement:
//!
//! 1. create `queue/t.<pid>.<n>` with `O_CREAT|O_EXCL`, mode 0600 (not ready);
//! 2. derive the queue ID from the microsecond clock and the file's inode
//!    (Postfix's short ID form: five hex digits of microseconds, then the inode
//!    in hex) and `link(2)` the file to that name, retrying with a fresh clock
//!    when the name is taken, then unlink the temporary name;
//! 3. write the content, set the ready bit (mode 0700, or the caller's mode),
//!    `fsync` the file;
//! 4. `fsync` the directory so the name itself is durable.
//!
//! Only after step 4 does the caller acknowledge (smtpd's `250`, sendmail's
//! exit 0). A crash before step 3 completes leaves a non-ready file, which
//! readers ignore and `postern start` removes.
//!
//! Moves between queues are single `rename(2)` calls: a message is in exactly
//! one directory at every instant.
//!
//! # Security
//! Names are validated by `postern-queue`. Files are created with `O_EXCL`
//! and never follow symlinks.
#![forbid(unsafe_code)]

use postern_queue::{Queue, READY_BIT, ReadError, valid_id};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// Errors changing the queue.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// Operation.
        op: &'static str,
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A bad queue name or ID.
    #[error(transparent)]
    Name(#[from] ReadError),
    /// Could not find a free queue ID after many attempts.
    #[error("cannot create a unique queue file name in {0}")]
    NoUniqueName(String),
}

impl AdminError {
    /// Whether the error means the file was not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, AdminError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// Whether the error is "no space left" or "quota exceeded".
    pub fn is_no_space(&self) -> bool {
        matches!(self, AdminError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc_enospc) if libc_enospc == 28 || libc_enospc == 122))
    }
}

fn io(op: &'static str, path: &Path, source: std::io::Error) -> AdminError {
    AdminError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Makes a queue ID from microseconds and an inode number (Postfix's short form).
pub fn make_id(usec: u32, inode: u64) -> String {
    format!("{:05X}{:X}", usec % 1_000_000, inode)
}

/// A queue file that has a name (its queue ID) but no content yet. Dropping
/// it without [`NewFile::commit`] removes it.
pub struct NewFile {
    /// The queue ID.
    pub id: String,
    dir: std::path::PathBuf,
    file: Option<fs::File>,
}

impl NewFile {
    /// Writes the content, sets the ready mode, fsyncs the file and the
    /// directory. After `Ok`, the message is durable.
    pub fn commit(mut self, bytes: &[u8], ready_mode: u32) -> Result<String, AdminError> {
        let path = self.dir.join(&self.id);
        let Some(mut f) = self.file.take() else {
            return Err(io(
                "write",
                &path,
                std::io::Error::other("already committed"),
            ));
        };
        let written = (|| {
            f.write_all(bytes).map_err(|e| io("write", &path, e))?;
            f.set_permissions(fs::Permissions::from_mode(ready_mode))
                .map_err(|e| io("fchmod", &path, e))?;
            f.sync_all().map_err(|e| io("fsync", &path, e))?;
            postern_sys::durable::fsync_dir(&self.dir).map_err(|e| io("fsync", &self.dir, e.source))
        })();
        if let Err(e) = written {
            remove_quietly(&path);
            return Err(e);
        }
        Ok(std::mem::take(&mut self.id))
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            remove_quietly(&self.dir.join(&self.id));
        }
    }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        postern_log::warning(format!("remove {}: {e}", path.display()));
    }
}

/// Creates a new, not yet ready, file in `queue` and names it with a fresh
/// queue ID (steps 1 and 2 above).
pub fn create(q: &Queue, queue: &str) -> Result<NewFile, AdminError> {
    let dir = q.dir(queue);
    let tmp = dir.join(format!(
        "t.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix_o_nofollow())
        .open(&tmp)
        .map_err(|e| io("create", &tmp, e))?;
    let named = f
        .metadata()
        .map_err(|e| io("fstat", &tmp, e))
        .and_then(|m| link_unique(&dir, &tmp, m.ino()));
    remove_quietly(&tmp);
    let id = named?;
    Ok(NewFile {
        id,
        dir,
        file: Some(f),
    })
}

/// Durably writes `bytes` as a new file in `queue` and returns its queue ID.
/// `ready_mode` is the final file mode (0o700 for incoming, 0o744 for maildrop).
pub fn enter(q: &Queue, queue: &str, bytes: &[u8], ready_mode: u32) -> Result<String, AdminError> {
    create(q, queue)?.commit(bytes, ready_mode)
}

fn nix_o_nofollow() -> i32 {
    0o400000 // O_NOFOLLOW on Linux
}

fn link_unique(dir: &Path, tmp: &Path, ino: u64) -> Result<String, AdminError> {
    for _ in 0..1000 {
        let usec = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_micros();
        let id = make_id(usec, ino);
        let path = dir.join(&id);
        match fs::hard_link(tmp, &path) {
            Ok(()) => return Ok(id),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::thread::sleep(Duration::from_micros(1))
            }
            Err(e) => return Err(io("link", &path, e)),
        }
    }
    Err(AdminError::NoUniqueName(dir.display().to_string()))
}

/// Moves a message from one queue to another (one `rename(2)`).
pub fn move_file(q: &Queue, from: &str, to: &str, id: &str) -> Result<(), AdminError> {
    let src = q.path(from, id)?;
    let dst = q.path(to, id)?;
    fs::rename(&src, &dst).map_err(|e| io("rename", &src, e))
}

/// Deletes a message (absent is reported as not found).
pub fn remove(q: &Queue, queue: &str, id: &str) -> Result<(), AdminError> {
    let p = q.path(queue, id)?;
    fs::remove_file(&p).map_err(|e| io("unlink", &p, e))
}

/// Sets a file's modification time (the next retry time of a deferred message).
pub fn set_mtime(q: &Queue, queue: &str, id: &str, when: SystemTime) -> Result<(), AdminError> {
    let p = q.path(queue, id)?;
    let f = OpenOptions::new()
        .write(true)
        .open(&p)
        .map_err(|e| io("open", &p, e))?;
    f.set_modified(when).map_err(|e| io("utime", &p, e))
}

/// Removes writer leftovers that never became ready (crash before the ready
/// bit) and last modified more than `older_than` ago. Only safe while no
/// writer can be working on a file that old: incoming (cleanup) with master
/// stopped; maildrop, which postdrop writes at any time, only with a long age.
pub fn purge_unready(
    q: &Queue,
    queue: &str,
    older_than: Duration,
) -> Result<Vec<String>, AdminError> {
    let cutoff = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(UNIX_EPOCH);
    let dir = q.dir(queue);
    let rd = fs::read_dir(&dir).map_err(|e| io("opendir", &dir, e))?;
    let mut removed = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| io("readdir", &dir, e))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        let md = match ent.metadata() {
            Ok(m) => m,
            Err(_) => continue,
        };
        let temp = name.starts_with("t.");
        let old = md.modified().is_ok_and(|m| m <= cutoff);
        if md.is_file()
            && old
            && (temp || (valid_id(&name) && md.permissions().mode() & READY_BIT == 0))
        {
            fs::remove_file(ent.path()).map_err(|e| io("unlink", &ent.path(), e))?;
            removed.push(name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enter_move_remove() {
        let dir = tempfile::tempdir().unwrap();
        for d in postern_queue::ALL_DIRS {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        let q = Queue::new(dir.path());
        let id = enter(&q, "incoming", b"hello", 0o700).unwrap();
        assert!(valid_id(&id));
        let e = q.list("incoming").unwrap();
        assert_eq!(e.len(), 1);
        assert!(e[0].ready);
        move_file(&q, "incoming", "active", &id).unwrap();
        assert_eq!(q.locate(&id), Some("active"));
        remove(&q, "active", &id).unwrap();
        assert!(remove(&q, "active", &id).unwrap_err().is_not_found());
        let ids: std::collections::HashSet<_> = (0..50)
            .map(|_| enter(&q, "incoming", b"x", 0o700).unwrap())
            .collect();
        assert_eq!(ids.len(), 50);
        fs::write(dir.path().join("incoming/t.1.1"), b"partial").unwrap();
        assert_eq!(
            purge_unready(&q, "incoming", Duration::ZERO).unwrap(),
            vec!["t.1.1".to_string()]
        );
    }
}
