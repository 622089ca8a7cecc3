//! Loading the configuration from disk.
//!
//! # Configuration
//! The directory is `-c DIR` when given, else `$MAIL_CONFIG`, else
//! `/etc/postern`. `main.cf` may be absent (all defaults); `master.cf` is
//! required only by master. Host-dependent defaults (`myhostname`,
//! `mydomain`) are computed here, from the kernel's host name.

use postern_config::{Config, MasterCf, ParseError, ValueError, p};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The compiled-in configuration directory.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/postern";

/// Errors loading configuration.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A file could not be read.
    #[error("open {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Syntax errors.
    #[error("{}", .errors.iter().map(|e| format!("{}: {e}", .path)).collect::<Vec<_>>().join("\n"))]
    Syntax {
        /// Path.
        path: String,
        /// Every error found.
        errors: Vec<ParseError>,
    },
    /// A value that does not convert to its parameter's type (Postfix's wording, with the
    /// main.cf line when main.cf supplies it).
    #[error("{}", located(.path, .error))]
    Value {
        /// main.cf's path.
        path: String,
        /// The first bad value.
        error: ValueError,
    },
}

/// `PATH: line N: message` when main.cf supplies the value, else the message alone (a `-o`
/// override, or a default that expands to a bad value).
fn located(path: &str, e: &ValueError) -> String {
    match e.line {
        Some(n) => format!("{path}: line {n}: {e}"),
        None => e.to_string(),
    }
}

/// Picks the configuration directory.
pub fn config_dir(cli: Option<&Path>) -> PathBuf {
    if let Some(d) = cli {
        return d.to_path_buf();
    }
    match std::env::var_os("MAIL_CONFIG") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(DEFAULT_CONFIG_DIR),
    }
}

/// The set-gid copy of `name` (postdrop, postqueue) that an ordinary user of a root
/// install needs (an ordinary user cannot write `maildrop/` or reach `public/` otherwise):
/// `DIR/bin/NAME` in an instance made by `postern init`, else `$daemon_directory/NAME`
/// (the system layout, made by `postern set-permissions`). Only a root-owned set-gid
/// regular file counts. `None` for root and when there is no such copy (a non-root
/// instance): run this executable itself. The `$daemon_directory` copy serves only a
/// queue whose `maildrop/` the caller does not own: a non-root instance keeps using
/// this executable even where a system install's copies exist.
pub fn setgid_helper(dir: &Path, cfg: &Config, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let caller = postern_sys::privs::real_uid();
    if caller == 0 {
        return None;
    }
    let maildrop = Path::new(&cfg.str(p::QUEUE_DIRECTORY)).join("maildrop");
    let system_copy = std::fs::metadata(&maildrop)
        .is_ok_and(|m| m.uid() != caller)
        .then(|| Path::new(&cfg.str(p::DAEMON_DIRECTORY)).join(name));
    std::iter::once(dir.join("bin").join(name))
        .chain(system_copy)
        .find(|copy| {
            std::fs::metadata(copy)
                .is_ok_and(|m| m.is_file() && m.uid() == 0 && m.mode() & 0o2000 != 0)
        })
}

/// A loaded configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Effective main.cf parameters.
    pub config: Config,
    /// The configuration directory.
    pub dir: PathBuf,
}

fn read_optional(path: &Path) -> Result<String, LoadError> {
    match std::fs::read(path) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(LoadError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// The host name and the domain derived from it, as Postfix derives
/// `myhostname` and `mydomain`.
pub fn host_names() -> (String, String) {
    let host = postern_sys::privs::hostname().unwrap_or_else(|_| "localhost".into());
    let host = host.trim().to_ascii_lowercase();
    let fqdn = if host.contains('.') {
        host
    } else {
        format!("{host}.localdomain")
    };
    let domain = fqdn
        .split_once('.')
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| "localdomain".into());
    (fqdn, domain)
}

/// Reads `DIR/main.cf` and builds the effective configuration, validated: every boolean,
/// numerical, time and size value converts ([`validate`]), so typed getters never fail.
pub fn load(dir: &Path) -> Result<Loaded, LoadError> {
    let loaded = load_unchecked(dir)?;
    validate(dir, &loaded.config)?;
    Ok(loaded)
}

/// The first value of `cfg` that does not convert to its parameter's type, as a
/// [`LoadError::Value`] naming `DIR/main.cf` (and its line) when main.cf supplies it. Daemons
/// call it once more after applying their `-o` overrides.
pub fn validate(dir: &Path, cfg: &Config) -> Result<(), LoadError> {
    cfg.validate().map_err(|error| LoadError::Value {
        path: dir.join("main.cf").display().to_string(),
        error,
    })
}

/// [`load`] without the value checks, for what must work on a broken configuration:
/// `postern check` (which reports every bad value), `stop`, `status`, `reload`.
pub fn load_unchecked(dir: &Path) -> Result<Loaded, LoadError> {
    let path = dir.join("main.cf");
    let text = read_optional(&path)?;
    let main = postern_config::parse_main_cf(&text).map_err(|errors| LoadError::Syntax {
        path: path.display().to_string(),
        errors,
    })?;
    let mut config = Config::new(main);
    let (host, domain) = host_names();
    config.set_default("myhostname", &host);
    config.set_default("mydomain", &domain);
    config.set_default("config_directory", &dir.display().to_string());
    Ok(Loaded {
        config,
        dir: dir.to_path_buf(),
    })
}

/// Reads `DIR/master.cf`.
pub fn load_master(dir: &Path) -> Result<MasterCf, LoadError> {
    let path = dir.join("master.cf");
    let text = std::fs::read(&path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    postern_config::parse_master_cf(&String::from_utf8_lossy(&text)).map_err(|errors| {
        LoadError::Syntax {
            path: path.display().to_string(),
            errors,
        }
    })
}

/// The log configuration for a program.
pub fn log_config(cfg: &Config, to_stderr: bool) -> postern_log::LogConfig {
    postern_log::LogConfig {
        syslog_name: cfg.str(p::SYSLOG_NAME),
        maillog_file: cfg.str(p::MAILLOG_FILE),
        hostname: cfg.str(p::MYHOSTNAME),
        stderr: to_stderr,
        verbose_stderr: false,
        facility: postern_log::facility_code(&cfg.str(p::SYSLOG_FACILITY)),
    }
}

/// The log configuration for a command that ordinary users run (sendmail,
/// postdrop, postqueue): [`log_config`] with stderr, except that a
/// `maillog_file` this process may not append to (an ordinary user of a root
/// instance, without the set-gid group) is replaced by syslog, instead of a
/// warning on every run and log lines on the user's stderr.
pub fn command_log_config(cfg: &Config) -> postern_log::LogConfig {
    let mut lc = log_config(cfg, true);
    if !lc.maillog_file.is_empty()
        && let Err(e) = std::fs::OpenOptions::new()
            .append(true)
            .open(&lc.maillog_file)
        && e.kind() == std::io::ErrorKind::PermissionDenied
    {
        lc.maillog_file.clear();
    }
    lc
}
