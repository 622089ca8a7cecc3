//! One milter of a chain: negotiation, one event exchange, and the default
//! action after a fault — Postfix's milter8 state machine.
//!
//! A milter's "sticky" verdict is Postfix's `def_reply`: once set (an error
//! with a non-accept default action, a reject at connect/HELO, a quarantine),
//! every later event returns it without talking to the milter.
//!
//! # Errors
//! Two kinds of fault, as Postfix: communication errors (I/O, timeout, bad
//! packet, unexpected reply) and configuration errors (malformed reply text,
//! bad edit request). Each logs one warning naming the milter and the fault,
//! closes the socket, and sets the sticky verdict from `default_action`.

use std::time::Duration;

use crate::codec::command::{self, code as cmd};
use crate::codec::response;
use crate::codec::{CodecError, Command, Response, proto};
use crate::conn::{Conn, ConnError};
use crate::macros::{MacroConfig, Macros, Stage};
use crate::reply::{self, Reply};
use crate::spec::{DefaultAction, MilterSpec};
use crate::{Modification, Verdict};

mod edits;
mod negotiate;

pub(crate) use edits::{Edits, lf_lines_to_crlf};

/// One event to send.
pub(crate) struct Event<'a> {
    /// The SMFIC code (also the SMFIC_MACRO command byte).
    pub code: u8,
    /// The packet (None: the macros only, for an event with no packet of its own).
    pub cmd: Command,
    /// The SMFIP_NO* flag that switches this event off (0: always sent).
    pub no_flag: u32,
    /// The SMFIP_NR_* flag that says "no reply" (0: a reply always comes).
    pub nr_flag: u32,
    /// Whose macro list goes with it.
    pub stage: Stage,
    /// The caller's macro values.
    pub macros: &'a Macros,
    /// Content (header/body/end-of-message) or command timeout.
    pub content: bool,
}

/// Where a response arrived.
#[derive(Debug, Clone, Copy)]
struct At {
    /// The SMFIC event it answers.
    event: u8,
    /// The SMFIR byte.
    code: u8,
    /// CONNECT or HELO (a decision there is final for the session).
    connect_stage: bool,
}

/// After one response: read another, or the event is decided.
enum Step {
    More,
    Done(Option<Verdict>),
}

/// Which table the default reply comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// I/O, timeouts, bad packets, unexpected replies.
    Comm,
    /// Malformed reply text or edit request.
    Conf,
}

/// One configured milter and its session state.
#[derive(Debug)]
pub(crate) struct Milter {
    spec: MilterSpec,
    log_ctx: String,
    conn: Option<Conn>,
    /// Postfix's def_reply.
    sticky: Option<Verdict>,
    /// Accepted the current message: no more events until abort.
    accept_msg: bool,
    /// Accepted the connection (or dropped out): no more events at all.
    accepted: bool,
    /// A fault happened during the current exchange.
    failed: bool,
    /// The milter's SMFIP_* flags.
    events: u32,
    /// Its SMFIF_* actions.
    actions: u32,
    /// Events not defined for the negotiated protocol version.
    np_mask: u32,
    macros: MacroConfig,
    /// SMFIR_SKIP: skip further events with this code.
    skip: Option<u8>,
    /// An event was sent since negotiation (ABORT means nothing before that).
    started: bool,
}

impl Milter {
    /// The configured name.
    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    /// True when this milter takes no part in the current message.
    pub(crate) fn idle(&self) -> bool {
        self.sticky.is_none() && (self.conn.is_none() || self.accept_msg)
    }

    /// True when it accepted the message or connection (not dropped by a fault).
    pub(crate) fn accepted(&self) -> bool {
        self.accept_msg || self.accepted
    }

    /// Sends one event and reads the reply. `None`: go on to the next milter.
    pub(crate) fn event(&mut self, ev: Event<'_>, edits: Option<&mut Edits>) -> Option<Verdict> {
        if self.conn.is_none() || self.sticky.is_some() {
            return self.sticky.clone();
        }
        let connect_stage = matches!(ev.code, cmd::CONNECT | cmd::HELO);
        if self.accept_msg && !connect_stage {
            return None;
        }
        if ev.no_flag & self.np_mask != 0 {
            return None;
        }
        match self.skip {
            Some(c) if c == ev.code => return None,
            _ => self.skip = None,
        }
        let pairs = self.macros.pairs(ev.stage, ev.macros);
        let mut packets = vec![Command::Macro {
            cmd: ev.code,
            pairs,
        }];
        let send_event = ev.no_flag & self.events == 0;
        if send_event {
            packets.push(ev.cmd);
        }
        let timeout = self.timeout(ev.content);
        self.started = true;
        if let Err(e) = self.conn_mut()?.send(&packets, timeout) {
            self.warn(&format!("error writing command: {e}"));
            return self.fail(Fault::Comm);
        }
        if !send_event || ev.nr_flag & self.events != 0 {
            return self.sticky.clone();
        }
        self.read_reply(ev.code, connect_stage, timeout, edits)
    }

