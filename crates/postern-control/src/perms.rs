//! `postern [-c DIR] set-permissions`, and the owner/mode part of `check` and `start`
//! (Postfix's `postfix set-permissions` and `postfix check` over `postfix-files`).
//!
//! The manifest is `postern_queue::modes`: configuration directory and files, the queue
//! tree, `data_directory`, and the set-gid `postdrop`/`postqueue` copies. Where the copies
//! live depends on the layout: an instance made by `postern init DIR` (its
//! `queue_directory` is inside DIR) keeps them in `DIR/bin`; a system layout (the
//! package: `/etc/postern`, `/var/spool/postern`) in `daemon_directory`. A non-root
//! instance (DIR belongs to `mail_owner`, an ordinary user) has no set-gid copies and
//! the user stands for root.
//!
//! `set-permissions` creates what is missing and repairs owners and modes, printing one
//! line per change; `check` prints one line per problem (a wrong owner, group or mode, a
//! missing entry, a set-gid copy that differs from the running executable, a foreign-owned
//! or group/world-writable file inside the queue), each ending with the command that
//! fixes it; `start` refuses a missing or wrong queue directory the same way.
//!
//! # Security
//! set-permissions changes owners and so runs only as root; it never follows a symbolic
//! link and never deletes anything (see `postern_queue::modes::repair`).
//!
//! # Configuration
//! `queue_directory`, `data_directory`, `daemon_directory`, `mail_owner`, `setgid_group`.

use anyhow::{Context as _, Result, bail};
use postern_config::p;
use postern_queue::modes::{self, Fault, Ids, Layout};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The tree of one configuration: where it is and whose it is.
pub(crate) struct Tree {
    layout: Layout,
    ids: Ids,
    /// The fix to print after each problem.
    pub fix: String,
}

/// The command that repairs the tree of `dir` (without `-c` for the compiled-in
/// `/etc/postern`).
pub(crate) fn fix_command(dir: &Path) -> String {
    if dir == Path::new(postern_server::load::DEFAULT_CONFIG_DIR) {
        return "run \"postern set-permissions\"".into();
    }
    format!("run \"postern -c {} set-permissions\"", dir.display())
}

/// Works out the layout and ids of the configuration in `dir`.
pub(crate) fn tree(dir: &Path, cfg: &postern_config::Config) -> Result<Tree> {
    let fix = fix_command(dir);
    let (user, group) = (cfg.str(p::MAIL_OWNER), cfg.str(p::SETGID_GROUP));
    let owner = postern_sys::privs::lookup_user(&user)?.with_context(|| {
        format!(
            "mail_owner {user}: no such account (\"postern init --system\" creates it, or: \
             useradd --system --user-group --no-create-home --home-dir {} --shell /usr/sbin/nologin {user})",
            cfg.str(p::QUEUE_DIRECTORY)
        )
    })?;
    let queue_dir = PathBuf::from(cfg.str(p::QUEUE_DIRECTORY));
    // A non-root instance: its directory belongs to mail_owner, an ordinary user.
    let private = owner.uid != 0 && std::fs::metadata(dir).is_ok_and(|m| m.uid() == owner.uid);
    let ids = if private {
        Ids {
            root_uid: owner.uid,
            root_gid: owner.gid,
            mail_owner: owner.name.clone(),
            mail_owner_uid: owner.uid,
            mail_owner_gid: owner.gid,
            setgid_group: owner.name,
            setgid_gid: owner.gid,
        }
    } else {
        let setgid_gid = postern_sys::privs::lookup_group(&group)?.with_context(|| {
            format!(
                "setgid_group {group}: no such group (create it with \"groupadd --system {group}\")"
            )
        })?;
        Ids {
            root_uid: 0,
            root_gid: 0,
            mail_owner: owner.name,
            mail_owner_uid: owner.uid,
            mail_owner_gid: owner.gid,
            setgid_group: group,
            setgid_gid,
        }
    };
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let setgid_dir = if private {
        None
    } else if canon(&queue_dir).starts_with(canon(dir)) {
        Some(dir.join("bin"))
    } else {
        Some(PathBuf::from(cfg.str(p::DAEMON_DIRECTORY)))
    };
    Ok(Tree {
        layout: Layout {
            config_dir: dir.to_path_buf(),
            queue_dir,
            data_dir: PathBuf::from(cfg.str(p::DATA_DIRECTORY)),
            setgid_dir,
        },
        ids,
        fix,
    })
}

