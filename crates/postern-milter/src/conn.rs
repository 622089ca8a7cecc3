//! One milter socket: connect with a timeout, write commands, read one packet
//! with a deadline. The only I/O in the crate.
//!
//! Timeouts are deadlines per response (not per `read(2)`), so a milter that
//! trickles one byte at a time still times out; SMFIR_PROGRESS starts a new
//! deadline (the caller reads again).
//!
//! # Security
//! A packet's length is checked ([`crate::codec::check_len`]) before it is read,
//! and its bytes are read in bounded pieces, so a lying length costs no memory.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::codec::{self, CodecError, Command};
use crate::spec::{Endpoint, MilterSpec};

/// Why talking to a milter failed.
#[derive(Debug)]
pub(crate) enum ConnError {
    /// A socket error (a timeout is `TimedOut`).
    Io(io::Error),
    /// The peer closed the connection.
    Eof,
    /// The bytes were not a valid packet.
    Codec(CodecError),
    /// The packet header came but its data did not (EOF or timeout).
    Data(Box<ConnError>),
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Io(e) if is_timeout(e) => f.write_str("Connection timed out"),
            ConnError::Io(e) => f.write_str(&postern_log::plain(&e.to_string())),
            ConnError::Eof => f.write_str("Connection closed by peer"),
            ConnError::Codec(e) => write!(f, "{e}"),
            ConnError::Data(e) => write!(f, "error while reading data: {e}"),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(Some(t)),
            Stream::Tcp(s) => s.set_read_timeout(Some(t)),
        }
    }

    fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(Some(t)),
            Stream::Tcp(s) => s.set_write_timeout(Some(t)),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.write_all(buf),
            Stream::Tcp(s) => s.write_all(buf),
        }
    }

    fn shutdown(&self) {
        // Closing anyway: a peer that is already gone makes this fail, which
        // changes nothing.
        let _closed = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }
}

/// A connected milter socket.
pub(crate) struct Conn {
    stream: Stream,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

/// Smallest timeout given to a socket (0 would mean "block forever").
const MIN_WAIT: Duration = Duration::from_millis(1);

impl Conn {
    /// Connects to the milter's endpoint within `spec.connect_timeout`.
    pub(crate) fn connect(spec: &MilterSpec) -> Result<Conn, ConnError> {
        let endpoint = spec.endpoint().map_err(|e| {
            ConnError::Io(io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
        })?;
        let stream = match endpoint {
            Endpoint::Unix(path) => Stream::Unix(UnixStream::connect(path).map_err(ConnError::Io)?),
            Endpoint::Inet(host, port) => Stream::Tcp(tcp_connect(&host, port, spec)?),
        };
        if let Stream::Tcp(s) = &stream {
            // Small packets in lock-step: don't wait for Nagle.
            s.set_nodelay(true).map_err(ConnError::Io)?;
        }
        Ok(Conn { stream })
    }

    /// Writes commands in one go within `timeout`.
    pub(crate) fn send(&mut self, cmds: &[Command], timeout: Duration) -> Result<(), ConnError> {
        let mut out = Vec::new();
        for c in cmds {
            c.encode(&mut out);
        }
        self.stream
            .set_write_timeout(timeout.max(MIN_WAIT))
            .map_err(ConnError::Io)?;
        self.stream.write_all(&out).map_err(ConnError::Io)
    }

    /// Reads one packet within `timeout`: its code and data.
    pub(crate) fn recv(&mut self, timeout: Duration) -> Result<(u8, Vec<u8>), ConnError> {
        let deadline = Instant::now() + timeout;
        let mut head = [0u8; 4];
        self.read_exact(&mut head, deadline)?;
        let len = codec::check_len(head).map_err(ConnError::Codec)?;
        let mut packet = Vec::with_capacity(len.min(codec::CHUNK + 1));
        let mut piece = [0u8; 16384];
        while packet.len() < len {
            let want = (len - packet.len()).min(piece.len());
            let n = self
                .read_some(&mut piece[..want], deadline)
                .map_err(|e| ConnError::Data(Box::new(e)))?;
            packet.extend_from_slice(&piece[..n]);
        }
        let code = packet.first().copied().ok_or(ConnError::Eof)?;
        packet.remove(0);
        Ok((code, packet))
    }

    /// Tells the peer we are done (no wait for its answer).
    pub(crate) fn shutdown(&self) {
        self.stream.shutdown();
    }

    fn read_exact(&mut self, buf: &mut [u8], deadline: Instant) -> Result<(), ConnError> {
        let mut done = 0;
        while done < buf.len() {
            done += self.read_some(&mut buf[done..], deadline)?;
        }
        Ok(())
    }

    /// One read of at least one byte before the deadline.
    fn read_some(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, ConnError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ConnError::Io(io::ErrorKind::TimedOut.into()));
            }
            self.stream
                .set_read_timeout(left.max(MIN_WAIT))
                .map_err(ConnError::Io)?;
            match self.stream.read(buf) {
                Ok(0) => return Err(ConnError::Eof),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ConnError::Io(e)),
            }
        }
    }
}

/// Connects to each address of `host` in turn within the connect timeout.
fn tcp_connect(host: &str, port: u16, spec: &MilterSpec) -> Result<TcpStream, ConnError> {
    let deadline = Instant::now() + spec.connect_timeout;
    let addrs = (host, port).to_socket_addrs().map_err(ConnError::Io)?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "Host not found");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ConnError::Io(io::ErrorKind::TimedOut.into()));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(ConnError::Io(last))
}
