//! Indexed on-disk tables built by postmap(1)/postalias(1): `hash:`, `btree:`, `cdb:` and
//! `lmdb:`.
//!
//! | type | file | format |
//! |---|---|---|
//! | `cdb` | `NAME.cdb` | D. J. Bernstein's cdb, byte-compatible with Postfix's `cdb:` both ways |
//! | `lmdb` | `NAME.lmdb` | OpenLDAP LMDB, one file, no lock file (as Postfix); Postfix-built files are read and written |
//! | `hash` | `NAME.db` | Postern's own: a cdb file with a format record |
//! | `btree` | `NAME.db` | the same, with the records written in key order, so `postmap -s` lists keys sorted |
//!
//! Postfix's `hash:` and `btree:` are Berkeley DB files, which we do not reproduce:
//! Debian is removing Berkeley DB and a constant database answers the same lookups
//! faster. Postern's `.db` files are cdb files that carry one extra record, the key
//! `"\0postern-table"` with the value `hash/1` or `btree/1` (no text source can produce a
//! key with a NUL byte). Opening a `.db` file without that record — a Berkeley DB file
//! left by Postfix — fails with a message that says to rebuild it with Postern's postmap.
//! `btree:` keeps the records sorted on every rewrite; lookups use the cdb hash either way.
//!
//! # Updates
//! Every change (`postmap FILE`, `-i`, `-d`, postalias) writes a complete new file under
//! a temporary name in the same directory, fsyncs it, renames it over the table and
//! fsyncs the directory, so a daemon never sees half a table; it keeps reading the old
//! inode until it restarts (see [`crate::changed`]). Concurrent updaters are serialized by
//! an exclusive `flock` on the current table file.
//!
//! # NUL conventions
//! Postfix may store keys and values with a terminating NUL byte (`-N`) or without
//! (`-n`). Postfix's defaults on Linux, matched here: `cdb` without, `lmdb` with. Readers
//! try both forms, as Postfix's do, and strip the NUL from what they return.
//!
//! # Security
//! Table files are trusted configuration written by the administrator; a corrupt file is a
//! lookup error (callers defer), never a panic. Sizes are bounded by the formats (cdb: 4 GiB).

mod cdb;
mod lmdb;
mod map;

pub(crate) use map::open_indexed;

use crate::TableError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Raw records (key, value) as stored.
pub(crate) type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// Key of the format record in Postern's `hash`/`btree` files.
pub(crate) const FORMAT_KEY: &[u8] = b"\0postern-table";

/// An indexed table type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// `hash:` (Postern's own format in `NAME.db`).
    Hash,
    /// `btree:` (Postern's own format in `NAME.db`, records in key order).
    Btree,
    /// `cdb:` (`NAME.cdb`).
    Cdb,
    /// `lmdb:` (`NAME.lmdb`).
    Lmdb,
}

impl DbKind {
    /// The kind for a table type name, if it is an indexed type.
    pub fn from_type(kind: &str) -> Option<DbKind> {
        Some(match kind {
            "hash" => DbKind::Hash,
            "btree" => DbKind::Btree,
            "cdb" => DbKind::Cdb,
            "lmdb" => DbKind::Lmdb,
            _ => return None,
        })
    }

    /// The type name (`hash`, …).
    pub fn type_name(self) -> &'static str {
        match self {
            DbKind::Hash => "hash",
            DbKind::Btree => "btree",
            DbKind::Cdb => "cdb",
            DbKind::Lmdb => "lmdb",
        }
    }

    /// The file that holds table `name`: `name.db`, `name.cdb` or `name.lmdb`.
    pub fn path(self, name: &str) -> PathBuf {
        let suffix = match self {
            DbKind::Hash | DbKind::Btree => ".db",
            DbKind::Cdb => ".cdb",
            DbKind::Lmdb => ".lmdb",
        };
        PathBuf::from(format!("{name}{suffix}"))
    }

    /// Whether new tables store a terminating NUL by default (Postfix's Linux defaults).
    pub fn default_nul(self) -> bool {
        matches!(self, DbKind::Lmdb)
    }

    fn format_value(self) -> Option<&'static [u8]> {
        match self {
            DbKind::Hash => Some(b"hash/1"),
            DbKind::Btree => Some(b"btree/1"),
            DbKind::Cdb | DbKind::Lmdb => None,
        }
    }
}

