//! The host facts that defaults derive from: the host name (`myhostname`/`mydomain`) and
//! the interface addresses (`mynetworks` from `mynetworks_style`).
//!
//! The host name is read from `/proc/sys/kernel/hostname` (Linux's `uname` node name, what gethostname(2)
//! returns); when that is unreadable, `localhost`. The derivation itself is pure and lives in
//! `postern_config::apply_host_defaults` so that every loader computes the same defaults.

use postern_config::p;

/// The system host name, trimmed; `localhost` when it cannot be read.
pub fn system_hostname() -> String {
    match std::fs::read_to_string("/proc/sys/kernel/hostname") {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => "localhost".to_string(),
    }
}

/// Sets the `mynetworks` default as smtpd computes it: `mynetworks_style` applied to the
/// addresses of `inet_interfaces` (with their netmasks) for the enabled `inet_protocols`,
/// so `postconf mynetworks` shows which clients the instance trusts, as Postfix's does.
/// Left alone when the style or the protocols are invalid (smtpd refuses to start then).
pub fn apply_mynetworks_default(cfg: &mut postern_config::Config) {
    let Ok(protos) = postern_server::inet::protocols(cfg) else {
        return;
    };
    let own = postern_table::route::Own::new(&|n| cfg.get(n), protos.ipv4, protos.ipv6);
    if let Ok(v) = postern_table::mynetworks_by_style(&cfg.str(p::MYNETWORKS_STYLE), &own.inet) {
        cfg.set_default("mynetworks", &v);
    }
}
