//! Command-line parser and encoder.
//!
//! [`parse_command`] takes one line from [`crate::LineReader`] (terminator removed)
//! and returns a typed [`Command`] or the [`CommandError`] whose reply
//! ([`crate::reply_for`]) is Postfix's. It is stateless: ordering rules (RCPT before
//! MAIL, ETRN inside a transaction, …) belong to smtpd's state machine, which should
//! check its state before reporting a syntax error, as Postfix does.

use crate::address::{self, Mailbox, ReversePath};
use crate::params::{self, MailParams, RcptParams};
use crate::{CommandError, Leniency, xtext};

/// One SMTP/LMTP command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `HELO name` (the rest of the line, blanks collapsed, as Postfix does).
    Helo(String),
    /// `EHLO name`.
    Ehlo(String),
    /// `LHLO name` (LMTP).
    Lhlo(String),
    /// `MAIL FROM:<path> params`.
    Mail {
        /// Sender, or `<>`.
        from: ReversePath,
        /// ESMTP parameters.
        params: MailParams,
    },
    /// `RCPT TO:<path> params`.
    Rcpt {
        /// Recipient (source route dropped).
        to: Mailbox,
        /// ESMTP parameters.
        params: RcptParams,
    },
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]`.
    Bdat {
        /// Chunk size in octets.
        size: u64,
        /// `LAST` given.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP` (arguments ignored, as Postfix does).
    Noop,
    /// `QUIT` (arguments ignored, as Postfix does).
    Quit,
    /// `VRFY address [SMTPUTF8]`.
    Vrfy {
        /// Address to verify.
        address: Mailbox,
        /// `SMTPUTF8` given.
        smtputf8: bool,
    },
    /// `EXPN arg` (Postfix does not implement it; smtpd answers `Unrecognized`).
    Expn(String),
    /// `ETRN arg` (the argument as sent, `@`/`#` prefix included).
    Etrn(String),
    /// `HELP [arg]` (Postfix answers `Unrecognized`).
    Help(Option<String>),
    /// `STARTTLS`.
    StartTls,
    /// `AUTH mechanism [initial-response]` (mechanism upper-cased).
    Auth {
        /// SASL mechanism.
        mechanism: String,
        /// Initial response as sent (base64 or `=`).
        initial: Option<String>,
    },
    /// `XCLIENT attr=value…` (values xtext-decoded).
    Xclient(Vec<(XAttr, String)>),
    /// `XFORWARD attr=value…` (values xtext-decoded).
    Xforward(Vec<(XAttr, String)>),
    /// A verb this codec does not know (as sent; arguments dropped).
    Unknown(String),
}

/// XCLIENT/XFORWARD attribute names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XAttr {
    /// `NAME` (both).
    Name,
    /// `ADDR` (both).
    Addr,
    /// `PORT` (both).
    Port,
    /// `PROTO` (both).
    Proto,
    /// `HELO` (both).
    Helo,
    /// `LOGIN` (XCLIENT).
    Login,
    /// `DESTADDR` (XCLIENT).
    DestAddr,
    /// `DESTPORT` (XCLIENT).
    DestPort,
    /// `REVERSE_NAME` (XCLIENT).
    ReverseName,
    /// `IDENT` (XFORWARD).
    Ident,
    /// `SOURCE` (XFORWARD).
    Source,
}

const XCLIENT_ATTRS: &[XAttr] = &[
    XAttr::Name,
    XAttr::Addr,
    XAttr::Port,
    XAttr::Proto,
    XAttr::Helo,
    XAttr::Login,
    XAttr::DestAddr,
    XAttr::DestPort,
    XAttr::ReverseName,
];
const XFORWARD_ATTRS: &[XAttr] = &[
    XAttr::Name,
    XAttr::Addr,
    XAttr::Port,
    XAttr::Proto,
    XAttr::Helo,
    XAttr::Ident,
    XAttr::Source,
];
const ALL_ATTRS: &[XAttr] = &[
    XAttr::Name,
    XAttr::Addr,
    XAttr::Port,
    XAttr::Proto,
    XAttr::Helo,
    XAttr::Login,
    XAttr::DestAddr,
    XAttr::DestPort,
    XAttr::ReverseName,
    XAttr::Ident,
    XAttr::Source,
];

