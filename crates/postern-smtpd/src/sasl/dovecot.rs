//! Client of Dovecot's authentication protocol (`smtpd_sasl_type = dovecot`),
//! as Postfix's `xsasl_dovecot_server` speaks it.
//!
//! Protocol (Dovecot `auth-client` socket, protocol 1.x, one line per message,
//! fields separated by TAB): we send `VERSION 1 1` and `CPID <pid>`; the server
//! answers `VERSION 1 n`, one `MECH <name> <flags…>` per mechanism, `SPID`,
//! `CUID`, `COOKIE` and `DONE`. Then, per authentication, `AUTH <id> <mech>
//! service=smtp nologin lip=… rip=… [secured] [resp=<base64>]`, answered with
//! `CONT <id> <base64>` (send `334`, relay the client's answer in `CONT <id>
//! <base64>`), `OK <id> user=…` or `FAIL <id> [user=…] [reason=…]`. Challenges
//! are relayed untouched, so every mechanism Dovecot offers works (PLAIN,
//! LOGIN, SCRAM-SHA-1/256, CRAM-MD5…).
//!
//! Connections: an smtpd process serves many sessions, so it keeps a small pool
//! of handshaken connections; a conversation takes one for its duration (the
//! protocol could multiplex, but a conversation waits on its SMTP client between
//! steps). The mechanism list of the last handshake is cached for EHLO.
//!
//! # Security
//! Client responses are passed on only when they are base64 (no TAB or LF can
//! reach the protocol); server lines are bounded ([`MAX_LINE`]) and every wait
//! is bounded ([`AUTH_TIMEOUT`]). User names and reasons from
//! the server are made printable before use. Nothing secret is logged.
//!
//! # Configuration
//! `smtpd_sasl_path` (`unix:PATH`, `inet:HOST:PORT`, or a path, relative to
//! `queue_directory` when not absolute), `smtpd_sasl_service`.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// Every exchange with the server. Postfix waits 10 s; Dovecot delays the
/// answers to a guessing client by up to 15 s (its auth penalty), which Postfix
/// then reports as a lost connection (454). We wait long enough for the answer.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest server line accepted.
pub const MAX_LINE: usize = 16 * 1024;
/// Idle connections kept per process.
const POOL_MAX: usize = 8;

/// Mechanism property bits (Dovecot's MECH flags).
pub mod props {
    /// `plaintext`.
    pub const PLAINTEXT: u32 = 1;
    /// `active`.
    pub const ACTIVE: u32 = 2;
    /// `dictionary`.
    pub const DICTIONARY: u32 = 4;
    /// `anonymous`.
    pub const ANONYMOUS: u32 = 8;
    /// `forward-secrecy`.
    pub const FORWARD_SECRECY: u32 = 16;
    /// `mutual-auth`.
    pub const MUTUAL_AUTH: u32 = 32;
    /// `private`: never offered.
    pub const PRIVATE: u32 = 64;
}

/// One mechanism the server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mech {
    /// Name, as the server spells it.
    pub name: String,
    /// [`props`] bits.
    pub props: u32,
}

/// A handshake line from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// `VERSION major minor`.
    Version(u32, u32),
    /// `MECH name flags…`.
    Mech(Mech),
    /// `SPID pid`.
    Spid,
    /// `DONE`.
    Done,
    /// Anything else (CUID, COOKIE, future lines): ignored.
    Other,
}

/// A protocol problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// A `VERSION` line that does not parse.
    #[error("SASL: Protocol version error")]
    Version,
    /// A major version other than 1.
    #[error("SASL: Protocol version mismatch ({0} vs. 1)")]
    Mismatch(u32),
    /// `SPID` before any `MECH`: the auth-master or auth-userdb socket.
    #[error("SASL: Connected to wrong auth socket (auth-master instead of auth-client)")]
    WrongSocket,
}

