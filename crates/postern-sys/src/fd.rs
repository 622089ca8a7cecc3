//! Descriptors passed from master to its children.
//!
//! master starts each daemon with the service's first listening socket at
//! [`LISTEN_FD`], the write end of the service's status pipe at
//! [`STATUS_FD`], the flow-control pipe at 5 and 6 (see [`crate::flow`]), and
//! any further listening sockets (an `inet` service on several addresses) at
//! [`EXTRA_LISTEN_FD`], [`EXTRA_LISTEN_FD`]` + 1`, …; the daemon is told the
//! total count with `-s N` (Postfix uses fixed descriptors and `-s` the same
//! way). Nothing else is inherited: every other descriptor is close-on-exec.
//!
//! [`detach_stdio`] puts /dev/null on descriptors 0, 1 and 2 of a daemon that
//! has left its starter, so that no write of it can fail with EPIPE.

use crate::{Result, SysError};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Descriptor of the inherited listening socket.
pub const LISTEN_FD: RawFd = 3;
/// Descriptor of the inherited status pipe (write end).
pub const STATUS_FD: RawFd = 4;
/// Descriptor of the second inherited listener; the N-th (N >= 2) is at
/// `EXTRA_LISTEN_FD + N - 2`.
pub const EXTRA_LISTEN_FD: RawFd = 7;

/// The descriptor number of listener `index` (0-based) of `count`.
pub fn listen_fd(index: usize) -> RawFd {
    if index == 0 {
        LISTEN_FD
    } else {
        EXTRA_LISTEN_FD + (index as RawFd - 1)
    }
}

/// Takes the `count` inherited listeners (see [`listen_fd`]), the first at
/// [`LISTEN_FD`]. `count` is at least 1.
pub fn take_listeners(count: usize) -> Result<Vec<OwnedFd>> {
    (0..count.max(1))
        .map(|i| take_inherited(listen_fd(i)))
        .collect()
}

/// Marks every open descriptor from `first` up close-on-exec, so nothing
/// master inherited from whoever started it (a shell's or a supervisor's
/// stray pipes) leaks into the daemons (Postfix's master closes them).
/// Descriptors that vanish meanwhile are skipped.
pub fn cloexec_from(first: RawFd) -> Result<()> {
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| SysError::new("opendir", "/proc/self/fd", e))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first)
        .collect();
    for fd in fds {
        // SAFETY: fcntl on a raw descriptor number touches no Rust-owned
        // object; a number that is not open (the directory stream above,
        // closed by now) fails with EBADF, which is ignored.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 {
            continue;
        }
        // SAFETY: as above; only the close-on-exec flag is added.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EBADF) {
                return Err(SysError::new("fcntl(F_SETFD)", fd.to_string(), e));
            }
        }
    }
    Ok(())
}

/// Replaces descriptors 0, 1 and 2 with /dev/null (read for 0, write for 1
/// and 2). A detached master calls it once it is up: its starter has exited,
/// and a write to the starter's pipe would fail.
pub fn detach_stdio() -> Result<()> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    let null_in = open(
        "/dev/null",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SysError::errno("open", "/dev/null", e))?;
    let null_out = open(
        "/dev/null",
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SysError::errno("open", "/dev/null", e))?;
    nix::unistd::dup2_stdin(&null_in).map_err(|e| SysError::errno("dup2", "stdin", e))?;
    nix::unistd::dup2_stdout(&null_out).map_err(|e| SysError::errno("dup2", "stdout", e))?;
    nix::unistd::dup2_stderr(&null_out).map_err(|e| SysError::errno("dup2", "stderr", e))?;
    Ok(())
}

/// Takes ownership of an inherited descriptor after checking that it is open.
pub fn take_inherited(fd: RawFd) -> Result<OwnedFd> {
    nix::fcntl::fcntl(
        // SAFETY: borrowing a raw fd only for the duration of this fcntl probe.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .map_err(|e| SysError::errno("fcntl(F_GETFD)", fd.to_string(), e))?;
    // Mark it close-on-exec so it does not leak into programs we run (pipe, commands).
    nix::fcntl::fcntl(
        // SAFETY: as above; the descriptor was just shown to be open.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| SysError::errno("fcntl(F_SETFD)", fd.to_string(), e))?;
    // SAFETY: the descriptor is open (checked above), was passed to us by master
    // for our exclusive use, and is not owned by any other object in this process.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Arranges for `cmd` to start with `listeners` at [`LISTEN_FD`] and
/// [`EXTRA_LISTEN_FD`]… (see [`listen_fd`]), `status` at [`STATUS_FD`] and
/// the flow pipe's read and write ends at [`crate::flow::FLOW_READ_FD`] and
/// [`crate::flow::FLOW_WRITE_FD`]; a missing one leaves its number closed.
/// The process group is NOT changed (children stay in master's group so that
/// a signal to the group reaches them).
pub fn place_fds(
    cmd: &mut Command,
    listeners: &[&OwnedFd],
    status: Option<&OwnedFd>,
    flow: Option<(&OwnedFd, &OwnedFd)>,
) {
    // (source, target) pairs, source -1 = close the target. Built here, in
    // the parent: the closure below must not allocate.
    let mut pairs: Vec<(RawFd, RawFd)> = vec![
        (listeners.first().map_or(-1, |f| f.as_raw_fd()), LISTEN_FD),
        (status.map_or(-1, |f| f.as_raw_fd()), STATUS_FD),
        (
            flow.map_or(-1, |f| f.0.as_raw_fd()),
            crate::flow::FLOW_READ_FD,
        ),
        (
            flow.map_or(-1, |f| f.1.as_raw_fd()),
            crate::flow::FLOW_WRITE_FD,
        ),
    ];
    for (i, l) in listeners.iter().enumerate().skip(1) {
        pairs.push((l.as_raw_fd(), listen_fd(i)));
    }
    let first_free = EXTRA_LISTEN_FD + listeners.len() as RawFd + 1;
    let mut moved: Vec<RawFd> = vec![-1; pairs.len()];
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (fcntl, dup2, close). It reads and writes
    // vectors allocated in the parent, without growing them.
    unsafe {
        cmd.pre_exec(move || {
            // First move every source above every target number so that
            // placing one cannot clobber another.
            for (i, (src, _)) in pairs.iter().enumerate() {
                moved[i] = -1;
                if *src >= 0 {
                    let d = libc::fcntl(*src, libc::F_DUPFD, first_free);
                    if d < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    moved[i] = d;
                }
            }
            for (src, (_, target)) in moved.iter().zip(pairs.iter()) {
                if *src >= 0 {
                    if libc::dup2(*src, *target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(*src);
                } else {
                    libc::close(*target);
                }
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_land_at_3_and_7() {
        let a = crate::net::listen_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = crate::net::listen_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut cmd = Command::new("/bin/sh");
        // `[` is a builtin: /proc/self is the shell that inherited the fds.
        cmd.args([
            "-c",
            "for f in 3 4 5 6 7 8; do [ -e /proc/self/fd/$f ] && printf '%s ' $f; done; true",
        ]);
        place_fds(&mut cmd, &[&a, &b], Some(&w), None);
        let out = cmd.output().unwrap();
        drop(r);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "3 4 7 ");
    }

    #[test]
    fn listener_numbers() {
        assert_eq!(listen_fd(0), 3);
        assert_eq!(listen_fd(1), 7);
        assert_eq!(listen_fd(3), 9);
    }
}
