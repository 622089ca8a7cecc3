//! One SMTP/LMTP conversation over a connected stream: greeting, EHLO/LHLO,
//! one mail transaction (pipelined when offered), QUIT.
//!
//! The outcome is either [`SessionEnd::NextHost`] (the peer would not talk:
//! bad greeting or EHLO, a broken connection before MAIL FROM — try the
//! next address), or [`SessionEnd::Done`] with one [`Outcome`] per
//! recipient. Once MAIL FROM is sent the result is final for this request:
//! a recipient is reported sent only after the peer said 2xx to the end of
//! DATA (per recipient for LMTP), everything unconfirmed is deferred.

use crate::policy::Level;
use crate::result::{self, IoFail, Outcome, Peer};
use postern_ipc::proto::{Recipient, notify};
use postern_smtp_proto::{EhloCaps, Mailbox, Reply, ReplyLimits, ReplyParser, xtext};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connected stream with settable deadlines.
pub trait Conn: Read + Write {
    /// `set_read_timeout` of the socket.
    fn read_timeout(&self, d: Duration) -> io::Result<()>;
    /// `set_write_timeout` of the socket.
    fn write_timeout(&self, d: Duration) -> io::Result<()>;
    /// Performs the TLS handshake after `220` to STARTTLS. On success:
    /// `"Trust|TLSv1.3 with cipher …"` for the log.
    fn starttls(
        &mut self,
        _cfg: &Arc<rustls::ClientConfig>,
        _server: &str,
        _timeout: Duration,
    ) -> Result<String, String> {
        Err("TLS is not available on this connection".into())
    }
}

impl Conn for std::net::TcpStream {
    fn read_timeout(&self, d: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(d))
    }
    fn write_timeout(&self, d: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(d))
    }
}

impl Conn for std::os::unix::net::UnixStream {
    fn read_timeout(&self, d: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(d))
    }
    fn write_timeout(&self, d: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(d))
    }
}

/// Protocol timeouts (Postfix's `smtp_*_timeout` / `lmtp_*_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Greeting and EHLO/LHLO.
    pub helo: Duration,
    /// MAIL FROM.
    pub mail: Duration,
    /// Each RCPT TO.
    pub rcpt: Duration,
    /// DATA (until 354).
    pub data_init: Duration,
    /// Each write of the message body.
    pub data_xfer: Duration,
    /// The reply(ies) to the final dot.
    pub data_done: Duration,
    /// QUIT.
    pub quit: Duration,
    /// Each XFORWARD reply.
    pub xforward: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let s = Duration::from_secs;
        Timeouts {
            helo: s(300),
            mail: s(300),
            rcpt: s(300),
            data_init: s(120),
            data_xfer: s(180),
            data_done: s(600),
            quit: s(300),
            xforward: s(300),
        }
    }
}

/// Session settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// LMTP (LHLO, one reply per recipient after DATA) instead of SMTP.
    pub lmtp: bool,
    /// Name sent in EHLO/HELO/LHLO.
    pub helo_name: String,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Reply bounds.
    pub reply_limits: ReplyLimits,
    /// `smtp_tls_security_level` (LMTP: `lmtp_tls_security_level`).
    pub tls: Level,
    /// The rustls configuration (None: TLS unavailable, treated as not
    /// offered).
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// The certificate verifier inside `tls_config` (its verdict decides
    /// after the handshake what the level allows).
    pub tls_verifier: Option<Arc<crate::verify::Verifier>>,
    /// The TLS server name (SNI when `tls_config` enables it).
    pub tls_sni: Option<String>,
    /// `smtp_tls_loglevel` (≥ 1: log the TLS summary line).
    pub tls_loglevel: u32,
    /// An MTA-STS policy in `testing` mode for this domain: log failures.
    pub tls_sts_testing: Option<String>,
    /// TLS-RPT (`tlsrpt_reporting`): where this session's outcome is recorded, with the
    /// MTA-STS or DANE policy that applies (None: not recorded).
    pub tls_report: Option<crate::tlsconf::TlsReport>,
    /// SASL credentials for this server (`smtp_sasl_auth_enable`).
    pub sasl: Option<crate::sasl::Login>,
    /// 8BITMIME → quoted-printable for peers without 8BITMIME (not
    /// `disable_mime_output_conversion`).
    pub mime_conversion: bool,
}