/// What to do when a key is added that the table has already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dup {
    /// Keep the first value (the caller warns "duplicate entry"); postmap's default.
    Warn,
    /// Keep the first value silently (`-w`).
    Ignore,
    /// Replace the value (`-r`).
    Replace,
}

/// The result of [`Contents::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new key.
    New,
    /// The key existed; its first value was kept.
    Kept,
    /// The key existed; its value was replaced.
    Replaced,
}

/// The records of a table in memory, in insertion (file) order: what postmap builds,
/// edits and writes. Keys and values are held without terminating NULs.
#[derive(Debug, Default, Clone)]
pub struct Contents {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    index: HashMap<Vec<u8>, usize>,
    /// Whether the file these contents were loaded from stored NULs (`None`: new, or empty).
    pub stored_nul: Option<bool>,
}

impl Contents {
    /// An empty table.
    pub fn new() -> Self {
        Contents::default()
    }

    /// Reads every record of an existing table file (not through a daemon's cache).
    ///
    /// # Errors
    /// [`TableError::Open`] for a missing or unreadable file, [`TableError::Format`] for a
    /// file that is not a table of this kind.
    pub fn load(kind: DbKind, name: &str) -> Result<Contents, TableError> {
        let path = kind.path(name);
        let raw = match kind {
            DbKind::Lmdb => lmdb::read_all(&path)?,
            _ => cdb::read_all(&path, kind.format_value())?,
        };
        let mut contents = Contents::new();
        for (mut k, mut v) in raw {
            if k.last() == Some(&0) {
                k.pop();
                if v.last() == Some(&0) {
                    v.pop();
                }
                contents.stored_nul = Some(true);
            } else if contents.stored_nul.is_none() {
                contents.stored_nul = Some(false);
            }
            contents.insert(&k, &v, Dup::Replace);
        }
        Ok(contents)
    }

    /// Adds a record, following `dup` when the key exists.
    pub fn insert(&mut self, key: &[u8], value: &[u8], dup: Dup) -> Inserted {
        match self.index.get(key) {
            Some(&at) if dup == Dup::Replace => {
                self.entries[at].1 = value.to_vec();
                Inserted::Replaced
            }
            Some(_) => Inserted::Kept,
            None => {
                self.index.insert(key.to_vec(), self.entries.len());
                self.entries.push((key.to_vec(), value.to_vec()));
                Inserted::New
            }
        }
    }

    /// Removes a key; false when it was not there.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let Some(at) = self.index.remove(key) else {
            return false;
        };
        self.entries.remove(at);
        for (i, (k, _)) in self.entries.iter().enumerate().skip(at) {
            self.index.insert(k.clone(), i);
        }
        true
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.index.get(key).map(|&i| self.entries[i].1.as_slice())
    }

    /// The records in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no records.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Whether `path` is a Berkeley DB file (a `hash:` or `btree:` table built by Postfix's
/// postmap/postalias), which Postern does not read: Berkeley DB's magic number (hash
/// `0x061561`, btree `0x053162`) at byte 12, in either byte order. `false` when the file
/// cannot be read. `postern check` uses it to name the command that rebuilds the table.
pub fn is_berkeley_db(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    if f.read_exact(&mut head).is_err() {
        return false;
    }
    let magic = [head[12], head[13], head[14], head[15]];
    let (le, be) = (u32::from_le_bytes(magic), u32::from_be_bytes(magic));
    [0x0006_1561, 0x0005_3162]
        .iter()
        .any(|m| *m == le || *m == be)
}

/// How [`write`] stores a table.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// Append a NUL to keys and values (`-N`).
    pub nul: bool,
    /// Permission bits of a new file (an existing table keeps its own).
    pub mode: u32,
}

