//! Process identity: user lookup, the permanent privilege drop, and temporary
//! effective-id switches.
//!
//! # Security
//! [`drop_to`] runs setgid → setgroups → setuid, checks each call, then
//! verifies that neither the real nor the effective uid can return to root
//! (as Postfix's `set_ugid` does). It must be called before any thread is
//! started: glibc applies set*id to all threads, but only for calls made
//! through it, and we want the simple single-threaded guarantee.
//! [`chroot_jail`] (master.cf's chroot column) runs chroot → chdir("/") and
//! verifies that the new root is the directory it named; it comes before the
//! drop, since only root may chroot.

use crate::{Result, SysError};
use nix::unistd::{Gid, Uid, User};
use std::ffi::CString;

/// An account of the password database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
    /// The GECOS field (full name, comma-separated extras), as text.
    pub gecos: String,
}

impl From<User> for UserInfo {
    fn from(u: User) -> Self {
        UserInfo {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home: u.dir.display().to_string(),
            shell: u.shell.display().to_string(),
            gecos: u.gecos.to_string_lossy().into_owned(),
        }
    }
}

/// Looks up an account by name. `Ok(None)` when there is no such account.
pub fn lookup_user(name: &str) -> Result<Option<UserInfo>> {
    User::from_name(name)
        .map(|u| u.map(UserInfo::from))
        .map_err(|e| SysError::errno("getpwnam", name, e))
}

/// Looks up an account by uid.
pub fn lookup_uid(uid: u32) -> Result<Option<UserInfo>> {
    User::from_uid(Uid::from_raw(uid))
        .map(|u| u.map(UserInfo::from))
        .map_err(|e| SysError::errno("getpwuid", uid.to_string(), e))
}

/// The real user id of this process.
pub fn real_uid() -> u32 {
    Uid::current().as_raw()
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    Uid::effective().as_raw()
}

/// The real group id of this process.
pub fn real_gid() -> u32 {
    Gid::current().as_raw()
}

/// Whether the process runs with root privileges.
pub fn is_root() -> bool {
    Uid::effective().is_root()
}

/// Permanently drops to `uid`/`gid` with `gid` as the only supplementary group.
pub fn drop_to(uid: u32, gid: u32) -> Result<()> {
    let g = Gid::from_raw(gid);
    nix::unistd::setgid(g).map_err(|e| SysError::errno("setgid", gid.to_string(), e))?;
    nix::unistd::setgroups(&[g]).map_err(|e| SysError::errno("setgroups", gid.to_string(), e))?;
    nix::unistd::setuid(Uid::from_raw(uid))
        .map_err(|e| SysError::errno("setuid", uid.to_string(), e))?;
    if uid != 0 && (nix::unistd::setuid(Uid::from_raw(0)).is_ok() || Uid::effective().is_root()) {
        return Err(SysError::new(
            "setuid",
            uid.to_string(),
            std::io::Error::other("privileges could be regained after the drop"),
        ));
    }
    Ok(())
}

/// Confines the process to `dir` (Postfix's chroot column): chroot(dir) then
/// chdir("/"), each checked, then verifies that "/" is now the directory that
/// was named (same device and inode as `dir` before the call), so that a path
/// swapped under us or a no-op chroot cannot pass for a jail. Needs root.
pub fn chroot_jail(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let shown = dir.display().to_string();
    let before = std::fs::metadata(dir).map_err(|e| SysError::new("stat", &shown, e))?;
    nix::unistd::chroot(dir).map_err(|e| SysError::errno("chroot", &shown, e))?;
    nix::unistd::chdir("/").map_err(|e| SysError::errno("chdir", "/", e))?;
    let root = std::fs::metadata("/").map_err(|e| SysError::new("stat", "/", e))?;
    if (root.dev(), root.ino()) != (before.dev(), before.ino()) {
        return Err(SysError::new(
            "chroot",
            shown,
            std::io::Error::other("the new root directory is not the jail"),
        ));
    }
    Ok(())
}

