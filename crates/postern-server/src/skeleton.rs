//! Daemon start-up (the part of Postfix's skeletons before the server loop):
//! master's arguments, the configuration with the service's `-o` overrides,
//! logging, the pre-init and post-init hooks, chroot and privilege drop.
//!
//! master starts a daemon as `PROGRAM -c DIR -n SERVICE -t TYPE [-u] [-j]
//! [-g GEN] [-s COUNT] [-o name=value]... [args]` with the listening socket at
//! descriptor 3 (and, with `-s COUNT`, the other listeners at 7, 8, …), and
//! the service's status pipe at descriptor 4 (see `postern_sys::fd`). The
//! server loops, which take those descriptors as an [`crate::service::Env`],
//! are in [`crate::service`] (single, trigger), [`crate::agent`] (delivery
//! agents), [`crate::event`] and [`crate::framed`].
//!
//! # Security
//! [`init`] drops privileges right after loading the configuration when the
//! service is unprivileged (`-u`, master.cf's unpriv column) and the process
//! runs as root: it switches to `mail_owner` with setgid → setgroups →
//! setuid, each checked. [`init_with`] first runs the program's pre-init
//! hook as root (Postfix's `pre_init`: open root-only files such as TLS
//! keys), then drops; [`init_open`] adds a hook for what the daemon opens with
//! its own rights (lookup tables). It then asks the kernel to terminate the
//! daemon when master dies, sets umask 077, and refuses to run when not started
//! by master.
//!
//! With `-j` (master.cf's chroot column `y`) the daemon confines itself to
//! `queue_directory` between the pre-init hook and the privilege drop, as
//! Postfix's skeletons do (chroot needs root: a daemon that is not root stops
//! with a fatal error). `mail_owner` is looked up before (the jail has no
//! passwd file), the log file or syslog socket stays open, and from then on
//! the context's `queue_directory` is `/`, so queue paths resolve inside the
//! jail. What a daemon opens later by absolute path must be in the jail: `postern
//! start` copies the files of `/etc` the daemons read (see postern-control's
//! `jail` module); tables are opened by the `open` hook of [`init_open`], with
//! `mail_owner`'s effective ids, before the chroot.
//!
//! # Configuration
//! `mail_owner`, `ipc_timeout` ([`read_request`]), and the service's `-o`
//! overrides.

use crate::load;
use postern_config::{Config, p};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// What a daemon knows about itself.
#[derive(Debug, Clone)]
pub struct Context {
    /// Program name (`pickup`, `cleanup`, …).
    pub program: String,
    /// master.cf service name.
    pub service: String,
    /// master.cf service type (`unix`, `inet`…).
    pub service_type: String,
    /// Effective configuration, with the service's `-o` overrides applied.
    pub config: Config,
    /// Configuration directory.
    pub config_dir: PathBuf,
    /// Remaining command arguments from master.cf.
    pub args: Vec<String>,
    /// master's configuration generation.
    pub generation: u32,
    /// Whether the service is unprivileged.
    pub unprivileged: bool,
    /// Whether the daemon runs chrooted to the queue directory (`-j`).
    pub chrooted: bool,
    /// How many listening sockets master passed (`-s`, at least 1).
    pub listeners: usize,
}

impl Context {
    /// A context for a server run in-process (tests): service `program`, type
    /// `unix`, generation 0, one listener, privileged, not chrooted, no arguments.
    pub fn new(program: &str, config: Config) -> Context {
        Context {
            program: program.to_string(),
            service: program.to_string(),
            service_type: "unix".to_string(),
            config_dir: PathBuf::from(config.str(p::CONFIG_DIRECTORY)),
            config,
            args: Vec::new(),
            generation: 0,
            unprivileged: false,
            chrooted: false,
            listeners: 1,
        }
    }

    /// The configuration as the daemon sees it once it runs: in a chroot jail
    /// (`-j`) `queue_directory` is `/`. For a pre-init hook that builds what
    /// names queue paths (sockets under `private/`) before the chroot.
    pub fn jailed_config(&self) -> Config {
        if self.chrooted {
            self.config
                .with_overrides(&[("queue_directory".to_string(), "/".to_string())])
        } else {
            self.config.clone()
        }
    }
}

struct Parsed {
    dir: Option<PathBuf>,
    service: String,
    kind: String,
    unpriv: bool,
    jail: bool,
    generation: u32,
    listeners: usize,
    overrides: Vec<(String, String)>,
    rest: Vec<String>,
}

