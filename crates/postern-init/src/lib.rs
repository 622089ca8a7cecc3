//! postern-init — `postern init DIR [--smtp-listen HOST:PORT] [--force] [-o NAME=VALUE]…`
//! and `postern init --system [DIR] [--config-only]` (see [`system`]).
//!
//! Writes a self-contained instance: `DIR/main.cf`, `DIR/master.cf`
//! (Postfix's standard service list, SMTP listener on `--smtp-listen`,
//! default 127.0.0.1:2525), the queue under `DIR/queue`, mailboxes under
//! `DIR/mail/` (Maildir per user) and the log in `DIR/log/maillog`. `-o NAME=VALUE`
//! sets a main.cf parameter (replacing the line init would write for it), e.g.
//! `-o mail_owner=NAME -o setgid_group=NAME`.
//!
//! # Security
//! The tree follows the manifest of `postern_queue::modes` (Postfix's
//! `postfix-files`): `queue/` 0755 root, `maildrop/` 0730 and `public/` 2710
//! owned by `mail_owner` with group `setgid_group`, `pid/` 0755 root, every other
//! queue directory and `data/` 0700 `mail_owner`. Nothing is world-writable.
//!
//! Run by root, `mail_owner` is `postfix` and `setgid_group` is `postdrop`
//! unless `-o` names others; when they do not exist, init creates them (a system
//! account without login whose home is the queue, and a system group; see
//! [`accounts`]) and says so, or fails with the commands to run. Daemons drop to
//! `mail_owner`, local delivers as the recipient. Ordinary users submit and list
//! the queue only through the set-gid commands init installs: `DIR/bin/postdrop`
//! and `DIR/bin/postqueue` (one copy of this executable, two names), owned by
//! root, group `setgid_group`, mode 2755, which sendmail and postqueue run for
//! non-root callers of the instance whose configuration is in `DIR`. `mail/` is
//! 0755 root (local creates each Maildir), and `log/maillog` is created 0620
//! `mail_owner:setgid_group` so that the set-gid commands can log.
//!
//! Run by a non-root user, everything belongs to that user and their group
//! with the same modes, every program runs as that user (`mail_owner` is the
//! user), and no set-gid command is installed or needed.
//!
//! # Configuration
//! The instance sends no DNS query: nothing in it resolves names unless the
//! administrator configures relaying.

mod accounts;
mod system;

use anyhow::{Context as _, Result, bail};
use postern_queue::modes::{self, Ids, Layout};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Entry point; `args[0]` is `init`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let result = parse(&args).and_then(|cmd| match cmd {
        Cmd::Instance(o) => run(&o).map(|dir| {
            println!("postern: instance created in {}", dir.display());
            println!("postern: start it with: postern -c {} start", dir.display());
        }),
        Cmd::System(o) => system::run(&o).map(|()| {
            if !o.config_only {
                println!("postern init: start it with: postern start (or systemctl start postern)");
            }
        }),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postern: fatal: init: {e:#}");
            ExitCode::from(1)
        }
    }
}

const USAGE: &str = "usage: postern init DIR [--smtp-listen HOST:PORT] [--force] [-o NAME=VALUE]...\n       \
                     postern init --system [DIR] [--config-only]";

enum Cmd {
    Instance(Opts),
    System(system::Opts),
}

struct Opts {
    dir: PathBuf,
    listen: String,
    force: bool,
    /// `-o NAME=VALUE` main.cf settings.
    set: Vec<(String, String)>,
}

