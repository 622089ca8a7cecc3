//! Milters in cleanup: the content stage of smtpd's milters, and
//! `non_smtpd_milters` for mail that does not come from smtpd.
//!
//! cleanup builds the queue file first (header fix-ups, rewriting, its own
//! `Received:` header, checks), then, before anything is written:
//!
//! * for a request with `cleanup_flags::MILTER` (smtpd has milters), it sends the
//!   queue ID, header fields and body to smtpd on the request's connection
//!   ([`postern_ipc::milter::MilterInspect`]); smtpd runs its chain's header,
//!   end-of-header, body and end-of-message stages and answers with the outcome
//!   ([`postern_ipc::milter::MilterOutcome`]);
//! * for new mail that did not come through smtpd (pickup's local submissions,
//!   qmqpd; not bounces, notices or local's forwarding), when `non_smtpd_milters` is set, it runs the whole chain itself, as
//!   Postfix emulates the SMTP events of a client `localhost [127.0.0.1]`: CONNECT,
//!   HELO `localhost`, MAIL, one RCPT per recipient, DATA, then the content.
//!
//! Either way the milters see the message as it will be queued, without
//! cleanup's `Received:` header (hidden as Postfix hides it), and the outcome is
//! applied here ([`apply`]): the verdict (reject, tempfail, discard, quarantine →
//! hold) with Postfix's log lines (`ID: milter-reject: END-OF-MESSAGE from
//! host[addr]: 5.7.1 …; from=<…> to=<…> proto=… helo=<…>`), the edited header and
//! body, and the envelope edits (change sender, add recipient with its NOTIFY and
//! ORCPT arguments, delete recipient). The file is written only afterwards, so
//! nothing half-modified is ever queued.
//!
//! # Security
//! The outcome from smtpd is decoded strictly; a broken exchange defers the
//! message (`4.3.0`). Added recipients are taken as given (Postfix rewrites them
//! through canonical and virtual mapping; not done here).
//!
//! # Configuration
//! `milter_header_checks` (see `milter_hbc.rs`), `non_smtpd_milters`, the `milter_*` timeouts, default action, protocol and macro
//! lists, `milter_macro_daemon_name`, `milter_macro_v`, `receive_override_options`
//! (`no_milters`, through the request's flags).

#[path = "milter_hbc.rs"]
mod hbc;

use crate::process::{Built, Refusal};
use postern_config::{Config, p};
use postern_ipc::milter::{MilterInspect, MilterOutcome};
use postern_ipc::proto::{CleanupRequest, CleanupStatus, cleanup_flags, notify};
use postern_milter::{Chain, Macros, Modification, Outcome, Reply, Verdict};
use postern_qfile::RecipientRecord;
use postern_server::client;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::net::UnixStream;

/// What to do with the message after the milters.
#[derive(Debug)]
pub enum Decision {
    /// Write it (possibly to hold/: `built.verdict.hold`).
    Queue,
    /// Accept and drop it (logged).
    Discard,
    /// Refuse it (logged).
    Refuse(Refusal),
}

/// The header fields (name, text after the colon with folded lines joined by
/// `\n`) and the body of a message, as milters exchange them.
pub fn split(content: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    let end = postern_mail::header::header_end(content);
    let headers = postern_mail::header::fields(content)
        .map(|f| {
            let raw = String::from_utf8_lossy(f.raw);
            let value = raw.split_once(':').map_or("", |(_, v)| v);
            let value = value.replace("\r\n", "\n");
            let value = value.strip_suffix('\n').unwrap_or(&value).to_string();
            (f.name_str().to_string(), value)
        })
        .collect();
    (
        headers,
        content.get(end.body_start..).unwrap_or_default().to_vec(),
    )
}

/// The message text for header fields and a body (the inverse of [`split`]); the
/// empty line is written when there is a body or `separator` says the message had one.
pub fn join(headers: &[(String, String)], body: &[u8], separator: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 64 * headers.len());
    for (n, v) in headers {
        out.extend_from_slice(n.as_bytes());
        out.push(b':');
        out.extend_from_slice(v.as_bytes());
        out.push(b'\n');
    }
    if separator || !body.is_empty() {
        out.push(b'\n');
    }
    out.extend_from_slice(body);
    out
}

/// A non-empty request attribute.
pub(crate) fn attr<'a>(req: &'a CleanupRequest, n: &str) -> Option<&'a str> {
    req.attrs
        .iter()
        .find(|(k, _)| k == n)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Mail that `non_smtpd_milters` inspect, as Postfix: new mail from outside that did not
