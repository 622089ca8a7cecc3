//! One SMTP session: the command loop and the state machine.
//!
//! States: connected → greeted (HELO/EHLO) → in a transaction (MAIL) → with
//! recipients (RCPT) → DATA/BDAT. A command out of sequence gets `503 5.5.1`.
//! Every 4xx/5xx reply counts as an error, as do junk commands past
//! `smtpd_junk_command_limit`; a queued message starts the count again. As Postfix:
//! once the errors reached `smtpd_soft_error_limit`, every command waits
//! `smtpd_error_sleep_time` before it is answered; when they reach
//! `smtpd_hard_error_limit` the session ends with `421 4.7.0` before the next command
//! is read. Unknown verbs are `500 5.5.2`; non-SMTP lines end the session with `221
//! 2.7.0` (see [`crate::session_input`]).

use crate::anvil::Anvil;
use crate::conn::{Conn, ReadError};
use crate::counters::Counters;
use crate::policy::{Facts, MessageAction, Policy, Stage};
use crate::session_input::{first_word, printable, raw_argument, verb_name};
use crate::settings::Settings;
use crate::txn::{self, Txn};
use crate::xclient::{self as xc, Trusted};

#[path = "milter.rs"]
pub mod milter;
use postern_config::Config;
use postern_smtp_proto::{
    Command, Leniency, LineKind, LineReader, Reply, parse_command, reply_for,
};
use std::net::IpAddr;

/// What the loop does after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Read the next command.
    Continue,
    /// End the session.
    Close,
}

/// Per-session state.
pub struct Session<'a> {
    pub(crate) s: &'a Settings,
    pub(crate) cfg: &'a Config,
    pub(crate) policy: &'a Policy,
    pub(crate) anvil: &'a Anvil,
    pub(crate) trusted: &'a Trusted,
    /// The address the connection really comes from (XCLIENT cannot change it).
    pub(crate) real_addr: Option<IpAddr>,
    /// XFORWARD attributes for the next message.
    pub(crate) forwarded: Vec<(String, String)>,
    anvil_connected: bool,
    /// Stand-alone mode (`sendmail -bs`): no connect/disconnect limits.
    pub(crate) standalone: bool,
    /// The client was refused at connect time (`smtpd_delay_reject = no`).
    access_denied: bool,
    pub(crate) conn: Conn,
    pub(crate) facts: Facts,
    pub(crate) client: String,
    pub(crate) esmtp: bool,
    pub(crate) txn: Option<Txn>,
    /// The last MAIL's SIZE while no transaction is open (Postfix's `msg_size`).
    pub(crate) mail_size: u64,
    pub(crate) errors: u32,
    pub(crate) junk: u32,
    pub(crate) counters: Counters,
    leniency: Leniency,
    pub(crate) lines: LineReader,
    /// The TLS session, once STARTTLS or wrapper mode succeeded.
    pub(crate) tls: Option<crate::tls::TlsInfo>,
    last_command: &'static str,
    /// The argument of the current command as the client sent it (VRFY echoes it).
    pub(crate) raw_arg: String,
    /// The session's milters (`smtpd_milters`), once connected.
    pub(crate) milters: Option<milter::SessionMilters>,
    /// The client's TCP port (the `{client_port}` macro; 0 when unknown).
    pub client_port: u16,
    /// The address the client connected to (the `{daemon_addr}` and `{daemon_port}` macros).
    pub server_addr: Option<std::net::SocketAddr>,
    /// End the session before reading the next command (a milter's 421).
    pub(crate) hangup: bool,
}

pub(crate) fn reply(code: u16, enh: (u8, u16, u16), text: impl Into<String>) -> Reply {
    Reply::new(code, Some(enh), text)
}

