//! The before-queue proxy filter (Postfix's `smtpd_proxy`): smtpd relays each mail
//! transaction to an SMTP content filter and answers the client with the filter's verdict.
//!
//! Without `speed_adjust`, smtpd connects to the filter when the client's MAIL FROM passed
//! smtpd's own checks: it reads the greeting, sends `EHLO $smtpd_proxy_ehlo`, sends the
//! client's identity with XFORWARD when the filter offers it, then MAIL FROM; each RCPT and
//! DATA the client sends after smtpd's own checks goes to the filter too, and the client
//! gets the filter's refusal, or smtpd's own `250`/`354`. The content goes to the filter
//! behind smtpd's `Received:` header (and PREPEND actions), dot-stuffed, and the filter's
//! reply to the final `.` is the client's reply, verbatim. With `speed_adjust` smtpd
//! answers MAIL/RCPT/DATA itself, receives the whole message, and only then connects and
//! replays the transaction; the first refusal is the reply to the end of data (the filter
//! must use one reply for all recipients, as Postfix documents). The message is queued only
//! by the filter's own reinjection; smtpd never talks to cleanup for it.
//!
//! As Postfix: a filter that cannot be reached, or whose greeting, EHLO or XFORWARD reply is
//! not 2xx, or that times out, drops the connection or sends a 2xx/3xx reply where a
//! refusal stands (or garbage), gives `451 4.3.0 Error: queue file write error` and a
//! warning (`connect to proxy filter NAME: …`, `timeout talking to proxy NAME`, `lost
//! connection with proxy NAME`, `proxy NAME rejected "CMD": "REPLY"`). The end of data is
//! logged as Postfix logs it: `proxy-accept: END-OF-MESSAGE: REPLY; from=<…> to=<…>
//! proto=… helo=<…>` (or `proxy-reject`).
//!
//! Differences from Postfix: MAIL and RCPT go to the filter in canonical form
//! (`MAIL FROM:<a@b> SIZE=…`), not byte for byte as the client typed them; a garbage reply
//! line fails at once instead of being read past. XFORWARD `SOURCE` is `LOCAL` for a
//! client that `local_header_rewrite_clients` matches, as Postfix's smtpd decides it.
//!
//! # Security
//! The filter's replies are parsed with bounded lines (`line_length_limit`) and at most
//! 100 lines; a malformed reply is a failure, never relayed. Every connect, write and read
//! waits at most `smtpd_proxy_timeout`. The connection ends with `QUIT` when the
//! transaction ends (RSET, HELO, end of data, end of session).
//!
//! # Configuration
//! `smtpd_proxy_filter` (`host:port`, `[host]:port`, `inet:host:port`, `:port`, or
//! `unix:pathname`, relative to the queue directory), `smtpd_proxy_options`
//! (`speed_adjust`; any other word is fatal), `smtpd_proxy_timeout`, `smtpd_proxy_ehlo`,
//! `mail_name` (the `Received:` header), `local_header_rewrite_clients` (XFORWARD `SOURCE`).

use super::Txn;
use crate::policy::MessageAction;
use crate::session::{Session, reply};
use postern_config::{Config, p};
use postern_smtp_proto::{EhloCaps, Reply, ReplyLimits, ReplyParser};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// The `smtpd_proxy_*` settings, when `smtpd_proxy_filter` is set.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// `smtpd_proxy_filter` as written (log lines name it).
    pub filter: String,
    /// `smtpd_proxy_options = speed_adjust`.
    pub speed_adjust: bool,
    /// `smtpd_proxy_timeout`.
    pub timeout: Duration,
    /// `smtpd_proxy_ehlo`.
    pub ehlo: String,
    /// `mail_name`, for the `Received:` header.
    pub mail_name: String,
    /// `queue_directory`: where a relative `unix:` path lives.
    pub queue_directory: PathBuf,
}