impl XAttr {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            XAttr::Name => "NAME",
            XAttr::Addr => "ADDR",
            XAttr::Port => "PORT",
            XAttr::Proto => "PROTO",
            XAttr::Helo => "HELO",
            XAttr::Login => "LOGIN",
            XAttr::DestAddr => "DESTADDR",
            XAttr::DestPort => "DESTPORT",
            XAttr::ReverseName => "REVERSE_NAME",
            XAttr::Ident => "IDENT",
            XAttr::Source => "SOURCE",
        }
    }

    fn lookup(name: &str, allowed: &[XAttr]) -> Option<XAttr> {
        ALL_ATTRS
            .iter()
            .copied()
            .find(|a| a.as_str().eq_ignore_ascii_case(name) && allowed.contains(a))
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn words(s: &str) -> impl Iterator<Item = &str> + Clone {
    s.split(is_blank).filter(|w| !w.is_empty())
}

/// Parse one command line (terminator already removed).
pub fn parse_command(line: &[u8], len: &Leniency) -> Result<Command, CommandError> {
    // As Postfix (its command tokenizer works on a C string): a NUL ends the line.
    let line = line.split(|&b| b == 0).next().unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| CommandError::BadUtf8)?;
    let line = line
        .trim_start_matches(is_blank)
        .trim_end_matches([' ', '\t', '\r']);
    if line.is_empty() {
        return Err(CommandError::BadSyntax);
    }
    let (verb, args) = line.split_once(is_blank).unwrap_or((line, ""));
    let args = args.trim_start_matches(is_blank);
    match verb.to_ascii_uppercase().as_str() {
        "HELO" => hello(args, CommandError::HeloSyntax).map(Command::Helo),
        "EHLO" => hello(args, CommandError::EhloSyntax).map(Command::Ehlo),
        "LHLO" => hello(args, CommandError::LhloSyntax).map(Command::Lhlo),
        "MAIL" => mail(args, len),
        "RCPT" => rcpt(args, len),
        "DATA" => no_args(args, Command::Data, CommandError::DataSyntax),
        "BDAT" => bdat(args),
        "RSET" => no_args(args, Command::Rset, CommandError::RsetSyntax),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => Ok(Command::Quit),
        "VRFY" => vrfy(args),
        "EXPN" => Ok(Command::Expn(args.to_owned())),
        "ETRN" => etrn(args),
        "HELP" => Ok(Command::Help((!args.is_empty()).then(|| args.to_owned()))),
        "STARTTLS" => no_args(args, Command::StartTls, CommandError::StartTlsSyntax),
        "AUTH" => auth(args),
        "XCLIENT" => xattrs(args, true).map(Command::Xclient),
        "XFORWARD" => xattrs(args, false).map(Command::Xforward),
        // A verb with control characters is noise (Postfix's smtpd_forbidden_commands
        // drops such clients); it cannot be an extension verb.
        _ if verb.chars().any(char::is_control) => Err(CommandError::Unrecognized),
        _ => Ok(Command::Unknown(verb.to_owned())),
    }
}

fn hello(args: &str, err: CommandError) -> Result<String, CommandError> {
    let name = words(args).collect::<Vec<_>>().join(" ");
    if name.is_empty() { Err(err) } else { Ok(name) }
}

fn no_args(args: &str, cmd: Command, err: CommandError) -> Result<Command, CommandError> {
    if args.is_empty() { Ok(cmd) } else { Err(err) }
}

/// Strip a case-insensitive `FROM:`/`TO:` prefix, then blanks.
fn keyword<'a>(args: &'a str, kw: &str) -> Option<&'a str> {
    let head = args.get(..kw.len())?;
    head.eq_ignore_ascii_case(kw)
        .then(|| args[kw.len()..].trim_start_matches(is_blank))
}

/// `(path, rest)` of a MAIL/RCPT argument, or which error to report.
fn envelope<'a>(
    rest: &'a str,
    len: &Leniency,
    bad: CommandError,
) -> Result<(Option<Mailbox>, &'a str), CommandError> {
    let split = address::split_path(rest).ok_or(bad.clone())?;
    if len.strict_rfc821_envelopes && !split.bracketed {
        return Err(bad);
    }
    let mailbox = address::parse_path(split.path).map_err(|()| bad)?;
    Ok((mailbox, split.rest))
}

