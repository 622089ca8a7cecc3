//! The client connection: buffered reads with a deadline, batched replies.
//!
//! Replies are collected and written when the client has nothing more
//! pipelined in our input buffer (RFC 2920: the server may batch replies to
//! pipelined commands), or at once when the protocol needs it (greeting, 354,
//! end of session).
//!
//! STARTTLS and wrapper mode replace the stream by a TLS stream
//! ([`Conn::start_tls`]); every byte the client sent before the handshake and
//! we did not yet read as a command is discarded first (RFC 3207 section 4.2,
//! the plaintext-injection class of bug, CVE-2011-0411).

use postern_server::event::Io;
use postern_smtp_proto::{Line, LineReader, Reply};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    /// `smtpd_timeout` expired.
    Timeout,
    /// The client closed the connection.
    Eof,
    /// An I/O error.
    Io(std::io::Error),
}

/// A client connection.
pub struct Conn {
    /// The stream. Only ever reached through `&mut self` (`Mutex::get_mut`,
    /// never locked): the mutex just makes `Conn`, and so `&Session`, `Sync`,
    /// so that futures holding a `&Session` across an await are `Send`.
    io: std::sync::Mutex<Box<dyn Io>>,
    buf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
    timeout: Duration,
    /// `smtpd_per_record_deadline`: the timeout bounds a whole command line,
    /// not each read (a client dripping a byte at a time cannot hold a session).
    per_record: bool,
    /// The chat history for the postmaster's error notice.
    pub transcript: crate::notify::Transcript,
}

const READ_CHUNK: usize = 16 * 1024;

fn io_mut(m: &mut std::sync::Mutex<Box<dyn Io>>) -> &mut Box<dyn Io> {
    // Never locked, so never poisoned; a poisoned value is still usable.
    m.get_mut().unwrap_or_else(|p| p.into_inner())
}

impl Conn {
    /// Wraps a stream.
    pub fn new(io: Box<dyn Io>, timeout: Duration) -> Conn {
        Conn {
            io: std::sync::Mutex::new(io),
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            out: Vec::with_capacity(1024),
            timeout,
            per_record: false,
            transcript: crate::notify::Transcript::default(),
        }
    }

    /// Enables `smtpd_per_request_deadline`.
    pub fn set_per_record_deadline(&mut self, on: bool) {
        self.per_record = on;
    }

    /// Bytes received but not yet consumed (pipelined input).
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Marks `n` pending bytes consumed.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Reads more input (waiting at most `smtpd_timeout`).
    pub async fn fill(&mut self) -> Result<(), ReadError> {
        let t = self.timeout;
        self.fill_within(t).await
    }

    async fn fill_within(&mut self, limit: Duration) -> Result<(), ReadError> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 && self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        // read_buf appends into spare capacity: no zero-filling per read.
        self.buf.reserve(READ_CHUNK);
        let n =
            match tokio::time::timeout(limit, io_mut(&mut self.io).read_buf(&mut self.buf)).await {
                Err(_) => return Err(ReadError::Timeout),
                Ok(Err(e)) => return Err(ReadError::Io(e)),
                Ok(Ok(n)) => n,
            };
        if n == 0 { Err(ReadError::Eof) } else { Ok(()) }
    }

    /// Reads one command line.
    pub async fn read_line(&mut self, lr: &mut LineReader) -> Result<Line, ReadError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            if !self.pending().is_empty() {
                let (used, line) = lr.read_line(self.pending());
                self.consume(used);
                if let Some(line) = line {
                    self.transcript.input(&line.bytes);
                    return Ok(line);
                }
            }
            self.flush().await.map_err(ReadError::Io)?;
            let limit = if self.per_record {
                deadline.saturating_duration_since(tokio::time::Instant::now())
            } else {
                self.timeout
            };
            if limit.is_zero() {
                return Err(ReadError::Timeout);
            }
            self.fill_within(limit).await?;
        }
    }

    /// Switches to TLS: discards unread plaintext, runs the handshake within
    /// `limit`, and carries on over the TLS stream. On failure the connection
    /// is unusable (the caller ends the session).
    pub async fn start_tls(
        &mut self,
        server: &crate::tls::TlsServer,
        limit: Duration,
        client: &str,
    ) -> Result<crate::tls::TlsInfo, crate::tls::HandshakeError> {
        self.buf.clear();
        self.pos = 0;
        self.out.clear();
        let placeholder: Box<dyn Io> =
            Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink()));
        let plain = std::mem::replace(io_mut(&mut self.io), placeholder);
        let (stream, info) = server.accept(plain, limit, client).await?;
        *io_mut(&mut self.io) = Box::new(stream);
        Ok(info)
    }

    /// Queues a reply.
    pub fn reply(&mut self, r: &Reply) {
        self.transcript.output(r);
        self.out.extend_from_slice(r.encode().as_bytes());
    }

    /// Queues raw reply text (already CRLF-terminated).
    pub fn reply_raw(&mut self, text: &str) {
        self.transcript.output_raw(text);
        self.out.extend_from_slice(text.as_bytes());
    }

    /// Writes queued replies.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = tokio::time::timeout(self.timeout, io_mut(&mut self.io).write_all(&self.out)).await;
        self.out.clear();
        match r {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    /// Writes queued replies unless more pipelined commands are waiting.
    pub async fn flush_if_idle(&mut self) -> std::io::Result<()> {
        if self.pending().is_empty() {
            self.flush().await
        } else {
            Ok(())
        }
    }

    /// Flushes and shuts the connection down.
    pub async fn close(&mut self) {
        if let Err(e) = self.flush().await {
            postern_log::info(format!("write error at close: {e}"));
        }
        if let Err(e) = io_mut(&mut self.io).shutdown().await
            && e.kind() != std::io::ErrorKind::NotConnected
        {
            postern_log::info(format!("shutdown: {e}"));
        }
    }
}
