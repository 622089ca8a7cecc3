//! The `milter_*` main.cf parameters as a default [`MilterSpec`] and a
//! [`MacroConfig`], shared by smtpd (`smtpd_milters`) and cleanup
//! (`non_smtpd_milters`).
//!
//! # Security
//! Pure parsing of configuration values; a value that does not parse is an error
//! (the caller refuses to run: fail closed).
//!
//! # Configuration
//! `milter_connect_timeout`, `milter_command_timeout`, `milter_content_timeout`,
//! `milter_default_action`, `milter_protocol`, `milter_*_macros`,
//! `milter_macro_defaults`.

use crate::{DefaultAction, Error, MacroConfig, MacroValues, MilterSpec, parse_protocol};
use postern_config::{Config, p};

fn bad(key: &str, value: &str) -> Error {
    Error::BadValue {
        name: key.to_string(),
        key: key.to_string(),
        value: value.to_string(),
    }
}

/// The defaults every milter of a list gets unless its `{ … }` group says
/// otherwise (the `name` is empty).
pub fn defaults(cfg: &Config) -> Result<MilterSpec, Error> {
    let action = cfg.str(p::MILTER_DEFAULT_ACTION);
    let protocol = cfg.str(p::MILTER_PROTOCOL);
    Ok(MilterSpec {
        name: String::new(),
        connect_timeout: cfg.time(p::MILTER_CONNECT_TIMEOUT),
        command_timeout: cfg.time(p::MILTER_COMMAND_TIMEOUT),
        content_timeout: cfg.time(p::MILTER_CONTENT_TIMEOUT),
        default_action: DefaultAction::parse(&action)
            .ok_or_else(|| bad("milter_default_action", &action))?,
        protocol: parse_protocol(&protocol).ok_or_else(|| bad("milter_protocol", &protocol))?,
    })
}

/// The macro lists of every stage and `milter_macro_defaults`.
pub fn macros(cfg: &Config) -> Result<MacroConfig, Error> {
    let g = |n: &str| cfg.get(n);
    let (c, h, m, r, d) = (
        g("milter_connect_macros"),
        g("milter_helo_macros"),
        g("milter_mail_macros"),
        g("milter_rcpt_macros"),
        g("milter_data_macros"),
    );
    let (eoh, eod, u, dflt) = (
        g("milter_end_of_header_macros"),
        g("milter_end_of_data_macros"),
        g("milter_unknown_command_macros"),
        g("milter_macro_defaults"),
    );
    MacroConfig::from_values(&MacroValues {
        connect: &c,
        helo: &h,
        mail: &m,
        rcpt: &r,
        data: &d,
        eoh: &eoh,
        eod: &eod,
        unknown: &u,
        defaults: &dflt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(text: &str) -> Config {
        Config::new(postern_config::parse_main_cf(text).expect("main.cf"))
    }

    #[test]
    fn postfix_defaults_and_bad_values() {
        let d = defaults(&cfg("")).expect("defaults");
        assert_eq!(d, MilterSpec::default());
        let c = cfg("milter_default_action = accept\nmilter_command_timeout = 2s\n");
        let d = defaults(&c).expect("values");
        assert_eq!(d.default_action, DefaultAction::Accept);
        assert_eq!(d.command_timeout, Duration::from_secs(2));
        assert!(defaults(&cfg("milter_default_action = maybe\n")).is_err());
        assert!(defaults(&cfg("milter_protocol = 7\n")).is_err());
        assert_eq!(
            macros(&cfg("")).expect("macros"),
            MacroConfig::postfix_defaults()
        );
    }
}
