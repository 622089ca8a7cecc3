//! Milter → MTA responses (SMFIR_* and the SMFIC_OPTNEG answer), decoded by the
//! client and encoded by tests and fakes.

use super::{CodecError, Reader, put_packet, put_str};

/// SMFIR_* response bytes.
pub mod code {
    /// Add a recipient.
    pub const ADDRCPT: u8 = b'+';
    /// Delete a recipient.
    pub const DELRCPT: u8 = b'-';
    /// Add a recipient with ESMTP args.
    pub const ADDRCPT_PAR: u8 = b'2';
    /// 421: shut down the session.
    pub const SHUTDOWN: u8 = b'4';
    /// Accept.
    pub const ACCEPT: u8 = b'a';
    /// Replace body (one chunk).
    pub const REPLBODY: u8 = b'b';
    /// Continue.
    pub const CONTINUE: u8 = b'c';
    /// Discard.
    pub const DISCARD: u8 = b'd';
    /// Change the sender.
    pub const CHGFROM: u8 = b'e';
    /// Cause a connection failure.
    pub const CONN_FAIL: u8 = b'f';
    /// Add a header.
    pub const ADDHEADER: u8 = b'h';
    /// Insert a header.
    pub const INSHEADER: u8 = b'i';
    /// Set a macro list.
    pub const SETSYMLIST: u8 = b'l';
    /// Change or delete a header.
    pub const CHGHEADER: u8 = b'm';
    /// Still working.
    pub const PROGRESS: u8 = b'p';
    /// Quarantine.
    pub const QUARANTINE: u8 = b'q';
    /// Reject.
    pub const REJECT: u8 = b'r';
    /// Skip further events of this kind.
    pub const SKIP: u8 = b's';
    /// Tempfail.
    pub const TEMPFAIL: u8 = b't';
    /// Own SMTP reply.
    pub const REPLYCODE: u8 = b'y';
    /// The answer to SMFIC_OPTNEG.
    pub const OPTNEG: u8 = b'O';
}

/// Longest quarantine reason kept (Postfix keeps 100 bytes).
pub const MAX_REASON: usize = 100;

/// One milter → MTA response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Negotiation answer, with optional per-stage macro lists.
    OptNeg {
        /// The milter's protocol version.
        version: u32,
        /// SMFIF_* actions it wants.
        actions: u32,
        /// SMFIP_* flags it wants.
        protocol: u32,
        /// (SMFIM stage, macro names) pairs.
        symlists: Vec<(u32, String)>,
    },
    /// Accept.
    Accept,
    /// Continue.
    Continue,
    /// Discard.
    Discard,
    /// Reject (550 5.7.1).
    Reject,
    /// Tempfail (451 4.7.1).
    Tempfail,
    /// 421, end the session.
    Shutdown,
    /// Connection failure (not used by Postfix).
    ConnFail,
    /// Still working: extend the timeout.
    Progress,
    /// Skip further events of this kind.
    Skip,
    /// Own reply text, raw (checked by [`crate::reply::parse`]).
    ReplyCode(Vec<u8>),
    /// Quarantine with a reason.
    Quarantine(String),
    /// Add a header.
    AddHeader {
        /// Name.
        name: String,
        /// Value as sent.
        value: String,
    },
    /// Insert a header at a 0-based position.
    InsHeader {
        /// Position.
        index: u32,
        /// Name.
        name: String,
        /// Value as sent.
        value: String,
    },
    /// Change (or delete, empty value) the `index`th header of that name.
    ChgHeader {
        /// Occurrence, 1-based.
        index: u32,
        /// Name.
        name: String,
        /// Value as sent.
        value: String,
    },
    /// One chunk of a replacement body (CRLF lines).
    ReplBody(Vec<u8>),
    /// Add a recipient.
    AddRcpt(String),
    /// Add a recipient with ESMTP args.
    AddRcptPar {
        /// Address.
        rcpt: String,
        /// Args (None when absent or empty).
        args: Option<String>,
    },
    /// Delete a recipient.
    DelRcpt(String),
    /// Change the sender.
    ChgFrom {
        /// Address.
        sender: String,
        /// Args (None when absent or empty).
        args: Option<String>,
    },
    /// SMFIR_SETSYMLIST outside negotiation.
    SetSymList {
        /// SMFIM stage.
        stage: u32,
        /// Names.
        names: String,
    },
}

