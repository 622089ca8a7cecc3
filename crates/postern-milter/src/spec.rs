//! Milter list parsing: `smtpd_milters`, `non_smtpd_milters` and the per-milter
//! `{ endpoint, key=value … }` overrides (pure).
//!
//! A list holds names separated by space or comma; a name is `inet:host:port`,
//! `unix:/path` or `local:/path` (a relative unix path is taken below the base
//! directory the caller passes, normally `$queue_directory`). A name in braces
//! carries settings that override the main.cf defaults for that milter only:
//! `connect_timeout`, `command_timeout`, `content_timeout`, `default_action`,
//! `protocol`; values may be written `key=value` or `{ key = value }`.
//!
//! # Errors
//! Any malformed entry is an [`Error`]: configured but impossible, so the caller
//! refuses (fail closed) rather than run without the filter.

use std::path::Path;
use std::time::Duration;

use postern_config::split_list;

use crate::Error;

/// What to do with a message when a milter is down or misbehaves
/// (`milter_default_action`, or `default_action` in braces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    /// Go on as if the milter were not configured.
    Accept,
    /// Reject (5xx; for a configuration error 451 as Postfix).
    Reject,
    /// Temporary failure (451).
    Tempfail,
    /// Accept but put the message on hold.
    Quarantine,
    /// 421 and end the SMTP session.
    Shutdown,
}

impl DefaultAction {
    /// Parses a `milter_default_action` value (case-insensitive).
    pub fn parse(v: &str) -> Option<DefaultAction> {
        Some(match v.trim().to_ascii_lowercase().as_str() {
            "accept" => DefaultAction::Accept,
            "reject" => DefaultAction::Reject,
            "tempfail" => DefaultAction::Tempfail,
            "quarantine" => DefaultAction::Quarantine,
            "shutdown" => DefaultAction::Shutdown,
            _ => return None,
        })
    }
}

/// One configured milter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilterSpec {
    /// As configured (`inet:127.0.0.1:8891`, `unix:/run/x.sock`); a relative unix
    /// path has been made absolute below the base directory.
    pub name: String,
    /// `milter_connect_timeout`.
    pub connect_timeout: Duration,
    /// `milter_command_timeout`: each event other than the message content.
    pub command_timeout: Duration,
    /// `milter_content_timeout`: headers, body and end-of-message.
    pub content_timeout: Duration,
    /// `milter_default_action`.
    pub default_action: DefaultAction,
    /// `milter_protocol`: 2, 3, 4 or 6.
    pub protocol: u32,
}

impl Default for MilterSpec {
    /// Postfix's defaults: 30s, 30s, 300s, tempfail, protocol 6.
    fn default() -> Self {
        MilterSpec {
            name: String::new(),
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(30),
            content_timeout: Duration::from_secs(300),
            default_action: DefaultAction::Tempfail,
            protocol: 6,
        }
    }
}

/// Where a milter listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `inet:host:port` (host may be `[v6addr]`).
    Inet(String, u16),
    /// `unix:path` or `local:path`.
    Unix(String),
}

impl MilterSpec {
    /// The endpoint named by `self.name`.
    pub(crate) fn endpoint(&self) -> Result<Endpoint, Error> {
        parse_endpoint(&self.name)
    }
}

/// Parses a milter list (see the module docs). `defaults` supplies every setting
/// not given in braces (its `name` is ignored).
pub fn parse_milters(
    value: &str,
    defaults: &MilterSpec,
    base: &Path,
) -> Result<Vec<MilterSpec>, Error> {
    split_list(value)
        .iter()
        .map(|item| parse_one(item, defaults, base))
        .collect()
}

/// Parses one list item: a bare name or a `{ name, key=value … }` group.
fn parse_one(item: &str, defaults: &MilterSpec, base: &Path) -> Result<MilterSpec, Error> {
    let mut spec = MilterSpec {
        name: String::new(),
        ..defaults.clone()
    };
    let name = if let Some(inner) = strip_braces(item) {
        let inner = inner.ok_or_else(|| Error::BadGroup(item.to_string()))?;
        let parts = split_list(inner);
        let (first, rest) = parts
            .split_first()
            .ok_or_else(|| Error::BadGroup(item.to_string()))?;
        for kv in rest {
            set_attr(&mut spec, first, kv)?;
        }
        first.clone()
    } else {
        item.to_string()
    };
    spec.name = absolute(&name, base)?;
    Ok(spec)
}

/// `Some(Some(inner))` for a balanced `{ … }`, `Some(None)` for a broken group,
/// `None` when the item is not a group.
fn strip_braces(item: &str) -> Option<Option<&str>> {
    let rest = item.strip_prefix('{')?;
    Some(rest.strip_suffix('}'))
}

