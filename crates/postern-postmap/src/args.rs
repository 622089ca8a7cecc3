//! Command-line parsing for postmap(1) and postalias(1) (no I/O).
//!
//! Options follow Postfix's getopt strings (`bc:d:fFhimnNopq:rsuUvw` for postmap,
//! `Nc:d:finopq:rsuvw` for postalias): flags may be bundled (`-fN`), an option's value
//! may be attached (`-qkey`) or the next argument, and option processing stops at the
//! first operand or at `--`.

use postern_table::indexed::Dup;
use std::path::PathBuf;

/// Which command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prog {
    /// postmap(1).
    Postmap,
    /// postalias(1).
    Postalias,
}

impl Prog {
    /// The program name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Prog::Postmap => "postmap",
            Prog::Postalias => "postalias",
        }
    }

    fn optstring(self) -> &'static str {
        match self {
            Prog::Postmap => "bc:d:fFhimnNopq:rsuUvw",
            Prog::Postalias => "Nc:d:finopq:rsuvw",
        }
    }

    /// Postfix's usage line.
    pub fn usage(self) -> String {
        match self {
            Prog::Postmap => "usage: postmap [-bfFhimnNoprsuUvw] [-c config_dir] [-d key] [-q key] [map_type:]file...".into(),
            Prog::Postalias => "usage: postalias [-Nfinoprsuvw] [-c config_dir] [-d key] [-q key] [map_type:]file...".into(),
        }
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Build (or with `-i` update) the tables from their sources.
    Build,
    /// `-q key` (`-` reads keys from standard input).
    Query(String),
    /// `-d key` (`-` reads keys from standard input).
    Delete(String),
    /// `-s`.
    Sequence,
}

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The command.
    pub prog: Prog,
    /// `-c config_dir`.
    pub config: Option<PathBuf>,
    /// The operation.
    pub mode: Mode,
    /// Fold keys to lower case (off with `-f`).
    pub fold: bool,
    /// `-i`: add records from standard input to an existing table.
    pub incremental: bool,
    /// `-N` (Some(true)) or `-n` (Some(false)); None: the type's default.
    pub nul: Option<bool>,
    /// `-r` / `-w` / default.
    pub dup: Dup,
    /// `-F`: values are file lists (build) or base64 (query, sequence).
    pub base64: bool,
    /// Drop root privileges to the source file's owner (off with `-o`).
    pub as_owner: bool,
    /// Give new tables the source's group/other read bits (off with `-p`: mode 0644).
    pub save_perm: bool,
    /// `-b`: body lines of a message on stdin are the keys (with `-q -`).
    pub body: bool,
    /// `-h`: header lines of a message on stdin are the keys (with `-q -`).
    pub header: bool,
    /// `-v` count.
    pub verbose: u8,
    /// The tables, `[type:]name`.
    pub maps: Vec<String>,
}

/// A command-line error: the message, and whether Postfix prints its usage line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

/// Parses `args` (without the program name).
///
/// # Errors
/// An unknown option, a missing option value, conflicting operations, or no table.
pub fn parse(prog: Prog, args: &[String]) -> Result<Args, ArgError> {
    let mut a = Args {
        prog,
        config: None,
        mode: Mode::Build,
        fold: true,
        incremental: false,
        nul: None,
        dup: Dup::Warn,
        base64: false,
        as_owner: true,
        save_perm: true,
        body: false,
        header: false,
        verbose: 0,
        maps: Vec::new(),
    };
    let spec = prog.optstring();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        if !arg.starts_with('-') || arg.len() < 2 {
            break;
        }
        for (at, c) in arg[1..].char_indices() {
            let pos = spec.find(c).filter(|_| c != ':');
            let Some(pos) = pos else {
                return Err(ArgError(format!(
                    "{}: invalid option -- '{c}'\n{}",
                    prog.name(),
                    prog.usage()
                )));
            };
            let takes_value = spec[pos + 1..].starts_with(':');
            let value = if takes_value {
                let rest = &arg[1 + at + c.len_utf8()..];
                let v = if !rest.is_empty() {
                    rest.to_string()
                } else {
                    i += 1;
                    args.get(i).cloned().ok_or_else(|| {
                        ArgError(format!(
                            "{}: option requires an argument -- '{c}'\n{}",
                            prog.name(),
                            prog.usage()
                        ))
                    })?
                };
                Some(v)
            } else {
                None
            };
            apply(&mut a, c, value)?;
            if takes_value {
                break;
            }
        }
        i += 1;
    }
    a.maps = args[i..].to_vec();
    if a.maps.is_empty() {
        return Err(ArgError(prog.usage()));
    }
    Ok(a)
}

fn set_mode(a: &mut Args, mode: Mode, text: &str) -> Result<(), ArgError> {
    if a.mode != Mode::Build {
        return Err(ArgError(text.to_string()));
    }
    a.mode = mode;
    Ok(())
}

fn apply(a: &mut Args, c: char, value: Option<String>) -> Result<(), ArgError> {
    let v = value.unwrap_or_default();
    match c {
        'b' => a.body = true,
        'c' => a.config = Some(PathBuf::from(v)),
        'd' => set_mode(a, Mode::Delete(v), "specify only one of -s -q or -d")?,
        'f' => a.fold = false,
        'F' => a.base64 = true,
        'h' => a.header = true,
        'i' => a.incremental = true,
        'n' => a.nul = Some(false),
        'N' => a.nul = Some(true),
        'o' => a.as_owner = false,
        'p' => a.save_perm = false,
        'q' => set_mode(a, Mode::Query(v), "specify only one of -s -q or -d")?,
        'r' => a.dup = Dup::Replace,
        's' => set_mode(a, Mode::Sequence, "specify only one of -s or -q or -d")?,
        'w' => a.dup = Dup::Ignore,
        'v' => a.verbose = a.verbose.saturating_add(1),
        // -m (MIME parsing with -b/-h), -u/-U (UTF-8 checks): accepted, see the crate docs.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(prog: Prog, args: &[&str]) -> Result<Args, ArgError> {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(prog, &v)
    }

    #[test]
    fn bundles_and_values() {
        let a = p(Prog::Postmap, &["-fNq", "Key", "-c", "/x", "hash:t"]).unwrap();
        assert!(!a.fold);
        assert_eq!(a.nul, Some(true));
        assert_eq!(a.mode, Mode::Query("Key".into()));
        assert_eq!(a.config, Some(PathBuf::from("/x")));
        assert_eq!(a.maps, vec!["hash:t".to_string()]);
        let a = p(Prog::Postmap, &["-qkey", "cdb:a", "-s"]).unwrap();
        assert_eq!(a.mode, Mode::Query("key".into()));
        assert_eq!(a.maps, vec!["cdb:a".to_string(), "-s".to_string()]);
    }

    #[test]
    fn errors_are_postfix_texts() {
        let e = p(Prog::Postmap, &["-d", "a", "-d", "b", "t"]).unwrap_err();
        assert_eq!(e.0, "specify only one of -s -q or -d");
        let e = p(Prog::Postmap, &["-q", "a", "-s", "t"]).unwrap_err();
        assert_eq!(e.0, "specify only one of -s or -q or -d");
        let e = p(Prog::Postmap, &[]).unwrap_err();
        assert!(e.0.starts_with("usage: postmap [-bfFhimnNoprsuUvw]"));
        let e = p(Prog::Postalias, &["-b", "x"]).unwrap_err();
        assert!(e.0.starts_with("postalias: invalid option -- 'b'\nusage: postalias"));
        assert!(p(Prog::Postmap, &["-q"]).is_err());
    }
}
