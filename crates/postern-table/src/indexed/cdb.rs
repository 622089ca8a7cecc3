//! cdb files through the `cdb2` crate: reading whole files and writing new ones.

use super::{FORMAT_KEY, Records, write_err};
use crate::TableError;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens a cdb file for lookups.
pub(super) fn open(path: &Path) -> Result<cdb2::CDB, TableError> {
    cdb2::CDB::open(path).map_err(|e| open_err(path, e))
}

fn open_err(path: &Path, e: std::io::Error) -> TableError {
    if e.kind() == std::io::ErrorKind::Other {
        return TableError::Format {
            path: path.display().to_string(),
            message: format!("not a cdb file: {e}"),
        };
    }
    TableError::Open {
        what: "database ",
        path: path.display().to_string(),
        source: e,
    }
}

/// Checks the format record of a Postern `hash`/`btree` file (`format` is None for cdb).
pub(super) fn check_format(
    db: &cdb2::CDB,
    path: &Path,
    format: Option<&[u8]>,
) -> Result<(), TableError> {
    let Some(want) = format else {
        return Ok(());
    };
    match db.get(FORMAT_KEY) {
        Some(Ok(v)) if v == want => Ok(()),
        _ => Err(TableError::Format {
            path: path.display().to_string(),
            message: format!(
                "not a Postern {} table (a Berkeley DB file from Postfix?): rebuild it with \"postern postmap\"",
                String::from_utf8_lossy(want)
                    .split('/')
                    .next()
                    .unwrap_or("")
            ),
        }),
    }
}

/// Every record of a cdb file in file order, without the format record.
pub(super) fn read_all(path: &Path, format: Option<&[u8]>) -> Result<Records, TableError> {
    let db = open(path)?;
    check_format(&db, path, format)?;
    let mut out = Vec::new();
    for rec in db.iter() {
        let (k, v) = rec.map_err(|e| TableError::Format {
            path: path.display().to_string(),
            message: format!("corrupt cdb file: {e}"),
        })?;
        if k != FORMAT_KEY {
            out.push((k, v));
        }
    }
    Ok(out)
}

/// Writes a new cdb file at `tmp` (which must not exist) and fsyncs it.
pub(super) fn write_all(
    tmp: &Path,
    records: &[(Vec<u8>, Vec<u8>)],
    mode: u32,
) -> Result<(), TableError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| write_err(tmp, "create", e))?;
    let sync = file.try_clone().map_err(|e| write_err(tmp, "dup", e))?;
    let mut make = cdb2::CDBMake::new(file).map_err(|e| write_err(tmp, "write", e))?;
    for (k, v) in records {
        make.add(k, v).map_err(|e| write_err(tmp, "write", e))?;
    }
    make.finish().map_err(|e| write_err(tmp, "write", e))?;
    let mut sync = sync;
    sync.flush().map_err(|e| write_err(tmp, "write", e))?;
    sync.sync_all().map_err(|e| write_err(tmp, "fsync", e))
}
