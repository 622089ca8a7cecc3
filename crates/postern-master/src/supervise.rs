//! master's event loop: signals, status pipes, demand on listeners, wake-ups.

use crate::service::{self, Child, Running};
use anyhow::{Context as _, Result, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use postern_config::{Config, p};
use postern_server::status;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Master {
    dir: PathBuf,
    config: Config,
    services: Vec<Running>,
    /// Processes of earlier generations still finishing, with their service name/type.
    retiring: std::collections::HashMap<i32, String>,
    /// Status pipes of earlier generations, kept open while their processes
    /// finish (their last status write must not fail).
    old_status: Vec<File>,
    generation: u32,
    exe: PathBuf,
    /// The flow-control pipe every daemon inherits (kept across reloads).
    flow: Option<postern_sys::flow::Flow>,
}

/// Runs master until SIGTERM. With `detach` (`-w`, from `postern start`),
/// master starts a new session and, once every listener is open and the pid
/// file locked, puts /dev/null on its stdin, stdout and stderr: closing the
/// starter's pipe tells `postern start` that master is up, and no later
/// write can fail because the starter has gone.
pub fn run(dir: &Path, detach: bool) -> Result<()> {
    if detach && let Err(e) = nix::unistd::setsid() {
        postern_log::to_stderr(&format!("master: warning: setsid: {e}"));
    }
    // Nothing inherited from our starter reaches the daemons.
    postern_sys::fd::cloexec_from(3).context("mark inherited descriptors close-on-exec")?;
    let loaded = postern_server::load::load(dir)?;
    let config = loaded.config;
    postern_log::init("master", postern_server::load::log_config(&config, true));
    let master_cf = postern_server::load::load_master(dir)?;
    let _pid_lock = lock_pid_file(&config)?;
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGHUP,
        Signal::SIGTERM,
        Signal::SIGINT,
    ] {
        mask.add(s);
    }
    mask.thread_block().context("sigprocmask")?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .context("signalfd")?;
    let services = service::build(&config, &master_cf.services, &mut Default::default(), true)?;
    let exe = std::env::current_exe().context("locate own executable")?;
    let flow = match postern_sys::flow::Flow::new() {
        Ok(f) => Some(f),
        Err(e) => {
            postern_log::warning(format!("{e}; in_flow_delay is off"));
            None
        }
    };
    let mut m = Master {
        dir: dir.to_path_buf(),
        config,
        services,
        retiring: Default::default(),
        old_status: Vec::new(),
        generation: 1,
        exe,
        flow,
    };
    postern_log::info(format!(
        "daemon started -- version {}, configuration {}",
        env!("CARGO_PKG_VERSION"),
        dir.display()
    ));
    if detach {
        postern_sys::fd::detach_stdio().context("detach from the terminal")?;
    }
    // Up: from now on only a terminal gets copies of warnings (start-fg
    // under a supervisor must not block on a pipe nobody reads).
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        postern_log::stop_stderr_copy();
    }
    loop {
        if !m.step(&sfd)? {
            break;
        }
    }
    m.shutdown();
    Ok(())
}

