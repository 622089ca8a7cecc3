//! postern-control — the verbs of Postfix's `postfix(1)` command:
//! `start`, `start-fg`, `stop`, `abort`, `reload`, `status`, `check`, `flush`,
//! `set-permissions` (owners and modes of the tree: [`perms`]).
//!
//! `start` checks the configuration, makes sure the queue directories exist,
//! removes writer leftovers that never became ready (a crash before a queue
//! file was complete; no writer runs while master is down), then starts
//! master in the background (`master -w`: a new session, standard
//! descriptors on /dev/null once up) and waits until master has closed its
//! stderr and locked its pid file; master's start-up errors are printed.
//! `start-fg` purges the same leftovers and runs master in the foreground
//! (containers, supervisors).
//!
//! # Security
//! Only signals master by the pid from its locked pid file, after checking
//! that the lock is held (so a stale pid file never makes us signal a stranger).
//!
//! # Configuration
//! `-c DIR` / `MAIL_CONFIG`; `queue_directory`.

mod jail;
mod listen;
mod perms;

use anyhow::{Context as _, Result, bail};
use postern_config::p;
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Entry point: `postern [-c DIR] VERB`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = postern_server::skeleton::daemon_args(&args);
    let mut dir = None;
    let mut verb = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" => dir = it.next().map(PathBuf::from),
            v if verb.is_none() && !v.starts_with('-') => verb = Some(v.to_string()),
            other => {
                postern_log::to_stderr(&format!("postern: fatal: unexpected argument: {other}"));
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
        "reload" => jail::populate(&dir)
            .and_then(|()| signal(&dir, nix::sys::signal::Signal::SIGHUP, "refreshing")),
        "status" => status(&dir),
        "check" => check(&dir),
        "flush" => flush(&dir),
        "set-permissions" => perms::set_permissions(&dir),
        other => Err(anyhow::anyhow!("unknown command: '{other}'")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            postern_log::to_stderr(&format!("postern/postern-script: fatal: {e:#}"));
            ExitCode::from(1)
        }
    }
}

fn log_init(dir: &Path) -> Result<postern_config::Config> {
    let loaded = postern_server::load::load_unchecked(dir)?;
    postern_log::init(
        "postfix-script",
        postern_server::load::log_config(&loaded.config, true),
    );
    Ok(loaded.config)
}

fn pid_path(cfg: &postern_config::Config) -> PathBuf {
    Path::new(&cfg.str(p::QUEUE_DIRECTORY)).join("pid/master.pid")
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

/// Every problem that stops `check` and `start`: syntax and value errors, recognised but
/// unimplemented settings that change security or mail flow (see
/// [`postern_config::not_implemented`]), and Berkeley DB tables left by Postfix.
fn check_problems(dir: &Path) -> Vec<String> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let (main, master) = (dir.join("main.cf"), dir.join("master.cf"));
    let (main_text, master_text) = (read("main.cf"), read("master.cf"));
    let (main_name, master_name) = (main.display().to_string(), master.display().to_string());
    let mut problems =
        postern_config::check_texts(&main_text, &master_text, &main_name, &master_name);
    if !master.exists() {
        problems.push(format!("{}: no such file", master.display()));
    }
    problems.extend(
        postern_config::not_implemented(&main_text, &master_text, &main_name, &master_name)
            .into_iter()
            .filter(|f| f.refuse)
            .map(|f| f.to_string()),
    );
    problems.extend(foreign_tables(dir));
    if let Ok(loaded) = postern_server::load::load_unchecked(dir) {
        let facility = loaded.config.str(p::SYSLOG_FACILITY);
        if postern_log::facility_code(&facility).is_none() {
            problems.push(format!(
                "{}: syslog_facility: unknown syslog facility: \"{facility}\"",
                main.display()
            ));
        }
    }
    problems.extend(listen::problems(dir));
    problems.extend(jail::problems(dir));
    problems
}

