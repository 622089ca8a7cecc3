//! Owners and modes of the queue directories (Postfix's `postfix-files`).
//!
//! | directory  | mode | owner in a root instance        |
//! |------------|------|---------------------------------|
//! | `maildrop` | 0730 | `mail_owner`, group `setgid_group` |
//! | `public`   | 2710 | `mail_owner`, group `setgid_group` |
//! | every other queue directory | 0700 | `mail_owner`    |
//!
//! `queue_directory` itself is 0755 root. Ordinary users reach `maildrop`
//! (create only) and `public` (connect only) through the set-gid postdrop
//! and postqueue; nothing under the queue is writable or readable by others.
//! A non-root instance uses the same modes with the user as owner and group.
//!
//! `postern init` creates the tree from [`QUEUE_DIRS`]; [`problems`] reports
//! what differs (for `postern check`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Who owns a queue directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirOwner {
    /// `mail_owner` and its primary group.
    MailOwner,
    /// `mail_owner`, group `setgid_group`.
    SetgidGroup,
}

/// Every directory under `queue_directory`, with its mode and owner.
pub const QUEUE_DIRS: [(&str, u32, DirOwner); 14] = [
    ("maildrop", 0o730, DirOwner::SetgidGroup),
    ("public", 0o2710, DirOwner::SetgidGroup),
    ("incoming", 0o700, DirOwner::MailOwner),
    ("active", 0o700, DirOwner::MailOwner),
    ("deferred", 0o700, DirOwner::MailOwner),
    ("hold", 0o700, DirOwner::MailOwner),
    ("corrupt", 0o700, DirOwner::MailOwner),
    ("bounce", 0o700, DirOwner::MailOwner),
    ("defer", 0o700, DirOwner::MailOwner),
    ("trace", 0o700, DirOwner::MailOwner),
    ("flush", 0o700, DirOwner::MailOwner),
    ("saved", 0o700, DirOwner::MailOwner),
    ("private", 0o700, DirOwner::MailOwner),
    ("pid", 0o700, DirOwner::MailOwner),
];

/// What differs from [`QUEUE_DIRS`] under `root` (one line each): a mode, an
/// owner (`mail_owner` uid), a group (`setgid_group` gid for `maildrop` and
/// `public`), and `queue_directory` writable by group or others. A missing
/// directory is not reported here.
pub fn problems(root: &Path, mail_owner: u32, setgid_gid: u32) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(md) = std::fs::metadata(root)
        && md.mode() & 0o022 != 0
    {
        out.push(format!(
            "{} is writable by group or others (mode {:04o})",
            root.display(),
            md.mode() & 0o7777
        ));
    }
    for (name, mode, owner) in QUEUE_DIRS {
        let path = root.join(name);
        let Ok(md) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let got = md.mode() & 0o7777;
        if !md.is_dir() {
            out.push(format!("{} is not a directory", path.display()));
            continue;
        }
        if got != mode {
            out.push(format!(
                "{} has mode {got:04o}, expected {mode:04o}",
                path.display()
            ));
        }
        if md.uid() != mail_owner {
            out.push(format!(
                "{} is owned by uid {}, expected mail_owner ({mail_owner})",
                path.display(),
                md.uid()
            ));
        }
        if owner == DirOwner::SetgidGroup && md.gid() != setgid_gid {
            out.push(format!(
                "{} has group id {}, expected setgid_group ({setgid_gid})",
                path.display(),
                md.gid()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn reports_what_differs() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let md = std::fs::metadata(root).unwrap();
        for (name, mode, _) in QUEUE_DIRS {
            std::fs::create_dir(root.join(name)).unwrap();
            std::fs::set_permissions(root.join(name), std::fs::Permissions::from_mode(mode))
                .unwrap();
        }
        assert!(problems(root, md.uid(), md.gid()).is_empty());
        std::fs::set_permissions(
            root.join("maildrop"),
            std::fs::Permissions::from_mode(0o1733),
        )
        .unwrap();
        let p = problems(root, md.uid(), md.gid());
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("mode 1733, expected 0730"), "{p:?}");
        assert_eq!(
            problems(root, md.uid() + 1, md.gid()).len(),
            QUEUE_DIRS.len() + 1
        );
        assert_eq!(problems(root, md.uid(), md.gid() + 1).len(), 3);
    }
}
