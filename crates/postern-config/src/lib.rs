//! postern-config — `main.cf` and `master.cf` (layer 0, pure).
//!
//! API CONTRACT (other crates code against these signatures; keep them stable):
//!
//! * [`parse_main_cf`] / [`MainCf`]: Postfix `main.cf` syntax (comments, continuation lines,
//!   `name = value`), errors name the line.
//! * [`Config`]: the effective parameter set = parameter-table defaults, overridden by
//!   host-dependent defaults set with [`Config::set_default`], overridden by `main.cf`,
//!   overridden by per-service `-o` overrides ([`Config::with_overrides`]). [`Config::get`]
//!   expands `$name`, `${name}`, `${name?value}`, `${name:value}` (and `{value}` braces).
//! * [`parse_master_cf`] / [`MasterCf`] / [`Service`]: `master.cf` services.
//! * [`PARAMS`] / [`param`]: THE parameter table (name, default, kind, doc) with Postfix's
//!   names and defaults.
//! * [`p`]: one typed constant per table row, generated from it (`p::MAX_USE: Int`), read with
//!   [`Config::str`], [`Config::list`], [`Config::bool`], [`Config::int`], [`Config::size`],
//!   [`Config::time`] (a [`std::time::Duration`]); a misspelt name does not compile and the
//!   default lives only in the table. [`Config::value_errors`] / [`Config::validate`] /
//!   [`Config::try_with_overrides`]: every value that does not convert, in Postfix's wording
//!   ([`ValueError`]), checked once at load so that the typed getters never fail. Per-transport
//!   names: [`Config::transport_int`], [`Config::transport_time`], [`Config::transport_str`].
//!   The string API ([`Config::get`], `get_int`…) stays for computed names and `postconf`.
//!
//! Additions beyond the contract: [`check_texts`] (every problem of a main.cf/master.cf pair,
//! one line each, for `postern check`), [`apply_host_defaults`] (myhostname/mydomain from a
//! host name), [`format_service`] (one master.cf service in `postconf -M` layout),
//! [`mac_expand`] (THE `$name` expander, also for local(8)'s patterns),
//! [`pipe`] (a pipe(8) service's master.cf attributes and `$macro` templates),
//! [`not_implemented`] (the recognised but unimplemented settings of a main.cf/master.cf
//! pair, with [`unimplemented`], the inventory they come from),
//! [`referenced_names`], [`valid_param_name`], [`service_type_name`] and the constants
//! [`MAX_LOGICAL_LINE`], [`MAX_EXPANSION_DEPTH`], [`MAX_EXPANSION_OUTPUT`].
//!
//! # Security
//!
//! Pure: no file, network, process or environment access; callers read files and pass text.
//! Every parser bounds line length and expansion depth/size and never panics on bad input.
//!
//! # Configuration
//!
//! This crate *is* the configuration: see [`PARAMS`] for every parameter, its default and
//! meaning.
#![forbid(unsafe_code)]

mod check;
mod config;
mod inventory;
pub mod mac_expand;
mod master;
mod params;
mod parse_main;
pub mod pipe;
mod template;
mod typed;
pub mod unimplemented;

use std::collections::HashMap;
use std::fmt;

pub use check::{apply_host_defaults, check_texts, format_service};
pub use config::split_list;
pub use inventory::{Finding, at_default, not_implemented};
pub use mac_expand::{
    MAX_DEPTH as MAX_EXPANSION_DEPTH, MAX_OUTPUT as MAX_EXPANSION_OUTPUT, mac_expand,
    referenced_names,
};
pub use master::type_name as service_type_name;
pub use parse_main::{MAX_LOGICAL_LINE, valid_param_name};
pub use typed::{Bool, Int, Size, Str, Time};

/// One typed constant per row of THE table ([`PARAMS`]), generated from it by `build.rs`:
/// `p::MAX_USE` is `Int("max_use")`, read with [`Config::int`]. Convention: call sites write
/// `p::NAME` (the inventory test finds the parameters read that way).
pub mod p {
    use crate::typed::{Bool, Int, Size, Str, Time};
    include!(concat!(env!("OUT_DIR"), "/param_consts.rs"));
}

/// A syntax error in a configuration file, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number of the (first physical line of the) logical line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// A value that does not have the parameter's type. Displays as Postfix words it
/// (`bad numerical configuration: max_use = abc`, `bad boolean configuration: biff = maybe`,
/// `parameter max_idle: bad time value or unit: 10x`, `invalid message_size_limit parameter
/// value -1 < 0`); callers prefix the file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// Parameter name.
    pub name: String,
    /// Expected kind ("boolean", "integer", "time", "size").
    pub kind: &'static str,
    /// The (expanded) value found.
    pub value: String,
    /// The main.cf line of the value, when it comes from main.cf (not a default or `-o`).
    pub line: Option<usize>,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, value) = (&self.name, &self.value);
        match self.kind {
            "boolean" => write!(f, "bad boolean configuration: {name} = {value}"),
            "time" => write!(f, "parameter {name}: bad time value or unit: {value}"),
            "size" if value.trim().parse::<i64>().is_ok_and(|n| n < 0) => {
                write!(f, "invalid {name} parameter value {} < 0", value.trim())
            }
            _ => write!(f, "bad numerical configuration: {name} = {value}"),
        }
    }
}

