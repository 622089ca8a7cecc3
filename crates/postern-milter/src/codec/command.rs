//! MTA → milter commands (SMFIC_*), encoded by the client and decoded by tests
//! and fakes.

use super::{CodecError, Reader, put_packet, put_str};

/// SMFIC_* command bytes.
pub mod code {
    /// Abort the current message.
    pub const ABORT: u8 = b'A';
    /// A body chunk.
    pub const BODY: u8 = b'B';
    /// Connection information.
    pub const CONNECT: u8 = b'C';
    /// Macro definitions for the next command.
    pub const MACRO: u8 = b'D';
    /// End of body.
    pub const BODYEOB: u8 = b'E';
    /// HELO/EHLO.
    pub const HELO: u8 = b'H';
    /// One header.
    pub const HEADER: u8 = b'L';
    /// MAIL FROM.
    pub const MAIL: u8 = b'M';
    /// End of headers.
    pub const EOH: u8 = b'N';
    /// Option negotiation.
    pub const OPTNEG: u8 = b'O';
    /// Close the connection.
    pub const QUIT: u8 = b'Q';
    /// RCPT TO.
    pub const RCPT: u8 = b'R';
    /// DATA.
    pub const DATA: u8 = b'T';
    /// An unknown SMTP command.
    pub const UNKNOWN: u8 = b'U';
    /// Quit, a new connection follows.
    pub const QUIT_NC: u8 = b'K';
}

/// The client's address family in SMFIC_CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Unknown: no port or address follow.
    Unknown,
    /// `'L'`: a local (unix) client.
    Unix,
    /// `'4'`.
    Inet,
    /// `'6'`.
    Inet6,
}

impl Family {
    fn byte(self) -> u8 {
        match self {
            Family::Unknown => b'U',
            Family::Unix => b'L',
            Family::Inet => b'4',
            Family::Inet6 => b'6',
        }
    }
}

/// One MTA → milter command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// SMFIC_OPTNEG: our version, the actions we allow, the protocol flags we offer.
    OptNeg {
        /// Protocol version.
        version: u32,
        /// SMFIF_* mask.
        actions: u32,
        /// SMFIP_* mask.
        protocol: u32,
    },
    /// SMFIC_MACRO for the command byte `cmd`.
    Macro {
        /// The command the macros belong to.
        cmd: u8,
        /// Name/value pairs.
        pairs: Vec<(String, String)>,
    },
    /// SMFIC_CONNECT.
    Connect {
        /// Client host name (`[addr]` when unknown).
        hostname: String,
        /// Address family.
        family: Family,
        /// Client port (0 for unix/unknown).
        port: u16,
        /// Client address text.
        addr: String,
    },
    /// SMFIC_HELO.
    Helo(String),
    /// SMFIC_MAIL: `<sender>` then ESMTP args.
    Mail(Vec<String>),
    /// SMFIC_RCPT: `<rcpt>` then ESMTP args.
    Rcpt(Vec<String>),
    /// SMFIC_DATA.
    Data,
    /// SMFIC_HEADER.
    Header {
        /// Header name.
        name: String,
        /// Header value as sent.
        value: String,
    },
    /// SMFIC_EOH.
    Eoh,
    /// SMFIC_BODY: one chunk (≤ CHUNK bytes).
    Body(Vec<u8>),
    /// SMFIC_BODYEOB.
    BodyEob,
    /// SMFIC_UNKNOWN.
    Unknown(String),
    /// SMFIC_ABORT.
    Abort,
    /// SMFIC_QUIT.
    Quit,
}

impl Command {
    /// The command byte.
    pub fn code(&self) -> u8 {
        match self {
            Command::OptNeg { .. } => code::OPTNEG,
            Command::Macro { .. } => code::MACRO,
            Command::Connect { .. } => code::CONNECT,
            Command::Helo(_) => code::HELO,
            Command::Mail(_) => code::MAIL,
            Command::Rcpt(_) => code::RCPT,
            Command::Data => code::DATA,
            Command::Header { .. } => code::HEADER,
            Command::Eoh => code::EOH,
            Command::Body(_) => code::BODY,
            Command::BodyEob => code::BODYEOB,
            Command::Unknown(_) => code::UNKNOWN,
            Command::Abort => code::ABORT,
            Command::Quit => code::QUIT,
        }
    }

