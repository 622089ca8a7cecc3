//! The service table: one entry per master.cf service, with its listener,
//! status pipe and processes.

use anyhow::{Context as _, Result, bail};
use nix::fcntl::OFlag;
use postern_config::{Config, Service, ServiceType, p};
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One running daemon process.
#[derive(Debug)]
pub struct Child {
    /// Whether it last said it is idle.
    pub available: bool,
    /// How many times it reported taking a client (Postfix's use count): a
    /// process that dies before serving anything is a bad start-up.
    pub use_count: u32,
}

/// A master.cf service at run time.
pub struct Running {
    /// The master.cf entry.
    pub entry: Service,
    /// Listening sockets (empty for types master does not serve; an `inet`
    /// service has one per address).
    pub listeners: Vec<OwnedFd>,
    /// What each listener listens on (`unix:PATH`, `inet:ADDR`), to keep it
    /// across a reload.
    pub listen_keys: Vec<String>,
    /// Read end of the status pipe.
    pub status_read: File,
    /// Write end (handed to children).
    pub status_write: OwnedFd,
    /// Process limit (0 = unlimited).
    pub max_proc: u32,
    /// Processes by pid.
    pub children: HashMap<i32, Child>,
    /// Idle processes.
    pub available: u32,
    /// No new process before this instant.
    pub throttled_until: Option<Instant>,
    /// Next wake-up.
    pub next_wakeup: Option<Instant>,
    /// A process was started at least once (for conditional wake-ups).
    pub used: bool,
    /// When the process-limit warning was last logged.
    pub busy_warned: Option<Instant>,
    /// Socket path for unix services (removed at shutdown).
    pub socket_path: Option<PathBuf>,
}

impl Running {
    /// Whether master should watch the listener for demand.
    pub fn wants_demand(&self, now: Instant) -> bool {
        !self.listeners.is_empty()
            && self.available == 0
            && (self.max_proc == 0 || (self.children.len() as u32) < self.max_proc)
            && self.throttled_until.is_none_or(|t| now >= t)
    }

    /// The listeners as borrowed fds.
    pub fn listen_fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.listeners.iter().map(|l| l.as_fd())
    }

    /// Logs Postfix's warning when every process of a multi-process service
    /// is busy and no other may start (at most once per 1000 seconds).
    pub fn warn_if_at_limit(&mut self, now: Instant) {
        let at_limit = self.max_proc > 1
            && self.available == 0
            && self.children.len() as u32 >= self.max_proc
            && !self.listeners.is_empty()
            && self.throttled_until.is_none_or(|t| now >= t);
        if !at_limit
            || self
                .busy_warned
                .is_some_and(|t| now.duration_since(t).as_secs() < 1000)
        {
            return;
        }
        self.busy_warned = Some(now);
        postern_log::warning(format!(
            "service \"{}\" ({}) has reached its process limit \"{}\": new clients may experience noticeable delays",
            self.entry.name,
            self.listen_name(),
            self.max_proc
        ));
        postern_log::warning(
            "to avoid this condition, increase the process count in master.cf or reduce the service time per client",
        );
    }

    /// What the service listens on, as Postfix names it in warnings: the
    /// port of an `inet` service, `private/NAME` or `public/NAME` otherwise.
    fn listen_name(&self) -> String {
        match self.entry.kind {
            ServiceType::Inet => postern_server::inet::split_service(&self.entry.name)
                .1
                .to_string(),
            _ => format!(
                "{}/{}",
                if self.entry.private {
                    "private"
                } else {
                    "public"
                },
                self.entry.name
            ),
        }
    }

    /// Human-readable service identity for logs.
    pub fn label(&self) -> String {
        format!("{}/{}", self.entry.name, kind_name(self.entry.kind))
    }
}

/// master.cf's word for a service type.
pub fn kind_name(k: ServiceType) -> &'static str {
    match k {
        ServiceType::Inet => "inet",
        ServiceType::Unix => "unix",
        ServiceType::UnixDgram => "unix-dgram",
        ServiceType::Fifo => "fifo",
        ServiceType::Pass => "pass",
    }
}

fn set_nonblocking(fd: &OwnedFd) -> Result<()> {
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).context("fcntl(F_GETFL)")?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags)).context("fcntl(F_SETFL)")?;
    Ok(())
}

/// Listeners of the previous generation by what they listen on: a reload
/// hands them to the new services that listen on the same thing (as
/// Postfix's master keeps the sockets of unchanged services), so no client
/// is refused while master reloads and no port is rebound while an old
/// daemon still holds it.
pub type Kept = HashMap<String, OwnedFd>;

fn unix_path(cfg: &Config, s: &Service) -> PathBuf {
    let class = if s.private { "private" } else { "public" };
    Path::new(&cfg.str(p::QUEUE_DIRECTORY))
        .join(class)
        .join(&s.name)
}