impl Response {
    /// Decodes one response packet's code and data.
    pub fn decode(cmd: u8, data: &[u8]) -> Result<Response, CodecError> {
        let mut r = Reader::new(data);
        let resp = match cmd {
            code::OPTNEG => decode_optneg(&mut r)?,
            code::ACCEPT => Response::Accept,
            code::CONTINUE => Response::Continue,
            code::DISCARD => Response::Discard,
            code::REJECT => Response::Reject,
            code::TEMPFAIL => Response::Tempfail,
            code::SHUTDOWN => Response::Shutdown,
            code::CONN_FAIL => Response::ConnFail,
            code::PROGRESS => Response::Progress,
            code::SKIP => Response::Skip,
            code::REPLYCODE => Response::ReplyCode(r.rest().to_vec()),
            code::QUARANTINE => Response::Quarantine(reason(r.rest())),
            code::REPLBODY => Response::ReplBody(r.rest().to_vec()),
            code::ADDHEADER => Response::AddHeader {
                name: r.string()?,
                value: r.string()?,
            },
            code::INSHEADER => Response::InsHeader {
                index: r.u32()?,
                name: r.string()?,
                value: r.string()?,
            },
            code::CHGHEADER => Response::ChgHeader {
                index: r.u32()?,
                name: r.string()?,
                value: r.string()?,
            },
            code::ADDRCPT => Response::AddRcpt(r.string()?),
            code::DELRCPT => Response::DelRcpt(r.string()?),
            code::ADDRCPT_PAR => Response::AddRcptPar {
                rcpt: r.string()?,
                args: opt_string(&mut r)?,
            },
            code::CHGFROM => Response::ChgFrom {
                sender: r.string()?,
                args: opt_string(&mut r)?,
            },
            code::SETSYMLIST => Response::SetSymList {
                stage: r.u32()?,
                names: r.string()?,
            },
            code => {
                return Err(CodecError::Unknown {
                    what: "reply",
                    code,
                });
            }
        };
        r.end(cmd)?;
        Ok(resp)
    }

    /// True for a modification request (allowed at end-of-message only).
    pub fn is_edit(&self) -> bool {
        matches!(
            self,
            Response::AddHeader { .. }
                | Response::InsHeader { .. }
                | Response::ChgHeader { .. }
                | Response::ReplBody(_)
                | Response::AddRcpt(_)
                | Response::AddRcptPar { .. }
                | Response::DelRcpt(_)
                | Response::ChgFrom { .. }
        )
    }

    /// The response byte.
    pub fn code(&self) -> u8 {
        match self {
            Response::OptNeg { .. } => code::OPTNEG,
            Response::Accept => code::ACCEPT,
            Response::Continue => code::CONTINUE,
            Response::Discard => code::DISCARD,
            Response::Reject => code::REJECT,
            Response::Tempfail => code::TEMPFAIL,
            Response::Shutdown => code::SHUTDOWN,
            Response::ConnFail => code::CONN_FAIL,
            Response::Progress => code::PROGRESS,
            Response::Skip => code::SKIP,
            Response::ReplyCode(_) => code::REPLYCODE,
            Response::Quarantine(_) => code::QUARANTINE,
            Response::AddHeader { .. } => code::ADDHEADER,
            Response::InsHeader { .. } => code::INSHEADER,
            Response::ChgHeader { .. } => code::CHGHEADER,
            Response::ReplBody(_) => code::REPLBODY,
            Response::AddRcpt(_) => code::ADDRCPT,
            Response::AddRcptPar { .. } => code::ADDRCPT_PAR,
            Response::DelRcpt(_) => code::DELRCPT,
            Response::ChgFrom { .. } => code::CHGFROM,
            Response::SetSymList { .. } => code::SETSYMLIST,
        }
    }