/// The message to send.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// Envelope sender ("" = `<>`).
    pub sender: &'a str,
    /// DSN ENVID ("" = none).
    pub envid: &'a str,
    /// DSN RET (`FULL`, `HDRS`, "").
    pub ret: &'a str,
    /// Recipients, in request order.
    pub recipients: &'a [Recipient],
    /// Content with LF line endings, as stored in the queue file.
    pub content: &'a [u8],
    /// The original client, forwarded with XFORWARD when the server offers it (None:
    /// `smtp_send_xforward_command = no`).
    pub origin: Option<&'a crate::xforward::Origin>,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// Try the next address; the outcome applies to all when none is left.
    NextHost(Outcome),
    /// The TLS handshake failed under `may`: try the same address again
    /// without TLS (as Postfix does); the outcome is the failure.
    TlsFailed(Outcome),
    /// One outcome per recipient (request order); `connected` is when the
    /// handshake ended (for `delays=c`).
    Done(Vec<Outcome>),
}

struct Wire<'c, C: Conn> {
    conn: &'c mut C,
    buf: Vec<u8>,
    parser: ReplyParser,
}

fn io_fail(e: &io::Error) -> IoFail {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => IoFail::Timeout,
        _ => IoFail::Lost,
    }
}

impl<'c, C: Conn> Wire<'c, C> {
    fn new(conn: &'c mut C, s: &Settings) -> Self {
        Wire {
            conn,
            buf: Vec::new(),
            parser: ReplyParser::new(s.reply_limits),
        }
    }

    fn send(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), IoFail> {
        let deadline = Instant::now() + timeout;
        let mut rest = bytes;
        while !rest.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(IoFail::Timeout);
            }
            self.conn.write_timeout(left).map_err(|e| io_fail(&e))?;
            match self.conn.write(rest) {
                Ok(0) => return Err(IoFail::Lost),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_fail(&e)),
            }
        }
        self.conn.flush().map_err(|e| io_fail(&e))
    }

    fn reply(&mut self, timeout: Duration) -> Result<Reply, IoFail> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.buf.is_empty() {
                let (n, r) = self
                    .parser
                    .feed(&self.buf)
                    .map_err(|e| IoFail::Malformed(e.to_string()))?;
                self.buf.drain(..n);
                if let Some(r) = r {
                    return Ok(r);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(IoFail::Timeout);
            }
            self.conn.read_timeout(left).map_err(|e| io_fail(&e))?;
            let mut chunk = [0u8; 4096];
            match self.conn.read(&mut chunk) {
                Ok(0) => return Err(IoFail::Lost),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_fail(&e)),
            }
        }
    }

    /// QUIT, best effort.
    fn quit(&mut self, timeout: Duration) {
        if self.send(b"QUIT\r\n", timeout).is_ok() {
            let _ignored = self.reply(timeout);
        }
    }
}

/// `<addr>` in SMTP form (local part quoted when needed).
pub fn smtp_path(addr: &str) -> String {
    if addr.is_empty() {
        return "<>".into();
    }
    let m = match addr.rsplit_once('@') {
        Some((l, d)) => Mailbox::new(l, Some(d)),
        None => Mailbox::new(addr, None),
    };
    m.map(|m| m.to_smtp())
        .unwrap_or_else(|| format!("<{addr}>"))
}

/// Whether the envelope needs SMTPUTF8.
pub fn needs_smtputf8(m: &Message<'_>) -> bool {
    !m.sender.is_ascii() || m.recipients.iter().any(|r| !r.address.is_ascii())
}

/// The MAIL FROM command line (with CRLF).
pub fn mail_command(m: &Message<'_>, caps: &EhloCaps, size: usize) -> String {
    let mut s = format!("MAIL FROM:{}", smtp_path(m.sender));
    if caps.size.is_some() {
        s.push_str(&format!(" SIZE={size}"));
    }
    if caps.eightbitmime && m.content.iter().any(|&b| b >= 0x80) {
        s.push_str(" BODY=8BITMIME");
    }
    if caps.smtputf8 && needs_smtputf8(m) {
        s.push_str(" SMTPUTF8");
    }
    if caps.dsn {
        match m.ret.to_ascii_uppercase().as_str() {
            "FULL" => s.push_str(" RET=FULL"),
            "HDRS" => s.push_str(" RET=HDRS"),
            _ => {}
        }
        if !m.envid.is_empty() {
            s.push_str(&format!(" ENVID={}", xtext::encode(m.envid)));
        }
    }
    s.push_str("\r\n");
    s
}

