//! `check_policy_service`: Postfix's policy delegation protocol over TCP or a UNIX socket.
//!
//! ```text
//! request  = 1*( name "=" value LF ) LF      ; request=smtpd_access_policy first
//! response = "action=" access-action LF *( name "=" value LF ) LF
//! ```
//!
//! One connection per service is kept and reused for later requests until it has been
//! idle for `smtpd_policy_service_max_idle`, has lived `smtpd_policy_service_max_ttl`,
//! or has served `smtpd_policy_service_request_limit` requests (0 = no limit). Each
//! request may be tried `smtpd_policy_service_try_limit` times, `…_retry_delay` apart;
//! every read, write and connect is bounded by `smtpd_policy_service_timeout`. When all
//! tries fail, the answer is `smtpd_policy_service_default_action`
//! (`451 4.3.5 Server configuration problem`).
//!
//! # Security
//!
//! Request values come from the network: line breaks in them are replaced so that a
//! client cannot add attributes. Replies are bounded ([`MAX_LINE`], [`MAX_LINES`]).

use super::{Facts, Stage};
use postern_config::{Config, p};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// Longest response line.
pub(crate) const MAX_LINE: usize = 4096;
/// Most response lines.
pub(crate) const MAX_LINES: usize = 100;

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

struct Conn {
    io: BufReader<Box<dyn Stream>>,
    born: Instant,
    last: Instant,
    count: u64,
}

/// One policy service and its (reused) connection.
pub(crate) struct PolicyClient {
    endpoint: String,
    timeout: Duration,
    max_idle: Duration,
    max_ttl: Duration,
    request_limit: u64,
    try_limit: u32,
    retry_delay: Duration,
    default_action: String,
    context: String,
    queue_directory: String,
    conn: tokio::sync::Mutex<Option<Conn>>,
}

impl std::fmt::Debug for PolicyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyClient")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

fn parse_time(v: &str) -> Option<Duration> {
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 604_800,
        _ => return None,
    };
    Some(Duration::from_secs(n * mult))
}

