//! The host name that `myhostname`/`mydomain` defaults derive from.
//!
//! Read from `/proc/sys/kernel/hostname` (Linux's `uname` node name, what gethostname(2)
//! returns); when that is unreadable, `localhost`. The derivation itself is pure and lives in
//! `postern_config::apply_host_defaults` so that every loader computes the same defaults.

/// The system host name, trimmed; `localhost` when it cannot be read.
pub fn system_hostname() -> String {
    match std::fs::read_to_string("/proc/sys/kernel/hostname") {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => "localhost".to_string(),
    }
}
