//! Typed access to the parameter table: the parameter types of the generated constants in
//! [`crate::p`], the [`Config`] getters that take them, and validation at load.
//!
//! A constant names one row of THE table (`p::MAX_USE` is `Int("max_use")`), so a misspelt
//! name does not compile and the default lives only in the table. The getters never fail:
//! [`Config::value_errors`] (called once when a program loads its configuration, and by
//! `postern check`) rejects every value that does not convert, so a getter's value always
//! converts. On a configuration that was never validated (a test's [`Config::new`]), a bad
//! value yields the table default instead.
//!
//! Per-transport names (`relay_destination_concurrency_limit`, see `SERVICE_SUFFIXES`) are
//! not rows: [`Config::transport_int`] and [`Config::transport_time`] read them with the
//! general `default_…` row as fallback, and validation checks them with that row's kind.
//!
//! # Security
//!
//! Pure; never panics on input.
//!
//! # Configuration
//!
//! Every row of [`crate::PARAMS`].

use std::time::Duration;

use crate::config::{SERVICE_SUFFIXES, parse_bool, parse_int, parse_time};
use crate::{Config, ParamKind, ValueError, param};

/// A text (or list) parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Str(pub(crate) &'static str);
/// A yes/no parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bool(pub(crate) &'static str);
/// An integer parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Int(pub(crate) &'static str);
/// A byte-count parameter (never negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Size(pub(crate) &'static str);
/// A time parameter with its default unit (a bare number counts in that unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Time(pub(crate) &'static str, pub(crate) char);

macro_rules! names {
    ($($t:ident),*) => {$(
        impl $t {
            /// The parameter's name.
            pub const fn name(self) -> &'static str {
                self.0
            }
        }

        /// Displays as the parameter's name (for messages).
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                self.0
            }
        }
    )*};
}
names!(Str, Bool, Int, Size, Time);

/// Converts a value of `kind`; `None` when it does not convert.
fn converts(kind: ParamKind, v: &str) -> bool {
    match kind {
        ParamKind::Str => true,
        ParamKind::Bool => parse_bool(v).is_some(),
        ParamKind::Int => parse_int(v).is_some(),
        ParamKind::Size => parse_size(v).is_some(),
        ParamKind::Time(unit) => parse_time(v, unit).is_some(),
    }
}

/// A non-negative decimal byte count.
fn parse_size(v: &str) -> Option<u64> {
    parse_int(v).and_then(|n| u64::try_from(n).ok())
}

/// The kind a per-transport name `<transport><suffix>` takes: that of `default<suffix>`
/// (`_time_limit` is a time in seconds, as `command_time_limit`).
fn transport_kind(name: &str) -> Option<ParamKind> {
    let suffix = SERVICE_SUFFIXES
        .iter()
        .find(|s| name.len() > s.len() && name.ends_with(*s))?;
    if *suffix == "_time_limit" {
        return Some(ParamKind::Time('s'));
    }
    param(&format!("default{suffix}")).map(|p| p.kind)
}

impl Config {
    /// A value converted by `conv`; on a configuration that was not validated, a value that
    /// does not convert gives the table default (and that failing too, `T::default()`).
    fn typed<T: Default>(&self, name: &str, conv: impl Fn(&str) -> Option<T>) -> T {
        conv(&self.get(name))
            .or_else(|| param(name).and_then(|p| conv(&self.expand(p.default))))
            .unwrap_or_default()
    }

    /// A text parameter, expanded.
    pub fn str(&self, p: Str) -> String {
        self.get(p.0)
    }

    /// A list parameter: expanded, split on whitespace and commas (`{ … }` kept whole).
    pub fn list(&self, p: Str) -> Vec<String> {
        self.get_list(p.0)
    }

    /// A yes/no parameter.
    pub fn bool(&self, p: Bool) -> bool {
        self.typed(p.0, parse_bool)
    }

    /// An integer parameter.
    pub fn int(&self, p: Int) -> i64 {
        self.typed(p.0, parse_int)
    }

    /// A byte-count parameter.
    pub fn size(&self, p: Size) -> u64 {
        self.typed(p.0, parse_size)
    }

    /// A time parameter.
    pub fn time(&self, p: Time) -> Duration {
        Duration::from_secs(self.typed(p.0, |v| parse_time(v, p.1)))
    }

