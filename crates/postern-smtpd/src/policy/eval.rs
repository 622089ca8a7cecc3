//! Evaluating restriction lists: the per-check state (`defer_if_permit`,
//! `defer_if_reject`, `warn_if_reject`), the generic words, and reply texts.

use super::addr::Class;
use super::compile::{List, Word};
use super::{Facts, MAX_NESTING, Policy, Stage, Verdict};
use postern_config::{Config, Int, p};
use postern_dns::valid_hostname;
use postern_smtp_proto::Reply;
use std::future::Future;
use std::pin::Pin;

/// What a reply is about (Postfix's `<x>: Client host rejected:` part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    Client,
    ReverseClient,
    Helo,
    Sender,
    Recipient,
    Data,
    EndOfData,
    Etrn,
}

/// The result of one word or list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Permit,
    Dunno,
    Reject(Reply),
    /// DISCARD: accept, and stop checking.
    Discard,
}

/// Reply codes and switches, read once.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub reject_code: u16,
    pub defer_code: u16,
    pub relay_code: u16,
    pub non_fqdn_code: u16,
    pub invalid_hostname_code: u16,
    pub access_reject_code: u16,
    pub access_defer_code: u16,
    pub unknown_address_code: u16,
    pub unknown_client_code: u16,
    pub unknown_hostname_code: u16,
    pub maps_rbl_code: u16,
    pub multi_bounce_code: u16,
    pub unknown_local_code: u16,
    pub unknown_virtual_alias_code: u16,
    pub unknown_virtual_mailbox_code: u16,
    pub unknown_relay_code: u16,
    pub delay_reject: bool,
    pub relay_first: bool,
    pub implicit_unlisted_recipient: bool,
    pub implicit_unlisted_sender: bool,
    pub allow_untrusted_routing: bool,
    /// `soft_bounce`: every 5xx refusal is sent (and logged) as 4xx.
    pub soft_bounce: bool,
    pub null_key: String,
    pub delimiter: String,
    pub access_parent_matches: bool,
    pub default_rbl_reply: String,
}

impl Params {
    pub(crate) fn from_config(cfg: &Config) -> Params {
        // A code outside 4XX/5XX is the table default's.
        let code = |n: Int| {
            let ok = |v: i64| u16::try_from(v).ok().filter(|v| (400..600).contains(v));
            ok(cfg.int(n))
                .or_else(|| ok(Config::default().int(n)))
                .unwrap_or_default()
        };
        Params {
            reject_code: code(p::REJECT_CODE),
            defer_code: code(p::DEFER_CODE),
            relay_code: code(p::RELAY_DOMAINS_REJECT_CODE),
            non_fqdn_code: code(p::NON_FQDN_REJECT_CODE),
            invalid_hostname_code: code(p::INVALID_HOSTNAME_REJECT_CODE),
            access_reject_code: code(p::ACCESS_MAP_REJECT_CODE),
            access_defer_code: code(p::ACCESS_MAP_DEFER_CODE),
            unknown_address_code: code(p::UNKNOWN_ADDRESS_REJECT_CODE),
            unknown_client_code: code(p::UNKNOWN_CLIENT_REJECT_CODE),
            unknown_hostname_code: code(p::UNKNOWN_HOSTNAME_REJECT_CODE),
            maps_rbl_code: code(p::MAPS_RBL_REJECT_CODE),
            multi_bounce_code: code(p::MULTI_RECIPIENT_BOUNCE_REJECT_CODE),
            unknown_local_code: code(p::UNKNOWN_LOCAL_RECIPIENT_REJECT_CODE),
            unknown_virtual_alias_code: code(p::UNKNOWN_VIRTUAL_ALIAS_REJECT_CODE),
            unknown_virtual_mailbox_code: code(p::UNKNOWN_VIRTUAL_MAILBOX_REJECT_CODE),
            unknown_relay_code: code(p::UNKNOWN_RELAY_RECIPIENT_REJECT_CODE),
            delay_reject: cfg.bool(p::SMTPD_DELAY_REJECT),
            relay_first: cfg.bool(p::SMTPD_RELAY_BEFORE_RECIPIENT_RESTRICTIONS),
            implicit_unlisted_recipient: cfg.bool(p::SMTPD_REJECT_UNLISTED_RECIPIENT),
            implicit_unlisted_sender: cfg.bool(p::SMTPD_REJECT_UNLISTED_SENDER),
            allow_untrusted_routing: cfg.bool(p::ALLOW_UNTRUSTED_ROUTING),
            soft_bounce: cfg.bool(p::SOFT_BOUNCE),
            null_key: cfg.str(p::SMTPD_NULL_ACCESS_LOOKUP_KEY),
            delimiter: cfg.str(p::RECIPIENT_DELIMITER),
            access_parent_matches: postern_table::parent_matches(
                "smtpd_access_maps",
                &cfg.str(p::PARENT_DOMAIN_MATCHES_SUBDOMAINS),
            ),
            default_rbl_reply: cfg.raw("default_rbl_reply").unwrap_or_default(),
        }
    }
}

