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
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| SysError::new("open", dir.display().to_string(), e))?;
    f.sync_all()
        .map_err(|e| SysError::new("fsync", dir.display().to_string(), e))
}
