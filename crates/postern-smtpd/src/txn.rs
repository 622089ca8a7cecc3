//! The mail transaction: MAIL, RCPT, DATA/BDAT and the hand-off to cleanup.
//!
//! `250` after the message is sent only once cleanup answered that the queue
//! file is durable (fsync of the file and its directory).

use crate::conn::ReadError;
use crate::policy::{MessageAction, Stage};
use crate::session::{Flow, Session, milter, reply};
use postern_ipc::proto::{Recipient, notify};
use postern_smtp_proto::{
    BareNewline, BdatReader, Command, DataConfig, DataReader, Feed, MailParams, Mailbox, Notify,
    RcptParams, Reply, ReversePath,
};

#[path = "handoff.rs"]
mod handoff;
#[path = "proxy.rs"]
pub mod proxy;

/// An open transaction.
pub struct Txn {
    /// Envelope sender, internal form ("" = null sender).
    pub sender: String,
    /// MAIL parameters.
    pub params: MailParams,
    /// Accepted recipients.
    pub rcpts: Vec<Recipient>,
    /// Actions from access tables.
    pub actions: Vec<MessageAction>,
    /// BDAT in progress: reader and content so far.
    pub bdat: Option<(BdatReader, Vec<u8>)>,
    /// The before-queue filter's connection (`smtpd_proxy_filter`).
    pub proxy: Option<proxy::Proxy>,
}

fn notify_bits(n: Option<Notify>) -> u8 {
    match n {
        None => 0,
        Some(Notify::Never) => notify::NEVER,
        Some(Notify::On {
            success,
            delay,
            failure,
        }) => {
            (if success { notify::SUCCESS } else { 0 })
                | (if delay { notify::DELAY } else { 0 })
                | (if failure { notify::FAILURE } else { 0 })
        }
    }
}

fn data_config(sess: &Session<'_>) -> DataConfig {
    DataConfig {
        bare_newline: match sess.s.forbid_bare_newline.as_str() {
            "yes" | "reject" => BareNewline::Reject,
            "normalize" => BareNewline::Normalize,
            _ => BareNewline::No,
        },
        message_size_limit: sess.s.message_size_limit,
    }
}

/// A milter's refusal (logged already): counted, sent; a 421 ends the session.
async fn milter_refused(sess: &mut Session<'_>, counter: &'static str, r: Reply) -> Flow {
    sess.counters.count(counter, false);
    let close = r.code == 421;
    let f = sess.error(r).await;
    if close { Flow::Close } else { f }
}

async fn refuse(sess: &mut Session<'_>, stage: &str, counter: &'static str, r: Reply) -> Flow {
    sess.log_reject(stage, &r);
    sess.counters.count(counter, false);
    sess.error(r).await
}

/// MAIL FROM.
pub async fn mail(sess: &mut Session<'_>, from: ReversePath, params: MailParams) -> Flow {
    sess.set_last("MAIL");
    if sess.s.helo_required && sess.facts.helo.is_none() {
        return refuse(
            sess,
            "MAIL",
            "mail",
            reply(503, (5, 5, 1), "Error: send HELO/EHLO first"),
        )
        .await;
    }
    if sess.txn.is_some() {
        sess.counters.count("mail", false);
        return sess
            .error(reply(503, (5, 5, 1), "Error: nested MAIL command"))
            .await;
    }
    // As Postfix's msg_size: a SIZE stays in force until RSET, HELO/EHLO or the end of
    // a transaction, so a MAIL without SIZE after one refused as too big is refused too.
    if let Some(size) = params.size {
        // An overflowing SIZE leaves nothing in force (Postfix: msg_size = -1).
        sess.mail_size = if size > i64::MAX as u64 { 0 } else { size };
        if size > i64::MAX as u64 {
            let r = reply(
                552,
                (5, 3, 4),
                "Message size exceeds file system imposed limit",
            );
            return refuse(sess, "MAIL", "mail", r).await;
        }
    }
    if sess.s.message_size_limit > 0 && sess.mail_size > sess.s.message_size_limit {
        return refuse(
            sess,
            "MAIL",
            "mail",
            reply(552, (5, 3, 4), "Message size exceeds fixed limit"),
        )
        .await;
    }
    if let Some(r) = sess.rate_limit("message", sess.anvil.msg_rate_limit).await {
        return refuse(sess, "MAIL", "mail", r).await;
    }
    if let Some(r) = crate::checks::queue_space(sess) {
        return refuse(sess, "MAIL", "mail", r).await;
    }
    let sender = match &from {
        ReversePath::Null => String::new(),
        ReversePath::Mailbox(m) => m.internal(),
    };
    if crate::checks::bad_domain(&sender) {
        return crate::checks::illegal(sess, "MAIL", &sender, "mail", (5, 1, 7), "sender").await;
    }
    sess.facts.sender = Some(sender.clone());
    sess.facts.size = params.size.unwrap_or(0);
    if !sess.s.delay_reject {
        let v = sess.policy.check(Stage::Mail, &sess.facts).await;
        sess.log_lines(&v.log);
        if let Some(r) = v.reject {
            sess.facts.sender = None;
            return refuse(sess, "MAIL", "mail", r).await;
        }
        sess.txn = Some(Txn {
            sender,
            params,
            rcpts: Vec::new(),
            actions: v.actions,
            bdat: None,
            proxy: None,
        });
    } else {
        sess.txn = Some(Txn {
            sender,
            params,
            rcpts: Vec::new(),
            actions: Vec::new(),
            bdat: None,
            proxy: None,
        });
    }
    if let Some(r) = milter::mail(sess).await {
        (sess.txn, sess.facts.sender) = (None, None);
        return milter_refused(sess, "mail", r).await;
    }
    if sess.s.proxy.is_some() {
        let line = Command::Mail {
            from,
            params: sess
                .txn
                .as_ref()
                .map(|t| t.params.clone())
                .unwrap_or_default(),
        }
        .encode();
        match proxy::mail(sess, line).await {
            Ok(p) => {
                if let Some(t) = sess.txn.as_mut() {
                    t.proxy = p;
                }
            }
            Err(r) => {
                (sess.txn, sess.facts.sender) = (None, None);
                sess.counters.count("mail", false);
                return sess.error(r).await;
            }
        }
    }
    sess.mail_size = 0;
    sess.counters.count("mail", true);
    sess.conn.reply(&reply(250, (2, 1, 0), "Ok"));
    Flow::Continue
}