impl PolicyClient {
    /// `spec` is `inet:host:port`, `unix:path`, or `{ endpoint, name=value, … }`.
    pub(crate) fn new(spec: &str, cfg: &Config) -> PolicyClient {
        let mut c = PolicyClient {
            endpoint: spec.to_string(),
            timeout: cfg.time(p::SMTPD_POLICY_SERVICE_TIMEOUT),
            max_idle: cfg.time(p::SMTPD_POLICY_SERVICE_MAX_IDLE),
            max_ttl: cfg.time(p::SMTPD_POLICY_SERVICE_MAX_TTL),
            request_limit: u64::try_from(cfg.int(p::SMTPD_POLICY_SERVICE_REQUEST_LIMIT))
                .unwrap_or(0),
            try_limit: u32::try_from(cfg.int(p::SMTPD_POLICY_SERVICE_TRY_LIMIT))
                .unwrap_or(1)
                .max(1),
            retry_delay: cfg.time(p::SMTPD_POLICY_SERVICE_RETRY_DELAY),
            default_action: cfg.str(p::SMTPD_POLICY_SERVICE_DEFAULT_ACTION),
            context: cfg.str(p::SMTPD_POLICY_SERVICE_POLICY_CONTEXT),
            queue_directory: cfg.str(p::QUEUE_DIRECTORY),
            conn: tokio::sync::Mutex::new(None),
        };
        if c.default_action.is_empty() {
            c.default_action = "451 4.3.5 Server configuration problem".to_string();
        }
        if let Some(inner) = spec.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let mut items = inner
                .split(|ch: char| ch == ',' || ch.is_ascii_whitespace())
                .filter(|w| !w.is_empty());
            c.endpoint = items.next().unwrap_or_default().to_string();
            for item in items {
                let Some((k, v)) = item.split_once('=') else {
                    continue;
                };
                match k {
                    "timeout" => c.timeout = parse_time(v).unwrap_or(c.timeout),
                    "max_idle" => c.max_idle = parse_time(v).unwrap_or(c.max_idle),
                    "max_ttl" => c.max_ttl = parse_time(v).unwrap_or(c.max_ttl),
                    "retry_delay" => c.retry_delay = parse_time(v).unwrap_or(c.retry_delay),
                    "try_limit" => c.try_limit = v.parse().unwrap_or(c.try_limit).max(1),
                    "request_limit" => c.request_limit = v.parse().unwrap_or(c.request_limit),
                    "default_action" => c.default_action = v.to_string(),
                    "policy_context" => c.context = v.to_string(),
                    _ => postern_log::warning(format!("{spec}: unknown attribute \"{k}\"")),
                }
            }
        }
        c
    }

    /// The endpoint, for log lines.
    pub(crate) fn name(&self) -> &str {
        &self.endpoint
    }

    /// Asks the service; returns its action, or the default action after failures.
    pub(crate) async fn query(&self, f: &Facts, stage: Stage) -> String {
        let request = self.request(f, stage);
        let mut guard = self.conn.lock().await;
        for attempt in 0..self.try_limit {
            if attempt > 0 {
                tokio::time::sleep(self.retry_delay).await;
            }
            match self.exchange(&mut guard, &request).await {
                Ok(action) => return action,
                Err(e) => {
                    *guard = None;
                    postern_log::warning(format!(
                        "problem talking to server {}: {e}",
                        self.endpoint
                    ));
                }
            }
        }
        self.default_action.clone()
    }

    async fn exchange(&self, slot: &mut Option<Conn>, request: &str) -> Result<String, String> {
        let now = Instant::now();
        let stale = slot.as_ref().is_some_and(|c| {
            now.duration_since(c.last) >= self.max_idle
                || now.duration_since(c.born) >= self.max_ttl
                || (self.request_limit > 0 && c.count >= self.request_limit)
        });
        if stale {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(self.connect().await?);
        }
        let Some(conn) = slot.as_mut() else {
            return Err("no connection".to_string());
        };
        conn.count += 1;
        conn.last = now;
        let t = self.timeout;
        tokio::time::timeout(t, conn.io.get_mut().write_all(request.as_bytes()))
            .await
            .map_err(|_| "timeout".to_string())?
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(t, read_response(&mut conn.io))
            .await
            .map_err(|_| "timeout".to_string())?
    }

    async fn connect(&self) -> Result<Conn, String> {
        let t = self.timeout;
        let io: Box<dyn Stream> = if let Some(addr) = self.endpoint.strip_prefix("inet:") {
            let s = tokio::time::timeout(t, tokio::net::TcpStream::connect(addr.to_string()))
                .await
                .map_err(|_| "connect timeout".to_string())?
                .map_err(|e| format!("connect: {e}"))?;
            Box::new(s)
        } else {
            let path = self
                .endpoint
                .strip_prefix("unix:")
                .unwrap_or(&self.endpoint);
            let path = if path.starts_with('/') {
                path.to_string()
            } else {
                format!("{}/{path}", self.queue_directory)
            };
            let s = tokio::time::timeout(t, tokio::net::UnixStream::connect(path))
                .await
                .map_err(|_| "connect timeout".to_string())?
                .map_err(|e| format!("connect: {e}"))?;
            Box::new(s)
        };
        let now = Instant::now();
        Ok(Conn {
            io: BufReader::new(io),
            born: now,
            last: now,
            count: 0,
        })
    }

    fn request(&self, f: &Facts, stage: Stage) -> String {
        let state = match stage {
            Stage::Connect => "CONNECT",
            Stage::Helo if f.protocol.eq_ignore_ascii_case("ESMTP") => "EHLO",
            Stage::Helo => "HELO",
            Stage::Mail => "MAIL",
            Stage::Rcpt => "RCPT",
            Stage::Data => "DATA",
            Stage::EndOfData => "END-OF-MESSAGE",
            Stage::Etrn => "ETRN",
        };
        let addr = f.client_addr.map(|a| a.to_string()).unwrap_or_default();
        let instance = instance(f);
        let pairs: [(&str, String); 16] = [
            ("request", "smtpd_access_policy".into()),
            ("protocol_state", state.into()),
            ("protocol_name", f.protocol.clone()),
            ("helo_name", f.helo.clone().unwrap_or_default()),
            ("queue_id", f.queue_id.clone().unwrap_or_default()),
            ("sender", f.sender.clone().unwrap_or_default()),
            ("recipient", f.recipient.clone().unwrap_or_default()),
            ("recipient_count", f.recipient_count.to_string()),
            ("client_address", addr),
            ("client_name", f.client_name.clone()),
            ("reverse_client_name", f.reverse_client_name.clone()),
            ("instance", instance),
            ("sasl_username", f.sasl_username.clone().unwrap_or_default()),
            ("size", f.size.to_string()),
            ("etrn_domain", f.etrn_domain.clone().unwrap_or_default()),
            ("policy_context", self.context.clone()),
        ];
        let mut out = String::new();
        for (k, v) in pairs {
            let v = v.replace(['\r', '\n'], " ");
            out.push_str(&format!("{k}={v}\n"));
        }
        out.push('\n');
        out
    }
}

/// A stable per-transaction tag (Postfix uses it to tie RCPTs of one mail together).
fn instance(f: &Facts) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (f.client_addr, &f.helo, &f.sender, &f.queue_id).hash(&mut h);
    format!("{:x}.{:x}", std::process::id(), h.finish())
}

async fn read_response<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Result<String, String> {
    let mut action = None;
    for _ in 0..MAX_LINES {
        let mut line = Vec::new();
        let mut limited = (&mut *r).take(MAX_LINE as u64 + 1);
        let n = limited
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".to_string());
        }
        if line.last() != Some(&b'\n') {
            return Err("response line too long".to_string());
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            return action.ok_or_else(|| "response without action".to_string());
        }
        if let Some(v) = line.strip_prefix("action=") {
            action = Some(v.to_string());
        }
    }
    Err("response too long".to_string())
}

use tokio::io::AsyncReadExt as _;
