//! Everything cleanup reads from the configuration for address rewriting and
//! content inspection, with its lookup tables opened once per process.
//!
//! A table that cannot be opened is not fatal: it is remembered, logged, and
//! every message is then deferred (`451 4.3.0`; pickup keeps the file and
//! retries) until the configuration is fixed and cleanup restarted — mail is
//! never bounced or lost because of a broken table.
//!
//! # Configuration
//! `canonical_maps`, `sender_canonical_maps`, `recipient_canonical_maps`,
//! `canonical_classes`, `sender_canonical_classes`, `recipient_canonical_classes`,
//! `masquerade_domains`, `masquerade_exceptions`, `masquerade_classes`,
//! `virtual_alias_maps`, `virtual_alias_expansion_limit`,
//! `virtual_alias_recursion_limit`, `virtual_alias_address_length_limit`,
//! `always_bcc`, `sender_bcc_maps`, `recipient_bcc_maps`, `header_checks`,
//! `mime_header_checks`, `nested_header_checks`, `body_checks`,
//! `body_checks_size_limit`, `propagate_unmatched_extensions`, `swap_bangpath`,
//! `allow_percent_hack`, `append_at_myorigin`, `append_dot_mydomain`,
//! `mydomain`, `remote_header_rewrite_domain`, `local_header_rewrite_clients`,
//! `mynetworks`, `inet_interfaces`, `enable_original_recipient`.

use crate::addr::Rules;
use crate::checks::Checks;
use crate::maps::{AddrEnv, MapList};
use crate::masquerade::Masquerade;
use crate::virtual_alias::Limits;
use postern_config::{Config, p};
use postern_table::NetworkList;
use std::net::IpAddr;

/// Address classes (`canonical_classes` and friends).
pub mod classes {
    /// `envelope_sender`.
    pub const ENV_FROM: u8 = 1;
    /// `envelope_recipient`.
    pub const ENV_RCPT: u8 = 2;
    /// `header_sender`.
    pub const HDR_FROM: u8 = 4;
    /// `header_recipient`.
    pub const HDR_RCPT: u8 = 8;

    /// Parses a class list; unknown words are reported.
    pub fn parse(value: &str, warn: &mut dyn FnMut(String)) -> u8 {
        let mut out = 0;
        for w in value
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
        {
            out |= match w.to_ascii_lowercase().as_str() {
                "envelope_sender" => ENV_FROM,
                "envelope_recipient" => ENV_RCPT,
                "header_sender" => HDR_FROM,
                "header_recipient" => HDR_RCPT,
                other => {
                    warn(format!("unknown address class: {other}"));
                    0
                }
            };
        }
        out
    }
}

/// One `local_header_rewrite_clients` element we understand.
#[derive(Debug)]
enum LocalClient {
    InetInterfaces,
    Mynetworks,
    SaslAuthenticated,
    All,
}

/// The opened tables and the rewriting settings.
#[derive(Debug, Default)]
pub struct Tables {
    /// Tables that could not be opened (non-empty: defer everything).
    pub open_errors: Vec<String>,
    /// `canonical_maps` and its classes.
    pub canonical: (MapList, u8),
    /// `sender_canonical_maps` and its classes.
    pub sender_canonical: (MapList, u8),
    /// `recipient_canonical_maps` and its classes.
    pub recipient_canonical: (MapList, u8),
    /// Masquerading and `masquerade_classes`.
    pub masquerade: (Masquerade, u8),
    /// `virtual_alias_maps`.
    pub virtual_alias: MapList,
    /// Virtual alias limits.
    pub limits: Limits,
    /// `always_bcc`.
    pub always_bcc: String,
    /// `sender_bcc_maps`.
    pub sender_bcc: MapList,
    /// `recipient_bcc_maps`.
    pub recipient_bcc: MapList,
    /// Header and body checks.
    pub checks: Checks,
    /// `propagate_unmatched_extensions` includes `canonical`.
    pub propagate_canonical: bool,
    /// `propagate_unmatched_extensions` includes `virtual`.
    pub propagate_virtual: bool,
    /// Address search settings.
    pub env: AddrEnv,
    /// Rewriting rule switches.
    pub rules: Rules,
    /// `$mydomain`.
    pub mydomain: String,
    /// `$remote_header_rewrite_domain`.
    pub remote_domain: String,
    /// `enable_original_recipient`.
    pub original_recipient: bool,
    local_clients: Vec<LocalClient>,
    mynetworks: Option<NetworkList>,
    interfaces: Vec<IpAddr>,
}