    /// The per-transport integer `<transport>_<suffix>` (e.g.
    /// `relay_destination_concurrency_limit`) when set and valid, else `general`, the
    /// `default_<suffix>` row (`p::DEFAULT_DESTINATION_CONCURRENCY_LIMIT`).
    pub fn transport_int(&self, transport: &str, general: Int) -> i64 {
        self.transport_name(transport, general.0)
            .and_then(|n| self.get_int(&n).ok())
            .unwrap_or_else(|| self.int(general))
    }

    /// The per-transport time `<transport>_<suffix>` when set and valid, else `general`, the
    /// `default_<suffix>` row (`p::DEFAULT_DESTINATION_RATE_DELAY`).
    pub fn transport_time(&self, transport: &str, general: Time) -> Duration {
        self.transport_name(transport, general.0)
            .and_then(|n| parse_time(&self.get(&n), general.1))
            .map_or_else(|| self.time(general), Duration::from_secs)
    }

    /// The per-transport text `<transport>_<suffix>` when it has a value, else `general`, the
    /// `default_<suffix>` row (`p::DEFAULT_DESTINATION_CONCURRENCY_POSITIVE_FEEDBACK`).
    pub fn transport_str(&self, transport: &str, general: Str) -> String {
        match self.transport_name(transport, general.0) {
            Some(n) => self.get(&n),
            None => self.str(general),
        }
    }

    /// `<transport>_<suffix>` for a `default_<suffix>` row, when it has a value: set in
    /// main.cf or by `-o`, or a row of its own (`local_destination_concurrency_limit`).
    fn transport_name(&self, transport: &str, general: &str) -> Option<String> {
        let suffix = general.strip_prefix("default")?;
        let name = format!("{transport}{suffix}");
        self.raw(&name).is_some().then_some(name)
    }

    /// Every value that does not convert to its parameter's kind, first problem first:
    /// parameters set in main.cf (in line order) or by `-o` overrides (by name), including
    /// per-transport names, then the remaining typed rows of the table (a default may expand
    /// to a bad value through a `$name` that main.cf sets, and the defaults are checked as a
    /// self-test). Each error carries its main.cf line when the value comes from there.
    pub fn value_errors(&self) -> Vec<ValueError> {
        let mut set: Vec<(String, Option<usize>)> = self
            .main_entries()
            .into_iter()
            .filter(|(n, _, _)| !self.overrides.contains_key(n))
            .map(|(n, _, line)| (n, Some(line)))
            .collect();
        let mut over: Vec<&String> = self.overrides.keys().collect();
        over.sort();
        set.extend(over.into_iter().map(|n| (n.clone(), None)));
        let mut out = Vec::new();
        for (name, line) in &set {
            let kind = param(name).map(|p| p.kind).or_else(|| transport_kind(name));
            if let Some(e) = kind.and_then(|k| self.check_one(name, k, *line)) {
                out.push(e);
            }
        }
        for p in crate::PARAMS {
            if !self.is_set(p.name)
                && let Some(e) = self.check_one(p.name, p.kind, None)
            {
                out.push(e);
            }
        }
        out
    }

    /// The first of [`Config::value_errors`]: what a program refuses to start with.
    pub fn validate(&self) -> Result<(), ValueError> {
        match self.value_errors().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// [`Config::with_overrides`], validated: the first value that does not convert.
    pub fn try_with_overrides(&self, overrides: &[(String, String)]) -> Result<Config, ValueError> {
        let c = self.with_overrides(overrides);
        c.validate().map(|()| c)
    }

    fn check_one(&self, name: &str, kind: ParamKind, line: Option<usize>) -> Option<ValueError> {
        let value = self.get(name);
        if converts(kind, &value) {
            return None;
        }
        Some(ValueError {
            name: name.to_string(),
            kind: kind_word(kind),
            value,
            line,
        })
    }
}

/// The word [`ValueError::kind`] uses for a kind.
pub(crate) fn kind_word(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::Str => "string",
        ParamKind::Bool => "boolean",
        ParamKind::Int => "integer",
        ParamKind::Size => "size",
        ParamKind::Time(_) => "time",
    }
}

#[cfg(test)]
mod tests;