/// Indexed tables (`hash:`/`btree:`, also behind `proxy:`) named in main.cf or a master.cf
/// `-o` override whose file is a Berkeley DB file from Postfix, with the command that
/// rebuilds it in Postern's format (postalias for alias tables, postmap for the rest).
fn foreign_tables(dir: &Path) -> Vec<String> {
    let Ok(loaded) = postern_server::load::load_unchecked(dir) else {
        return Vec::new();
    };
    let cfg = &loaded.config;
    let main_cf = dir.join("main.cf").display().to_string();
    let master_cf = dir.join("master.cf").display().to_string();
    // (file, line, parameter, configuration in effect there)
    let mut settings: Vec<(&str, usize, String, postern_config::Config)> = cfg
        .main_entries()
        .into_iter()
        .map(|(name, _, line)| (main_cf.as_str(), line, name, cfg.clone()))
        .collect();
    if let Ok(master) = postern_server::load::load_master(dir) {
        for svc in master.services {
            let scfg = cfg.with_overrides(&svc.overrides);
            for (name, _) in &svc.overrides {
                settings.push((master_cf.as_str(), svc.line, name.clone(), scfg.clone()));
            }
        }
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (path, line, name, c) in &settings {
        for spec in c.get_list(name) {
            let inner = spec.strip_prefix("proxy:").unwrap_or(&spec);
            let Some((kind, table)) = inner.split_once(':') else {
                continue;
            };
            let Some(db) = postern_table::indexed::DbKind::from_type(kind) else {
                continue;
            };
            let file = db.path(table);
            if !postern_table::indexed::is_berkeley_db(&file) || !seen.insert(file.clone()) {
                continue;
            }
            let tool = if name.starts_with("alias_") {
                "postalias"
            } else {
                "postmap"
            };
            out.push(format!(
                "{path}: line {line}: {name}: {}: a Berkeley DB file from Postfix, which \
                 Postern does not read: rebuild it with \"postern {tool} {inner}\"",
                file.display(),
            ));
        }
    }
    out
}

/// Postfix's "unused parameter" warnings (names in main.cf that nothing uses), then one
/// warning per recognised but unimplemented setting that does not stop `start`.
fn unused_warnings(dir: &Path) -> Vec<String> {
    let Ok(loaded) = postern_server::load::load_unchecked(dir) else {
        return Vec::new();
    };
    let master = postern_server::load::load_master(dir).ok();
    let main = dir.join("main.cf");
    let mut out: Vec<String> = loaded
        .config
        .unused_main_params(master.as_ref())
        .into_iter()
        .map(|(name, value, _line)| format!("{}: unused parameter: {name}={value}", main.display()))
        .collect();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    out.extend(
        postern_config::not_implemented(
            &read("main.cf"),
            &read("master.cf"),
            &main.display().to_string(),
            &dir.join("master.cf").display().to_string(),
        )
        .into_iter()
        .filter(|f| !f.refuse)
        .map(|f| f.to_string()),
    );
    out.extend(jail::warnings(dir));
    out
}

fn check(dir: &Path) -> Result<ExitCode> {
    for w in unused_warnings(dir) {
        eprintln!("postern/postern-script: warning: {w}");
    }
    let problems = check_problems(dir);
    let cfg = postern_server::load::load_unchecked(dir)
        .ok()
        .map(|l| l.config);
    let mut count = problems.len();
    for p in &problems {
        eprintln!("postern/postern-script: error: {p}");
    }
    if let Some(cfg) = cfg {
        match perms::tree(dir, &cfg) {
            Ok(t) => {
                for p in perms::problems(&t) {
                    eprintln!("postern/postern-script: warning: {p}: {}", t.fix);
                    count += 1;
                }
            }
            Err(e) => {
                eprintln!("postern/postern-script: warning: {e:#}");
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

/// A missing or wrong queue directory, with the command that fixes it (start and
/// start-fg refuse to run on it).
fn tree_refusal(dir: &Path, cfg: &postern_config::Config) -> Result<()> {
    let t = perms::tree(dir, cfg)?;
    let problems = perms::start_problems(&t);
    let Some((last, rest)) = problems.split_last() else {
        return Ok(());
    };
    for p in rest {
        postern_log::to_stderr(&format!("postern/postern-script: fatal: {p}: {}", t.fix));
    }
    bail!("{last}: {}", t.fix)
}

fn start(dir: &Path) -> Result<ExitCode> {
    let problems = check_problems(dir);
    if !problems.is_empty() {
        for p in &problems {
            postern_log::to_stderr(&format!("postern/postern-script: fatal: {p}"));
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
    tree_refusal(dir, &cfg)?;
    // Crash leftovers are removed by postsuper -p, the program allowed to delete
    // queue files (master is not running yet, so no cleanup can be writing).
    purge_leftovers(dir)?;
    jail::populate(dir)?;
    postern_log::info("starting the Postern mail system");
    let exe = std::env::current_exe().context("locate own executable")?;
    // master -w starts its own session and, once every listener is open,
    // replaces its stderr with /dev/null: the end of this pipe means "up".
    let mut cmd = Command::new(exe);
    cmd.arg0("master")
        .arg("-c")
        .arg(dir)
        .arg("-w")
        .env("POSTERN_DAEMON", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // Under AppArmor master runs in its own profile (see postern_sys::apparmor).
    postern_sys::apparmor::exec_into(&mut cmd, "master").context("start master")?;
    let mut child = cmd.spawn().context("start master")?;
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(mut e) = child.stderr.take() {
        std::thread::spawn(move || {
            use std::io::Read;
            let mut err = String::new();
            if let Err(re) = e.read_to_string(&mut err) {
                err.push_str(&format!("(could not read its error output: {re})"));
            }
            let _receiver_gone = tx.send(err);
        });
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut err = None;
    while Instant::now() < deadline {
        if err.is_none() {
            err = rx.recv_timeout(Duration::from_millis(20)).ok();
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(st) = child.try_wait().context("wait for master")? {
            let text = err.or_else(|| rx.recv_timeout(Duration::from_secs(1)).ok());
            bail!(
                "master exited at start-up ({st}): {}",
                text.unwrap_or_default().trim()
            );
        }
        if let Some(text) = &err
            && running_pid(&cfg)?.is_some()
        {
            // Start-up warnings master printed before it detached.
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                postern_log::to_stderr(line);
            }
            return Ok(ExitCode::SUCCESS);
        }
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

/// Runs master in the foreground by replacing this process with it, after
/// the same preparation as `start` (crash leftovers purged).
fn start_fg(dir: &Path) -> Result<ExitCode> {
    let problems = check_problems(dir);
    if let Some(p) = problems.first() {
        bail!("{p}");
    }
    let cfg = log_init(dir)?;
    for w in unused_warnings(dir) {
        postern_log::warning(w);
    }
    if let Some(pid) = running_pid(&cfg)? {
        bail!("the Postern mail system is already running (pid {pid})");
    }
    tree_refusal(dir, &cfg)?;
    purge_leftovers(dir)?;
    jail::populate(dir)?;
    let exe = std::env::current_exe().context("locate own executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg0("master")
        .arg("-c")
        .arg(dir)
        .env("POSTERN_DAEMON", "1");
    postern_sys::apparmor::exec_into(&mut cmd, "master").context("exec master")?;
    let err = cmd.exec();
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
            // master removes its pid file just before it exits: wait for the exit
            // itself, so that `stop` returning means no Postern process is left.
            while Instant::now() < deadline && !exited(pid) {
                std::thread::sleep(Duration::from_millis(10));
            }
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("master (pid {pid}) did not stop within 30 seconds")
}

/// Whether process `pid` has exited: gone, or a zombie waiting for whoever
/// started it to reap it (`/proc/PID/stat` state `Z`).
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
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
    let cfg = postern_server::load::load_unchecked(dir)?.config;
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
