//! `postern help [NAME]`, `postern man DIR` and every `--help`: the manual of
//! `postern-help` printed or written out.
//!
//! `man DIR` writes `DIR/man1/*.1`, `DIR/man5/*.5` and `DIR/man8/*.8` (creating the
//! directories), each file written whole and renamed into place, so a packaging step that
//! reads DIR never sees half a page.
//!
//! # Security
//!
//! Writes only under the directory the caller names, with the caller's privileges and
//! umask; prints to stdout. Nothing is read from the configuration.
//!
//! # Configuration
//!
//! None.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// EX_USAGE.
const EX_USAGE: u8 = 64;
/// EX_SOFTWARE: a compiled-in page does not parse (a bug the unit tests catch).
const EX_SOFTWARE: u8 = 70;

fn fatal(msg: &str, code: u8) -> ExitCode {
    eprintln!("postern: fatal: {msg}");
    ExitCode::from(code)
}

/// Prints text on stdout; exit 0 (or 1 when stdout is closed).
fn print(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fatal(&format!("write to standard output: {e}"), 1),
    }
}

/// The usage message of `postern` on stderr, exit 64.
pub fn usage() -> ExitCode {
    match postern_help::usage() {
        Ok(u) => eprint!("{u}"),
        Err(e) => eprintln!("postern: fatal: {e}"),
    }
    ExitCode::from(EX_USAGE)
}

/// `COMMAND --help` (a command of `command()`, or `postern` itself).
pub fn command_help(name: &str) -> ExitCode {
    match postern_help::command_help(name) {
        Ok(Some(text)) => print(&text),
        Ok(None) => fatal(&format!("no manual page for {name}"), EX_SOFTWARE),
        Err(e) => fatal(&e.to_string(), EX_SOFTWARE),
    }
}

/// `postern VERB --help` for a verb of postern(1); `None` when the page has no such verb.
pub fn verb_help(verb: &str) -> Option<ExitCode> {
    match postern_help::verb_help(verb) {
        Ok(Some(text)) => Some(print(&text)),
        Ok(None) => None,
        Err(e) => Some(fatal(&e.to_string(), EX_SOFTWARE)),
    }
}

/// `postern help [NAME]`: the list of pages, or one page as plain text.
pub fn help(args: &[OsString]) -> ExitCode {
    match args {
        [] => match postern_help::index() {
            Ok(text) => print(&text),
            Err(e) => fatal(&e.to_string(), EX_SOFTWARE),
        },
        [name] => {
            let name = name.to_string_lossy();
            match postern_help::find(&name) {
                Ok(Some(p)) => print(&postern_help::plain(&p)),
                Ok(None) => fatal(
                    &format!("no manual page for {name} (postern help lists them)"),
                    EX_USAGE,
                ),
                Err(e) => fatal(&e.to_string(), EX_SOFTWARE),
            }
        }
        _ => fatal("usage: postern help [NAME]", EX_USAGE),
    }
}

/// `postern man DIR`: writes every page as roff under DIR.
pub fn man(args: &[OsString]) -> ExitCode {
    let [dir] = args else {
        return fatal("usage: postern man DIR", EX_USAGE);
    };
    let pages = match postern_help::pages() {
        Ok(p) => p,
        Err(e) => return fatal(&e.to_string(), EX_SOFTWARE),
    };
    for p in &pages {
        let path = Path::new(dir).join(postern_help::file_name(p));
        if let Err(e) = write(&path, postern_help::roff(p).as_bytes()) {
            return fatal(&format!("write {}: {e}", path.display()), 1);
        }
    }
    ExitCode::SUCCESS
}

/// Writes a file whole: a temporary name in the same directory, then rename.
fn write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}
