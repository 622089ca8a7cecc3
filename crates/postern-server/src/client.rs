//! The client side: triggers and request/reply exchanges with services.
//!
//! Services listen on `$queue_directory/{public,private}/NAME`. A request is
//! one frame each way (see `postern-ipc`); every read and write has a
//! deadline (`ipc_timeout`) and every frame a size limit. One codec reads
//! frames for the blocking and the async callers and for the servers
//! (`read_incoming`, [`read_frame`], [`read_frame_async`]): the header and
//! payload decoding are shared, only the reads differ.

use postern_config::{Config, p};
use postern_ipc::{AttrList, FrameError, decode_frame_len, encode_frame};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Errors talking to a service.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Could not connect.
    #[error("connect to {path}: {source}")]
    Connect {
        /// Socket path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Read or write failed (including timeouts and a peer that hung up).
    #[error("{service} service: {source}")]
    Io {
        /// Service name.
        service: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The peer sent something malformed.
    #[error("{service} service: bad reply: {source}")]
    Protocol {
        /// Service name.
        service: String,
        /// Cause.
        #[source]
        source: FrameError,
    },
}

/// The socket path of a service (`class` is `public` or `private`).
pub fn socket_path(cfg: &Config, class: &str, service: &str) -> PathBuf {
    PathBuf::from(cfg.str(p::QUEUE_DIRECTORY))
        .join(class)
        .join(service)
}

/// Connects to a service with read/write deadlines.
pub fn connect(
    cfg: &Config,
    class: &str,
    service: &str,
    timeout: Duration,
) -> Result<UnixStream, ClientError> {
    let path = socket_path(cfg, class, service);
    let s = UnixStream::connect(&path).map_err(|source| ClientError::Connect {
        path: path.display().to_string(),
        source,
    })?;
    let io = |source| ClientError::Io {
        service: service.to_string(),
        source,
    };
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout))
        .map_err(|source| ClientError::Io {
            service: service.to_string(),
            source,
        })?;
    Ok(s)
}

/// Sends trigger bytes to a trigger service (pickup, qmgr) and hangs up.
pub fn trigger(cfg: &Config, class: &str, service: &str, bytes: &[u8]) -> Result<(), ClientError> {
    let timeout = cfg.time(p::TRIGGER_TIMEOUT).max(Duration::from_secs(1));
    let mut s = connect(cfg, class, service, timeout)?;
    s.write_all(bytes).map_err(|source| ClientError::Io {
        service: service.to_string(),
        source,
    })
}

/// How a read of one frame ended: the codec shared by the blocking readers
/// ([`read_frame`]), the async ones ([`read_frame_async`]) and the framed-request
/// server (`crate::framed`), which reads master's short wake-ups too.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A clean end of stream before the first byte.
    End,
    /// The peer hung up after fewer bytes than a frame header: a trigger
    /// (master's wake-up `W` to flush), not a frame.
    Short(Vec<u8>),
    /// A whole frame.
    Frame(AttrList),
}

/// A frame header being read: the part of [`Incoming`] decoding that does not
/// depend on how bytes arrive.
#[derive(Debug, Default)]
pub(crate) struct Head {
    buf: [u8; 4],
    got: usize,
}

impl Head {
    /// Where the next header bytes go.
    pub(crate) fn space(&mut self) -> &mut [u8] {
        &mut self.buf[self.got..]
    }

    /// `n` bytes arrived; `false` at the end of the stream (`n == 0`).
    pub(crate) fn advance(&mut self, n: usize) -> bool {
        self.got += n;
        n > 0
    }

    fn complete(&self) -> bool {
        self.got == self.buf.len()
    }

    /// The payload length once the header is complete, else what the stream held.
    fn finish(&self, limit: u64) -> std::io::Result<Result<usize, Incoming>> {
        match self.got {
            0 => Ok(Err(Incoming::End)),
            n if n < self.buf.len() => Ok(Err(Incoming::Short(self.buf[..n].to_vec()))),
            _ => decode_frame_len(self.buf, limit).map(Ok).map_err(invalid),
        }
    }
}

