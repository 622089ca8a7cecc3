//! postern-ipc — the internal protocol codec (layer 0, pure).
//!
//! Postern's programs talk to each other over local (UNIX-domain) stream sockets
//! with small, named, size-bounded messages, the way Postfix's programs exchange
//! attribute lists (`attr_scan0`/`attr_print0`). The grammar is:
//!
//! ```text
//! frame      := length(u32 big-endian) payload        ; length <= the caller's limit
//! payload    := attribute*
//! attribute  := name-len(u8) name value-len(u32 BE) value
//! ```
//!
//! Every conversation starts with a `proto` attribute naming its protocol and
//! version (see [`proto`]); decoders refuse any other protocol. Names are ASCII,
//! at most 255 bytes; values are bytes. Nested lists (recipients) are encoded as
//! repeated attributes whose value is itself a payload.
//!
//! # Security
//! No process trusts another's input: every length is checked against the frame
//! and against the limit given by the caller, unknown protocols are refused, and
//! decoding never panics (fuzzed by `fuzz/fuzz_targets/ipc_frame.rs`).
//!
//! # Configuration
//! None. Callers pass the frame size limit (usually derived from
//! `message_size_limit`).
#![forbid(unsafe_code)]

mod attrs;
pub mod flush;
pub mod milter;
pub mod proto;
pub mod proxymap;

pub use attrs::{AttrList, FrameError, decode_frame_len, encode_frame};
