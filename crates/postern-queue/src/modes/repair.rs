//! Repairs what [`super::inspect`] and [`super::scan_queue`] find (`postern
//! set-permissions`, and `postern init` building a tree).
//!
//! # Security
//! Run by root over directories other accounts own, so nothing here follows a symbolic
//! link: manifest entries are checked with `lstat` and changed with `lchown`, and their
//! parents come first in the manifest (once `queue_directory` is root's and not writable
//! by others, nobody else can swap a queue directory between the check and the change).
//! Inside the queue directories, which `mail_owner` can write, every file is reached by
//! descriptor, one `O_NOFOLLOW` name at a time, and changed with `fchown`/`fchmod`. A
//! set-gid copy is written under a temporary name, given its owner and mode, then renamed
//! into place, so no half-written or wrongly-owned set-gid file ever has the final name.
//! Nothing is ever deleted: a symbolic link or other object where a directory or the
//! configuration belongs is an error for the administrator.
//!
//! # Configuration
//! None: the caller gives the manifest entry, the ids and the executable to copy.

use super::{Entry, Fault, Ids, Kind, Layout, QUEUE_DIRS, SCAN_DEPTH, inspect};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A repair that could not be made.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RepairError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// Its object.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error(transparent)]
    Sys(#[from] postern_sys::SysError),
    /// Something only the administrator can fix.
    #[error("{path}: {fault}: {what}")]
    Manual {
        /// The object.
        path: String,
        /// What is wrong.
        fault: Fault,
        /// What to do.
        what: &'static str,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RepairError + 'a {
    move |source| RepairError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// Brings `entry` to what the manifest says: creates a missing directory, (re)copies a
/// missing or different set-gid copy from `exe`, then fixes owner, group and mode. Returns
/// one line per change made (`PATH: FAULT: ACTION`), none when all was well.
pub fn repair(entry: &Entry, ids: &Ids, exe: &Path) -> Result<Vec<String>, RepairError> {
    let faults = inspect(entry, ids, Some(exe));
    let mut done = Vec::new();
    let path = &entry.path;
    let uid = ids.uid(entry.owner);
    let gid = ids.gid(entry.group).unwrap_or(ids.default_gid(entry.owner));
    for fault in &faults {
        match (fault, entry.kind) {
            (Fault::Missing, Kind::Dir) => {
                std::fs::create_dir_all(path).map_err(io("mkdir", path))?;
                set_owner_mode(path, uid, gid, entry.mode.repaired(0o755))?;
                done.push(format!("{}: missing: created", path.display()));
                return Ok(done);
            }
            (Fault::Missing | Fault::WrongType { .. } | Fault::Differs, Kind::SetgidCopy) => {
                install_copy(path, exe, uid, gid, entry.mode.repaired(0o755))?;
                done.push(format!(
                    "{}: {fault}: copied from {}",
                    path.display(),
                    exe.display()
                ));
                return Ok(done);
            }
            (Fault::Missing, Kind::File) => {
                return Err(RepairError::Manual {
                    path: path.display().to_string(),
                    fault: fault.clone(),
                    what: "write it (postern init writes a default one)",
                });
            }
            (Fault::WrongType { .. }, _) => {
                return Err(RepairError::Manual {
                    path: path.display().to_string(),
                    fault: fault.clone(),
                    what: "move it away, then run set-permissions again",
                });
            }
            _ => {}
        }
    }
    let owner_wrong = faults
        .iter()
        .any(|f| matches!(f, Fault::Owner { .. } | Fault::Group { .. }));
    let mode_wrong = faults.iter().any(|f| matches!(f, Fault::Mode { .. }));
    if owner_wrong {
        let md = std::fs::symlink_metadata(path).map_err(io("lstat", path))?;
        let keep_gid = match ids.gid(entry.group) {
            Some(g) => g,
            None if md.uid() == uid => md.gid(),
            None => gid,
        };
        std::os::unix::fs::lchown(path, Some(uid), Some(keep_gid)).map_err(io("chown", path))?;
    }
    if owner_wrong || mode_wrong {
        // chown may have cleared the set-gid bit: always set the mode after it.
        let md = std::fs::symlink_metadata(path).map_err(io("lstat", path))?;
        if md.file_type().is_symlink() {
            return Err(RepairError::Manual {
                path: path.display().to_string(),
                fault: Fault::WrongType { want: "directory" },
                what: "move it away, then run set-permissions again",
            });
        }
        let mode = entry.mode.repaired(md.mode() & 0o7777);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(io("chmod", path))?;
    }
    for f in faults {
        let action = match &f {
            Fault::Owner { .. } | Fault::Group { .. } => "chown done",
            Fault::Mode { .. } => "chmod done",
            _ => continue,
        };
        done.push(format!("{}: {f}: {action}", path.display()));
    }
    Ok(done)
}

fn set_owner_mode(path: &Path, uid: u32, gid: u32, mode: u32) -> Result<(), RepairError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io("chown", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io("chmod", path))
}

/// Puts a copy of `exe` at `path` with owner and mode, through a temporary name. A sibling
/// set-gid command that already is a good copy is hard-linked instead of copied again.
fn install_copy(path: &Path, exe: &Path, uid: u32, gid: u32, mode: u32) -> Result<(), RepairError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{}.new", name.unwrap_or_default()));
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove", &tmp)(e)),
    }
    let sibling = super::SETGID_COMMANDS
        .iter()
        .map(|n| dir.join(n))
        .find(|s| s != path && good_copy(s, exe, uid, gid, mode));
    match sibling {
        Some(s) => std::fs::hard_link(&s, &tmp).map_err(io("link", &tmp))?,
        None => {
            std::fs::copy(exe, &tmp).map_err(io("copy", &tmp))?;
            set_owner_mode(&tmp, uid, gid, mode)?;
        }
    }
    std::fs::rename(&tmp, path).map_err(io("rename", path))
}

