//! The service table: one entry per master.cf service, with its listener,
//! status pipe and processes.

use anyhow::{Context as _, Result, bail};
use nix::fcntl::OFlag;
use postern_config::{Config, Service, ServiceType};
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

fn bind_unix(cfg: &Config, s: &Service) -> Result<(OwnedFd, PathBuf)> {
    let class = if s.private { "private" } else { "public" };
    let dir = Path::new(&cfg.get("queue_directory")).join(class);
    if s.name.contains('/') || s.name.starts_with('.') {
        bail!(
            "master.cf line {}: bad unix service name: {}",
            s.line,
            s.name
        );
    }
    let path = dir.join(&s.name);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("remove {}", path.display())),
    }
    let fd = postern_sys::net::listen_unix(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok((fd, path))
}

/// One listener per address of the service (Postfix's master binds each
/// address of `inet_interfaces` for a bare-port service).
fn bind_inet(cfg: &Config, s: &Service) -> Result<Vec<OwnedFd>> {
    let addrs = postern_server::inet::listen_addresses(cfg, &s.name)
        .with_context(|| format!("master.cf line {}: inet service {}", s.line, s.name))?;
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        // The system error once (its Display already names the cause).
        let fd = postern_sys::net::listen_tcp(addr).map_err(|e| {
            anyhow::anyhow!(
                "master.cf line {}: service {}: {}",
                s.line,
                s.name,
                postern_log::plain(&e.to_string())
            )
        })?;
        out.push(fd);
    }
    Ok(out)
}

/// Builds the run-time table from master.cf. Services master cannot serve
/// (unix-dgram, fifo, pass) are kept without a listener and logged once.
pub fn build(cfg: &Config, services: &[Service]) -> Result<Vec<Running>> {
    let default_limit = cfg.get_int("default_process_limit").unwrap_or(100).max(0) as u32;
    let mut out = Vec::new();
    for s in services {
        let (listeners, socket_path) = match s.kind {
            ServiceType::Unix => {
                let (fd, p) = bind_unix(cfg, s)?;
                (vec![fd], Some(p))
            }
            ServiceType::Inet => (bind_inet(cfg, s)?, None),
            other => {
                postern_log::info(format!(
                    "{}: {} services are not served by this version; skipped",
                    s.name,
                    kind_name(other)
                ));
                (Vec::new(), None)
            }
        };
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
            status_read: File::from(r),
            status_write: w,
            max_proc,
            children: HashMap::new(),
            available: 0,
            throttled_until: None,
            next_wakeup,
            used: false,
            socket_path,
        });
    }
    Ok(out)
}