impl<'a> Session<'a> {
    /// A new session for a client.
    pub fn new(
        s: &'a Settings,
        cfg: &'a Config,
        policy: &'a Policy,
        anvil: &'a Anvil,
        trusted: &'a Trusted,
        conn: Conn,
        addr: Option<IpAddr>,
    ) -> Self {
        let name = match addr {
            Some(a) if a.is_loopback() => "localhost".to_string(),
            Some(_) => "unknown".to_string(),
            None => "localhost".to_string(),
        };
        let shown = addr
            .map(|a| a.to_string())
            .unwrap_or_else(|| "127.0.0.1".into());
        let facts = Facts {
            client_addr: addr,
            client_name: name.clone(),
            reverse_client_name: name.clone(),
            protocol: "SMTP".into(),
            ..Default::default()
        };
        Session {
            s,
            cfg,
            policy,
            anvil,
            trusted,
            real_addr: addr,
            forwarded: Vec::new(),
            anvil_connected: false,
            standalone: false,
            access_denied: false,
            conn,
            facts,
            client: format!("{name}[{shown}]"),
            esmtp: false,
            txn: None,
            mail_size: 0,
            errors: 0,
            junk: 0,
            counters: Counters::default(),
            leniency: Leniency {
                strict_rfc821_envelopes: s.strict_rfc821,
                sasl_enabled: s.sasl.is_some(),
                ..Default::default()
            },
            lines: LineReader::new(s.line_length_limit),
            tls: None,
            last_command: "CONNECT",
            raw_arg: String::new(),
            milters: None,
            client_port: 0,
            server_addr: None,
            hangup: false,
        }
    }

    /// Runs the session to its end.
    pub async fn run(mut self) {
        postern_log::info(format!("connect from {}", self.client));
        self.start_transcript();
        if !self.wrapper_tls().await {
            self.conn.close().await;
            postern_log::info(format!(
                "disconnect from {} {}",
                self.client,
                self.counters.summary()
            ));
            return;
        }
        if let Some(r) = self.connection_limits().await {
            self.conn.reply(&r);
            self.conn.close().await;
            self.anvil_disconnect().await;
            postern_log::info(format!(
                "disconnect from {} {}",
                self.client,
                self.counters.summary()
            ));
            return;
        }
        let verdict = self.policy.check(Stage::Connect, &self.facts).await;
        self.log_lines(&verdict.log);
        if let Some(r) = verdict.reject.filter(|_| !self.s.delay_reject) {
            // As Postfix: the refusal is the greeting; the session stays open and
            // every command but QUIT gets `503 5.7.0 Error: access denied for …`.
            self.log_reject("CONNECT", &r);
            self.conn.reply(&r);
            self.access_denied = true;
        } else if let Some((r, hangup)) = milter::connect(&mut self).await {
            self.conn.reply(&r);
            self.hangup = hangup;
        } else {
            self.conn
                .reply(&Reply::new(220, None, self.s.banner.clone()));
        }
        if let Err(e) = self.conn.flush().await {
            return self.lost(&e.to_string());
        }
        loop {
            if self.hangup {
                break;
            }
            // As Postfix: the limit is checked before the next command is read, so the
            // error that reaches it still gets its own reply, then this one.
            if self.errors >= self.s.hard_error_limit {
                self.goodbye("too many errors", (4, 7, 0));
                break;
            }
            let line = match self.conn.read_line(&mut self.lines).await {
                Ok(l) => l,
                Err(ReadError::Timeout) => {
                    self.goodbye("timeout exceeded", (4, 4, 2));
                    break;
                }
                Err(ReadError::Eof) => {
                    self.conn.transcript.abort("lost connection");
                    postern_log::info(format!(
                        "lost connection after {} from {}",
                        self.last_command, self.client
                    ));
                    break;
                }
                Err(ReadError::Io(e)) => {
                    self.conn.transcript.abort("lost connection");
                    postern_log::info(format!(
                        "{e} after {} from {}",
                        self.last_command, self.client
                    ));
                    break;
                }
            };
            if self.errors >= self.s.soft_error_limit {
                // Postfix's "sleep on anything": past the soft limit every reply waits.
                if let Err(e) = self.conn.flush().await {
                    self.lost(&e.to_string());
                    break;
                }
                tokio::time::sleep(self.s.error_sleep).await;
            }
            if self.command(line).await == Flow::Close {
                break;
            }
            if self.txn.is_none() {
                self.chat_reset(self.s.notify.threshold).await;
            }
            if let Err(e) = self.conn.flush_if_idle().await {
                postern_log::info(format!(
                    "write error after {} from {}: {e}",
                    self.last_command, self.client
                ));
                break;
            }
        }
        self.conn.close().await;
        milter::close(&mut self).await;
        self.anvil_disconnect().await;
        postern_log::info(format!(
            "disconnect from {} {}",
            self.client,
            self.counters.summary()
        ));
        self.chat_reset(0).await;
    }

