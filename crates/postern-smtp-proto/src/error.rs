//! Command errors and THE table that maps each to Postfix's reply.
//!
//! Every reply text below was observed from Postfix 3.7.11 smtpd (a private instance
//! on 127.0.0.1, probed with raw commands) unless its row says `unverified`.
//! Clients and test suites match on these strings, so they must not drift; the table
//! test in this file pins them.

use crate::reply::Reply;

/// Why a command line was rejected by [`crate::parse_command`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// Empty or blank line, or a line holding a NUL byte.
    #[error("bad syntax")]
    BadSyntax,
    /// The line is not UTF-8.
    #[error("bad UTF-8 syntax")]
    BadUtf8,
    /// Unknown verb (smtpd also uses this for verbs it does not serve: EXPN, HELP, LHLO).
    #[error("command not recognized")]
    Unrecognized,
    /// `HELO` without a hostname.
    #[error("HELO without hostname")]
    HeloSyntax,
    /// `EHLO` without a hostname.
    #[error("EHLO without hostname")]
    EhloSyntax,
    /// `LHLO` without a hostname.
    #[error("LHLO without hostname")]
    LhloSyntax,
    /// `MAIL` not followed by `FROM:` and an address.
    #[error("MAIL syntax")]
    MailSyntax,
    /// Unparsable sender address.
    #[error("bad sender address syntax")]
    BadSender,
    /// `RCPT` not followed by `TO:` and an address.
    #[error("RCPT syntax")]
    RcptSyntax,
    /// Unparsable recipient address (also `RCPT TO:<>` and bad VRFY arguments).
    #[error("bad recipient address syntax")]
    BadRecipient,
    /// An ESMTP parameter this server does not support; holds the token as sent.
    #[error("unsupported option: {0}")]
    UnsupportedOption(String),
    /// `SIZE=` not a decimal number.
    #[error("bad SIZE syntax")]
    BadSize,
    /// `RET=` not FULL/HDRS, or given twice.
    #[error("bad RET syntax")]
    BadRet,
    /// `ENVID=` bad xtext, empty, or given twice.
    #[error("bad ENVID syntax")]
    BadEnvid,
    /// `AUTH=` bad xtext (only checked when SASL is enabled).
    #[error("bad AUTH= syntax")]
    BadAuthParam,
    /// `AUTH=` given twice.
    #[error("multiple AUTH= options")]
    MultipleAuth,
    /// `NOTIFY=` bad or given twice.
    #[error("bad NOTIFY syntax")]
    BadNotify,
    /// `ORCPT=` bad or given twice.
    #[error("bad ORCPT syntax")]
    BadOrcpt,
    /// `DATA` with arguments.
    #[error("DATA syntax")]
    DataSyntax,
    /// Bad `BDAT` arguments. Postfix closes the connection after this reply.
    #[error("BDAT syntax")]
    BdatSyntax,
    /// `RSET` with arguments.
    #[error("RSET syntax")]
    RsetSyntax,
    /// `VRFY` without an argument.
    #[error("VRFY syntax")]
    VrfySyntax,
    /// `ETRN` without exactly one argument.
    #[error("ETRN syntax")]
    EtrnSyntax,
    /// `STARTTLS` with arguments.
    #[error("STARTTLS syntax")]
    StartTlsSyntax,
    /// `AUTH` without a mechanism, or with too many arguments.
    #[error("AUTH syntax")]
    AuthSyntax,
    /// `XCLIENT` without attributes.
    #[error("XCLIENT syntax")]
    XclientSyntax,
    /// `XFORWARD` without attributes.
    #[error("XFORWARD syntax")]
    XforwardSyntax,
    /// Unknown XCLIENT attribute name (as sent).
    #[error("bad XCLIENT attribute name: {0}")]
    BadXclientAttr(String),
    /// Unknown XFORWARD attribute name (as sent).
    #[error("bad XFORWARD attribute name: {0}")]
    BadXforwardAttr(String),
    /// An XCLIENT/XFORWARD token without `=`.
    #[error("attribute=value expected")]
    AttrValueExpected,
    /// A bad XCLIENT/XFORWARD value: attribute name (upper case) and the value as
    /// Postfix echoes it (xtext-decoded when decodable, else raw).
    #[error("bad {name} syntax: {value}")]
    BadAttrValue {
        /// Attribute name.
        name: String,
        /// Offending value.
        value: String,
    },
    /// A non-ASCII address without `SMTPUTF8` under `strict_smtputf8` (the parser
    /// checks MAIL; smtpd must check RCPT, as Postfix does with the same reply).
    #[error("must declare SMTPUTF8 to send unicode address")]
    NeedSmtputf8,
}

