//! The [`Map`] over an indexed file: case folding, both NUL conventions, the registry.

use super::{DbKind, cdb, lmdb};
use crate::{Map, MapFlags, OpenOptions, TableError, fold};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};

enum Reader {
    Cdb(cdb2::CDB),
    Lmdb(lmdb::Lmdb),
}

/// An open `hash:`, `btree:`, `cdb:` or `lmdb:` table.
pub(crate) struct Indexed {
    spec: String,
    path: PathBuf,
    fold_case: bool,
    reader: Reader,
    /// Which NUL convention answered first: 0 unknown, 1 with, 2 without. Once known only
    /// that form is tried (as Postfix clears the other TRY flag).
    convention: AtomicU8,
}

impl std::fmt::Debug for Indexed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexed").field("spec", &self.spec).finish()
    }
}

/// Opens table `name` of type `kind` for lookups and registers its file (see
/// [`crate::changed`]).
pub(crate) fn open_indexed(
    spec: &str,
    kind: DbKind,
    name: &str,
    opts: &OpenOptions,
) -> Result<Indexed, TableError> {
    let path = kind.path(name);
    let watch = crate::registry::Watch::open(&path);
    let reader = match kind {
        DbKind::Lmdb => Reader::Lmdb(lmdb::open(&path)?),
        _ => {
            let db = cdb::open(&path)?;
            cdb::check_format(&db, &path, kind.format_value())?;
            Reader::Cdb(db)
        }
    };
    if let Some(w) = watch {
        w.register(spec);
    }
    Ok(Indexed {
        spec: spec.to_string(),
        path,
        fold_case: opts.fold_case,
        reader,
        convention: AtomicU8::new(0),
    })
}

impl Indexed {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, TableError> {
        match &self.reader {
            Reader::Cdb(db) => match db.get(key) {
                None => Ok(None),
                Some(Ok(v)) => Ok(Some(v)),
                Some(Err(e)) => Err(TableError::Lookup {
                    table: self.spec.clone(),
                    message: format!("{}: {e}", self.path.display()),
                }),
            },
            Reader::Lmdb(l) => l.get(&self.path, key),
        }
    }
}

/// Bytes to text without a copy when they are UTF-8 (almost always).
fn text(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

impl Map for Indexed {
    /// Tries the key with a terminating NUL, then without (Postfix's readers do the same
    /// when the table does not say which convention it uses).
    fn lookup(&self, key: &str) -> Result<Option<String>, TableError> {
        let key = fold(key, self.fold_case);
        let known = self.convention.load(Ordering::Relaxed);
        if known != 2 {
            let mut with_nul = Vec::with_capacity(key.len() + 1);
            with_nul.extend_from_slice(key.as_bytes());
            with_nul.push(0);
            if let Some(mut v) = self.get(&with_nul)? {
                self.convention.store(1, Ordering::Relaxed);
                if v.last() == Some(&0) {
                    v.pop();
                }
                return Ok(Some(text(v)));
            }
        }
        if known == 1 {
            return Ok(None);
        }
        let found = self.get(key.as_bytes())?;
        if found.is_some() {
            self.convention.store(2, Ordering::Relaxed);
        }
        Ok(found.map(text))
    }
    fn name(&self) -> &str {
        &self.spec
    }
    fn flags(&self) -> MapFlags {
        MapFlags {
            fold_case: self.fold_case,
            pattern: false,
        }
    }
}