fn mail(args: &str, len: &Leniency) -> Result<Command, CommandError> {
    let rest = keyword(args, "FROM:")
        .filter(|r| !r.is_empty())
        .ok_or(CommandError::MailSyntax)?;
    let (mailbox, rest) = envelope(rest, len, CommandError::BadSender)?;
    let params = params::parse_mail(rest, len)?;
    let from = mailbox.map_or(ReversePath::Null, ReversePath::Mailbox);
    if len.strict_smtputf8
        && !params.smtputf8
        && matches!(&from, ReversePath::Mailbox(m) if m.is_utf8())
    {
        return Err(CommandError::NeedSmtputf8);
    }
    Ok(Command::Mail { from, params })
}

fn rcpt(args: &str, len: &Leniency) -> Result<Command, CommandError> {
    let rest = keyword(args, "TO:")
        .filter(|r| !r.is_empty())
        .ok_or(CommandError::RcptSyntax)?;
    let (mailbox, rest) = envelope(rest, len, CommandError::BadRecipient)?;
    let to = mailbox.ok_or(CommandError::BadRecipient)?;
    let params = params::parse_rcpt(rest)?;
    Ok(Command::Rcpt { to, params })
}

fn bdat(args: &str) -> Result<Command, CommandError> {
    let mut w = words(args);
    let size = w.next().filter(|n| n.bytes().all(|b| b.is_ascii_digit()));
    let size = size
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or(CommandError::BdatSyntax)?;
    let last = match w.next() {
        None => false,
        Some(l) if l.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::BdatSyntax),
    };
    if w.next().is_some() {
        return Err(CommandError::BdatSyntax);
    }
    Ok(Command::Bdat { size, last })
}

fn vrfy(args: &str) -> Result<Command, CommandError> {
    if args.is_empty() {
        return Err(CommandError::VrfySyntax);
    }
    let split = address::split_path(args).ok_or(CommandError::BadRecipient)?;
    let address = address::parse_path(split.path)
        .ok()
        .flatten()
        .ok_or(CommandError::BadRecipient)?;
    let mut w = words(split.rest);
    let smtputf8 = match w.next() {
        None => false,
        Some(s) if s.eq_ignore_ascii_case("SMTPUTF8") => true,
        // Postfix joins further words into the address, which then does not parse
        // (oracle 3.7.11: `VRFY a b c` is 501 5.1.3).
        Some(_) => return Err(CommandError::BadRecipient),
    };
    if w.next().is_some() {
        return Err(CommandError::BadRecipient);
    }
    Ok(Command::Vrfy { address, smtputf8 })
}

fn etrn(args: &str) -> Result<Command, CommandError> {
    let mut w = words(args);
    match (w.next(), w.next()) {
        (Some(arg), None) => Ok(Command::Etrn(arg.to_owned())),
        _ => Err(CommandError::EtrnSyntax),
    }
}