impl CommandError {
    /// Postfix disconnects after replying (BDAT syntax errors).
    pub fn closes_session(&self) -> bool {
        matches!(self, CommandError::BdatSyntax)
    }
}

/// THE mapping from a command error to Postfix's reply.
pub fn reply_for(err: &CommandError) -> Reply {
    use CommandError as E;
    let (code, enh, text): (u16, Option<(u8, u16, u16)>, String) = match err {
        E::BadSyntax => (500, Some((5, 5, 2)), "Error: bad syntax".into()),
        E::BadUtf8 => (500, Some((5, 5, 2)), "Error: bad UTF-8 syntax".into()),
        E::Unrecognized => (500, Some((5, 5, 2)), "Error: command not recognized".into()),
        E::HeloSyntax => (501, None, "Syntax: HELO hostname".into()),
        E::EhloSyntax => (501, None, "Syntax: EHLO hostname".into()),
        // unverified: Postfix smtpd has no LHLO; shaped like HELO/EHLO.
        E::LhloSyntax => (501, None, "Syntax: LHLO hostname".into()),
        E::MailSyntax => (501, Some((5, 5, 4)), "Syntax: MAIL FROM:<address>".into()),
        E::BadSender => (501, Some((5, 1, 7)), "Bad sender address syntax".into()),
        E::RcptSyntax => (501, Some((5, 5, 4)), "Syntax: RCPT TO:<address>".into()),
        E::BadRecipient => (501, Some((5, 1, 3)), "Bad recipient address syntax".into()),
        E::UnsupportedOption(t) => (555, Some((5, 5, 4)), format!("Unsupported option: {t}")),
        E::BadSize => (501, Some((5, 5, 4)), "Bad message size syntax".into()),
        E::BadRet => (501, Some((5, 5, 4)), "Bad RET parameter syntax".into()),
        E::BadEnvid => (501, Some((5, 5, 4)), "Bad ENVID parameter syntax".into()),
        // unverified (needs SASL): shaped like the RET/ENVID replies.
        E::BadAuthParam => (501, Some((5, 5, 4)), "Bad AUTH parameter syntax".into()),
        E::MultipleAuth => (503, Some((5, 5, 4)), "Error: multiple AUTH= options".into()),
        E::BadNotify => (
            501,
            Some((5, 5, 4)),
            "Error: Bad NOTIFY parameter syntax".into(),
        ),
        E::BadOrcpt => (
            501,
            Some((5, 5, 4)),
            "Error: Bad ORCPT parameter syntax".into(),
        ),
        E::DataSyntax => (501, Some((5, 5, 4)), "Syntax: DATA".into()),
        E::BdatSyntax => (521, Some((5, 5, 4)), "Syntax: BDAT count [LAST]".into()),
        E::RsetSyntax => (501, Some((5, 5, 4)), "Syntax: RSET".into()),
        E::VrfySyntax => (
            501,
            Some((5, 5, 4)),
            "Syntax: VRFY address [SMTPUTF8]".into(),
        ),
        E::EtrnSyntax => (500, None, "Syntax: ETRN domain".into()),
        E::StartTlsSyntax => (501, Some((5, 5, 4)), "Syntax: STARTTLS".into()),
        // unverified (needs SASL).
        E::AuthSyntax => (501, Some((5, 5, 4)), "Syntax: AUTH mechanism".into()),
        E::XclientSyntax => (
            501,
            Some((5, 5, 4)),
            "Syntax: XCLIENT attribute=value...".into(),
        ),
        E::XforwardSyntax => (
            501,
            Some((5, 5, 4)),
            "Syntax: XFORWARD attribute=value...".into(),
        ),
        E::BadXclientAttr(n) => (
            501,
            Some((5, 5, 4)),
            format!("Bad XCLIENT attribute name: {n}"),
        ),
        E::BadXforwardAttr(n) => (
            501,
            Some((5, 5, 4)),
            format!("Bad XFORWARD attribute name: {n}"),
        ),
        E::AttrValueExpected => (
            501,
            Some((5, 5, 4)),
            "Error: attribute=value expected".into(),
        ),
        E::BadAttrValue { name, value } => {
            (501, Some((5, 5, 4)), format!("Bad {name} syntax: {value}"))
        }
        E::NeedSmtputf8 => (
            553,
            Some((5, 6, 7)),
            "Must declare SMTPUTF8 to send unicode address".into(),
        ),
    };
    Reply::new(code, enh, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use CommandError as E;

    /// Pinned wire text, one row per variant.
    #[test]
    fn reply_table() {
        let table: &[(E, &str)] = &[
            (E::BadSyntax, "500 5.5.2 Error: bad syntax"),
            (E::BadUtf8, "500 5.5.2 Error: bad UTF-8 syntax"),
            (E::Unrecognized, "500 5.5.2 Error: command not recognized"),
            (E::HeloSyntax, "501 Syntax: HELO hostname"),
            (E::EhloSyntax, "501 Syntax: EHLO hostname"),
            (E::LhloSyntax, "501 Syntax: LHLO hostname"),
            (E::MailSyntax, "501 5.5.4 Syntax: MAIL FROM:<address>"),
            (E::BadSender, "501 5.1.7 Bad sender address syntax"),
            (E::RcptSyntax, "501 5.5.4 Syntax: RCPT TO:<address>"),
            (E::BadRecipient, "501 5.1.3 Bad recipient address syntax"),
            (
                E::UnsupportedOption("FOO=bar".into()),
                "555 5.5.4 Unsupported option: FOO=bar",
            ),
            (E::BadSize, "501 5.5.4 Bad message size syntax"),
            (E::BadRet, "501 5.5.4 Bad RET parameter syntax"),
            (E::BadEnvid, "501 5.5.4 Bad ENVID parameter syntax"),
            (E::BadAuthParam, "501 5.5.4 Bad AUTH parameter syntax"),
            (E::MultipleAuth, "503 5.5.4 Error: multiple AUTH= options"),
            (E::BadNotify, "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
            (E::BadOrcpt, "501 5.5.4 Error: Bad ORCPT parameter syntax"),
            (E::DataSyntax, "501 5.5.4 Syntax: DATA"),
            (E::BdatSyntax, "521 5.5.4 Syntax: BDAT count [LAST]"),
            (E::RsetSyntax, "501 5.5.4 Syntax: RSET"),
            (E::VrfySyntax, "501 5.5.4 Syntax: VRFY address [SMTPUTF8]"),
            (E::EtrnSyntax, "500 Syntax: ETRN domain"),
            (E::StartTlsSyntax, "501 5.5.4 Syntax: STARTTLS"),
            (E::AuthSyntax, "501 5.5.4 Syntax: AUTH mechanism"),
            (
                E::XclientSyntax,
                "501 5.5.4 Syntax: XCLIENT attribute=value...",
            ),
            (
                E::XforwardSyntax,
                "501 5.5.4 Syntax: XFORWARD attribute=value...",
            ),
            (
                E::BadXclientAttr("FOO".into()),
                "501 5.5.4 Bad XCLIENT attribute name: FOO",
            ),
            (
                E::BadXforwardAttr("FOO".into()),
                "501 5.5.4 Bad XFORWARD attribute name: FOO",
            ),
            (
                E::AttrValueExpected,
                "501 5.5.4 Error: attribute=value expected",
            ),
            (
                E::BadAttrValue {
                    name: "NAME".into(),
                    value: "a+zz".into(),
                },
                "501 5.5.4 Bad NAME syntax: a+zz",
            ),
            (
                E::NeedSmtputf8,
                "553 5.6.7 Must declare SMTPUTF8 to send unicode address",
            ),
        ];
        for (err, wire) in table {
            assert_eq!(reply_for(err).encode(), format!("{wire}\r\n"), "{err:?}");
        }
        assert!(E::BdatSyntax.closes_session());
        assert!(!E::MailSyntax.closes_session());
    }
}
