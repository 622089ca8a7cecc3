//! Owners and modes of the whole mail system tree (Postfix's `postfix-files`): the
//! manifest that `postern init` creates, `postern set-permissions` repairs and
//! `postern check` verifies.
//!
//! | entry | mode | owner in a root instance |
//! |-------|------|--------------------------|
//! | configuration directory, `main.cf`, `master.cf` | not group/world-writable | root |
//! | `queue_directory` | 0755 | root |
//! | `maildrop` | 0730 | `mail_owner`, group `setgid_group` |
//! | `public` | 2710 | `mail_owner`, group `setgid_group` |
//! | `pid` | 0755 | root |
//! | every other queue directory | 0700 | `mail_owner` |
//! | `data_directory` | 0700 | `mail_owner` |
//! | the set-gid directory (`DIR/bin` of an instance made by `postern init`, else `daemon_directory`) | not group/world-writable | root |
//! | its `postdrop` and `postqueue` (copies of the executable) | 2755 | root, group `setgid_group` |
//!
//! Inside the queue, every file and directory belongs to `mail_owner` (except in
//! `maildrop/`, where postdrop leaves files owned by the submitting user, and `pid/`),
//! and no regular file or directory is writable by group or others.
//!
//! # Security
//! Ordinary users reach `maildrop` (create only) and `public` (connect only) through
//! the set-gid postdrop and postqueue; nothing else under the queue is writable or
//! readable by them. A foreign-owned queue file or a world-writable queue directory
//! lets a local user forge, read or delete mail. Inspection never follows a symbolic
//! link (a link where a directory or file belongs is itself a finding).
//!
//! A non-root instance (everything belongs to the user, nothing is set-gid) uses the
//! same manifest with the user standing for root and `mail_owner` ([`Ids`]), and no
//! set-gid directory.
//!
//! # Configuration
//! The paths come from the caller ([`Layout`]: `config_directory`, `queue_directory`,
//! `data_directory`, where the set-gid copies live); the ids from `mail_owner` and
//! `setgid_group` ([`Ids`]).

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Who owns a queue directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirOwner {
    /// `mail_owner` and its primary group.
    MailOwner,
    /// `mail_owner`, group `setgid_group`.
    SetgidGroup,
    /// root (the master's `pid/`).
    Root,
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
    ("pid", 0o755, DirOwner::Root),
];

/// The names of the two set-gid commands.
pub const SETGID_COMMANDS: [&str; 2] = ["postdrop", "postqueue"];

/// Deepest level below a queue directory that [`scan_queue`] visits (hashed queue
/// directories are one or two levels deep).
const SCAN_DEPTH: usize = 4;

/// Who must own a manifest entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// root (the user, in a non-root instance).
    Root,
    /// `mail_owner`.
    MailOwner,
}

/// Which group a manifest entry must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Not checked.
    Any,
    /// `mail_owner`'s primary group.
    MailOwner,
    /// `setgid_group`.
    SetgidGroup,
}

/// The mode a manifest entry must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exactly these permission bits (including set-gid).
    Exact(u32),
    /// Any mode without the group- and other-write bits (files the administrator edits).
    NotWritable,
}

impl Mode {
    /// Whether `bits` (the low 12 bits of `st_mode`) satisfy this mode.
    pub fn accepts(self, bits: u32) -> bool {
        match self {
            Mode::Exact(m) => bits == m,
            Mode::NotWritable => bits & 0o022 == 0,
        }
    }

    /// The mode to set on an entry whose mode is `bits`.
    pub fn repaired(self, bits: u32) -> u32 {
        match self {
            Mode::Exact(m) => m,
            Mode::NotWritable => bits & !0o022,
        }
    }
}

/// What a manifest entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory (created when missing).
    Dir,
    /// A regular file the administrator provides (never created).
    File,
    /// A set-gid copy of the executable (copied when missing or different).
    SetgidCopy,
}

/// One entry of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Absolute path.
    pub path: PathBuf,
    /// Directory, file or set-gid copy.
    pub kind: Kind,
    /// Required owner.
    pub owner: Owner,
    /// Required group.
    pub group: Group,
    /// Required mode.
    pub mode: Mode,
}

