//! "Nothing accepted and ignored": the settings of a main.cf/master.cf pair that Postern
//! recognises but does not implement, for `postern check` and `postern start`.
//!
//! [`not_implemented`] returns one [`Finding`] per setting:
//!
//! * a main.cf parameter, or a master.cf `-o` override, listed in
//!   [`crate::unimplemented::UNIMPLEMENTED`]: `parameter NAME=VALUE is not implemented`.
//!   A [`Effect::Refuse`] row whose effective value differs from Postfix's default
//!   refuses ([`Finding::refuse`]); everything else is a warning.
//! * an smtpd restriction word Postern does not implement
//!   ([`crate::unimplemented::UNIMPLEMENTED_RESTRICTIONS`]: `reject_unverified_*`,
//!   `permit_tls_clientcerts`…) in a restriction list or class, in main.cf or a `-o`
//!   override: refused (`parameter NAME: restriction WORD is not implemented`).
//! * (master.cf's chroot column is implemented: a root master runs those daemons in the
//!   jail; postern-control's `jail` module checks the jail and reports a non-root instance.)
//! * a service type master does not serve (`unix-dgram`, `fifo`, `pass`: not started) and a
//!   command Postern does not have (`postscreen`, `spawn`, `tlsproxy`…: it fails when master
//!   starts it, so nothing is served in its place). Reported. Commands whose work Postern
//!   does elsewhere ([`IN_PROCESS_COMMANDS`]: `trivial-rewrite`, `tlsmgr`…) are not.
//!
//! # Errors
//!
//! Nothing fails here: syntax errors are [`crate::check_texts`]'s business, and a file that
//! does not parse yields no findings.

use std::fmt;

use crate::unimplemented::{
    Effect, HARMLESS_VALUES, IMPLEMENTED_COMMANDS, IN_PROCESS_COMMANDS, RESTRICTION_LISTS,
    UNIMPLEMENTED_RESTRICTIONS, unimplemented,
};
use crate::{Config, ParamKind, Service, param, parse_main_cf, parse_master_cf, split_list};

/// One recognised but unimplemented setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `PATH: line N`.
    pub location: String,
    /// What is not implemented, e.g. `parameter content_filter=amavis:[127.0.0.1]:10024 is not implemented`.
    pub what: String,
    /// True when `start` must refuse to run with it.
    pub refuse: bool,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.what)?;
        if self.refuse {
            f.write_str(
                " and changes security or mail flow: Postern does not run with it \
                 (remove it or set it to Postfix's default)",
            )?;
        }
        Ok(())
    }
}

/// Every recognised but unimplemented setting of a main.cf/master.cf pair, main.cf first
/// (in line order), then master.cf (in service order).
pub fn not_implemented(
    main_cf: &str,
    master_cf: &str,
    main_path: &str,
    master_path: &str,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let cfg = match parse_main_cf(main_cf) {
        Ok(main) => {
            let cfg = Config::new(main.clone());
            for e in main.effective_entries() {
                let (name, value, line) = (e.name.as_str(), e.value.as_str(), e.line);
                if let Some(effect) = unimplemented(name) {
                    out.push(param_finding(
                        &cfg,
                        name,
                        value,
                        effect,
                        format!("{main_path}: line {line}"),
                        "",
                    ));
                }
            }
            for e in main.effective_entries() {
                let location = format!("{main_path}: line {}", e.line);
                out.extend(restriction_findings(&cfg, &e.name, &location, ""));
            }
            cfg
        }
        Err(_) => Config::default(),
    };
    if let Ok(master) = parse_master_cf(master_cf) {
        for svc in &master.services {
            out.extend(check_service(&cfg, svc, master_path));
        }
    }
    out
}

