//! postern-master — the resident supervisor (Postfix's `master(8)`).
//!
//! master reads `master.cf`, opens every listening endpoint (UNIX sockets under
//! `$queue_directory/{public,private}`, TCP listeners for `inet` services),
//! and starts daemon processes on demand: when a service's socket becomes
//! readable and none of its processes is idle, master starts another, up to
//! the service's process limit. Each daemon reports busy/idle on the service's
//! status pipe. Trigger services (pickup, qmgr) are woken every `wakeup`
//! seconds. A daemon that dies abnormally is logged; its service is throttled
//! for `service_throttle_time` only when the process died before serving a
//! client (Postfix's "bad command startup"). An `inet` service listens on
//! every address of `inet_interfaces` (see `postern_server::inet`). SIGHUP
//! re-reads the configuration and replaces the daemons gracefully; SIGTERM
//! stops everything.
//!
//! `-w` (from `postern start`): master starts a new session and, once up,
//! puts /dev/null on its standard descriptors, so neither its own logging
//! nor its children can ever write to a pipe nobody reads.
//!
//! # Security
//! master is the only program that runs as root; daemons drop to `mail_owner`
//! themselves at start-up unless master.cf marks them privileged (`unpriv = n`).
//! Daemons get only the listener, the status pipe and the flow-control pipe
//! (`in_flow_delay`, see `postern_sys::flow`); every other descriptor is
//! close-on-exec. The pid file is locked, so a second
//! master refuses to start.
//!
//! # Configuration
//! `master.cf`; `default_process_limit`, `service_throttle_time`,
//! `queue_directory`, `inet_interfaces` (for bare-port inet services),
//! `mail_owner`, `setgid_group`.

mod service;
mod supervise;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// Daemon entry point: `master -c DIR`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = postern_server::skeleton::daemon_args(&args);
    let mut dir: Option<PathBuf> = None;
    let mut detach = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" => dir = it.next().map(PathBuf::from),
            "-w" => detach = true,
            "-f" | "-d" | "-v" => {}
            other => {
                postern_log::to_stderr(&format!("master: fatal: unknown option: {other}"));
                return ExitCode::from(64);
            }
        }
    }
    let dir = postern_server::load::config_dir(dir.as_deref());
    match supervise::run(&dir, detach) {
        Ok(()) => ExitCode::SUCCESS,
        // One line in the log and on stderr (which `postern start` shows).
        Err(e) => postern_log::fatal(postern_log::plain(&format!("{e:#}"))),
    }
}