    /// The session ends on our side: `<why> after <command>` logged (Postfix's reason:
    /// `too many errors`, `timeout`), the transcript closed, `421 … Error: <why>` sent.
    fn goodbye(&mut self, why: &str, enh: (u8, u16, u16)) {
        let reason = why.strip_suffix(" exceeded").unwrap_or(why);
        postern_log::info(format!(
            "{reason} after {} from {}",
            self.last_command, self.client
        ));
        self.conn.transcript.abort(reason);
        let text = format!("{} Error: {why}", self.s.myhostname);
        self.conn.reply(&reply(421, enh, text));
    }

    /// anvil's connection count and rate limits; `Some(reply)` refuses the client.
    async fn connection_limits(&mut self) -> Option<Reply> {
        if self.standalone {
            return None;
        }
        let addr = self.facts.client_addr?;
        if !self.anvil.applies(Some(addr)) {
            return None;
        }
        let r = self.anvil.event("connect", addr).await?;
        self.anvil_connected = true;
        let (count_limit, rate_limit) = (self.anvil.count_limit, self.anvil.conn_rate_limit);
        let what = if count_limit > 0 && r.count > count_limit {
            format!(
                "Connection concurrency limit exceeded: {} from {} for service smtp",
                r.count, self.client
            )
        } else if rate_limit > 0 && r.rate > rate_limit {
            format!(
                "Connection rate limit exceeded: {} from {} for service smtp",
                r.rate, self.client
            )
        } else {
            return None;
        };
        postern_log::warning(what);
        Some(reply(
            421,
            (4, 7, 0),
            format!(
                "{} Error: too many connections from {addr}",
                self.s.myhostname
            ),
        ))
    }

    async fn anvil_disconnect(&mut self) {
        if let (true, Some(addr)) = (self.anvil_connected, self.facts.client_addr) {
            self.anvil_connected = false;
            let _counts_not_needed = self.anvil.event("disconnect", addr).await;
        }
    }

    /// A per-client rate limit at MAIL or RCPT; `Some(reply)` refuses the command.
    pub(crate) async fn rate_limit(&mut self, op: &str, limit: u64) -> Option<Reply> {
        let addr = self.facts.client_addr?;
        if self.standalone || limit == 0 || !self.anvil.applies(Some(addr)) {
            return None;
        }
        let r = self.anvil.event(op, addr).await?;
        if r.rate <= limit {
            return None;
        }
        let (what, text) = if op == "message" {
            (
                "Message delivery request rate limit exceeded",
                format!("Error: too much mail from {addr}"),
            )
        } else {
            (
                "Recipient address rate limit exceeded",
                format!("Error: too many recipients from {addr}"),
            )
        };
        postern_log::warning(format!(
            "{what}: {} from {} for service smtp",
            r.rate, self.client
        ));
        Some(reply(450, (4, 7, 1), text))
    }

    fn lost(&self, why: &str) {
        postern_log::info(format!(
            "lost connection ({why}) after {} from {}",
            self.last_command, self.client
        ));
    }

    pub(crate) fn log_lines(&self, lines: &[String]) {
        for l in lines {
            postern_log::info(format!("NOQUEUE: {l}"));
        }
    }

    /// Logs a refusal in Postfix's format (pflogsumm counts these).
    pub(crate) fn log_reject(&mut self, stage: &str, r: &Reply) {
        self.log_refusal("reject", stage, r);
    }

    /// Logs a refusal as `NOQUEUE: ACTION: STAGE from …` (`reject`, `milter-reject`).
    pub(crate) fn log_refusal(&mut self, action: &str, stage: &str, r: &Reply) {
        self.conn.transcript.restriction(r);
        let text = r.encode();
        let text = text.trim_end().replace("\r\n", " ");
        self.log_event(action, stage, &text);
    }

    /// `NOQUEUE: ACTION: STAGE from host[addr]: TEXT; from=<…> to=<…> proto=… helo=<…>`.
    pub(crate) fn log_event(&self, action: &str, stage: &str, text: &str) {
        let mut line = format!("NOQUEUE: {action}: {stage} from {}: {text};", self.client);
        if let Some(t) = &self.txn {
            line.push_str(&format!(" from=<{}>", t.sender));
        }
        if let Some(r) = &self.facts.recipient {
            line.push_str(&format!(" to=<{r}>"));
        }
        line.push_str(&format!(" proto={}", self.facts.protocol));
        if let Some(h) = &self.facts.helo {
            line.push_str(&format!(" helo=<{h}>"));
        }
        postern_log::info(line);
    }

