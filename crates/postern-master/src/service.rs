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
}

/// A master.cf service at run time.
pub struct Running {
    /// The master.cf entry.
    pub entry: Service,
    /// Listening socket (None for types master does not serve).
    pub listener: Option<OwnedFd>,
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
        self.listener.is_some()
            && self.available == 0
            && (self.max_proc == 0 || (self.children.len() as u32) < self.max_proc)
            && self.throttled_until.is_none_or(|t| now >= t)
    }

    /// The listener as a borrowed fd.
    pub fn listen_fd(&self) -> Option<BorrowedFd<'_>> {
        self.listener.as_ref().map(|l| l.as_fd())
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
    let l = std::os::unix::net::UnixListener::bind(&path)
        .with_context(|| format!("bind {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("chmod {}", path.display()))?;
    let fd = OwnedFd::from(l);
    set_nonblocking(&fd)?;
    Ok((fd, path))
}

fn inet_addresses(cfg: &Config, name: &str) -> Result<Vec<String>> {
    if let Some((host, port)) = name.rsplit_once(':') {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        return Ok(vec![if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }]);
    }
    let port = match name {
        "smtp" => "25".to_string(),
        "submission" => "587".to_string(),
        "submissions" | "smtps" => "465".to_string(),
        p if p.chars().all(|c| c.is_ascii_digit()) => p.to_string(),
        other => bail!("unknown inet service port: {other}"),
    };
    let ifaces = cfg.get_list("inet_interfaces");
    let mut out = Vec::new();
    for i in ifaces {
        match i.as_str() {
            "all" => out.push(format!("0.0.0.0:{port}")),
            "loopback-only" => out.push(format!("127.0.0.1:{port}")),
            h if h.contains(':') => out.push(format!("[{h}]:{port}")),
            h => out.push(format!("{h}:{port}")),
        }
    }
    if out.len() != 1 {
        bail!(
            "inet service {name}: Postern listens on exactly one address per service; use host:port in master.cf"
        );
    }
    Ok(out)
}

fn bind_inet(cfg: &Config, s: &Service) -> Result<OwnedFd> {
    let addr = inet_addresses(cfg, &s.name)?.remove(0);
    let l = std::net::TcpListener::bind(&addr).with_context(|| format!("bind {addr}"))?;
    let fd = OwnedFd::from(l);
    set_nonblocking(&fd)?;
    Ok(fd)
}

/// Builds the run-time table from master.cf. Services master cannot serve
/// (unix-dgram, fifo, pass) are kept without a listener and logged once.
pub fn build(cfg: &Config, services: &[Service]) -> Result<Vec<Running>> {
    let default_limit = cfg.get_int("default_process_limit").unwrap_or(100).max(0) as u32;
    let mut out = Vec::new();
    for s in services {
        let (listener, socket_path) = match s.kind {
            ServiceType::Unix => {
                let (fd, p) = bind_unix(cfg, s)?;
                (Some(fd), Some(p))
            }
            ServiceType::Inet => (Some(bind_inet(cfg, s)?), None),
            other => {
                postern_log::info(format!(
                    "{}: {} services are not served by this version; skipped",
                    s.name,
                    kind_name(other)
                ));
                (None, None)
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
            listener,
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
