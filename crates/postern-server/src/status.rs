//! Child → master status messages on the service's status pipe.
//!
//! Each message is 12 bytes (pid, generation, status; little-endian u32s),
//! below `PIPE_BUF`, so writes by concurrent children never interleave.

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