    /// Appends the packet to `out` (tests and fakes).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut d = Vec::new();
        match self {
            Response::OptNeg {
                version,
                actions,
                protocol,
                symlists,
            } => {
                for n in [version, actions, protocol] {
                    d.extend_from_slice(&n.to_be_bytes());
                }
                for (stage, names) in symlists {
                    d.extend_from_slice(&stage.to_be_bytes());
                    put_str(&mut d, names);
                }
            }
            Response::ReplyCode(b) => {
                d.extend_from_slice(b);
                d.push(0);
            }
            Response::Quarantine(s) | Response::AddRcpt(s) | Response::DelRcpt(s) => {
                put_str(&mut d, s)
            }
            Response::ReplBody(b) => d.extend_from_slice(b),
            Response::AddHeader { name, value } => {
                put_str(&mut d, name);
                put_str(&mut d, value);
            }
            Response::InsHeader { index, name, value }
            | Response::ChgHeader { index, name, value } => {
                d.extend_from_slice(&index.to_be_bytes());
                put_str(&mut d, name);
                put_str(&mut d, value);
            }
            Response::AddRcptPar { rcpt: s, args } | Response::ChgFrom { sender: s, args } => {
                put_str(&mut d, s);
                if let Some(a) = args {
                    put_str(&mut d, a);
                }
            }
            Response::SetSymList { stage, names } => {
                d.extend_from_slice(&stage.to_be_bytes());
                put_str(&mut d, names);
            }
            Response::Accept
            | Response::Continue
            | Response::Discard
            | Response::Reject
            | Response::Tempfail
            | Response::Shutdown
            | Response::ConnFail
            | Response::Progress
            | Response::Skip => {}
        }
        put_packet(out, self.code(), &d);
    }
}

fn decode_optneg(r: &mut Reader<'_>) -> Result<Response, CodecError> {
    let (version, actions, protocol) = (r.u32()?, r.u32()?, r.u32()?);
    let mut symlists = Vec::new();
    while !r.is_empty() {
        symlists.push((r.u32()?, r.string()?));
    }
    Ok(Response::OptNeg {
        version,
        actions,
        protocol,
        symlists,
    })
}

/// An optional trailing string; an empty one is None.
fn opt_string(r: &mut Reader<'_>) -> Result<Option<String>, CodecError> {
    if r.is_empty() {
        return Ok(None);
    }
    let s = r.string()?;
    Ok((!s.is_empty()).then_some(s))
}

/// The quarantine reason: up to the first NUL, at most MAX_REASON bytes, no
/// control characters.
fn reason(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..end]);
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if out.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// The SMFIR_* name of a response byte, for logs.
pub fn name(c: u8) -> &'static str {
    const NAMES: &[(u8, &str)] = &[
        (code::ADDRCPT, "SMFIR_ADDRCPT"),
        (code::DELRCPT, "SMFIR_DELRCPT"),
        (code::ACCEPT, "SMFIR_ACCEPT"),
        (code::REPLBODY, "SMFIR_REPLBODY"),
        (code::CONTINUE, "SMFIR_CONTINUE"),
        (code::DISCARD, "SMFIR_DISCARD"),
        (code::CONN_FAIL, "SMFIR_CONN_FAIL"),
        (code::CHGHEADER, "SMFIR_CHGHEADER"),
        (code::PROGRESS, "SMFIR_PROGRESS"),
        (code::REJECT, "SMFIR_REJECT"),
        (code::TEMPFAIL, "SMFIR_TEMPFAIL"),
        (code::SHUTDOWN, "SMFIR_SHUTDOWN"),
        (code::ADDHEADER, "SMFIR_ADDHEADER"),
        (code::INSHEADER, "SMFIR_INSHEADER"),
        (code::REPLYCODE, "SMFIR_REPLYCODE"),
        (code::QUARANTINE, "SMFIR_QUARANTINE"),
        (code::SKIP, "SMFIR_SKIP"),
        (code::CHGFROM, "SMFIR_CHGFROM"),
        (code::ADDRCPT_PAR, "SMFIR_ADDRCPT_PAR"),
        (code::SETSYMLIST, "SMFIR_SETSYMLIST"),
        (code::OPTNEG, "SMFIC_OPTNEG"),
    ];
    NAMES
        .iter()
        .find(|(b, _)| *b == c)
        .map_or("(unknown filter reply)", |(_, n)| n)
}
