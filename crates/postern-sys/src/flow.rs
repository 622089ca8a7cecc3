//! The flow-control pipe (Postfix's `mail_flow`, `in_flow_delay`).
//!
//! master creates one pipe and every daemon inherits it: the read end at
//! [`FLOW_READ_FD`], the write end at [`FLOW_WRITE_FD`]. The bytes in the pipe
//! are tokens. qmgr puts one back for each message it moves from `incoming/`
//! into the active queue, and tops the pipe up to its process limit whenever
//! it has caught up with `incoming/`; cleanup takes one per message and, when
//! there is none, waits for one at most `in_flow_delay`. Mail then enters no
//! faster than qmgr takes it in, and never stops entering: with qmgr down,
//! each message waits `in_flow_delay` once.
//!
//! Both ends are non-blocking (a full pipe drops surplus tokens, an empty one
//! is waited for with `poll`).
//!
//! # Security
//! Only descriptors master placed are used: an inherited descriptor must be
//! a FIFO, else flow control is off in that process. One `unsafe` call
//! (`ioctl(FIONREAD)`) counts the tokens.

use crate::{Result, SysError};
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// Descriptor of the inherited read end.
pub const FLOW_READ_FD: RawFd = 5;
/// Descriptor of the inherited write end.
pub const FLOW_WRITE_FD: RawFd = 6;

/// The two ends of the flow pipe.
#[derive(Debug)]
pub struct Flow {
    read: OwnedFd,
    write: OwnedFd,
}

/// What [`Flow::take`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// A token was there.
    AtOnce,
    /// A token came after this wait.
    After(Duration),
    /// None came within the limit: go on anyway.
    TimedOut,
}

fn is_fifo(fd: &OwnedFd) -> bool {
    nix::sys::stat::fstat(fd.as_fd())
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO)
        .unwrap_or(false)
}

impl Flow {
    /// A new pipe (master), both ends non-blocking and close-on-exec.
    pub fn new() -> Result<Flow> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(|e| SysError::errno("pipe2", "flow pipe", e))?;
        Ok(Flow { read, write })
    }

    /// The pipe master placed at [`FLOW_READ_FD`] and [`FLOW_WRITE_FD`];
    /// `None` when they are not there (flow control off).
    pub fn inherited() -> Option<Flow> {
        let read = crate::fd::take_inherited(FLOW_READ_FD).ok()?;
        let write = crate::fd::take_inherited(FLOW_WRITE_FD).ok()?;
        (is_fifo(&read) && is_fifo(&write)).then_some(Flow { read, write })
    }

    /// The read and write ends (for [`crate::fd::place_fds`]).
    pub fn ends(&self) -> (&OwnedFd, &OwnedFd) {
        (&self.read, &self.write)
    }

    /// Tokens in the pipe now.
    pub fn count(&self) -> Result<usize> {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD on an open pipe descriptor we own writes one c_int
        // through the pointer, which points at a live local of that type.
        let rc = unsafe { libc::ioctl(self.read.as_raw_fd(), libc::FIONREAD, &mut n) };
        if rc < 0 {
            return Err(SysError::new(
                "ioctl(FIONREAD)",
                "flow pipe",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(n.max(0) as usize)
    }

    /// Adds up to `n` tokens; returns how many fit.
    pub fn put(&self, n: usize) -> Result<usize> {
        let buf = [0u8; 512];
        let mut done = 0;
        while done < n {
            match nix::unistd::write(&self.write, &buf[..(n - done).min(buf.len())]) {
                Ok(w) => done += w,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(SysError::errno("write", "flow pipe", e)),
            }
        }
        Ok(done)
    }

    /// Removes up to `n` tokens without waiting; returns how many.
    pub fn get(&self, n: usize) -> Result<usize> {
        let mut buf = [0u8; 512];
        let mut done = 0;
        while done < n {
            let want = (n - done).min(buf.len());
            match nix::unistd::read(&self.read, &mut buf[..want]) {
                Ok(0) => break,
                Ok(r) => done += r,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(SysError::errno("read", "flow pipe", e)),
            }
        }
        Ok(done)
    }

    /// Takes one token, waiting for it at most `limit`.
    pub fn take(&self, limit: Duration) -> Result<Taken> {
        if self.get(1)? == 1 {
            return Ok(Taken::AtOnce);
        }
        let start = Instant::now();
        loop {
            let left = limit.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Ok(Taken::TimedOut);
            }
            let ms = PollTimeout::try_from(left.as_millis().clamp(1, 60_000) as i32)
                .unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.read.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(SysError::errno("poll", "flow pipe", e)),
            }
            // Other cleanups compete for the same token: try, then wait again.
            if self.get(1)? == 1 {
                return Ok(Taken::After(start.elapsed()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_and_out() {
        let f = Flow::new().unwrap();
        assert_eq!(f.count().unwrap(), 0);
        assert_eq!(f.put(3).unwrap(), 3);
        assert_eq!(f.count().unwrap(), 3);
        assert_eq!(f.take(Duration::from_secs(1)).unwrap(), Taken::AtOnce);
        assert_eq!(f.get(5).unwrap(), 2);
        assert_eq!(
            f.take(Duration::from_millis(20)).unwrap(),
            Taken::TimedOut,
            "an empty pipe never blocks longer than the limit"
        );
        // A full pipe drops the surplus instead of blocking.
        let n = f.put(1 << 20).unwrap();
        assert!(n > 0 && n < 1 << 20);
        assert_eq!(f.count().unwrap(), n);
    }
}
