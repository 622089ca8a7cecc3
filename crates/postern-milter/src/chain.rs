//! The milter chain of one session: every milter of one list, in order.
//! (API stub; filled in next.)

use std::net::IpAddr;

use crate::{MacroConfig, Macros, MilterSpec, Outcome, Verdict};

/// Every milter of one list, connected and negotiated, for one session.
#[derive(Debug)]
pub struct Chain {
    specs: Vec<MilterSpec>,
    macros: MacroConfig,
    log_ctx: String,
}

impl Chain {
    /// Connects to and negotiates with every milter.
    pub fn open(specs: &[MilterSpec], macros: &MacroConfig, log_ctx: &str) -> Chain {
        Chain {
            specs: specs.to_vec(),
            macros: macros.clone(),
            log_ctx: log_ctx.to_string(),
        }
    }

    /// True when the chain has no milter left to talk to.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// SMFIC_CONNECT.
    pub fn connect(
        &mut self,
        _hostname: &str,
        _addr: Option<IpAddr>,
        _port: u16,
        _m: &Macros,
    ) -> Verdict {
        Verdict::Continue
    }

    /// SMFIC_HELO.
    pub fn helo(&mut self, _helo: &str, _m: &Macros) -> Verdict {
        Verdict::Continue
    }

    /// SMFIC_MAIL.
    pub fn mail(&mut self, _sender: &str, _args: &[String], _m: &Macros) -> Verdict {
        Verdict::Continue
    }

    /// SMFIC_RCPT.
    pub fn rcpt(&mut self, _rcpt: &str, _args: &[String], _m: &Macros) -> Verdict {
        Verdict::Continue
    }

    /// SMFIC_DATA.
    pub fn data(&mut self, _m: &Macros) -> Verdict {
        Verdict::Continue
    }

    /// SMFIC_UNKNOWN.
    pub fn unknown(&mut self, _command: &str, _m: &Macros) -> Verdict {
        Verdict::Continue
    }

    /// Headers, end-of-header, body chunks, end-of-message through each milter.
    pub fn message(
        &mut self,
        headers: &[(String, String)],
        body: &[u8],
        _m_eoh: &Macros,
        _m_eom: &Macros,
    ) -> Outcome {
        let _ = (&self.macros, &self.log_ctx);
        Outcome {
            verdict: Verdict::Continue,
            headers: headers.to_vec(),
            body: body.to_vec(),
            modifications: Vec::new(),
        }
    }

    /// SMFIC_ABORT: the transaction ends (RSET, or a new MAIL).
    pub fn abort(&mut self) {}

    /// SMFIC_QUIT and close.
    pub fn close(self) {}
}