    /// Sends an error reply and counts the error (the delay past the soft limit and
    /// the end at the hard limit belong to the command loop, as in Postfix).
    pub(crate) async fn error(&mut self, r: Reply) -> Flow {
        self.errors += 1;
        self.conn.reply(&r);
        Flow::Continue
    }

    /// A message was queued: as Postfix, the error and junk counts start again.
    pub(crate) fn delivered(&mut self) {
        self.errors = 0;
        self.junk = 0;
    }

    async fn command(&mut self, line: postern_smtp_proto::Line) -> Flow {
        if line.kind == LineKind::TooLong {
            // As Postfix: the first line_length_limit bytes are the command; the rest is dropped.
            postern_log::info(format!(
                "warning: {}: command line too long, truncated",
                self.client
            ));
        }
        // As Postfix, whose tokenizer reads a C string: a NUL ends the command.
        let bytes = line.bytes.split(|&b| b == 0).next().unwrap_or_default();
        self.note_pipelining(bytes);
        self.raw_arg = raw_argument(bytes);
        let verb = first_word(bytes);
        if self.non_smtp(verb) {
            postern_log::warning(format!(
                "non-SMTP command from {}: {}",
                self.client,
                printable(bytes, 100)
            ));
            self.last_command = "UNKNOWN";
            self.counters.count("unknown", false);
            self.conn.transcript.abort("non-SMTP command");
            self.conn.reply(&reply(
                221,
                (2, 7, 0),
                "Error: I can break rules, too. Goodbye.",
            ));
            return Flow::Close;
        }
        let flow = match parse_command(bytes, &self.leniency) {
            Ok(c) => self.dispatch(c).await,
            Err(e) => {
                self.last_command = verb_name(bytes);
                self.counters.count(self.last_command, false);
                let close = e.closes_session();
                let r = match e {
                    // As Postfix: DATA checks the transaction before its syntax.
                    postern_smtp_proto::CommandError::DataSyntax => {
                        txn::data_state(self).unwrap_or_else(|| reply_for(&e))
                    }
                    _ => reply_for(&e),
                };
                let f = self.error(r).await;
                if close { Flow::Close } else { f }
            }
        };
        self.count_junk(verb);
        flow
    }

    async fn dispatch(&mut self, cmd: Command) -> Flow {
        if self.access_denied && cmd != Command::Quit {
            self.counters.count("unknown", false);
            let text = format!("Error: access denied for {}", self.client);
            return self.error(reply(503, (5, 7, 0), text)).await;
        }
        if self.needs_tls_first(&cmd) {
            return self.tls_first().await;
        }
        match cmd {
            Command::Helo(h) => self.helo(h, false).await,
            Command::Ehlo(h) => self.helo(h, true).await,
            Command::Lhlo(_) => self.unknown_command("UNKNOWN").await,
            Command::Mail { from, params } => txn::mail(self, from, params).await,
            Command::Rcpt { to, params } => txn::rcpt(self, to, params).await,
            Command::Data => txn::data(self).await,
            Command::Bdat { size, last } => txn::bdat(self, size, last).await,
            Command::Rset => {
                self.last_command = "RSET";
                milter::abort(self).await;
                self.txn = None;
                self.mail_size = 0;
                self.counters.count("rset", true);
                self.conn.reply(&reply(250, (2, 0, 0), "Ok"));
                Flow::Continue
            }
            Command::Noop => {
                self.last_command = "NOOP";
                self.counters.count("noop", true);
                self.conn.reply(&reply(250, (2, 0, 0), "Ok"));
                Flow::Continue
            }
            Command::Quit => {
                self.last_command = "QUIT";
                self.counters.count("quit", true);
                self.conn.reply(&reply(221, (2, 0, 0), "Bye"));
                Flow::Close
            }
            Command::Vrfy { address, .. } => crate::checks::vrfy(self, address.internal()).await,
            Command::Etrn(domain) => crate::checks::etrn(self, domain).await,
            Command::StartTls => self.starttls().await,
            Command::Auth { mechanism, initial } => {
                crate::sasl::smtp::auth(self, mechanism, initial).await
            }
            Command::Xclient(attrs) => xc::xclient(self, attrs).await,
            Command::Xforward(attrs) => xc::xforward(self, attrs).await,
            Command::Unknown(verb) => self.unknown_verb(verb).await,
            Command::Expn(_) | Command::Help(_) => self.unknown_command("UNKNOWN").await,
        }
    }