/// come through smtpd — pickup's (local submissions, `postsuper -r`; they carry the
/// submitter's `origin_uid`) and qmqpd's. Not Postern's own mail (bounces, notices,
/// local's forwarding), which Postfix's `internal_mail_filter_classes` leaves out.
fn non_smtp(req: &CleanupRequest) -> bool {
    req.flags & cleanup_flags::BOUNCE == 0
        && (attr(req, "origin_uid").is_some() || attr(req, "protocol") == Some("QMQP"))
}

/// Runs the milter stage for a built message (see the module docs).
pub fn inspect(
    cfg: &Config,
    req: &CleanupRequest,
    queue_id: &str,
    built: &mut Built,
    peer: &mut UnixStream,
) -> Decision {
    if req.flags & cleanup_flags::NO_MILTERS != 0 {
        return Decision::Queue;
    }
    let outcome = if req.flags & cleanup_flags::MILTER != 0 {
        ask_smtpd(cfg, queue_id, built, peer)
    } else if non_smtp(req) {
        match local(cfg, req, queue_id, built) {
            Ok(None) => return Decision::Queue,
            Ok(Some(Err(refusal))) => return Decision::Refuse(refusal),
            Ok(Some(Ok(o))) => Ok(o),
            Err(e) => Err(e),
        }
    } else {
        return Decision::Queue;
    };
    match outcome {
        Ok(o) => apply(cfg, req, queue_id, built, &o),
        Err(e) => {
            postern_log::warning(format!("{queue_id}: milter: {e}"));
            Decision::Refuse(Refusal {
                status: CleanupStatus::Defer,
                reason: "4.3.0 Error: queue file write error".into(),
            })
        }
    }
}

/// The content stage of smtpd's chain, over the request's connection.
fn ask_smtpd(
    cfg: &Config,
    queue_id: &str,
    built: &Built,
    peer: &mut UnixStream,
) -> Result<Outcome, String> {
    let (headers, body) = split(&built.qf.content);
    let inspect = MilterInspect {
        queue_id: queue_id.to_string(),
        headers,
        body,
        hidden: 1,
    };
    client::write_frame(peer, &inspect.to_attrs()).map_err(|e| format!("send to smtpd: {e}"))?;
    let a = match client::read_frame(peer, client::content_frame_limit(cfg)) {
        Ok(Some(a)) => a,
        Ok(None) => return Err("smtpd closed the connection".into()),
        Err(e) => return Err(format!("read from smtpd: {e}")),
    };
    let m = MilterOutcome::from_attrs(&a).map_err(|e| format!("bad outcome from smtpd: {e}"))?;
    from_ipc(&m)
}