impl Tables {
    /// Reads the configuration and opens every table.
    pub fn from_config(cfg: &Config) -> Tables {
        let mut errs = Vec::new();
        let mut warn = |m: String| postern_log::warning(m);
        let mut maps = |p: &str| MapList::open(cfg, p, &mut errs);
        let canonical = maps("canonical_maps");
        let sender_canonical = maps("sender_canonical_maps");
        let recipient_canonical = maps("recipient_canonical_maps");
        let virtual_alias = maps("virtual_alias_maps");
        let sender_bcc = maps("sender_bcc_maps");
        let recipient_bcc = maps("recipient_bcc_maps");
        let checks = Checks {
            header: maps("header_checks"),
            mime: maps("mime_header_checks"),
            nested: maps("nested_header_checks"),
            body: maps("body_checks"),
            body_limit: usize::try_from(cfg.size(p::BODY_CHECKS_SIZE_LIMIT)).unwrap_or(usize::MAX),
        };
        let masq = Masquerade::new(
            cfg.list(p::MASQUERADE_DOMAINS),
            &cfg.list(p::MASQUERADE_EXCEPTIONS),
            &mut errs,
        );
        let class = |p: &str, w: &mut dyn FnMut(String)| {
            classes::parse(&cfg.get(p), &mut |m| w(format!("{p}: {m}")))
        };
        let prop = cfg
            .str(p::PROPAGATE_UNMATCHED_EXTENSIONS)
            .to_ascii_lowercase();
        let has = |w: &str| {
            prop.split(|c: char| c == ',' || c.is_ascii_whitespace())
                .any(|x| x == w)
        };
        let int = |n: postern_config::Int| cfg.int(n).max(1) as usize;
        let mut local_clients = Vec::new();
        for w in cfg.list(p::LOCAL_HEADER_REWRITE_CLIENTS) {
            match w.to_ascii_lowercase().as_str() {
                "permit_inet_interfaces" => local_clients.push(LocalClient::InetInterfaces),
                "permit_mynetworks" => local_clients.push(LocalClient::Mynetworks),
                "permit_sasl_authenticated" => local_clients.push(LocalClient::SaslAuthenticated),
                "static:all" => local_clients.push(LocalClient::All),
                other => warn(format!(
                    "local_header_rewrite_clients: unsupported element {other}: ignored"
                )),
            }
        }
        let mynetworks = NetworkList::new(&cfg.str(p::MYNETWORKS), &Default::default()).ok();
        let interfaces = own_addresses(cfg);
        for e in &errs {
            postern_log::warning(format!("{e}; all mail will be deferred"));
        }
        Tables {
            canonical: (canonical, class("canonical_classes", &mut warn)),
            sender_canonical: (
                sender_canonical,
                class("sender_canonical_classes", &mut warn),
            ),
            recipient_canonical: (
                recipient_canonical,
                class("recipient_canonical_classes", &mut warn),
            ),
            masquerade: (masq, class("masquerade_classes", &mut warn)),
            virtual_alias,
            limits: Limits {
                expansion: int(p::VIRTUAL_ALIAS_EXPANSION_LIMIT),
                recursion: int(p::VIRTUAL_ALIAS_RECURSION_LIMIT),
                address_length: int(p::VIRTUAL_ALIAS_ADDRESS_LENGTH_LIMIT),
            },
            always_bcc: cfg.str(p::ALWAYS_BCC).trim().to_string(),
            sender_bcc,
            recipient_bcc,
            checks,
            propagate_canonical: has("canonical"),
            propagate_virtual: has("virtual"),
            env: AddrEnv::from_config(cfg),
            rules: Rules {
                swap_bangpath: cfg.bool(p::SWAP_BANGPATH),
                percent_hack: cfg.bool(p::ALLOW_PERCENT_HACK),
                append_at_origin: cfg.bool(p::APPEND_AT_MYORIGIN),
                append_dot_domain: cfg.bool(p::APPEND_DOT_MYDOMAIN),
            },
            mydomain: cfg.str(p::MYDOMAIN),
            remote_domain: cfg.str(p::REMOTE_HEADER_REWRITE_DOMAIN),
            original_recipient: cfg.bool(p::ENABLE_ORIGINAL_RECIPIENT),
            local_clients,
            mynetworks,
            interfaces,
            open_errors: errs,
        }
    }

    /// Whether a network client's headers are rewritten in the local context
    /// (`local_header_rewrite_clients`).
    pub fn local_header_client(&self, addr: Option<IpAddr>, sasl: bool) -> bool {
        self.local_clients.iter().any(|c| match c {
            LocalClient::All => true,
            LocalClient::SaslAuthenticated => sasl,
            LocalClient::InetInterfaces => addr.is_some_and(|a| {
                let a = match a {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
                    v4 => v4,
                };
                self.interfaces.contains(&a)
            }),
            LocalClient::Mynetworks => addr.is_some_and(|a| {
                self.mynetworks
                    .as_ref()
                    .is_some_and(|n| n.matches(a).unwrap_or(false))
            }),
        })
    }
}

/// The addresses `permit_inet_interfaces` matches, as Postfix's: those of
/// `inet_interfaces` (with `all`, every address configured on the host's
/// interfaces; with `loopback-only`, 127.0.0.1 and ::1) and the IP addresses of
/// `proxy_interfaces`. Only these: another loopback address (127.0.0.2) is a
/// remote client. When the interfaces cannot be read, 127.0.0.1 and ::1.
fn own_addresses(cfg: &Config) -> Vec<IpAddr> {
    let protocols = match postern_server::inet::protocols(cfg) {
        Ok(p) => p,
        Err(e) => {
            postern_log::warning(format!("permit_inet_interfaces: {e}"));
            postern_server::inet::Protocols {
                ipv4: true,
                ipv6: false,
            }
        }
    };
    let out = postern_table::route::Own::new(&|n| cfg.get(n), protocols.ipv4, protocols.ipv6).all();
    if out.is_empty() {
        return vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ];
    }
    out
}
