//! The set-gid entry: what runs first when `postern` was executed set-gid
//! (the copies `postern init` installs, as root, as `DIR/bin/postdrop` and
//! `DIR/bin/postqueue`, or `postern set-permissions` as
//! `$daemon_directory/postdrop|postqueue` for the system layout; owned by root,
//! group `setgid_group`, mode 2755).
//!
//! Postfix's postdrop and postqueue are set-gid `postdrop` so that ordinary
//! users can write `maildrop/` (0730) and reach `public/` (2710) and nothing
//! else. Postern is one executable, so this module is the gate that keeps
//! the set-gid part minimal: before anything else it
//!
//! 1. closes every inherited descriptor above 2 and makes sure 0, 1 and 2 are
//!    open (on `/dev/null`), sets umask 022;
//! 2. reduces the environment to `TZ`, `LANG` and `LC_*`, with
//!    `PATH=/usr/bin:/bin` (`MAIL_CONFIG` is read first, then removed);
//! 3. runs only `postdrop` or `postqueue` (by the name it was called with),
//!    never a daemon, a control verb or another command;
//! 4. accepts a configuration directory other than its own instance's only
//!    when the caller is root or the instance's main.cf lists it in
//!    `alternate_config_directories` (or `multi_instance_directories`), as
//!    Postfix's `mail_conf_checkdir` does.
//!
//! The instance of a set-gid copy is the parent of its `bin/` directory, or,
//! for the packaged copies in `daemon_directory` (`/usr/lib/postern/postdrop`),
//! the compiled-in `/etc/postern` whose `daemon_directory` that is; the
//! directories must belong to root and be writable by nobody else (so a hard
//! link made elsewhere by a user names no instance). The chosen directory is
//! then passed on as `-c DIR`.
//!
//! # Security
//! Supplementary groups cannot be dropped without privilege (setgroups needs
//! CAP_SETGID), so, as with Postfix, the caller keeps its own groups; the
//! only added privilege is the effective group.
//!
//! # Configuration
//! `alternate_config_directories`, `multi_instance_directories` of the
//! instance's main.cf; `setgid_group` must name the group the command runs
//! with.

use postern_config::p;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

type Entry = fn(Vec<OsString>) -> ExitCode;

/// Environment variables a set-gid program keeps.
fn keep_env(name: &str) -> bool {
    name == "TZ" || name == "LANG" || name.starts_with("LC_")
}

/// Runs the set-gid program named by `args[0]`, after the checks above.
pub fn entry(mut args: Vec<OsString>) -> ExitCode {
    let mail_config = std::env::var_os("MAIL_CONFIG").filter(|v| !v.is_empty());
    if let Err(e) = postern_sys::privs::setgid_hygiene(&keep_env, &[("PATH", "/usr/bin:/bin")]) {
        return fatal("postern", &e.to_string());
    }
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (prog, run, requested): (&str, Entry, _) = match name.as_str() {
        "postdrop" => (
            "postdrop",
            postern_postdrop::main,
            postern_postdrop::parse_args(&args).map(|a| a.config).ok(),
        ),
        "postqueue" => (
            "postqueue",
            postern_postqueue::main,
            postern_postqueue::parse_args(&args).map(|a| a.config).ok(),
        ),
        _ => {
            return fatal(
                "postern",
                "set-gid execution is allowed only as postdrop or postqueue",
            );
        }
    };
    // Censor the process name: it is chosen by the caller.
    args[0] = OsString::from(prog);
    let Some(requested) = requested else {
        return run(args); // a usage error: the program reports it
    };
    let from_cli = requested.is_some();
    let want = requested.or(mail_config.map(PathBuf::from));
    match choose_dir(want.as_deref()).and_then(|d| check_group(&d).map(|()| d)) {
        Ok(dir) => {
            if !from_cli {
                args.splice(1..1, [OsString::from("-c"), dir.into_os_string()]);
            }
            run(args)
        }
        Err(msg) => fatal(prog, &msg),
    }
}

fn fatal(prog: &str, msg: &str) -> ExitCode {
    eprintln!("{prog}: fatal: {msg}");
    ExitCode::from(78)
}

