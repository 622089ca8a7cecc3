//! The milter chain of one session: every milter of one list, in order.
//!
//! Each event goes to the milters in list order until one gives a verdict other
//! than "go on" (reject, tempfail, discard, quarantine, or its sticky default
//! action); that verdict is the chain's, and later milters do not see the event
//! (as Postfix's milter.c). When every milter has accepted, the chain answers
//! [`Verdict::Accept`].
//!
//! The content stage runs one milter at a time over the whole message (headers,
//! end of headers, body chunks, end of message); the next milter sees the
//! message as edited by the ones before it. A milter's edits are applied only
//! when its end-of-message exchange completed without fault.
//!
//! # Configuration
//! See [`crate::MilterSpec`] and [`crate::MacroConfig`].

use std::net::IpAddr;

use crate::codec::command::code as cmd;
use crate::codec::{CHUNK, Command, Family, proto};
use crate::edit::apply_hidden;
use crate::macros::{MacroConfig, Macros, Stage};
use crate::milter::{Edits, Event, Milter, lf_lines_to_crlf};
use crate::{MilterSpec, Outcome, Verdict};

/// Every milter of one list, connected and negotiated, for one session.
#[derive(Debug)]
pub struct Chain {
    milters: Vec<Milter>,
}

impl Chain {
    /// Connects to and negotiates with every milter. One that cannot be reached
    /// or negotiated is logged (`warning: connect to Milter service …`) and
    /// gives its default action from then on. `log_ctx`, when not empty,
    /// prefixes this chain's warnings (`log_ctx: milter NAME: …`).
    pub fn open(specs: &[MilterSpec], macros: &MacroConfig, log_ctx: &str) -> Chain {
        Chain {
            milters: specs
                .iter()
                .map(|s| Milter::open(s, macros, log_ctx))
                .collect(),
        }
    }

    /// True when the chain has no milters.
    pub fn is_empty(&self) -> bool {
        self.milters.is_empty()
    }

    /// The configured names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.milters.iter().map(Milter::name).collect()
    }

    /// SMFIC_CONNECT. `hostname` "unknown" is sent as `[addr]` (Sendmail's form);
    /// `addr` None is an unknown address family.
    pub fn connect(
        &mut self,
        hostname: &str,
        addr: Option<IpAddr>,
        port: u16,
        m: &Macros,
    ) -> Verdict {
        let (family, addr_text) = match addr {
            Some(IpAddr::V4(a)) => (Family::Inet, a.to_string()),
            Some(IpAddr::V6(a)) => (Family::Inet6, a.to_string()),
            None => (Family::Unknown, String::new()),
        };
        let hostname = if hostname == "unknown" && addr.is_some() {
            format!("[{addr_text}]")
        } else {
            hostname.to_string()
        };
        let c = Command::Connect {
            hostname,
            family,
            port,
            addr: addr_text,
        };
        self.event(
            cmd::CONNECT,
            &c,
            proto::NOCONNECT,
            proto::NR_CONN,
            Stage::Connect,
            m,
        )
    }

    /// SMFIC_HELO.
    pub fn helo(&mut self, helo: &str, m: &Macros) -> Verdict {
        let c = Command::Helo(helo.to_string());
        self.event(cmd::HELO, &c, proto::NOHELO, proto::NR_HELO, Stage::Helo, m)
    }

    /// SMFIC_MAIL: the sender (angle brackets added when missing) and its ESMTP
    /// arguments.
    pub fn mail(&mut self, sender: &str, args: &[String], m: &Macros) -> Verdict {
        let c = Command::Mail(argv(sender, args));
        self.event(cmd::MAIL, &c, proto::NOMAIL, proto::NR_MAIL, Stage::Mail, m)
    }

    /// SMFIC_RCPT: the recipient (angle brackets added when missing) and its
    /// ESMTP arguments.
    pub fn rcpt(&mut self, rcpt: &str, args: &[String], m: &Macros) -> Verdict {
        let c = Command::Rcpt(argv(rcpt, args));
        self.event(cmd::RCPT, &c, proto::NORCPT, proto::NR_RCPT, Stage::Rcpt, m)
    }

    /// SMFIC_DATA (protocol 4 and later).
    pub fn data(&mut self, m: &Macros) -> Verdict {
        self.event(
            cmd::DATA,
            &Command::Data,
            proto::NODATA,
            proto::NR_DATA,
            Stage::Data,
            m,
        )
    }

    /// SMFIC_UNKNOWN: an SMTP command smtpd does not know (protocol 3 and later).
    pub fn unknown(&mut self, command: &str, m: &Macros) -> Verdict {
        let c = Command::Unknown(command.to_string());
        self.event(
            cmd::UNKNOWN,
            &c,
            proto::NOUNKNOWN,
            proto::NR_UNKN,
            Stage::Unknown,
            m,
        )
    }

    /// Headers, end-of-header, body chunks (≤ 65535 bytes) and end-of-message
    /// through each milter in order; each sees the message as modified by the
    /// ones before it.
    pub fn message(
        &mut self,
        headers: &[(String, String)],
        body: &[u8],
        m_eoh: &Macros,
        m_eom: &Macros,
    ) -> Outcome {
        self.message_hidden(0, headers, body, m_eoh, m_eom)
    }

    /// [`Chain::message`] with the first `hidden` headers (the MTA's own
    /// Received: header) not shown to the milters, as Postfix: header changes
    /// count occurrences without them, header inserts count them.
    pub fn message_hidden(
        &mut self,
        hidden: usize,
        headers: &[(String, String)],
        body: &[u8],
        m_eoh: &Macros,
        m_eom: &Macros,
    ) -> Outcome {
        let mut out = Outcome {
            verdict: Verdict::Continue,
            headers: headers.to_vec(),
            body: body.to_vec(),
            modifications: Vec::new(),
        };
        let hidden = hidden.min(headers.len());
        for milter in &mut self.milters {
            let (verdict, mods) = content(milter, hidden, &out.headers, &out.body, m_eoh, m_eom);
            for m in &mods {
                apply_hidden(&mut out.headers, hidden, &mut out.body, m);
            }
            out.modifications.extend(mods);
            if let Some(v) = verdict {
                out.verdict = v;
                return out;
            }
        }
        out.verdict = self.settled();
        out
    }

    /// SMFIC_ABORT: the transaction ended (RSET, a new MAIL, end of message).
    pub fn abort(&mut self) {
        self.milters.iter_mut().for_each(Milter::abort);
    }

    /// SMFIC_QUIT to every milter, and close.
    pub fn close(mut self) {
        self.milters.iter_mut().for_each(Milter::quit);
    }

    /// One envelope event through the chain.
    fn event(
        &mut self,
        code: u8,
        c: &Command,
        no_flag: u32,
        nr_flag: u32,
        stage: Stage,
        m: &Macros,
    ) -> Verdict {
        for milter in &mut self.milters {
            let ev = Event {
                code,
                cmd: c.clone(),
                no_flag,
                nr_flag,
                stage,
                macros: m,
                content: false,
            };
            if let Some(v) = milter.event(ev, None) {
                return v;
            }
        }
        self.settled()
    }

    /// Accept when every milter accepted, else Continue.
    fn settled(&self) -> Verdict {
        let all = !self.milters.is_empty()
            && self.milters.iter().all(Milter::idle)
            && self.milters.iter().any(Milter::accepted);
        if all {
            Verdict::Accept
        } else {
            Verdict::Continue
        }
    }
}

