//! XFORWARD from the client (`smtp_send_xforward_command`, Postfix's smtp): the original
//! client of a message, told to a server that offers XFORWARD (an after-queue content
//! filter such as amavisd-new, which then hands it to the reinjection smtpd).
//!
//! * [`Origin::from_queue_file`]: the attributes smtpd (or the filter's reinjection smtpd)
//!   recorded in the queue file: `client_name`, `client_address`, `client_port`,
//!   `protocol`, `helo_name`, `log_ident`, `rewrite_context`. The log identifier of mail
//!   received over the network is its queue ID when no upstream XFORWARD named one (what
//!   Postfix's smtpd records); locally submitted mail has none.
//! * [`commands`]: as Postfix, two groups, NAME/ADDR/PORT then PROTO/HELO/IDENT/SOURCE;
//!   only the attributes the server offers and the message has (NAME, ADDR, PORT and PROTO
//!   not when `unknown`), SOURCE always (`LOCAL` unless the rewrite context is `remote`).
//!   A group too long for one 512-byte command line is split
//!   ([`postern_smtp_proto::xforward_lines`]).
//!
//! # Security
//! The values come from our own queue file and are xtext-encoded on the wire, so a hostile
//! HELO name cannot inject a command. A refused XFORWARD only logs a warning, as Postfix.
//!
//! # Configuration
//! `smtp_send_xforward_command`, `smtp_xforward_timeout` (the `lmtp_` forms for LMTP),
//! through [`crate::AgentConfig`].

use postern_smtp_proto::{XAttr, xforward_lines};

/// The original client of one message, as recorded in its queue file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// `client_name` (NAME).
    pub name: String,
    /// `client_address` (ADDR).
    pub addr: String,
    /// `client_port` (PORT).
    pub port: String,
    /// `protocol` (PROTO).
    pub proto: String,
    /// `helo_name` (HELO).
    pub helo: String,
    /// `log_ident` (IDENT).
    pub ident: String,
    /// `rewrite_context` is `remote` (SOURCE=REMOTE, else LOCAL).
    pub remote: bool,
}