/// RCPT TO.
pub async fn rcpt(sess: &mut Session<'_>, to: Mailbox, params: RcptParams) -> Flow {
    sess.set_last("RCPT");
    let Some(count) = sess.txn.as_ref().map(|t| t.rcpts.len()) else {
        sess.counters.count("rcpt", false);
        return sess
            .error(reply(503, (5, 5, 1), "Error: need MAIL command"))
            .await;
    };
    if sess.txn.as_ref().is_some_and(|t| t.bdat.is_some()) {
        sess.counters.count("rcpt", false);
        return sess
            .error(reply(503, (5, 5, 1), "Error: RCPT after BDAT"))
            .await;
    }
    let addr = to.internal();
    if crate::checks::bad_domain(&addr) {
        let f = crate::checks::illegal(sess, "RCPT", &addr, "rcpt", (5, 1, 3), "recipient").await;
        return f;
    }
    if count >= sess.s.recipient_limit {
        sess.counters.count("rcpt", false);
        // Postfix answers this without counting it as an error.
        sess.conn
            .reply(&reply(452, (4, 5, 3), "Error: too many recipients"));
        return Flow::Continue;
    }
    if let Some(r) = sess
        .rate_limit("recipient", sess.anvil.rcpt_rate_limit)
        .await
    {
        return refuse(sess, "RCPT", "rcpt", r).await;
    }
    sess.facts.recipient = Some(addr.clone());
    sess.facts.recipient_count = count;
    let v = sess.policy.check(Stage::Rcpt, &sess.facts).await;
    sess.log_lines(&v.log);
    if let Some(r) = v.reject {
        let f = refuse(sess, "RCPT", "rcpt", r).await;
        sess.facts.recipient = None;
        return f;
    }
    if let Some(r) = milter::rcpt(sess, &addr).await {
        sess.facts.recipient = None;
        return milter_refused(sess, "rcpt", r).await;
    }
    sess.facts.recipient = None;
    if let Some(t) = sess.txn.as_mut().filter(|t| t.proxy.is_some()) {
        let line = Command::Rcpt {
            to: to.clone(),
            params: params.clone(),
        }
        .encode();
        if let Err(r) = proxy::rcpt(t, line).await {
            sess.counters.count("rcpt", false);
            return sess.error(r).await;
        }
    }
    sess.keep_actions(v.actions);
    let orcpt = params
        .orcpt
        .as_ref()
        .map(|o| format!("{};{}", o.addr_type, o.addr))
        .unwrap_or_default();
    if let Some(t) = sess.txn.as_mut() {
        t.rcpts.push(Recipient {
            address: addr.clone(),
            original: addr,
            orcpt,
            notify: notify_bits(params.notify),
            offset: 0,
        });
    }
    sess.counters.count("rcpt", true);
    sess.conn.reply(&reply(250, (2, 1, 5), "Ok"));
    Flow::Continue
}

