//! Descriptors passed from master to its children.
//!
//! master starts each daemon with the service's listening socket at
//! [`LISTEN_FD`], the write end of the service's status pipe at
//! [`STATUS_FD`], and the flow-control pipe at 5 and 6 (see [`crate::flow`];
//! Postfix uses fixed descriptors the same way). Nothing else is inherited:
//! every other descriptor is close-on-exec.

use crate::{Result, SysError};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Descriptor of the inherited listening socket.
pub const LISTEN_FD: RawFd = 3;
/// Descriptor of the inherited status pipe (write end).
pub const STATUS_FD: RawFd = 4;

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

/// Arranges for `cmd` to start with `listen` at [`LISTEN_FD`], `status` at
/// [`STATUS_FD`] and the flow pipe's read and write ends at
/// [`crate::flow::FLOW_READ_FD`] and [`crate::flow::FLOW_WRITE_FD`]; a
/// missing one leaves its number closed. The process group is NOT changed
/// (children stay in master's group so that a signal to the group reaches
/// them).
pub fn place_fds(
    cmd: &mut Command,
    listen: Option<&OwnedFd>,
    status: Option<&OwnedFd>,
    flow: Option<(&OwnedFd, &OwnedFd)>,
) {
    let srcs = [
        listen.map(|f| f.as_raw_fd()),
        status.map(|f| f.as_raw_fd()),
        flow.map(|f| f.0.as_raw_fd()),
        flow.map(|f| f.1.as_raw_fd()),
    ];
    let targets = [
        LISTEN_FD,
        STATUS_FD,
        crate::flow::FLOW_READ_FD,
        crate::flow::FLOW_WRITE_FD,
    ];
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (dup, dup2, fcntl, close). It reads arrays
    // of integers captured by value and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // First move every source above the target numbers so that placing
            // one cannot clobber another.
            let mut moved = [-1; 4];
            for (i, src) in srcs.into_iter().enumerate() {
                if let Some(src) = src {
                    let d = libc::fcntl(src, libc::F_DUPFD, 10);
                    if d < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    moved[i] = d;
                }
            }
            for (src, target) in moved.into_iter().zip(targets) {
                if src >= 0 {
                    if libc::dup2(src, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(src);
                } else {
                    libc::close(target);
                }
            }
            Ok(())
        });
    }
}