impl Origin {
    /// The origin recorded in a queue file's attributes (`attrs`) of message `queue_id`.
    pub fn from_queue_file(attrs: &[(String, String)], queue_id: &str) -> Origin {
        let get = |k: &str| {
            attrs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let mut o = Origin {
            name: get("client_name"),
            addr: get("client_address"),
            port: get("client_port"),
            proto: get("protocol"),
            helo: get("helo_name"),
            ident: get("log_ident"),
            remote: get("rewrite_context") == "remote",
        };
        // Received over the network (smtpd, qmqpd record the protocol): the queue ID
        // identifies the message, as Postfix's smtpd records it.
        if o.ident.is_empty() && !o.proto.is_empty() {
            o.ident = queue_id.to_string();
        }
        o
    }
}

/// One XFORWARD command (without CRLF) and the step it belongs to, for the log
/// (`XFORWARD name/address command`, `XFORWARD helo/protocol command`).
pub type Step = (String, &'static str);

/// The XFORWARD commands for a server whose EHLO offered the attribute names `offered`.
pub fn commands<'a>(o: &'a Origin, offered: &[String]) -> Vec<Step> {
    let has = |a: XAttr| offered.iter().any(|n| n.eq_ignore_ascii_case(a.as_str()));
    let known = |v: &str| !v.is_empty() && !v.eq_ignore_ascii_case("unknown");
    let pick = |list: &[(XAttr, &'a str, bool)]| -> Vec<(&'static str, &'a str)> {
        list.iter()
            .filter(|(a, _, ok)| *ok && has(*a))
            .map(|(a, v, _)| (a.as_str(), *v))
            .collect()
    };
    let name_addr = pick(&[
        (XAttr::Name, &o.name, known(&o.name)),
        (XAttr::Addr, &o.addr, known(&o.addr)),
        (XAttr::Port, &o.port, known(&o.port)),
    ]);
    let source = if o.remote { "REMOTE" } else { "LOCAL" };
    let proto_helo = pick(&[
        (XAttr::Proto, &o.proto, known(&o.proto)),
        (XAttr::Helo, &o.helo, !o.helo.is_empty()),
        (XAttr::Ident, &o.ident, !o.ident.is_empty()),
        (XAttr::Source, source, true),
    ]);
    let mut out: Vec<Step> = Vec::new();
    for (group, what) in [
        (name_addr, "XFORWARD name/address command"),
        (proto_helo, "XFORWARD helo/protocol command"),
    ] {
        out.extend(xforward_lines(&group).into_iter().map(|l| (l, what)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn all() -> Vec<String> {
        ["NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn two_groups_as_postfix() {
        let o = Origin::from_queue_file(
            &attrs(&[
                ("rewrite_context", "remote"),
                ("client_name", "client.example"),
                ("client_address", "192.0.2.7"),
                ("helo_name", "helo name+x"),
                ("protocol", "ESMTP"),
            ]),
            "4ABCDEF",
        );
        let c = commands(&o, &all());
        let lines: Vec<&str> = c.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            lines,
            [
                "XFORWARD NAME=client.example ADDR=192.0.2.7",
                "XFORWARD PROTO=ESMTP HELO=helo+20name+2Bx IDENT=4ABCDEF SOURCE=REMOTE",
            ]
        );
        assert_eq!(c[0].1, "XFORWARD name/address command");
        // Only what the server offers.
        let c = commands(&o, &["addr".to_string(), "source".to_string()]);
        assert_eq!(c[0].0, "XFORWARD ADDR=192.0.2.7");
        assert_eq!(c[1].0, "XFORWARD SOURCE=REMOTE");
        assert!(commands(&o, &[]).is_empty());
    }

    #[test]
    fn local_mail_and_unknown_values() {
        // pickup: no client attributes, no log identifier: SOURCE only.
        let o = Origin::from_queue_file(&attrs(&[("rewrite_context", "local")]), "Q1");
        let c = commands(&o, &all());
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, "XFORWARD SOURCE=LOCAL");
        // An unknown client name is not forwarded; an upstream IDENT wins.
        let o = Origin::from_queue_file(
            &attrs(&[
                ("client_name", "unknown"),
                ("client_address", "2001:db8::1"),
                ("protocol", "SMTP"),
                ("log_ident", "UP1"),
            ]),
            "Q2",
        );
        let c = commands(&o, &all());
        assert_eq!(c[0].0, "XFORWARD ADDR=2001:db8::1");
        assert_eq!(c[1].0, "XFORWARD PROTO=SMTP IDENT=UP1 SOURCE=LOCAL");
    }

    #[test]
    fn long_values_split_within_the_line_limit() {
        let o = Origin {
            name: "n".repeat(250),
            addr: "192.0.2.1".into(),
            proto: "ESMTP".into(),
            helo: "h".repeat(300),
            ident: "i".repeat(200),
            remote: true,
            ..Origin::default()
        };
        let c = commands(&o, &all());
        assert_eq!(c.len(), 3, "{c:?}");
        assert!(c.iter().all(|(l, _)| l.len() + 2 <= 512));
        assert!(c[1].0.starts_with("XFORWARD PROTO=ESMTP HELO=hhh"));
        assert_eq!(
            c[2].0,
            format!("XFORWARD IDENT={} SOURCE=REMOTE", "i".repeat(200))
        );
        assert_eq!(c[2].1, "XFORWARD helo/protocol command");
        // Every attribute arrives exactly once, in Postfix's order.
        let names: Vec<&str> = c
            .iter()
            .flat_map(|(l, _)| l.split(' ').skip(1))
            .map(|kv| kv.split('=').next().unwrap_or(""))
            .collect();
        assert_eq!(names, ["NAME", "ADDR", "PROTO", "HELO", "IDENT", "SOURCE"]);
    }
}
