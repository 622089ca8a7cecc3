//! [`Config`]: layered lookup (override > main.cf > host default > table default), typed
//! getters and the unused-parameter report.
//!
//! # Errors
//!
//! The string-named getters (`get_int`…, for per-transport names and `postconf`) return
//! [`ValueError`] naming the parameter, the expected kind and the expanded value; they never
//! panic. The typed getters are in `typed.rs`. Values are expanded before conversion, like
//! Postfix does.

use std::collections::{HashMap, HashSet};

use crate::mac_expand::{self as expand, Options};
use crate::{Config, MainCf, MasterCf, ParamKind, ServiceType, ValueError, param};

impl Config {
    /// `text` expanded in main.cf mode against this configuration's raw values.
    fn expand_main(&self, text: &str) -> String {
        expand::mac_expand(text, &Options::main_cf(), &mut |n: &str, _| self.raw(n)).text
    }
}

/// Per-transport parameter suffixes: `<service>_<suffix>` is a valid parameter name for every
/// master.cf service (qmgr and delivery agents look them up per transport).
pub(crate) const SERVICE_SUFFIXES: &[&str] = &[
    "_delivery_slot_cost",
    "_delivery_slot_discount",
    "_delivery_slot_loan",
    "_destination_concurrency_failed_cohort_limit",
    "_destination_concurrency_limit",
    "_destination_concurrency_negative_feedback",
    "_destination_concurrency_positive_feedback",
    "_destination_rate_delay",
    "_destination_recipient_limit",
    "_extra_recipient_limit",
    "_initial_destination_concurrency",
    "_minimum_delivery_slots",
    "_recipient_limit",
    "_recipient_refill_delay",
    "_recipient_refill_limit",
    "_time_limit",
    "_transport_rate_delay",
];

impl Config {
    /// Builds the configuration from a parsed main.cf.
    pub fn new(main: MainCf) -> Config {
        let mut map = HashMap::with_capacity(main.entries.len());
        for e in main.entries {
            map.insert(e.name, (e.value, e.line));
        }
        Config {
            main: map,
            defaults: HashMap::new(),
            overrides: HashMap::new(),
        }
    }

    /// Replaces the default of a (host-dependent) parameter, e.g. `myhostname`.
    pub fn set_default(&mut self, name: &str, value: &str) {
        self.defaults.insert(name.to_string(), value.to_string());
    }

    /// A copy with per-service `-o name=value` overrides applied on top.
    pub fn with_overrides(&self, overrides: &[(String, String)]) -> Config {
        let mut c = self.clone();
        for (n, v) in overrides {
            c.overrides.insert(n.clone(), v.clone());
        }
        c
    }

    /// Sets one value as if it were in main.cf (used by `postconf -e` previews and tests).
    pub fn set(&mut self, name: &str, value: &str) {
        self.main.insert(name.to_string(), (value.to_string(), 0));
    }

    /// The fully expanded value; "" for an unknown, unset parameter.
    pub fn get(&self, name: &str) -> String {
        match self.raw(name) {
            // Expanding the reference (not the value) puts `name` on the cycle-detection stack.
            Some(_) if name.bytes().all(expand::is_name_byte) => {
                self.expand_main(&format!("${{{name}}}"))
            }
            Some(v) => self.expand_main(&v),
            None => String::new(),
        }
    }

    /// The unexpanded value in effect (override, main.cf, or default), if any (a name, or a
    /// typed constant such as `p::FORWARD_PATH`).
    pub fn raw(&self, name: impl AsRef<str>) -> Option<String> {
        let name = name.as_ref();
        if let Some(v) = self.overrides.get(name) {
            return Some(v.clone());
        }
        if let Some((v, _)) = self.main.get(name) {
            return Some(v.clone());
        }
        if let Some(v) = self.defaults.get(name) {
            return Some(v.clone());
        }
        param(name).map(|p| p.default.to_string())
    }

    /// Whether main.cf (or an override) sets this parameter explicitly (a name, or a typed
    /// constant such as `p::MYDOMAIN`).
    pub fn is_set(&self, name: impl AsRef<str>) -> bool {
        let name = name.as_ref();
        self.overrides.contains_key(name) || self.main.contains_key(name)
    }

    /// A yes/no parameter.
    pub fn get_bool(&self, name: &str) -> Result<bool, ValueError> {
        let v = self.get(name);
        parse_bool(&v).ok_or_else(|| self.bad(name, "boolean", v))
    }

    /// An integer parameter.
    pub fn get_int(&self, name: &str) -> Result<i64, ValueError> {
        let v = self.get(name);
        let kind = if param(name).is_some_and(|p| p.kind == ParamKind::Size) {
            "size"
        } else {
            "integer"
        };
        parse_int(&v).ok_or_else(|| self.bad(name, kind, v))
    }

    /// A time parameter in seconds (`300s`, `5d`, `1h`; a bare number takes the
    /// table's default unit for that parameter).
    pub fn get_time(&self, name: &str) -> Result<u64, ValueError> {
        let unit = match param(name).map(|p| p.kind) {
            Some(ParamKind::Time(u)) => u,
            _ => 's',
        };
        let v = self.get(name);
        parse_time(&v, unit).ok_or_else(|| self.bad(name, "time", v))
    }