/// Where the tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `config_directory` (main.cf, master.cf).
    pub config_dir: PathBuf,
    /// `queue_directory`.
    pub queue_dir: PathBuf,
    /// `data_directory`.
    pub data_dir: PathBuf,
    /// The directory of the set-gid `postdrop` and `postqueue`: `DIR/bin` for an instance
    /// made by `postern init`, `daemon_directory` for a system layout, `None` for a
    /// non-root instance (which has no set-gid commands).
    pub setgid_dir: Option<PathBuf>,
}

/// The numeric ids the manifest's owners stand for, with names for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// Who [`Owner::Root`] is: uid 0, or the user of a non-root instance.
    pub root_uid: u32,
    /// The group a root-owned entry gets when it is created or given back to root.
    pub root_gid: u32,
    /// `mail_owner`'s name.
    pub mail_owner: String,
    /// `mail_owner`'s uid.
    pub mail_owner_uid: u32,
    /// `mail_owner`'s primary gid.
    pub mail_owner_gid: u32,
    /// `setgid_group`'s name.
    pub setgid_group: String,
    /// `setgid_group`'s gid.
    pub setgid_gid: u32,
}

impl Ids {
    /// The uid an owner stands for.
    pub fn uid(&self, o: Owner) -> u32 {
        match o {
            Owner::Root => self.root_uid,
            Owner::MailOwner => self.mail_owner_uid,
        }
    }

    /// The group an entry of `owner` gets when it is created or chowned and the manifest
    /// does not name one.
    pub fn default_gid(&self, o: Owner) -> u32 {
        match o {
            Owner::Root => self.root_gid,
            Owner::MailOwner => self.mail_owner_gid,
        }
    }

    /// The gid a group stands for (`None`: not checked).
    pub fn gid(&self, g: Group) -> Option<u32> {
        match g {
            Group::Any => None,
            Group::MailOwner => Some(self.mail_owner_gid),
            Group::SetgidGroup => Some(self.setgid_gid),
        }
    }

    fn owner_name(&self, o: Owner) -> String {
        match o {
            Owner::Root if self.root_uid == 0 => "root".into(),
            Owner::Root => format!("uid {}", self.root_uid),
            Owner::MailOwner => format!("mail_owner {}", self.mail_owner),
        }
    }

    fn group_name(&self, g: Group) -> String {
        match g {
            Group::SetgidGroup => format!("setgid_group {}", self.setgid_group),
            _ => format!("{}'s group", self.mail_owner),
        }
    }
}

/// The manifest of `layout`, parents before children.
pub fn manifest(layout: &Layout) -> Vec<Entry> {
    let e = |path: PathBuf, kind, owner, group, mode| Entry {
        path,
        kind,
        owner,
        group,
        mode,
    };
    let c = &layout.config_dir;
    let mut out = vec![
        e(
            c.clone(),
            Kind::Dir,
            Owner::Root,
            Group::Any,
            Mode::NotWritable,
        ),
        e(
            c.join("main.cf"),
            Kind::File,
            Owner::Root,
            Group::Any,
            Mode::NotWritable,
        ),
        e(
            c.join("master.cf"),
            Kind::File,
            Owner::Root,
            Group::Any,
            Mode::NotWritable,
        ),
        e(
            layout.queue_dir.clone(),
            Kind::Dir,
            Owner::Root,
            Group::Any,
            Mode::Exact(0o755),
        ),
    ];
    for (name, mode, who) in QUEUE_DIRS {
        let (owner, group) = match who {
            DirOwner::MailOwner => (Owner::MailOwner, Group::Any),
            DirOwner::SetgidGroup => (Owner::MailOwner, Group::SetgidGroup),
            DirOwner::Root => (Owner::Root, Group::Any),
        };
        out.push(e(
            layout.queue_dir.join(name),
            Kind::Dir,
            owner,
            group,
            Mode::Exact(mode),
        ));
    }
    out.push(e(
        layout.data_dir.clone(),
        Kind::Dir,
        Owner::MailOwner,
        Group::Any,
        Mode::Exact(0o700),
    ));
    if let Some(bin) = &layout.setgid_dir {
        out.push(e(
            bin.clone(),
            Kind::Dir,
            Owner::Root,
            Group::Any,
            Mode::NotWritable,
        ));
        for name in SETGID_COMMANDS {
            out.push(e(
                bin.join(name),
                Kind::SetgidCopy,
                Owner::Root,
                Group::SetgidGroup,
                Mode::Exact(0o2755),
            ));
        }
    }
    out
}