    /// Reads responses until the final one for `event`.
    fn read_reply(
        &mut self,
        event: u8,
        connect_stage: bool,
        timeout: Duration,
        mut edits: Option<&mut Edits>,
    ) -> Option<Verdict> {
        loop {
            let (code, data) = match self.conn_mut()?.recv(timeout) {
                Ok(p) => p,
                Err(e) => return self.recv_fault(event, &e),
            };
            let resp = match Response::decode(code, &data) {
                Ok(r) => r,
                Err(e) => return self.codec_fault(event, code, &e),
            };
            if let Some(ed) = edits.as_deref_mut()
                && resp.code() != response::code::REPLBODY
            {
                ed.end_body();
            }
            let at = At {
                event,
                code,
                connect_stage,
            };
            if let Step::Done(v) = self.step(resp, at, edits.as_deref_mut()) {
                return v;
            }
        }
    }

    /// Acts on one response: read on, or the event's result.
    fn step(&mut self, resp: Response, at: At, edits: Option<&mut Edits>) -> Step {
        let v = match resp {
            Response::Progress => return Step::More,
            Response::Continue => self.sticky.clone(),
            Response::Quarantine(reason) => return self.quarantine(reason, edits),
            Response::Skip => {
                self.skip = Some(at.event);
                self.sticky.clone()
            }
            Response::Accept if at.connect_stage => {
                self.close_quietly();
                self.accepted = true;
                self.sticky.clone()
            }
            Response::Accept => {
                self.accept_msg = true;
                self.sticky.clone()
            }
            Response::Discard if at.connect_stage => {
                self.warn("DISCARD action is not allowed for connect or helo");
                self.sticky.clone()
            }
            Response::Discard => {
                self.accept_msg = true;
                Some(Verdict::Discard)
            }
            Response::Reject => {
                let r = Reply::new(550, "5.7.1", "Command rejected");
                self.decide(at.connect_stage, Verdict::Reject(r))
            }
            Response::Tempfail => {
                let r = Reply::new(451, "4.7.1", "Service unavailable - try again later");
                self.decide(at.connect_stage, Verdict::Tempfail(r))
            }
            Response::Shutdown => {
                self.close_quietly();
                self.sticky = Some(Verdict::Tempfail(shutdown_reply()));
                self.sticky.clone()
            }
            Response::ReplyCode(text) => self.reply_code(at.connect_stage, &text),
            other => match edits {
                Some(ed) if at.event == cmd::BODYEOB => {
                    match self.edit(ed, other, at.code, at.event) {
                        Ok(()) => return Step::More,
                        Err(fault) => self.fail(fault),
                    }
                }
                _ => {
                    self.unexpected(at.code, at.event);
                    self.fail(Fault::Comm)
                }
            },
        };
        Step::Done(v)
    }

    /// SMFIR_QUARANTINE: hold, and read on for the event's reply.
    fn quarantine(&mut self, reason: String, edits: Option<&mut Edits>) -> Step {
        if let Some(ed) = edits {
            ed.push(Modification::Quarantine {
                reason: reason.clone(),
            });
        }
        self.sticky = Some(Verdict::Quarantine(reason));
        Step::More
    }

    /// Handles one modification request at end-of-message. As Postfix, the
    /// request is not checked against the actions the milter negotiated:
    /// libmilter does that on its side (and ties SMFIR_INSHEADER to
    /// SMFIF_ADDHDRS), other implementations are trusted as configured.
    fn edit(&mut self, ed: &mut Edits, resp: Response, code: u8, event: u8) -> Result<(), Fault> {
        if !resp.is_edit() {
            self.unexpected(code, event);
            return Err(Fault::Comm);
        }
        let leadspc = self.events & proto::HDR_LEADSPC != 0;
        ed.request(resp, leadspc).map_err(|msg| {
            self.warn(&msg);
            Fault::Conf
        })
    }

    /// A reject/tempfail decision; final for the session at connect/HELO.
    fn decide(&mut self, connect_stage: bool, v: Verdict) -> Option<Verdict> {
        if connect_stage {
            self.close_quietly();
            self.sticky = Some(v);
            return self.sticky.clone();
        }
        Some(v)
    }

    /// SMFIR_REPLYCODE: validated text, 4xx = tempfail, 5xx = reject.
    fn reply_code(&mut self, connect_stage: bool, text: &[u8]) -> Option<Verdict> {
        match reply::parse(text) {
            Ok(r) if r.is_temporary() => self.decide(connect_stage, Verdict::Tempfail(r)),
            Ok(r) => self.decide(connect_stage, Verdict::Reject(r)),
            Err(e) => {
                let shown =
                    postern_log::plain(&String::from_utf8_lossy(text).escape_debug().to_string());
                self.warn(&format!("malformed reply: {shown} ({e})"));
                self.fail(Fault::Conf)
            }
        }
    }

    fn unexpected(&self, code: u8, event: u8) {
        self.warn(&format!(
            "unexpected filter response {} after event {}",
            response::name(code),
            command::name(event)
        ));
    }