/// Builds a reply whose enhanced code's class follows the reply code (a 4xx reply
/// never carries a 5.x.x code).
pub(crate) fn reply(code: u16, dsn: (u8, u16, u16), text: impl Into<String>) -> Reply {
    let class = u8::try_from(code / 100).unwrap_or(dsn.0);
    Reply::new(code, Some((class, dsn.1, dsn.2)), text)
}

/// `451 4.3.5 Server configuration error`.
pub(crate) fn config_error() -> Reply {
    Reply::new(451, Some((4, 3, 5)), "Server configuration error")
}

/// `451 4.3.0 <addr>: Temporary lookup failure` (a table or list failed: defer).
pub(crate) fn lookup_failure(addr: &str) -> Reply {
    Reply::new(
        451,
        Some((4, 3, 0)),
        format!("<{addr}>: Temporary lookup failure"),
    )
}

/// One check in progress.
pub(crate) struct Eval<'a> {
    pub p: &'a Policy,
    pub f: &'a Facts,
    pub stage: Stage,
    pub out: Verdict,
    defer_if_permit: Option<Reply>,
    defer_if_reject: Option<Reply>,
    warn: bool,
    depth: usize,
}

type StepFuture<'s> = Pin<Box<dyn Future<Output = Step> + Send + 's>>;

/// Entry point of [`Policy::check`].
pub(crate) async fn check(p: &Policy, stage: Stage, f: &Facts) -> Verdict {
    let mut e = Eval {
        p,
        f,
        stage,
        out: Verdict::default(),
        defer_if_permit: None,
        defer_if_reject: None,
        warn: false,
        depth: 0,
    };
    let step = e.stage().await;
    match step {
        Step::Reject(r) => e.out.reject = Some(r),
        Step::Discard => {}
        Step::Permit | Step::Dunno => e.out.reject = e.defer_if_permit.take(),
    }
    if p.params.soft_bounce
        && let Some(r) = e.out.reject.as_mut()
    {
        soften(r);
    }
    e.out
}

/// Postfix's `soft_bounce` for a restriction's refusal: a 5xx reply becomes 4xx and a
/// 5.x.x enhanced code 4.x.x, so the client keeps the mail and retries.
pub(crate) fn soften(r: &mut Reply) {
    if (500..600).contains(&r.code) {
        r.code -= 100;
        if let Some(e) = r.enhanced.as_mut()
            && e.0 == 5
        {
            e.0 = 4;
        }
    }
}

