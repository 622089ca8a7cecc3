//! postern-table — Postfix-compatible lookup tables and the query rules built on them.
//!
//! A lookup table is named `type:name` (or `type:{inline text}`), exactly as in Postfix's
//! `main.cf`. [`open`] turns such a spec into a [`Map`]; the functions in [`query`] apply
//! Postfix's search orders (access(5) address, domain and client patterns) on top of any
//! map; [`AccessAction`] types an access(5) result; [`DomainList`] and [`NetworkList`]
//! implement "match list" parameters such as `mydestination` and `mynetworks`.
//!
//! ```text
//!  "regexp:/etc/postfix/x" ──open()──► Box<dyn Map> ──lookup(key)──► Ok(Some(value))
//!                                          │                       ► Ok(None)      (not found)
//!                                          │                       ► Err(TableError) (temporary)
//!                                          └─► query::lookup_address / lookup_domain / lookup_client
//! ```
//!
//! Supported types: `hash`, `btree`, `cdb`, `lmdb` (indexed files built by postmap, see
//! [`indexed`]), `texthash`, `inline`, `static`, `cidr`, `regexp`, `pcre`, `fail`,
//! `unionmap`, `pipemap`, `randmap`, `unix` (`passwd.byname`, `group.byname`) and `proxy:TYPE:NAME`
//! (through the proxymap service). Network
//! tables are not implemented; opening one returns [`TableError::UnsupportedType`].
//!
//! Source-file parsers shared with postmap/postalias: [`parse_entry`] (`key value` lines)
//! and [`parse_alias_line`] (aliases(5)). Every file-based map registers its file so that
//! a daemon can ask [`changed`] between requests and restart when a table changed.
//!
//! # Errors
//!
//! A lookup that cannot be answered is an `Err`, never a silent miss: callers defer (4xx).
//! Syntax problems in a table source are reported as [`TableError::Syntax`], whose Display is
//! Postfix's `FILE, line N: message`. Like Postfix, a bad line is by default skipped and kept
//! as a warning ([`Map::warnings`]); with [`OpenOptions::strict`] the first one fails `open`.
//!
//! # Security
//!
//! Table sources are trusted configuration, but every size is still bounded
//! ([`MAX_SOURCE_BYTES`], [`MAX_LINE_BYTES`], [`MAX_NESTING`]) and no input panics.
//! Lookup keys come from the network: they are never interpreted as patterns, and regexp
//! substitution output is bounded by [`MAX_RESULT_BYTES`].
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Mutex;

mod access;
mod alias;
mod cidr;
mod composite;
mod entry;
mod error;
pub mod fuzz;
pub mod indexed;
mod list;
pub mod mailaddr;
mod pattern;
mod posix;
mod program;
mod proxy;
pub mod query;
mod registry;
pub mod route;
mod simple;
mod source;
mod spec;
mod texthash;
mod unix;

pub use access::{AccessAction, parse_access_result};
pub use alias::{AliasError, parse_alias_line};
pub use entry::{EntryError, parse_entry};
pub use error::TableError;
pub use list::{DomainList, NetworkList, OwnAddr, mynetworks_by_style, parent_matches};
pub use mailaddr::{AddrMatch, find_address};
pub use query::{lookup_address, lookup_client, lookup_domain};
pub use registry::changed;
pub use source::{file_value, read_source, source_lines};

/// Largest table source file we read (texthash/regexp/pcre/cidr).
pub const MAX_SOURCE_BYTES: u64 = 512 * 1024 * 1024;
/// Longest logical line (after joining continuation lines) in a table source.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Deepest `if`/`endif` nesting, and deepest `unionmap`/`pipemap` nesting.
pub const MAX_NESTING: usize = 64;
/// Longest result a `$n` substitution may produce.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// How a table treats its keys; used by the query functions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapFlags {
    /// Keys are folded to lower case (the map does it in `lookup`; callers need not).
    pub fold_case: bool,
    /// A pattern table (regexp, pcre, cidr): it sees only the full lookup key, never the
    /// partial keys (parent domains, `user@`, shortened addresses) of access(5).
    pub pattern: bool,
}

/// One open lookup table.
pub trait Map: Send + Sync + std::fmt::Debug {
    /// Looks `key` up. `Ok(None)` means "not found"; `Err` means the answer is unknown
    /// (temporary failure) and the caller must defer.
    fn lookup(&self, key: &str) -> Result<Option<String>, TableError>;
    /// The spec this map was opened with (`type:name`), for logs.
    fn name(&self) -> &str;
    /// How the map treats keys.
    fn flags(&self) -> MapFlags;
    /// Lines skipped while loading (Postfix logs these as warnings). Empty for most maps.
    fn warnings(&self) -> &[TableError] {
        &[]
    }
    /// Every record, for `postmap -s`: `Ok(None)` when the type cannot list its records
    /// (pattern tables); `Err` when the listing failed (`fail:`).
    fn sequence(&self) -> Result<Option<Vec<(String, String)>>, TableError> {
        Ok(None)
    }
}

/// A boxed, shareable map, as returned by [`open`].
pub type BoxMap = Box<dyn Map + Send + Sync>;