/// `<addr>` then the ESMTP arguments.
fn argv(addr: &str, args: &[String]) -> Vec<String> {
    let first = if addr.starts_with('<') {
        addr.to_string()
    } else {
        format!("<{addr}>")
    };
    std::iter::once(first).chain(args.iter().cloned()).collect()
}

/// The content stage of one milter: its verdict (None: go on) and its edits
/// (empty after a fault).
fn content(
    milter: &mut Milter,
    hidden: usize,
    headers: &[(String, String)],
    body: &[u8],
    m_eoh: &Macros,
    m_eom: &Macros,
) -> (Option<Verdict>, Vec<crate::Modification>) {
    milter.begin_message();
    if milter.message_done() {
        return (milter.event_result(), Vec::new());
    }
    let leadspc = milter.leadspc();
    let ev = |code, cmd, no_flag, nr_flag, stage, macros| Event {
        code,
        cmd,
        no_flag,
        nr_flag,
        stage,
        macros,
        content: true,
    };
    for (name, value) in &headers[hidden..] {
        let value = match value.strip_prefix(' ') {
            Some(v) if !leadspc => v,
            _ => value.as_str(),
        };
        let c = Command::Header {
            name: name.clone(),
            value: value.to_string(),
        };
        let v = milter.event(
            ev(
                cmd::HEADER,
                c,
                proto::NOHDRS,
                proto::NR_HDR,
                Stage::Eoh,
                m_eoh,
            ),
            None,
        );
        if v.is_some() || milter.message_done() {
            return (v, Vec::new());
        }
    }
    let v = milter.event(
        ev(
            cmd::EOH,
            Command::Eoh,
            proto::NOEOH,
            proto::NR_EOH,
            Stage::Eoh,
            m_eoh,
        ),
        None,
    );
    if v.is_some() || milter.message_done() {
        return (v, Vec::new());
    }
    for chunk in lf_lines_to_crlf(body).chunks(CHUNK) {
        let c = Command::Body(chunk.to_vec());
        let v = milter.event(
            ev(
                cmd::BODY,
                c,
                proto::NOBODY,
                proto::NR_BODY,
                Stage::Eom,
                m_eom,
            ),
            None,
        );
        if v.is_some() || milter.message_done() {
            return (v, Vec::new());
        }
        if milter.skipping(cmd::BODY) {
            break;
        }
    }
    let mut edits = Edits::new();
    let v = milter.event(
        ev(cmd::BODYEOB, Command::BodyEob, 0, 0, Stage::Eom, m_eom),
        Some(&mut edits),
    );
    if milter.message_failed() {
        return (v, Vec::new());
    }
    (v, edits.finish())
}

#[cfg(test)]
mod tests;