/// Parses one handshake line (without its LF).
pub fn parse_handshake(line: &str) -> Result<Handshake, ProtoError> {
    let mut f = line.split('\t');
    Ok(match f.next().unwrap_or("") {
        "VERSION" => {
            let (Some(Ok(major)), Some(Ok(minor))) =
                (f.next().map(str::parse), f.next().map(str::parse))
            else {
                return Err(ProtoError::Version);
            };
            if major != 1 {
                return Err(ProtoError::Mismatch(major));
            }
            Handshake::Version(major, minor)
        }
        "MECH" => match f.next() {
            Some(name) if !name.is_empty() => {
                let props = f.fold(0, |acc, flag| acc | prop(flag));
                Handshake::Mech(Mech {
                    name: name.to_string(),
                    props,
                })
            }
            _ => Handshake::Other,
        },
        "SPID" => Handshake::Spid,
        "DONE" => Handshake::Done,
        _ => Handshake::Other,
    })
}

fn prop(flag: &str) -> u32 {
    match flag.to_ascii_lowercase().as_str() {
        "plaintext" => props::PLAINTEXT,
        "active" => props::ACTIVE,
        "dictionary" => props::DICTIONARY,
        "anonymous" => props::ANONYMOUS,
        "forward-secrecy" => props::FORWARD_SECRECY,
        "mutual-auth" => props::MUTUAL_AUTH,
        "private" => props::PRIVATE,
        _ => 0,
    }
}

/// An answer to `AUTH`/`CONT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `OK id …`: authenticated as `user` (None: the server named nobody).
    Ok { id: u32, user: Option<String> },
    /// `CONT id data`: a challenge (None: the data field is missing).
    Cont { id: u32, data: Option<String> },
    /// `FAIL id …`.
    Fail {
        /// Request id.
        id: u32,
        /// `user=`.
        user: Option<String>,
        /// `reason=`.
        reason: Option<String>,
    },
    /// Not an answer (or no usable id): ignored, as Postfix does.
    Other,
}

/// Replaces what would not print in a log or reply (Postfix's `printable()`).
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Parses one answer line (without its LF).
pub fn parse_reply(line: &str) -> Reply {
    let mut f = line.split('\t');
    let cmd = f.next().unwrap_or("");
    let Some(Ok(id)) = f.next().map(str::parse::<u32>) else {
        return Reply::Other;
    };
    let args = |f: std::str::Split<'_, char>| {
        let (mut user, mut reason) = (None, None);
        for a in f {
            if let Some(u) = a.strip_prefix("user=") {
                user = Some(printable(u));
            } else if let Some(r) = a.strip_prefix("reason=") {
                reason = Some(printable(r));
            }
        }
        (user, reason)
    };
    match cmd {
        "OK" => Reply::Ok {
            id,
            user: args(f).0,
        },
        "CONT" => Reply::Cont {
            id,
            data: f.next().map(str::to_string),
        },
        "FAIL" => {
            let (user, reason) = args(f);
            Reply::Fail { id, user, reason }
        }
        _ => Reply::Other,
    }
}

/// Postfix's check before passing client data on: base64 characters only.
pub fn is_valid_base64(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

/// Where the auth server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A UNIX socket.
    Unix(PathBuf),
    /// `host:port`.
    Inet(String),
}

impl Endpoint {
    /// `smtpd_sasl_path` → endpoint; relative paths are under `queue_directory`.
    pub fn parse(path: &str, queue_directory: &str) -> Endpoint {
        if let Some(hp) = path.strip_prefix("inet:") {
            return Endpoint::Inet(hp.to_string());
        }
        let p = path.strip_prefix("unix:").unwrap_or(path);
        let p = PathBuf::from(p);
        if p.is_absolute() {
            Endpoint::Unix(p)
        } else {
            Endpoint::Unix(PathBuf::from(queue_directory).join(p))
        }
    }

