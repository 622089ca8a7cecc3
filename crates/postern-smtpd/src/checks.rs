//! VRFY with the recipient checks, ETRN, the queue free-space check at MAIL, and the
//! domain syntax check of MAIL and RCPT addresses.
//!
//! * MAIL/RCPT: as Postfix, an address whose domain (after the last `@`) is neither a host
//!   name (not all-numeric) nor a valid address literal is `501 5.1.7 Bad sender address
//!   syntax` / `501 5.1.3 Bad recipient address syntax`, logged as `warning: Illegal
//!   address syntax from CLIENT in RCPT command: <addr>`.
//! * VRFY (unless `disable_vrfy_command`): the address goes through the same checks as
//!   a RCPT (relay and recipient restrictions, `smtpd_reject_unlisted_recipient`); a
//!   refusal is the RCPT reply (`550 5.1.1 <x>: Recipient address rejected: User unknown
//!   in local recipient table`), else `252 2.0.0 <argument as sent>`, as Postfix answers.
//! * ETRN: outside a transaction (inside one: `503 Error: MAIL transaction in progress`,
//!   without enhanced code, as Postfix), a valid site name, `smtpd_etrn_restrictions`,
//!   then flush: `250 Queuing started`, `459 <site>: service unavailable`, `458 Unable to
//!   queue messages`.
//! * MAIL: as Postfix's `smtpd_check_queue`, `452 4.3.1 Insufficient system storage`
//!   when the queue file system's free space (blocks available to unprivileged users)
//!   is not above `queue_minfree`, or is less than 1.5 × `message_size_limit`, with
//!   `warning: not enough free space in mail queue: N bytes < 1.5*message size limit`.
//!   A file system that cannot be examined does not stop mail (Postfix: the same).
//!
//! # Security
//! The VRFY argument is only a lookup key and reply text (it was parsed as a mailbox).
//!
//! # Configuration
//! `disable_vrfy_command`, `queue_minfree`, `message_size_limit`, `queue_directory`.

use crate::policy::Stage;
use crate::session::{Flow, Session, reply};
use postern_smtp_proto::Reply;

/// Postfix's domain syntax check of MAIL and RCPT addresses: what follows the last `@`
/// must be a host name (not all-numeric) or a valid address literal.
pub(crate) fn bad_domain(addr: &str) -> bool {
    match addr.rfind('@') {
        None => false,
        Some(at) => {
            let d = &addr[at + 1..];
            if d.starts_with('[') {
                postern_table::route::literal_addr(d).is_none()
            } else {
                !postern_dns::valid_hostname(d)
            }
        }
    }
}

/// `501 5.1.x Bad <what> address syntax`, logged as Postfix does.
pub(crate) async fn illegal(
    sess: &mut Session<'_>,
    cmd: &str,
    addr: &str,
    counter: &'static str,
    dsn: (u8, u16, u16),
    what: &str,
) -> Flow {
    postern_log::warning(format!(
        "Illegal address syntax from {} in {cmd} command: <{addr}>",
        sess.client
    ));
    sess.counters.count(counter, false);
    sess.error(reply(501, dsn, format!("Bad {what} address syntax")))
        .await
}

/// Postfix's `smtpd_space_multf`.
const SPACE_FACTOR: f64 = 1.5;

/// VRFY `address` (internal form).
pub(crate) async fn vrfy(sess: &mut Session<'_>, address: String) -> Flow {
    sess.set_last("VRFY");
    if sess.s.disable_vrfy {
        sess.counters.count("vrfy", false);
        return sess
            .error(reply(502, (5, 5, 1), "VRFY command is disabled"))
            .await;
    }
    if sess.s.postdrop_config.is_some() {
        // Stand-alone mode (`sendmail -bs`): no checks, as Postfix.
        sess.conn
            .reply(&reply(252, (2, 0, 0), sess.raw_arg.clone()));
        return Flow::Continue;
    }
    let saved = sess.facts.recipient.replace(address);
    let v = sess.policy.check(Stage::Rcpt, &sess.facts).await;
    sess.log_lines(&v.log);
    if let Some(r) = v.reject {
        sess.log_reject("VRFY", &r);
        sess.facts.recipient = saved;
        sess.counters.count("vrfy", false);
        return sess.error(r).await;
    }
    sess.facts.recipient = saved;
    sess.counters.count("vrfy", true);
    let echo = sess.raw_arg.clone();
    sess.conn.reply(&reply(252, (2, 0, 0), echo));
    Flow::Continue
}

