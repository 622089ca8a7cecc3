//! postern-init — `postern init DIR [--smtp-listen HOST:PORT] [--force]`.
//!
//! Writes a self-contained instance: `DIR/main.cf`, `DIR/master.cf`
//! (Postfix's standard service list, SMTP listener on `--smtp-listen`,
//! default 127.0.0.1:2525), the queue under `DIR/queue`, mailboxes under
//! `DIR/mail/` (Maildir per user) and the log in `DIR/log/maillog`.
//!
//! # Security
//! The queue tree has Postfix's modes (`postfix-files`): `queue/` 0755,
//! `maildrop/` 0730 and `public/` 2710 owned by `mail_owner` with group
//! `setgid_group`, every other queue directory 0700 `mail_owner`. Nothing is
//! world-writable.
//!
//! Run by root, `mail_owner` is `postfix` and `setgid_group` is `postdrop`
//! (both must exist, as for Postfix); daemons drop to `mail_owner`, local
//! delivers as the recipient. Ordinary users submit and list the queue only
//! through the set-gid commands init installs: `DIR/bin/postdrop` and
//! `DIR/bin/postqueue` (one copy of this executable, two names), owned by
//! root, group `setgid_group`, mode 2755, which sendmail and postqueue run
//! for non-root callers of the instance whose configuration is in `DIR`. `mail/` is 0755 root (local creates each Maildir), and
//! `log/maillog` is created 0620 `mail_owner:setgid_group` so that the set-gid
//! commands can log.
//!
//! Run by a non-root user, everything belongs to that user and their group
//! with the same modes, every program runs as that user (`mail_owner` is the
//! user), and no set-gid command is installed or needed.
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
    /// `mail_owner`.
    user: String,
    /// `setgid_group`.
    group: String,
    /// mail_owner's uid and primary gid.
    uid: u32,
    gid: u32,
    /// setgid_group's gid.
    setgid: u32,
    root: bool,
}

fn owner() -> Result<Owner> {
    if postern_sys::privs::is_root() {
        let u = postern_sys::privs::lookup_user("postfix")?
            .context("running as root: the mail_owner account `postfix` does not exist (create it, e.g. by installing Postfix, or run init as a non-root user)")?;
        let setgid = postern_sys::privs::lookup_group("postdrop")?
            .context("running as root: the setgid_group `postdrop` does not exist (create it with `groupadd --system postdrop`, or install Postfix)")?;
        return Ok(Owner {
            user: u.name,
            group: "postdrop".into(),
            uid: u.uid,
            gid: u.gid,
            setgid,
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
        setgid: gid,
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
    // chown first: it may clear the set-gid bit that chmod then sets.
    if let Some((uid, gid)) = own {
        postern_sys::privs::chown(path, uid, gid)?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
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

/// The directories outside the queue: (path under DIR, mode, owned by
/// root / mail_owner). The queue's own are `postern_queue::modes::QUEUE_DIRS`.
const TREE: &[(&str, u32, Own)] = &[
    ("queue", 0o755, Own::Root),
    ("data", 0o700, Own::MailOwner),
    ("log", 0o755, Own::MailOwner),
    ("mail", 0o755, Own::Root),
];

#[derive(Clone, Copy)]
enum Own {
    Root,
    MailOwner,
    SetgidGroup,
}

fn make_tree(dir: &Path, own: &Owner) -> Result<()> {
    use postern_queue::modes::{DirOwner, QUEUE_DIRS};
    let queue_dirs = QUEUE_DIRS.iter().map(|(name, mode, owner)| {
        let who = match owner {
            DirOwner::MailOwner => Own::MailOwner,
            DirOwner::SetgidGroup => Own::SetgidGroup,
        };
        (format!("queue/{name}"), *mode, who)
    });
    let tree = TREE
        .iter()
        .map(|(sub, mode, who)| (sub.to_string(), *mode, *who))
        .chain(queue_dirs);
    for (sub, mode, who) in tree {
        let ids = match (own.root, who) {
            (false, _) => None, // everything is the invoking user's
            (true, Own::Root) => Some((0, 0)),
            (true, Own::MailOwner) => Some((own.uid, own.gid)),
            (true, Own::SetgidGroup) => Some((own.uid, own.setgid)),
        };
        // A non-root instance keeps its spool private to the user.
        let mode = if !own.root && sub == "mail" {
            0o700
        } else {
            mode
        };
        mkdir(&dir.join(sub), mode, ids)?;
    }
    if own.root {
        // The set-gid commands log too: the log file is writable by their group.
        let log = dir.join("log/maillog");
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("create {}", log.display()))?;
        postern_sys::privs::chown(&log, own.uid, own.setgid)?;
        fs::set_permissions(&log, fs::Permissions::from_mode(0o620))
            .with_context(|| format!("chmod {}", log.display()))?;
    }
    Ok(())
}

/// Installs `DIR/bin/postdrop` and `DIR/bin/postqueue`: one copy of this
/// executable (a copy, never a link to the original, whose mode must not
/// change), root-owned, group `setgid_gid`, mode 2755.
fn install_setgid_commands(dir: &Path, setgid_gid: u32) -> Result<()> {
    let bin = dir.join("bin");
    mkdir(&bin, 0o755, Some((0, 0)))?;
    let exe = std::env::current_exe().context("find own executable")?;
    let tmp = bin.join(".postdrop.new");
    remove_stale(&tmp)?;
    fs::copy(&exe, &tmp).with_context(|| format!("copy {} to {}", exe.display(), tmp.display()))?;
    postern_sys::privs::chown(&tmp, 0, setgid_gid)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o2755))
        .with_context(|| format!("chmod {}", tmp.display()))?;
    let postqueue_tmp = bin.join(".postqueue.new");
    remove_stale(&postqueue_tmp)?;
    fs::hard_link(&tmp, &postqueue_tmp)
        .with_context(|| format!("link {}", postqueue_tmp.display()))?;
    for (from, name) in [(&postqueue_tmp, "postqueue"), (&tmp, "postdrop")] {
        let to = bin.join(name);
        fs::rename(from, &to).with_context(|| format!("rename to {}", to.display()))?;
    }
    Ok(())
}

/// Removes a leftover of an interrupted earlier run.
fn remove_stale(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", path.display())),
    }
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
    fs::write(&main, main_cf(&dir, &own)).with_context(|| format!("write {}", main.display()))?;
    let master = dir.join("master.cf");
    fs::write(&master, postern_config::default_master_cf(&o.listen))
        .with_context(|| format!("write {}", master.display()))?;
    make_tree(&dir, &own)?;
    if own.root {
        install_setgid_commands(&dir, own.setgid)?;
    }
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
