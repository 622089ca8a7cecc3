//! Which Sendmail macros go to the milters at each stage (pure).
//!
//! Before each event the client sends SMFIC_MACRO with the names of that
//! stage's list (`milter_connect_macros` …) and their values. The caller
//! supplies every value it knows in a [`Macros`] map; a name without a value
//! takes its `milter_macro_defaults` entry, and is left out when it has none.
//! A milter may replace a stage's list during negotiation (SMFIR_SETSYMLIST /
//! the lists after SMFIC_OPTNEG).
//!
//! Names are matched with or without braces: `{daemon_name}` in a list finds a
//! value stored under `{daemon_name}` or `daemon_name`; `j` finds `j` or `{j}`.
//! The name is sent as the list spells it.
//!
//! # Configuration
//! `milter_connect_macros`, `milter_helo_macros`, `milter_mail_macros`,
//! `milter_rcpt_macros`, `milter_data_macros`, `milter_end_of_header_macros`,
//! `milter_end_of_data_macros`, `milter_unknown_command_macros`,
//! `milter_macro_defaults`.

use std::collections::BTreeMap;

use postern_config::split_list;

use crate::Error;

/// Macro values the caller knows for one event, by name.
pub type Macros = BTreeMap<String, String>;

/// A protocol stage with its own macro list (the SMFIM_* numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Connection (SMFIM_CONNECT = 0).
    Connect,
    /// HELO/EHLO (1).
    Helo,
    /// MAIL FROM (2).
    Mail,
    /// RCPT TO (3).
    Rcpt,
    /// DATA (4).
    Data,
    /// End of message, also body chunks (5).
    Eom,
    /// End of headers, also each header (6).
    Eoh,
    /// An unknown SMTP command (no SMFIM number; Postfix's own list).
    Unknown,
}

impl Stage {
    /// The stage for a SMFIM_* number from a milter.
    pub fn from_smfim(n: u32) -> Option<Stage> {
        Some(match n {
            0 => Stage::Connect,
            1 => Stage::Helo,
            2 => Stage::Mail,
            3 => Stage::Rcpt,
            4 => Stage::Data,
            5 => Stage::Eom,
            6 => Stage::Eoh,
            _ => return None,
        })
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The macro lists of every stage and the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MacroConfig {
    lists: [Vec<String>; 8],
    defaults: BTreeMap<String, String>,
}

/// The main.cf values a [`MacroConfig`] is built from.
#[derive(Debug, Clone, Default)]
pub struct MacroValues<'a> {
    /// `milter_connect_macros`.
    pub connect: &'a str,
    /// `milter_helo_macros`.
    pub helo: &'a str,
    /// `milter_mail_macros`.
    pub mail: &'a str,
    /// `milter_rcpt_macros`.
    pub rcpt: &'a str,
    /// `milter_data_macros`.
    pub data: &'a str,
    /// `milter_end_of_header_macros`.
    pub eoh: &'a str,
    /// `milter_end_of_data_macros`.
    pub eod: &'a str,
    /// `milter_unknown_command_macros`.
    pub unknown: &'a str,
    /// `milter_macro_defaults`.
    pub defaults: &'a str,
}

impl MacroConfig {
    /// Builds the lists from the parameter values (already `$`-expanded).
    pub fn from_values(v: &MacroValues<'_>) -> Result<MacroConfig, Error> {
        let lists = [
            v.connect, v.helo, v.mail, v.rcpt, v.data, v.eod, v.eoh, v.unknown,
        ]
        .map(split_list);
        Ok(MacroConfig {
            lists,
            defaults: parse_defaults(v.defaults)?,
        })
    }

    /// Postfix 3.7's default lists, no defaults.
    pub fn postfix_defaults() -> MacroConfig {
        let v = MacroValues {
            connect: "j {daemon_name} {daemon_addr} v _",
            helo: "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
            mail: "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
            rcpt: "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
            data: "i",
            eoh: "i",
            eod: "i",
            unknown: "",
            defaults: "",
        };
        // XXX(static lists): from_values only fails on the defaults, which are empty.
        MacroConfig::from_values(&v).unwrap_or_default()
    }

