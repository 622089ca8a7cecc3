//! Milters in smtpd (Postfix's `smtpd_milters`, `smtpd_milter_maps`): the SMTP
//! events go to the chain as they happen, the message content at the hand-off.
//!
//! # Design
//! One [`postern_milter::Chain`] per session, opened at connect time, owned by the
//! session. CONNECT, HELO/EHLO, MAIL, RCPT, DATA and unknown commands are sent when
//! smtpd handles them, after its own access checks (as Postfix). The content stage
//! runs on the message *as cleanup will queue it*, as in Postfix: smtpd sends its
//! request with `cleanup_flags::MILTER`; cleanup builds the queue file (header
//! fix-ups, address rewriting, its `Received:` header, the missing `Message-Id:`/
//! `Date:`/`From:`), and before writing it sends smtpd the queue ID, header fields and
//! body on the same connection ([`postern_ipc::milter::MilterInspect`]). smtpd runs
//! header, end-of-header, body and end-of-message through every milter of the chain
//! (each sees the edits of the ones before it) and answers with the outcome
//! ([`postern_ipc::milter::MilterOutcome`]): cleanup applies it and writes, holds,
//! discards or refuses; nothing is queued half-modified because the file is written
//! only after the outcome arrived. Postfix instead hands its milter sockets to
//! cleanup; keeping them in smtpd needs no descriptor passing and leaves cleanup's
//! protocol one request, one reply plus this optional round.
//!
//! The chain is synchronous (std sockets with the milter timeouts); every call runs in
//! a blocking task so the event loop keeps serving other sessions.
//!
//! Replies follow Postfix's `check_milter_reply`: reject/tempfail give the milter's
//! reply and log `NOQUEUE: milter-reject: STAGE from …`; discard and quarantine mark
//! the transaction (`milter-discard`, `milter-hold` … `milter triggers DISCARD/HOLD
//! action`); a 5xx at CONNECT greets with `554 HOST ESMTP not accepting connections`,
//! a 5xx at CONNECT or HELO is given to MAIL as `550 5.7.1 Command rejected` (4xx:
//! `451 4.7.1 Service unavailable - try again later`), a 421 ends the session.
//!
//! # Security
//! Milter replies were validated by `postern-milter` (no CR/LF injection); a milter
//! that fails gets its `default_action`. Macros carry only session facts.
//!
//! # Configuration
//! `smtpd_milters`, `smtpd_milter_maps` (client IP → milter list, `DISABLE` = none),
//! `milter_connect_timeout`, `milter_command_timeout`, `milter_content_timeout`,
//! `milter_default_action`, `milter_protocol`, `milter_*_macros`,
//! `milter_macro_defaults`, `milter_macro_daemon_name`, `milter_macro_v`,
//! `receive_override_options` (`no_milters`).
//!
//! # Not done
//! The `i` macro exists only from the content stage on (the queue ID is chosen by
//! cleanup when the message arrives, not at MAIL); `{client_connections}`,
//! `{cert_subject}`, `{cert_issuer}` are not sent.

#[path = "milter_content.rs"]
mod content;
pub use content::to_ipc;
pub(crate) use content::{queue, refusal};

use crate::session::{Session, reply};
use postern_config::{Config, p};
use postern_ipc::proto::cleanup_flags;
use postern_milter::{Chain, MacroConfig, Macros, MilterSpec, Verdict};
use postern_smtp_proto::Reply;
use std::path::PathBuf;
use std::sync::Arc;

/// smtpd's milter settings (one per process).
#[derive(Debug)]
pub struct MilterConfig {
    /// `smtpd_milters`.
    specs: Vec<MilterSpec>,
    /// `smtpd_milter_maps`.
    maps: Vec<postern_table::BoxMap>,
    /// The `milter_*` defaults, for lists found in `smtpd_milter_maps`.
    defaults: MilterSpec,
    /// Relative `unix:` paths are below `queue_directory`.
    base: PathBuf,
    /// The macro lists.
    macros: MacroConfig,
    /// `milter_macro_daemon_name`.
    daemon_name: String,
    /// `milter_macro_v`.
    version: String,
    /// `$myhostname` (the `j` macro).
    myhostname: String,
}