/// The findings of one master.cf service.
fn check_service(base: &Config, svc: &Service, master_path: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let label = format!(
        "service {}/{}",
        svc.name,
        crate::service_type_name(svc.kind)
    );
    let location = format!("{master_path}: line {}", svc.line);
    let report = |what: String| Finding {
        location: location.clone(),
        what: format!("{label}: {what}"),
        refuse: false,
    };
    if IN_PROCESS_COMMANDS.contains(&svc.command.as_str()) {
        // Done elsewhere (see the list's doc); nothing is missing.
    } else {
        match svc.kind {
            crate::ServiceType::Inet | crate::ServiceType::Unix => {
                if !IMPLEMENTED_COMMANDS.contains(&svc.command.as_str()) {
                    out.push(report(format!(
                        "command {} is not implemented",
                        svc.command
                    )));
                }
            }
            other => out.push(report(format!(
                "service type {} is not implemented (the service is not started)",
                crate::service_type_name(other)
            ))),
        }
    }
    let scfg = base.with_overrides(&svc.overrides);
    for (name, _) in &svc.overrides {
        out.extend(restriction_findings(
            &scfg,
            name,
            &location,
            &format!("{label}: "),
        ));
    }
    for (name, value) in &svc.overrides {
        if let Some(effect) = unimplemented(name) {
            out.push(param_finding(
                &scfg,
                name,
                value,
                effect,
                location.clone(),
                &format!("{label}: "),
            ));
        }
    }
    out
}

/// The unimplemented restriction words in parameter `name` (a restriction list or class),
/// one refusing finding each.
fn restriction_findings(cfg: &Config, name: &str, location: &str, prefix: &str) -> Vec<Finding> {
    let is_list = RESTRICTION_LISTS.contains(&name)
        || cfg
            .list(crate::p::SMTPD_RESTRICTION_CLASSES)
            .iter()
            .any(|c| c == name);
    if !is_list {
        return Vec::new();
    }
    cfg.get_list(name)
        .iter()
        .map(|w| w.to_ascii_lowercase())
        .filter(|w| UNIMPLEMENTED_RESTRICTIONS.contains(&w.as_str()))
        .map(|w| Finding {
            location: location.to_string(),
            what: format!("{prefix}parameter {name}: restriction {w} is not implemented"),
            refuse: true,
        })
        .collect()
}

fn param_finding(
    cfg: &Config,
    name: &str,
    value: &str,
    effect: Effect,
    location: String,
    prefix: &str,
) -> Finding {
    Finding {
        location,
        what: format!("{prefix}parameter {name}={value} is not implemented"),
        refuse: effect == Effect::Refuse && !at_default(cfg, name) && !harmless(cfg, name),
    }
}

/// Whether the value of `name` is one of its [`HARMLESS_VALUES`].
fn harmless(cfg: &Config, name: &str) -> bool {
    let value = cfg.get(name);
    HARMLESS_VALUES
        .iter()
        .any(|(n, values)| *n == name && values.contains(&value.trim()))
}

