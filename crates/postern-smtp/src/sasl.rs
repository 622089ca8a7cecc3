//! The SMTP client's SASL authentication (RFC 4954): AUTH PLAIN and LOGIN
//! to servers for which `smtp_sasl_password_maps` has credentials.
//!
//! * Credentials: looked up by `[host]:port`, then the server's host name,
//!   then the next hop as given (`[relay.example]:587`, `example.com`),
//!   then the next-hop domain; the value is `username:password`. No entry:
//!   no AUTH ("we talk to each other like strangers"). A table error
//!   defers.
//! * Mechanisms: the server's AUTH list, narrowed by
//!   `smtp_sasl_mechanism_filter` (names; `!name` excludes), then by what
//!   this client implements (PLAIN, LOGIN) under the security options
//!   (`smtp_sasl_security_options`, or `smtp_sasl_tls_security_options`
//!   inside TLS): both mechanisms send the password, so `noplaintext`,
//!   `noactive`, `nodictionary` and `mutual_auth` exclude them — Postfix's
//!   default `noplaintext, noanonymous` therefore needs changing, as with
//!   Cyrus SASL.
//! * Failures defer with Postfix's texts (`SASL authentication failed;
//!   server host[addr] said: 535 …`, 5xx softened to 4xx as
//!   `smtp_sasl_auth_soft_bounce = yes` does) and move on to the next host.
//!
//! Security: the password is never logged nor shown by `Debug`; the
//! `username:password` value comes from a trusted table.
//!
//! Parameters: `smtp_sasl_auth_enable`, `smtp_sasl_password_maps`,
//! `smtp_sasl_mechanism_filter`, `smtp_sasl_security_options`,
//! `smtp_sasl_tls_security_options` (`lmtp_` for LMTP).

use crate::result::Outcome;
use base64::Engine;
use postern_table::BoxMap;

/// A user name and password (the password never appears in `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct Creds {
    /// User name.
    pub user: String,
    /// Password.
    pub pass: String,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creds")
            .field("user", &self.user)
            .field("pass", &"<hidden>")
            .finish()
    }
}

/// What one session needs to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The credentials found.
    pub creds: Creds,
    /// `smtp_sasl_mechanism_filter` (lower case; `!x` excludes).
    pub filter: Vec<String>,
    /// Security options outside TLS.
    pub opts: Vec<String>,
    /// Security options inside TLS.
    pub tls_opts: Vec<String>,
}

/// The agent's SASL settings.
pub struct SaslConf {
    maps: Vec<BoxMap>,
    filter: Vec<String>,
    opts: Vec<String>,
    tls_opts: Vec<String>,
}

impl std::fmt::Debug for SaslConf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConf")
            .field("maps", &self.maps.len())
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

fn words(v: &str) -> Vec<String> {
    v.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .take(64)
        .map(str::to_ascii_lowercase)
        .collect()
}

impl SaslConf {
    /// None unless `*_sasl_auth_enable = yes`.
    pub fn from_config(cfg: &postern_config::Config, lmtp: bool) -> Option<SaslConf> {
        let pfx = if lmtp { "lmtp" } else { "smtp" };
        let get = |n: &str| cfg.get(&format!("{pfx}_{n}"));
        if !matches!(get("sasl_auth_enable").trim(), "yes" | "true" | "1") {
            return None;
        }
        let maps = crate::tables::open_maps(cfg, &format!("{pfx}_sasl_password_maps"));
        Some(SaslConf {
            maps,
            filter: words(&get("sasl_mechanism_filter")),
            opts: words(&get("sasl_security_options")),
            tls_opts: words(&get("sasl_tls_security_options")),
        })
    }