impl ProxySettings {
    /// The settings; `Ok(None)` when no filter is configured, `Err` for an unknown
    /// `smtpd_proxy_options` word (Postfix's fatal message).
    pub fn from_config(cfg: &Config) -> Result<Option<ProxySettings>, String> {
        let filter = cfg.str(p::SMTPD_PROXY_FILTER).trim().to_string();
        if filter.is_empty() {
            return Ok(None);
        }
        let mut speed_adjust = false;
        for w in cfg.list(p::SMTPD_PROXY_OPTIONS) {
            if w.eq_ignore_ascii_case("speed_adjust") {
                speed_adjust = true;
            } else {
                return Err(format!(
                    "unknown smtpd_proxy_options value \"{w}\" in \"{}\"",
                    cfg.str(p::SMTPD_PROXY_OPTIONS)
                ));
            }
        }
        let ehlo = cfg.str(p::SMTPD_PROXY_EHLO);
        Ok(Some(ProxySettings {
            filter,
            speed_adjust,
            timeout: cfg.time(p::SMTPD_PROXY_TIMEOUT),
            ehlo: if ehlo.trim().is_empty() {
                cfg.str(p::MYHOSTNAME)
            } else {
                ehlo
            },
            mail_name: cfg.str(p::MAIL_NAME),
            queue_directory: cfg.str(p::QUEUE_DIRECTORY).into(),
        }))
    }
}

/// What smtpd expects from the filter (Postfix's `SMTPD_PROX_WANT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A 2xx reply.
    Ok,
    /// A 3xx reply (DATA).
    More,
    /// Anything (the final `.`): relayed as it is.
    Any,
}

/// The connection to the filter.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(b).await,
            Stream::Unix(s) => s.write_all(b).await,
        }
    }

    async fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(b).await,
            Stream::Unix(s) => s.read(b).await,
        }
    }
}

/// A live connection: the stream and the bytes read past the last reply.
struct Live {
    io: Stream,
    pending: Vec<u8>,
}

impl Drop for Live {
    fn drop(&mut self) {
        // As Postfix's smtpd_proxy_close: QUIT without waiting for the reply. A
        // non-blocking write: if the socket cannot take six bytes now, closing is enough.
        let q = b"QUIT\r\n";
        let _best_effort = match &self.io {
            Stream::Tcp(s) => s.try_write(q),
            Stream::Unix(s) => s.try_write(q),
        };
    }
}

/// One transaction's proxy: live (commands go to the filter as they come) or, with
/// `speed_adjust`, the commands saved for the replay at the end of data.
pub struct Proxy {
    s: ProxySettings,
    line_limit: usize,
    live: Option<Live>,
    /// XFORWARD attributes, taken at MAIL FROM.
    xforward: Vec<(&'static str, Option<String>)>,
    /// speed_adjust: MAIL, RCPT… to replay.
    saved: Vec<String>,
    /// DATA was sent and answered 354.
    data_sent: bool,
}

/// Postfix's reply for every failure of the filter connection.
fn fake() -> Reply {
    reply(451, (4, 3, 0), "Error: queue file write error")
}

/// A reply as one log line.
fn one_line(r: &Reply) -> String {
    r.encode().trim_end().replace("\r\n", " ")
}

/// `unix:path` or an inet endpoint (`[host]:port`, `host:port`, `:port`).
async fn connect(s: &ProxySettings) -> std::io::Result<Stream> {
    let f = s.filter.as_str();
    let prefix = |p: &str| f.get(..p.len()).is_some_and(|x| x.eq_ignore_ascii_case(p));
    if prefix("unix:") {
        let path = s.queue_directory.join(&f[5..]);
        return Ok(Stream::Unix(UnixStream::connect(path).await?));
    }
    let ep = if prefix("inet:") { &f[5..] } else { f };
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad host:port syntax");
    let (host, port) = ep.rsplit_once(':').unwrap_or(("", ep));
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host = if host.is_empty() { "localhost" } else { host };
    let port: u16 = port.parse().map_err(|_| bad())?;
    let tcp = TcpStream::connect((host, port)).await?;
    let _no_delay_is_tuning = tcp.set_nodelay(true);
    Ok(Stream::Tcp(tcp))
}

impl Proxy {
    /// Sends `line` (none: read the greeting) and reads the reply, as Postfix's
    /// `smtpd_proxy_cmd`: `Err` holds the reply for the client.
    async fn cmd(&mut self, line: Option<&str>, want: Want) -> Result<Reply, Reply> {
        let name = self.s.filter.clone();
        let t = self.s.timeout;
        let limits = ReplyLimits {
            max_line: self.line_limit,
            max_lines: 100,
        };
        let Some(live) = self.live.as_mut() else {
            return Err(fake());
        };
        let failed = |what: &str| {
            postern_log::warning(format!("{what} proxy {name}"));
            fake()
        };
        if let Some(l) = line {
            let wire = format!("{l}\r\n");
            match tokio::time::timeout(t, live.io.write_all(wire.as_bytes())).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(failed("lost connection with")),
                Err(_) => return Err(failed("timeout talking to")),
            }
        }
        let mut parser = ReplyParser::new(limits);
        let r = loop {
            match parser.feed(&live.pending) {
                Ok((used, got)) => {
                    live.pending.drain(..used);
                    if let Some(r) = got {
                        break r;
                    }
                }
                Err(e) => {
                    postern_log::warning(format!("received garbage from proxy {name}: {e}"));
                    self.live = None;
                    return Err(fake());
                }
            }
            let mut buf = [0u8; 4096];
            match tokio::time::timeout(t, live.io.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(failed("lost connection with")),
                Ok(Ok(n)) => live.pending.extend_from_slice(&buf[..n]),
                Err(_) => return Err(failed("timeout talking to")),
            }
        };
        let class = r.code / 100;
        let expected = match want {
            Want::Ok => class == 2,
            Want::More => class == 3,
            Want::Any => true,
        };
        if expected {
            return Ok(r);
        }
        postern_log::warning(format!(
            "proxy {name} rejected \"{}\": \"{}\"",
            line.unwrap_or("connection request"),
            one_line(&r)
        ));
        // As Postfix 2.6 and later: an unexpected 2xx or 3xx is not passed through.
        Err(if class == 2 || class == 3 { fake() } else { r })
    }