fn auth(args: &str) -> Result<Command, CommandError> {
    let mut w = words(args);
    let mech = w.next().filter(|m| {
        m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let mechanism = mech.ok_or(CommandError::AuthSyntax)?.to_ascii_uppercase();
    let initial = w.next().map(str::to_owned);
    if w.next().is_some() {
        return Err(CommandError::AuthSyntax);
    }
    Ok(Command::Auth { mechanism, initial })
}

fn xattrs(args: &str, xclient: bool) -> Result<Vec<(XAttr, String)>, CommandError> {
    let allowed = if xclient {
        XCLIENT_ATTRS
    } else {
        XFORWARD_ATTRS
    };
    let mut out = Vec::new();
    for token in words(args) {
        let (name, raw) = token
            .split_once('=')
            .ok_or(CommandError::AttrValueExpected)?;
        let attr = XAttr::lookup(name, allowed).ok_or_else(|| match xclient {
            true => CommandError::BadXclientAttr(name.to_owned()),
            false => CommandError::BadXforwardAttr(name.to_owned()),
        })?;
        out.push((attr, xvalue(attr, raw, xclient)?));
    }
    match (out.is_empty(), xclient) {
        (true, true) => Err(CommandError::XclientSyntax),
        (true, false) => Err(CommandError::XforwardSyntax),
        (false, _) => Ok(out),
    }
}

/// Decode and check one attribute value (special values `[UNAVAILABLE]` and
/// `[TEMPUNAVAIL]` pass everywhere).
fn xvalue(attr: XAttr, raw: &str, xclient: bool) -> Result<String, CommandError> {
    let decoded = xtext::decode(raw).filter(|v| xtext::has_no_controls(v));
    let bad = |v: &str| CommandError::BadAttrValue {
        name: attr.as_str().into(),
        value: v.into(),
    };
    let value = decoded.ok_or_else(|| bad(raw))?;
    if value.eq_ignore_ascii_case("[UNAVAILABLE]") || value.eq_ignore_ascii_case("[TEMPUNAVAIL]") {
        return Ok(value);
    }
    let ok = match attr {
        XAttr::Name | XAttr::ReverseName => address::valid_hostname(&value),
        XAttr::Addr | XAttr::DestAddr => valid_xaddr(&value),
        XAttr::Port | XAttr::DestPort => {
            value.parse::<u16>().is_ok() && value.bytes().all(|b| b.is_ascii_digit())
        }
        XAttr::Proto if xclient => {
            value.eq_ignore_ascii_case("SMTP") || value.eq_ignore_ascii_case("ESMTP")
        }
        XAttr::Source => {
            value.eq_ignore_ascii_case("LOCAL") || value.eq_ignore_ascii_case("REMOTE")
        }
        XAttr::Proto | XAttr::Helo | XAttr::Login | XAttr::Ident => !value.is_empty(),
    };
    if ok { Ok(value) } else { Err(bad(&value)) }
}

fn valid_xaddr(v: &str) -> bool {
    match v.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("IPV6:") => v[5..].parse::<core::net::Ipv6Addr>().is_ok(),
        _ => v.parse::<core::net::Ipv4Addr>().is_ok(),
    }
}

impl Command {
    /// Canonical wire text, without the trailing CRLF.
    pub fn encode(&self) -> String {
        match self {
            Command::Helo(n) => format!("HELO {n}"),
            Command::Ehlo(n) => format!("EHLO {n}"),
            Command::Lhlo(n) => format!("LHLO {n}"),
            Command::Mail { from, params } => {
                format!(
                    "MAIL FROM:{}{}",
                    from.to_smtp(),
                    params::encode_mail(params)
                )
            }
            Command::Rcpt { to, params } => {
                format!("RCPT TO:{}{}", to.to_smtp(), params::encode_rcpt(params))
            }
            Command::Data => "DATA".into(),
            Command::Bdat { size, last: true } => format!("BDAT {size} LAST"),
            Command::Bdat { size, last: false } => format!("BDAT {size}"),
            Command::Rset => "RSET".into(),
            Command::Noop => "NOOP".into(),
            Command::Quit => "QUIT".into(),
            Command::Vrfy { address, smtputf8 } => {
                format!(
                    "VRFY {}{}",
                    address.to_smtp(),
                    if *smtputf8 { " SMTPUTF8" } else { "" }
                )
            }
            Command::Expn(a) if a.is_empty() => "EXPN".into(),
            Command::Expn(a) => format!("EXPN {a}"),
            Command::Etrn(a) => format!("ETRN {a}"),
            Command::Help(None) => "HELP".into(),
            Command::Help(Some(a)) => format!("HELP {a}"),
            Command::StartTls => "STARTTLS".into(),
            Command::Auth {
                mechanism,
                initial: None,
            } => format!("AUTH {mechanism}"),
            Command::Auth {
                mechanism,
                initial: Some(i),
            } => format!("AUTH {mechanism} {i}"),
            Command::Xclient(a) => format!("XCLIENT{}", encode_attrs(a)),
            Command::Xforward(a) => format!("XFORWARD{}", encode_attrs(a)),
            Command::Unknown(v) => v.clone(),
        }
    }
}

/// The XFORWARD commands (without CRLF) that carry `attrs` (name, value) in order, values
/// xtext-encoded (`[UNAVAILABLE]` passes unchanged): as few commands as keep every line,
/// CRLF included, within the 512-byte command line of RFC 5321. An attribute never
/// straddles two commands.
pub fn xforward_lines(attrs: &[(&str, &str)]) -> Vec<String> {
    const ROOM: usize = 512 - "XFORWARD\r\n".len();
    let mut out = Vec::new();
    let mut cur = String::new();
    for (name, value) in attrs {
        let item = format!(" {name}={}", xtext::encode(value));
        if !cur.is_empty() && cur.len() + item.len() > ROOM {
            out.push(format!("XFORWARD{cur}"));
            cur.clear();
        }
        cur.push_str(&item);
    }
    if !cur.is_empty() {
        out.push(format!("XFORWARD{cur}"));
    }
    out
}

fn encode_attrs(attrs: &[(XAttr, String)]) -> String {
    attrs
        .iter()
        .map(|(a, v)| format!(" {}={}", a.as_str(), xtext::encode(v)))
        .collect()
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
