//! Durability helpers: fsync a file or a directory entry.
//!
//! The queue invariant (DESIGN.md, invariant 1) needs both: the file's data and
//! the directory entry that names it must reach stable storage before Postern
//! acknowledges a message.

use crate::{Result, SysError};
use std::fs::File;
use std::path::Path;

/// fsyncs an open file (data and metadata).
pub fn fsync_file(f: &File, what: &Path) -> Result<()> {
    f.sync_all()
        .map_err(|e| SysError::new("fsync", what.display().to_string(), e))
}

/// fsyncs a directory, making renames and creations within it durable.
///
/// A directory the process may write but not read (`maildrop`, mode 0730,
/// seen by the set-gid postdrop) cannot be opened: then the whole file system
/// that holds it is synced (`syncfs` through the parent directory, when it is
/// on the same device), which covers the new entry too.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let f = match File::open(dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return sync_fs_of(dir, e),
        Err(e) => return Err(SysError::new("open", dir.display().to_string(), e)),
    };
    f.sync_all()
        .map_err(|e| SysError::new("fsync", dir.display().to_string(), e))
}

fn sync_fs_of(dir: &Path, denied: std::io::Error) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let what = dir.display().to_string();
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let p = File::open(parent).map_err(|_| SysError::new("open", &what, denied))?;
    let same = match (std::fs::metadata(dir), p.metadata()) {
        (Ok(d), Ok(pm)) => d.dev() == pm.dev(),
        _ => false,
    };
    if !same {
        return Err(SysError::new(
            "fsync",
            what,
            std::io::Error::other("directory not readable and not on its parent's file system"),
        ));
    }
    nix::unistd::syncfs(&p).map_err(|e| SysError::errno("syncfs", what, e))
}