/// Applies one `key=value` or `{ key = value }` override.
fn set_attr(spec: &mut MilterSpec, name: &str, kv: &str) -> Result<(), Error> {
    let kv = match strip_braces(kv) {
        Some(Some(inner)) => inner,
        Some(None) => return Err(Error::BadGroup(kv.to_string())),
        None => kv,
    };
    let (key, value) = kv.split_once('=').ok_or_else(|| Error::UnknownKey {
        name: name.to_string(),
        key: kv.trim().to_string(),
    })?;
    let (key, value) = (key.trim(), value.trim());
    let bad = || Error::BadValue {
        name: name.to_string(),
        key: key.to_string(),
        value: value.to_string(),
    };
    match key {
        "connect_timeout" => spec.connect_timeout = parse_duration(value).ok_or_else(bad)?,
        "command_timeout" => spec.command_timeout = parse_duration(value).ok_or_else(bad)?,
        "content_timeout" => spec.content_timeout = parse_duration(value).ok_or_else(bad)?,
        "default_action" => spec.default_action = DefaultAction::parse(value).ok_or_else(bad)?,
        "protocol" => spec.protocol = parse_protocol(value).ok_or_else(bad)?,
        _ => {
            return Err(Error::UnknownKey {
                name: name.to_string(),
                key: key.to_string(),
            });
        }
    }
    Ok(())
}

/// A `milter_protocol` value: one version (2, 3, 4 or 6), optionally with
/// Postfix's `no_header_reply` extension (version 6 negotiates that itself).
pub fn parse_protocol(v: &str) -> Option<u32> {
    let mut version = None;
    for word in split_list(v) {
        match word.as_str() {
            "2" | "3" | "4" | "6" if version.is_none() => version = word.parse().ok(),
            "no_header_reply" => {}
            _ => return None,
        }
    }
    version
}

/// A positive time value: `N` seconds or `N` followed by s, m, h, d or w.
pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 604_800,
        _ => return None,
    };
    let secs = num.parse::<u64>().ok()?.checked_mul(mult)?;
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// Checks the endpoint and makes a relative unix path absolute below `base`.
fn absolute(name: &str, base: &Path) -> Result<String, Error> {
    match parse_endpoint(name)? {
        Endpoint::Unix(path) if !path.starts_with('/') => {
            let (transport, _) = name.split_once(':').unwrap_or(("unix", ""));
            Ok(format!("{transport}:{}", base.join(path).display()))
        }
        _ => Ok(name.to_string()),
    }
}

/// Splits `transport:endpoint` and checks it.
pub(crate) fn parse_endpoint(name: &str) -> Result<Endpoint, Error> {
    let bad = || Error::BadEndpoint(name.to_string());
    let (transport, rest) = name.split_once(':').ok_or_else(bad)?;
    if transport.is_empty() || rest.is_empty() {
        return Err(bad());
    }
    match transport {
        "inet" => {
            let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let port: u16 = port.parse().map_err(|_| bad())?;
            if host.is_empty() || port == 0 {
                return Err(bad());
            }
            Ok(Endpoint::Inet(host.to_string(), port))
        }
        "unix" | "local" => Ok(Endpoint::Unix(rest.to_string())),
        _ => Err(Error::BadTransport {
            transport: transport.to_string(),
            name: name.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> MilterSpec {
        MilterSpec::default()
    }

    #[test]
    fn plain_list() {
        let v = parse_milters(
            "inet:127.0.0.1:8891, unix:/run/a.sock  local:rel/b",
            &defaults(),
            Path::new("/var/spool/postfix"),
        )
        .unwrap();
        let names: Vec<_> = v.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "inet:127.0.0.1:8891",
                "unix:/run/a.sock",
                "local:/var/spool/postfix/rel/b"
            ]
        );
        assert_eq!(v[0].command_timeout, Duration::from_secs(30));
    }

    #[test]
    fn group_overrides() {
        let v = parse_milters(
            "{ inet:[::1]:8891, connect_timeout=10s, default_action=accept, \
             { command_timeout = 2m }, content_timeout=1h, protocol=4 } inet:h:1",
            &defaults(),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].name, "inet:[::1]:8891");
        assert_eq!(v[0].connect_timeout, Duration::from_secs(10));
        assert_eq!(v[0].command_timeout, Duration::from_secs(120));
        assert_eq!(v[0].content_timeout, Duration::from_secs(3600));
        assert_eq!(v[0].default_action, DefaultAction::Accept);
        assert_eq!(v[0].protocol, 4);
        assert_eq!(v[1].default_action, DefaultAction::Tempfail);
        assert_eq!(v[0].endpoint().unwrap(), Endpoint::Inet("::1".into(), 8891));
    }

    #[test]
    fn bad_entries() {
        let d = defaults();
        let b = Path::new("/");
        for bad in [
            "inet:host",
            "inet:host:0",
            "inet::25",
            "tcp:host:25",
            "nocolon",
            "{ }",
            "{ inet:h:1, bogus=1 }",
            "{ inet:h:1, connect_timeout=0 }",
            "{ inet:h:1, default_action=maybe }",
            "{ inet:h:1, protocol=5 }",
            "{ inet:h:1, noequals }",
            "{ inet:h:1",
        ] {
            assert!(parse_milters(bad, &d, b).is_err(), "{bad}");
        }
        assert!(parse_milters("", &d, b).unwrap().is_empty());
    }

    #[test]
    fn protocol_values() {
        assert_eq!(parse_protocol("6"), Some(6));
        assert_eq!(parse_protocol("2"), Some(2));
        assert_eq!(parse_protocol("6 no_header_reply"), Some(6));
        assert_eq!(parse_protocol("5"), None);
        assert_eq!(parse_protocol("6 4"), None);
        assert_eq!(parse_protocol(""), None);
    }
}