fn parse(args: &[OsString]) -> Result<Cmd> {
    let mut dir = None;
    let mut listen = "127.0.0.1:2525".to_string();
    let (mut force, mut system, mut config_only) = (false, false, false);
    let mut set = Vec::new();
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
            "--system" => system = true,
            "--config-only" => config_only = true,
            "-o" => {
                let kv = it.next().context("-o needs NAME=VALUE")?;
                let (k, v) = kv.split_once('=').context("-o needs NAME=VALUE")?;
                let k = k.trim();
                if !postern_config::valid_param_name(k) {
                    bail!("-o {kv}: bad parameter name");
                }
                set.push((k.to_string(), v.trim().to_string()));
            }
            s if s.starts_with('-') => bail!("unknown option {s}\n{USAGE}"),
            s => {
                if dir.replace(PathBuf::from(s)).is_some() {
                    bail!("more than one directory given");
                }
            }
        }
    }
    if system {
        if force || !set.is_empty() {
            bail!("--system never overwrites and takes no -o: edit main.cf instead");
        }
        let dir = dir.unwrap_or_else(|| PathBuf::from(system::SYSTEM_CONFIG_DIR));
        return Ok(Cmd::System(system::Opts { dir, config_only }));
    }
    if config_only {
        bail!("--config-only goes with --system");
    }
    let dir = dir.context(USAGE)?;
    validate_listen(&listen)?;
    Ok(Cmd::Instance(Opts {
        dir,
        listen,
        force,
        set,
    }))
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

/// The `-o` value of `name`, else `default`.
fn setting<'a>(set: &'a [(String, String)], name: &str, default: &'a str) -> &'a str {
    set.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map_or(default, |(_, v)| v.as_str())
}

/// Who owns the instance: root (with mail_owner and setgid_group, created when
/// missing) or the invoking user (everything theirs).
fn ids(set: &[(String, String)], queue: &Path) -> Result<Ids> {
    if postern_sys::privs::is_root() {
        let user = setting(set, "mail_owner", "postfix");
        let group = setting(set, "setgid_group", "postdrop");
        if let Some(msg) = accounts::ensure(user, group, queue)? {
            println!("postern init: {msg}");
        }
        let u = postern_sys::privs::lookup_user(user)?
            .with_context(|| format!("the mail_owner account '{user}' does not exist"))?;
        let setgid = postern_sys::privs::lookup_group(group)?
            .with_context(|| format!("the setgid_group '{group}' does not exist"))?;
        if u.uid == 0 {
            bail!("mail_owner '{user}' is root; it must be an unprivileged account");
        }
        return Ok(Ids {
            root_uid: 0,
            root_gid: 0,
            mail_owner: u.name,
            mail_owner_uid: u.uid,
            mail_owner_gid: u.gid,
            setgid_group: group.to_string(),
            setgid_gid: setgid,
        });
    }
    let uid = postern_sys::privs::real_uid();
    let gid = postern_sys::privs::real_gid();
    let name = postern_sys::privs::lookup_uid(uid)?
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    for p in ["mail_owner", "setgid_group"] {
        if setting(set, p, &name) != name {
            bail!(
                "-o {p}=...: a non-root instance runs as its user ({name}); other accounts need root"
            );
        }
    }
    Ok(Ids {
        root_uid: uid,
        root_gid: gid,
        mail_owner: name.clone(),
        mail_owner_uid: uid,
        mail_owner_gid: gid,
        setgid_group: name,
        setgid_gid: gid,
    })
}

fn main_cf(dir: &Path, ids: &Ids, set: &[(String, String)]) -> String {
    let d = dir.display();
    let mut text = format!(
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
        user = ids.mail_owner,
        group = ids.setgid_group
    );
    // -o settings replace init's own line for the same name, or are appended.
    for (k, v) in set {
        let prefix = format!("{k} =");
        let mut found = false;
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with(&prefix) {
                    found = true;
                    format!("{k} = {v}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        text = lines.join("\n") + "\n";
        if !found {
            text.push_str(&format!("{k} = {v}\n"));
        }
    }
    text
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

/// The layout of an instance in `dir` (set-gid copies in `DIR/bin` when run by root).
fn layout(dir: &Path) -> Layout {
    Layout {
        config_dir: dir.to_path_buf(),
        queue_dir: dir.join("queue"),
        data_dir: dir.join("data"),
        setgid_dir: postern_sys::privs::is_root().then(|| dir.join("bin")),
    }
}

/// Builds the tree of the manifest, then the instance's own `log/` (0755 mail_owner,
/// with `maillog` 0620 mail_owner:setgid_group when root) and `mail/` (0755 root;
/// 0700 for a non-root instance, whose spool stays private to the user).
fn make_tree(dir: &Path, ids: &Ids) -> Result<()> {
    let exe = std::env::current_exe().context("find own executable")?;
    for entry in modes::manifest(&layout(dir)) {
        modes::repair(&entry, ids, &exe)?;
    }
    let root = ids.root_uid == 0;
    mkdir(
        &dir.join("log"),
        0o755,
        ids.mail_owner_uid,
        ids.mail_owner_gid,
    )?;
    let spool_mode = if root { 0o755 } else { 0o700 };
    mkdir(&dir.join("mail"), spool_mode, ids.root_uid, ids.root_gid)?;
    if root {
        // The set-gid commands log too: the log file is writable by their group.
        let log = dir.join("log/maillog");
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("create {}", log.display()))?;
        postern_sys::privs::chown(&log, ids.mail_owner_uid, ids.setgid_gid)?;
        fs::set_permissions(&log, fs::Permissions::from_mode(0o620))
            .with_context(|| format!("chmod {}", log.display()))?;
    }
    Ok(())
}

fn mkdir(path: &Path, mode: u32, uid: u32, gid: u32) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("mkdir {}", path.display())),
    }
    postern_sys::privs::chown(path, uid, gid)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(())
}

