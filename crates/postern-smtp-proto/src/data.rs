//! Message content readers: [`DataReader`] for DATA, [`BdatReader`] for BDAT chunks.
//!
//! Both are sans-I/O: `feed(input, out)` consumes bytes, appends content to `out`
//! (line endings normalised to `LF`, DATA dot-unstuffed) and says whether the
//! message (DATA) or chunk (BDAT) ended and how many bytes it used; the bytes after
//! that belong to the command phase.
//!
//! # Bare newlines (`smtpd_forbid_bare_newline`)
//!
//! Per Postfix's documentation and observed on Postfix 3.7.11:
//!
//! * [`BareNewline::No`]: a bare `LF` ends a line like `CRLF`, and a `.` line ends
//!   DATA whatever its line endings (`\n.\n` ends the message: SMTP smuggling).
//! * [`BareNewline::Normalize`] (`yes` is an alias): a bare `LF` still ends a content
//!   line, but only `CRLF . CRLF` (the `.` line and the line before it both ending in
//!   `CRLF`) ends DATA. A `.` line that does not qualify is dropped, as Postfix drops
//!   it (neither content nor end).
//! * [`BareNewline::Reject`]: as `Normalize`, and the bare `LF` is recorded so that
//!   smtpd answers `550 5.5.2 <myhostname> Error: bare <LF> received` after the
//!   message ends ([`DataError::reply`]).
//!
//! A bare `CR` is content and kept. BDAT is not dot-unstuffed; its `CRLF` becomes
//! `LF` (also across chunk boundaries), and a bare `LF` counts under `Reject`.
//!
//! # Size
//!
//! Content bytes (after normalisation) are counted against `message_size_limit`.
//! Past the limit the reader stops appending to `out` but keeps consuming to the end
//! of the message, so that smtpd can answer `552 5.3.4 Message size exceeds fixed
//! limit` in step with the client. `out` never grows by more than the input given.

use crate::reply::Reply;

/// `smtpd_forbid_bare_newline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BareNewline {
    /// Accept bare LF everywhere (pre-3.9 default; vulnerable to smuggling).
    No,
    /// Require CRLF.CRLF to end DATA; treat other bare LFs as CRLF (3.9+ default).
    #[default]
    Normalize,
    /// Require CRLF.CRLF and reject a message containing a bare LF.
    Reject,
}

/// Knobs for the content readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataConfig {
    /// Bare-newline policy.
    pub bare_newline: BareNewline,
    /// `message_size_limit` in bytes; 0 means unlimited (as in Postfix).
    pub message_size_limit: u64,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            bare_newline: BareNewline::Normalize,
            message_size_limit: 10_240_000,
        }
    }
}

/// What went wrong with a message, known once it has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// Content exceeded `message_size_limit`.
    #[error("message size exceeds fixed limit")]
    TooBig,
    /// A bare LF was seen under [`BareNewline::Reject`].
    #[error("bare <LF> received")]
    BareLf,
}

impl DataError {
    /// Postfix's reply. `reject_code` is `smtpd_forbid_bare_newline_reject_code`
    /// (default 550), `myhostname` is put in the bare-LF text as Postfix does.
    pub fn reply(&self, myhostname: &str, reject_code: u16) -> Reply {
        match self {
            DataError::TooBig => {
                Reply::new(552, Some((5, 3, 4)), "Message size exceeds fixed limit")
            }
            DataError::BareLf => {
                let class = u8::try_from(reject_code / 100).unwrap_or(5);
                Reply::new(
                    reject_code,
                    Some((class, 5, 2)),
                    format!("{myhostname} Error: bare <LF> received"),
                )
            }
        }
    }
}

/// Result of one `feed` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// All input consumed; more is needed.
    NeedMore,
    /// The message (DATA) or chunk (BDAT) ended after `consumed` bytes.
    Done {
        /// Bytes of this call's input that belonged to the content.
        consumed: usize,
    },
}

/// Size and bare-LF bookkeeping shared by both readers.
#[derive(Debug, Clone)]
struct Tally {
    cfg: DataConfig,
    bytes: u64,
    too_big: bool,
    bare_lf: bool,
}

