//! postern-queue — reading the queue and crossing off recipients (layer 1).
//!
//! The queue lives under `$queue_directory` in Postfix's directories:
//!
//! | directory  | holds                                                        |
//! |------------|--------------------------------------------------------------|
//! | `maildrop` | local submissions written by postdrop, read by pickup        |
//! | `incoming` | files written by cleanup (mode 0600 while being written, 0700 when complete) |
//! | `active`   | messages qmgr is delivering                                  |
//! | `deferred` | messages waiting for a retry; the file's mtime is the next retry time |
//! | `hold`     | messages put on hold (`postsuper -h`)                        |
//! | `corrupt`  | damaged files moved aside                                    |
//! | `bounce`, `defer`, `trace` | per-message delivery status logs (the bounce service's) |
//! | `public`, `private` | service sockets                                     |
//! | `pid`      | master's pid file                                            |
//!
//! Their owners and modes (Postfix's: `maildrop` 0730 and `public` 2710 with
//! group `setgid_group`, the rest 0700 `mail_owner`) are in [`modes`].
//!
//! Directories are flat: `hash_queue_names`/`hash_queue_depth` are not
//! implemented (Postfix's hashed subdirectories only help file systems
//! without directory indexes). [`Scan`] walks a directory
//! incrementally, so qmgr's cost per message does not grow with its size.
//!
//! This crate only reads queue files and marks recipients done (one byte
//! written in place, [`Queue::mark_done`]); creating, moving and deleting
//! files is `postern-queue-admin`'s, which only cleanup, qmgr, pickup,
//! postdrop and postsuper use.
//!
//! # Security
//! Queue IDs from outside (command lines, IPC) are checked by [`valid_id`]
//! before they become path names, so no caller can reach outside the queue.
//! Queue files are parsed with a size limit; a damaged file yields
//! [`ReadError::Corrupt`] for the caller to move aside, never a panic.
#![forbid(unsafe_code)]

use postern_qfile::{QfileError, QueueFile};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use thiserror::Error;

pub mod modes;
pub mod scan;
pub use scan::{Scan, ScanFlags};

/// Message queues (directories holding queue files).
pub const MESSAGE_QUEUES: [&str; 6] = [
    "maildrop", "incoming", "active", "deferred", "hold", "corrupt",
];
/// Per-message log directories.
pub const LOG_QUEUES: [&str; 3] = ["bounce", "defer", "trace"];
/// Every directory under the queue directory, in creation order.
pub const ALL_DIRS: [&str; 13] = [
    "maildrop", "incoming", "active", "deferred", "hold", "corrupt", "bounce", "defer", "trace",
    "public", "private", "pid", "saved",
];

/// The owner-execute bit marks a complete ("ready") queue file.
pub const READY_BIT: u32 = 0o100;

/// Errors reading the queue.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The file does not exist (already delivered, moved or deleted).
    #[error("{0}: no such queue file")]
    NotFound(String),
    /// An I/O error other than "not found".
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
    /// The file is damaged or foreign.
    #[error("{path}: corrupt queue file: {cause}")]
    Corrupt {
        /// Path.
        path: String,
        /// What is wrong.
        cause: QfileError,
    },
    /// A queue name or ID that is not valid.
    #[error("invalid queue name or id: {0}")]
    BadName(String),
}

fn io(op: &'static str, path: &Path, source: std::io::Error) -> ReadError {
    if source.kind() == std::io::ErrorKind::NotFound {
        ReadError::NotFound(path.display().to_string())
    } else {
        ReadError::Io {
            op,
            path: path.display().to_string(),
            source,
        }
    }
}

/// Whether `id` is a well-formed queue ID: 1 to 40 ASCII alphanumerics.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 40 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether `name` is one of the queue or log directories.
pub fn valid_queue(name: &str) -> bool {
    MESSAGE_QUEUES.contains(&name) || LOG_QUEUES.contains(&name)
}

/// One entry of a queue directory listing.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Queue ID (file name).
    pub id: String,
    /// Whether the ready bit is set (the writer finished).
    pub ready: bool,
    /// Modification time (for `deferred`: the next retry time).
    pub mtime: SystemTime,
    /// File size in bytes.
    pub size: u64,
    /// Last status change (ctime: set by every rename into the directory
    /// and every mtime update).
    pub changed: SystemTime,
}

fn ctime(md: &fs::Metadata) -> SystemTime {
    use std::os::unix::fs::MetadataExt;
    let secs = u64::try_from(md.ctime()).unwrap_or(0);
    let nanos = u32::try_from(md.ctime_nsec()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, nanos.min(999_999_999))
}

/// A handle on the queue directory.
#[derive(Debug, Clone)]
pub struct Queue {
    root: PathBuf,
}