    fn recv_fault(&mut self, event: u8, e: &ConnError) -> Option<Verdict> {
        match e {
            ConnError::Codec(_) | ConnError::Data(_) => self.warn(&e.to_string()),
            _ => self.warn(&format!(
                "can't read {} reply packet header: {e}",
                command::name(event)
            )),
        }
        self.fail(Fault::Comm)
    }

    fn codec_fault(&mut self, event: u8, code: u8, e: &CodecError) -> Option<Verdict> {
        match e {
            CodecError::Unknown { .. } => self.unexpected(code, event),
            CodecError::Trailing { len, .. } => self.warn(&format!(
                "reply {} was followed by {len} data bytes",
                response::name(code)
            )),
            other => self.warn(&format!("{} reply: {other}", response::name(code))),
        }
        self.fail(Fault::Comm)
    }

    /// Closes the socket and sets the default action's verdict.
    pub(crate) fn fail(&mut self, fault: Fault) -> Option<Verdict> {
        self.close_quietly();
        self.failed = true;
        self.sticky = default_verdict(self.spec.default_action, fault);
        self.sticky.clone()
    }

    fn close_quietly(&mut self) {
        if let Some(c) = self.conn.take() {
            c.shutdown();
        }
    }

    fn conn_mut(&mut self) -> Option<&mut Conn> {
        self.conn.as_mut()
    }

    fn timeout(&self, content: bool) -> Duration {
        if content {
            self.spec.content_timeout
        } else {
            self.spec.command_timeout
        }
    }

    /// One warning line naming the milter.
    pub(crate) fn warn(&self, what: &str) {
        let ctx = if self.log_ctx.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.log_ctx)
        };
        postern_log::warning(format!("{ctx}milter {}: {what}", self.spec.name));
    }

    /// SMFIC_ABORT: the transaction is over; the milter waits for the next MAIL.
    pub(crate) fn abort(&mut self) {
        self.accept_msg = false;
        self.skip = None;
        if matches!(self.sticky, Some(Verdict::Quarantine(_))) && self.conn.is_some() {
            // XXX(deviation): Postfix keeps a quarantine def_reply for the rest of
            // the session; a quarantine is about one message, so it ends here.
            self.sticky = None;
        }
        if self.sticky.is_some() || !self.started {
            return;
        }
        let timeout = self.spec.command_timeout;
        if let Some(c) = self.conn.as_mut()
            && let Err(e) = c.send(&[Command::Abort], timeout)
        {
            self.warn(&format!("error writing command: {e}"));
            self.fail(Fault::Comm);
        }
    }

    /// SMFIC_QUIT and close.
    pub(crate) fn quit(&mut self) {
        let timeout = self.spec.command_timeout;
        if let Some(c) = self.conn.as_mut() {
            // The session is over either way: a failed QUIT changes nothing.
            let _ignored = c.send(&[Command::Quit], timeout);
        }
        self.close_quietly();
    }

    /// Starts an end-of-message exchange: clears the fault flag.
    pub(crate) fn begin_message(&mut self) {
        self.failed = false;
    }

    /// True when the exchange since [`Milter::begin_message`] ended in a fault.
    pub(crate) fn message_failed(&self) -> bool {
        self.failed
    }

    /// The verdict an event gets without an exchange (sticky or none).
    pub(crate) fn event_result(&self) -> Option<Verdict> {
        self.sticky.clone()
    }

    /// True after SMFIR_SKIP for this event code.
    pub(crate) fn skipping(&self, code: u8) -> bool {
        self.skip == Some(code)
    }

    /// True when header values go with their leading space.
    pub(crate) fn leadspc(&self) -> bool {
        self.events & proto::HDR_LEADSPC != 0
    }

    /// True when the milter takes no more message events now.
    pub(crate) fn message_done(&self) -> bool {
        self.conn.is_none() || self.accept_msg || self.sticky.is_some()
    }
}

/// The 421 reply for SMFIR_SHUTDOWN (smtpd adds its host name as Postfix).
pub(crate) fn shutdown_reply() -> Reply {
    Reply::new(421, "4.7.0", "Server closing connection")
}

/// Postfix's default replies per action and fault kind.
pub(crate) fn default_verdict(action: DefaultAction, fault: Fault) -> Option<Verdict> {
    let conf = fault == Fault::Conf;
    let problem = "Server configuration problem - try again later";
    let unavailable = "Service unavailable - try again later";
    Some(match action {
        DefaultAction::Accept => return None,
        DefaultAction::Quarantine => Verdict::Quarantine("default_action".into()),
        DefaultAction::Shutdown if conf => Verdict::Tempfail(Reply::new(421, "4.3.5", problem)),
        DefaultAction::Shutdown => Verdict::Tempfail(Reply::new(421, "4.7.1", unavailable)),
        _ if conf => Verdict::Tempfail(Reply::new(451, "4.3.5", problem)),
        DefaultAction::Reject => Verdict::Reject(Reply::new(550, "5.5.0", "Service unavailable")),
        DefaultAction::Tempfail => Verdict::Tempfail(Reply::new(451, "4.7.1", unavailable)),
    })
}