fn run(o: &Opts) -> Result<PathBuf> {
    fs::create_dir_all(&o.dir).with_context(|| format!("mkdir {}", o.dir.display()))?;
    let dir = fs::canonicalize(&o.dir).with_context(|| format!("resolve {}", o.dir.display()))?;
    let main = dir.join("main.cf");
    if main.exists() && !o.force {
        bail!(
            "{} exists; refusing to overwrite (use --force)",
            main.display()
        );
    }
    if postern_sys::privs::is_root() {
        reachable_by_others(&dir)?;
    }
    let ids = ids(&o.set, &dir.join("queue"))?;
    fs::write(&main, main_cf(&dir, &ids, &o.set))
        .with_context(|| format!("write {}", main.display()))?;
    let master = dir.join("master.cf");
    fs::write(&master, postern_config::default_master_cf(&o.listen))
        .with_context(|| format!("write {}", master.display()))?;
    make_tree(&dir, &ids)?;
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
        let Ok(Cmd::Instance(o)) = parse(&a) else {
            panic!("not an instance")
        };
        assert_eq!(o.listen, "127.0.0.1:2600");
        let bad: Vec<OsString> = ["init", "x", "--smtp-listen", "nope"]
            .iter()
            .map(OsString::from)
            .collect();
        assert!(parse(&bad).is_err());
        assert!(parse(&[OsString::from("init")]).is_err());
    }

    #[test]
    fn o_settings_replace_or_append() {
        let a: Vec<OsString> = [
            "init",
            "x",
            "-o",
            "mail_owner=pt1",
            "-o",
            "myorigin = example.org",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let Ok(Cmd::Instance(o)) = parse(&a) else {
            panic!("not an instance")
        };
        let ids = Ids {
            root_uid: 0,
            root_gid: 0,
            mail_owner: "pt1".into(),
            mail_owner_uid: 9,
            mail_owner_gid: 9,
            setgid_group: "postdrop".into(),
            setgid_gid: 8,
        };
        let text = main_cf(Path::new("/i"), &ids, &o.set);
        assert_eq!(text.matches("mail_owner = pt1\n").count(), 1, "{text}");
        assert!(text.ends_with("myorigin = example.org\n"), "{text}");
        let bad: Vec<OsString> = ["init", "x", "-o", "no value"]
            .iter()
            .map(OsString::from)
            .collect();
        assert!(parse(&bad).is_err());
        let sys: Vec<OsString> = ["init", "--system", "--config-only"]
            .iter()
            .map(OsString::from)
            .collect();
        let Ok(Cmd::System(s)) = parse(&sys) else {
            panic!("not a system install")
        };
        assert_eq!(s.dir, Path::new("/etc/postern"));
        assert!(s.config_only);
        let both: Vec<OsString> = ["init", "--system", "--force"]
            .iter()
            .map(OsString::from)
            .collect();
        assert!(parse(&both).is_err());
    }
}
