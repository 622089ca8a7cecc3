//! The milters' content stage inside the `cleanup/1` exchange (see the design notes in
//! `milter.rs`): cleanup sends the message as it will queue it, the chain runs header,
//! end-of-header, body and end-of-message, smtpd answers with the outcome.
//!
//! # Security
//! The exchange is bounded by `ipc_timeout` and the content frame limit; nothing is
//! queued before cleanup has the outcome.
//!
//! # Configuration
//! `ipc_timeout`, `message_size_limit` (the frame limit), `milter_content_timeout`
//! (inside the chain).

use super::{call, macros, smtp_reply};
use crate::session::Session;
use postern_ipc::AttrList;
use postern_ipc::milter::{MilterInspect, MilterOutcome};
use postern_ipc::proto::CleanupReply;
use postern_milter::{Chain, Macros, Modification, Outcome, Verdict};
use postern_smtp_proto::Reply;
use std::time::Duration;

/// What the cleanup exchange gave: cleanup's reply and the milters' verdict.
pub(crate) struct Queued {
    /// cleanup's answer.
    pub reply: CleanupReply,
    /// The content stage's verdict (`None`: it did not run).
    pub verdict: Option<Verdict>,
}

/// The `cleanup/1` exchange with the content stage in the middle (see the module
/// docs). Errors are texts for smtpd's `warning: cleanup service: …` line.
pub(crate) async fn queue(sess: &mut Session<'_>, req: AttrList) -> Result<Queued, String> {
    let path = postern_server::client::socket_path(sess.cfg, "public", "cleanup");
    let limit = postern_server::client::content_frame_limit(sess.cfg);
    let timeout = sess.s.ipc_timeout;
    let m = macros(sess);
    if let Some(s) = sess.milters.as_mut() {
        s.in_txn = false;
    }
    call(sess, move |chain| {
        exchange(&path, &req, limit, timeout, chain, m)
    })
    .await
    .unwrap_or_else(|| Err("milter chain unavailable".into()))
}

fn exchange(
    path: &std::path::Path,
    req: &AttrList,
    limit: u64,
    timeout: Duration,
    chain: &mut Chain,
    mut m: Macros,
) -> Result<Queued, String> {
    use postern_server::client::{read_frame, write_frame};
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| format!("connect to {}: {e}", path.display()))?;
    s.set_read_timeout(Some(timeout))
        .and_then(|()| s.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    write_frame(&mut s, req).map_err(|e| e.to_string())?;
    let read = |s: &mut std::os::unix::net::UnixStream| match read_frame(s, limit) {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err("unexpected end of stream".to_string()),
        Err(e) => Err(e.to_string()),
    };
    let first = read(&mut s)?;
    if first.text("proto") == CleanupReply::PROTO {
        // Refused before the content stage (limits, a content check).
        let reply = CleanupReply::from_attrs(&first).map_err(|e| e.to_string())?;
        chain.abort();
        return Ok(Queued {
            reply,
            verdict: None,
        });
    }
    let inspect = MilterInspect::from_attrs(&first).map_err(|e| e.to_string())?;
    m.insert("i".into(), inspect.queue_id.clone());
    let hidden = usize::try_from(inspect.hidden).unwrap_or(0);
    let outcome = chain.message_hidden(hidden, &inspect.headers, &inspect.body, &m, &m);
    // The transaction is over for the milters (their per-message state resets).
    chain.abort();
    write_frame(&mut s, &to_ipc(&outcome).to_attrs()).map_err(|e| e.to_string())?;
    let last = read(&mut s)?;
    Ok(Queued {
        reply: CleanupReply::from_attrs(&last).map_err(|e| e.to_string())?,
        verdict: Some(outcome.verdict),
    })
}

/// The outcome in its `cleanup/1` form.
pub fn to_ipc(o: &Outcome) -> MilterOutcome {
    let (verdict, reply, text) = match &o.verdict {
        Verdict::Continue => ("continue", None, vec![]),
        Verdict::Accept => ("accept", None, vec![]),
        Verdict::Reject(r) => ("reject", Some(r), r.lines.clone()),
        Verdict::Tempfail(r) => ("tempfail", Some(r), r.lines.clone()),
        Verdict::Discard => ("discard", None, vec![]),
        Verdict::Quarantine(why) => ("quarantine", None, vec![why.clone()]),
    };
    let s = |v: &str| v.to_string();
    let edits = o
        .modifications
        .iter()
        .map(|m| match m {
            Modification::AddHeader { name, value } => vec![s("add_header"), s(name), s(value)],
            Modification::InsertHeader { index, name, value } => {
                vec![s("insert_header"), index.to_string(), s(name), s(value)]
            }
            Modification::ChangeHeader { index, name, value } => {
                vec![s("change_header"), index.to_string(), s(name), s(value)]
            }
            Modification::ReplaceBody(_) => vec![s("replace_body")],
            Modification::AddRcpt { rcpt, args } => {
                let mut e = vec![s("add_rcpt"), s(rcpt)];
                e.extend(args.clone());
                e
            }
            Modification::DelRcpt { rcpt } => vec![s("del_rcpt"), s(rcpt)],
            Modification::ChangeFrom { sender, args } => {
                let mut e = vec![s("change_from"), s(sender)];
                e.extend(args.clone());
                e
            }
            Modification::Quarantine { reason } => vec![s("quarantine"), s(reason)],
        })
        .collect();
    MilterOutcome {
        verdict: verdict.into(),
        code: reply.map_or(0, |r| r.code),
        enhanced: reply.and_then(|r| r.enhanced.clone()).unwrap_or_default(),
        text,
        headers: o.headers.clone(),
        body: o.body.clone(),
        edits,
    }
}

/// The reply and log line for a content-stage verdict that refused the message.
/// cleanup logged `ID: milter-reject: END-OF-MESSAGE …` (as Postfix's cleanup does);
/// smtpd records the refusal in its transcript and hangs up after a 421.
pub(crate) fn refusal(sess: &mut Session<'_>, v: &Verdict) -> Option<Reply> {
    let (Verdict::Reject(r) | Verdict::Tempfail(r)) = v else {
        return None;
    };
    let r = smtp_reply(r);
    sess.conn.transcript.restriction(&r);
    if r.code == 421 {
        sess.hangup = true;
    }
    Some(r)
}
