//! LMDB files through heed (opened by `postern_sys::lmdb`): the unnamed database of a
//! single file `NAME.lmdb`, as Postfix's `lmdb:` tables use it.

use super::{Records, write_err};
use crate::TableError;
use postern_sys::lmdb::{heed, open_env};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

type Db = heed::Database<'static, heed::types::Bytes, heed::types::Bytes>;

/// Postfix's `lmdb_map_size` default; a larger file is mapped at its own size.
const MAP_SIZE: usize = 16 * 1024 * 1024;

/// One open table: the environment, its unnamed database, and the file we lock.
#[derive(Clone)]
pub(super) struct Lmdb {
    env: heed::Env,
    db: Db,
    lock: std::sync::Arc<std::fs::File>,
}

impl std::fmt::Debug for Lmdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lmdb")
    }
}

/// heed refuses to open one file twice in a process: keep one handle per file.
static OPEN: Mutex<Vec<(PathBuf, u64, Lmdb)>> = Mutex::new(Vec::new());

fn format_err(path: &Path, e: impl std::fmt::Display) -> TableError {
    TableError::Format {
        path: path.display().to_string(),
        message: format!("lmdb: {e}"),
    }
}

fn lookup_err(path: &Path, e: impl std::fmt::Display) -> TableError {
    TableError::Lookup {
        table: format!("lmdb:{}", path.display()),
        message: e.to_string(),
    }
}

/// Opens (or re-uses) the table in `path` for reading.
pub(super) fn open(path: &Path) -> Result<Lmdb, TableError> {
    use std::os::unix::fs::MetadataExt;
    let lock = std::fs::File::open(path).map_err(|source| TableError::Open {
        what: "database ",
        path: path.display().to_string(),
        source,
    })?;
    let ino = lock.metadata().map(|m| m.ino()).unwrap_or(0);
    let mut open = match OPEN.lock() {
        Ok(o) => o,
        Err(p) => p.into_inner(),
    };
    if let Some((_, _, l)) = open.iter().find(|(p, i, _)| p == path && *i == ino) {
        return Ok(l.clone());
    }
    // A replaced file: forget the old handle so heed lets us open the new one. If someone
    // still holds the old environment heed says so and the lookup fails (the daemon is
    // about to restart anyway: the registry reports the change).
    open.retain(|(p, _, _)| p != path);
    let env = open_env(path, true, MAP_SIZE).map_err(|e| format_err(path, e))?;
    lock.lock_shared().map_err(|e| lookup_err(path, e))?;
    let db = open_unnamed(&env).map_err(|e| format_err(path, e));
    lock.unlock().map_err(|e| lookup_err(path, e))?;
    let db = db?.ok_or_else(|| format_err(path, "no unnamed database"))?;
    let l = Lmdb {
        env,
        db,
        lock: std::sync::Arc::new(lock),
    };
    open.push((path.to_path_buf(), ino, l.clone()));
    Ok(l)
}

fn open_unnamed(env: &heed::Env) -> heed::Result<Option<Db>> {
    let rtxn = env.read_txn()?;
    let db = env
        .open_databases_and_commit(rtxn, |dbo, rtxn| {
            dbo.open_database::<heed::types::Bytes, heed::types::Bytes>(rtxn, None)
                .map(heed::CommitOrAbort::<_, ()>::Commit)
        })?
        .unwrap_commit();
    Ok(db)
}

impl Lmdb {
    /// Looks one key up under a shared lock.
    pub(super) fn get(&self, path: &Path, key: &[u8]) -> Result<Option<Vec<u8>>, TableError> {
        self.lock.lock_shared().map_err(|e| lookup_err(path, e))?;
        let got = (|| -> heed::Result<Option<Vec<u8>>> {
            let rtxn = self.env.read_txn()?;
            Ok(self.db.get(&rtxn, key)?.map(<[u8]>::to_vec))
        })();
        self.lock.unlock().map_err(|e| lookup_err(path, e))?;
        got.map_err(|e| lookup_err(path, e))
    }

    /// Every record, in key order.
    pub(super) fn all(&self, path: &Path) -> Result<Records, TableError> {
        self.lock.lock_shared().map_err(|e| lookup_err(path, e))?;
        let got = (|| -> heed::Result<Records> {
            let rtxn = self.env.read_txn()?;
            let mut out = Vec::new();
            for rec in self.db.iter(&rtxn)? {
                let (k, v) = rec?;
                out.push((k.to_vec(), v.to_vec()));
            }
            Ok(out)
        })();
        self.lock.unlock().map_err(|e| lookup_err(path, e))?;
        got.map_err(|e| lookup_err(path, e))
    }
}

/// Every record of the table in `path`.
pub(super) fn read_all(path: &Path) -> Result<Records, TableError> {
    open(path)?.all(path)
}

/// Writes a new LMDB file at `tmp` with `records` (one committed, synced transaction).
pub(super) fn write_all(
    tmp: &Path,
    records: &[(Vec<u8>, Vec<u8>)],
    mode: u32,
) -> Result<(), TableError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| write_err(tmp, "create", e))?;
    let bytes: usize = records.iter().map(|(k, v)| k.len() + v.len() + 64).sum();
    let page = 4096;
    let size = MAP_SIZE.max(bytes * 3).div_ceil(page) * page;
    let io = |e: heed::Error| write_err(tmp, "write", std::io::Error::other(e.to_string()));
    let env = open_env(tmp, false, size).map_err(io)?;
    let wtxn = env.write_txn().map_err(io)?;
    let db: Db = env
        .create_databases_and_commit(wtxn, |dbo, wtxn| {
            dbo.create_database::<heed::types::Bytes, heed::types::Bytes>(wtxn, None)
                .map(heed::CommitOrAbort::<_, ()>::Commit)
        })
        .map_err(io)?
        .unwrap_commit();
    let mut wtxn = env.write_txn().map_err(io)?;
    let mut seen: HashMap<&[u8], ()> = HashMap::new();
    for (k, v) in records {
        if seen.insert(k, ()).is_none() {
            db.put(&mut wtxn, k, v).map_err(io)?;
        }
    }
    wtxn.commit().map_err(io)?;
    env.force_sync().map_err(io)?;
    drop(env);
    Ok(())
}