impl Queue {
    /// A queue rooted at `queue_directory`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Queue { root: root.into() }
    }

    /// The queue directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one queue.
    pub fn dir(&self, queue: &str) -> PathBuf {
        self.root.join(queue)
    }

    /// The path of a queue file, after validating both names.
    pub fn path(&self, queue: &str, id: &str) -> Result<PathBuf, ReadError> {
        if !valid_queue(queue) || !valid_id(id) {
            return Err(ReadError::BadName(format!("{queue}/{id}")));
        }
        Ok(self.root.join(queue).join(id))
    }

    /// Lists a queue directory. Names that are not queue IDs (temporary files
    /// of writers) are skipped; files that vanish meanwhile are skipped.
    pub fn list(&self, queue: &str) -> Result<Vec<Entry>, ReadError> {
        let dir = self.dir(queue);
        let rd = fs::read_dir(&dir).map_err(|e| io("opendir", &dir, e))?;
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| io("readdir", &dir, e))?;
            let Some(id) = ent.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !valid_id(&id) {
                continue;
            }
            let md = match ent.metadata() {
                Ok(m) if m.is_file() => m,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("stat", &ent.path(), e)),
            };
            out.push(Entry {
                id,
                ready: md.permissions().mode() & READY_BIT != 0,
                mtime: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                size: md.len(),
                changed: ctime(&md),
            });
        }
        Ok(out)
    }

    /// Looks at one queue file (no directory listing): whether it is ready,
    /// its mtime (for `deferred`: the next retry time) and size.
    pub fn stat(&self, queue: &str, id: &str) -> Result<Entry, ReadError> {
        let path = self.path(queue, id)?;
        let md = fs::symlink_metadata(&path).map_err(|e| io("stat", &path, e))?;
        if !md.is_file() {
            return Err(ReadError::NotFound(path.display().to_string()));
        }
        Ok(Entry {
            id: id.to_string(),
            ready: md.permissions().mode() & READY_BIT != 0,
            mtime: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            size: md.len(),
            changed: ctime(&md),
        })
    }

    /// Reads and parses a queue file. `limit` bounds every record
    /// (pass `message_size_limit` plus slack).
    pub fn read(&self, queue: &str, id: &str, limit: u64) -> Result<QueueFile, ReadError> {
        let path = self.path(queue, id)?;
        let mut f = File::open(&path).map_err(|e| io("open", &path, e))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(|e| io("read", &path, e))?;
        postern_qfile::parse(&buf, limit).map_err(|cause| ReadError::Corrupt {
            path: path.display().to_string(),
            cause,
        })
    }

    /// Finds which message queue holds `id`.
    pub fn locate(&self, id: &str) -> Option<&'static str> {
        if !valid_id(id) {
            return None;
        }
        MESSAGE_QUEUES
            .into_iter()
            .find(|q| self.root.join(q).join(id).is_file())
    }

    /// Marks the recipient whose record starts at `offset` as done, by
    /// overwriting its type byte (`R` → `D`). Like Postfix, no fsync: a crash
    /// may repeat a delivery, never lose one.
    pub fn mark_done(&self, queue: &str, id: &str, offset: u64) -> Result<(), ReadError> {
        let path = self.path(queue, id)?;
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io("open", &path, e))?;
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, offset)
            .map_err(|e| io("read", &path, e))?;
        match b[0] {
            postern_qfile::rec::DONE => Ok(()),
            postern_qfile::rec::RCPT => f
                .write_all_at(&[postern_qfile::mark_done_byte()], offset)
                .map_err(|e| io("write", &path, e)),
            _ => Err(ReadError::Corrupt {
                path: path.display().to_string(),
                cause: QfileError::Malformed {
                    offset,
                    what: "recipient (cross-off)",
                },
            }),
        }
    }

    /// Appends text to a per-message log file (bounce/defer/trace) and fsyncs it.
    pub fn append_log(&self, log: &str, id: &str, text: &[u8]) -> Result<(), ReadError> {
        if !LOG_QUEUES.contains(&log) {
            return Err(ReadError::BadName(log.to_string()));
        }
        let path = self.path(log, id)?;
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io("open", &path, e))?;
        f.seek(SeekFrom::End(0)).map_err(|e| io("seek", &path, e))?;
        f.write_all(text).map_err(|e| io("write", &path, e))?;
        f.sync_all().map_err(|e| io("fsync", &path, e))
    }

    /// Reads a per-message log file; `Ok(None)` when there is none.
    pub fn read_log(&self, log: &str, id: &str) -> Result<Option<Vec<u8>>, ReadError> {
        let path = self.path(log, id)?;
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path, e)),
        }
    }

    /// Removes a per-message log file (absent is fine).
    pub fn remove_log(&self, log: &str, id: &str) -> Result<(), ReadError> {
        if !LOG_QUEUES.contains(&log) {
            return Err(ReadError::BadName(log.to_string()));
        }
        let path = self.path(log, id)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("unlink", &path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        assert!(valid_id("3F2A1B2C4D"));
        assert!(!valid_id("../etc"));
        assert!(!valid_id(""));
        let q = Queue::new("/nonexistent");
        assert!(q.path("active", "a/b").is_err());
        assert!(q.path("etc", "ABC").is_err());
    }

    #[test]
    fn cross_off_in_place() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("active")).unwrap();
        let mut qf = QueueFile {
            sender: "s@x".into(),
            recipients: vec![postern_qfile::RecipientRecord {
                address: "a@b".into(),
                ..Default::default()
            }],
            content: b"x\n".to_vec(),
            ..Default::default()
        };
        let bytes = postern_qfile::encode(&mut qf);
        fs::write(dir.path().join("active/ABC"), &bytes).unwrap();
        let q = Queue::new(dir.path());
        let got = q.read("active", "ABC", 1 << 20).unwrap();
        q.mark_done("active", "ABC", got.recipients[0].offset)
            .unwrap();
        assert!(q.read("active", "ABC", 1 << 20).unwrap().recipients[0].done);
        assert!(q.mark_done("active", "ABC", 0).is_err());
        assert!(matches!(
            q.read("active", "NOPE", 10),
            Err(ReadError::NotFound(_))
        ));
    }
}