/// Every problem of the tree, one line each (`PATH: FAULT`), manifest first.
pub(crate) fn problems(t: &Tree) -> Vec<String> {
    let exe = std::env::current_exe().ok();
    let mut out: Vec<String> = modes::manifest(&t.layout)
        .iter()
        .flat_map(|e| {
            modes::inspect(e, &t.ids, exe.as_deref())
                .into_iter()
                .map(|f| format!("{}: {f}", e.path.display()))
        })
        .collect();
    out.extend(
        modes::scan_queue(&t.layout, &t.ids)
            .into_iter()
            .map(|(p, f)| format!("{}: {f}", p.display())),
    );
    out
}

/// What stops `start`: a queue directory that is missing, of the wrong type, or has the
/// wrong owner, group or mode.
pub(crate) fn start_problems(t: &Tree) -> Vec<String> {
    modes::queue_faults(&t.layout, &t.ids)
        .into_iter()
        .map(|(p, f)| match f {
            Fault::Missing => format!("missing queue directory {}", p.display()),
            f => format!("queue directory {}: {f}", p.display()),
        })
        .collect()
}

/// `postern set-permissions`.
pub(crate) fn set_permissions(dir: &Path) -> Result<ExitCode> {
    if !postern_sys::privs::is_root() {
        bail!("set-permissions changes owners and modes and must be run by root");
    }
    let cfg = postern_server::load::load_unchecked(dir)?.config;
    let t = tree(dir, &cfg)?;
    let exe = std::env::current_exe().context("find own executable")?;
    let mut failed = 0;
    let mut changed = 0;
    // Every manifest entry, then the queue files (the order Postfix's
    // set-permissions follows: directories before their contents).
    let results = modes::manifest(&t.layout)
        .into_iter()
        .map(|entry| modes::repair(&entry, &t.ids, &exe))
        .chain(std::iter::once_with(|| {
            modes::repair_queue(&t.layout, &t.ids)
        }));
    for result in results {
        match result {
            Ok(lines) => {
                changed += lines.len();
                for l in lines {
                    println!("postern/postern-script: {l}");
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("postern/postern-script: error: {e}");
            }
        }
    }
    if failed > 0 {
        return Ok(ExitCode::from(1));
    }
    if changed == 0 {
        println!("postern/postern-script: owners and modes are as they should be");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> postern_config::Config {
        postern_config::Config::new(postern_config::parse_main_cf(text).unwrap())
    }

    #[test]
    fn layout_of_an_instance_and_of_the_system() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        let me = postern_sys::privs::lookup_uid(postern_sys::privs::real_uid())
            .unwrap()
            .unwrap();
        let group = postern_sys::privs::lookup_uid(0).unwrap().unwrap().name;
        let inst = cfg(&format!(
            "queue_directory = {q}/queue\ndata_directory = {q}/data\nmail_owner = {u}\nsetgid_group = {group}\n",
            q = dir.display(),
            u = me.name
        ));
        let t = tree(dir, &inst).unwrap();
        assert_eq!(t.layout.queue_dir, dir.join("queue"));
        assert_eq!(
            t.fix,
            format!("run \"postern -c {} set-permissions\"", dir.display())
        );
        if me.uid == 0 {
            // root instance: the set-gid copies live in DIR/bin
            assert_eq!(t.layout.setgid_dir, Some(dir.join("bin")));
        } else {
            // the directory is the user's, who is mail_owner: a private instance
            assert_eq!(t.layout.setgid_dir, None);
            assert_eq!(t.ids.root_uid, me.uid);
        }
        let sys = cfg(&format!(
            "queue_directory = /var/spool/x\ndaemon_directory = /usr/lib/x\nmail_owner = {}\nsetgid_group = {group}\n",
            me.name
        ));
        let t = tree(dir, &sys).unwrap();
        if me.uid == 0 {
            assert_eq!(t.layout.setgid_dir, Some(PathBuf::from("/usr/lib/x")));
        }
        let missing = cfg("mail_owner = no_such_account_x9\n");
        let err = tree(dir, &missing).err().unwrap().to_string();
        assert!(
            err.contains("no such account") && err.contains("useradd --system"),
            "{err}"
        );
    }
}
