//! postmap(1), postalias(1) and newaliases: build, query and edit lookup tables.
//!
//! # Synopsis
//! `postmap [-bfFhimnNoprsuUvw] [-c config_dir] [-d key] [-q key] [type:]file...`
//! `postalias [-Nfinoprsuvw] [-c config_dir] [-d key] [-q key] [type:]file...`
//!
//! # Description
//! Without `-q`, `-d` or `-s`, each `type:file` is built from its source `file`
//! (postmap: `key whitespace value` lines; postalias: aliases(5) `name: value, …`) into
//! the indexed file of `type` (`hash`/`btree` → `file.db`, `cdb` → `file.cdb`, `lmdb` →
//! `file.lmdb`; see `postern_table::indexed`). A missing type is `$default_database_type`.
//! The new file is written under a temporary name, fsynced and renamed into place, so a
//! running daemon never sees half a table (it notices the new file and restarts). `-i`
//! adds the records on standard input to the existing table instead.
//!
//! postalias also stores `@` → `@` (Sendmail's "database complete" signature) and the NIS
//! records `YP_LAST_MODIFIED` and `YP_MASTER_NAME`, as Debian's postalias does.
//! `newaliases` (and `sendmail -bi`) runs postalias over every table of `$alias_database`.
//!
//! `-q key` prints the value of `key` from the first table that has it (`-q -`: one
//! `key<TAB>value` line per key read from standard input; with `-h`/`-b` the keys are the
//! header/body lines of a message on standard input), `-s` lists every record, `-d key`
//! deletes. Keys are folded to lower case unless `-f`. `-N`/`-n` store keys and values with
//! or without a terminating NUL; `-r` replaces duplicate keys, `-w` ignores them silently
//! (by default the first is kept with a `duplicate entry` warning). `-F` stores the
//! base64-encoded contents of the files a value names (as `tls_server_sni_maps` wants)
//! and decodes values when querying or listing; for texthash, cidr, regexp, pcre, inline
//! and static tables the right-hand sides name files, read when the table is opened (a
//! rule whose file cannot be read is skipped with a warning). `-s` lists indexed files and
//! also texthash and inline tables. An empty result is printed, with Postfix's two
//! warnings (`empty string result is not allowed`).
//!
//! # Differences from Postfix
//! When building a table, a source line that is not `key whitespace value` (postalias:
//! `name: value`), and with `-F` a file that cannot be read, is fatal:
//! `postmap: fatal: FILE, line N: expected format: key whitespace value`, exit status 1,
//! and the old table is left in place. (Postfix warns, skips the line and exits 0; a
//! silently missing entry is worse than a failed rebuild.) With `-i` such lines are
//! skipped with Postfix's warnings (`stdin, line N: …`), as Postfix does. `-s` also works for `cdb`. `-m`
//! (MIME parsing with `-b`/`-h`) and `-u`/`-U` (UTF-8 checks) are accepted and ignored.
//!
//! # Security
//! As root, building a table from a source file owned by another user first drops to that
//! user (setgid, setgroups, setuid), unless `-o`; postmap never follows the table into
//! another user's authority. Sources are bounded (`postern_table::MAX_SOURCE_BYTES`).
//!
//! # Exit status
//! 0 success (for `-q`/`-d`: found); 1 not found, or a fatal error.
//!
//! # Configuration
//! `default_database_type`, `alias_database` (newaliases), `myhostname`, `syslog_name`,
//! `maillog_file`.

mod args;
mod build;
mod ops;

pub use args::{Args, Mode, Prog, parse};

use postern_config::p;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

pub use postern_server::command::Fatal;
use postern_server::command::exit;

/// A fatal error (exit status 1, as Postfix's postmap and postalias).
pub(crate) fn fail(msg: impl Into<String>) -> Fatal {
    postern_server::command::fatal(exit::FAIL, msg)
}

/// A table error as a fatal error.
pub(crate) fn table_fatal(e: postern_table::TableError) -> Fatal {
    fail(e.to_string())
}

/// What a run needs besides its arguments.
pub(crate) struct Ctx {
    pub(crate) args: Args,
    pub(crate) default_type: String,
    pub(crate) hostname: String,
    /// Copy warnings to `$maillog_file` (only when one is set: without it, syslog may be
    /// absent and the copy would land on stderr twice).
    pub(crate) log: bool,
}

impl Ctx {
    pub(crate) fn warn(&self, msg: &str) {
        eprintln!("{}: warning: {msg}", self.args.prog.name());
        if self.log {
            postern_log::warning(msg);
        }
    }

    /// `type:name` with the default type filled in.
    pub(crate) fn split<'a>(&'a self, map: &'a str) -> (&'a str, &'a str) {
        match map.split_once(':') {
            Some((t, n)) if !t.is_empty() && !t.contains('/') => (t, n),
            _ => (self.default_type.as_str(), map),
        }
    }
}

/// postmap entry point (`args[0]` is the program name).
pub fn postmap(args: Vec<OsString>) -> ExitCode {
    entry(Prog::Postmap, args)
}

/// postalias entry point.
pub fn postalias(args: Vec<OsString>) -> ExitCode {
    entry(Prog::Postalias, args)
}

fn entry(prog: Prog, args: Vec<OsString>) -> ExitCode {
    let strs: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let name = prog.name();
    let a = match args::parse(prog, &strs) {
        Ok(a) => a,
        Err(args::ArgError(msg)) => {
            let (first, last) = match msg.rsplit_once('\n') {
                Some((f, l)) => (Some(f), l),
                None => (None, msg.as_str()),
            };
            if let Some(f) = first {
                eprintln!("{f}");
            }
            eprintln!("{name}: fatal: {last}");
            return ExitCode::from(1);
        }
    };
    let dir = postern_server::load::config_dir(a.config.as_deref());
    let cfg = match postern_server::load::load(&dir) {
        Ok(l) => l.config,
        Err(e) => {
            eprintln!("{name}: fatal: {}", postern_log::plain(&e.to_string()));
            return ExitCode::from(1);
        }
    };
    postern_log::init(name, postern_server::load::log_config(&cfg, false));
    let ctx = Ctx {
        args: a,
        default_type: match cfg.str(p::DEFAULT_DATABASE_TYPE) {
            t if t.is_empty() => "hash".to_string(),
            t => t,
        },
        hostname: cfg.str(p::MYHOSTNAME),
        log: !cfg.str(p::MAILLOG_FILE).is_empty(),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = ops::run(&ctx, &mut out).and_then(|code| {
        out.flush()
            .map(|()| code)
            .map_err(|e| fail(format!("write standard output: {e}")))
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            // Like Postfix, a fatal error loses what is still buffered for standard output
            // (`-q -` answers before a failed lookup are not printed).
            drop(out.into_parts());
            f.report(name, ctx.log)
        }
    }
}