    /// Connects, reads the greeting, EHLO, XFORWARD, and sends `mail` (Postfix's
    /// `smtpd_proxy_connect`).
    async fn open(&mut self, mail: &str) -> Result<(), Reply> {
        match tokio::time::timeout(self.s.timeout, connect(&self.s)).await {
            Ok(Ok(io)) => {
                self.live = Some(Live {
                    io,
                    pending: Vec::new(),
                })
            }
            Ok(Err(e)) => {
                postern_log::warning(format!("connect to proxy filter {}: {e}", self.s.filter));
                return Err(fake());
            }
            Err(_) => {
                postern_log::warning(format!(
                    "connect to proxy filter {}: Connection timed out",
                    self.s.filter
                ));
                return Err(fake());
            }
        }
        // A refused greeting, EHLO or XFORWARD is the proxy's fault, not the client's.
        self.cmd(None, Want::Ok).await.map_err(|_| fake())?;
        let ehlo = format!("EHLO {}", self.s.ehlo);
        let caps = self.cmd(Some(&ehlo), Want::Ok).await.map_err(|_| fake())?;
        let offered = EhloCaps::from_reply(&caps)
            .and_then(|c| c.xforward)
            .unwrap_or_default();
        for line in xforward_lines(&self.xforward, &offered) {
            self.cmd(Some(&line), Want::Ok).await.map_err(|_| fake())?;
        }
        self.cmd(Some(mail), Want::Ok).await.map(|_| ())
    }
}