    fn shown(&self) -> String {
        match self {
            Endpoint::Unix(p) => p.display().to_string(),
            Endpoint::Inet(a) => format!("inet:{a}"),
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One handshaken connection.
pub struct Conn {
    io: BufReader<Box<dyn Stream>>,
    next_id: u32,
    /// Taken from the pool (may have gone stale while idle).
    reused: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("next_id", &self.next_id)
            .finish()
    }
}

/// The per-process client: endpoint, connection pool, mechanism cache.
#[derive(Debug)]
pub struct Client {
    endpoint: Endpoint,
    idle: Mutex<Vec<Conn>>,
    mechs: Mutex<Option<Vec<Mech>>>,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send `334 data`, then call [`Client::cont`].
    More(String),
    /// Authenticated.
    Done(String),
    /// Refused: reason (may be empty) and the user the server named.
    Fail(String, Option<String>),
    /// The server could not be reached or went away.
    Temp(String),
}

async fn read_line(io: &mut BufReader<Box<dyn Stream>>) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let mut limited = (&mut *io).take(MAX_LINE as u64 + 1);
    let n = tokio::time::timeout(AUTH_TIMEOUT, limited.read_until(b'\n', &mut buf))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "auth server line too long",
        ));
    }
    buf.pop();
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

impl Client {
    /// A client for `endpoint`; nothing is connected yet.
    pub fn new(endpoint: Endpoint) -> Client {
        Client {
            endpoint,
            idle: Mutex::new(Vec::new()),
            mechs: Mutex::new(None),
        }
    }

    /// The server's mechanisms (from the cache, or from a new handshake).
    pub async fn mechanisms(&self) -> Option<Vec<Mech>> {
        if let Some(m) = self.lock_mechs().clone() {
            return Some(m);
        }
        let conn = self.connect().await.ok()?;
        self.put_back(conn);
        self.lock_mechs().clone()
    }

    fn lock_mechs(&self) -> std::sync::MutexGuard<'_, Option<Vec<Mech>>> {
        self.mechs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn connect(&self) -> Result<Conn, ()> {
        let ep = &self.endpoint;
        let io: std::io::Result<Box<dyn Stream>> = tokio::time::timeout(AUTH_TIMEOUT, async {
            Ok(match ep {
                Endpoint::Unix(p) => {
                    Box::new(tokio::net::UnixStream::connect(p).await?) as Box<dyn Stream>
                }
                Endpoint::Inet(a) => Box::new(tokio::net::TcpStream::connect(a.as_str()).await?),
            })
        })
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
        let mut io = match io {
            Ok(s) => BufReader::new(s),
            Err(e) => {
                postern_log::warning(format!(
                    "SASL: Connect to Dovecot auth socket '{}' failed: {e}",
                    ep.shown()
                ));
                return Err(());
            }
        };
        let hello = format!("VERSION\t1\t1\nCPID\t{}\n", std::process::id());
        if let Err(e) = write_all(&mut io, hello.as_bytes()).await {
            postern_log::warning(format!("SASL: Couldn't send handshake: {e}"));
            return Err(());
        }
        let mut mechs = Vec::new();
        loop {
            let line = match read_line(&mut io).await {
                Ok(Some(l)) => l,
                Ok(None) => return Err(()),
                Err(e) => {
                    postern_log::warning(format!("SASL: {}: handshake: {e}", ep.shown()));
                    return Err(());
                }
            };
            match parse_handshake(&line) {
                Ok(Handshake::Mech(m)) if m.props & props::PRIVATE == 0 => mechs.push(m),
                Ok(Handshake::Spid) if mechs.is_empty() => {
                    postern_log::warning(ProtoError::WrongSocket.to_string());
                    return Err(());
                }
                Ok(Handshake::Done) => break,
                Ok(_) => {}
                Err(e) => {
                    postern_log::warning(e.to_string());
                    return Err(());
                }
            }
        }
        *self.lock_mechs() = Some(mechs);
        Ok(Conn {
            io,
            next_id: 1,
            reused: false,
        })
    }

    fn take(&self) -> Option<Conn> {
        let mut c = self.lock_idle().pop()?;
        c.reused = true;
        Some(c)
    }

    /// Returns a healthy connection to the pool.
    pub fn put_back(&self, conn: Conn) {
        let mut idle = self.lock_idle();
        if idle.len() < POOL_MAX {
            idle.push(conn);
        }
    }

