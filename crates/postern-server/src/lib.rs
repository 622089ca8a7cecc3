//! postern-server — configuration loading, the daemon skeletons and the
//! client side of the internal protocols (layer 1).
//!
//! * [`load`]: find the configuration directory (`-c DIR`, `MAIL_CONFIG`,
//!   `/etc/postern`), read `main.cf`/`master.cf`, apply host-dependent defaults.
//! * [`skeleton`]: what every daemon does at start (parse master's arguments,
//!   load config with the service's `-o` overrides, set up logging, the
//!   pre-init/post-init hooks, chroot, drop privileges to `mail_owner`).
//! * [`service`]: what a server runs on ([`service::Env`]: listeners, status
//!   sink, shutdown; master's or a test's), the [`service::Service`] callbacks,
//!   and the one-client-at-a-time loops: [`service::single_server`] (cleanup,
//!   bounce, showq, spawn) and [`service::trigger_server`] (pickup).
//! * [`inet`]: the addresses of an `inet` service (`inet_interfaces`,
//!   `inet_protocols`), shared by master and `postern check`.
//! * [`acl`]: the local-user access lists (`authorized_submit_users`…).
//! * [`status`]: the child → master status messages.
//! * [`agent`]: the delivery-agent server (`deliver/1` on the single server)
//!   and result logging (local, virtual, pipe, discard, error, smtp/lmtp).
//! * [`command`]: the user commands' edge: sysexits statuses, [`command::Fatal`]
//!   and its `PROG: fatal: MESSAGE` report.
//! * [`external`]: the environment and time limit of external commands (pipe, spawn).
//! * [`event`]: the event server (many sessions per process, on tokio: smtpd,
//!   qmqpd) and [`framed`], the request/reply frame server on it (anvil,
//!   proxymap, flush).
//! * [`client`]: connect to a service socket, send a trigger, or exchange one
//!   request and reply frame (`postern-ipc` attribute lists).
//!
//! Programs (layer 2) are a handful of callbacks plugged into these
//! skeletons, as Postfix's daemons plug into `mail_server.h`.

pub mod acl;
pub mod agent;
pub mod client;
pub mod command;
pub mod event;
pub mod external;
pub mod framed;
pub mod inet;
pub mod load;
pub mod service;
pub mod skeleton;
pub mod status;

/// What master runs for a master.cf command that this build does not have:
/// one fatal log line and exit status 1, so master throttles the service.
pub fn unimplemented_daemon(name: &str, args: &[std::ffi::OsString]) -> std::process::ExitCode {
    let strs: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let ctx_dir = strs
        .windows(2)
        .find(|w| w[0] == "-c")
        .map(|w| std::path::PathBuf::from(&w[1]));
    if let Ok(l) = load::load(&load::config_dir(ctx_dir.as_deref())) {
        postern_log::init(name, load::log_config(&l.config, false));
    }
    postern_log::error(format!(
        "fatal: {name}: this program is not part of this Postern version yet"
    ));
    std::process::ExitCode::from(1)
}
