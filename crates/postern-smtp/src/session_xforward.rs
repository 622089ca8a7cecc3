//! The XFORWARD step of a session (see [`crate::xforward`]): the commands go before MAIL
//! FROM, in the same pipelined batch when the server offers PIPELINING; each reply is
//! read before MAIL FROM's. A reply other than 2xx is logged (`host H said: … (in reply
//! to XFORWARD name/address command)`) and the transaction goes on, as Postfix's smtp.
//!
//! # Security
//! Replies are bounded by the session's reply parser and deadline.
//!
//! # Configuration
//! `smtp_xforward_timeout` (each reply).

use super::{Conn, Wire};
use crate::result::{self, Outcome, Peer};
use crate::xforward::Step;
use std::time::Duration;

/// The stage an I/O failure is reported in (Postfix's texts).
fn stage(what: &str) -> &'static str {
    if what.contains("name/address") {
        "sending XFORWARD name/address"
    } else {
        "sending XFORWARD protocol/helo_name"
    }
}

/// The commands of `steps` as one block for a pipelined batch.
pub(super) fn batch(steps: &[Step]) -> Vec<u8> {
    steps
        .iter()
        .flat_map(|(l, _)| [l.as_bytes(), b"\r\n"].concat())
        .collect()
}

/// Sends (unless `pipelined`: already in the batch) and reads the reply of every step.
/// `Err`: the connection failed, the outcome for every recipient.
pub(super) fn exchange<C: Conn>(
    w: &mut Wire<'_, C>,
    peer: &Peer,
    steps: &[Step],
    pipelined: bool,
    timeout: Duration,
) -> Result<(), Outcome> {
    for (line, what) in steps {
        let reply = if pipelined {
            w.reply(timeout)
        } else {
            w.send(format!("{line}\r\n").as_bytes(), timeout)
                .and_then(|()| w.reply(timeout))
        };
        match reply {
            Ok(r) if r.code / 100 == 2 => {}
            Ok(r) => postern_log::warning(format!(
                "host {} said: {} (in reply to {what})",
                peer.relay(),
                result::reply_line(&r)
            )),
            Err(e) => return Err(result::from_io(peer, &e, stage(what))),
        }
    }
    Ok(())
}
