//! postern-init — `postern init DIR [--smtp-listen HOST:PORT] [--force]`.
//!
//! Writes a self-contained instance: `DIR/main.cf`, `DIR/master.cf`
//! (Postfix's standard service list, SMTP listener on `--smtp-listen`,
//! default 127.0.0.1:2525), the queue under `DIR/queue`, mailboxes under
//! `DIR/mail/` (Maildir per user) and the log in `DIR/log/maillog`.
//!
//! # Security
//! Run by a non-root user, everything belongs to that user and every program
//! runs as that user (`mail_owner` is set to the user). Run by root, the queue
//! belongs to `mail_owner` (`postfix`), which must exist; daemons drop to it,
//! and local delivers as the recipient's account. `maildrop` is then mode 1733
//! (any local user may submit, as in Postfix before set-gid postdrop) and the
//! mail spool 1777 with the sticky bit, so that local, running with the
//! recipient's identity, can create the recipient's Maildir.
//!
//! # Configuration
//! The instance sends no DNS query: nothing in it resolves names unless the
//! administrator configures relaying (a later capability).

use anyhow::{Context as _, Result, bail};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Entry point; `args[0]` is `init`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    match run(&args) {
        Ok(dir) => {
            println!("postern: instance created in {}", dir.display());
            println!("postern: start it with: postern -c {} start", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postern: fatal: init: {e:#}");
            ExitCode::from(1)
        }
    }
}

struct Opts {
    dir: PathBuf,
    listen: String,
    force: bool,
}

fn parse(args: &[OsString]) -> Result<Opts> {
    let mut dir = None;
    let mut listen = "127.0.0.1:2525".to_string();
    let mut force = false;
    let mut it = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = it.next() {
        match a.as_str() {
            "--smtp-listen" => listen = it.next().context("--smtp-listen needs HOST:PORT")?,
            s if s.starts_with("--smtp-listen=") => {
                listen = s["--smtp-listen=".len()..].to_string()
            }
            "--force" => force = true,
            s if s.starts_with('-') => bail!("unknown option {s}"),
            s => {
                if dir.replace(PathBuf::from(s)).is_some() {
                    bail!("more than one directory given");
                }
            }
        }
    }
    let dir = dir.context("usage: postern init DIR [--smtp-listen HOST:PORT] [--force]")?;
    validate_listen(&listen)?;
    Ok(Opts { dir, listen, force })
}

fn validate_listen(l: &str) -> Result<()> {
    let (host, port) = l
        .rsplit_once(':')
        .context("--smtp-listen must be HOST:PORT")?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        bail!("--smtp-listen must be HOST:PORT, got {l}");
    }
    Ok(())
}

struct Owner {
    user: String,
    group: String,
    uid: u32,
    gid: u32,
    root: bool,
}

fn owner() -> Result<Owner> {
    if postern_sys::privs::is_root() {
        let u = postern_sys::privs::lookup_user("postfix")?
            .context("running as root: the mail_owner account `postfix` does not exist (create it, e.g. by installing Postfix, or run init as a non-root user)")?;
        let gid = postern_sys::privs::lookup_group("postdrop")?.unwrap_or(u.gid);
        let group = if postern_sys::privs::lookup_group("postdrop")?.is_some() {
            "postdrop"
        } else {
            "postfix"
        };
        return Ok(Owner {
            user: u.name,
            group: group.into(),
            uid: u.uid,
            gid,
            root: true,
        });
    }
    let uid = postern_sys::privs::real_uid();
    let u = postern_sys::privs::lookup_uid(uid)?;
    let name = u
        .as_ref()
        .map(|u| u.name.clone())
        .unwrap_or_else(|| uid.to_string());
    let gid = postern_sys::privs::real_gid();
    Ok(Owner {
        user: name.clone(),
        group: name,
        uid,
        gid,
        root: false,
    })
}