    /// A list parameter split on whitespace and commas (expanded first).
    pub fn get_list(&self, name: &str) -> Vec<String> {
        split_list(&self.get(name))
    }

    /// Expands `$name`-style references in arbitrary text against this configuration.
    pub fn expand(&self, text: &str) -> String {
        self.expand_main(text)
    }

    /// Names set in main.cf that are not in the parameter table and not referenced by
    /// any other parameter value or master.cf override, with their line numbers
    /// (Postfix warns: `postconf: warning: /etc/postfix/main.cf: unused parameter: x=y`).
    pub fn unused_main_params(&self, master: Option<&MasterCf>) -> Vec<(String, String, usize)> {
        let mut used: HashSet<String> = HashSet::new();
        for (value, _) in self.main.values() {
            used.extend(expand::referenced_names(value));
        }
        for v in self.overrides.values() {
            used.extend(expand::referenced_names(v));
        }
        let services = master.map_or(&[][..], |m| &m.services[..]);
        for svc in services {
            for (n, v) in &svc.overrides {
                used.insert(n.clone());
                used.extend(expand::referenced_names(v));
            }
        }
        // Restriction classes are user-named parameters (smtpd_restriction_classes).
        used.extend(self.list(crate::p::SMTPD_RESTRICTION_CLASSES));
        let mut unused: Vec<(String, String, usize)> = self
            .main
            .iter()
            .filter(|(name, _)| param(name).is_none() && !used.contains(*name))
            .filter(|(name, _)| !is_service_param(name, services))
            .map(|(name, (value, line))| (name.clone(), value.clone(), *line))
            .collect();
        unused.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
        unused
    }

    /// master.cf `-o` overrides whose names are neither in the table, nor per-transport names
    /// of a master.cf service, nor set in main.cf, nor referenced by any main.cf value or
    /// override value: (name, value, master.cf line). Postfix warns about these as
    /// `postconf: warning: /etc/postfix/master.cf: unused parameter: x=y`.
    pub fn unused_master_params(&self, master: &MasterCf) -> Vec<(String, String, usize)> {
        let mut used: HashSet<String> = HashSet::new();
        for (value, _) in self.main.values() {
            used.extend(expand::referenced_names(value));
        }
        for svc in &master.services {
            for (_, v) in &svc.overrides {
                used.extend(expand::referenced_names(v));
            }
        }
        let mut unused = Vec::new();
        for svc in &master.services {
            for (n, v) in &svc.overrides {
                let known = param(n).is_some()
                    || self.main.contains_key(n)
                    || used.contains(n)
                    || is_service_param(n, &master.services);
                if !known {
                    unused.push((n.clone(), v.clone(), svc.line));
                }
            }
        }
        unused
    }

    /// Every parameter set in main.cf (or with [`Config::set`]): (name, raw value, line),
    /// sorted by line, then name.
    pub fn main_entries(&self) -> Vec<(String, String, usize)> {
        let mut v: Vec<(String, String, usize)> = self
            .main
            .iter()
            .map(|(n, (val, l))| (n.clone(), val.clone(), *l))
            .collect();
        v.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// A [`ValueError`] for `name`, with its main.cf line when main.cf supplies the value.
    fn bad(&self, name: &str, kind: &'static str, value: String) -> ValueError {
        let line = if self.overrides.contains_key(name) {
            None
        } else {
            self.main_line(name)
        };
        ValueError {
            name: name.to_string(),
            kind,
            value,
            line,
        }
    }

    /// The main.cf line of a parameter (0 when set with [`Config::set`]), if set there.
    pub fn main_line(&self, name: &str) -> Option<usize> {
        self.main.get(name).map(|(_, l)| *l)
    }
}

/// `<service>_<suffix>` names for master.cf services that are not inet listeners.
fn is_service_param(name: &str, services: &[crate::Service]) -> bool {
    services
        .iter()
        .filter(|s| s.kind != ServiceType::Inet)
        .any(|s| {
            name.strip_prefix(s.name.as_str())
                .is_some_and(|rest| SERVICE_SUFFIXES.contains(&rest))
        })
}

/// yes/no/true/false, case-insensitive.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("no") || v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A decimal integer with an optional leading `-`.
pub(crate) fn parse_int(v: &str) -> Option<i64> {
    let v = v.trim();
    let digits = v.strip_prefix('-').unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Seconds in one time unit.
fn unit_seconds(unit: char) -> Option<u64> {
    Some(match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        'w' => 604_800,
        _ => return None,
    })
}

/// `N` (in `default_unit`) or `N` followed by one of s, m, h, d, w.
pub(crate) fn parse_time(v: &str, default_unit: char) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    if num.is_empty() {
        return None;
    }
    let unit = match unit {
        "" => default_unit,
        u if u.len() == 1 => u.chars().next()?.to_ascii_lowercase(),
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(unit_seconds(unit)?)
}

/// Splits a list value on whitespace and commas, keeping `{ … }` groups
/// (e.g. `inline:{ a = b, c = d }`) inside one item, as Postfix's list parser
/// does. Unbalanced braces end the item at the end of the text.
pub fn split_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in v.chars() {
        match c {
            '{' => {
                depth += 1;
                cur.push(c);
            }
            '}' => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            c if depth == 0 && (c.is_whitespace() || c == ',') => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests;