    /// The login for a server, or None (no credentials: no AUTH).
    pub fn login(
        &self,
        host: &str,
        port: u16,
        nexthop: &str,
        domain: &str,
    ) -> Result<Option<Login>, Outcome> {
        let nexthop = nexthop
            .trim()
            .strip_prefix("inet:")
            .unwrap_or(nexthop.trim());
        let keys = [
            format!("[{host}]:{port}"),
            host.to_string(),
            nexthop.to_string(),
            domain.to_string(),
        ];
        for key in keys.iter().filter(|k| !k.is_empty()) {
            for m in &self.maps {
                match m.lookup(key) {
                    Ok(Some(v)) => {
                        let (user, pass) = v.split_once(':').unwrap_or((v.as_str(), ""));
                        return Ok(Some(Login {
                            creds: Creds {
                                user: user.to_string(),
                                pass: pass.to_string(),
                            },
                            filter: self.filter.clone(),
                            opts: self.opts.clone(),
                            tls_opts: self.tls_opts.clone(),
                        }));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        postern_log::warning(format!(
                            "{} lookup error for \"{key}\": {e}",
                            m.name()
                        ));
                        return Err(Outcome::defer("4.3.0", "Temporary lookup error"));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// Why no mechanism could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoMech {
    /// The filter left nothing of the server's list.
    Filtered,
    /// This client cannot use any remaining one under the options.
    Unusable,
}

/// Picks the mechanism: the server's list ∩ filter, then PLAIN or LOGIN
/// (in the server's order) if the security options allow them.
pub fn choose(
    offered: &[String],
    filter: &[String],
    opts: &[String],
) -> Result<&'static str, NoMech> {
    let allowed = |m: &str| {
        let m = m.to_ascii_lowercase();
        if filter
            .iter()
            .any(|f| f.strip_prefix('!') == Some(m.as_str()))
        {
            return false;
        }
        let positive: Vec<&String> = filter.iter().filter(|f| !f.starts_with('!')).collect();
        positive.is_empty() || positive.iter().any(|f| **f == m)
    };
    let list: Vec<String> = offered
        .iter()
        .map(|m| m.to_ascii_uppercase())
        .filter(|m| allowed(m))
        .collect();
    if list.is_empty() {
        return Err(NoMech::Filtered);
    }
    let plaintext_ok = !opts.iter().any(|o| {
        matches!(
            o.as_str(),
            "noplaintext" | "noactive" | "nodictionary" | "mutual_auth"
        )
    });
    if !plaintext_ok {
        return Err(NoMech::Unusable);
    }
    for m in &list {
        match m.as_str() {
            "PLAIN" => return Ok("PLAIN"),
            "LOGIN" => return Ok("LOGIN"),
            _ => {}
        }
    }
    Err(NoMech::Unusable)
}

/// Base64 of `s`.
pub fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The PLAIN initial response: base64(`\0user\0pass`).
pub fn plain_response(c: &Creds) -> String {
    let mut v = Vec::with_capacity(c.user.len() + c.pass.len() + 2);
    v.push(0);
    v.extend_from_slice(c.user.as_bytes());
    v.push(0);
    v.extend_from_slice(c.pass.as_bytes());
    b64(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn mechanism_choice() {
        let offered = s(&["CRAM-MD5", "LOGIN", "PLAIN"]);
        assert_eq!(choose(&offered, &[], &s(&["noanonymous"])), Ok("LOGIN"));
        assert_eq!(choose(&offered, &s(&["plain"]), &[]), Ok("PLAIN"));
        assert_eq!(choose(&offered, &s(&["!login"]), &[]), Ok("PLAIN"));
        assert_eq!(
            choose(&offered, &s(&["gssapi"]), &[]),
            Err(NoMech::Filtered)
        );
        assert_eq!(
            choose(&offered, &[], &s(&["noplaintext", "noanonymous"])),
            Err(NoMech::Unusable)
        );
        assert_eq!(choose(&s(&["CRAM-MD5"]), &[], &[]), Err(NoMech::Unusable));
    }

    #[test]
    fn plain_and_debug() {
        let c = Creds {
            user: "u".into(),
            pass: "secret".into(),
        };
        assert_eq!(plain_response(&c), "AHUAc2VjcmV0");
        assert!(!format!("{c:?}").contains("secret"));
    }
}
