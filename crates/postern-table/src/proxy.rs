//! `proxy:TYPE:NAME`: lookups through the proxymap service, so that a chrooted or
//! unprivileged daemon can use a table it cannot open itself.
//!
//! The map connects lazily (at the first lookup) to `$queue_directory/private/proxymap`
//! and keeps the connection; each lookup is one `proxymap/1` request and reply
//! (`postern_ipc::proxymap`). A connection that fails is re-opened once per lookup (the
//! service exits when one of its tables changed, as Postfix's proxymap does). Every
//! failure — no service, a refused table, a timeout — is a lookup `Err`, so the caller
//! defers; never a silent "not found".
//!
//! # Configuration
//! The queue directory comes from [`crate::OpenOptions::queue_directory`], else from
//! [`crate::set_queue_directory`] (set by the daemon skeleton).

use crate::{Map, MapFlags, OpenOptions, TableError};
use postern_ipc::proxymap::{
    FLAG_FOLD_CASE, PROXY_FRAME_LIMIT, ProxyOp, ProxyReply, ProxyRequest, ProxyStatus,
};
use postern_ipc::{AttrList, decode_frame_len, encode_frame};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Deadline for one request and its reply.
const TIMEOUT: Duration = Duration::from_secs(100);

#[derive(Debug)]
pub(crate) struct Proxy {
    spec: String,
    table: String,
    socket: PathBuf,
    flags: MapFlags,
    conn: Mutex<Option<UnixStream>>,
}

impl Proxy {
    pub(crate) fn open(spec: &str, table: &str, opts: &OpenOptions) -> Result<Self, TableError> {
        let (kind, _) = crate::spec::split_type(table)?;
        let queue = opts
            .queue_directory
            .clone()
            .or_else(crate::default_queue_directory)
            .ok_or_else(|| TableError::spec(spec, "proxy: the queue directory is not known"))?;
        let pattern = matches!(kind, "regexp" | "pcre" | "cidr");
        Ok(Proxy {
            spec: spec.to_string(),
            table: table.to_string(),
            socket: queue.join("private").join("proxymap"),
            flags: MapFlags {
                fold_case: opts.fold_case && !pattern,
                pattern,
            },
            conn: Mutex::new(None),
        })
    }

    fn err(&self, message: impl Into<String>) -> TableError {
        TableError::Lookup {
            table: self.spec.clone(),
            message: message.into(),
        }
    }

    fn exchange(stream: &mut UnixStream, frame: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(frame)?;
        let mut header = [0u8; 4];
        stream.read_exact(&mut header)?;
        let len = decode_frame_len(header, PROXY_FRAME_LIMIT)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload)?;
        Ok(payload)
    }

    fn connect(&self) -> std::io::Result<UnixStream> {
        let s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(TIMEOUT))?;
        s.set_write_timeout(Some(TIMEOUT))?;
        Ok(s)
    }

    /// One request/reply, re-connecting once when a kept connection failed.
    fn round_trip(&self, frame: &[u8]) -> Result<Vec<u8>, TableError> {
        let mut conn = match self.conn.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if let Some(stream) = conn.as_mut() {
            if let Ok(payload) = Self::exchange(stream, frame) {
                return Ok(payload);
            }
            *conn = None;
        }
        let mut stream = self
            .connect()
            .map_err(|e| self.err(format!("connect to {}: {e}", self.socket.display())))?;
        let payload = Self::exchange(&mut stream, frame)
            .map_err(|e| self.err(format!("proxymap service: {e}")))?;
        *conn = Some(stream);
        Ok(payload)
    }
}

impl Map for Proxy {
    fn lookup(&self, key: &str) -> Result<Option<String>, TableError> {
        let req = ProxyRequest {
            op: ProxyOp::Lookup,
            table: self.table.clone(),
            flags: if self.flags.fold_case {
                FLAG_FOLD_CASE
            } else {
                0
            },
            key: key.to_string(),
        };
        let payload = self.round_trip(&encode_frame(&req.to_attrs()))?;
        let reply = AttrList::decode(&payload)
            .and_then(|a| ProxyReply::from_attrs(&a))
            .map_err(|e| self.err(format!("proxymap service: bad reply: {e}")))?;
        match reply.status {
            ProxyStatus::Ok => Ok(Some(reply.value)),
            ProxyStatus::NoKey => Ok(None),
            ProxyStatus::Retry => Err(self.err(format!("table lookup problem: {}", reply.value))),
            ProxyStatus::Bad => Err(self.err(format!("bad proxymap request: {}", reply.value))),
            ProxyStatus::Deny => Err(self.err(format!(
                "proxymap service is not configured for table \"{}\"",
                self.table
            ))),
        }
    }
    fn name(&self) -> &str {
        &self.spec
    }
    fn flags(&self) -> MapFlags {
        self.flags
    }
}
