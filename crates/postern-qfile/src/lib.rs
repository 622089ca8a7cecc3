//! postern-qfile — the queue-file record format (layer 0, pure).
//!
//! One format serves the `maildrop` files that postdrop writes and the queue
//! files that cleanup writes into `incoming`. A file is a magic string and a
//! version byte followed by typed records:
//!
//! ```text
//! file    := "POSTERNQ" version(u8 = 1) record* end
//! record  := type(u8) length(LEB128, at most 8 bytes) payload
//! end     := 'E' 0x00
//! ```
//!
//! | type | payload                                                       |
//! |------|---------------------------------------------------------------|
//! | `T`  | arrival time, `seconds.microseconds` in ASCII                  |
//! | `F`  | full name of the sender                                       |
//! | `S`  | envelope sender (empty = null sender)                          |
//! | `A`  | named attribute `name=value`                                   |
//! | `R`  | recipient still to deliver (see [`RecipientRecord`])           |
//! | `D`  | recipient done (an `R` record whose type byte was overwritten)  |
//! | `M`  | the message content, header and body, LF line endings          |
//! | `E`  | end of file (mandatory; empty payload)                         |
//!
//! Type codes are never reused for another meaning; a new field gets a new
//! code or an `A` attribute, and a new layout gets a new version byte.
//! Marking a recipient done overwrites one byte at the offset the decoder
//! reports ([`Recipient::offset`](postern_ipc) is that offset), so a crash
//! between delivery and marking can repeat a delivery but never lose one.
//!
//! # Security
//! Decoding never panics and bounds every length by the caller's limit; a file
//! without the magic, with an unknown version or record type, or without the
//! final `E` record is rejected (the caller moves it to `corrupt/`).
#![forbid(unsafe_code)]

mod record;
pub mod statuslog;

pub use record::{
    MAGIC, QfileError, QueueFile, RecipientRecord, VERSION, encode, mark_done_byte, parse, rec,
};

/// The attributes a maildrop file (a local submission) may carry: what sendmail and
/// `sendmail -bs` (smtpd stand-alone) legitimately set. postdrop keeps only these and
/// pickup refuses a file with any other (a user could otherwise route or re-attribute
/// their own mail).
pub const SUBMISSION_ATTRS: [&str; 4] = ["flags", "envid", "ret", "rewrite_context"];

/// Whether `name=value` may stand in a maildrop file ([`SUBMISSION_ATTRS`], with
/// `rewrite_context` only `local` or `remote` and `flags` a number).
pub fn submission_attr_ok(name: &str, value: &str) -> bool {
    match name {
        "rewrite_context" => value == "local" || value == "remote",
        "flags" => value.parse::<u32>().is_ok(),
        n => SUBMISSION_ATTRS.contains(&n),
    }
}