/// The outcome from its `cleanup/1` form (the inverse of smtpd's `to_ipc`).
pub fn from_ipc(m: &MilterOutcome) -> Result<Outcome, String> {
    let reply = || Reply {
        code: m.code,
        enhanced: (!m.enhanced.is_empty()).then(|| m.enhanced.clone()),
        lines: m.text.clone(),
    };
    let verdict = match m.verdict.as_str() {
        "continue" => Verdict::Continue,
        "accept" => Verdict::Accept,
        "reject" if (500..600).contains(&m.code) => Verdict::Reject(reply()),
        "tempfail" if (400..500).contains(&m.code) => Verdict::Tempfail(reply()),
        "discard" => Verdict::Discard,
        "quarantine" => Verdict::Quarantine(m.text.first().cloned().unwrap_or_default()),
        v => return Err(format!("bad verdict {v} {}", m.code)),
    };
    let modifications = m
        .edits
        .iter()
        .map(|e| edit(e).ok_or_else(|| format!("bad edit {e:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Outcome {
        verdict,
        headers: m.headers.clone(),
        body: m.body.clone(),
        modifications,
    })
}

fn edit(e: &[String]) -> Option<Modification> {
    let f = |i: usize| e.get(i).cloned();
    let n = |i: usize| e.get(i).and_then(|v| v.parse::<u32>().ok());
    Some(match e.first()?.as_str() {
        "add_header" => Modification::AddHeader {
            name: f(1)?,
            value: f(2)?,
        },
        "insert_header" => Modification::InsertHeader {
            index: n(1)?,
            name: f(2)?,
            value: f(3)?,
        },
        "change_header" => Modification::ChangeHeader {
            index: n(1)?,
            name: f(2)?,
            value: f(3)?,
        },
        // The new body travels in the outcome's body.
        "replace_body" => Modification::ReplaceBody(Vec::new()),
        "add_rcpt" => Modification::AddRcpt {
            rcpt: f(1)?,
            args: f(2),
        },
        "del_rcpt" => Modification::DelRcpt { rcpt: f(1)? },
        "change_from" => Modification::ChangeFrom {
            sender: f(1)?,
            args: f(2),
        },
        "quarantine" => Modification::Quarantine { reason: f(1)? },
        _ => return None,
    })
}

/// `non_smtpd_milters` for this message: `None` when there are none; the chain's
/// outcome, or the refusal of an emulated SMTP event.
#[allow(clippy::type_complexity)]
fn local(
    cfg: &Config,
    req: &CleanupRequest,
    queue_id: &str,
    built: &Built,
) -> Result<Option<Result<Outcome, Refusal>>, String> {
    let list = cfg.str(p::NON_SMTPD_MILTERS);
    if list.trim().is_empty() {
        return Ok(None);
    }
    let defaults = postern_milter::config::defaults(cfg).map_err(|e| e.to_string())?;
    let base = std::path::PathBuf::from(cfg.str(p::QUEUE_DIRECTORY));
    let specs = postern_milter::parse_milters(&list, &defaults, &base)
        .map_err(|e| format!("non_smtpd_milters: {e}"))?;
    let macros = postern_milter::config::macros(cfg).map_err(|e| e.to_string())?;
    let mut m = Macros::new();
    for (k, v) in [
        ("i", queue_id.to_string()),
        ("j", cfg.str(p::MYHOSTNAME)),
        ("_", "localhost [127.0.0.1]".to_string()),
        ("{daemon_name}", cfg.str(p::MILTER_MACRO_DAEMON_NAME)),
        ("v", cfg.str(p::MILTER_MACRO_V)),
        ("{client_addr}", "127.0.0.1".into()),
        ("{client_name}", "localhost".into()),
        ("{client_ptr}", "localhost".into()),
        ("{mail_addr}", built.qf.sender.clone()),
    ] {
        m.insert(k.to_string(), v);
    }
    let mut chain = Chain::open(&specs, &macros, queue_id);
    let localhost = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut events = vec![
        ("CONNECT", chain.connect("localhost", localhost, 0, &m)),
        ("HELO", chain.helo("localhost", &m)),
        ("MAIL", chain.mail(&built.qf.sender, &[], &m)),
    ];
    for r in &built.qf.recipients {
        m.insert("{rcpt_addr}".into(), r.address.clone());
        events.push(("RCPT", chain.rcpt(&r.address, &[], &m)));
    }
    events.push(("DATA", chain.data(&m)));
    for (stage, v) in events {
        if let Some(refusal) = event_refusal(req, queue_id, built, stage, &v) {
            chain.close();
            return Ok(Some(Err(refusal)));
        }
    }
    let (headers, body) = split(&built.qf.content);
    let o = chain.message_hidden(1, &headers, &body, &m, &m);
    chain.close();
    Ok(Some(Ok(o)))
}

/// A refusal of an emulated SMTP event (logged as Postfix's cleanup logs it).
fn event_refusal(
    req: &CleanupRequest,
    queue_id: &str,
    built: &Built,
    stage: &str,
    v: &Verdict,
) -> Option<Refusal> {
    let (Verdict::Reject(r) | Verdict::Tempfail(r)) = v else {
        return None;
    };
    Some(refusal(req, queue_id, built, stage, r))
}

fn refusal(req: &CleanupRequest, queue_id: &str, built: &Built, stage: &str, r: &Reply) -> Refusal {
    let class = if r.is_temporary() { '4' } else { '5' };
    let enh = r.enhanced.clone().unwrap_or_else(|| format!("{class}.7.1"));
    let reason = format!("{enh} {}", r.lines.join(" "));
    log(req, queue_id, built, "milter-reject", stage, &reason);
    Refusal {
        status: if r.is_temporary() {
            CleanupStatus::Defer
        } else {
            CleanupStatus::Reject
        },
        reason,
    }
}

/// `ID: ACTION: STAGE from host[addr]: TEXT; from=<…> to=<…> proto=… helo=<…>`.
fn log(req: &CleanupRequest, queue_id: &str, built: &Built, action: &str, stage: &str, text: &str) {
    let origin = match attr(req, "client_address") {
        Some(a) => format!("{}[{a}]", attr(req, "client_name").unwrap_or("unknown")),
        None => "localhost[127.0.0.1]".to_string(),
    };
    let mut l = format!("{queue_id}: {action}: {stage} from {origin}: {text};");
    l.push_str(&format!(" from=<{}>", built.qf.sender));
    if let Some(r) = built.qf.recipients.last() {
        l.push_str(&format!(" to=<{}>", r.original));
    }
    if let Some(p) = attr(req, "protocol") {
        l.push_str(&format!(" proto={p}"));
    }
    if let Some(h) = attr(req, "helo_name") {
        l.push_str(&format!(" helo=<{h}>"));
    }
    postern_log::info(l);
}

fn unbracket(a: &str) -> String {
    let a = a.trim();
    a.strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(a)
        .to_string()
}

/// A recipient a milter added, with its `NOTIFY=` and `ORCPT=` arguments.
fn added_recipient(rcpt: &str, args: Option<&str>) -> RecipientRecord {
    let address = unbracket(rcpt);
    let mut r = RecipientRecord {
        address: address.clone(),
        original: address,
        ..Default::default()
    };
    for a in args.unwrap_or("").split_whitespace() {
        let (k, v) = a.split_once('=').unwrap_or((a, ""));
        if k.eq_ignore_ascii_case("NOTIFY") {
            r.notify = v
                .split(',')
                .map(|w| match w.to_ascii_uppercase().as_str() {
                    "NEVER" => notify::NEVER,
                    "SUCCESS" => notify::SUCCESS,
                    "DELAY" => notify::DELAY,
                    "FAILURE" => notify::FAILURE,
                    _ => 0,
                })
                .fold(0, |x, y| x | y);
        } else if k.eq_ignore_ascii_case("ORCPT") {
            r.orcpt = v.to_string();
        }
    }
    r
}

/// Applies an outcome to the built queue file (see the module docs).
pub fn apply(
    cfg: &Config,
    req: &CleanupRequest,
    queue_id: &str,
    built: &mut Built,
    o: &Outcome,
) -> Decision {
    match &o.verdict {
        Verdict::Reject(r) | Verdict::Tempfail(r) => {
            return Decision::Refuse(refusal(req, queue_id, built, "END-OF-MESSAGE", r));
        }
        Verdict::Discard => {
            let text = "milter triggers DISCARD action";
            log(
                req,
                queue_id,
                built,
                "milter-discard",
                "END-OF-MESSAGE",
                text,
            );
            return Decision::Discard;
        }
        Verdict::Quarantine(_) => hold(req, queue_id, built),
        Verdict::Continue | Verdict::Accept => {}
    }
    let end = postern_mail::header::header_end(&built.qf.content);
    let separator = end.body_start > end.header_len;
    let mut headers = o.headers.clone();
    if let Some(d) = hbc::check(cfg, req, queue_id, built, &o.modifications, &mut headers) {
        return d;
    }
    built.qf.content = join(&headers, &o.body, separator);
    for m in &o.modifications {
        match m {
            Modification::ChangeFrom { sender, .. } => built.qf.sender = unbracket(sender),
            Modification::AddRcpt { rcpt, args } => built
                .qf
                .recipients
                .push(added_recipient(rcpt, args.as_deref())),
            Modification::DelRcpt { rcpt } => {
                let gone = unbracket(rcpt);
                built.qf.recipients.retain(|r| {
                    !r.original.eq_ignore_ascii_case(&gone)
                        && !r.address.eq_ignore_ascii_case(&gone)
                });
            }
            Modification::Quarantine { .. } => hold(req, queue_id, built),
            _ => {}
        }
    }
    if built.qf.recipients.is_empty() {
        return Decision::Refuse(Refusal {
            status: CleanupStatus::NoRecipients,
            reason: "5.1.3 No recipients specified".into(),
        });
    }
    Decision::Queue
}

fn hold(req: &CleanupRequest, queue_id: &str, built: &mut Built) {
    if !built.verdict.hold {
        built.verdict.hold = true;
        let text = "milter triggers HOLD action";
        log(req, queue_id, built, "milter-hold", "END-OF-MESSAGE", text);
    }
}

#[cfg(test)]
#[path = "milter_tests.rs"]
mod tests;
