//! Restriction lists: tokenizing `smtpd_*_restrictions` values into [`Word`]s, opening
//! their tables, restriction classes, and Postfix's start-up safety rule for relay control.

use super::PolicyError;
use super::dns::DnsWord;
use super::service::PolicyClient;
use postern_config::{Config, p};
use postern_table::{BoxMap, OpenOptions};
use std::collections::HashMap;
use std::sync::Arc;

/// What an access table is checked with (which fact is the key, and the reply's subject).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessKind {
    Client,
    ReverseClient,
    Helo,
    Sender,
    Recipient,
    Etrn,
}

/// An access table named in a restriction; a table that failed to open keeps its error.
#[derive(Debug)]
pub(crate) enum Table {
    Open(BoxMap),
    Broken { name: String, error: String },
}

impl Table {
    pub(crate) fn open(spec: &str) -> Table {
        match postern_table::open(spec, &OpenOptions::default()) {
            Ok(map) => {
                for w in map.warnings() {
                    postern_log::warning(w);
                }
                Table::Open(map)
            }
            Err(e) => {
                postern_log::warning(format!("{spec} is unavailable. {e}"));
                Table::Broken {
                    name: spec.to_string(),
                    error: e.to_string(),
                }
            }
        }
    }
}

/// One compiled restriction word.
#[derive(Debug)]
pub(crate) enum Word {
    Permit,
    Reject,
    Defer,
    DeferIfPermit,
    DeferIfReject,
    WarnIfReject,
    PermitMynetworks,
    PermitSaslAuthenticated,
    PermitInetInterfaces,
    RejectUnauthDestination,
    DeferUnauthDestination,
    CheckRelayDomains,
    PermitAuthDestination,
    RejectUnauthPipelining,
    RejectNonFqdnHelo,
    RejectInvalidHelo,
    RejectNonFqdnSender,
    RejectNonFqdnRecipient,
    RejectUnlistedSender,
    RejectUnlistedRecipient,
    RejectMultiRecipientBounce,
    SenderLogin(super::sasl::LoginCheck),
    Access(AccessKind, Arc<Table>),
    Sleep(u64),
    Dns(DnsWord),
    /// `reject_spf_fail`, `reject_spf_softfail`, `defer_spf_temperror` (Postern).
    Spf(super::spf::SpfWord),
    PolicyService(Arc<PolicyClient>),
    /// A name in `smtpd_restriction_classes`.
    Class(String),
    /// Known to Postfix, not implemented here: handled as an unknown word (451 4.3.5).
    Unsupported(String),
    /// Not a restriction at all (or missing its argument): 451 4.3.5.
    Unknown(String),
}

/// A compiled list.
pub(crate) type List = Vec<Word>;

/// The lists of one smtpd process.
#[derive(Debug, Default)]
pub(crate) struct Lists {
    pub client: List,
    pub helo: List,
    pub sender: List,
    pub relay: List,
    pub recipient: List,
    pub data: List,
    pub end_of_data: List,
    pub etrn: List,
}

const SAFETY_WORDS: &[&str] = &[
    "reject_unauth_destination",
    "defer_unauth_destination",
    "reject",
    "defer",
    "defer_if_permit",
    "check_relay_domains",
];

const UNSUPPORTED: &[&str] = &[
    "reject_unverified_sender",
    "reject_unverified_recipient",
    "reject_unlisted_sender_login_mismatch",
    "permit_tls_clientcerts",
    "permit_tls_all_clientcerts",
    "check_ccert_access",
    "check_sasl_access",
    "reject_plaintext_session",
    "permit_mx_backup",
    "check_client_mx_access",
    "check_client_ns_access",
    "check_client_a_access",
    "check_helo_mx_access",
    "check_helo_ns_access",
    "check_helo_a_access",
    "check_sender_mx_access",
    "check_sender_ns_access",
    "check_sender_a_access",
    "check_recipient_mx_access",
    "check_recipient_ns_access",
    "check_recipient_a_access",
    "permit_naked_ip_address",
    "reject_rhsbl_reverse_client",
    "permit_rhswl_client",
];

fn simple(word: &str) -> Option<Word> {
    use Word::*;
    Some(match word {
        "permit" => Permit,
        "reject" => Reject,
        "defer" => Defer,
        "defer_if_permit" => DeferIfPermit,
        "defer_if_reject" => DeferIfReject,
        "warn_if_reject" => WarnIfReject,
        "permit_mynetworks" => PermitMynetworks,
        "permit_sasl_authenticated" => PermitSaslAuthenticated,
        "permit_inet_interfaces" => PermitInetInterfaces,
        "reject_unauth_destination" => RejectUnauthDestination,
        "defer_unauth_destination" => DeferUnauthDestination,
        "check_relay_domains" => CheckRelayDomains,
        "permit_auth_destination" => PermitAuthDestination,
        "reject_unauth_pipelining" => RejectUnauthPipelining,
        "reject_non_fqdn_helo_hostname" | "reject_non_fqdn_hostname" => RejectNonFqdnHelo,
        "reject_invalid_helo_hostname" | "reject_invalid_hostname" => RejectInvalidHelo,
        "reject_non_fqdn_sender" => RejectNonFqdnSender,
        "reject_non_fqdn_recipient" => RejectNonFqdnRecipient,
        "reject_unlisted_sender" => RejectUnlistedSender,
        "reject_unlisted_recipient" | "check_recipient_maps" => RejectUnlistedRecipient,
        "reject_multi_recipient_bounce" => RejectMultiRecipientBounce,
        _ => return None,
    })
}