fn parse_args(program: &str, args: &[String]) -> Result<Parsed, String> {
    let mut p = Parsed {
        dir: None,
        service: program.to_string(),
        kind: "unix".into(),
        unpriv: false,
        jail: false,
        generation: 0,
        listeners: 1,
        overrides: Vec::new(),
        rest: Vec::new(),
    };
    let mut it = args.iter();
    // As Postfix's skeletons (getopt with a leading `+`), options end at the
    // first argument that is not one: what follows belongs to the program
    // (pipe's `argv=/bin/sh -c ...` must keep its `-c`).
    while let Some(a) = it.next() {
        if !a.starts_with('-') {
            p.rest.push(a.clone());
            p.rest.extend(it.by_ref().cloned());
            break;
        }
        let mut val = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("option {flag} needs a value"))
        };
        match a.as_str() {
            "-c" => p.dir = Some(PathBuf::from(val("-c")?)),
            "-n" => p.service = val("-n")?,
            "-t" => p.kind = val("-t")?,
            "-u" => p.unpriv = true,
            "-j" => p.jail = true,
            "-g" => p.generation = val("-g")?.parse().map_err(|_| "bad -g value".to_string())?,
            "-s" => {
                p.listeners = val("-s")?
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=256).contains(n))
                    .ok_or_else(|| "bad -s value".to_string())?
            }
            "-o" => {
                let kv = val("-o")?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("bad -o value: {kv}"))?;
                p.overrides
                    .push((k.trim().to_string(), v.trim().to_string()));
            }
            _ => p.rest.push(a.clone()),
        }
    }
    Ok(p)
}

