//! postern-control — the verbs of Postfix's `postfix(1)` command:
//! `start`, `start-fg`, `stop`, `abort`, `reload`, `status`, `check`, `flush`.
//!
//! `start` checks the configuration, makes sure the queue directories exist,
//! removes writer leftovers that never became ready (a crash before a queue
//! file was complete; no writer runs while master is down), then starts
//! master in the background and waits until its pid file is locked.
//! `start-fg` runs master in the foreground (containers, supervisors).
//!
//! # Security
//! Only signals master by the pid from its locked pid file, after checking
//! that the lock is held (so a stale pid file never makes us signal a stranger).
//!
//! # Configuration
//! `-c DIR` / `MAIL_CONFIG`; `queue_directory`.

use anyhow::{Context as _, Result, bail};
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Entry point: `postern [-c DIR] VERB`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut dir = None;
    let mut verb = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" => dir = it.next().map(PathBuf::from),
            v if verb.is_none() && !v.starts_with('-') => verb = Some(v.to_string()),
            other => {
                eprintln!("postern: fatal: unexpected argument: {other}");
                return ExitCode::from(64);
            }
        }
    }
    let dir = postern_server::load::config_dir(dir.as_deref());
    let verb = verb.unwrap_or_default();
    let result = match verb.as_str() {
        "start" => start(&dir),
        "start-fg" => start_fg(&dir),
        "stop" => stop(&dir, false),
        "abort" => stop(&dir, true),
        "reload" => signal(&dir, nix::sys::signal::Signal::SIGHUP, "refreshing"),
        "status" => status(&dir),
        "check" => check(&dir),
        "flush" => flush(&dir),
        other => Err(anyhow::anyhow!("unknown command: '{other}'")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("postern/postern-script: fatal: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn log_init(dir: &Path) -> Result<postern_config::Config> {
    let loaded = postern_server::load::load(dir)?;
    postern_log::init(
        "postfix-script",
        postern_server::load::log_config(&loaded.config, true),
    );
    Ok(loaded.config)
}

fn pid_path(cfg: &postern_config::Config) -> PathBuf {
    Path::new(&cfg.get("queue_directory")).join("pid/master.pid")
}

/// The running master's pid, if its pid file is locked.
fn running_pid(cfg: &postern_config::Config) -> Result<Option<i32>> {
    let path = pid_path(cfg);
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
    };
    if postern_sys::lock::flock_try_exclusive(&f, &path.display().to_string())? {
        return Ok(None); // nobody holds it: stale
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    Ok(text.trim().parse().ok())
}

fn check_problems(dir: &Path) -> Vec<String> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let (main, master) = (dir.join("main.cf"), dir.join("master.cf"));
    let mut problems = postern_config::check_texts(
        &read("main.cf"),
        &read("master.cf"),
        &main.display().to_string(),
        &master.display().to_string(),
    );
    if !master.exists() {
        problems.push(format!("{}: no such file", master.display()));
    }
    problems
}

/// Postfix's "unused parameter" warnings: names in main.cf that nothing uses.
fn unused_warnings(dir: &Path) -> Vec<String> {
    let Ok(loaded) = postern_server::load::load(dir) else {
        return Vec::new();
    };
    let master = postern_server::load::load_master(dir).ok();
    let main = dir.join("main.cf");
    loaded
        .config
        .unused_main_params(master.as_ref())
        .into_iter()
        .map(|(name, value, _line)| format!("{}: unused parameter: {name}={value}", main.display()))
        .collect()
}

fn check(dir: &Path) -> Result<ExitCode> {
    for w in unused_warnings(dir) {
        eprintln!("postern/postern-script: warning: {w}");
    }
    let problems = check_problems(dir);
    let cfg = postern_server::load::load(dir).ok().map(|l| l.config);
    let mut count = problems.len();
    for p in &problems {
        eprintln!("postern/postern-script: error: {p}");
    }
    if let Some(cfg) = cfg {
        let q = PathBuf::from(cfg.get("queue_directory"));
        for d in postern_queue::ALL_DIRS {
            if !q.join(d).is_dir() {
                eprintln!(
                    "postern/postern-script: warning: missing queue directory {}",
                    q.join(d).display()
                );
                count += 1;
            }
        }
    }
    Ok(if count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn start(dir: &Path) -> Result<ExitCode> {
    let problems = check_problems(dir);
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("postern/postern-script: fatal: {p}");
        }
        return Ok(ExitCode::from(1));
    }
    let cfg = log_init(dir)?;
    for w in unused_warnings(dir) {
        postern_log::warning(w);
    }
    if let Some(pid) = running_pid(&cfg)? {
        bail!("the Postern mail system is already running (pid {pid})");
    }
    let queue = postern_queue::Queue::new(cfg.get("queue_directory"));
    for d in postern_queue::ALL_DIRS {
        if !queue.dir(d).is_dir() {
            bail!(
                "missing queue directory {} (run `postern init` or create it)",
                queue.dir(d).display()
            );
        }
    }
    // Crash leftovers are removed by postsuper -p, the program allowed to delete
    // queue files (master is not running yet, so no cleanup can be writing).
    purge_leftovers(dir)?;
    postern_log::info("starting the Postern mail system");
    let exe = std::env::current_exe().context("locate own executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg0("master")
        .arg("-c")
        .arg(dir)
        .env("POSTERN_DAEMON", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().context("start master")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if running_pid(&cfg)?.is_some() {
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(st) = child.try_wait().context("wait for master")? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                if let Err(re) = e.read_to_string(&mut err) {
                    err = format!("(could not read its error output: {re})");
                }
            }
            bail!("master exited at start-up ({st}): {}", err.trim());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("master did not start within 10 seconds; see the mail log")
}

/// Runs `postsuper -p` for this configuration.
fn purge_leftovers(dir: &Path) -> Result<()> {
    let exe = std::env::current_exe().context("locate own executable")?;
    let out = Command::new(exe)
        .arg0("postsuper")
        .arg("-c")
        .arg(dir)
        .arg("-p")
        .stdin(Stdio::null())
        .output()
        .context("run postsuper -p")?;
    if !out.status.success() {
        bail!(
            "postsuper -p: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs master in the foreground by replacing this process with it.
fn start_fg(dir: &Path) -> Result<ExitCode> {
    let problems = check_problems(dir);
    if let Some(p) = problems.first() {
        bail!("{p}");
    }
    let exe = std::env::current_exe().context("locate own executable")?;
    let err = Command::new(exe)
        .arg0("master")
        .arg("-c")
        .arg(dir)
        .env("POSTERN_DAEMON", "1")
        .exec();
    Err(err).context("exec master")
}

fn stop(dir: &Path, abort: bool) -> Result<ExitCode> {
    let cfg = log_init(dir)?;
    let Some(pid) = running_pid(&cfg)? else {
        bail!("the Postern mail system is not running");
    };
    postern_log::info(if abort {
        "aborting the Postern mail system"
    } else {
        "stopping the Postern mail system"
    });
    let sig = if abort {
        nix::sys::signal::Signal::SIGKILL
    } else {
        nix::sys::signal::Signal::SIGTERM
    };
    postern_sys::privs::signal(pid, sig)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        // The pid file's lock goes away when master exits (even while it is an
        // unreaped zombie of whoever started it).
        if running_pid(&cfg)?.is_none()
            || !postern_sys::privs::signal(pid, nix::sys::signal::Signal::SIGCONT)?
        {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("master (pid {pid}) did not stop within 30 seconds")
}

fn signal(dir: &Path, sig: nix::sys::signal::Signal, what: &str) -> Result<ExitCode> {
    let cfg = log_init(dir)?;
    let Some(pid) = running_pid(&cfg)? else {
        bail!("the Postern mail system is not running");
    };
    postern_log::info(format!("{what} the Postern mail system"));
    postern_sys::privs::signal(pid, sig)?;
    Ok(ExitCode::SUCCESS)
}

fn status(dir: &Path) -> Result<ExitCode> {
    let cfg = postern_server::load::load(dir)?.config;
    match running_pid(&cfg)? {
        Some(pid) => {
            println!("postern/postern-script: the Postern mail system is running: PID: {pid}");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            println!("postern/postern-script: the Postern mail system is not running");
            Ok(ExitCode::from(1))
        }
    }
}

fn flush(dir: &Path) -> Result<ExitCode> {
    let cfg = log_init(dir)?;
    if running_pid(&cfg)?.is_none() {
        bail!("the Postern mail system is not running");
    }
    postern_server::client::trigger(
        &cfg,
        "public",
        "qmgr",
        &[postern_ipc::proto::trigger::FLUSH_DEFERRED],
    )?;
    Ok(ExitCode::SUCCESS)
}
