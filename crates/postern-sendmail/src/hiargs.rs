//! [`LowArgs`] → [`HiArgs`]: load the configuration, start logging, find out
//! who submits; then the modes that need them.

use crate::exit;
use crate::input::{self, InputError};
use crate::lowargs::LowArgs;
use crate::submit::{self, Submitter};
use postern_config::{Config, p};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static LOGGING: AtomicBool = AtomicBool::new(false);

pub use postern_server::command::Fatal;

/// Reports `f` as `prog: fatal: …` (logged too once logging is set up) and gives its status.
pub fn report(f: &Fatal, prog: &str) -> ExitCode {
    f.report(prog, LOGGING.load(Ordering::Relaxed))
}

/// `-C` names main.cf's directory or main.cf itself.
pub fn resolve_config_dir(cli: Option<&Path>) -> PathBuf {
    match cli {
        Some(p) if !p.is_dir() && p.file_name().is_some() => match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        },
        other => postern_server::load::config_dir(other),
    }
}

/// The validated arguments plus what they open.
#[derive(Debug)]
pub struct HiArgs {
    /// The command line.
    pub low: LowArgs,
    /// The configuration directory.
    pub dir: PathBuf,
    /// The configuration.
    pub cfg: Config,
    /// The submitting user.
    pub who: Submitter,
    /// The multi-call executable that runs postdrop and postqueue.
    pub exe: PathBuf,
}

impl HiArgs {
    /// Loads the configuration and starts logging.
    pub fn new(low: LowArgs) -> Result<HiArgs, Fatal> {
        let dir = resolve_config_dir(low.config.as_deref());
        let loaded = postern_server::load::load(&dir)
            .map_err(|e| Fatal::new(exit::CONFIG, e.to_string()))?;
        let cfg = loaded.config;
        postern_log::init(&low.prog, postern_server::load::command_log_config(&cfg));
        LOGGING.store(true, Ordering::Relaxed);
        let uid = postern_sys::privs::real_uid();
        let login = match postern_sys::privs::lookup_uid(uid) {
            Ok(u) => u.map(|u| u.name),
            Err(e) => {
                postern_log::warning(format_args!("{e}"));
                None
            }
        };
        let exe = std::env::current_exe()
            .map_err(|e| Fatal::new(exit::OSERR, format!("cannot find own executable: {e}")))?;
        Ok(HiArgs {
            low,
            dir,
            cfg,
            who: Submitter { uid, login },
            exe,
        })
    }

    /// `-bs`: replaces this process with smtpd in stand-alone mode (`-S`),
    /// which speaks SMTP on stdin/stdout and submits through postdrop, so it
    /// works while the mail system is down. Returns only on failure.
    pub fn exec_smtpd_stdio(&self) -> Fatal {
        let err = Command::new(&self.exe)
            .arg0("smtpd")
            .env("POSTERN_DAEMON", "1")
            .arg("-c")
            .arg(&self.dir)
            .arg("-S")
            .exec();
        Fatal::new(
            exit::OSERR,
            format!("execute {} as smtpd: {err}", self.exe.display()),
        )
    }

    /// The program that runs `name` (postdrop, postqueue) for this caller: in
    /// a root instance an ordinary user needs the set-gid copy (`DIR/bin/NAME`
    /// that `postern init` installed, or `$daemon_directory/NAME` of the system
    /// layout); root, and every caller of a non-root instance (which has no such
    /// copy), run this executable.
    pub fn helper(&self, name: &str) -> PathBuf {
        postern_server::load::setgid_helper(&self.dir, &self.cfg, name)
            .unwrap_or_else(|| self.exe.clone())
    }

    /// `authorized_submit_users` (checked before the message is read, as
    /// Postfix's sendmail does; postdrop checks again).
    fn check_submit_acl(&self) -> Result<(), Fatal> {
        use postern_server::acl::{AclError, check_user};
        match check_user(&self.cfg.str(p::AUTHORIZED_SUBMIT_USERS), self.who.uid) {
            Ok(()) => Ok(()),
            Err(AclError::Denied { name, uid }) => Err(Fatal::new(
                exit::NOPERM,
                format!("User {name}({uid}) is not allowed to submit mail"),
            )),
            Err(e) => Err(Fatal::new(
                exit::TEMPFAIL,
                format!("authorized_submit_users: {e}"),
            )),
        }
    }

    /// Replaces this process with `postqueue -c DIR args`; returns only on failure.
    pub fn exec_postqueue(&self, args: &[&str]) -> Fatal {
        let exe = self.helper("postqueue");
        let err = Command::new(&exe)
            .arg0("postqueue")
            .arg("-c")
            .arg(&self.dir)
            .args(args)
            .exec();
        Fatal::new(
            exit::OSERR,
            format!("execute {} as postqueue: {err}", exe.display()),
        )
    }

    /// newaliases: replaces this process with `postalias -c DIR TABLE...` over every
    /// table of `alias_database` (or `-oA`), as Postfix's sendmail does. An empty list
    /// succeeds without running anything. Returns only on failure.
    pub fn newaliases(&self) -> Result<u8, Fatal> {
        let db = match &self.low.alias_database {
            Some(db) => db.clone(),
            None => self.cfg.str(p::ALIAS_DATABASE),
        };
        let tables = newaliases_tables(&db);
        if tables.is_empty() {
            return Ok(exit::OK);
        }
        let err = Command::new(&self.exe)
            .arg0("postalias")
            .arg("-c")
            .arg(&self.dir)
            .args(&tables)
            .exec();
        Err(Fatal::new(
            exit::OSERR,
            format!("execute {} as postalias: {err}", self.exe.display()),
        ))
    }

