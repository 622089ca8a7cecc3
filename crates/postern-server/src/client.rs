//! The client side: triggers and request/reply exchanges with services.
//!
//! Services listen on `$queue_directory/{public,private}/NAME`. A request is
//! one frame each way (see `postern-ipc`); every read and write has a
//! deadline (`ipc_timeout`) and every frame a size limit.

use postern_config::Config;
use postern_ipc::{AttrList, FrameError, decode_frame_len, encode_frame};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

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
    PathBuf::from(cfg.get("queue_directory"))
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
    let timeout = Duration::from_secs(cfg.get_time("trigger_timeout").unwrap_or(10).max(1));
    let mut s = connect(cfg, class, service, timeout)?;
    s.write_all(bytes).map_err(|source| ClientError::Io {
        service: service.to_string(),
        source,
    })
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, list: &AttrList) -> std::io::Result<()> {
    w.write_all(&encode_frame(list))?;
    w.flush()
}

/// Reads one frame of at most `limit` payload bytes. `Ok(None)` on a clean
/// end of stream before the first byte.
pub fn read_frame(r: &mut impl Read, limit: u64) -> std::io::Result<Option<AttrList>> {
    let mut hdr = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut hdr[got..])?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    let len = decode_frame_len(hdr, limit)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    AttrList::decode(&buf)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
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
    let io = |source| ClientError::Io {
        service: service.to_string(),
        source,
    };
    write_frame(&mut s, req).map_err(io)?;
    match read_frame(&mut s, limit) {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(io(std::io::ErrorKind::UnexpectedEof.into())),
        Err(e) => Err(io(e)),
    }
}

/// Frame limit for messages that carry mail content.
pub fn content_frame_limit(cfg: &Config) -> u64 {
    let msl = cfg
        .get_int("message_size_limit")
        .unwrap_or(10_240_000)
        .max(0) as u64;
    let msl = if msl == 0 { 1 << 31 } else { msl };
    msl.saturating_mul(2).saturating_add(1 << 20)
}

/// The `ipc_timeout` as a Duration.
pub fn ipc_timeout(cfg: &Config) -> Duration {
    Duration::from_secs(cfg.get_time("ipc_timeout").unwrap_or(3600).max(1))
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let path = socket_path(cfg, class, service);
    let io = |source| ClientError::Io {
        service: service.to_string(),
        source,
    };
    let exchange = async {
        let mut s = tokio::net::UnixStream::connect(&path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        s.write_all(&encode_frame(req)).await.map_err(io)?;
        let mut hdr = [0u8; 4];
        s.read_exact(&mut hdr).await.map_err(io)?;
        let len = decode_frame_len(hdr, limit).map_err(|source| ClientError::Protocol {
            service: service.to_string(),
            source,
        })?;
        let mut buf = vec![0u8; len];
        s.read_exact(&mut buf).await.map_err(io)?;
        AttrList::decode(&buf).map_err(|source| ClientError::Protocol {
            service: service.to_string(),
            source,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(io(std::io::ErrorKind::TimedOut.into())),
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
        && cfg.get("fast_flush_domains").trim().is_empty()
    {
        return Ok(FlushStatus::Deny);
    }
    let mut service = cfg.get("flush_service_name");
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