impl MilterConfig {
    /// `None` when this service has no milters (none configured, or
    /// `receive_override_options = no_milters`). A value that does not parse or a
    /// table that cannot be opened is an error (fail closed).
    pub fn from_config(cfg: &Config) -> Result<Option<Arc<MilterConfig>>, String> {
        let flags =
            cleanup_flags::from_receive_override_options(&cfg.str(p::RECEIVE_OVERRIDE_OPTIONS));
        let list = cfg.str(p::SMTPD_MILTERS);
        let maps = cfg.list(p::SMTPD_MILTER_MAPS);
        if flags & cleanup_flags::NO_MILTERS != 0 || (list.trim().is_empty() && maps.is_empty()) {
            return Ok(None);
        }
        let defaults = postern_milter::config::defaults(cfg).map_err(|e| e.to_string())?;
        let base = PathBuf::from(cfg.str(p::QUEUE_DIRECTORY));
        let specs = postern_milter::parse_milters(&list, &defaults, &base)
            .map_err(|e| format!("smtpd_milters: {e}"))?;
        let opts = postern_table::OpenOptions::default();
        let maps = maps
            .iter()
            .map(|m| postern_table::open(m, &opts).map_err(|e| format!("smtpd_milter_maps: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Arc::new(MilterConfig {
            specs,
            maps,
            defaults,
            base,
            macros: postern_milter::config::macros(cfg).map_err(|e| e.to_string())?,
            daemon_name: cfg.str(p::MILTER_MACRO_DAEMON_NAME),
            version: cfg.str(p::MILTER_MACRO_V),
            myhostname: cfg.str(p::MYHOSTNAME),
        })))
    }

    /// The milters for a client: `smtpd_milter_maps` by client address first
    /// (`DISABLE` = none), else `smtpd_milters`.
    fn for_client(&self, addr: &str) -> Result<Vec<MilterSpec>, String> {
        for m in &self.maps {
            match m.lookup(addr) {
                Ok(Some(v)) if v.trim().eq_ignore_ascii_case("DISABLE") => return Ok(Vec::new()),
                Ok(Some(v)) => {
                    return postern_milter::parse_milters(&v, &self.defaults, &self.base)
                        .map_err(|e| format!("{}: {e}", m.name()));
                }
                Ok(None) => {}
                Err(e) => return Err(format!("{}: lookup error for {addr}: {e}", m.name())),
            }
        }
        Ok(self.specs.clone())
    }
}

/// A session's milters.
#[derive(Debug, Default)]
pub struct SessionMilters {
    /// The chain (`None` while a blocking task has it, or after a panic there).
    chain: Option<Chain>,
    /// A 5xx (`'5'`) or 4xx (`'4'`) refusal at CONNECT or HELO, given at MAIL.
    refused: Option<char>,
    /// The transaction was marked DISCARD by a milter: no more events.
    pub discard: bool,
    /// The transaction was marked HOLD by a milter (the reason).
    pub hold: Option<String>,
    /// MAIL was sent: an ABORT is due when the transaction ends without a message.
    in_txn: bool,
    /// The chain was lost (a panic in its task): every event is refused (4xx).
    broken: bool,
}

/// The verdict for an event when the chain is gone.
fn unavailable() -> Verdict {
    Verdict::Tempfail(postern_milter::Reply::new(
        451,
        "4.7.1",
        "Service unavailable - try again later",
    ))
}

/// Runs `f` on the session's chain in a blocking task; `None` without milters.
async fn call<T: Send + 'static>(
    sess: &mut Session<'_>,
    f: impl FnOnce(&mut Chain) -> T + Send + 'static,
) -> Option<T> {
    let mut chain = sess.milters.as_mut()?.chain.take()?;
    let joined = tokio::task::spawn_blocking(move || {
        let r = f(&mut chain);
        (chain, r)
    })
    .await;
    let (chain, r) = match joined {
        Ok(x) => x,
        Err(e) => {
            // Fail closed: every later event and the message get a temporary refusal.
            postern_log::warning(format!("{}: milter chain lost: {e}", sess.client));
            if let Some(m) = sess.milters.as_mut() {
                m.broken = true;
            }
            return None;
        }
    };
    if let Some(m) = sess.milters.as_mut() {
        m.chain = Some(chain);
    }
    Some(r)
}