/// Whether the effective value of `name` equals Postfix's default (both expanded in `cfg`;
/// lists compared element by element, booleans by meaning).
pub fn at_default(cfg: &Config, name: &str) -> bool {
    let Some(p) = param(name) else {
        return true;
    };
    let value = cfg.get(name);
    let default = cfg.expand(p.default);
    if p.kind == ParamKind::Bool {
        let b = |v: &str| crate::config::parse_bool(v);
        return b(&value).is_some() && b(&value) == b(&default);
    }
    split_list(&value) == split_list(&default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(main: &str, master: &str) -> Vec<String> {
        not_implemented(main, master, "m", "x")
            .iter()
            .map(|f| format!("{}{}", if f.refuse { "R " } else { "" }, f))
            .map(|s| s.split(" and changes").next().unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn main_cf_settings() {
        let got = texts(
            "myhostname = a.b\nsmtpd_upstream_proxy_protocol =\nsender_dependent_relayhost_maps = inline:{a=b}\n\
             smtp_generic_maps =\npostscreen_greet_wait = 3s\npostscreen_bare_newline_action = enforce\n",
            "",
        );
        assert_eq!(
            got,
            [
                "m: line 2: parameter smtpd_upstream_proxy_protocol= is not implemented",
                "R m: line 3: parameter sender_dependent_relayhost_maps=inline:{a=b} is not implemented",
                "m: line 4: parameter smtp_generic_maps= is not implemented",
                "m: line 5: parameter postscreen_greet_wait=3s is not implemented",
                "m: line 6: parameter postscreen_bare_newline_action=enforce is not implemented",
            ]
        );
        let got = texts(
            "smtp_generic_maps = inline:{a=b}\nsender_dependent_relayhost_maps = x:y\n",
            "",
        );
        assert!(got.iter().all(|l| l.starts_with("R ")), "{got:?}");
    }

    #[test]
    fn default_expressions_compare_expanded() {
        // smtp_fallback_relay's default is $fallback_relay (empty).
        let cfg = Config::new(parse_main_cf("smtp_fallback_relay = $fallback_relay").unwrap());
        assert!(at_default(&cfg, "smtp_fallback_relay"));
        let cfg = Config::new(
            parse_main_cf("message_drop_headers = bcc content-length resent-bcc,return-path")
                .unwrap(),
        );
        assert!(at_default(&cfg, "message_drop_headers"));
        let got = texts("smtp_tcp_port = 25\nlmtp_generic_maps = inline:{a=b}\n", "");
        assert_eq!(
            got.iter().filter(|l| l.starts_with("R ")).count(),
            1,
            "{got:?}"
        );
        let cfg = Config::new(parse_main_cf("soft_bounce = false").unwrap());
        assert!(at_default(&cfg, "soft_bounce"));
    }

    #[test]
    fn master_cf_fields() {
        let master = "smtp inet n - y - - smtpd -o sender_dependent_relayhost_maps= -o smtpd_upstream_proxy_protocol=haproxy\n\
                      postlog unix-dgram n - n - 1 postlogd\n\
                      tlsmgr unix - - n 1000? 1 tlsmgr\n\
                      policy unix - n n - 0 oqmgr\n\
                      old fifo - - n - 0 pickup\n\
                      cleanup unix n - n - 0 cleanup\n";
        let got = texts("", master);
        assert_eq!(
            got,
            [
                "x: line 1: service smtp/inet: parameter sender_dependent_relayhost_maps= is not implemented",
                "R x: line 1: service smtp/inet: parameter smtpd_upstream_proxy_protocol=haproxy is not implemented",
                "x: line 4: service policy/unix: command oqmgr is not implemented",
                "x: line 5: service old/fifo: service type fifo is not implemented (the service is not started)",
            ]
        );
    }

    #[test]
    fn every_refusing_row_is_at_default_in_an_empty_main_cf() {
        let cfg = Config::default();
        for (name, effect) in crate::unimplemented::UNIMPLEMENTED {
            if *effect == Effect::Refuse {
                assert!(
                    at_default(&cfg, name),
                    "{name} is not at its default when unset"
                );
            }
        }
        assert!(texts("", "").is_empty());
    }

    #[test]
    fn restriction_words() {
        let main = "smtpd_restriction_classes = strict\nstrict = reject_unverified_sender\n\
                    smtpd_recipient_restrictions = permit_mynetworks, reject_unverified_recipient\n";
        let master =
            "sub inet n - n - - smtpd -o smtpd_client_restrictions=permit_tls_clientcerts,reject\n";
        let got = texts(main, master);
        assert_eq!(
            got,
            [
                "R m: line 2: parameter strict: restriction reject_unverified_sender is not implemented",
                "R m: line 3: parameter smtpd_recipient_restrictions: restriction reject_unverified_recipient is not implemented",
                "R x: line 1: service sub/inet: parameter smtpd_client_restrictions: restriction permit_tls_clientcerts is not implemented",
            ]
        );
    }

    #[test]
    fn default_master_cf_is_clean() {
        let got = texts("", &crate::default_master_cf("127.0.0.1:2525"));
        assert!(got.is_empty(), "{got:?}");
    }
}