impl<'a> Eval<'a> {
    async fn stage(&mut self) -> Step {
        let l = &self.p.lists;
        let delay = self.p.params.delay_reject;
        let mut lists: Vec<(&List, Subject)> = Vec::new();
        let mut implicit_sender = false;
        let mut implicit_rcpt = false;
        match self.stage {
            Stage::Connect if !delay => lists.push((&l.client, Subject::Client)),
            Stage::Helo if !delay => lists.push((&l.helo, Subject::Helo)),
            Stage::Mail if !delay => {
                lists.push((&l.sender, Subject::Sender));
                implicit_sender = true;
            }
            Stage::Connect | Stage::Helo | Stage::Mail => {}
            Stage::Rcpt => {
                if self
                    .f
                    .recipient
                    .as_deref()
                    .is_some_and(|r| r.eq_ignore_ascii_case("postmaster"))
                {
                    return Step::Dunno;
                }
                if delay {
                    lists.push((&l.client, Subject::Client));
                    lists.push((&l.helo, Subject::Helo));
                    lists.push((&l.sender, Subject::Sender));
                    implicit_sender = true;
                }
                if self.p.params.relay_first {
                    lists.push((&l.relay, Subject::Recipient));
                    lists.push((&l.recipient, Subject::Recipient));
                } else {
                    lists.push((&l.recipient, Subject::Recipient));
                    lists.push((&l.relay, Subject::Recipient));
                }
                implicit_rcpt = self.p.params.implicit_unlisted_recipient;
            }
            Stage::Data => lists.push((&l.data, Subject::Data)),
            Stage::EndOfData => lists.push((&l.end_of_data, Subject::EndOfData)),
            Stage::Etrn => {
                if delay {
                    lists.push((&l.client, Subject::Client));
                    lists.push((&l.helo, Subject::Helo));
                }
                lists.push((&l.etrn, Subject::Etrn));
            }
        }
        for (list, subject) in lists {
            match self.list(list, subject).await {
                Step::Permit | Step::Dunno => {}
                stop => return stop,
            }
            if subject == Subject::Sender
                && implicit_sender
                && self.p.params.implicit_unlisted_sender
                && let Step::Reject(r) = self.unlisted(Subject::Sender)
            {
                return Step::Reject(r);
            }
        }
        if implicit_rcpt {
            return self.unlisted(Subject::Recipient);
        }
        Step::Dunno
    }

    /// Evaluates one list; the first permit or reject ends it.
    pub(crate) fn list<'s>(&'s mut self, list: &'s [Word], subject: Subject) -> StepFuture<'s> {
        Box::pin(async move {
            if self.depth >= MAX_NESTING {
                postern_log::warning("restriction nesting too deep");
                return Step::Reject(config_error());
            }
            self.depth += 1;
            let saved_warn = self.warn;
            let mut result = Step::Dunno;
            for word in list {
                if matches!(word, Word::WarnIfReject) {
                    self.warn = true;
                    continue;
                }
                let step = self.word(word, subject).await;
                self.warn = false;
                if step != Step::Dunno {
                    result = step;
                    break;
                }
            }
            self.warn = saved_warn;
            self.depth -= 1;
            result
        })
    }

    /// Applies a reject or defer reply through `warn_if_reject` and `defer_if_reject`.
    pub(crate) fn refuse(&mut self, r: Reply) -> Step {
        if self.warn {
            let line = self.event("reject_warning", &wire(&r));
            self.out.log.push(line);
            return Step::Dunno;
        }
        if r.code >= 500 && self.defer_if_reject.is_some() {
            let deferred = self
                .defer_if_permit
                .clone()
                .or(self.defer_if_reject.clone());
            return Step::Reject(deferred.unwrap_or(r));
        }
        Step::Reject(r)
    }

    pub(crate) fn set_defer_if_permit(&mut self, r: Reply) {
        self.defer_if_permit.get_or_insert(r);
    }

    pub(crate) fn set_defer_if_reject(&mut self, r: Reply) {
        self.defer_if_reject.get_or_insert(r);
    }