/// Every macro value the session knows (the chain picks each stage's list).
fn macros(sess: &Session<'_>) -> Macros {
    let mut m = Macros::new();
    let Some(cfg) = sess.s.milters.as_ref() else {
        return m;
    };
    let f = &sess.facts;
    let addr = f.client_addr.map(|a| a.to_string()).unwrap_or_default();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), v);
    };
    put("j", cfg.myhostname.clone());
    put("_", format!("{} [{addr}]", f.reverse_client_name));
    put("{daemon_name}", cfg.daemon_name.clone());
    put("v", cfg.version.clone());
    put("{client_addr}", addr);
    put("{client_name}", f.client_name.clone());
    put("{client_ptr}", f.reverse_client_name.clone());
    put("{client_port}", sess.client_port.to_string());
    if let Some(a) = sess.server_addr {
        put("{daemon_addr}", a.ip().to_string());
        put("{daemon_port}", a.port().to_string());
    }
    if let Some(t) = sess.tls_info() {
        put("{tls_version}", t.protocol.to_string());
        put("{cipher}", t.cipher.clone());
        put("{cipher_bits}", t.bits.to_string());
    }
    if let Some(mth) = &f.sasl_method {
        put("{auth_type}", mth.clone());
    }
    if let Some(u) = &f.sasl_username {
        put("{auth_authen}", u.clone());
    }
    if let Some(t) = &sess.txn {
        if let Some(a) = &t.params.auth {
            put("{auth_author}", a.clone());
        }
        put("{mail_addr}", t.sender.clone());
        let (host, mailer) = route(&t.sender, &cfg.myhostname);
        put("{mail_host}", host);
        put("{mail_mailer}", mailer);
    }
    if let Some(r) = &f.recipient {
        put("{rcpt_addr}", r.clone());
        let (host, mailer) = route(r, &cfg.myhostname);
        put("{rcpt_host}", host);
        put("{rcpt_mailer}", mailer);
    }
    m
}

/// `{*_host}` and `{*_mailer}` for an address: its domain and `smtp`, or this host
/// and `local` for an address without a domain.
fn route(addr: &str, myhostname: &str) -> (String, String) {
    match addr.rsplit_once('@') {
        Some((_, d)) if !d.is_empty() && !d.eq_ignore_ascii_case(myhostname) => {
            (d.to_string(), "smtp".into())
        }
        _ => (myhostname.to_string(), "local".into()),
    }
}

/// A milter reply as an SMTP reply (a missing enhanced code is `X.7.1`, as Postfix).
fn smtp_reply(r: &postern_milter::Reply) -> Reply {
    let class = (r.code / 100) as u8;
    let enh = r
        .enhanced
        .as_deref()
        .and_then(|e| {
            let mut it = e.split('.');
            let c: u8 = it.next()?.parse().ok()?;
            let s: u16 = it.next()?.parse().ok()?;
            let d: u16 = it.next()?.parse().ok()?;
            Some((c, s, d))
        })
        .unwrap_or((class, 7, 1));
    let mut out = Reply::new(r.code, Some(enh), String::new());
    out.lines = if r.lines.is_empty() {
        vec![String::new()]
    } else {
        r.lines.clone()
    };
    out
}

/// Postfix's `check_milter_reply`: logs the verdict at `stage`; the reply to give
/// (reject or tempfail), or `None` to go on (discard and hold mark the transaction).
fn check(sess: &mut Session<'_>, stage: &str, v: Verdict) -> Option<Reply> {
    let m = sess.milters.as_mut()?;
    let (action, text, r) = match v {
        Verdict::Continue | Verdict::Accept => return None,
        Verdict::Discard => {
            m.discard = true;
            (
                "milter-discard",
                "milter triggers DISCARD action".to_string(),
                None,
            )
        }
        Verdict::Quarantine(reason) => {
            m.hold = Some(reason);
            (
                "milter-hold",
                "milter triggers HOLD action".to_string(),
                None,
            )
        }
        Verdict::Reject(r) | Verdict::Tempfail(r) => {
            let r = smtp_reply(&r);
            ("milter-reject", String::new(), Some(r))
        }
    };
    match &r {
        Some(r) => sess.log_refusal(action, stage, r),
        None => sess.log_event(action, stage, &text),
    }
    r
}