fn good_copy(p: &Path, exe: &Path, uid: u32, gid: u32, mode: u32) -> bool {
    std::fs::symlink_metadata(p)
        .is_ok_and(|m| m.is_file() && m.uid() == uid && m.gid() == gid && m.mode() & 0o7777 == mode)
        && super::same_content(p, exe)
}

/// Fixes what [`super::scan_queue`] reports: gives every file and directory in the
/// mail_owner queue directories (and `data_directory`) to `mail_owner`, and removes the
/// group- and other-write bits of regular files and directories anywhere in the queue
/// and of regular files in the configuration directory (root's, so by path).
/// Returns one line per change.
pub fn repair_queue(layout: &Layout, ids: &Ids) -> Result<Vec<String>, RepairError> {
    let mut done = Vec::new();
    let mut tops: Vec<(PathBuf, bool)> = QUEUE_DIRS
        .iter()
        .map(|(name, _, who)| {
            let owned = *name != "maildrop" && *who != super::DirOwner::Root;
            (layout.queue_dir.join(name), owned)
        })
        .collect();
    tops.push((layout.data_dir.clone(), true));
    for (top, owned) in tops {
        if !std::fs::symlink_metadata(&top).is_ok_and(|m| m.is_dir()) {
            continue; // a manifest fault, repaired (or refused) there
        }
        let fd = postern_sys::safeopen::open_dir(&top)?;
        walk(&fd, &top, ids, owned, SCAN_DEPTH, &mut done)?;
    }
    for (path, fault) in super::config_files(layout) {
        let md = std::fs::symlink_metadata(&path).map_err(io("lstat", &path))?;
        if md.is_file() {
            let mode = md.mode() & 0o7777 & !0o022;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(io("chmod", &path))?;
            done.push(format!("{}: {fault}: chmod done", path.display()));
        }
    }
    Ok(done)
}

fn walk(
    dir: &OwnedFd,
    path: &Path,
    ids: &Ids,
    owned: bool,
    depth: usize,
    done: &mut Vec<String>,
) -> Result<(), RepairError> {
    use postern_sys::safeopen::{Create, lstat_at, open_at, open_dir_at};
    let mut names: Vec<String> = std::fs::read_dir(path)
        .map_err(io("read", path))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    for name in names {
        let Ok(st) = lstat_at(dir, &name) else {
            continue; // gone meanwhile
        };
        let (is_dir, is_file) = (st.is_dir(), st.is_file());
        if !is_dir && !is_file {
            continue; // sockets, FIFOs (master's), symbolic links: left alone
        }
        let foreign = owned && st.uid != ids.mail_owner_uid;
        let writable = st.mode & 0o022 != 0;
        let fd: OwnedFd = if is_dir {
            open_dir_at(dir, &name)?
        } else if foreign || writable {
            open_at(dir, &name, false, Create::No, 0)?.into()
        } else {
            continue;
        };
        let here = path.join(&name);
        let now = postern_sys::safeopen::stat_fd(&fd)?;
        if !now.same_file(&st) {
            continue; // replaced meanwhile: look at it next time
        }
        if foreign {
            postern_sys::safeopen::chown_fd(&fd, ids.mail_owner_uid, ids.mail_owner_gid)?;
            let fault = Fault::Foreign {
                got: st.uid,
                who: format!("mail_owner {}", ids.mail_owner),
            };
            done.push(format!("{}: {fault}: chown done", here.display()));
        }
        if writable || foreign {
            // chown clears set-id bits; the write bits go in any case.
            let mode = st.mode & 0o7777 & !0o022 & if foreign { !0o6000 } else { 0o7777 };
            std::fs::File::from(fd.try_clone().map_err(io("dup", &here))?)
                .set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(io("chmod", &here))?;
            if writable {
                let fault = Fault::Writable {
                    got: st.mode & 0o7777,
                };
                done.push(format!("{}: {fault}: chmod done", here.display()));
            }
        }
        if is_dir && depth > 1 {
            walk(&fd, &here, ids, owned, depth - 1, done)?;
        }
    }
    Ok(())
}