/// The effective group must be the instance's `setgid_group` (a copy left
/// with another group, or a changed setting, is a configuration error).
fn check_group(dir: &Path) -> Result<(), String> {
    let cfg = postern_server::load::load(dir)
        .map_err(|e| e.to_string())?
        .config;
    let name = cfg.str(p::SETGID_GROUP);
    let gid = postern_sys::privs::lookup_group(&name)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("parameter setgid_group: unknown group name value: {name}"))?;
    let egid = postern_sys::privs::effective_gid();
    if gid == egid {
        Ok(())
    } else {
        Err(format!(
            "set-gid group mismatch: running with group ID {egid}, but setgid_group = {name} ({gid})"
        ))
    }
}

/// The instance this executable belongs to: the parent of its `bin/` (a copy that
/// `postern init` installed), else the compiled-in configuration directory when the
/// executable lives in that configuration's `daemon_directory` (the packaged copies
/// that `postern set-permissions` makes).
fn own_instance() -> Result<PathBuf, String> {
    let exe = std::fs::read_link("/proc/self/exe")
        .map_err(|e| format!("cannot find own executable: {e}"))?;
    let bin = exe.parent().ok_or("executable has no directory")?;
    root_only(bin)?;
    if bin.file_name().is_some_and(|n| n == "bin") {
        let inst = bin.parent().ok_or("executable directory has no parent")?;
        root_only(inst)?;
        return Ok(inst.to_path_buf());
    }
    let sys = Path::new(postern_server::load::DEFAULT_CONFIG_DIR);
    let cfg = postern_server::load::load(sys)
        .map_err(|e| e.to_string())?
        .config;
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    if canon(Path::new(&cfg.str(p::DAEMON_DIRECTORY))) != canon(bin) {
        return Err(format!(
            "{}: a set-gid command must be DIR/bin/NAME of an instance or live in the daemon_directory of {}",
            exe.display(),
            sys.display()
        ));
    }
    root_only(sys)?;
    Ok(sys.to_path_buf())
}

/// A directory holding or naming a set-gid command must be root's and writable only by
/// root (so a hard link made elsewhere by a user names no instance).
fn root_only(d: &Path) -> Result<(), String> {
    let md = std::fs::metadata(d).map_err(|e| format!("stat {}: {e}", d.display()))?;
    if md.uid() != 0 || md.mode() & 0o022 != 0 {
        return Err(format!(
            "{}: a set-gid command must live in a directory owned by root and writable only by root",
            d.display()
        ));
    }
    Ok(())
}

/// The configuration directory to use: the instance's own, or `want` when
/// it is that one, the caller is root, or the instance's main.cf allows it.
fn choose_dir(want: Option<&Path>) -> Result<PathBuf, String> {
    let own = own_instance()?;
    let Some(want) = want else { return Ok(own) };
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let want_c = canon(want);
    if want_c == canon(&own) || postern_sys::privs::real_uid() == 0 {
        return Ok(want.to_path_buf());
    }
    let cfg = postern_server::load::load(&own)
        .map_err(|e| e.to_string())?
        .config;
    let listed = [
        p::ALTERNATE_CONFIG_DIRECTORIES,
        p::MULTI_INSTANCE_DIRECTORIES,
    ]
    .into_iter()
    .flat_map(|n| cfg.list(n))
    .any(|d| canon(Path::new(&d)) == want_c);
    if listed {
        Ok(want.to_path_buf())
    } else {
        Err(format!(
            "unauthorized configuration directory name: {} (specify \"alternate_config_directories = {}\" in {})",
            want.display(),
            want.display(),
            own.join("main.cf").display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_filter() {
        for k in ["TZ", "LANG", "LC_ALL", "LC_CTYPE"] {
            assert!(keep_env(k), "{k}");
        }
        for k in [
            "PATH",
            "LD_PRELOAD",
            "MAIL_CONFIG",
            "HOME",
            "IFS",
            "POSTERN_DAEMON",
        ] {
            assert!(!keep_env(k), "{k}");
        }
    }
}