/// Opens the chain and sends CONNECT: the greeting to give instead of 220 (`None`:
/// greet as usual), and whether to hang up after it.
pub(crate) async fn connect(sess: &mut Session<'_>) -> Option<(Reply, bool)> {
    if sess.standalone {
        return None;
    }
    let cfg = sess.s.milters.clone()?;
    let addr = sess.facts.client_addr;
    let specs = match cfg.for_client(&addr.map(|a| a.to_string()).unwrap_or_default()) {
        Ok(s) => s,
        Err(e) => {
            postern_log::warning(e);
            let text = format!("{} Server local data error", sess.s.myhostname);
            return Some((reply(421, (4, 3, 0), text), true));
        }
    };
    if specs.is_empty() {
        return None;
    }
    let ctx = sess.client.clone();
    let macros_cfg = cfg.macros.clone();
    sess.milters = Some(SessionMilters::default());
    let m = macros(sess);
    let (name, port) = (sess.facts.client_name.clone(), sess.client_port);
    let chain = tokio::task::spawn_blocking(move || {
        let mut chain = Chain::open(&specs, &macros_cfg, &ctx);
        let v = chain.connect(&name, addr, port, &m);
        (chain, v)
    })
    .await;
    let (chain, v) = match chain {
        Ok(c) => c,
        Err(e) => {
            postern_log::warning(format!("milter connect: {e}"));
            sess.milters = None;
            return None;
        }
    };
    if let Some(m) = sess.milters.as_mut() {
        m.chain = Some(chain);
    }
    let r = check(sess, "CONNECT", v)?;
    let host = &sess.s.myhostname;
    if r.code == 421 {
        let text = format!("{host} Service unavailable - try again later");
        return Some((Reply::new(421, None, text), true));
    }
    remember_refusal(sess, &r);
    if r.code >= 500 {
        sess.errors += 1;
        let text = format!("{host} ESMTP not accepting connections");
        return Some((Reply::new(554, None, text), false));
    }
    None
}

/// A milter refused the client with a 5xx at CONNECT or HELO.
pub(crate) fn refused(sess: &Session<'_>) -> bool {
    sess.milters
        .as_ref()
        .is_some_and(|m| m.refused == Some('5'))
}

fn remember_refusal(sess: &mut Session<'_>, r: &Reply) {
    if let Some(m) = sess.milters.as_mut() {
        m.refused = Some(if r.code >= 500 { '5' } else { '4' });
    }
}

fn active(sess: &Session<'_>) -> bool {
    sess.milters
        .as_ref()
        .is_some_and(|m| (m.chain.is_some() || m.broken) && !m.discard)
}

/// HELO/EHLO: `Some(reply)` only for a 421 (end the session). A 4xx/5xx is given
/// at MAIL instead (Sendmail compatibility, as Postfix).
pub(crate) async fn helo(sess: &mut Session<'_>, name: &str, stage: &str) -> Option<Reply> {
    // After a CONNECT refusal the milters hear nothing more (Postfix's milter8 answers
    // for them); MAIL gets the refusal.
    if !active(sess) || sess.milters.as_ref().is_some_and(|m| m.refused.is_some()) {
        return None;
    }
    abort(sess).await;
    let (name, m) = (name.to_string(), macros(sess));
    let v = call(sess, move |c| c.helo(&name, &m))
        .await
        .unwrap_or_else(unavailable);
    let r = check(sess, stage, v)?;
    if r.code == 421 {
        return Some(r);
    }
    remember_refusal(sess, &r);
    None
}

/// The ESMTP arguments of the current MAIL/RCPT command (after the address).
fn esmtp_args(sess: &Session<'_>) -> Vec<String> {
    let arg = sess.raw_arg.trim();
    let rest = match arg.find('>') {
        Some(i) => &arg[i + 1..],
        None => arg.split_once(' ').map_or("", |(_, r)| r),
    };
    rest.split_whitespace().map(str::to_string).collect()
}