fn access_kind(word: &str) -> Option<AccessKind> {
    Some(match word {
        "check_client_access" => AccessKind::Client,
        "check_reverse_client_hostname_access" => AccessKind::ReverseClient,
        "check_helo_access" => AccessKind::Helo,
        "check_sender_access" => AccessKind::Sender,
        "check_recipient_access" => AccessKind::Recipient,
        "check_etrn_access" => AccessKind::Etrn,
        _ => return None,
    })
}

/// Compiles a list of tokens. `classes` are the restriction class names; `cfg` gives the
/// policy-service settings.
pub(crate) fn compile(toks: &[String], classes: &[String], cfg: &Config) -> List {
    let mut out = Vec::new();
    let mut it = toks.iter().peekable();
    while let Some(tok) = it.next() {
        let lower = tok.to_ascii_lowercase();
        let word = lower.as_str();
        let mut arg = || it.next().cloned();
        let w = if let Some(w) = simple(word) {
            w
        } else if let Some(c) = super::sasl::LoginCheck::from_word(word) {
            Word::SenderLogin(c)
        } else if let Some(kind) = access_kind(word) {
            match arg() {
                Some(spec) => Word::Access(kind, Arc::new(Table::open(&spec))),
                None => Word::Unknown(tok.clone()),
            }
        } else if word == "sleep" {
            match arg().and_then(|a| a.parse().ok()) {
                Some(n) => Word::Sleep(n),
                None => Word::Unknown(tok.clone()),
            }
        } else if word == "check_policy_service" {
            match arg() {
                Some(a) => Word::PolicyService(Arc::new(PolicyClient::new(&a, cfg))),
                None => Word::Unknown(tok.clone()),
            }
        } else if let Some(w) = super::spf::SpfWord::from_word(word) {
            Word::Spf(w)
        } else if let Some(needs_arg) = DnsWord::arity(word) {
            let a = if needs_arg { arg() } else { None };
            match DnsWord::new(word, a) {
                Some(d) => Word::Dns(d),
                None => Word::Unknown(tok.clone()),
            }
        } else if classes.iter().any(|c| c == tok) {
            Word::Class(tok.clone())
        } else if UNSUPPORTED.contains(&word) {
            if word.starts_with("check_") {
                let _table = arg(); // the table argument of an unsupported check
            }
            Word::Unsupported(tok.clone())
        } else {
            Word::Unknown(tok.clone())
        };
        if matches!(w, Word::CheckRelayDomains) {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                postern_log::warning(
                    "support for restriction \"check_relay_domains\" will be removed from \
                     Postfix; use \"reject_unauth_destination\" instead",
                );
            });
        }
        out.push(w);
    }
    out
}

fn list(cfg: &Config, name: postern_config::Str, classes: &[String]) -> List {
    compile(&cfg.list(name), classes, cfg)
}

/// Compiles every list and class, then applies Postfix's relay safety rule.
pub(crate) fn compile_all(cfg: &Config) -> Result<(Lists, HashMap<String, List>), PolicyError> {
    let class_names = cfg.list(p::SMTPD_RESTRICTION_CLASSES);
    let lists = Lists {
        client: list(cfg, p::SMTPD_CLIENT_RESTRICTIONS, &class_names),
        helo: list(cfg, p::SMTPD_HELO_RESTRICTIONS, &class_names),
        sender: list(cfg, p::SMTPD_SENDER_RESTRICTIONS, &class_names),
        relay: list(cfg, p::SMTPD_RELAY_RESTRICTIONS, &class_names),
        recipient: list(cfg, p::SMTPD_RECIPIENT_RESTRICTIONS, &class_names),
        data: list(cfg, p::SMTPD_DATA_RESTRICTIONS, &class_names),
        end_of_data: list(cfg, p::SMTPD_END_OF_DATA_RESTRICTIONS, &class_names),
        etrn: list(cfg, p::SMTPD_ETRN_RESTRICTIONS, &class_names),
    };
    let mut classes = HashMap::new();
    for name in &class_names {
        classes.insert(
            name.clone(),
            compile(&cfg.get_list(name), &class_names, cfg),
        );
    }
    safety_rule(cfg)?;
    Ok((lists, classes))
}

/// Postfix refuses to run when neither relay nor recipient restrictions can refuse
/// mail to a foreign destination.
fn safety_rule(cfg: &Config) -> Result<(), PolicyError> {
    let relay = cfg.list(p::SMTPD_RELAY_RESTRICTIONS);
    let rcpt = cfg.list(p::SMTPD_RECIPIENT_RESTRICTIONS);
    let working = |t: &Vec<String>| {
        t.iter()
            .any(|w| SAFETY_WORDS.contains(&w.to_ascii_lowercase().as_str()))
    };
    if working(&relay) || working(&rcpt) {
        return Ok(());
    }
    Err(PolicyError(
        "in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at \
         least one working instance of: reject_unauth_destination, defer_unauth_destination, \
         reject, defer, defer_if_permit or check_relay_domains"
            .to_string(),
    ))
}
