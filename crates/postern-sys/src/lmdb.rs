//! Opening LMDB environments for `lmdb:` lookup tables (feature `lmdb`).
//!
//! heed marks the open of an environment `unsafe` because LMDB memory-maps the file: if
//! the file is changed behind LMDB's back the mapping may be read inconsistently. This
//! module is that one step; everything after it (transactions, get, put, cursors) is
//! heed's safe API, used by `postern-table`.
//!
//! Tables are opened the way Postfix opens them: one file `NAME.lmdb` without a
//! sub-directory (`MDB_NOSUBDIR`) and without LMDB's lock file (`MDB_NOLOCK`), because
//! daemons cannot create files next to a table in `/etc/postfix`. Concurrency is then
//! the caller's contract, the same one Postfix follows: a writer holds an exclusive
//! `flock` on the file for the whole write transaction, a reader holds a shared `flock`
//! for each read transaction, and Postern's postmap builds new tables under a temporary
//! name and renames them into place, so an open mapping never sees a rewrite.
//!
//! # Security
//! The `unsafe` block below relies on that locking contract; see its SAFETY comment.

use std::path::Path;

pub use heed;

/// Opens the LMDB environment in the single file `path`, read-only or read-write, with
/// `map_size` bytes of address space (a multiple of the page size; LMDB uses the file's
/// own size when that is larger).
///
/// # Errors
/// heed's error, e.g. a missing file, a file that is not an LMDB database, or heed's
/// `EnvAlreadyOpened` when this process has the same file open already (callers keep
/// one environment per file).
pub fn open_env(path: &Path, read_only: bool, map_size: usize) -> heed::Result<heed::Env> {
    let mut opts = heed::EnvOpenOptions::new();
    opts.map_size(map_size).max_dbs(0);
    let mut flags = heed::EnvFlags::NO_SUB_DIR | heed::EnvFlags::NO_LOCK;
    if read_only {
        flags |= heed::EnvFlags::READ_ONLY;
    }
    // SAFETY: NO_LOCK moves reader/writer exclusion to the caller: postern-table takes a
    // shared flock on the file around every read transaction and an exclusive flock
    // around every write transaction (the convention of Postfix's own lmdb tables), and
    // its postmap writes new tables to a temporary file that is renamed into place, so no
    // mapping opened here is modified in place by Postern while a transaction reads it.
    // NO_SUB_DIR and READ_ONLY carry no memory-safety obligation.
    unsafe {
        opts.flags(flags);
        opts.open(path)
    }
}
