//! Child → master status messages on the service's status pipe.
//!
//! Each message is 12 bytes (pid, generation, status; little-endian u32s),
//! below `PIPE_BUF`, so writes by concurrent children never interleave.
//!
//! master counts a process as having served once it reported [`BUSY`]
//! (Postfix's use count): only a process that dies before that is a "bad
//! command startup" that throttles the service. A daemon that serves without
//! ever being busy for master (an event server below its connection limit,
//! qmgr) reports [`BUSY`] and [`AVAILABLE`] together with [`served`].

/// The child is ready for a new client.
pub const AVAILABLE: u32 = 1;
/// The child took a client.
pub const BUSY: u32 = 0;
/// Size of one message.
pub const MSG_LEN: usize = 12;

/// Encodes a status message.
pub fn encode(pid: u32, generation: u32, status: u32) -> [u8; MSG_LEN] {
    let mut b = [0u8; MSG_LEN];
    b[..4].copy_from_slice(&pid.to_le_bytes());
    b[4..8].copy_from_slice(&generation.to_le_bytes());
    b[8..].copy_from_slice(&status.to_le_bytes());
    b
}

/// Decodes a status message: (pid, generation, status).
pub fn decode(b: &[u8; MSG_LEN]) -> (u32, u32, u32) {
    let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (w(0), w(4), w(8))
}

/// A [`BUSY`] and an [`AVAILABLE`] message in one buffer, written with one
/// `write(2)` (24 bytes, atomic on a pipe): "took a client, still available".
pub fn served_pair(pid: u32, generation: u32) -> [u8; 2 * MSG_LEN] {
    let mut b = [0u8; 2 * MSG_LEN];
    b[..MSG_LEN].copy_from_slice(&encode(pid, generation, BUSY));
    b[MSG_LEN..].copy_from_slice(&encode(pid, generation, AVAILABLE));
    b
}

/// Tells master through the status pipe `pipe` that this process has served
/// (see [`served_pair`]). A failed write is returned: master is gone.
pub fn served(pipe: impl std::os::fd::AsFd, generation: u32) -> std::io::Result<()> {
    let msg = served_pair(std::process::id(), generation);
    match nix::unistd::write(pipe, &msg) {
        Ok(n) if n == msg.len() => Ok(()),
        Ok(_) => Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_is_busy_then_available() {
        let b = served_pair(7, 3);
        let (first, second) = b.split_at(MSG_LEN);
        assert_eq!(decode(first.try_into().unwrap()), (7, 3, BUSY));
        assert_eq!(decode(second.try_into().unwrap()), (7, 3, AVAILABLE));
    }
}
