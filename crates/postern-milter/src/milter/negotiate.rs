//! Opening a milter: connect within `connect_timeout`, then SMFIC_OPTNEG.
//!
//! We offer `milter_protocol`'s version, every action Postfix supports and the
//! protocol flags defined for that version. The milter must not ask for a
//! higher version or for actions we did not offer; it may run an older version,
//! and then gets no events that version lacks. Macro lists it sends after the
//! three numbers replace ours for that stage (an empty list keeps ours).

use super::{Fault, Milter};
use crate::codec::command::name;
use crate::codec::{Command, Response, action, proto};
use crate::conn::Conn;
use crate::macros::{MacroConfig, Stage};
use crate::spec::MilterSpec;

impl Milter {
    /// Connects and negotiates; a failure logs and leaves the milter closed
    /// with its default action.
    pub(crate) fn open(spec: &MilterSpec, macros: &MacroConfig, log_ctx: &str) -> Milter {
        let mut m = Milter {
            spec: spec.clone(),
            log_ctx: log_ctx.to_string(),
            conn: None,
            sticky: None,
            accept_msg: false,
            accepted: false,
            failed: false,
            events: 0,
            actions: 0,
            np_mask: 0,
            macros: macros.clone(),
            skip: None,
            started: false,
        };
        let Some(offered) = proto::offered(spec.protocol) else {
            m.warn(&format!("bad protocol information: {}", spec.protocol));
            m.fail(Fault::Conf);
            return m;
        };
        m.np_mask = proto::NOSEND_MASK & !offered;
        match Conn::connect(spec) {
            Ok(c) => m.conn = Some(c),
            Err(e) => {
                let ctx = if log_ctx.is_empty() {
                    String::new()
                } else {
                    format!("{log_ctx}: ")
                };
                postern_log::warning(format!("{ctx}connect to Milter service {}: {e}", spec.name));
                m.fail(Fault::Comm);
                return m;
            }
        }
        if let Err(what) = m.negotiate(offered) {
            m.warn(&what);
            m.fail(Fault::Comm);
        }
        m
    }

    /// The SMFIC_OPTNEG exchange; the error is the warning text.
    fn negotiate(&mut self, offered: u32) -> Result<(), String> {
        let version = self.spec.protocol;
        let timeout = self.spec.command_timeout;
        let conn = self.conn.as_mut().ok_or("no connection")?;
        let optneg = Command::OptNeg {
            version,
            actions: action::ALL,
            protocol: offered,
        };
        conn.send(&[optneg], timeout)
            .map_err(|e| format!("write error in initial handshake: {e}"))?;
        let (code, data) = conn
            .recv(timeout)
            .map_err(|e| format!("can't read {} reply packet header: {e}", name(b'O')))?;
        let Ok(Response::OptNeg {
            version: theirs,
            actions,
            protocol,
            symlists,
        }) = Response::decode(code, &data)
        else {
            return Err(if code == b'O' {
                "read error in initial handshake".to_string()
            } else {
                format!(
                    "unexpected reply \"{}\" in initial handshake",
                    code.escape_ascii()
                )
            });
        };
        if theirs > version {
            return Err(format!(
                "protocol version {theirs} conflict with MTA protocol version {version}"
            ));
        }
        if actions & action::ALL != actions {
            return Err(format!(
                "request mask 0x{actions:x} conflict with MTA request mask 0x{:x}",
                action::ALL
            ));
        }
        if theirs < version {
            match (2..=theirs).rev().find_map(proto::offered) {
                Some(mask) => self.np_mask |= proto::NOSEND_MASK & !mask,
                None => self.warn(&format!("unexpected protocol version {theirs}")),
            }
        }
        self.actions = actions;
        self.events = protocol;
        for (stage, names) in symlists {
            match Stage::from_smfim(stage) {
                Some(s) if !names.trim().is_empty() => self.macros.set_list(s, &names),
                Some(_) => {}
                None => self.warn(&format!("ignoring unknown macro type {stage}")),
            }
        }
        Ok(())
    }
}