    /// An unknown verb: the milters' refusal (SMFIC_UNKNOWN), else `500 5.5.2`.
    async fn unknown_verb(&mut self, verb: String) -> Flow {
        match milter::unknown(self, &verb).await {
            Some(r) => {
                self.last_command = "UNKNOWN";
                self.counters.count("unknown", false);
                self.error(r).await
            }
            None => self.unknown_command("UNKNOWN").await,
        }
    }

    /// A verb Postfix's smtpd does not implement (EXPN, HELP, LHLO, anything else).
    async fn unknown_command(&mut self, name: &'static str) -> Flow {
        self.last_command = name;
        self.counters.count("unknown", false);
        self.error(reply(500, (5, 5, 2), "Error: command not recognized"))
            .await
    }

    async fn helo(&mut self, name: String, esmtp: bool) -> Flow {
        self.last_command = if esmtp { "EHLO" } else { "HELO" };
        self.txn = None;
        self.mail_size = 0;
        self.facts.helo = Some(name.clone());
        self.facts.protocol = if esmtp { "ESMTP" } else { "SMTP" }.into();
        if !self.s.delay_reject {
            let v = self.policy.check(Stage::Helo, &self.facts).await;
            self.log_lines(&v.log);
            if let Some(r) = v.reject {
                self.log_reject(self.last_command, &r);
                self.counters
                    .count(if esmtp { "ehlo" } else { "helo" }, false);
                return self.error(r).await;
            }
        }
        if let Some(r) = milter::helo(self, &name, self.last_command).await {
            // A milter's 421: the session ends.
            self.counters
                .count(if esmtp { "ehlo" } else { "helo" }, false);
            self.conn.reply(&r);
            return Flow::Close;
        }
        self.esmtp = esmtp;
        self.counters
            .count(if esmtp { "ehlo" } else { "helo" }, true);
        if !esmtp {
            self.conn
                .reply(&Reply::new(250, None, self.s.myhostname.clone()));
            return Flow::Continue;
        }
        let starttls = self.offer_starttls();
        let auth = crate::sasl::smtp::ehlo_keywords(self).await;
        let mut lines = vec![self.s.myhostname.clone()];
        // After a milter's 5xx at CONNECT or HELO, EHLO announces only
        // ENHANCEDSTATUSCODES (Postfix's Sendmail compatibility).
        let refused = milter::refused(self);
        let mut kw = |k: String| {
            let word = k.split(' ').next().unwrap_or("").to_ascii_lowercase();
            if !self.s.discard_ehlo.contains(&word) && (!refused || word == "enhancedstatuscodes") {
                lines.push(k);
            }
        };
        kw("PIPELINING".into());
        kw(if self.s.message_size_limit > 0 {
            format!("SIZE {}", self.s.message_size_limit)
        } else {
            "SIZE".into()
        });
        if !self.s.disable_vrfy {
            kw("VRFY".into());
        }
        kw("ETRN".into());
        if starttls {
            kw("STARTTLS".into());
        }
        for k in auth {
            kw(k);
        }
        kw("ENHANCEDSTATUSCODES".into());
        kw("8BITMIME".into());
        kw("DSN".into());
        if self.s.smtputf8 {
            kw("SMTPUTF8".into());
        }
        kw("CHUNKING".into());
        if self.trusted.xclient(self.real_addr) {
            kw("XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT".into());
        }
        if self.trusted.xforward(self.real_addr) {
            kw("XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT".into());
        }
        let mut r = Reply::new(250, None, String::new());
        r.lines = lines;
        self.conn.reply(&r);
        Flow::Continue
    }

    /// Recomputes `name[addr]` after XCLIENT.
    pub(crate) fn refresh_client_label(&mut self) {
        let addr = self
            .facts
            .client_addr
            .map(|a| a.to_string())
            .unwrap_or_else(|| "unknown".into());
        self.client = format!("{}[{addr}]", self.facts.client_name);
    }

    /// Records the command being handled (for timeout and lost-connection logs).
    pub(crate) fn set_last(&mut self, name: &'static str) {
        self.last_command = name;
    }

    /// Applies message actions from a verdict to the open transaction.
    pub(crate) fn keep_actions(&mut self, actions: Vec<MessageAction>) {
        if let Some(t) = self.txn.as_mut() {
            t.actions.extend(actions);
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