/// Writes `contents` as table `name` of type `kind`, atomically (temporary file, fsync,
/// rename, directory fsync), serialized against other Postern updaters by an exclusive
/// flock on the current file.
///
/// # Errors
/// [`TableError::Write`] naming the file and the failed operation.
pub fn write(
    kind: DbKind,
    name: &str,
    contents: &Contents,
    opts: &WriteOptions,
) -> Result<(), TableError> {
    let path = kind.path(name);
    let _lock = lock_existing(&path)?;
    write_unlocked(kind, &path, contents, opts)
}

/// Loads, edits and rewrites table `name` while holding its update lock, so that two
/// concurrent `postmap -i` runs never lose each other's records. `edit` returns whether
/// to write (false: leave the file alone). With `create`, a missing table starts empty
/// (`postmap -i`); without, it is an error (`postmap -d`).
///
/// # Errors
/// Those of [`Contents::load`], of `edit`, and of the write.
pub fn update<E>(
    kind: DbKind,
    name: &str,
    create: bool,
    opts: &WriteOptions,
    edit: impl FnOnce(&mut Contents) -> Result<bool, E>,
) -> Result<Result<(), E>, TableError> {
    let path = kind.path(name);
    let _lock = lock_existing(&path)?;
    let mut contents = match Contents::load(kind, name) {
        Err(TableError::Open { source, .. })
            if create && source.kind() == std::io::ErrorKind::NotFound =>
        {
            Contents::new()
        }
        other => other?,
    };
    match edit(&mut contents) {
        Ok(true) => {
            let mut opts = *opts;
            if let Some(nul) = contents.stored_nul {
                opts.nul = nul;
            }
            write_unlocked(kind, &path, &contents, &opts).map(Ok)
        }
        Ok(false) => Ok(Ok(())),
        Err(e) => Ok(Err(e)),
    }
}

fn write_unlocked(
    kind: DbKind,
    path: &Path,
    contents: &Contents,
    opts: &WriteOptions,
) -> Result<(), TableError> {
    let mode = std::fs::metadata(path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
        .unwrap_or(opts.mode);
    let nul = |b: &[u8]| {
        let mut v = b.to_vec();
        if opts.nul {
            v.push(0);
        }
        v
    };
    let mut records: Vec<(Vec<u8>, Vec<u8>)> =
        contents.iter().map(|(k, v)| (nul(k), nul(v))).collect();
    if kind == DbKind::Btree {
        records.sort_by(|a, b| a.0.cmp(&b.0));
    }
    if let Some(format) = kind.format_value() {
        records.push((FORMAT_KEY.to_vec(), format.to_vec()));
    }
    let tmp = temp_path(path);
    let result = match kind {
        DbKind::Lmdb => lmdb::write_all(&tmp, &records, mode),
        _ => cdb::write_all(&tmp, &records, mode),
    }
    .and_then(|()| install(&tmp, path));
    if result.is_err() {
        // Best effort: the temporary file is garbage now; the old table is intact.
        let _cleanup = std::fs::remove_file(&tmp);
    }
    result
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    PathBuf::from(name)
}

fn write_err(path: &Path, op: &str, source: std::io::Error) -> TableError {
    TableError::Write {
        path: path.display().to_string(),
        op: op.to_string(),
        source,
    }
}

/// rename + directory fsync.
fn install(tmp: &Path, path: &Path) -> Result<(), TableError> {
    std::fs::rename(tmp, path).map_err(|e| write_err(path, "rename", e))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let d = std::fs::File::open(&dir).map_err(|e| write_err(&dir, "open directory", e))?;
    d.sync_all()
        .map_err(|e| write_err(&dir, "fsync directory", e))
}

/// Takes the update lock: an exclusive flock on the current table file, re-taken when the
/// file was replaced while we waited. No file yet: nothing to lock.
fn lock_existing(path: &Path) -> Result<Option<std::fs::File>, TableError> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(write_err(path, "open", e)),
        };
        f.lock().map_err(|e| write_err(path, "lock", e))?;
        let held = f.metadata().map_err(|e| write_err(path, "fstat", e))?;
        match std::fs::metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(Some(f)),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(write_err(path, "stat", e)),
        }
    }
}

#[cfg(test)]
mod tests;
