//! smtpd's client of the anvil service (connection and rate limits).
//!
//! Parameters: `smtpd_client_connection_count_limit`,
//! `smtpd_client_connection_rate_limit`, `smtpd_client_message_rate_limit`,
//! `smtpd_client_recipient_rate_limit`, `smtpd_client_auth_rate_limit`,
//! `smtpd_client_event_limit_exceptions`.
//!
//! One connection per smtpd process, reused by all sessions. When anvil
//! cannot be reached the limits are not enforced (Postfix does the same) and a
//! warning is logged.

use postern_config::{Config, p};
use postern_ipc::proto::{AnvilReply, AnvilRequest};
use postern_table::NetworkList;
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The limits and the connection.
pub struct Anvil {
    cfg: Config,
    service: String,
    /// `smtpd_client_connection_count_limit`.
    pub count_limit: u64,
    /// `smtpd_client_connection_rate_limit`.
    pub conn_rate_limit: u64,
    /// `smtpd_client_message_rate_limit`.
    pub msg_rate_limit: u64,
    /// `smtpd_client_recipient_rate_limit`.
    pub rcpt_rate_limit: u64,
    /// `smtpd_client_auth_rate_limit`: AUTH commands per time unit.
    pub auth_rate_limit: u64,
    exceptions: Option<NetworkList>,
    conn: tokio::sync::Mutex<Option<UnixStream>>,
}

impl Anvil {
    /// Reads the limits.
    pub fn new(cfg: &Config, service: &str) -> Anvil {
        let lim = |n: postern_config::Int| cfg.int(n).max(0) as u64;
        let exceptions = match NetworkList::new(
            &cfg.str(p::SMTPD_CLIENT_EVENT_LIMIT_EXCEPTIONS),
            &Default::default(),
        ) {
            Ok(l) => Some(l),
            Err(e) => {
                postern_log::warning(format!("smtpd_client_event_limit_exceptions: {e}"));
                None
            }
        };
        Anvil {
            cfg: cfg.clone(),
            service: service.to_string(),
            count_limit: lim(p::SMTPD_CLIENT_CONNECTION_COUNT_LIMIT),
            conn_rate_limit: lim(p::SMTPD_CLIENT_CONNECTION_RATE_LIMIT),
            msg_rate_limit: lim(p::SMTPD_CLIENT_MESSAGE_RATE_LIMIT),
            rcpt_rate_limit: lim(p::SMTPD_CLIENT_RECIPIENT_RATE_LIMIT),
            auth_rate_limit: lim(p::SMTPD_CLIENT_AUTH_RATE_LIMIT),
            exceptions,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether a client is subject to the limits at all.
    pub fn applies(&self, addr: Option<IpAddr>) -> bool {
        let Some(addr) = addr else { return false };
        let any = self.count_limit
            + self.conn_rate_limit
            + self.msg_rate_limit
            + self.rcpt_rate_limit
            + self.auth_rate_limit
            > 0;
        any && !self
            .exceptions
            .as_ref()
            .is_some_and(|l| l.matches(addr).unwrap_or(false))
    }

    /// The master.cf service name the counters are kept under (and logged with).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Reports an event; `None` when anvil is unavailable.
    pub async fn event(&self, op: &str, addr: IpAddr) -> Option<AnvilReply> {
        let req = AnvilRequest {
            op: op.to_string(),
            ident: format!("{}:{addr}", self.service),
        };
        let frame = postern_ipc::encode_frame(&req.to_attrs());
        let mut guard = self.conn.lock().await;
        for _attempt in 0..2 {
            if guard.is_none() {
                let path = postern_server::client::socket_path(&self.cfg, "private", "anvil");
                match UnixStream::connect(&path).await {
                    Ok(s) => *guard = Some(s),
                    Err(e) => {
                        postern_log::warning(format!("connect to {}: {e}", path.display()));
                        return None;
                    }
                }
            }
            let s = guard.as_mut()?;
            match tokio::time::timeout(Duration::from_secs(10), exchange(s, &frame)).await {
                Ok(Ok(r)) => return Some(r),
                _ => *guard = None,
            }
        }
        postern_log::warning("anvil service: no usable reply; limits not enforced for this event");
        None
    }
}

async fn exchange(s: &mut UnixStream, frame: &[u8]) -> std::io::Result<AnvilReply> {
    s.write_all(frame).await?;
    let mut hdr = [0u8; 4];
    s.read_exact(&mut hdr).await?;
    let len = postern_ipc::decode_frame_len(hdr, 4096)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    postern_ipc::AttrList::decode(&buf)
        .and_then(|a| AnvilReply::from_attrs(&a))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