fn invalid(e: FrameError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

fn payload(buf: &[u8]) -> std::io::Result<Incoming> {
    AttrList::decode(buf).map(Incoming::Frame).map_err(invalid)
}

fn whole(i: Incoming) -> std::io::Result<Option<AttrList>> {
    match i {
        Incoming::End => Ok(None),
        Incoming::Short(_) => Err(std::io::ErrorKind::UnexpectedEof.into()),
        Incoming::Frame(a) => Ok(Some(a)),
    }
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, list: &AttrList) -> std::io::Result<()> {
    w.write_all(&encode_frame(list))?;
    w.flush()
}

/// Writes one frame on an async stream.
pub async fn write_frame_async(
    w: &mut (impl AsyncWrite + Unpin),
    list: &AttrList,
) -> std::io::Result<()> {
    w.write_all(&encode_frame(list)).await?;
    w.flush().await
}

/// Reads a frame of at most `limit` payload bytes, or what ended the stream
/// instead (see [`Incoming`]). A frame that is too large or malformed is an
/// `InvalidData` error wrapping the [`FrameError`].
pub(crate) fn read_incoming(r: &mut impl Read, limit: u64) -> std::io::Result<Incoming> {
    let mut head = Head::default();
    while !head.complete() {
        match r.read(head.space()) {
            Ok(n) if head.advance(n) => {}
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = match head.finish(limit)? {
        Ok(len) => len,
        Err(end) => return Ok(end),
    };
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    payload(&buf)
}

/// [`read_incoming`] on an async stream, `head` holding what was read of the
/// header already (a server waits for a request's first bytes itself).
pub(crate) async fn read_incoming_async(
    r: &mut (impl AsyncRead + Unpin),
    mut head: Head,
    limit: u64,
) -> std::io::Result<Incoming> {
    while !head.complete() {
        let n = r.read(head.space()).await?;
        if !head.advance(n) {
            break;
        }
    }
    let len = match head.finish(limit)? {
        Ok(len) => len,
        Err(end) => return Ok(end),
    };
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    payload(&buf)
}

/// Reads one frame of at most `limit` payload bytes. `Ok(None)` on a clean
/// end of stream before the first byte.
pub fn read_frame(r: &mut impl Read, limit: u64) -> std::io::Result<Option<AttrList>> {
    read_incoming(r, limit).and_then(whole)
}

/// [`read_frame`] on an async stream.
pub async fn read_frame_async(
    r: &mut (impl AsyncRead + Unpin),
    limit: u64,
) -> std::io::Result<Option<AttrList>> {
    read_incoming_async(r, Head::default(), limit)
        .await
        .and_then(whole)
}

/// A failed exchange as the caller sees it: a malformed or oversized reply is
/// a protocol error, anything else an I/O error.
fn exchange_error(service: &str, e: std::io::Error) -> ClientError {
    let service = service.to_string();
    if !e.get_ref().is_some_and(|i| i.is::<FrameError>()) {
        return ClientError::Io { service, source: e };
    }
    match e.into_inner().map(|i| i.downcast::<FrameError>()) {
        Some(Ok(source)) => ClientError::Protocol {
            service,
            source: *source,
        },
        _ => ClientError::Io {
            service,
            source: std::io::ErrorKind::InvalidData.into(),
        },
    }
}

/// One request/reply exchange with a service.
pub fn request(
    cfg: &Config,
    class: &str,
    service: &str,
    req: &AttrList,
    limit: u64,
    timeout: Duration,
) -> Result<AttrList, ClientError> {
    let mut s = connect(cfg, class, service, timeout)?;
    write_frame(&mut s, req)
        .and_then(|()| read_frame(&mut s, limit))
        .and_then(|r| r.ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into()))
        .map_err(|e| exchange_error(service, e))
}

/// Frame limit for messages that carry mail content.
pub fn content_frame_limit(cfg: &Config) -> u64 {
    let msl = cfg.size(p::MESSAGE_SIZE_LIMIT);
    let msl = if msl == 0 { 1 << 31 } else { msl };
    msl.saturating_mul(2).saturating_add(1 << 20)
}

/// The `ipc_timeout` as a Duration.
pub fn ipc_timeout(cfg: &Config) -> Duration {
    cfg.time(p::IPC_TIMEOUT).max(Duration::from_secs(1))
}

/// One request/reply exchange with a service, for async programs (smtpd).
pub async fn request_async(
    cfg: &Config,
    class: &str,
    service: &str,
    req: &AttrList,
    limit: u64,
    timeout: Duration,
) -> Result<AttrList, ClientError> {
    let path = socket_path(cfg, class, service);
    let exchange = async {
        let mut s = tokio::net::UnixStream::connect(&path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let reply = match write_frame_async(&mut s, req).await {
            Ok(()) => read_frame_async(&mut s, limit).await,
            Err(e) => Err(e),
        };
        reply
            .and_then(|r| r.ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into()))
            .map_err(|e| exchange_error(service, e))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(exchange_error(service, std::io::ErrorKind::TimedOut.into())),
    }
}

/// One `flush/1` exchange with the fast flush service
/// (`public/$flush_service_name`); the caller maps the status to its texts.
/// `add` and `send_site` are denied without asking when
/// `fast_flush_domains` is empty.
pub fn flush(
    cfg: &Config,
    req: &postern_ipc::flush::FlushRequest,
) -> Result<postern_ipc::flush::FlushStatus, ClientError> {
    use postern_ipc::flush::{FlushOp, FlushStatus};
    // As Postfix's flush client: no eligible destinations, nothing to ask.
    if matches!(req.op, FlushOp::Add | FlushOp::SendSite)
        && cfg.str(p::FAST_FLUSH_DOMAINS).trim().is_empty()
    {
        return Ok(FlushStatus::Deny);
    }
    let mut service = cfg.str(p::FLUSH_SERVICE_NAME);
    if service.is_empty() {
        service = "flush".into();
    }
    let reply = request(
        cfg,
        "public",
        &service,
        &req.to_attrs(),
        1 << 12,
        ipc_timeout(cfg),
    )?;
    postern_ipc::flush::FlushReply::from_attrs(&reply)
        .map(|r| r.status)
        .map_err(|source| ClientError::Protocol { service, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_ends_and_short_writes_are_told_apart() {
        assert_eq!(
            read_incoming(&mut &b"W"[..], 1 << 12).unwrap(),
            Incoming::Short(b"W".to_vec())
        );
        assert_eq!(
            read_incoming(&mut &b""[..], 1 << 12).unwrap(),
            Incoming::End
        );
        assert!(read_frame(&mut &b"XY"[..], 1 << 12).is_err());
        let mut req = AttrList::new();
        req.push("proto", "x/1").push("site", "example.com");
        let frame = encode_frame(&req);
        assert_eq!(
            read_incoming(&mut &frame[..], 1 << 12).unwrap(),
            Incoming::Frame(req.clone())
        );
        let huge = [0xff, 0xff, 0xff, 0xff];
        let e = read_incoming(&mut &huge[..], 1 << 12).unwrap_err();
        assert!(matches!(
            exchange_error("s", e),
            ClientError::Protocol {
                source: FrameError::TooLarge { .. },
                ..
            }
        ));
        // The async reader is the same codec.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = rt.block_on(read_frame_async(&mut &frame[..], 1 << 12));
        assert_eq!(got.unwrap(), Some(req));
    }
}