/// MAIL FROM (after smtpd's checks, with the transaction open): a refusal to give.
pub(crate) async fn mail(sess: &mut Session<'_>) -> Option<Reply> {
    if let Some(m) = sess.milters.as_mut() {
        m.discard = false;
        m.hold = None;
    }
    if !active(sess) {
        return None;
    }
    // The previous transaction ended without a message (a refused MAIL, RCPTs all
    // refused): the milters hear ABORT first.
    abort(sess).await;
    if let Some(c) = sess.milters.as_ref().and_then(|m| m.refused) {
        let r = if c == '5' {
            reply(550, (5, 7, 1), "Command rejected")
        } else {
            reply(451, (4, 7, 1), "Service unavailable - try again later")
        };
        sess.log_refusal("milter-reject", "MAIL", &r);
        return Some(r);
    }
    let sender = sess.txn.as_ref().map(|t| format!("<{}>", t.sender))?;
    let (args, m) = (esmtp_args(sess), macros(sess));
    if let Some(s) = sess.milters.as_mut() {
        s.in_txn = true;
    }
    let v = call(sess, move |c| c.mail(&sender, &args, &m))
        .await
        .unwrap_or_else(unavailable);
    check(sess, "MAIL", v)
}

/// RCPT TO (after smtpd's checks; `sess.facts.recipient` set): a refusal to give.
pub(crate) async fn rcpt(sess: &mut Session<'_>, rcpt: &str) -> Option<Reply> {
    if !active(sess) {
        return None;
    }
    let (rcpt, args, m) = (format!("<{rcpt}>"), esmtp_args(sess), macros(sess));
    let v = call(sess, move |c| c.rcpt(&rcpt, &args, &m))
        .await
        .unwrap_or_else(unavailable);
    check(sess, "RCPT", v)
}

/// DATA (or the first BDAT): a refusal to give.
pub(crate) async fn data(sess: &mut Session<'_>, stage: &str) -> Option<Reply> {
    if !active(sess) {
        return None;
    }
    let m = macros(sess);
    let v = call(sess, move |c| c.data(&m))
        .await
        .unwrap_or_else(unavailable);
    check(sess, stage, v)
}

/// An unknown command: the milter's refusal replaces `500 5.5.2`.
pub(crate) async fn unknown(sess: &mut Session<'_>, line: &str) -> Option<Reply> {
    if !active(sess) {
        return None;
    }
    let (line, m) = (line.to_string(), macros(sess));
    let v = call(sess, move |c| c.unknown(&line, &m))
        .await
        .unwrap_or_else(unavailable);
    check(sess, "UNKNOWN", v)
}

/// The transaction ended without a message (RSET, HELO, a refusal): SMFIC_ABORT.
pub(crate) async fn abort(sess: &mut Session<'_>) {
    let due = sess.milters.as_mut().is_some_and(|m| {
        let d = m.in_txn;
        m.in_txn = false;
        m.discard = false;
        m.hold = None;
        d
    });
    if due {
        call(sess, |c| c.abort()).await;
    }
}

/// The session ends: SMFIC_QUIT.
pub(crate) async fn close(sess: &mut Session<'_>) {
    if let Some(chain) = sess.milters.take().and_then(|m| m.chain)
        && let Err(e) = tokio::task::spawn_blocking(move || chain.close()).await
    {
        postern_log::warning(format!("milter close: {e}"));
    }
}

/// Whether the message goes through the content stage: the flags for cleanup.
pub(crate) fn flags(sess: &Session<'_>) -> u32 {
    match &sess.milters {
        Some(m) if m.discard => cleanup_flags::DISCARD,
        Some(m) if m.chain.is_some() || m.broken => {
            cleanup_flags::MILTER | m.hold.as_ref().map_or(0, |_| cleanup_flags::HOLD)
        }
        Some(m) if m.hold.is_some() => cleanup_flags::HOLD,
        _ => 0,
    }
}

#[cfg(test)]
#[path = "session_tests_milter.rs"]
mod tests;