impl Tally {
    fn new(cfg: DataConfig) -> Tally {
        Tally {
            cfg,
            bytes: 0,
            too_big: false,
            bare_lf: false,
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        let before = self.bytes;
        self.bytes = self.bytes.saturating_add(bytes.len() as u64);
        if self.too_big {
            return;
        }
        let limit = self.cfg.message_size_limit;
        if limit != 0 && self.bytes > limit {
            // Keep exactly the bytes below the limit, however the input was chunked.
            let room = limit.saturating_sub(before) as usize;
            out.extend_from_slice(&bytes[..room.min(bytes.len())]);
            self.too_big = true;
            return;
        }
        out.extend_from_slice(bytes);
    }

    fn saw_bare_lf(&mut self) {
        if self.cfg.bare_newline == BareNewline::Reject {
            self.bare_lf = true;
        }
    }

    fn result(&self) -> Result<u64, DataError> {
        match (self.too_big, self.bare_lf) {
            (true, _) => Err(DataError::TooBig),
            (_, true) => Err(DataError::BareLf),
            _ => Ok(self.bytes),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LineStart,
    Dot,
    DotCr,
    Mid,
    MidCr,
    Done,
}

/// Incremental DATA reader.
#[derive(Debug, Clone)]
pub struct DataReader {
    tally: Tally,
    state: State,
    prev_crlf: bool,
}

impl DataReader {
    /// A reader for one message, started right after the `354` reply.
    pub fn new(cfg: DataConfig) -> DataReader {
        DataReader {
            tally: Tally::new(cfg),
            state: State::LineStart,
            prev_crlf: true,
        }
    }

    /// Consume `input`, appending content to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Feed {
        let mut i = 0;
        while i < input.len() {
            // Fast path: inside a line (or at the start of one that does not begin
            // with a dot) every byte up to the next CR or LF is plain content.
            let plain =
                self.state == State::Mid || (self.state == State::LineStart && input[i] != b'.');
            if plain {
                let end = memchr::memchr2(b'\r', b'\n', &input[i..]).map_or(input.len(), |p| i + p);
                if end > i {
                    self.tally.emit(out, &input[i..end]);
                    self.state = State::Mid;
                    i = end;
                    continue;
                }
            }
            self.step(input[i], out);
            i += 1;
            if self.state == State::Done {
                return Feed::Done { consumed: i };
            }
        }
        Feed::NeedMore
    }

    /// True once the end-of-data line was consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Content size so far, or the problem to report once done.
    pub fn result(&self) -> Result<u64, DataError> {
        self.tally.result()
    }

    fn strict(&self) -> bool {
        self.tally.cfg.bare_newline != BareNewline::No
    }

    fn step(&mut self, b: u8, out: &mut Vec<u8>) {
        self.state = match (self.state, b) {
            (State::Done, _) => State::Done,
            (State::LineStart, b'.') => State::Dot,
            (State::LineStart | State::Mid, b'\r') => State::MidCr,
            (State::LineStart | State::Mid, b'\n') => self.bare_lf_line_end(out),
            (State::LineStart | State::Mid, _) => self.emit(out, &[b]),
            (State::Dot, b'\r') => State::DotCr,
            (State::Dot, b'\n') => {
                self.tally.saw_bare_lf();
                self.prev_crlf = false;
                if self.strict() {
                    State::LineStart
                } else {
                    State::Done
                }
            }
            // A stuffed dot: drop it, keep the rest of the line.
            (State::Dot, _) => self.emit(out, &[b]),
            (State::DotCr, b'\n') => {
                let end = !self.strict() || self.prev_crlf;
                self.prev_crlf = true;
                if end { State::Done } else { State::LineStart }
            }
            (State::DotCr, _) => {
                self.tally.emit(out, b"\r");
                self.state = State::Mid;
                return self.step(b, out);
            }
            (State::MidCr, b'\n') => {
                self.prev_crlf = true;
                self.emit(out, b"\n");
                State::LineStart
            }
            (State::MidCr, b'\r') => self.emit_keep(out, b"\r", State::MidCr),
            (State::MidCr, _) => {
                self.tally.emit(out, b"\r");
                self.emit(out, &[b])
            }
        };
    }

    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) -> State {
        self.emit_keep(out, bytes, State::Mid)
    }

    fn emit_keep(&mut self, out: &mut Vec<u8>, bytes: &[u8], next: State) -> State {
        self.tally.emit(out, bytes);
        next
    }

    fn bare_lf_line_end(&mut self, out: &mut Vec<u8>) -> State {
        self.tally.saw_bare_lf();
        self.prev_crlf = false;
        self.tally.emit(out, b"\n");
        State::LineStart
    }
}

/// Incremental BDAT reader for one message (all its chunks).
#[derive(Debug, Clone)]
pub struct BdatReader {
    tally: Tally,
    remaining: u64,
    last: bool,
    pending_cr: bool,
    finished: bool,
}

impl BdatReader {
    /// A reader for one message; call [`BdatReader::start_chunk`] for each BDAT.
    pub fn new(cfg: DataConfig) -> BdatReader {
        BdatReader {
            tally: Tally::new(cfg),
            remaining: 0,
            last: false,
            pending_cr: false,
            finished: false,
        }
    }

    /// Begin a chunk of `size` octets (`last`: BDAT … LAST).
    pub fn start_chunk(&mut self, size: u64, last: bool) {
        self.remaining = size;
        self.last = last;
    }

    /// Consume up to the chunk's remaining octets from `input`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Feed {
        let take = usize::try_from(self.remaining).map_or(input.len(), |r| r.min(input.len()));
        for &b in &input[..take] {
            self.byte(b, out);
        }
        self.remaining -= take as u64;
        if self.remaining > 0 {
            return Feed::NeedMore;
        }
        if self.last {
            self.finish(out);
        }
        Feed::Done { consumed: take }
    }

    /// True once the LAST chunk was fully consumed.
    pub fn is_done(&self) -> bool {
        self.finished
    }

    /// Content size so far, or the problem to report.
    pub fn result(&self) -> Result<u64, DataError> {
        self.tally.result()
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match (std::mem::take(&mut self.pending_cr), b) {
            (true, b'\n') => self.tally.emit(out, b"\n"),
            (true, b'\r') => {
                self.tally.emit(out, b"\r");
                self.pending_cr = true;
            }
            (true, _) => self.tally.emit(out, &[b'\r', b]),
            (false, b'\r') => self.pending_cr = true,
            (false, b'\n') => {
                self.tally.saw_bare_lf();
                self.tally.emit(out, b"\n");
            }
            (false, _) => self.tally.emit(out, &[b]),
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            self.tally.emit(out, b"\r");
        }
        self.finished = true;
    }
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