fn main_cf(dir: &Path, o: &Owner) -> String {
    let d = dir.display();
    format!(
        "# main.cf of a Postern instance, written by `postern init`.\n\
         # Syntax and parameter names are Postfix's; see `postern -c {d} postconf -d`.\n\
         compatibility_level = 3.7\n\
         queue_directory = {d}/queue\n\
         data_directory = {d}/data\n\
         mail_owner = {user}\n\
         setgid_group = {group}\n\
         \n\
         # Mail for these domains is delivered here; mailboxes are Maildirs under mail/.\n\
         mydestination = localhost, $myhostname\n\
         mail_spool_directory = {d}/mail/\n\
         local_recipient_maps =\n\
         alias_maps =\n\
         alias_database =\n\
         \n\
         inet_interfaces = loopback-only\n\
         mynetworks = 127.0.0.0/8\n\
         \n\
         maillog_file = {d}/log/maillog\n\
         maillog_file_prefixes = {d}/log\n",
        user = o.user,
        group = o.group
    )
}

fn mkdir(path: &Path, mode: u32, own: Option<(u32, u32)>) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("mkdir {}", path.display())),
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    if let Some((uid, gid)) = own {
        postern_sys::privs::chown(path, uid, gid)?;
    }
    Ok(())
}

/// Run by root, the daemons run as mail_owner and must be able to reach the
/// instance: every parent directory must be searchable by others.
fn reachable_by_others(dir: &Path) -> Result<()> {
    for d in dir.ancestors() {
        let mode = fs::metadata(d)
            .with_context(|| format!("stat {}", d.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            bail!(
                "{} (mode {:o}) is not searchable by others, so mail_owner cannot reach the queue in {}; \
                 chmod o+x it or choose another directory",
                d.display(),
                mode & 0o7777,
                dir.display()
            );
        }
    }
    Ok(())
}

fn run(args: &[OsString]) -> Result<PathBuf> {
    let o = parse(args)?;
    fs::create_dir_all(&o.dir).with_context(|| format!("mkdir {}", o.dir.display()))?;
    let dir = fs::canonicalize(&o.dir).with_context(|| format!("resolve {}", o.dir.display()))?;
    let main = dir.join("main.cf");
    if main.exists() && !o.force {
        bail!(
            "{} exists; refusing to overwrite (use --force)",
            main.display()
        );
    }
    let own = owner()?;
    if own.root {
        reachable_by_others(&dir)?;
    }
    let ids = own.root.then_some((own.uid, own.gid));
    fs::write(&main, main_cf(&dir, &own)).with_context(|| format!("write {}", main.display()))?;
    let master = dir.join("master.cf");
    fs::write(&master, postern_config::default_master_cf(&o.listen))
        .with_context(|| format!("write {}", master.display()))?;
    let queue = dir.join("queue");
    mkdir(&queue, 0o755, None)?;
    for d in [
        "incoming", "active", "deferred", "hold", "corrupt", "bounce", "defer", "trace", "private",
        "pid", "saved", "flush",
    ] {
        mkdir(&queue.join(d), 0o700, ids)?;
    }
    mkdir(
        &queue.join("maildrop"),
        if own.root { 0o1733 } else { 0o700 },
        ids,
    )?;
    mkdir(
        &queue.join("public"),
        if own.root { 0o755 } else { 0o700 },
        ids,
    )?;
    mkdir(&dir.join("data"), 0o700, ids)?;
    mkdir(&dir.join("log"), 0o755, ids)?;
    mkdir(
        &dir.join("mail"),
        if own.root { 0o1777 } else { 0o700 },
        None,
    )?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let a: Vec<OsString> = ["init", "x", "--smtp-listen", "127.0.0.1:2600"]
            .iter()
            .map(OsString::from)
            .collect();
        let o = parse(&a).unwrap();
        assert_eq!(o.listen, "127.0.0.1:2600");
        let bad: Vec<OsString> = ["init", "x", "--smtp-listen", "nope"]
            .iter()
            .map(OsString::from)
            .collect();
        assert!(parse(&bad).is_err());
        assert!(parse(&[OsString::from("init")]).is_err());
    }
}