    /// Starts an authentication. `request` is everything after `AUTH <id>` (built by
    /// [`auth_fields`]). On [`Outcome::More`] the connection comes back for
    /// [`Client::cont`]; otherwise it is already back in the pool (or dropped).
    pub async fn start(&self, request: &str) -> (Outcome, Option<(Conn, u32)>) {
        // Pooled connections the server closed while idle are skipped; a fresh
        // connection that fails is final.
        for _attempt in 0..=POOL_MAX {
            let mut conn = match self.take() {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => c,
                    Err(()) => {
                        return (
                            Outcome::Temp("Can't connect to authentication server".into()),
                            None,
                        );
                    }
                },
            };
            let id = conn.next_id;
            conn.next_id = conn.next_id.wrapping_add(1).max(1);
            let line = format!("AUTH\t{id}\t{request}\n");
            let reused = conn.reused;
            match self.exchange(conn, id, &line).await {
                // A pooled connection the server closed while idle: try a fresh one.
                Err(true) if reused => continue,
                Err(_) => return (lost(), None),
                Ok(r) => return r,
            }
        }
        (lost(), None)
    }

    /// Sends the client's answer (already checked with [`is_valid_base64`]).
    pub async fn cont(
        &self,
        conn: Conn,
        id: u32,
        response: &str,
    ) -> (Outcome, Option<(Conn, u32)>) {
        let line = format!("CONT\t{id}\t{response}\n");
        match self.exchange(conn, id, &line).await {
            Ok(r) => r,
            Err(_) => (lost(), None),
        }
    }

    /// Ends a request the client gave up on: Dovecot fails a request whose
    /// continuation is not base64, so `*` closes it cleanly and the connection
    /// goes back to the pool.
    pub async fn cancel(&self, conn: Conn, id: u32) {
        let line = format!("CONT\t{id}\t*\n");
        let _outcome_is_a_failure = self.exchange(conn, id, &line).await;
    }

    /// One request and its answer. `Err(true)`: nothing came back at all.
    async fn exchange(
        &self,
        mut conn: Conn,
        id: u32,
        line: &str,
    ) -> Result<(Outcome, Option<(Conn, u32)>), bool> {
        if write_all(&mut conn.io, line.as_bytes()).await.is_err() {
            return Err(true);
        }
        let mut answered = false;
        loop {
            let l = match read_line(&mut conn.io).await {
                Ok(Some(l)) => l,
                Ok(None) => return Err(!answered),
                Err(_) => return Err(false),
            };
            answered = true;
            let out = match parse_reply(&l) {
                Reply::Ok { id: i, user } if i == id => match user {
                    Some(u) => Outcome::Done(u),
                    None => {
                        postern_log::warning("missing Dovecot server OK username field");
                        Outcome::Fail("Authentication backend error".into(), None)
                    }
                },
                Reply::Cont { id: i, data } if i == id => match data {
                    Some(d) => return Ok((Outcome::More(d), Some((conn, id)))),
                    None => {
                        postern_log::warning("missing Dovecot server CONT reply field");
                        Outcome::Fail("Authentication backend error".into(), None)
                    }
                },
                Reply::Fail {
                    id: i,
                    user,
                    reason,
                } if i == id => Outcome::Fail(reason.unwrap_or_default(), user),
                _ => continue,
            };
            self.put_back(conn);
            return Ok((out, None));
        }
    }
}

fn lost() -> Outcome {
    Outcome::Temp("Connection lost to authentication server".into())
}

async fn write_all(io: &mut BufReader<Box<dyn Stream>>, b: &[u8]) -> std::io::Result<()> {
    tokio::time::timeout(AUTH_TIMEOUT, io.get_mut().write_all(b))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// The fields after `AUTH <id>`: mechanism, service, addresses, TLS, initial response.
pub fn auth_fields(
    mech: &str,
    service: &str,
    local: &str,
    remote: &str,
    secured: bool,
    initial: Option<&str>,
) -> String {
    let mut s = format!("{mech}\tservice={service}\tnologin\tlip={local}\trip={remote}");
    if secured {
        s.push_str("\tsecured");
    }
    if let Some(r) = initial {
        s.push_str("\tresp=");
        s.push_str(r);
    }
    s
}

#[cfg(test)]
#[path = "dovecot_tests.rs"]
mod tests;
