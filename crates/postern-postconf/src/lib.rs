//! postconf — show or edit the Postern configuration (Postfix's postconf(1)).
//!
//! ```text
//! postconf [-c dir] [-dhnx] [name...]     show parameters (all, sorted, unexpanded by default)
//! postconf [-c dir] -e name=value...      set parameters in main.cf
//! postconf [-c dir] -X name...            remove parameters from main.cf
//! postconf [-c dir] -M [name[/type]...]   show master.cf services
//! postconf -m                             list supported lookup table types
//! ```
//!
//! `-d` shows defaults, `-n` only parameters set in main.cf, `-h` values without `name = `,
//! `-x` expanded values. Unknown names get `postconf: warning: NAME: unknown parameter`; main.cf
//! and master.cf parameters that nothing uses get Postfix's `unused parameter` warnings.
//!
//! # Configuration
//!
//! The configuration directory is `-c DIR`, else `$MAIL_CONFIG`, else `/etc/postern`; it holds
//! `main.cf` (a missing one reads as empty) and `master.cf`. As in Postfix, an explicit
//! directory also shows as `config_directory` in `postconf -n`.
//!
//! # Security
//!
//! Only postconf writes main.cf (DESIGN rule 7). Edits go through a temporary file in the same
//! directory, fsync and rename, so readers see the old or the new file, never a torn one.
//!
//! # Errors
//!
//! Syntax errors print `postconf: fatal: PATH: line N: message` and exit 1; bad usage and I/O
//! errors print one `postconf: fatal: …` line and exit 1.

mod args;
mod edit;
mod host;
mod show;

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

pub use args::{Action, Options, parse_args};
pub use edit::edit_text;

/// Lookup table types Postern supports (`postconf -m`).
pub const TABLE_TYPES: &[&str] = &["cidr", "inline", "static", "texthash"];

/// Configuration directory when neither `-c` nor `MAIL_CONFIG` names one.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/postern";

/// Runs postconf with `args` (`args[0]` is the program name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    let mail_config = std::env::var_os("MAIL_CONFIG");
    let hostname = host::system_hostname();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = run(
        args,
        mail_config,
        &hostname,
        &mut stdout.lock(),
        &mut stderr.lock(),
    );
    ExitCode::from(code)
}

/// [`main`] with its environment made explicit (for tests): returns the exit status.
pub fn run(
    args: Vec<OsString>,
    mail_config: Option<OsString>,
    hostname: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let result = parse_args(args, mail_config).and_then(|opts| execute(&opts, hostname, out, err));
    let flushed = out.flush();
    match result.and_then(|()| flushed.context("write standard output")) {
        Ok(()) => 0,
        Err(e) => {
            // Nothing better to do when stderr itself fails.
            let _ignored = writeln!(err, "postconf: fatal: {e:#}");
            1
        }
    }
}

fn execute(opts: &Options, hostname: &str, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let main_path = opts.config_dir.join("main.cf");
    match &opts.action {
        Action::Types => {
            for t in TABLE_TYPES {
                writeln!(out, "{t}")?;
            }
            Ok(())
        }
        Action::Edit(pairs) => {
            let text = read_optional(&main_path)?.unwrap_or_default();
            warn_duplicates(&text, &main_path, err)?;
            edit::write_atomically(&main_path, &edit_text(&text, pairs, &[]))
        }
        Action::Remove(names) => {
            let Some(text) = read_optional(&main_path)? else {
                return Ok(());
            };
            warn_duplicates(&text, &main_path, err)?;
            edit::write_atomically(&main_path, &edit_text(&text, &[], names))
        }
        Action::Master(specs) => show::master(opts, specs, out, err),
        Action::Show(names) => show::params(opts, names, hostname, out, err),
    }
}

/// Names set more than once in a parsed main.cf, in order of their second occurrence.
pub(crate) fn duplicates(main: &postern_config::MainCf) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut dups: Vec<String> = Vec::new();
    for e in &main.entries {
        if !seen.insert(e.name.as_str()) && !dups.contains(&e.name) {
            dups.push(e.name.clone());
        }
    }
    dups
}

/// Postfix's `multiple entries` warning before an edit (a file with syntax errors is still
/// edited: the edit works line by line).
fn warn_duplicates(text: &str, path: &Path, err: &mut dyn Write) -> Result<()> {
    if let Ok(main) = postern_config::parse_main_cf(text) {
        for name in duplicates(&main) {
            writeln!(
                err,
                "postconf: warning: {}: multiple entries for {name:?}",
                shown(path)
            )?;
        }
    }
    Ok(())
}

/// Reads a file; `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("open {}", path.display())),
    }
}

/// `path` as shown in messages.
pub(crate) fn shown(path: &Path) -> String {
    path.display().to_string()
}
