//! `postern` — the one executable.
//!
//! Dispatch, in this order:
//! 0. executed set-gid (the `bin/postdrop` and `bin/postqueue` copies that
//!    `postern init` installs as root): only [`setgid::entry`], which runs
//!    postdrop or postqueue after its checks, and nothing else.
//! 1. master starts daemons with `POSTERN_DAEMON=1` and argv[0] set to the
//!    program name (`pickup`, `qmgr`…), so `ps` shows each daemon by name.
//! 2. Invoked through a link named `sendmail`, `mailq`, `newaliases`,
//!    `postdrop`, `postqueue`, `postsuper`, `postconf`, `postcat`, `postmap` or
//!    `postalias`, it is
//!    that command, with Postfix's flags.
//! 3. Otherwise the first argument is a verb: `postern [-c DIR] VERB …`, where
//!    VERB is a control verb of Postfix's `postfix` command (`start`, `stop`,
//!    `reload`, `status`, `start-fg`, `check`, `flush`, `abort`), `init`, or one
//!    of the command names above, or `dkim`/`auth` (postern-auth's commands). A
//!    global `-c DIR` is passed on to the command (as `-C DIR` for sendmail, which
//!    takes `-C`). `postern help [NAME]` prints
//!    the manual (the list of pages, or one page) and `postern man DIR` writes it
//!    as man pages ([`help`]).
//! 4. Exactly `--help` as the first argument after a command or verb name
//!    (`sendmail --help`, `postern postqueue --help`, `postern start --help`,
//!    `postern --help`) prints that part of the manual on stdout and exits 0; every
//!    other argument, `-h` included, keeps its command's meaning.

mod help;
mod setgid;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

type Entry = fn(Vec<OsString>) -> ExitCode;

fn daemon(name: &str) -> Option<Entry> {
    Some(match name {
        "master" => postern_master::main,
        "pickup" => postern_pickup::main,
        "cleanup" => postern_cleanup::main,
        "qmgr" => postern_qmgr::main,
        "flush" => postern_flush::main,
        "local" => postern_local::main,
        "bounce" => postern_bounce::main,
        "smtpd" => postern_smtpd::main,
        "anvil" => postern_anvil::main,
        "qmqpd" => postern_qmqpd::main,
        "smtp" => postern_smtp::main,
        "lmtp" => postern_smtp::main,
        "proxymap" => postern_proxymap::main,
        "virtual" => postern_virtual::main,
        "pipe" => postern_pipe::main,
        "discard" => postern_discard::main,
        "error" => postern_error::main,
        "showq" => postern_showq::main,
        "spawn" => postern_spawn::main,
        _ => return None,
    })
}

fn command(name: &str) -> Option<Entry> {
    Some(match name {
        "sendmail" | "mailq" | "newaliases" => postern_sendmail::main,
        "postdrop" => postern_postdrop::main,
        "postqueue" => postern_postqueue::main,
        "postsuper" => postern_postsuper::main,
        "postconf" => postern_postconf::main,
        "postcat" => postern_postcat::main,
        "postmap" => postern_postmap::postmap,
        "postalias" => postern_postmap::postalias,
        _ => return None,
    })
}

fn base(arg0: &OsString) -> String {
    Path::new(arg0)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn usage() -> ExitCode {
    help::usage()
}

/// True when the argument after the command name is exactly `--help`.
fn asks_help(args: &[OsString]) -> bool {
    args.get(1).is_some_and(|a| a == "--help")
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if postern_sys::privs::is_set_id() {
        return setgid::entry(args);
    }
    let Some(arg0) = args.first() else {
        return usage();
    };
    let name = base(arg0);
    if std::env::var_os("POSTERN_DAEMON").is_some() {
        return match daemon(&name) {
            Some(f) => f(args),
            None => postern_server::unimplemented_daemon(&name, &args),
        };
    }
    if let Some(f) = command(&name) {
        if asks_help(&args) {
            return help::command_help(&name);
        }
        return f(args);
    }
    // `postern [-c DIR] VERB args…`
    let mut rest: Vec<OsString> = args[1..].to_vec();
    let mut config_dir: Option<OsString> = None;
    while let Some(first) = rest.first() {
        match first.to_str() {
            Some("-c") if rest.len() >= 2 => {
                config_dir = Some(rest[1].clone());
                rest.drain(..2);
            }
            Some("-v") | Some("-D") => {
                rest.remove(0);
            }
            _ => break,
        }
    }
    let Some(verb) = rest.first().and_then(|v| v.to_str()).map(str::to_string) else {
        return usage();
    };
    if verb == "--help" {
        return help::command_help("postern");
    }
    if asks_help(&rest) {
        if command(&verb).is_some() {
            return help::command_help(&verb);
        }
        if let Some(code) = help::verb_help(&verb) {
            return code;
        }
    }
    match verb.as_str() {
        "help" => return help::help(&rest[1..]),
        "man" => return help::man(&rest[1..]),
        _ => {}
    }
    if verb == "init" {
        return postern_init::main(rest);
    }
    // `postern [-c DIR] dkim|auth …` (postern-auth): the verb, then `-c DIR`, then the rest.
    if verb == "dkim" || verb == "auth" {
        let mut argv = vec![OsString::from(&verb)];
        if let Some(d) = &config_dir {
            argv.extend([OsString::from("-c"), d.clone()]);
        }
        argv.extend(rest[1..].iter().cloned());
        return if verb == "dkim" {
            postern_auth::cmd::dkim_main(argv)
        } else {
            postern_auth::cmd::auth_main(argv)
        };
    }
    if let Some(f) = command(&verb) {
        let mut argv = vec![OsString::from(&verb)];
        if let Some(d) = &config_dir {
            argv.push(OsString::from(
                if verb == "sendmail" || verb == "mailq" || verb == "newaliases" {
                    "-C"
                } else {
                    "-c"
                },
            ));
            argv.push(d.clone());
        }
        argv.extend(rest[1..].iter().cloned());
        return f(argv);
    }
    let mut argv = vec![OsString::from("postern")];
    if let Some(d) = &config_dir {
        argv.push("-c".into());
        argv.push(d.clone());
    }
    argv.extend(rest);
    postern_control::main(argv)
}