    /// The list for a stage.
    pub fn list(&self, stage: Stage) -> &[String] {
        &self.lists[stage.index()]
    }

    /// Replaces the list for one stage (a milter's SETSYMLIST).
    pub fn set_list(&mut self, stage: Stage, names: &str) {
        self.lists[stage.index()] = split_list(names);
    }

    /// The (name, value) pairs to send for a stage: each listed name with a
    /// value in `m` or in the defaults, in list order.
    pub fn pairs(&self, stage: Stage, m: &Macros) -> Vec<(String, String)> {
        self.list(stage)
            .iter()
            .filter_map(|name| {
                let value = lookup(m, name).or_else(|| lookup(&self.defaults, name))?;
                Some((name.clone(), value.clone()))
            })
            .collect()
    }
}

/// Finds `name` as written, without braces or with braces.
fn lookup<'m>(m: &'m BTreeMap<String, String>, name: &str) -> Option<&'m String> {
    let bare = name
        .strip_prefix('{')
        .and_then(|n| n.strip_suffix('}'))
        .unwrap_or(name);
    m.get(name)
        .or_else(|| m.get(bare))
        .or_else(|| m.get(&format!("{{{bare}}}")))
}

/// Parses `milter_macro_defaults`: `name=value` or `{ name = value }` entries.
fn parse_defaults(v: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for item in split_list(v) {
        // `{ name = value }` (one group), else `name=value` or `{name}=value`.
        let group = item.starts_with('{') && item.find('}') == Some(item.len() - 1);
        let inner = if group {
            &item[1..item.len() - 1]
        } else {
            item.as_str()
        };
        let (name, value) = inner.split_once('=').ok_or_else(|| Error::BadValue {
            name: "milter_macro_defaults".into(),
            key: "entry".into(),
            value: item.clone(),
        })?;
        let name = name.trim();
        let bare = name
            .strip_prefix('{')
            .and_then(|n| n.strip_suffix('}'))
            .unwrap_or(name);
        if bare.is_empty() {
            return Err(Error::BadValue {
                name: "milter_macro_defaults".into(),
                key: "entry".into(),
                value: item.clone(),
            });
        }
        out.entry(format!("{{{bare}}}"))
            .or_insert_with(|| value.trim().to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_in_list_order_with_defaults() {
        let cfg = MacroConfig::from_values(&MacroValues {
            connect: "j {daemon_name} _ {missing}",
            defaults: "daemon_name=dflt, { _ = x y }",
            ..Default::default()
        })
        .unwrap();
        let mut m = Macros::new();
        m.insert("j".into(), "mx.example".into());
        m.insert("_".into(), "client [1.2.3.4]".into());
        let p = cfg.pairs(Stage::Connect, &m);
        assert_eq!(
            p,
            vec![
                ("j".into(), "mx.example".into()),
                ("{daemon_name}".into(), "dflt".into()),
                ("_".into(), "client [1.2.3.4]".into()),
            ]
        );
        assert!(cfg.pairs(Stage::Helo, &m).is_empty());
    }

    #[test]
    fn braces_either_way() {
        let cfg = MacroConfig::postfix_defaults();
        let mut m = Macros::new();
        m.insert("{i}".into(), "QID".into());
        m.insert("rcpt_addr".into(), "a@b".into());
        let p = cfg.pairs(Stage::Rcpt, &m);
        assert_eq!(p[0], ("i".into(), "QID".into()));
        assert_eq!(p[1], ("{rcpt_addr}".into(), "a@b".into()));
    }

    #[test]
    fn set_list_and_bad_defaults() {
        let mut cfg = MacroConfig::postfix_defaults();
        cfg.set_list(Stage::Eom, "{msg_id} i");
        assert_eq!(cfg.list(Stage::Eom), ["{msg_id}", "i"]);
        let bad = MacroValues {
            defaults: "novalue",
            ..Default::default()
        };
        assert!(MacroConfig::from_values(&bad).is_err());
        assert_eq!(Stage::from_smfim(6), Some(Stage::Eoh));
        assert_eq!(Stage::from_smfim(7), None);
    }
}