/// What is wrong with a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// It does not exist.
    Missing,
    /// It is not what the manifest says (a directory, a regular file), e.g. a symbolic link.
    WrongType {
        /// What it should be.
        want: &'static str,
    },
    /// Wrong owner.
    Owner {
        /// Current uid.
        got: u32,
        /// Required uid.
        want: u32,
        /// Who that is ("mail_owner postfix").
        who: String,
    },
    /// Wrong group.
    Group {
        /// Current gid.
        got: u32,
        /// Required gid.
        want: u32,
        /// Which group that is.
        which: String,
    },
    /// Wrong mode.
    Mode {
        /// Current permission bits.
        got: u32,
        /// Required.
        want: Mode,
    },
    /// A set-gid copy whose content differs from the running executable.
    Differs,
    /// A file or directory inside the queue (or `data_directory`) not owned by
    /// `mail_owner`.
    Foreign {
        /// Its uid.
        got: u32,
        /// Who should own it.
        who: String,
    },
    /// A regular file or directory writable by group or others.
    Writable {
        /// Its permission bits.
        got: u32,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Missing => write!(f, "missing"),
            Fault::WrongType { want } => write!(f, "not a {want}"),
            Fault::Owner { got, want, who } => {
                write!(f, "owned by uid {got}, expected {who} (uid {want})")
            }
            Fault::Group { got, want, which } => {
                write!(f, "group id {got}, expected {which} (gid {want})")
            }
            Fault::Mode {
                got,
                want: Mode::Exact(m),
            } => write!(f, "mode {got:04o}, expected {m:04o}"),
            Fault::Mode {
                got,
                want: Mode::NotWritable,
            } => write!(f, "writable by group or others (mode {got:04o})"),
            Fault::Differs => write!(f, "differs from the running postern executable"),
            Fault::Foreign { got, who } => {
                write!(f, "owned by uid {got}, not by {who}")
            }
            Fault::Writable { got } => write!(f, "writable by group or others (mode {got:04o})"),
        }
    }
}

/// What differs from `entry`, in the order a repair applies: missing or of the wrong
/// type (nothing else is then reported), owner, group, mode, content (`exe`, the
/// executable a set-gid copy must equal; not compared when `None`).
pub fn inspect(entry: &Entry, ids: &Ids, exe: Option<&Path>) -> Vec<Fault> {
    let md = match std::fs::symlink_metadata(&entry.path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return vec![Fault::Missing],
        // Not reachable by this caller (an ordinary user checking a root instance):
        // nothing to say.
        Err(_) => return Vec::new(),
    };
    let type_ok = match entry.kind {
        Kind::Dir => md.is_dir(),
        Kind::File | Kind::SetgidCopy => md.is_file(),
    };
    if !type_ok {
        let want = match entry.kind {
            Kind::Dir => "directory",
            _ => "regular file",
        };
        return vec![Fault::WrongType { want }];
    }
    let mut out = Vec::new();
    let want_uid = ids.uid(entry.owner);
    if md.uid() != want_uid {
        out.push(Fault::Owner {
            got: md.uid(),
            want: want_uid,
            who: ids.owner_name(entry.owner),
        });
    }
    if let Some(gid) = ids.gid(entry.group)
        && md.gid() != gid
    {
        out.push(Fault::Group {
            got: md.gid(),
            want: gid,
            which: ids.group_name(entry.group),
        });
    }
    let bits = md.mode() & 0o7777;
    if !entry.mode.accepts(bits) {
        out.push(Fault::Mode {
            got: bits,
            want: entry.mode,
        });
    }
    if entry.kind == Kind::SetgidCopy
        && let Some(exe) = exe
        && !same_content(&entry.path, exe)
    {
        out.push(Fault::Differs);
    }
    out
}

