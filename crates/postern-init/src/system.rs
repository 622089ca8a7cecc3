//! `postern init --system [DIR] [--config-only]`: the system layout of a packaged
//! install. Writes `DIR/main.cf` and `DIR/master.cf` (DIR defaults to `/etc/postern`)
//! only where they do not exist yet, so an administrator's files are never replaced.
//! Without `--config-only`, as root, it then creates the `mail_owner` account and the
//! `setgid_group` group when missing, writes `DIR/aliases` when missing and builds its
//! database `DIR/aliases.db` when missing (never another alias database), and runs `postern -c DIR set-permissions`, which makes the queue tree,
//! `data_directory` and the set-gid copies in `daemon_directory`.
//!
//! # Security
//! The configuration files are written 0644 root; nothing existing is overwritten or
//! re-owned here (set-permissions repairs owners and modes, printing each change).
//!
//! # Configuration
//! The main.cf written names the compiled-in paths explicitly (`queue_directory =
//! /var/spool/postern`, `data_directory = /var/lib/postern`, `daemon_directory =
//! /usr/lib/postern`) whatever DIR is, so the package build can stage it elsewhere;
//! everything else is at Postfix's default. `alias_maps` is Postern's own
//! `$config_directory/aliases`: Debian's `/etc/aliases.db` is a Berkeley DB file of
//! Postfix's, which Postern does not read.

use anyhow::{Context as _, Result, bail};
use postern_config::p;
use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The compiled-in configuration directory.
pub(crate) const SYSTEM_CONFIG_DIR: &str = "/etc/postern";

/// The main.cf of a system install.
pub(crate) const MAIN_CF: &str = "\
# Postern main.cf (system layout, written by `postern init --system`).
#
# Syntax and parameter names are Postfix's: one `name = value` per line, `$name`
# expands another parameter. `postern postconf -n` lists what is set here,
# `postern postconf -d` every default. After a change, run `postern reload`;
# `postern check` reports mistakes, and `postern set-permissions` repairs owners
# and modes of the tree below.
compatibility_level = 3.7

# Where things live (the compiled-in defaults, stated for the reader).
queue_directory = /var/spool/postern
data_directory = /var/lib/postern
daemon_directory = /usr/lib/postern

# The unprivileged account the daemons run as, and the group of the set-gid
# postdrop and postqueue (Postfix's names: shared with Postfix when installed).
mail_owner = postfix
setgid_group = postdrop

# Set myhostname when the kernel's host name is not the mail name of this host.
#myhostname = mail.example.com
#mydomain = example.com
#myorigin = $mydomain

# Local aliases: Postern's own table (rebuild with `postern newaliases`).
alias_maps = hash:$config_directory/aliases
alias_database = hash:$config_directory/aliases

# Everything else is at Postfix's default: mail for $myhostname and localhost is
# delivered locally (mailboxes in /var/mail), the SMTP server listens on every
# interface and relays only for this host (mynetworks_style = host).
";

/// The aliases file written when none exists.
const ALIASES: &str = "\
# Local aliases of Postern (aliases(5) syntax). After a change, run
# `postern newaliases`.
postmaster: root
mailer-daemon: postmaster
abuse: postmaster
";

pub(crate) struct Opts {
    pub dir: PathBuf,
    pub config_only: bool,
}

/// Writes `path` with `text` unless it exists; says which.
fn write_new(path: &Path, text: &str) -> Result<()> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("write {}", path.display()))?;
            println!("postern init: wrote {}", path.display());
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            println!("postern init: kept existing {}", path.display());
        }
        Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
    }
    Ok(())
}

pub(crate) fn run(o: &Opts) -> Result<()> {
    fs::create_dir_all(&o.dir).with_context(|| format!("mkdir {}", o.dir.display()))?;
    write_new(&o.dir.join("main.cf"), MAIN_CF)?;
    write_new(
        &o.dir.join("master.cf"),
        &postern_config::system_master_cf(),
    )?;
    if o.config_only {
        return Ok(());
    }
    if !postern_sys::privs::is_root() {
        bail!(
            "--system installs for the whole machine and needs root (use --config-only to write just the configuration)"
        );
    }
    let text = fs::read_to_string(o.dir.join("main.cf"))
        .with_context(|| format!("read {}", o.dir.join("main.cf").display()))?;
    let main = postern_config::parse_main_cf(&text).map_err(|errs| {
        anyhow::anyhow!(
            "{}: {}",
            o.dir.join("main.cf").display(),
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let mut cfg = postern_config::Config::new(main);
    cfg.set_default("config_directory", &o.dir.display().to_string());
    let (user, group) = (cfg.str(p::MAIL_OWNER), cfg.str(p::SETGID_GROUP));
    if let Some(msg) =
        crate::accounts::ensure(&user, &group, Path::new(&cfg.str(p::QUEUE_DIRECTORY)))?
    {
        println!("postern init: {msg}");
    }
    let aliases = o.dir.join("aliases");
    write_new(&aliases, ALIASES)?;
    postern(&o.dir, &["set-permissions"])?;
    // Only DIR/aliases, whatever alias_database says: a main.cf copied from Postfix names
    // /etc/aliases, whose Berkeley DB file Debian's Postfix still needs.
    if !o.dir.join("aliases.db").exists() {
        let table = format!("hash:{}", aliases.display());
        postern(&o.dir, &["postalias", &table])?;
    }
    Ok(())
}

/// Runs `postern -c DIR ARGS` (this executable), failing with its error output.
fn postern(dir: &Path, args: &[&str]) -> Result<()> {
    let exe = std::env::current_exe().context("find own executable")?;
    let mut argv: Vec<OsString> = vec!["-c".into(), dir.into()];
    argv.extend(args.iter().map(OsString::from));
    let st = Command::new(&exe)
        .arg0("postern")
        .args(&argv)
        .status()
        .with_context(|| format!("run postern {}", args.join(" ")))?;
    if !st.success() {
        bail!(
            "postern -c {} {} failed ({st})",
            dir.display(),
            args.join(" ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_cf_is_valid_and_names_the_layout() {
        let m = postern_config::parse_main_cf(MAIN_CF).unwrap();
        let cfg = postern_config::Config::new(m);
        assert_eq!(cfg.str(p::QUEUE_DIRECTORY), "/var/spool/postern");
        assert_eq!(cfg.str(p::DATA_DIRECTORY), "/var/lib/postern");
        assert_eq!(cfg.str(p::DAEMON_DIRECTORY), "/usr/lib/postern");
        assert_eq!(cfg.str(p::MAIL_OWNER), "postfix");
        assert_eq!(cfg.str(p::SETGID_GROUP), "postdrop");
        assert_eq!(cfg.str(p::INET_INTERFACES), "all");
    }

    #[test]
    fn config_only_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("etc/postern");
        let o = Opts {
            dir: dir.clone(),
            config_only: true,
        };
        run(&o).unwrap();
        assert_eq!(fs::read_to_string(dir.join("main.cf")).unwrap(), MAIN_CF);
        fs::write(dir.join("master.cf"), "mine\n").unwrap();
        run(&o).unwrap();
        assert_eq!(fs::read_to_string(dir.join("master.cf")).unwrap(), "mine\n");
        assert!(!dir.join("aliases").exists());
    }
}