/// The listener keys the services of `cfg` will use: what a reload keeps.
/// Everything else must close before the new listeners bind (a kept
/// `127.0.0.1:25` would make a new `0.0.0.0:25` fail).
pub fn wanted_keys(cfg: &Config, services: &[Service]) -> std::collections::HashSet<String> {
    let mut out = std::collections::HashSet::new();
    for s in services {
        match s.kind {
            ServiceType::Unix => {
                out.insert(format!("unix:{}", unix_path(cfg, s).display()));
            }
            ServiceType::Inet => {
                if let Ok(addrs) = postern_server::inet::listen_addresses(cfg, &s.name) {
                    out.extend(addrs.into_iter().map(|a| format!("inet:{a}")));
                }
            }
            _ => {}
        }
    }
    out
}

fn bind_unix(cfg: &Config, s: &Service, kept: &mut Kept) -> Result<(OwnedFd, PathBuf, String)> {
    if s.name.contains('/') || s.name.starts_with('.') {
        bail!(
            "master.cf line {}: bad unix service name: {}",
            s.line,
            s.name
        );
    }
    let path = unix_path(cfg, s);
    let key = format!("unix:{}", path.display());
    if let Some(fd) = kept.remove(&key)
        && std::fs::symlink_metadata(&path)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
    {
        return Ok((fd, path, key));
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("remove {}", path.display())),
    }
    let fd = postern_sys::net::listen_unix(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok((fd, path, key))
}

/// One listener per address of the service (Postfix's master binds each
/// address of `inet_interfaces` for a bare-port service).
/// How long a reload retries an address still held by a retiring daemon
/// (it closes its copy of the old listener when it gets master's SIGHUP).
const REBIND_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

fn listen_tcp_patiently(
    addr: std::net::SocketAddr,
    patience: std::time::Duration,
) -> postern_sys::Result<OwnedFd> {
    let deadline = Instant::now() + patience;
    loop {
        match postern_sys::net::listen_tcp(addr) {
            Err(e)
                if e.raw_os_error() == Some(nix::libc::EADDRINUSE) && Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn bind_inet(
    cfg: &Config,
    s: &Service,
    kept: &mut Kept,
    patience: std::time::Duration,
) -> Result<(Vec<OwnedFd>, Vec<String>)> {
    let addrs = postern_server::inet::listen_addresses(cfg, &s.name)
        .with_context(|| format!("master.cf line {}: inet service {}", s.line, s.name))?;
    let mut out = Vec::with_capacity(addrs.len());
    let mut keys = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let key = format!("inet:{addr}");
        if let Some(fd) = kept.remove(&key) {
            out.push(fd);
            keys.push(key);
            continue;
        }
        // The system error once (its Display already names the cause).
        let fd = listen_tcp_patiently(addr, patience).map_err(|e| {
            anyhow::anyhow!(
                "master.cf line {}: service {}: {}",
                s.line,
                s.name,
                postern_log::plain(&e.to_string())
            )
        })?;
        out.push(fd);
        keys.push(key);
    }
    Ok((out, keys))
}

/// Builds the run-time table from master.cf, reusing `kept` listeners.
/// Services master cannot serve (unix-dgram, fifo, pass) are kept without a
/// listener and logged once. A listener that cannot be created is an error
/// when `strict` (start-up: `postern start` reports it); at a reload that
/// service alone is left out with a warning and the others run.
pub fn build(
    cfg: &Config,
    services: &[Service],
    kept: &mut Kept,
    strict: bool,
) -> Result<Vec<Running>> {
    let default_limit = cfg.int(p::DEFAULT_PROCESS_LIMIT).max(0) as u32;
    let mut out = Vec::new();
    for s in services {
        let bound = match s.kind {
            ServiceType::Unix => {
                bind_unix(cfg, s, kept).map(|(fd, p, k)| (vec![fd], vec![k], Some(p)))
            }
            ServiceType::Inet => {
                let patience = if strict {
                    std::time::Duration::ZERO
                } else {
                    REBIND_PATIENCE
                };
                bind_inet(cfg, s, kept, patience).map(|(fds, keys)| (fds, keys, None))
            }
            _ => Ok((Vec::new(), Vec::new(), None)),
        };
        let (listeners, listen_keys, socket_path) = match bound {
            Ok(b) => b,
            Err(e) if strict => return Err(e),
            Err(e) => {
                postern_log::warning(format!("{e:#}; service {} is not served", s.name));
                continue;
            }
        };
        match s.kind {
            ServiceType::Unix | ServiceType::Inet => {}
            other => {
                postern_log::info(format!(
                    "{}: {} services are not served by this version; skipped",
                    s.name,
                    kind_name(other)
                ));
            }
        }
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe")?;
        set_nonblocking(&r)?;
        let max_proc = s.maxproc.unwrap_or(default_limit);
        let now = Instant::now();
        let next_wakeup = match s.wakeup {
            Some(w) if w.seconds > 0 && !w.conditional => Some(now),
            _ => None,
        };
        out.push(Running {
            entry: s.clone(),
            listeners,
            listen_keys,
            status_read: File::from(r),
            status_write: w,
            max_proc,
            children: HashMap::new(),
            available: 0,
            throttled_until: None,
            next_wakeup,
            used: false,
            busy_warned: None,
            socket_path,
        });
    }
    Ok(out)
}