/// Whether two files have the same bytes (unreadable counts as different).
pub fn same_content(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (Ok(fa), Ok(fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    match (fa.metadata(), fb.metadata()) {
        (Ok(ma), Ok(mb)) if ma.len() == mb.len() => {}
        _ => return false,
    }
    let (mut ra, mut rb) = (std::io::BufReader::new(fa), std::io::BufReader::new(fb));
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let (Ok(na), Ok(nb)) = (read_full(&mut ra, &mut ba), read_full(&mut rb, &mut bb)) else {
            return false;
        };
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
    fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match r.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }
}

/// Everything inside the queue directories (and `data_directory`) that is dangerous:
/// a file, directory or symbolic link not owned by `mail_owner` (files in `maildrop/`
/// belong to their submitter, `pid/` to root, and the sockets and FIFOs of `public/` and
/// `private/` to master, so none of those is checked for owner), and a regular file
/// or directory writable by group or others; also a regular file in the configuration
/// directory writable by group or others. Symbolic links are not followed; the entries of
/// the manifest itself are not repeated here.
pub fn scan_queue(layout: &Layout, ids: &Ids) -> Vec<(PathBuf, Fault)> {
    let mut out = Vec::new();
    for (name, _, who) in QUEUE_DIRS {
        let check_owner = name != "maildrop" && who != DirOwner::Root;
        scan(
            &layout.queue_dir.join(name),
            ids,
            check_owner,
            SCAN_DEPTH,
            &mut out,
        );
    }
    scan(&layout.data_dir, ids, true, SCAN_DEPTH, &mut out);
    out.extend(config_files(layout));
    out
}

/// Regular files directly in the configuration directory (tables, aliases) that are
/// writable by group or others; main.cf and master.cf are manifest entries.
fn config_files(layout: &Layout) -> Vec<(PathBuf, Fault)> {
    let Ok(entries) = std::fs::read_dir(&layout.config_dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Fault)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !p.ends_with("main.cf") && !p.ends_with("master.cf"))
        .filter_map(|p| {
            let md = std::fs::symlink_metadata(&p).ok()?;
            let bits = md.mode() & 0o7777;
            (md.is_file() && bits & 0o022 != 0).then_some((p, Fault::Writable { got: bits }))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn scan(dir: &Path, ids: &Ids, check_owner: bool, depth: usize, out: &mut Vec<(PathBuf, Fault)>) {
    // Never through a symbolic link (one in place of a queue directory is reported by
    // `inspect`).
    if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let Ok(md) = std::fs::symlink_metadata(&path) else {
            continue; // gone meanwhile (a message moved on)
        };
        // Sockets and FIFOs are master's (made as root); anything else is mail_owner's.
        use std::os::unix::fs::FileTypeExt;
        let endpoint = md.file_type().is_socket() || md.file_type().is_fifo();
        if check_owner && !endpoint && md.uid() != ids.mail_owner_uid {
            out.push((
                path.clone(),
                Fault::Foreign {
                    got: md.uid(),
                    who: ids.owner_name(Owner::MailOwner),
                },
            ));
        }
        let bits = md.mode() & 0o7777;
        if (md.is_file() || md.is_dir()) && bits & 0o022 != 0 {
            out.push((path.clone(), Fault::Writable { got: bits }));
        }
        if md.is_dir() && depth > 1 {
            scan(&path, ids, check_owner, depth - 1, out);
        }
    }
}

/// Owners and modes of the queue directories only (for `postern start`): what differs
/// under `queue_dir` from the manifest, as (path, fault).
pub fn queue_faults(layout: &Layout, ids: &Ids) -> Vec<(PathBuf, Fault)> {
    manifest(layout)
        .into_iter()
        .filter(|e| e.path.starts_with(&layout.queue_dir))
        .flat_map(|e| {
            inspect(&e, ids, None)
                .into_iter()
                .map(move |f| (e.path.clone(), f))
        })
        .collect()
}

mod repair;
pub use repair::{RepairError, repair, repair_queue};

#[cfg(test)]
mod tests;