impl std::error::Error for ValueError {}

/// One `name = value` entry of main.cf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainEntry {
    /// Parameter name.
    pub name: String,
    /// Raw (unexpanded) value.
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// A parsed main.cf (later entries win over earlier ones with the same name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MainCf {
    /// Entries in file order.
    pub entries: Vec<MainEntry>,
}

impl MainCf {
    /// The entry in effect for each name (the last one), in the order those entries appear.
    pub fn effective_entries(&self) -> Vec<&MainEntry> {
        let mut out: Vec<&MainEntry> = Vec::new();
        for e in &self.entries {
            out.retain(|o| o.name != e.name);
            out.push(e);
        }
        out
    }
}

/// Parses main.cf text. Returns every error found, not just the first.
pub fn parse_main_cf(text: &str) -> Result<MainCf, Vec<ParseError>> {
    parse_main::parse(text)
}

/// The kind of a parameter value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// Free text / list.
    Str,
    /// yes/no.
    Bool,
    /// Integer.
    Int,
    /// Time with a default unit suffix (s, m, h, d, w), e.g. `300s`.
    Time(char),
    /// Byte count.
    Size,
}

/// One parameter of the table.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Postfix name.
    pub name: &'static str,
    /// Default, as `postconf -d` prints it (host-dependent ones are placeholders,
    /// overridden at load time with [`Config::set_default`]).
    pub default: &'static str,
    /// Value kind.
    pub kind: ParamKind,
    /// True when the default depends on the host (myhostname, mydomain, mynetworks…).
    pub host_dependent: bool,
    /// One-line description.
    pub doc: &'static str,
}

/// THE parameter table, sorted by name.
pub static PARAMS: &[Param] = params::TABLE;

/// Looks up a parameter of the table.
pub fn param(name: &str) -> Option<&'static Param> {
    PARAMS
        .binary_search_by(|p| p.name.cmp(name))
        .ok()
        .map(|i| &PARAMS[i])
}

/// The effective configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    main: HashMap<String, (String, usize)>,
    defaults: HashMap<String, String>,
    overrides: HashMap<String, String>,
}

/// master.cf service type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    /// TCP listener (`host:port` or `port`).
    Inet,
    /// UNIX-domain stream socket under `private/` or `public/`.
    Unix,
    /// UNIX-domain datagram socket.
    UnixDgram,
    /// FIFO (obsolete).
    Fifo,
    /// Receives already-accepted connections.
    Pass,
}

/// The wakeup column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wakeup {
    /// Seconds between wake-ups.
    pub seconds: u32,
    /// Trailing `?`: only after the service was first used.
    pub conditional: bool,
}

/// One master.cf service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Service name (`smtp`, `127.0.0.1:2525`, `cleanup`…).
    pub name: String,
    /// Service type.
    pub kind: ServiceType,
    /// Private column (`-` resolved to the default: yes, but inet is never private).
    pub private: bool,
    /// Unprivileged column (`-` = yes).
    pub unpriv: bool,
    /// Chroot column (`-` = no).
    pub chroot: bool,
    /// Wakeup column (`-` or 0 = none).
    pub wakeup: Option<Wakeup>,
    /// Process limit; `None` means `$default_process_limit`; `Some(0)` means unlimited.
    pub maxproc: Option<u32>,
    /// Command name (first word of the command field), e.g. `smtpd`.
    pub command: String,
    /// Remaining arguments, with `-o name=value` pairs removed into `overrides`.
    pub args: Vec<String>,
    /// `-o name=value` overrides in order (also `-o { name = value }`).
    pub overrides: Vec<(String, String)>,
    /// 1-based line number.
    pub line: usize,
}

/// A parsed master.cf (a later duplicate name+type replaces the earlier one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterCf {
    /// Services in file order.
    pub services: Vec<Service>,
}

/// Parses master.cf text; returns every error found.
pub fn parse_master_cf(text: &str) -> Result<MasterCf, Vec<ParseError>> {
    master::parse(text)
}

/// The master.cf that `postern init` writes: Postfix's standard service list, with the
/// SMTP listener on `smtp_listen` (e.g. `127.0.0.1:2525`).
pub fn default_master_cf(smtp_listen: &str) -> String {
    template::render(smtp_listen)
}

/// The master.cf of a system install (`postern init --system`, the packaged
/// `/etc/postern/master.cf`): SMTP on port 25, chroot `y` on the services Debian's stock
/// master.cf runs chrooted.
pub fn system_master_cf() -> String {
    template::render_system()
}
