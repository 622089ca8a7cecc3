//! Which table files this process opened, so that a daemon notices a table that changed.
//!
//! Postfix daemons remember every file-based table they opened and, between requests,
//! check whether one of them changed; if so they log `table NAME has changed --
//! restarting` and exit, and master starts a fresh process that opens the new table. This
//! module keeps that registry: every file-based map (indexed files and the sources of
//! texthash, regexp, pcre and cidr tables) registers the file it read, keeping the
//! descriptor open. [`changed`] `fstat`s each descriptor — which works after a chroot — and
//! reports a table whose file has a different modification time, or whose inode was
//! unlinked (postmap replaces tables by `rename`, which leaves the old inode with no link).
//!
//! # Security
//! Only descriptors this process already opened are examined; nothing is re-opened by name.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

struct Entry {
    name: String,
    file: File,
    mtime: (i64, i64),
}

static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// An open file and its modification time, taken before the table is read (so that a
/// change during the read is noticed later) and registered once the table opened.
#[derive(Debug)]
pub(crate) struct Watch {
    file: File,
    mtime: (i64, i64),
}

impl Watch {
    /// Opens `path` for watching; `None` when it cannot be opened (the table's own open
    /// then reports the error).
    pub(crate) fn open(path: &Path) -> Option<Watch> {
        let file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        Some(Watch {
            file,
            mtime: (meta.mtime(), meta.mtime_nsec()),
        })
    }

    /// Records the watch under the table's name (`type:name`). A name already registered
    /// keeps its first (oldest) file: that is the content this process may still use.
    pub(crate) fn register(self, name: &str) {
        let mut reg = match REGISTRY.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        if reg.iter().any(|e| e.name == name) {
            return;
        }
        reg.push(Entry {
            name: name.to_string(),
            file: self.file,
            mtime: self.mtime,
        });
    }
}

/// The name of the first registered table whose file changed since it was opened
/// (a different modification time, or the file was removed or replaced), else `None`.
///
/// Daemons call this between requests and exit when it returns a name, logging
/// `table NAME has changed -- restarting` as Postfix does.
pub fn changed() -> Option<String> {
    changed_all().into_iter().next()
}

/// Every registered table whose file changed.
pub(crate) fn changed_all() -> Vec<String> {
    let reg = match REGISTRY.lock() {
        Ok(r) => r,
        Err(poisoned) => poisoned.into_inner(),
    };
    reg.iter()
        .filter(|e| match e.file.metadata() {
            Ok(meta) => meta.nlink() == 0 || (meta.mtime(), meta.mtime_nsec()) != e.mtime,
            Err(_) => true,
        })
        .map(|e| e.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_and_touched_files_are_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "x").unwrap();
        Watch::open(&a).unwrap().register("test:replaced");
        let name = "test:replaced".to_string();
        assert!(!changed_all().contains(&name));
        let tmp = dir.path().join("a.tmp");
        std::fs::write(&tmp, "y").unwrap();
        std::fs::rename(&tmp, &a).unwrap();
        assert!(changed_all().contains(&name));
        assert!(changed().is_some());
    }
}