    /// `<who>` and `what` of Postfix's `<who>: what rejected: text`.
    pub(crate) fn who(&self, s: Subject) -> (String, &'static str) {
        let f = self.f;
        match s {
            Subject::Client => (format!("<{}>", self.client()), "Client host"),
            Subject::ReverseClient => (
                format!("<{}[{}]>", f.reverse_client_name, self.client_addr()),
                "Client host",
            ),
            Subject::Helo => (
                format!("<{}>", f.helo.as_deref().unwrap_or("")),
                "Helo command",
            ),
            Subject::Sender => (
                format!("<{}>", f.sender.as_deref().unwrap_or("")),
                "Sender address",
            ),
            Subject::Recipient => (
                format!("<{}>", f.recipient.as_deref().unwrap_or("")),
                "Recipient address",
            ),
            Subject::Data => ("<DATA>".to_string(), "Data command"),
            Subject::EndOfData => ("<END-OF-MESSAGE>".to_string(), "End-of-data"),
            Subject::Etrn => {
                let d = f.etrn_domain.as_deref().unwrap_or("");
                (format!("<{}>", d.trim_start_matches('@')), "Etrn command")
            }
        }
    }

    /// `code dsn <who>: what rejected: text`.
    pub(crate) fn rejected(&self, code: u16, dsn: (u8, u16, u16), s: Subject, text: &str) -> Reply {
        let (who, what) = self.who(s);
        reply(code, dsn, format!("{who}: {what} rejected: {text}"))
    }

    pub(crate) fn client_addr(&self) -> String {
        self.f
            .client_addr
            .map_or_else(|| "unknown".to_string(), |a| a.to_string())
    }

    /// `name[addr]`.
    pub(crate) fn client(&self) -> String {
        let name = if self.f.client_name.is_empty() {
            "unknown"
        } else {
            &self.f.client_name
        };
        format!("{name}[{}]", self.client_addr())
    }

    /// A Postfix log line: `kind: RCPT from host[addr]: text; from=<s> to=<r> proto=P helo=<h>`.
    pub(crate) fn event(&self, kind: &str, text: &str) -> String {
        let f = self.f;
        let cmd = match self.stage {
            Stage::Connect => "CONNECT",
            Stage::Helo if f.protocol.eq_ignore_ascii_case("ESMTP") => "EHLO",
            Stage::Helo => "HELO",
            Stage::Mail => "MAIL",
            Stage::Rcpt => "RCPT",
            Stage::Data => "DATA",
            Stage::EndOfData => "END-OF-MESSAGE",
            Stage::Etrn => "ETRN",
        };
        let mut line = format!("{kind}: {cmd} from {}: {text};", self.client());
        if let Some(s) = &f.sender {
            line.push_str(&format!(" from=<{s}>"));
        }
        if let Some(r) = &f.recipient {
            line.push_str(&format!(" to=<{r}>"));
        }
        if !f.protocol.is_empty() {
            line.push_str(&format!(" proto={}", f.protocol));
        }
        if let Some(h) = &f.helo {
            line.push_str(&format!(" helo=<{h}>"));
        }
        line
    }