/// Temporarily takes on a user's effective identity (uid, gid and the user's
/// supplementary groups) and restores root's when dropped. Only valid in a
/// root process; a non-root process gets a no-op guard.
pub struct EffectiveIds {
    active: bool,
}

impl EffectiveIds {
    /// Switches the effective ids to `user`.
    pub fn switch(user: &UserInfo) -> Result<EffectiveIds> {
        if !is_root() {
            return Ok(EffectiveIds { active: false });
        }
        let cname = CString::new(user.name.clone()).map_err(|_| {
            SysError::new(
                "initgroups",
                &user.name,
                std::io::Error::other("NUL in name"),
            )
        })?;
        nix::unistd::initgroups(&cname, Gid::from_raw(user.gid))
            .map_err(|e| SysError::errno("initgroups", &user.name, e))?;
        nix::unistd::setegid(Gid::from_raw(user.gid))
            .map_err(|e| SysError::errno("setegid", user.gid.to_string(), e))?;
        nix::unistd::seteuid(Uid::from_raw(user.uid))
            .map_err(|e| SysError::errno("seteuid", user.uid.to_string(), e))?;
        Ok(EffectiveIds { active: true })
    }

    /// Switches the effective ids to a numeric `uid`/`gid` that need not be in
    /// the password database (virtual mailboxes), with `gid` as the only
    /// supplementary group, as Postfix's `set_eugid` does. A non-root process
    /// gets a no-op guard.
    pub fn switch_ids(uid: u32, gid: u32) -> Result<EffectiveIds> {
        if !is_root() {
            return Ok(EffectiveIds { active: false });
        }
        let g = Gid::from_raw(gid);
        nix::unistd::setgroups(&[g])
            .map_err(|e| SysError::errno("setgroups", gid.to_string(), e))?;
        let guard = EffectiveIds { active: true };
        nix::unistd::setegid(g).map_err(|e| SysError::errno("setegid", gid.to_string(), e))?;
        nix::unistd::seteuid(Uid::from_raw(uid))
            .map_err(|e| SysError::errno("seteuid", uid.to_string(), e))?;
        Ok(guard)
    }

    fn restore(&mut self) -> Result<()> {
        if !self.active {
            return Ok(());
        }
        self.active = false;
        nix::unistd::seteuid(Uid::from_raw(0)).map_err(|e| SysError::errno("seteuid", "0", e))?;
        nix::unistd::setegid(Gid::from_raw(0)).map_err(|e| SysError::errno("setegid", "0", e))?;
        nix::unistd::setgroups(&[Gid::from_raw(0)])
            .map_err(|e| SysError::errno("setgroups", "0", e))
    }

    /// Restores root's ids, reporting failure.
    pub fn finish(mut self) -> Result<()> {
        self.restore()
    }
}

impl Drop for EffectiveIds {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            // Continuing with a user's identity would be a privilege bug: stop.
            // (stderr may be closed: a failed write must not panic here)
            let line = format!("fatal: cannot restore privileges: {e}\n");
            if std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes()).is_err() {
                // nowhere to report it; abort anyway
            }
            std::process::abort();
        }
    }
}

/// Asks the kernel to send `SIGTERM` to this process when its parent (master) dies.
pub fn die_with_parent() -> Result<()> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
        .map_err(|e| SysError::errno("prctl", "PR_SET_PDEATHSIG", e))
}

/// Sends a signal to a process; `Ok(false)` when the process does not exist.
pub fn signal(pid: i32, sig: nix::sys::signal::Signal) -> Result<bool> {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(e) => Err(SysError::errno("kill", pid.to_string(), e)),
    }
}

/// Sets the file-creation mask and returns the previous one.
pub fn set_umask(mask: u32) -> u32 {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask)).bits()
}

/// The host name from the kernel.
pub fn hostname() -> Result<String> {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .map_err(|e| SysError::errno("gethostname", "", e))
}