/// A daemon's arguments after `argv[0]`, as text for [`init`] (master passes
/// only what it read from master.cf; anything not UTF-8 is replaced lossily).
pub fn daemon_args(argv: &[std::ffi::OsString]) -> Vec<String> {
    argv.iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// Daemon start-up: arguments, configuration, logging, privileges.
/// Exits with a fatal log line on any error (master throttles the service).
pub fn init(program: &str, args: &[String]) -> Context {
    init_with(program, args, |_| ()).0
}

/// [`init`] with a pre-init hook (Postfix's `pre_init`): `pre_init` runs with
/// the loaded configuration before privileges are dropped, so it can open
/// files only root may read (TLS keys: Debian's are 0640 root:ssl-cert).
/// What it returns is handed back with the context.
pub fn init_with<T>(
    program: &str,
    args: &[String],
    pre_init: impl FnOnce(&Context) -> T,
) -> (Context, T) {
    let (ctx, early, ()) = init_open(program, args, pre_init, |_| ());
    (ctx, early)
}

/// [`init_with`] plus an `open` hook for what the daemon opens with its own
/// account's rights (lookup tables, client lists): it runs after the privilege
/// drop, or, when the daemon is chrooted (`-j`), just before the chroot with
/// `mail_owner`'s effective ids (then root's again for the chroot and the
/// drop), so a chrooted daemon reads exactly the files it reads unchrooted.
/// It sees the jail's configuration through [`Context::jailed_config`].
pub fn init_open<T, U>(
    program: &str,
    args: &[String],
    pre_init: impl FnOnce(&Context) -> T,
    open: impl FnOnce(&Context) -> U,
) -> (Context, T, U) {
    if let Err(e) = postern_sys::signals::unblock_all() {
        postern_log::fatal(format!("{program}: {e}"));
    }
    let p = match parse_args(program, args) {
        Ok(p) => p,
        Err(e) => postern_log::fatal(format!("{program}: {e}")),
    };
    let dir = load::config_dir(p.dir.as_deref());
    let loaded = match load::load_unchecked(&dir) {
        Ok(l) => l,
        Err(e) => postern_log::fatal(format!("{program}: {e}")),
    };
    let mut base = loaded.config;
    // As Postfix's skeletons: $service_name and $process_name are known to
    // every daemon (master.cf uses `-o syslog_name=postfix/$service_name`).
    base.set_default("service_name", &p.service);
    base.set_default("process_name", program);
    let config = base.with_overrides(&p.overrides);
    postern_log::init(program, load::log_config(&config, false));
    // Validated once, overrides included: a bad value is fatal (master throttles the
    // service), so the typed getters never see one.
    if let Err(e) = load::validate(&dir, &config) {
        postern_log::fatal(e.to_string());
    }
    // `proxy:` tables find the proxymap socket under the queue directory. They connect
    // at their first lookup, after the chroot (-j), when the queue directory is `/`.
    postern_table::set_queue_directory(if p.jail {
        "/".to_string()
    } else {
        config.str(p::QUEUE_DIRECTORY)
    });
    postern_sys::privs::set_umask(0o077);
    let ctx = Context {
        program: program.to_string(),
        service: p.service,
        service_type: p.kind,
        config,
        config_dir: dir,
        args: p.rest,
        generation: p.generation,
        unprivileged: p.unpriv,
        chrooted: p.jail,
        listeners: p.listeners,
    };
    let mut ctx = ctx;
    let early = pre_init(&ctx);
    let owner =
        (ctx.unprivileged && postern_sys::privs::is_root()).then(|| mail_owner(&ctx.config));
    let opened = if ctx.chrooted {
        let opened = open_as(owner.as_ref(), &ctx, open);
        enter_jail(&mut ctx);
        drop_to(owner.as_ref());
        opened
    } else {
        drop_to(owner.as_ref());
        open(&ctx)
    };
    if let Err(e) = postern_sys::privs::die_with_parent() {
        postern_log::fatal(e);
    }
    (ctx, early, opened)
}

/// Runs `open` with `owner`'s effective ids (root's when `None`), then root's again.
fn open_as<U>(
    owner: Option<&postern_sys::privs::UserInfo>,
    ctx: &Context,
    open: impl FnOnce(&Context) -> U,
) -> U {
    let ids = owner.map(|u| match postern_sys::privs::EffectiveIds::switch(u) {
        Ok(ids) => ids,
        Err(e) => postern_log::fatal(e),
    });
    let opened = open(ctx);
    if let Some(ids) = ids
        && let Err(e) = ids.finish()
    {
        postern_log::fatal(e);
    }
    opened
}

fn drop_to(owner: Option<&postern_sys::privs::UserInfo>) {
    if let Some(user) = owner
        && let Err(e) = postern_sys::privs::drop_to(user.uid, user.gid)
    {
        postern_log::fatal(e);
    }
}

/// chroot to `queue_directory` (`-j`); afterwards the queue is `/`.
fn enter_jail(ctx: &mut Context) {
    let dir = ctx.config.str(p::QUEUE_DIRECTORY);
    if !postern_sys::privs::is_root() {
        postern_log::fatal(format!(
            "chroot({dir}): service {} has chroot=y in master.cf, which needs a master \
             started as root (set the chroot column to n)",
            ctx.service
        ));
    }
    // Log timestamps need the time zone: load it while /etc/localtime is reachable.
    postern_log::prepare_jail();
    if let Err(e) = postern_sys::privs::chroot_jail(std::path::Path::new(&dir)) {
        postern_log::fatal(e);
    }
    ctx.config = ctx.jailed_config();
    postern_table::set_queue_directory("/");
}

fn mail_owner(cfg: &Config) -> postern_sys::privs::UserInfo {
    let owner = cfg.str(p::MAIL_OWNER);
    let user = match postern_sys::privs::lookup_user(&owner) {
        Ok(Some(u)) => u,
        Ok(None) => postern_log::fatal(format!(
            "file {}/main.cf: parameter mail_owner: unknown user name value: {owner}",
            cfg.str(p::CONFIG_DIRECTORY)
        )),
        Err(e) => postern_log::fatal(e),
    };
    if user.uid == 0 {
        postern_log::fatal(format!("mail_owner {owner} must not be the super-user"));
    }
    user
}

/// Reads one request frame from a client of a single server, with the
/// `ipc_timeout` deadline; logs and returns `None` on a timeout, a hang-up or
/// a malformed frame. `what` names the request in log lines.
pub fn read_request(
    ctx: &Context,
    stream: &mut UnixStream,
    limit: u64,
    what: &str,
) -> Option<postern_ipc::AttrList> {
    let timeout = crate::client::ipc_timeout(&ctx.config);
    if let Err(e) = stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
    {
        postern_log::warning(format!("set socket timeout: {e}"));
        return None;
    }
    match crate::client::read_frame(stream, limit) {
        Ok(Some(a)) => Some(a),
        Ok(None) => None,
        Err(e) => {
            postern_log::warning(format!("read {what}: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_arguments() {
        let a: Vec<String> = [
            "-c", "/x", "-n", "smtp", "-t", "inet", "-u", "-o", "a=b = c", "-v",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = parse_args("smtpd", &a).unwrap();
        assert_eq!(p.service, "smtp");
        assert!(p.unpriv && !p.jail);
        assert!(parse_args("smtpd", &["-j".to_string()]).unwrap().jail);
        assert_eq!(p.overrides, vec![("a".to_string(), "b = c".to_string())]);
        assert_eq!(p.rest, vec!["-v".to_string()]);
        let pipe: Vec<String> = [
            "-n",
            "p",
            "user=x",
            "argv=/bin/sh",
            "-c",
            "exit 0",
            "-o",
            "x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = parse_args("pipe", &pipe).unwrap();
        assert_eq!((p.service.as_str(), p.dir), ("p", None));
        assert_eq!(p.rest[..], pipe[2..]);
        assert!(parse_args("x", &["-o".to_string()]).is_err());
        let two: Vec<String> = ["-n", "smtp", "-s", "2", "-v"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = parse_args("smtpd", &two).unwrap();
        assert_eq!((p.listeners, p.rest.len()), (2, 1));
        assert!(parse_args("smtpd", &["-s".to_string(), "0".to_string()]).is_err());
    }
}