/// Whether free blocks fall short of `queue_minfree` or of 1.5 × the size limit
/// (Postfix compares in blocks to avoid overflow).
pub(crate) fn short_of_space(free_blocks: u64, block: u64, minfree: u64, size_limit: u64) -> bool {
    let block = block.max(1);
    let blocks = |x: u64| x / block;
    blocks(minfree) >= free_blocks || blocks(size_limit) as f64 >= free_blocks as f64 / SPACE_FACTOR
}

/// The free-space check at MAIL: `Some(452 reply)` when the queue is too full.
pub(crate) fn queue_space(sess: &Session<'_>) -> Option<Reply> {
    if sess.s.postdrop_config.is_some() {
        return None;
    }
    let st = match nix::sys::statvfs::statvfs(&sess.s.queue_directory) {
        Ok(st) => st,
        Err(e) => {
            postern_log::warning(format!("statvfs {}: {e}", sess.s.queue_directory.display()));
            return None;
        }
    };
    let block = st.fragment_size().max(1);
    let free = st.blocks_available();
    if !short_of_space(free, block, sess.s.queue_minfree, sess.s.message_size_limit) {
        return None;
    }
    postern_log::warning(format!(
        "not enough free space in mail queue: {} bytes < {SPACE_FACTOR}*message size limit",
        free.saturating_mul(block)
    ));
    Some(reply(452, (4, 3, 1), "Insufficient system storage"))
}

/// ETRN: the site is checked (`smtpd_etrn_restrictions`) and handed to flush.
pub(crate) async fn etrn(sess: &mut Session<'_>, domain: String) -> Flow {
    sess.set_last("ETRN");
    if sess.txn.is_some() {
        sess.counters.count("etrn", false);
        return sess
            .error(Reply::new(503, None, "Error: MAIL transaction in progress"))
            .await;
    }
    // As Postfix: one leading non-alphanumeric (`@`, `#`) is dropped.
    let site = match domain.chars().next() {
        Some(c) if !c.is_ascii_alphanumeric() => domain[c.len_utf8()..].to_string(),
        _ => domain,
    };
    if !postern_dns::valid_hostname(&site) {
        sess.counters.count("etrn", false);
        return sess
            .error(Reply::new(501, None, "Error: invalid parameter syntax"))
            .await;
    }
    sess.facts.etrn_domain = Some(site.clone());
    let v = sess.policy.check(Stage::Etrn, &sess.facts).await;
    sess.log_lines(&v.log);
    if let Some(r) = v.reject {
        sess.log_reject("ETRN", &r);
        sess.counters.count("etrn", false);
        return sess.error(r).await;
    }
    let (cfg, req) = (
        sess.cfg.clone(),
        postern_ipc::flush::FlushRequest {
            op: postern_ipc::flush::FlushOp::SendSite,
            site: site.clone(),
            queue_id: String::new(),
        },
    );
    let status =
        tokio::task::spawn_blocking(move || postern_server::client::flush(&cfg, &req)).await;
    use postern_ipc::flush::FlushStatus;
    let r = match status {
        Ok(Ok(FlushStatus::Ok)) => {
            sess.counters.count("etrn", true);
            sess.conn.reply(&Reply::new(250, None, "Queuing started"));
            return Flow::Continue;
        }
        Ok(Ok(FlushStatus::Deny)) => {
            postern_log::warning(format!("reject: ETRN {site}... from {}", sess.client));
            Reply::new(459, None, format!("<{site}>: service unavailable"))
        }
        Ok(Ok(FlushStatus::Bad)) => {
            postern_log::warning(format!("bad ETRN {site}... from {}", sess.client));
            Reply::new(458, None, "Unable to queue messages")
        }
        _ => {
            postern_log::warning("unable to talk to fast flush service");
            Reply::new(458, None, "Unable to queue messages")
        }
    };
    sess.counters.count("etrn", false);
    sess.error(r).await
}

#[cfg(test)]
mod tests {
    use super::short_of_space;

    #[test]
    fn postfix_space_rule() {
        // 4096-byte blocks, 10 MB limit: needs more than 15 MB free.
        let limit = 10_240_000;
        assert!(short_of_space(3000, 4096, 0, limit));
        assert!(!short_of_space(4000, 4096, 0, limit));
        assert!(short_of_space(4000, 4096, 20_000_000, limit));
        assert!(!short_of_space(1, 4096, 0, 0));
        assert!(short_of_space(0, 4096, 0, 0));
    }
}
