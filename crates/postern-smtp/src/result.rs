//! Reply → recipient result mapping (pure), with Postfix's texts.

use postern_ipc::proto::Action;
use postern_smtp_proto::Reply;

/// `host[addr]` as Postfix names a peer in texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Host name (or the address when there is no name).
    pub host: String,
    /// Address (or socket path).
    pub addr: String,
    /// TCP port (0 for a UNIX socket).
    pub port: u16,
}

impl Peer {
    /// `host[addr]`.
    pub fn name(&self) -> String {
        format!("{}[{}]", self.host, self.addr)
    }

    /// The `relay=` value: `host[addr]:port`, or `host[path]` for a UNIX socket.
    pub fn relay(&self) -> String {
        if self.port == 0 {
            self.name()
        } else {
            format!("{}[{}]:{}", self.host, self.addr, self.port)
        }
    }
}

/// A recipient's final outcome in this attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Sent / deferred / bounced.
    pub action: Action,
    /// Enhanced status code.
    pub dsn: String,
    /// Text for the log and DSNs.
    pub text: String,
}

impl Outcome {
    /// A deferral.
    pub fn defer(dsn: &str, text: impl Into<String>) -> Outcome {
        Outcome {
            action: Action::Defer,
            dsn: dsn.into(),
            text: text.into(),
        }
    }

    /// A bounce.
    pub fn bounce(dsn: &str, text: impl Into<String>) -> Outcome {
        Outcome {
            action: Action::Bounce,
            dsn: dsn.into(),
            text: text.into(),
        }
    }
}

/// The enhanced code of a reply, else `X.0.0` from its class.
pub fn reply_dsn(r: &Reply) -> String {
    match r.enhanced {
        Some((c, s, d)) => format!("{c}.{s}.{d}"),
        None => format!("{}.0.0", r.code / 100),
    }
}

/// One-line form of a reply: `550 5.1.1 text more text`.
pub fn reply_line(r: &Reply) -> String {
    let mut s = r.code.to_string();
    if let Some((c, sub, d)) = r.enhanced {
        s.push_str(&format!(" {c}.{sub}.{d}"));
    }
    let text = r
        .lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if !text.is_empty() {
        s.push(' ');
        s.push_str(&text);
    }
    s
}

/// The outcome of a reply to `command` (`RCPT TO`, `MAIL FROM`, `DATA`,
/// `end of DATA`): 2xx sent with the reply as text; 4xx deferred, 5xx
/// bounced, as `host H[A] said: REPLY (in reply to COMMAND command)`.
pub fn from_reply(peer: &Peer, r: &Reply, command: &str) -> Outcome {
    let dsn = reply_dsn(r);
    if r.is_positive() {
        return Outcome {
            action: Action::Sent,
            dsn,
            text: reply_line(r),
        };
    }
    let text = format!(
        "host {} said: {} (in reply to {command} command)",
        peer.name(),
        reply_line(r)
    );
    // A 5xx with a 4.x.x enhanced code (or the reverse) follows the reply code.
    let dsn = if dsn.starts_with(char::from(b'0' + (r.code / 100) as u8)) {
        dsn
    } else {
        format!("{}.0.0", r.code / 100)
    };
    if r.is_transient() {
        Outcome::defer(&dsn, text)
    } else {
        Outcome::bounce(&dsn, text)
    }
}

/// What went wrong on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoFail {
    /// A deadline passed.
    Timeout,
    /// EOF or a socket error.
    Lost,
    /// A reply that does not parse (garbage, a huge line, too many lines).
    Malformed(String),
}

/// Postfix's texts for a broken conversation, always deferred with 4.4.2.
pub fn from_io(peer: &Peer, fail: &IoFail, stage: &str) -> Outcome {
    let text = match fail {
        IoFail::Timeout => format!("conversation with {} timed out while {stage}", peer.name()),
        IoFail::Lost => format!("lost connection with {} while {stage}", peer.name()),
        IoFail::Malformed(why) => {
            format!("malformed reply from {} while {stage}: {why}", peer.name())
        }
    };
    Outcome::defer("4.4.2", text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Peer {
        Peer {
            host: "mx.example".into(),
            addr: "192.0.2.1".into(),
            port: 25,
        }
    }

    #[test]
    fn rcpt_reject_text() {
        let r = Reply::new(550, Some((5, 1, 1)), "<u@x>: Recipient address rejected");
        let o = from_reply(&peer(), &r, "RCPT TO");
        assert_eq!(o.action, Action::Bounce);
        assert_eq!(o.dsn, "5.1.1");
        assert_eq!(
            o.text,
            "host mx.example[192.0.2.1] said: 550 5.1.1 <u@x>: Recipient address rejected (in reply to RCPT TO command)"
        );
        assert_eq!(peer().relay(), "mx.example[192.0.2.1]:25");
    }

    #[test]
    fn classes_and_default_dsn() {
        let o = from_reply(&peer(), &Reply::new(451, None, "try later"), "MAIL FROM");
        assert_eq!((o.action, o.dsn.as_str()), (Action::Defer, "4.0.0"));
        assert!(
            o.text
                .ends_with("said: 451 try later (in reply to MAIL FROM command)")
        );
        let o = from_reply(
            &peer(),
            &Reply::new(250, Some((2, 0, 0)), "Ok: queued as X"),
            "end of DATA",
        );
        assert_eq!(o.action, Action::Sent);
        assert_eq!(o.text, "250 2.0.0 Ok: queued as X");
        let o = from_reply(&peer(), &Reply::new(250, None, "ok"), "end of DATA");
        assert_eq!(o.dsn, "2.0.0");
        let multi = Reply {
            code: 554,
            enhanced: Some((5, 7, 1)),
            lines: vec!["first".into(), "second".into()],
        };
        let o = from_reply(&peer(), &multi, "DATA");
        assert_eq!(o.action, Action::Bounce);
        assert!(
            o.text
                .contains("said: 554 5.7.1 first second (in reply to DATA command)")
        );
    }

    #[test]
    fn io_failures_defer() {
        let o = from_io(&peer(), &IoFail::Lost, "sending message body");
        assert_eq!(o.action, Action::Defer);
        assert_eq!(o.dsn, "4.4.2");
        assert_eq!(
            o.text,
            "lost connection with mx.example[192.0.2.1] while sending message body"
        );
        let o = from_io(&peer(), &IoFail::Timeout, "sending RCPT TO");
        assert_eq!(
            o.text,
            "conversation with mx.example[192.0.2.1] timed out while sending RCPT TO"
        );
    }
}