/// Changes a path's owner.
pub fn chown(path: &std::path::Path, uid: u32, gid: u32) -> Result<()> {
    nix::unistd::chown(path, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .map_err(|e| SysError::errno("chown", path.display().to_string(), e))
}

/// Looks up a group id by name.
pub fn lookup_group(name: &str) -> Result<Option<u32>> {
    nix::unistd::Group::from_name(name)
        .map(|g| g.map(|g| g.gid.as_raw()))
        .map_err(|e| SysError::errno("getgrnam", name, e))
}

/// The effective group id of this process.
pub fn effective_gid() -> u32 {
    Gid::effective().as_raw()
}

/// Whether this process runs a set-uid or set-gid executable: its real and
/// effective ids differ.
pub fn is_set_id() -> bool {
    Uid::current() != Uid::effective() || Gid::current() != Gid::effective()
}

/// Start-up hygiene of a set-gid program (Postfix's postdrop and postqueue):
/// descriptors 0, 1 and 2 are open (on `/dev/null` when the caller closed
/// them, so that nothing we open later lands there), every other inherited
/// descriptor is closed, the umask is 022, and the environment holds only the
/// variables `keep` accepts plus `set`.
///
/// # Security
/// Must run first in `main`, while the process has one thread and no open
/// file of its own: it closes descriptors it does not own and rewrites the
/// environment.
pub fn setgid_hygiene(keep: &dyn Fn(&str) -> bool, set: &[(&str, &str)]) -> Result<()> {
    for fd in 0..3 {
        // SAFETY: a probe of the descriptor number; nothing is taken over.
        let open = nix::sys::stat::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) });
        if open.is_err() {
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map_err(|e| SysError::new("open", "/dev/null", e))?;
            let got = std::os::fd::IntoRawFd::into_raw_fd(null);
            if got != fd {
                return Err(SysError::new(
                    "open",
                    "/dev/null",
                    std::io::Error::other(format!("got descriptor {got}, wanted {fd}")),
                ));
            }
        }
    }
    // SAFETY: called at the very start of main (see above): no Rust object
    // owns a descriptor >= 3 yet, so closing them cannot invalidate one.
    if unsafe { libc::close_range(3, u32::MAX, 0) } != 0 {
        return Err(SysError::new(
            "close_range",
            "3..",
            std::io::Error::last_os_error(),
        ));
    }
    set_umask(0o022);
    let drop: Vec<std::ffi::OsString> = std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| !k.to_str().is_some_and(keep))
        .collect();
    for k in drop {
        // SAFETY: the process is still single-threaded (see above), so no
        // other thread reads the environment while it changes.
        unsafe { std::env::remove_var(&k) };
    }
    for (k, v) in set {
        // SAFETY: as above.
        unsafe { std::env::set_var(k, v) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Runs in a child process (see `chroot_confines_to_the_directory`): chroots to
    /// `POSTERN_TEST_JAIL` and checks that `/` is that directory.
    #[test]
    #[ignore = "run by chroot_confines_to_the_directory in a child process"]
    fn chroot_child() {
        let dir = std::env::var("POSTERN_TEST_JAIL").unwrap();
        chroot_jail(Path::new(&dir)).unwrap();
        assert!(Path::new("/inside-the-jail").exists());
        assert_eq!(std::env::current_dir().unwrap(), Path::new("/"));
    }

    #[test]
    fn chroot_confines_to_the_directory() {
        let jail = tempfile::tempdir().unwrap();
        std::fs::write(jail.path().join("inside-the-jail"), "").unwrap();
        if !is_root() {
            // Only root may chroot: the call fails with the operation and path named.
            let e = chroot_jail(jail.path()).unwrap_err();
            assert_eq!(
                (e.op, e.what),
                ("chroot", jail.path().display().to_string())
            );
            return;
        }
        let st = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "privs::tests::chroot_child",
                "--ignored",
                "--quiet",
            ])
            .env("POSTERN_TEST_JAIL", jail.path())
            .output()
            .unwrap();
        assert!(st.status.success(), "{st:?}");
        assert!(
            String::from_utf8_lossy(&st.stdout).contains("1 passed"),
            "{st:?}"
        );
        let e = chroot_jail(&jail.path().join("missing")).unwrap_err();
        assert_eq!(e.op, "stat");
    }
}