/// The XFORWARD commands for the attributes the filter offered (`[UNAVAILABLE]` for those
/// without a value), split below the 512-byte command limit.
fn xforward_lines(attrs: &[(&'static str, Option<String>)], offered: &[String]) -> Vec<String> {
    let list: Vec<(&str, &str)> = attrs
        .iter()
        .filter(|(name, _)| offered.iter().any(|o| o.eq_ignore_ascii_case(name)))
        .map(|(name, v)| (*name, v.as_deref().unwrap_or("[UNAVAILABLE]")))
        .collect();
    postern_smtp_proto::xforward_lines(&list)
}

/// The client's identity for XFORWARD (an XFORWARD this smtpd received wins).
fn xforward_attrs(sess: &Session<'_>) -> Vec<(&'static str, Option<String>)> {
    let fwd = |k: &str| {
        sess.forwarded
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let addr = fwd("client_address").or_else(|| sess.facts.client_addr.map(rfc_addr));
    let local = match fwd("rewrite_context").as_deref() {
        Some(ctx) => ctx == "local",
        None => sess
            .policy
            .local_header_client(&sess.cfg.list(p::LOCAL_HEADER_REWRITE_CLIENTS), &sess.facts),
    };
    let source = if local { "LOCAL" } else { "REMOTE" };
    vec![
        (
            "NAME",
            fwd("client_name").or_else(|| Some(sess.facts.client_name.clone())),
        ),
        ("ADDR", addr),
        (
            "PORT",
            (sess.client_port != 0).then(|| sess.client_port.to_string()),
        ),
        ("HELO", fwd("helo_name").or_else(|| sess.facts.helo.clone())),
        ("IDENT", fwd("log_ident")),
        (
            "PROTO",
            fwd("protocol").or_else(|| Some(sess.facts.protocol.clone())),
        ),
        ("SOURCE", Some(source.to_string())),
    ]
}

fn rfc_addr(a: std::net::IpAddr) -> String {
    match a {
        std::net::IpAddr::V6(v6) => format!("IPv6:{v6}"),
        std::net::IpAddr::V4(v4) => v4.to_string(),
    }
}

/// MAIL FROM passed smtpd's checks: `Ok(None)` without a filter, else the proxy (connected
/// and MAIL sent, or saved for the replay); `Err` is the reply for the client.
pub(crate) async fn mail(sess: &mut Session<'_>, mail: String) -> Result<Option<Proxy>, Reply> {
    // Not in stand-alone mode (`sendmail -bs`), as Postfix: that mail goes to postdrop.
    let Some(s) = sess
        .s
        .proxy
        .clone()
        .filter(|_| sess.s.postdrop_config.is_none())
    else {
        return Ok(None);
    };
    let speed_adjust = s.speed_adjust;
    let mut p = Proxy {
        s,
        line_limit: sess.s.line_length_limit,
        live: None,
        xforward: xforward_attrs(sess),
        saved: Vec::new(),
        data_sent: false,
    };
    if speed_adjust {
        p.saved.push(mail);
    } else {
        p.open(&mail).await?;
    }
    Ok(Some(p))
}

/// RCPT TO passed smtpd's checks: the filter's refusal, if any.
pub(crate) async fn rcpt(txn: &mut Txn, rcpt: String) -> Result<(), Reply> {
    let Some(p) = txn.proxy.as_mut() else {
        return Ok(());
    };
    if p.s.speed_adjust {
        p.saved.push(rcpt);
        return Ok(());
    }
    p.cmd(Some(&rcpt), Want::Ok).await.map(|_| ())
}

/// DATA passed smtpd's checks: the filter's refusal, if any (with speed_adjust smtpd
/// answers 354 itself).
pub(crate) async fn data(txn: &mut Txn) -> Result<(), Reply> {
    let Some(p) = txn.proxy.as_mut() else {
        return Ok(());
    };
    if p.s.speed_adjust {
        return Ok(());
    }
    p.cmd(Some("DATA"), Want::More).await?;
    p.data_sent = true;
    Ok(())
}

/// The end of data: the content to the filter, and the filter's reply for the client.
pub(crate) async fn finish(
    sess: &mut Session<'_>,
    mut p: Proxy,
    txn: &Txn,
    content: &[u8],
) -> Reply {
    let r = match deliver(sess, &mut p, txn, content).await {
        Ok(r) | Err(r) => r,
    };
    let what = if r.code / 100 == 2 {
        "proxy-accept"
    } else {
        "proxy-reject"
    };
    // As Postfix's log line: no queue ID, no client, a multi-line reply's CRLF shown as "??".
    let text = r.encode();
    let text = text.trim_end().replace("\r\n", "??");
    let mut line = format!("{what}: END-OF-MESSAGE: {text};");
    line.push_str(&format!(" from=<{}>", txn.sender));
    if let Some(last) = txn.rcpts.last() {
        line.push_str(&format!(" to=<{}>", last.address));
    }
    line.push_str(&format!(" proto={}", sess.facts.protocol));
    if let Some(h) = &sess.facts.helo {
        line.push_str(&format!(" helo=<{h}>"));
    }
    postern_log::info(line);
    r
}

fn action_name(a: &MessageAction) -> &'static str {
    match a {
        MessageAction::Hold(_) => "HOLD",
        MessageAction::Discard(_) => "DISCARD",
        MessageAction::Prepend(_) => "PREPEND",
        MessageAction::Redirect(_) => "REDIRECT",
        MessageAction::Filter(_) => "FILTER",
        MessageAction::Bcc(_) => "BCC",
    }
}

async fn deliver(
    sess: &mut Session<'_>,
    p: &mut Proxy,
    txn: &Txn,
    content: &[u8],
) -> Result<Reply, Reply> {
    if p.s.speed_adjust {
        let saved = std::mem::take(&mut p.saved);
        let mut cmds = saved.iter();
        let mail = cmds.next().cloned().unwrap_or_default();
        p.open(&mail).await?;
        for c in cmds {
            p.cmd(Some(c), Want::Ok).await?;
        }
    }
    if !p.data_sent {
        // speed_adjust, and BDAT (the filter always gets DATA, as from Postfix).
        p.cmd(Some("DATA"), Want::More).await?;
        p.data_sent = true;
    }
    let mut head = String::new();
    for a in &txn.actions {
        match a {
            MessageAction::Prepend(h) => {
                head.push_str(h);
                head.push('\n');
            }
            // The filter's reinjection queues the message: cleanup's actions cannot apply.
            MessageAction::Hold(v)
            | MessageAction::Discard(v)
            | MessageAction::Redirect(v)
            | MessageAction::Filter(v)
            | MessageAction::Bcc(v) => postern_log::warning(format!(
                "{}: access table action {} {v} is ignored with smtpd_proxy_filter",
                sess.client,
                action_name(a)
            )),
        }
    }
    // Postfix suppresses its own Received: when it got XFORWARD itself (an intermediate
    // proxy); the forwarded attributes last one transaction, as cleanup's hand-off takes them.
    if std::mem::take(&mut sess.forwarded).is_empty() {
        head.push_str(&received(sess, p, txn));
    }
    let wire = stuffed(head.as_bytes(), content);
    let Some(live) = p.live.as_mut() else {
        return Err(fake());
    };
    for chunk in wire.chunks(1 << 16) {
        match tokio::time::timeout(p.s.timeout, live.io.write_all(chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                postern_log::warning(format!("lost connection with proxy {}", p.s.filter));
                return Err(fake());
            }
            Err(_) => {
                postern_log::warning(format!("timeout talking to proxy {}", p.s.filter));
                return Err(fake());
            }
        }
    }
    p.cmd(Some("."), Want::Any).await
}

/// smtpd's own `Received:` header, as Postfix writes it into the proxy stream (no queue
/// ID: the filter's reinjection gives the message one).
fn received(sess: &Session<'_>, p: &Proxy, txn: &Txn) -> String {
    let name = &sess.facts.client_name;
    let helo = sess.facts.helo.as_deref().unwrap_or(name);
    let addr = sess
        .facts
        .client_addr
        .map(rfc_addr)
        .unwrap_or_else(|| "127.0.0.1".into());
    let mut h = format!("Received: from {helo} ({name} [{addr}])\n");
    if let Some(t) = sess.tls_info().filter(|_| sess.s.tls.received_header) {
        for l in t.received_lines() {
            h.push_str(&format!("\t{l}\n"));
        }
    }
    let sasl = crate::sasl::smtp::cleanup_attrs(sess, None);
    if let Some((_, u)) = sasl.iter().find(|(k, _)| k == "sasl_auth_header") {
        let u: String = u.chars().filter(|c| !c.is_control()).collect();
        h.push_str(&format!("\t(Authenticated sender: {u})\n"));
    }
    let z = postern_log::now();
    let date = postern_mail::date::mail_date(
        z.timestamp().as_second(),
        z.offset().seconds(),
        &z.strftime("%Z").to_string(),
    );
    let proto = super::handoff::protocol(sess, &txn.params);
    let by = format!(
        "\tby {} ({}) with {proto}",
        sess.s.myhostname, p.s.mail_name
    );
    match txn.rcpts.as_slice() {
        [one] => h.push_str(&format!("{by}\n\tfor <{}>; {date}\n", one.address)),
        _ => h.push_str(&format!("{by};\n\t{date}\n")),
    }
    h
}

/// Header lines and content (LF line ends) as SMTP DATA: CRLF, dot-stuffed (the final `.`
/// is the last command, [`Proxy::cmd`]). A
/// first content line that starts with white space gets an empty line before it, so that
/// it cannot continue the `Received:` header (as Postfix).
fn stuffed(head: &[u8], content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + content.len() + content.len() / 40 + 8);
    let mut push_lines = |text: &[u8]| {
        if text.is_empty() {
            return;
        }
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        for l in text.split(|&b| b == b'\n') {
            if l.starts_with(b".") {
                out.push(b'.');
            }
            out.extend_from_slice(l);
            out.extend_from_slice(b"\r\n");
        }
    };
    push_lines(head);
    if !head.is_empty() && matches!(content.first(), Some(b' ' | b'\t')) {
        push_lines(b"\n");
    }
    push_lines(content);
    out
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