    /// The envelope sender: `-f`, else the login name.
    fn sender(&self) -> Result<String, Fatal> {
        match (&self.low.sender, &self.who.login) {
            (Some(s), _) => Ok(s.clone()),
            (None, Some(login)) => Ok(login.clone()),
            (None, None) => Err(Fatal::new(
                exit::NOUSER,
                format!("no login name found for user ID {}", self.who.uid),
            )),
        }
    }

    /// `-bm`: read, check, hand to postdrop.
    pub fn submit(&self) -> Result<u8, Fatal> {
        self.check_submit_acl()?;
        let sender = self.sender()?;
        let tag = format!(
            "{}({})",
            if sender.is_empty() { "<>" } else { &sender },
            self.who.uid
        );
        if !self.low.extract && self.low.recipients.is_empty() {
            return Err(Fatal::new(exit::USAGE, "no recipients specified"));
        }
        let limit = self.cfg.size(p::MESSAGE_SIZE_LIMIT);
        let content = input::read_message(&mut std::io::stdin().lock(), self.low.dot_ends, limit)
            .map_err(|e| match e {
            InputError::TooBig => {
                Fatal::new(exit::TEMPFAIL, format!("{tag}: message file too big"))
            }
            InputError::Io(e) => {
                Fatal::new(exit::IOERR, format!("{tag}: read standard input: {e}"))
            }
        })?;
        if self.low.extract
            && self.low.recipients.is_empty()
            && !submit::header_has_recipients(&content)
        {
            return Err(Fatal::new(
                exit::DATAERR,
                format!("{tag}: No recipient addresses found in message header"),
            ));
        }
        let env_name = std::env::var("NAME")
            .ok()
            .filter(|n| !n.chars().any(char::is_control));
        let fullname = self
            .low
            .fullname
            .clone()
            .or(env_name)
            .or_else(passwd_full_name);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut qf = submit::build(
            &self.low,
            &sender,
            fullname.as_deref(),
            content,
            (now.as_secs(), now.subsec_micros()),
        );
        let bytes = postern_qfile::encode(&mut qf);
        let (code, msg) = submit::handoff(&self.helper("postdrop"), &self.dir, &bytes)
            .map_err(|m| Fatal::new(exit::OSERR, format!("{tag}: {m}")))?;
        match (code, msg) {
            (exit::OK, _) => Ok(exit::OK),
            (code, Some(m)) => Err(Fatal::new(code, format!("{tag}: {m}"))),
            (code, None) => Err(Fatal::new(
                code,
                format!("{tag}: message not queued (postdrop exit status {code})"),
            )),
        }
    }
}

/// The tables newaliases rebuilds (pure): `alias_database` split on commas and
/// whitespace.
pub fn newaliases_tables(alias_database: &str) -> Vec<String> {
    alias_database
        .split([',', ' ', '\t', '\r', '\n'])
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}

/// The submitter's full name from the password file, as Postfix's sendmail
/// takes it when there is no `-F` and no `$NAME`: the GECOS field up to the
/// first comma, with `&` standing for the login name (first letter upper case).
fn passwd_full_name() -> Option<String> {
    let pw = postern_sys::privs::lookup_uid(postern_sys::privs::real_uid()).ok()??;
    gecos_name(&pw.gecos, &pw.name)
}

fn gecos_name(gecos: &str, login: &str) -> Option<String> {
    let mut cap = login.chars();
    let login: String = cap
        .next()
        .map(|c| c.to_uppercase().chain(cap).collect())
        .unwrap_or_default();
    let name = gecos.split(',').next()?.replace('&', &login);
    let name = name.trim();
    (!name.is_empty() && !name.chars().any(char::is_control)).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_dir_from_c_option() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("main.cf"), "").unwrap();
        assert_eq!(resolve_config_dir(Some(d.path())), d.path());
        assert_eq!(
            resolve_config_dir(Some(&d.path().join("main.cf"))),
            d.path()
        );
        assert_eq!(
            resolve_config_dir(Some(Path::new("main.cf"))),
            Path::new(".")
        );
    }

    #[test]
    fn newaliases_table_lists() {
        assert!(newaliases_tables("").is_empty());
        assert!(newaliases_tables("  ,  ").is_empty());
        assert_eq!(
            newaliases_tables("hash:/etc/aliases, cdb:/x\t/y"),
            vec!["hash:/etc/aliases", "cdb:/x", "/y"]
        );
    }

    #[test]
    fn os_error_suffixes_are_dropped() {
        assert_eq!(
            crate::plain("open x: No such file or directory (os error 2): more (os error x)"),
            "open x: No such file or directory: more (os error x)"
        );
    }

    #[test]
    fn full_name_from_gecos() {
        assert_eq!(gecos_name("root", "root").as_deref(), Some("root"));
        assert_eq!(
            gecos_name("Joe User,Room 1,555", "joe").as_deref(),
            Some("Joe User")
        );
        assert_eq!(gecos_name("& Smith", "joe").as_deref(), Some("Joe Smith"));
        assert_eq!(gecos_name(",,,", "joe"), None);
        assert_eq!(gecos_name("", "joe"), None);
    }
}