    fn word<'s>(&'s mut self, w: &'s Word, s: Subject) -> StepFuture<'s> {
        Box::pin(async move {
            let pr = &self.p.params;
            match w {
                Word::Permit => Step::Permit,
                Word::Reject => {
                    let r = self.rejected(pr.reject_code, (5, 7, 1), s, "Access denied");
                    self.refuse(r)
                }
                Word::Defer => {
                    let r = self.rejected(pr.defer_code, (4, 3, 2), s, "Try again later");
                    self.refuse(r)
                }
                Word::DeferIfPermit => {
                    let r = self.rejected(pr.defer_code, (4, 7, 0), s, "defer_if_permit requested");
                    self.set_defer_if_permit(r);
                    Step::Dunno
                }
                Word::DeferIfReject => {
                    let r = self.rejected(pr.defer_code, (4, 7, 0), s, "defer_if_reject requested");
                    self.set_defer_if_reject(r);
                    Step::Dunno
                }
                Word::WarnIfReject => Step::Dunno,
                Word::PermitMynetworks => self.mynetworks(s),
                Word::PermitSaslAuthenticated => {
                    let anonymous = self
                        .f
                        .sasl_method
                        .as_deref()
                        .is_some_and(|m| m.eq_ignore_ascii_case("ANONYMOUS"));
                    if self.f.sasl_username.is_some() && !anonymous {
                        Step::Permit
                    } else {
                        Step::Dunno
                    }
                }
                Word::PermitInetInterfaces => match self.f.client_addr {
                    Some(ip) if self.p.addrs.is_inet_interface(ip) => Step::Permit,
                    _ => Step::Dunno,
                },
                Word::RejectUnauthDestination => self.relay(Some(false)),
                Word::DeferUnauthDestination => self.relay(Some(true)),
                Word::CheckRelayDomains => self.check_relay_domains(),
                Word::PermitAuthDestination => self.relay(None),
                Word::RejectUnauthPipelining if self.f.improper_pipelining => {
                    // Postfix names what is being refused: `<DATA>: Data command
                    // rejected: …`, `<addr>: Recipient address rejected: …`.
                    let subject = match self.stage {
                        Stage::Data => Subject::Data,
                        Stage::EndOfData => Subject::EndOfData,
                        Stage::Mail => Subject::Sender,
                        Stage::Helo => Subject::Helo,
                        Stage::Connect => Subject::Client,
                        Stage::Etrn => Subject::Etrn,
                        Stage::Rcpt => Subject::Recipient,
                    };
                    let r = self.rejected(
                        503,
                        (5, 5, 0),
                        subject,
                        "Improper use of SMTP command pipelining",
                    );
                    self.refuse(r)
                }
                Word::RejectUnauthPipelining => Step::Dunno,
                Word::RejectNonFqdnHelo => self.non_fqdn_helo(),
                Word::RejectInvalidHelo => self.invalid_helo(),
                Word::RejectNonFqdnSender => self.non_fqdn_address(Subject::Sender),
                Word::RejectNonFqdnRecipient => self.non_fqdn_address(Subject::Recipient),
                Word::RejectUnlistedSender => self.unlisted(Subject::Sender),
                Word::RejectUnlistedRecipient => self.unlisted(Subject::Recipient),
                Word::RejectMultiRecipientBounce => self.multi_bounce(s),
                Word::SenderLogin(c) => self.sender_login(*c),
                Word::Access(kind, table) => self.access(*kind, table).await,
                Word::Sleep(n) => {
                    tokio::time::sleep(std::time::Duration::from_secs(*n)).await;
                    Step::Dunno
                }
                Word::Dns(d) => self.dns_word(d, s).await,
                Word::Spf(w) => self.spf_word(*w, s).await,
                Word::PolicyService(client) => {
                    let action = client.query(self.f, self.stage).await;
                    self.action(&action, s, client.name(), "").await
                }
                Word::Class(name) => match self.p.classes.get(name) {
                    Some(list) => self.list(list, s).await,
                    None => Step::Dunno,
                },
                Word::Unsupported(name) | Word::Unknown(name) => {
                    postern_log::warning(format!("unknown smtpd restriction: \"{name}\""));
                    Step::Reject(config_error())
                }
            }
        })
    }

    fn mynetworks(&self, s: Subject) -> Step {
        let Some(ip) = self.f.client_addr else {
            return Step::Dunno;
        };
        let hit = match self.p.mynetworks.matches(ip) {
            Ok(hit) => hit,
            Err(e) => {
                // As Postfix: `451 4.3.0 <x>: Temporary lookup failure`.
                postern_log::warning(format!("mynetworks: {e}"));
                let (who, _) = self.who(s);
                let who = who
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string();
                return Step::Reject(lookup_failure(&who));
            }
        };
        if hit { Step::Permit } else { Step::Dunno }
    }