/// The RCPT TO command line (with CRLF).
pub fn rcpt_command(r: &Recipient, caps: &EhloCaps) -> String {
    let mut s = format!("RCPT TO:{}", smtp_path(&r.address));
    if caps.dsn {
        if r.notify & notify::NEVER != 0 {
            s.push_str(" NOTIFY=NEVER");
        } else if r.notify != 0 {
            let mut v = Vec::new();
            for (bit, word) in [
                (notify::SUCCESS, "SUCCESS"),
                (notify::FAILURE, "FAILURE"),
                (notify::DELAY, "DELAY"),
            ] {
                if r.notify & bit != 0 {
                    v.push(word);
                }
            }
            s.push_str(&format!(" NOTIFY={}", v.join(",")));
        }
        let orcpt = match r.orcpt.split_once(';') {
            Some((t, a)) if !t.is_empty() && !a.is_empty() => Some((t.to_string(), a.to_string())),
            _ if !r.original.is_empty() && r.original.is_ascii() => {
                Some(("rfc822".into(), r.original.clone()))
            }
            _ => None,
        };
        if let Some((t, a)) = orcpt {
            s.push_str(&format!(" ORCPT={t};{}", xtext::encode(&a)));
        }
    }
    s.push_str("\r\n");
    s
}

/// The message body on the wire: CRLF line endings, dot-stuffed, ending
/// with `.` CRLF.
pub fn data_bytes(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 32 + 8);
    if !content.is_empty() {
        let body = content.strip_suffix(b"\n").unwrap_or(content);
        for line in body.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn all(n: usize, o: &Outcome) -> Vec<Outcome> {
    vec![o.clone(); n]
}

/// Runs one conversation. `connected` is set when the handshake ended.
pub fn run<C: Conn>(
    conn: &mut C,
    peer: &Peer,
    s: &Settings,
    m: &Message<'_>,
    connected: &mut Option<Instant>,
) -> SessionEnd {
    let mut keep = None;
    let end = run_keep(conn, peer, s, m, connected, None, &mut keep);
    if keep.is_some() {
        Wire::new(conn, s).quit(s.timeouts.quit);
    }
    end
}

/// Sends RSET on a cached session: whether it is still usable.
pub fn rset<C: Conn>(conn: &mut C, s: &Settings) -> bool {
    let mut w = Wire::new(conn, s);
    matches!(
        w.send(b"RSET\r\n", s.timeouts.mail).and_then(|()| w.reply(s.timeouts.mail)),
        Ok(r) if r.code == 250
    )
}

/// QUIT on a cached session, best effort.
pub fn quit<C: Conn>(conn: &mut C, s: &Settings) {
    Wire::new(conn, s).quit(s.timeouts.quit);
}

/// Like [`run`], but a session whose transaction completed is left open:
/// `keep` gets its capabilities (the caller caches the connection or sends
/// QUIT). `reuse`: `conn` is such an open session (RSET already sent).
pub fn run_keep<C: Conn>(
    conn: &mut C,
    peer: &Peer,
    s: &Settings,
    m: &Message<'_>,
    connected: &mut Option<Instant>,
    reuse: Option<&EhloCaps>,
    keep: &mut Option<EhloCaps>,
) -> SessionEnd {
    let t = &s.timeouts;
    let n = m.recipients.len();
    let mut w = Wire::new(conn, s);
    let hello = if s.lmtp { "LHLO" } else { "EHLO" };
    let hs_stage = format!("performing the {hello} handshake");

    let caps = match reuse {
        Some(c) => c.clone(),
        None => match handshake(&mut w, peer, s, hello, &hs_stage) {
            Ok(c) => c,
            Err(end) => return end,
        },
    };
    *connected = Some(Instant::now());

    // 8-bit content for a peer without 8BITMIME: quoted-printable.
    let converted;
    let content: &[u8] =
        if !caps.eightbitmime && s.mime_conversion && crate::mime7::has_8bit(m.content) {
            converted = crate::mime7::convert(m.content);
            &converted
        } else {
            m.content
        };
    // Local refusals that depend on what the peer offers.
    let body = data_bytes(content);
    let size = content.len() + content.iter().filter(|&&b| b == b'\n').count();
    if let Some(limit) = caps.size
        && limit > 0
        && size as u64 > limit
    {
        w.quit(t.quit);
        return SessionEnd::Done(all(
            n,
            &Outcome::bounce(
                "5.3.4",
                format!(
                    "message size {size} exceeds size limit {limit} of server {}",
                    peer.name()
                ),
            ),
        ));
    }
    if needs_smtputf8(m) && !caps.smtputf8 {
        w.quit(t.quit);
        return SessionEnd::Done(all(
            n,
            &Outcome::bounce(
                "5.6.7",
                format!(
                    "SMTPUTF8 is required, but was not offered by host {}",
                    peer.name()
                ),
            ),
        ));
    }

    let mut mail = mail_command(m, &caps, size);
    if s.sasl.is_some() && !caps.auth.is_empty() {
        // We authenticate the local MTA only, not the sender.
        mail.truncate(mail.len() - 2);
        mail.push_str(" AUTH=<>\r\n");
    }
    let rcpts: Vec<String> = m
        .recipients
        .iter()
        .map(|r| rcpt_command(r, &caps))
        .collect();
    let pipelined = caps.pipelining;
    let xforward = match (m.origin, &caps.xforward) {
        (Some(o), Some(offered)) => crate::xforward::commands(o, offered),
        _ => Vec::new(),
    };
    let mut results: Vec<Option<Outcome>> = vec![None; n];
    let fill = |results: &mut Vec<Option<Outcome>>, o: &Outcome| {
        for r in results.iter_mut().filter(|r| r.is_none()) {
            *r = Some(o.clone());
        }
    };
    let finish = |results: Vec<Option<Outcome>>| {
        SessionEnd::Done(
            results
                .into_iter()
                .map(|o| o.unwrap_or_else(|| Outcome::defer("4.3.0", "internal error: no result")))
                .collect(),
        )
    };

    if pipelined {
        let mut batch = xfwd::batch(&xforward);
        batch.extend_from_slice(mail.as_bytes());
        for r in &rcpts {
            batch.extend_from_slice(r.as_bytes());
        }
        batch.extend_from_slice(b"DATA\r\n");
        if let Err(e) = w.send(&batch, t.mail) {
            fill(
                &mut results,
                &result::from_io(peer, &e, "sending MAIL FROM"),
            );
            return finish(results);
        }
    }
    if let Err(o) = xfwd::exchange(&mut w, peer, &xforward, pipelined, t.xforward) {
        fill(&mut results, &o);
        return finish(results);
    }
    if !pipelined && let Err(e) = w.send(mail.as_bytes(), t.mail) {
        fill(
            &mut results,
            &result::from_io(peer, &e, "sending MAIL FROM"),
        );
        return finish(results);
    }
    match w.reply(t.mail) {
        Err(e) => {
            fill(
                &mut results,
                &result::from_io(peer, &e, "sending MAIL FROM"),
            );
            return finish(results);
        }
        Ok(r) if !r.is_positive() => {
            fill(&mut results, &result::from_reply(peer, &r, "MAIL FROM"));
            w.quit(t.quit);
            return finish(results);
        }
        Ok(_) => {}
    }
    let mut accepted = Vec::new();
    for (i, cmd) in rcpts.iter().enumerate() {
        if !pipelined && let Err(e) = w.send(cmd.as_bytes(), t.rcpt) {
            fill(&mut results, &result::from_io(peer, &e, "sending RCPT TO"));
            return finish(results);
        }
        match w.reply(t.rcpt) {
            Err(e) => {
                fill(&mut results, &result::from_io(peer, &e, "sending RCPT TO"));
                return finish(results);
            }
            Ok(r) if r.is_positive() => accepted.push(i),
            Ok(r) => results[i] = Some(result::from_reply(peer, &r, "RCPT TO")),
        }
    }
    let data_reply = if pipelined {
        Some(w.reply(t.data_init))
    } else if accepted.is_empty() {
        None
    } else {
        Some(
            w.send(b"DATA\r\n", t.data_init)
                .and_then(|()| w.reply(t.data_init)),
        )
    };
    if accepted.is_empty() {
        // Every recipient was refused. A pipelined DATA that got 354 anyway
        // (a broken peer) must not turn into a message: just hang up.
        if !matches!(&data_reply, Some(Ok(r)) if r.code == 354) {
            w.quit(t.quit);
        }
        return finish(results);
    }
    match data_reply {
        Some(Ok(r)) if r.code == 354 => {}
        Some(Ok(r)) => {
            let o = if r.is_positive() {
                Outcome::defer(
                    "4.4.2",
                    format!(
                        "host {} said: {} (in reply to DATA command)",
                        peer.name(),
                        result::reply_line(&r)
                    ),
                )
            } else {
                result::from_reply(peer, &r, "DATA")
            };
            fill(&mut results, &o);
            w.quit(t.quit);
            return finish(results);
        }
        Some(Err(e)) => {
            fill(
                &mut results,
                &result::from_io(peer, &e, "sending DATA command"),
            );
            return finish(results);
        }
        None => {
            unreachable_none(&mut results);
            return finish(results);
        }
    }
    if let Err(e) = w.send(&body, t.data_xfer) {
        fill(
            &mut results,
            &result::from_io(peer, &e, "sending message body"),
        );
        return finish(results);
    }
    let done_stage = "sending end of data -- message may be sent more than once";
    let replies = if s.lmtp { accepted.len() } else { 1 };
    for k in 0..replies {
        match w.reply(t.data_done) {
            Err(e) => {
                fill(&mut results, &result::from_io(peer, &e, done_stage));
                return finish(results);
            }
            Ok(r) => {
                let o = result::from_reply(peer, &r, "end of DATA");
                if s.lmtp {
                    results[accepted[k]] = Some(o);
                } else {
                    for &i in &accepted {
                        results[i] = Some(o.clone());
                    }
                }
            }
        }
    }
    *keep = Some(caps);
    finish(results)
}

/// Greeting, EHLO/LHLO (HELO fallback), STARTTLS per `s.tls`.
fn handshake<C: Conn>(
    w: &mut Wire<'_, C>,
    peer: &Peer,
    s: &Settings,
    hello: &str,
    hs_stage: &str,
) -> Result<EhloCaps, SessionEnd> {
    let t = &s.timeouts;
    // Greeting.
    let greet = match w.reply(t.helo) {
        Ok(r) => r,
        Err(e) => {
            return Err(SessionEnd::NextHost(result::from_io(
                peer,
                &e,
                "receiving the initial server greeting",
            )));
        }
    };
    if !greet.is_positive() {
        let mut o = result::from_reply(peer, &greet, "");
        o.text = format!(
            "host {} refused to talk to me: {}",
            peer.name(),
            result::reply_line(&greet)
        );
        w.quit(t.quit);
        return Err(SessionEnd::NextHost(o));
    }

    // EHLO / LHLO, HELO fallback for SMTP.
    let r = match w
        .send(format!("{hello} {}\r\n", s.helo_name).as_bytes(), t.helo)
        .and_then(|()| w.reply(t.helo))
    {
        Ok(r) => r,
        Err(e) => return Err(SessionEnd::NextHost(result::from_io(peer, &e, hs_stage))),
    };
    let caps = if r.is_positive() {
        EhloCaps::from_reply(&r).unwrap_or_default()
    } else if !s.lmtp && r.code >= 500 {
        let r = match w
            .send(format!("HELO {}\r\n", s.helo_name).as_bytes(), t.helo)
            .and_then(|()| w.reply(t.helo))
        {
            Ok(r) => r,
            Err(e) => {
                return Err(SessionEnd::NextHost(result::from_io(
                    peer,
                    &e,
                    "performing the HELO handshake",
                )));
            }
        };
        if !r.is_positive() {
            w.quit(t.quit);
            return Err(SessionEnd::NextHost(result::from_reply(peer, &r, "HELO")));
        }
        EhloCaps::default()
    } else {
        w.quit(t.quit);
        return Err(SessionEnd::NextHost(result::from_reply(peer, &r, hello)));
    };
    let (caps, tls) = steps::starttls(w, peer, s, caps, hs_stage)?;
    steps::auth(w, peer, s, &caps, tls)?;
    Ok(caps)
}

/// `data_reply` is `None` only when nothing was accepted, handled above.
fn unreachable_none(results: &mut [Option<Outcome>]) {
    for r in results.iter_mut().filter(|r| r.is_none()) {
        *r = Some(Outcome::defer("4.3.0", "internal error: DATA not sent"));
    }
}

#[path = "session_tls.rs"]
mod steps;

#[path = "session_xforward.rs"]
mod xfwd;

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