/// Options for [`open`].
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Fold keys to lower case in fixed-string tables (texthash, inline). Default true;
    /// postmap's `-f` turns it off.
    pub fold_case: bool,
    /// Fail `open` on the first bad line instead of skipping it with a warning as Postfix
    /// does. Default false.
    pub strict: bool,
    /// The queue directory, for `proxy:` tables (the proxymap socket is
    /// `$queue_directory/private/proxymap`). `None`: the one given to
    /// [`set_queue_directory`], if any.
    pub queue_directory: Option<PathBuf>,
    /// Postfix's `-F` (`DICT_FLAG_SRC_RHS_IS_FILE`): the right-hand side of every rule or
    /// entry of a texthash, cidr, regexp, pcre, inline or static table names files (comma
    /// or blank separated), read at open time; the value is the base64 of their contents
    /// joined by newlines. Default false.
    pub rhs_is_file: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            fold_case: true,
            strict: false,
            queue_directory: None,
            rhs_is_file: false,
        }
    }
}

static QUEUE_DIRECTORY: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Sets the process's default queue directory for `proxy:` tables (the daemon skeleton
/// calls this once at start-up with `$queue_directory`).
pub fn set_queue_directory(dir: impl Into<PathBuf>) {
    let mut q = match QUEUE_DIRECTORY.lock() {
        Ok(q) => q,
        Err(p) => p.into_inner(),
    };
    *q = Some(dir.into());
}

pub(crate) fn default_queue_directory() -> Option<PathBuf> {
    match QUEUE_DIRECTORY.lock() {
        Ok(q) => q.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

/// Opens the table named by `spec` (`type:name` or `type:{…}`).
///
/// # Errors
///
/// [`TableError::Spec`] for a malformed spec, [`TableError::UnsupportedType`] for a type not
/// built in, [`TableError::Open`] when a source file cannot be read, and
/// [`TableError::Syntax`] in strict mode.
pub fn open(spec: &str, opts: &OpenOptions) -> Result<BoxMap, TableError> {
    open_nested(spec, opts, 0)
}

pub(crate) fn open_nested(
    spec: &str,
    opts: &OpenOptions,
    depth: usize,
) -> Result<BoxMap, TableError> {
    if depth > MAX_NESTING {
        return Err(TableError::spec(spec, "tables nested too deeply"));
    }
    let (kind, name) = spec::split_type(spec)?;
    // Source files read whole into memory are watched too (taken before the read, so a
    // change during it is noticed later).
    let source_file =
        matches!(kind, "texthash" | "cidr" | "regexp" | "pcre") && !name.starts_with('{');
    let watch = if source_file {
        registry::Watch::open(std::path::Path::new(name))
    } else {
        None
    };
    let map = open_kind(spec, kind, name, opts, depth)?;
    if let Some(w) = watch {
        w.register(spec);
    }
    Ok(map)
}

fn open_kind(
    spec: &str,
    kind: &str,
    name: &str,
    opts: &OpenOptions,
    depth: usize,
) -> Result<BoxMap, TableError> {
    match kind {
        "texthash" => Ok(Box::new(texthash::TextHash::open(spec, name, opts)?)),
        "inline" => Ok(Box::new(simple::Inline::open(spec, name, opts)?)),
        "static" => Ok(Box::new(simple::Static::open(spec, name, opts)?)),
        "randmap" => Ok(Box::new(simple::Static::random(spec, name)?)),
        "fail" => Ok(Box::new(simple::Fail::new(spec))),
        "cidr" => Ok(Box::new(cidr::Cidr::open(spec, name, opts)?)),
        "regexp" => Ok(Box::new(pattern::PatternMap::open(
            spec,
            name,
            opts,
            pattern::Dialect::Posix,
        )?)),
        "pcre" => Ok(Box::new(pattern::PatternMap::open(
            spec,
            name,
            opts,
            pattern::Dialect::Pcre,
        )?)),
        "unionmap" | "pipemap" => Ok(Box::new(composite::Composite::open(
            spec, kind, name, opts, depth,
        )?)),
        "proxy" => Ok(Box::new(proxy::Proxy::open(spec, name, opts)?)),
        "unix" => Ok(Box::new(unix::Unix::open(spec, name)?)),
        other => match indexed::DbKind::from_type(other) {
            Some(db) => Ok(Box::new(indexed::open_indexed(spec, db, name, opts)?)),
            None => Err(TableError::UnsupportedType(other.to_string())),
        },
    }
}

/// Postfix's `dict_surrogate`: the stand-in for table `spec` that failed to open with
/// `error`. Every lookup returns a temporary [`TableError::Lookup`] (`table SPEC: query
/// error: SPEC is unavailable. ERROR`), so a daemon that keeps it in its table list defers
/// the requests that need the table instead of going on without it (fail closed). The
/// caller logs the open error once, as Postfix does (`warning: SPEC is unavailable. ERROR`).
pub fn surrogate(spec: &str, error: &TableError) -> BoxMap {
    Box::new(simple::Fail::surrogate(
        spec,
        format!("{spec} is unavailable. {error}"),
    ))
}

/// Opens `spec` like [`open`], or returns its [`surrogate`] with the open error (to log).
pub fn open_or_surrogate(spec: &str, opts: &OpenOptions) -> (BoxMap, Option<TableError>) {
    match open(spec, opts) {
        Ok(m) => (m, None),
        Err(e) => (surrogate(spec, &e), Some(e)),
    }
}

/// The records of an in-memory table in key order (what `postmap -s` lists).
pub(crate) fn sorted_records(
    entries: &std::collections::HashMap<String, String>,
) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = entries
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    all.sort();
    all
}

/// Applies the map's case folding to a key (used by maps, postmap and tests). Only ASCII
/// letters are folded: Debian's Postfix 3.7 stores `ÄÖÜ@Example.COM` as `ÄÖÜ@example.com`
/// and finds `straße` for `STRAßE`, and tables must give the same answers here.
pub fn fold(key: &str, yes: bool) -> std::borrow::Cow<'_, str> {
    if yes && key.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(key.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(key)
    }
}