/// Postfix's state check at DATA and at the first BDAT: no transaction is `503 need
/// RCPT command`, a transaction without an accepted recipient `554 no valid recipients`.
pub(crate) fn data_state(sess: &Session<'_>) -> Option<Reply> {
    match sess.txn.as_ref() {
        None => Some(reply(503, (5, 5, 1), "Error: need RCPT command")),
        Some(t) if t.rcpts.is_empty() => Some(reply(554, (5, 5, 1), "Error: no valid recipients")),
        Some(_) => None,
    }
}

async fn data_checks(
    sess: &mut Session<'_>,
    verb: &'static str,
    counter: &'static str,
) -> Option<Flow> {
    if let Some(r) = data_state(sess) {
        sess.counters.count(counter, false);
        return Some(sess.error(r).await);
    }
    let v = sess.policy.check(Stage::Data, &sess.facts).await;
    sess.log_lines(&v.log);
    if let Some(r) = v.reject {
        return Some(refuse(sess, verb, counter, r).await);
    }
    sess.keep_actions(v.actions);
    if let Some(r) = milter::data(sess, verb).await {
        return Some(milter_refused(sess, counter, r).await);
    }
    None
}

/// DATA.
pub async fn data(sess: &mut Session<'_>) -> Flow {
    sess.set_last("DATA");
    if sess.txn.as_ref().is_some_and(|t| t.bdat.is_some()) {
        sess.counters.count("data", false);
        return sess
            .error(reply(503, (5, 5, 1), "Error: DATA after BDAT"))
            .await;
    }
    if let Some(f) = data_checks(sess, "DATA", "data").await {
        return f;
    }
    if let Some(Err(r)) = match sess.txn.as_mut() {
        Some(t) => Some(proxy::data(t).await),
        None => None,
    } {
        sess.counters.count("data", false);
        return sess.error(r).await;
    }
    sess.conn
        .reply(&Reply::new(354, None, "End data with <CR><LF>.<CR><LF>"));
    if let Err(e) = sess.conn.flush().await {
        postern_log::info(format!(
            "lost connection after DATA from {}: {e}",
            sess.client
        ));
        return Flow::Close;
    }
    let mut reader = DataReader::new(data_config(sess));
    let mut content = Vec::with_capacity(8192);
    let cap = cap(sess);
    loop {
        let mut chunk = Vec::new();
        let fed = reader.feed(sess.conn.pending(), &mut chunk);
        let used = match fed {
            Feed::Done { consumed } => consumed,
            Feed::NeedMore => sess.conn.pending().len(),
        };
        sess.conn.consume(used);
        if content.len() < cap {
            let room = cap - content.len();
            content.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        if matches!(fed, Feed::Done { .. }) {
            break;
        }
        match sess.conn.fill().await {
            Ok(()) => {}
            Err(ReadError::Timeout) => {
                postern_log::info(format!(
                    "timeout after DATA ({} bytes) from {}",
                    content.len(),
                    sess.client
                ));
                sess.conn.reply(&reply(
                    421,
                    (4, 4, 2),
                    format!("{} Error: timeout exceeded", sess.s.myhostname),
                ));
                return Flow::Close;
            }
            Err(_) => {
                postern_log::info(format!(
                    "lost connection after DATA ({} bytes) from {}",
                    content.len(),
                    sess.client
                ));
                return Flow::Close;
            }
        }
    }
    if let Err(e) = reader.result() {
        let r = match e {
            // As Postfix's smtpd, which counts the bytes itself during DATA.
            postern_smtp_proto::DataError::TooBig => {
                reply(552, (5, 3, 4), "Error: message file too big")
            }
            e => e.reply(&sess.s.myhostname, 550),
        };
        sess.txn = None;
        return refuse(sess, "END-OF-MESSAGE", "data", r).await;
    }
    finish(sess, content, None).await
}

fn cap(sess: &Session<'_>) -> usize {
    if sess.s.message_size_limit == 0 {
        usize::MAX
    } else {
        (sess.s.message_size_limit as usize).saturating_add(1)
    }
}

/// BDAT n [LAST].
pub async fn bdat(sess: &mut Session<'_>, size: u64, last: bool) -> Flow {
    sess.set_last("BDAT");
    let starting = sess.txn.as_ref().is_some_and(|t| t.bdat.is_none());
    if starting || sess.txn.is_none() {
        if let Some(f) = data_checks(sess, "BDAT", "bdat").await {
            // The chunk still follows on the wire: skip it so the session stays in sync.
            skip_chunk(sess, size).await;
            return f;
        }
        let cfg = data_config(sess);
        if let Some(t) = sess.txn.as_mut() {
            t.bdat = Some((BdatReader::new(cfg), Vec::new()));
        }
    }
    let so_far = sess
        .txn
        .as_ref()
        .and_then(|t| t.bdat.as_ref())
        .map_or(0, |(_, c)| c.len() as u64);
    if sess.s.message_size_limit > 0 && so_far.saturating_add(size) > sess.s.message_size_limit {
        // As Postfix: refused before the chunk is read; the chunk is skipped.
        skip_chunk(sess, size).await;
        sess.txn = None;
        let r = reply(552, (5, 3, 4), "Chunk exceeds message size limit");
        return refuse(sess, "BDAT", "bdat", r).await;
    }
    let cap = cap(sess);
    let Some((mut reader, mut content)) = sess.txn.as_mut().and_then(|t| t.bdat.take()) else {
        skip_chunk(sess, size).await;
        return sess
            .error(reply(503, (5, 5, 1), "Error: need MAIL command"))
            .await;
    };
    reader.start_chunk(size, last);
    loop {
        let mut chunk = Vec::new();
        let fed = reader.feed(sess.conn.pending(), &mut chunk);
        let used = match fed {
            Feed::Done { consumed } => consumed,
            Feed::NeedMore => sess.conn.pending().len(),
        };
        sess.conn.consume(used);
        if content.len() < cap {
            let room = cap - content.len();
            content.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        if matches!(fed, Feed::Done { .. }) || (size == 0 && used == 0) {
            break;
        }
        if let Err(e) = sess.conn.fill().await {
            postern_log::info(format!(
                "lost connection after BDAT from {}: {e:?}",
                sess.client
            ));
            return Flow::Close;
        }
    }
    if !last {
        sess.counters.count("bdat", true);
        sess.conn
            .reply(&reply(250, (2, 0, 0), format!("Ok: {size} bytes")));
        if let Some(t) = sess.txn.as_mut() {
            t.bdat = Some((reader, content));
        }
        return Flow::Continue;
    }
    if let Err(e) = reader.result() {
        sess.txn = None;
        return refuse(
            sess,
            "END-OF-MESSAGE",
            "bdat",
            e.reply(&sess.s.myhostname, 550),
        )
        .await;
    }
    let bytes = wire_size(&content);
    finish(sess, content, Some(bytes)).await
}

/// The message size as Postfix's BDAT reply counts it: every line with a CRLF, the
/// last one too when the client did not end it.
fn wire_size(content: &[u8]) -> usize {
    content
        .split_inclusive(|&b| b == b'\n')
        .map(|l| {
            let text = l.strip_suffix(b"\n").unwrap_or(l);
            text.strip_suffix(b"\r").unwrap_or(text).len() + 2
        })
        .sum()
}

async fn skip_chunk(sess: &mut Session<'_>, mut left: u64) {
    while left > 0 {
        if sess.conn.pending().is_empty() && sess.conn.fill().await.is_err() {
            return;
        }
        let n = (sess.conn.pending().len() as u64).min(left) as usize;
        sess.conn.consume(n);
        left -= n as u64;
    }
}

/// End of message: end-of-data checks, hand-off to cleanup, the reply (`bdat`: the
/// byte count a BDAT reply names; `None` for DATA).
async fn finish(sess: &mut Session<'_>, content: Vec<u8>, bdat: Option<usize>) -> Flow {
    let counter = if bdat.is_some() { "bdat" } else { "data" };
    sess.facts.size = content.len() as u64;
    let v = sess.policy.check(Stage::EndOfData, &sess.facts).await;
    sess.log_lines(&v.log);
    if let Some(r) = v.reject {
        sess.txn = None;
        return refuse(sess, "END-OF-MESSAGE", counter, r).await;
    }
    sess.keep_actions(v.actions);
    // Authentication-Results first, the DMARC disposition (see auth.rs).
    let content = match crate::auth::end_of_data(sess, content).await {
        Ok(c) => c,
        Err(r) => {
            sess.txn = None;
            return refuse(sess, "END-OF-MESSAGE", counter, r).await;
        }
    };
    let Some(mut txn) = sess.txn.take() else {
        return sess
            .error(reply(503, (5, 5, 1), "Error: need MAIL command"))
            .await;
    };
    let r = match txn.proxy.take() {
        Some(p) => proxy::finish(sess, p, &txn, &content).await,
        None => handoff::queue(sess, txn, content, bdat).await,
    };
    let ok = r.code / 100 == 2;
    sess.counters.count(counter, ok);
    if ok {
        sess.delivered();
        sess.conn.reply(&r);
        Flow::Continue
    } else {
        sess.error(r).await
    }
}
