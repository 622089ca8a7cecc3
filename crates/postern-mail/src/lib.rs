//! postern-mail — pure message and address helpers (layer 0).
//!
//! * [`header`]: a byte-preserving scanner over the header of a queued message
//!   (field names, raw bytes with continuation lines, unfolded values, where
//!   the body starts).
//! * [`address`]: splitting addresses (local part, domain, extension), quoting a
//!   local part for the external form, and extracting the addr-specs of an
//!   RFC 5322 address list (`sendmail -t`).
//! * [`dsn`]: RFC 3463 status codes leading a text (`5.1.1 Mailbox unavailable`).
//! * [`date`]: RFC 5322 `Date:` values and mbox `From ` line (ctime) dates
//!   from Unix seconds, without a time-zone database.
//!
//! # Security
//! Nothing here does I/O. Every parser takes untrusted bytes, never panics,
//! and does work linear in its input. [`fuzz_all`] drives every parser once
//! with arbitrary input, for fuzz targets.
#![forbid(unsafe_code)]

pub mod address;
pub mod date;
pub mod dsn;
pub mod header;

/// Runs every parser of this crate over `data` (a fuzz entry point): none of
/// them may panic, whatever the bytes.
pub fn fuzz_all(data: &[u8]) {
    header::fuzz(data);
    address::fuzz(data);
    dsn::fuzz(data);
    if data.len() >= 12 {
        let mut secs = [0u8; 8];
        secs.copy_from_slice(&data[..8]);
        let mut off = [0u8; 4];
        off.copy_from_slice(&data[8..12]);
        date::fuzz(i64::from_le_bytes(secs), i32::from_le_bytes(off));
    }
}