    fn non_fqdn_helo(&mut self) -> Step {
        let Some(helo) = self.f.helo.clone() else {
            return Step::Dunno;
        };
        if helo.starts_with('[') || helo.trim_end_matches('.').contains('.') {
            return Step::Dunno;
        }
        let r = self.rejected(
            self.p.params.non_fqdn_code,
            (5, 5, 2),
            Subject::Helo,
            "need fully-qualified hostname",
        );
        self.refuse(r)
    }

    fn invalid_helo(&mut self) -> Step {
        let Some(helo) = self.f.helo.clone() else {
            return Step::Dunno;
        };
        let ok = match helo.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(lit) => {
                let lit = lit.strip_prefix("IPv6:").or(lit.strip_prefix("ipv6:"));
                match lit {
                    Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
                    None => helo[1..helo.len() - 1]
                        .parse::<std::net::Ipv4Addr>()
                        .is_ok(),
                }
            }
            None => valid_hostname(&helo),
        };
        if ok {
            return Step::Dunno;
        }
        let r = self.rejected(
            self.p.params.invalid_hostname_code,
            (5, 5, 2),
            Subject::Helo,
            "Invalid name",
        );
        self.refuse(r)
    }

    fn non_fqdn_address(&mut self, s: Subject) -> Step {
        let addr = match s {
            Subject::Sender => self.f.sender.clone(),
            _ => self.f.recipient.clone(),
        };
        let Some(addr) = addr.filter(|a| !a.is_empty()) else {
            return Step::Dunno;
        };
        let fqdn = match addr.rfind('@') {
            Some(at) => {
                let d = &addr[at + 1..];
                d.starts_with('[') || d.trim_end_matches('.').contains('.')
            }
            None => false,
        };
        if fqdn {
            return Step::Dunno;
        }
        let r = self.rejected(
            self.p.params.non_fqdn_code,
            (5, 5, 2),
            s,
            "need fully-qualified address",
        );
        self.refuse(r)
    }

    fn unlisted(&mut self, s: Subject) -> Step {
        let addr = match s {
            Subject::Sender => self.f.sender.clone(),
            _ => self.f.recipient.clone(),
        };
        let Some(addr) = addr.filter(|a| !a.is_empty()) else {
            return Step::Dunno;
        };
        let unknown = self
            .p
            .addrs
            .resolve(&addr)
            .and_then(|r| Ok((self.p.addrs.unlisted(&r)?, r.class)));
        let (what, class) = match unknown {
            Ok((Some(what), class)) => (what, class),
            Ok((None, _)) => return Step::Dunno,
            Err(e) => {
                postern_log::warning(e);
                return Step::Reject(lookup_failure(&addr));
            }
        };
        let pr = &self.p.params;
        let code = match class {
            Class::VirtualAlias => pr.unknown_virtual_alias_code,
            Class::VirtualMailbox => pr.unknown_virtual_mailbox_code,
            Class::Relay => pr.unknown_relay_code,
            _ => pr.unknown_local_code,
        };
        let dsn = if s == Subject::Sender {
            (5, 1, 0)
        } else {
            (5, 1, 1)
        };
        let r = self.rejected(code, dsn, s, &format!("User unknown in {what}"));
        self.refuse(r)
    }

    fn multi_bounce(&mut self, s: Subject) -> Step {
        let null = self.f.sender.as_deref() == Some("");
        let many = match self.stage {
            Stage::Rcpt => self.f.recipient_count >= 1,
            _ => self.f.recipient_count > 1,
        };
        if !(null && many) {
            return Step::Dunno;
        }
        let r = self.rejected(
            self.p.params.multi_bounce_code,
            (5, 5, 3),
            s,
            "Multi-recipient bounce",
        );
        self.refuse(r)
    }
}

/// A reply as it would be sent, without CRLF (for log lines).
pub(crate) fn wire(r: &Reply) -> String {
    r.encode().trim_end().to_string()
}