    /// Appends the packet to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut d = Vec::new();
        match self {
            Command::OptNeg {
                version,
                actions,
                protocol,
            } => {
                for n in [version, actions, protocol] {
                    d.extend_from_slice(&n.to_be_bytes());
                }
            }
            Command::Macro { cmd, pairs } => {
                d.push(*cmd);
                for (n, v) in pairs {
                    put_str(&mut d, n);
                    put_str(&mut d, v);
                }
            }
            Command::Connect {
                hostname,
                family,
                port,
                addr,
            } => {
                put_str(&mut d, hostname);
                d.push(family.byte());
                if *family != Family::Unknown {
                    d.extend_from_slice(&port.to_be_bytes());
                    put_str(&mut d, addr);
                }
            }
            Command::Helo(s) | Command::Unknown(s) => put_str(&mut d, s),
            Command::Mail(args) | Command::Rcpt(args) => {
                args.iter().for_each(|a| put_str(&mut d, a));
            }
            Command::Header { name, value } => {
                put_str(&mut d, name);
                put_str(&mut d, value);
            }
            Command::Body(b) => d.extend_from_slice(b),
            Command::Data | Command::Eoh | Command::BodyEob | Command::Abort | Command::Quit => {}
        }
        put_packet(out, self.code(), &d);
    }

    /// Decodes one command packet's code and data (tests, fakes, fuzzing).
    pub fn decode(cmd: u8, data: &[u8]) -> Result<Command, CodecError> {
        let mut r = Reader::new(data);
        let c = match cmd {
            code::OPTNEG => Command::OptNeg {
                version: r.u32()?,
                actions: r.u32()?,
                protocol: r.u32()?,
            },
            code::MACRO => {
                let cmd = r.byte()?;
                let mut pairs = Vec::new();
                while !r.is_empty() {
                    pairs.push((r.string()?, r.string()?));
                }
                Command::Macro { cmd, pairs }
            }
            code::CONNECT => decode_connect(&mut r)?,
            code::HELO => Command::Helo(r.string()?),
            code::UNKNOWN => Command::Unknown(r.string()?),
            code::MAIL | code::RCPT => {
                let mut args = Vec::new();
                while !r.is_empty() {
                    args.push(r.string()?);
                }
                if cmd == code::MAIL {
                    Command::Mail(args)
                } else {
                    Command::Rcpt(args)
                }
            }
            code::HEADER => Command::Header {
                name: r.string()?,
                value: r.string()?,
            },
            code::BODY => Command::Body(r.rest().to_vec()),
            code::DATA => Command::Data,
            code::EOH => Command::Eoh,
            code::BODYEOB => Command::BodyEob,
            code::ABORT => Command::Abort,
            code::QUIT | code::QUIT_NC => Command::Quit,
            code => {
                return Err(CodecError::Unknown {
                    what: "command",
                    code,
                });
            }
        };
        r.end(cmd)?;
        Ok(c)
    }
}

fn decode_connect(r: &mut Reader<'_>) -> Result<Command, CodecError> {
    let hostname = r.string()?;
    let family = match r.byte()? {
        b'U' => Family::Unknown,
        b'L' => Family::Unix,
        b'4' => Family::Inet,
        b'6' => Family::Inet6,
        code => {
            return Err(CodecError::Unknown {
                what: "address family",
                code,
            });
        }
    };
    let (port, addr) = if family == Family::Unknown {
        (0, String::new())
    } else {
        (r.u16()?, r.string()?)
    };
    Ok(Command::Connect {
        hostname,
        family,
        port,
        addr,
    })
}

/// The SMFIC_* name of a command byte, for logs.
pub fn name(c: u8) -> &'static str {
    const NAMES: &[(u8, &str)] = &[
        (code::ABORT, "SMFIC_ABORT"),
        (code::BODY, "SMFIC_BODY"),
        (code::CONNECT, "SMFIC_CONNECT"),
        (code::MACRO, "SMFIC_MACRO"),
        (code::BODYEOB, "SMFIC_BODYEOB"),
        (code::HELO, "SMFIC_HELO"),
        (code::HEADER, "SMFIC_HEADER"),
        (code::MAIL, "SMFIC_MAIL"),
        (code::EOH, "SMFIC_EOH"),
        (code::OPTNEG, "SMFIC_OPTNEG"),
        (code::QUIT, "SMFIC_QUIT"),
        (code::RCPT, "SMFIC_RCPT"),
        (code::DATA, "SMFIC_DATA"),
        (code::UNKNOWN, "SMFIC_UNKNOWN"),
        (code::QUIT_NC, "SMFIC_QUIT_NC"),
    ];
    NAMES
        .iter()
        .find(|(b, _)| *b == c)
        .map_or("(unknown MTA event)", |(_, n)| n)
}
