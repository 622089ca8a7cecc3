//! EHLO response keywords (client side).

use crate::reply::Reply;

/// What a server announced in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EhloCaps {
    /// The server's name (first word of the first line).
    pub domain: String,
    /// `SIZE n` (`Some(0)`: SIZE announced without a limit).
    pub size: Option<u64>,
    /// `PIPELINING`.
    pub pipelining: bool,
    /// `8BITMIME`.
    pub eightbitmime: bool,
    /// `BINARYMIME`.
    pub binarymime: bool,
    /// `DSN`.
    pub dsn: bool,
    /// `SMTPUTF8`.
    pub smtputf8: bool,
    /// `CHUNKING`.
    pub chunking: bool,
    /// `STARTTLS`.
    pub starttls: bool,
    /// `ENHANCEDSTATUSCODES`.
    pub enhanced_status_codes: bool,
    /// `AUTH` (and the legacy `AUTH=`) mechanisms, upper case.
    pub auth: Vec<String>,
    /// `XCLIENT` attribute names.
    pub xclient: Option<Vec<String>>,
    /// `XFORWARD` attribute names.
    pub xforward: Option<Vec<String>>,
    /// Any other keyword line, as sent.
    pub other: Vec<String>,
}

impl EhloCaps {
    /// Interpret a 250 EHLO reply; `None` for any other code.
    pub fn from_reply(reply: &Reply) -> Option<EhloCaps> {
        if reply.code != 250 {
            return None;
        }
        let mut lines = reply.lines.iter();
        let domain = lines.next()?.split(' ').next().unwrap_or("").to_owned();
        let mut caps = EhloCaps {
            domain,
            ..EhloCaps::default()
        };
        for line in lines {
            caps.keyword(line);
        }
        Some(caps)
    }

    fn keyword(&mut self, line: &str) {
        let mut words = line.split_ascii_whitespace();
        let Some(kw) = words.next() else { return };
        let args = || {
            words
                .clone()
                .map(str::to_ascii_uppercase)
                .collect::<Vec<_>>()
        };
        match kw.to_ascii_uppercase().as_str() {
            "SIZE" => {
                self.size = Some(
                    words
                        .clone()
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                )
            }
            "PIPELINING" => self.pipelining = true,
            "8BITMIME" => self.eightbitmime = true,
            "BINARYMIME" => self.binarymime = true,
            "DSN" => self.dsn = true,
            "SMTPUTF8" => self.smtputf8 = true,
            "CHUNKING" => self.chunking = true,
            "STARTTLS" => self.starttls = true,
            "ENHANCEDSTATUSCODES" => self.enhanced_status_codes = true,
            "AUTH" => self.add_auth(args()),
            "XCLIENT" => self.xclient = Some(args()),
            "XFORWARD" => self.xforward = Some(args()),
            k if k.starts_with("AUTH=") => {
                let mut mechs = vec![k[5..].to_owned()];
                mechs.extend(args());
                self.add_auth(mechs);
            }
            _ => self.other.push(line.to_owned()),
        }
    }

    fn add_auth(&mut self, mechs: Vec<String>) {
        for m in mechs {
            if !m.is_empty() && !self.auth.contains(&m) {
                self.auth.push(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::ReplyParser;

    #[test]
    fn postfix_ehlo_reply() {
        // As sent by Postfix 3.7.11 with XCLIENT/XFORWARD authorized.
        let wire = "250-pfx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n\
250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT\r\n\
250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n250-ENHANCEDSTATUSCODES\r\n\
250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN\r\n\
250-STARTTLS\r\n250 CHUNKING\r\n";
        let (n, reply) = ReplyParser::default().feed(wire.as_bytes()).unwrap();
        assert_eq!(n, wire.len());
        let caps = EhloCaps::from_reply(&reply.unwrap()).unwrap();
        assert_eq!(caps.domain, "pfx.test");
        assert_eq!(caps.size, Some(10_240_000));
        assert!(caps.pipelining && caps.eightbitmime && caps.dsn && caps.smtputf8);
        assert!(caps.chunking && caps.starttls && caps.enhanced_status_codes);
        assert!(!caps.binarymime);
        assert_eq!(caps.auth, vec!["PLAIN", "LOGIN"]);
        assert_eq!(caps.xclient.as_ref().unwrap().len(), 9);
        assert_eq!(caps.xforward.as_ref().unwrap()[4], "SOURCE");
        assert_eq!(caps.other, vec!["VRFY", "ETRN"]);
    }

    #[test]
    fn not_250() {
        assert_eq!(EhloCaps::from_reply(&Reply::new(502, None, "no")), None);
    }
}