fn lock_pid_file(cfg: &Config) -> Result<File> {
    let dir = Path::new(&cfg.str(p::QUEUE_DIRECTORY)).join("pid");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join("master.pid");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    if !postern_sys::lock::flock_try_exclusive(&f, &path.display().to_string())? {
        bail!(
            "the Postern mail system is already running (lock on {})",
            path.display()
        );
    }
    f.set_len(0)
        .with_context(|| format!("truncate {}", path.display()))?;
    writeln!(f, "{:>10}", std::process::id())
        .with_context(|| format!("write {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("fsync {}", path.display()))?;
    Ok(f)
}

enum Slot {
    Signals,
    Status(usize),
    Listen(usize),
}

impl Master {
    /// One round of the loop. Returns false when master must stop.
    fn step(&mut self, sfd: &SignalFd) -> Result<bool> {
        let now = Instant::now();
        let mut slots = vec![Slot::Signals];
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        for (i, s) in self.services.iter().enumerate() {
            slots.push(Slot::Status(i));
            fds.push(PollFd::new(s.status_read.as_fd(), PollFlags::POLLIN));
            if s.wants_demand(now) {
                for fd in s.listen_fds() {
                    slots.push(Slot::Listen(i));
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                }
            }
        }
        let timeout = self.next_timeout(now);
        let n = match poll(&mut fds, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(e).context("poll"),
        };
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if n > 0 {
            for (slot, ready) in slots.into_iter().zip(ready) {
                if !ready {
                    continue;
                }
                match slot {
                    Slot::Signals => {
                        if !self.on_signals(sfd)? {
                            return Ok(false);
                        }
                    }
                    Slot::Status(i) => self.on_status(i),
                    // Demand on one of several addresses: one process serves
                    // them all, so start at most one per round.
                    Slot::Listen(i) => {
                        if self.services[i].wants_demand(Instant::now()) {
                            self.spawn(i)
                        }
                    }
                }
            }
        }
        self.run_wakeups();
        Ok(true)
    }

    fn next_timeout(&self, now: Instant) -> PollTimeout {
        let mut next = now + Duration::from_secs(60);
        for s in &self.services {
            if let Some(w) = s.next_wakeup {
                next = next.min(w);
            }
            if let Some(t) = s.throttled_until
                && t > now
            {
                next = next.min(t);
            }
        }
        let ms = next.saturating_duration_since(now).as_millis().min(60_000) as i32;
        PollTimeout::try_from(ms.max(1)).unwrap_or(PollTimeout::MAX)
    }

    fn on_signals(&mut self, sfd: &SignalFd) -> Result<bool> {
        let mut keep_going = true;
        while let Some(info) = sfd.read_signal().context("read signalfd")? {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => self.reap(),
                Ok(Signal::SIGHUP) => self.reload(),
                Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => keep_going = false,
                _ => {}
            }
        }
        Ok(keep_going)
    }

    fn reap(&mut self) {
        loop {
            let st = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return,
                Ok(st) => st,
                Err(e) => {
                    postern_log::warning(format!("waitpid: {e}"));
                    return;
                }
            };
            let (pid, abnormal) = match st {
                WaitStatus::Exited(pid, code) => (
                    pid.as_raw(),
                    (code != 0).then(|| format!("exit status {code}")),
                ),
                WaitStatus::Signaled(pid, sig, _) => (
                    pid.as_raw(),
                    Some(format!("killed by signal {}", sig as i32)),
                ),
                _ => continue,
            };
            self.child_gone(pid, abnormal);
        }
    }

    fn child_gone(&mut self, pid: i32, abnormal: Option<String>) {
        if let Some(label) = self.retiring.remove(&pid) {
            if self.retiring.is_empty() {
                self.old_status.clear();
            }
            if let Some(why) = abnormal {
                postern_log::warning(format!("process {label} pid {pid} {why}"));
            }
            return;
        }
        let throttle = self.config.time(p::SERVICE_THROTTLE_TIME);
        let now = Instant::now();
        for s in self.services.iter_mut() {
            if let Some(c) = s.children.remove(&pid) {
                if c.available {
                    s.available = s.available.saturating_sub(1);
                }
                if let Some(why) = abnormal {
                    postern_log::warning(format!("process {} pid {pid} {why}", s.entry.command));
                    // As Postfix's master: only a process that died before it
                    // served anything throttles its service; one crash of a
                    // working daemon costs only the process.
                    if should_throttle(&c, s.throttled_until, now) {
                        postern_log::warning(format!(
                            "{}: bad command startup -- throttling",
                            s.entry.command
                        ));
                        s.throttled_until = Some(now + throttle);
                    }
                }
                return;
            }
        }
    }

    fn on_status(&mut self, i: usize) {
        self.read_status(i);
        self.services[i].warn_if_at_limit(Instant::now());
    }

    fn read_status(&mut self, i: usize) {
        let s = &mut self.services[i];
        let mut buf = [0u8; status::MSG_LEN * 64];
        loop {
            let n = match s.status_read.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    postern_log::warning(format!("{}: read status pipe: {e}", s.label()));
                    return;
                }
            };
            for chunk in buf[..n].chunks_exact(status::MSG_LEN) {
                let mut m = [0u8; status::MSG_LEN];
                m.copy_from_slice(chunk);
                let (pid, _gen, st) = status::decode(&m);
                let Some(c) = s.children.get_mut(&(pid as i32)) else {
                    continue;
                };
                if st == status::BUSY {
                    c.use_count = c.use_count.saturating_add(1);
                }
                match (c.available, st == status::AVAILABLE) {
                    (true, false) => {
                        c.available = false;
                        s.available = s.available.saturating_sub(1);
                    }
                    (false, true) => {
                        c.available = true;
                        s.available += 1;
                    }
                    _ => {}
                }
            }
        }
    }

    fn daemon_args(&self, s: &Running) -> Vec<String> {
        let mut a = vec![
            "-c".to_string(),
            self.dir.display().to_string(),
            "-n".into(),
            s.entry.name.clone(),
            "-t".into(),
            service::kind_name(s.entry.kind).into(),
            "-g".into(),
            self.generation.to_string(),
        ];
        if s.entry.unpriv {
            a.push("-u".into());
        }
        if s.entry.chroot && postern_sys::privs::is_root() {
            // The daemon chroots to queue_directory after its pre-init. A master
            // that is not root (a non-root instance: no privilege changes at all)
            // cannot; `postern check` and `start` say so (postern-control's jail).
            a.push("-j".into());
        }
        if s.listeners.len() > 1 {
            a.push("-s".into());
            a.push(s.listeners.len().to_string());
        }
        for (k, v) in &s.entry.overrides {
            a.push("-o".into());
            a.push(format!("{k}={v}"));
        }
        a.extend(s.entry.args.iter().cloned());
        a
    }

    fn spawn(&mut self, i: usize) {
        let args = self.daemon_args(&self.services[i]);
        let s = &mut self.services[i];
        let mut cmd = Command::new(&self.exe);
        cmd.arg0(&s.entry.command)
            .args(&args)
            .env("POSTERN_DAEMON", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let listeners: Vec<&std::os::fd::OwnedFd> = s.listeners.iter().collect();
        postern_sys::fd::place_fds(
            &mut cmd,
            &listeners,
            Some(&s.status_write),
            self.flow.as_ref().map(|f| f.ends()),
        );
        // Under AppArmor each daemon enters its own profile (postern-PROGRAM);
        // a request that cannot be made fails the spawn (fail closed).
        let spawned = postern_sys::apparmor::exec_into(&mut cmd, &s.entry.command)
            .map_err(std::io::Error::other)
            .and_then(|profile| {
                cmd.spawn().map_err(|e| match profile {
                    Some(p) => std::io::Error::new(e.kind(), format!("{e} (AppArmor profile {p})")),
                    None => e,
                })
            });
        match spawned {
            Ok(child) => {
                let pid = child.id() as i32;
                s.children.insert(
                    pid,
                    Child {
                        available: true,
                        use_count: 0,
                    },
                );
                s.available += 1;
                s.used = true;
            }
            Err(e) => {
                postern_log::warning(format!("fork/exec {}: {e} -- throttling", s.entry.command));
                let throttle = self.config.time(p::SERVICE_THROTTLE_TIME);
                s.throttled_until = Some(Instant::now() + throttle);
            }
        }
    }

    fn run_wakeups(&mut self) {
        let now = Instant::now();
        for s in self.services.iter_mut() {
            let Some(w) = s.entry.wakeup else { continue };
            if w.seconds == 0 {
                continue;
            }
            if s.next_wakeup.is_none() && w.conditional && s.used {
                s.next_wakeup = Some(now + Duration::from_secs(w.seconds as u64));
            }
            let Some(due) = s.next_wakeup else { continue };
            if due > now {
                continue;
            }
            s.next_wakeup = Some(now + Duration::from_secs(w.seconds as u64));
            if let Some(path) = &s.socket_path {
                wake(path);
            }
        }
    }

    fn reload(&mut self) {
        let (config, master_cf) = match postern_server::load::load(&self.dir)
            .map_err(anyhow::Error::from)
            .and_then(|l| Ok((l.config, postern_server::load::load_master(&self.dir)?)))
        {
            Ok(x) => x,
            Err(e) => {
                postern_log::warning(format!(
                    "reload failed, keeping the old configuration: {e:#}"
                ));
                return;
            }
        };
        let mut kept = service::Kept::new();
        for mut s in self.services.drain(..) {
            kept.extend(s.listen_keys.drain(..).zip(s.listeners.drain(..)));
            if !s.children.is_empty() {
                self.old_status.push(s.status_read);
            }
            for (pid, _) in s.children {
                if let Err(e) = postern_sys::privs::signal(pid, Signal::SIGHUP) {
                    postern_log::warning(format!("signal pid {pid}: {e}"));
                }
                self.retiring.insert(pid, s.entry.command.clone());
            }
        }
        // Wait for the old trigger services (qmgr, pickup) to finish first, so
        // that two queue managers never run at once. Other old processes (smtpd
        // with sessions in progress, delivery agents) finish their work and exit
        // on their own while the new generation already serves: never killed.
        self.wait_retiring(Duration::from_secs(30), |cmd| {
            matches!(cmd.split_whitespace().next(), Some("qmgr" | "pickup"))
        });
        self.config = config;
        self.generation += 1;
        let wanted = service::wanted_keys(&self.config, &master_cf.services);
        kept.retain(|k, _| wanted.contains(k));
        match service::build(&self.config, &master_cf.services, &mut kept, false) {
            Ok(s) => self.services = s,
            Err(e) => postern_log::warning(format!("reload: {e:#}")),
        }
        // Listeners of services that are gone or moved close here.
        drop(kept);
        postern_log::info(format!(
            "reload -- version {}, configuration {}",
            env!("CARGO_PKG_VERSION"),
            self.dir.display()
        ));
    }

    /// Reaps retiring children until none for which `must_go(command)` holds
    /// is left (at most `limit`), then kills those that are still there.
    fn wait_retiring(&mut self, limit: Duration, must_go: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + limit;
        while self.retiring.values().any(|c| must_go(c)) && Instant::now() < deadline {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(20)),
                Ok(WaitStatus::Exited(pid, _)) | Ok(WaitStatus::Signaled(pid, _, _)) => {
                    self.retiring.remove(&pid.as_raw());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        for (pid, _) in self.retiring.iter().filter(|(_, c)| must_go(c)) {
            if let Err(e) = postern_sys::privs::signal(*pid, Signal::SIGKILL) {
                postern_log::warning(format!("kill pid {pid}: {e}"));
            }
        }
        if self.retiring.is_empty() {
            self.old_status.clear();
        }
    }

    fn shutdown(&mut self) {
        postern_log::info("terminating on signal");
        for s in &self.services {
            for pid in s.children.keys() {
                self.retiring.insert(*pid, s.entry.command.clone());
            }
        }
        for pid in self.retiring.keys() {
            if let Err(e) = postern_sys::privs::signal(*pid, Signal::SIGTERM) {
                postern_log::warning(format!("signal pid {pid}: {e}"));
            }
        }
        self.wait_retiring(Duration::from_secs(10), |_| true);
        for s in &self.services {
            if let Some(p) = &s.socket_path
                && let Err(e) = std::fs::remove_file(p)
            {
                postern_log::warning(format!("remove {}: {e}", p.display()));
            }
        }
        let pid = Path::new(&self.config.str(p::QUEUE_DIRECTORY)).join("pid/master.pid");
        if let Err(e) = std::fs::remove_file(&pid) {
            postern_log::warning(format!("remove {}: {e}", pid.display()));
        }
    }
}

/// Sends a wake-up to a trigger service without blocking master.
fn wake(path: &Path) {
    use std::os::unix::net::UnixStream;
    match UnixStream::connect(path) {
        Ok(mut s) => {
            if let Err(e) = s.set_nonblocking(true).and_then(|()| s.write_all(b"W"))
                && e.kind() != std::io::ErrorKind::WouldBlock
            {
                postern_log::warning(format!("wakeup {}: {e}", path.display()));
            }
        }
        // A full backlog means the service is already busy waking up.
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => postern_log::warning(format!("connect to {}: {e}", path.display())),
    }
}

/// Whether the abnormal exit of `child` throttles its service: only when it
/// never served a client and the service is not throttled already
/// (Postfix's `master_reap_child`).
fn should_throttle(child: &Child, throttled_until: Option<Instant>, now: Instant) -> bool {
    child.use_count == 0 && throttled_until.is_none_or(|t| now >= t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_process_that_never_served_throttles() {
        let now = Instant::now();
        let fresh = Child {
            available: true,
            use_count: 0,
        };
        let worked = Child {
            available: false,
            use_count: 3,
        };
        assert!(should_throttle(&fresh, None, now));
        assert!(!should_throttle(&worked, None, now));
        assert!(!should_throttle(
            &fresh,
            Some(now + Duration::from_secs(5)),
            now
        ));
        assert!(should_throttle(
            &fresh,
            Some(now),
            now + Duration::from_secs(1)
        ));
    }
}
