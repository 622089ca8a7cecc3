//! Command-line parsing (no I/O): raw arguments → validated [`Options`].
//!
//! getopt-style: flags may be clustered (`-nh`), `-c` takes the next argument or the rest of
//! its cluster (`-c DIR`, `-cDIR`), `--` ends the options. `-f` (fold long lines) is accepted
//! and ignored: output is never folded.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::DEFAULT_CONFIG_DIR;

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Show parameters (all when the list is empty).
    Show(Vec<String>),
    /// `-e`: set (name, value) pairs in main.cf.
    Edit(Vec<(String, String)>),
    /// `-X`: remove names from main.cf.
    Remove(Vec<String>),
    /// `-M`: show master.cf services (all, or `name` / `name/type` specs).
    Master(Vec<String>),
    /// `-m`: list lookup table types.
    Types,
}

/// Validated options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Configuration directory.
    pub config_dir: PathBuf,
    /// Whether the directory was given (`-c` or `MAIL_CONFIG`) rather than defaulted.
    pub dir_given: bool,
    /// `-d`: defaults.
    pub defaults: bool,
    /// `-n`: only parameters set in main.cf.
    pub only_set: bool,
    /// `-h`: values only.
    pub value_only: bool,
    /// `-x`: expand values.
    pub expand: bool,
    /// The action.
    pub action: Action,
}

const USAGE: &str = "usage: postconf [-c config_dir] [-dhmnxMX] [-e name=value...] [name...]";

/// Parses `args` (`args[0]` is the program name).
pub fn parse_args(args: Vec<OsString>, mail_config: Option<OsString>) -> Result<Options> {
    let mut dir: Option<PathBuf> = mail_config.filter(|d| !d.is_empty()).map(PathBuf::from);
    let (mut d, mut n, mut h, mut x, mut e, mut big_x, mut big_m, mut m) =
        (false, false, false, false, false, false, false, false);
    let mut rest = Vec::new();
    let mut it = args.into_iter().skip(1);
    while let Some(arg) = it.next() {
        let Some(s) = arg.to_str().map(str::to_string) else {
            bail!("argument is not valid UTF-8: {arg:?}")
        };
        if s == "--" {
            rest.extend(it.by_ref());
            break;
        }
        let Some(flags) = s.strip_prefix('-').filter(|f| !f.is_empty()) else {
            rest.push(arg);
            continue;
        };
        for (i, c) in flags.char_indices() {
            match c {
                'c' => {
                    let attached = &flags[i + 1..];
                    let value = if attached.is_empty() {
                        it.next()
                    } else {
                        Some(attached.into())
                    };
                    let Some(value) = value.filter(|v| !v.is_empty()) else {
                        bail!("-c requires a directory; {USAGE}")
                    };
                    dir = Some(PathBuf::from(value));
                    break;
                }
                'd' => d = true,
                'n' => n = true,
                'h' => h = true,
                'x' => x = true,
                'e' => e = true,
                'X' => big_x = true,
                'M' => big_m = true,
                'm' => m = true,
                'f' => {}
                _ => bail!("invalid option -{c}; {USAGE}"),
            }
        }
    }
    let mut words = Vec::with_capacity(rest.len());
    for a in rest {
        match a.into_string() {
            Ok(s) => words.push(s),
            Err(a) => bail!("argument is not valid UTF-8: {a:?}"),
        }
    }
    if [e, big_x, big_m, m].iter().filter(|f| **f).count() > 1 {
        bail!("-e, -X, -M and -m are mutually exclusive; {USAGE}");
    }
    let action = if e {
        Action::Edit(words.iter().map(|w| edit_pair(w)).collect::<Result<_>>()?)
    } else if big_x {
        for w in &words {
            if !postern_config::valid_param_name(w) {
                bail!("invalid parameter name: {w:?}");
            }
        }
        Action::Remove(words)
    } else if big_m {
        Action::Master(words)
    } else if m {
        Action::Types
    } else {
        Action::Show(words)
    };
    let dir_given = dir.is_some();
    Ok(Options {
        config_dir: dir.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR)),
        dir_given,
        defaults: d,
        only_set: n,
        value_only: h,
        expand: x,
        action,
    })
}

/// `name=value` (whitespace around `=` allowed) for `-e`.
fn edit_pair(w: &str) -> Result<(String, String)> {
    let Some((name, value)) = w.split_once('=') else {
        bail!("-e requires name=value, not {w:?}")
    };
    let name = name.trim();
    if !postern_config::valid_param_name(name) {
        bail!("invalid parameter name: {name:?}");
    }
    if value.contains('\n') {
        bail!("{name}: value must be one line");
    }
    Ok((name.to_string(), value.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Options> {
        parse_args(args.iter().map(OsString::from).collect(), None)
    }

    #[test]
    fn flags() {
        let o = p(&["postconf", "-nh", "-cdir", "a", "b"]).unwrap();
        assert_eq!(
            (o.only_set, o.value_only, o.config_dir.clone(), o.dir_given),
            (true, true, "dir".into(), true)
        );
        assert_eq!(o.action, Action::Show(vec!["a".into(), "b".into()]));
        let o = p(&["postconf"]).unwrap();
        assert_eq!(
            (o.config_dir.to_str(), o.dir_given),
            (Some("/etc/postern"), false)
        );
        let o = parse_args(vec!["postconf".into()], Some("/x".into())).unwrap();
        assert_eq!(o.config_dir.to_str(), Some("/x"));
        let o = p(&["postconf", "-e", "a = b c ", "x=y"]).unwrap();
        assert_eq!(
            o.action,
            Action::Edit(vec![("a".into(), "b c".into()), ("x".into(), "y".into())])
        );
        assert_eq!(p(&["postconf", "-m"]).unwrap().action, Action::Types);
    }

    #[test]
    fn errors() {
        assert!(p(&["postconf", "-q"]).is_err());
        assert!(p(&["postconf", "-c"]).is_err());
        assert!(p(&["postconf", "-e", "novalue"]).is_err());
        assert!(p(&["postconf", "-e", "bad name=1"]).is_err());
        assert!(p(&["postconf", "-e", "-X", "a"]).is_err());
        assert!(p(&["postconf", "-X", "a=b"]).is_err());
    }
}
